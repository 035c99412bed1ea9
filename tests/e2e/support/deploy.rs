//! What the lifeboat-deploy and lifeboat-rollback test files share: the real binary run on a
//! demo compose project with the deploy settings of the demo app, and what it said.
//!
//! Each test file that needs it says `#[path = "support/deploy.rs"] mod deploy_support;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use lifeboat_testkit::bin;

/// Variables of the machine that would change what the binaries read.
const CLEARED: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "S3_BUCKET",
    "SMTP_HOST",
    "LIFEBOAT_ENV",
    "LIFEBOAT_MAIL_TO",
    "LIFEBOAT_CONFIG",
    "LIFEBOAT_ENV_FILE",
    "APP_URL",
];

/// `binary args` in `work` for compose project `project`: the demo app's services, worker and
/// migration, lifeboat's files under `work`, no colour, none of the machine's settings.
pub fn command(binary: &str, args: &[&str], work: &Path, project: &str) -> Command {
    let mut cmd = Command::new(bin(binary));
    cmd.args(args).current_dir(work);
    for v in CLEARED {
        cmd.env_remove(v);
    }
    cmd.env("COMPOSE_PROJECT_NAME", project)
        .env("LIFEBOAT_DEPLOY_SERVICES", "app")
        .env("LIFEBOAT_DEPLOY_WORKERS", "worker")
        .env("LIFEBOAT_DEPLOY_MIGRATE", "lifeboat-demo-app migrate")
        .env("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "30")
        .env("LIFEBOAT_DEPLOY_DIR", work.join("state"))
        .env("LIFEBOAT_BACKUP_DIR", work.join("backups"))
        .env("LIFEBOAT_LOCK_DIR", work.join("locks"))
        .env("NO_COLOR", "1");
    cmd
}

/// What a run said, and its exit code.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(out: &Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn show(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
