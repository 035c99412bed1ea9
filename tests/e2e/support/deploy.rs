//! What the lifeboat-deploy and lifeboat-rollback test files share: the real binary run on a
//! demo compose project with the deploy settings of the demo app, through the testkit's
//! `lifeboat()` (its `Ran` checked for panics and known secrets).
//!
//! Each test file that needs it says `#[path = "support/deploy.rs"] mod deploy_support;`.
#![allow(dead_code)]

use std::path::Path;

pub use lifeboat_testkit::Ran;
use lifeboat_testkit::{lifeboat, Lifeboat};

/// What docker and compose need of the machine (lifeboat-deploy runs them): none of it is a
/// lifeboat setting but DOCKER_HOST, which names the engine the tests use.
const MACHINE: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_BUILDKIT",
];

/// `binary args` in `work` for compose project `project`: the demo app's services, worker and
/// migration, lifeboat's files under `work`, no colour, none of the machine's settings (a clean
/// environment but what docker needs, see [`MACHINE`]).
pub fn command(binary: &str, args: &[&str], work: &Path, project: &str) -> Lifeboat {
    lifeboat(binary)
        .args(args)
        .dir(work)
        .inherit(MACHINE)
        .env("COMPOSE_PROJECT_NAME", project)
        .env("LIFEBOAT_DEPLOY_SERVICES", "app")
        .env("LIFEBOAT_DEPLOY_WORKERS", "worker")
        .env("LIFEBOAT_DEPLOY_MIGRATE", "lifeboat-demo-app migrate")
        .env("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "30")
        .env("LIFEBOAT_DEPLOY_DIR", work.join("state"))
        .env("LIFEBOAT_BACKUP_DIR", work.join("backups"))
        .env("LIFEBOAT_LOCK_DIR", work.join("locks"))
        .env("NO_COLOR", "1")
}
