//! Every binary, run for real: --help teaches, --version answers, a bad request is exit 2 and
//! names what is wrong, and nothing ever panics or prints a secret.
//! (lifeboat-healthcheck exits only 0 or 1: Docker reserves 2.)

use std::path::Path;
use std::process::{Command, Output};

use lifeboat_testkit::{bin, run};

const JOBS: [&str; 5] = [
    "lifeboat-backup",
    "lifeboat-restore",
    "lifeboat-smoke",
    "lifeboat-deploy",
    "lifeboat-rollback",
];
const ALL: [&str; 6] = [
    "lifeboat-backup",
    "lifeboat-restore",
    "lifeboat-healthcheck",
    "lifeboat-smoke",
    "lifeboat-deploy",
    "lifeboat-rollback",
];

/// Run `name args…` in `dir` with a clean environment (no stray LIFEBOAT_* or DATABASE_URL).
fn lifeboat(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(name));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(env.iter().copied());
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{name} {args:?} panicked: {stderr}"
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_and_version_work_for_every_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ALL {
        let help = lifeboat(name, dir.path(), &["--help"], &[]);
        assert_eq!(help.status.code(), Some(0), "{name} --help");
        let text = stdout(&help);
        assert!(
            text.contains("Usage:") && text.contains("Exit codes:"),
            "{name} --help:\n{text}"
        );
        let version = lifeboat(name, dir.path(), &["--version"], &[]);
        assert_eq!(version.status.code(), Some(0));
        assert_eq!(
            stdout(&version).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn help_shows_the_environment_variable_of_each_shared_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = stdout(&lifeboat("lifeboat-backup", dir.path(), &["--help"], &[]));
    for var in [
        "LIFEBOAT_CONFIG",
        "LIFEBOAT_ENV_FILE",
        "LIFEBOAT_ENV",
        "LIFEBOAT_LOG_FORMAT",
        "LIFEBOAT_BACKUP_DIR",
        "DATABASE_URL",
    ] {
        assert!(text.contains(var), "--help does not mention {var}:\n{text}");
    }
}

#[test]
fn deploy_and_rollback_without_their_services_name_the_variable_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, args) in [
        ("lifeboat-deploy", &["v2"][..]),
        ("lifeboat-rollback", &[][..]),
    ] {
        let out = lifeboat(name, dir.path(), args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} {args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("LIFEBOAT_DEPLOY_SERVICES"),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).is_empty(),
            "stdout is for data only: {}",
            stdout(&out)
        );
    }
}

#[test]
fn a_bad_flag_is_exit_2_but_healthcheck_says_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in JOBS {
        let out = lifeboat(name, dir.path(), &["--no-such-flag"], &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            stderr(&out).contains("--no-such-flag"),
            "{name}: {}",
            stderr(&out)
        );
    }
    let out = lifeboat("lifeboat-healthcheck", dir.path(), &["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(1), "Docker reserves 2");
    assert!(
        stdout(&out).contains("unknown option --no-such-flag"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_unknown_config_key_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "[backup]\ndirectory = \"/srv/backups\"\n",
    )
    .expect("write");
    for name in JOBS {
        let out = lifeboat(name, dir.path(), &[], &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = stderr(&out);
        assert!(
            err.contains("unknown key `backup.directory` in lifeboat.toml"),
            "{name}: {err}"
        );
        assert!(err.contains("known keys in [backup]: dir"), "{name}: {err}");
    }
}

#[test]
fn a_typo_in_a_lifeboat_variable_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat(
        "lifeboat-backup",
        dir.path(),
        &[],
        &[("LIFEBOAT_BACKUPDIR", "/srv")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "unknown variable LIFEBOAT_BACKUPDIR (from environment variable LIFEBOAT_BACKUPDIR)"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_value_in_dotenv_names_the_variable_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".env"),
        "POSTGRES_DB=app\nNODE_ENV=production\nSMTP_PORT=twenty-five\n",
    )
    .expect("write");
    let out = lifeboat("lifeboat-restore", dir.path(), &["latest"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value for `smtp.port` (from SMTP_PORT in .env line 3)"),
        "{}",
        stderr(&out)
    );

    let out = lifeboat(
        "lifeboat-restore",
        dir.path(),
        &["--env-file", "missing.env", "latest"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read missing.env"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_database_url_is_named_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat(
        "lifeboat-backup",
        dir.path(),
        &[],
        &[("DATABASE_URL", "mysql://app:Sup3rSecret@db/app")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`database.url` (from environment variable DATABASE_URL)"),
        "{err}"
    );
    assert!(!err.contains("Sup3rSecret"), "{err}");

    let out = lifeboat(
        "lifeboat-backup",
        dir.path(),
        &["--url", "postgres://app:Sup3rSecret@/app"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("(from flag --url)") && !err.contains("Sup3rSecret"),
        "{err}"
    );
}

#[test]
fn profiles_choose_the_table_of_lifeboat_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "[smtp]\nport = 25\n[profile.production.smtp]\nport = \"not-a-port\"\n[profile.staging]\n",
    )
    .expect("write");
    let staging = lifeboat("lifeboat-smoke", dir.path(), &["--env", "staging"], &[]);
    // The configuration loaded; what is missing next is the smoke spec.
    assert!(
        stderr(&staging).contains("cannot read the spec"),
        "staging has a valid port: {}",
        stderr(&staging)
    );
    let typo = lifeboat("lifeboat-smoke", dir.path(), &["--env", "prodution"], &[]);
    assert_eq!(
        typo.status.code(),
        Some(2),
        "a typo never falls back to the top level"
    );
    assert!(
        stderr(&typo).contains("no [profile.prodution]"),
        "{}",
        stderr(&typo)
    );
    let production = lifeboat(
        "lifeboat-smoke",
        dir.path(),
        &[],
        &[("LIFEBOAT_ENV", "production")],
    );
    assert_eq!(production.status.code(), Some(2));
    assert!(
        stderr(&production).contains("invalid value for `smtp.port` (from lifeboat.toml)"),
        "{}",
        stderr(&production)
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat(
        "lifeboat-deploy",
        dir.path(),
        &["--log-format", "json", "v2"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let mut lines = 0;
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["level"], "ERROR");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("LIFEBOAT_DEPLOY_SERVICES")),
            "{line}"
        );
        lines += 1;
    }
    assert_eq!(lines, 1, "{err}");
}

#[test]
fn no_color_and_quiet_are_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat(
        "lifeboat-rollback",
        dir.path(),
        &["-q"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
    assert!(
        err.contains("LIFEBOAT_DEPLOY_SERVICES"),
        "errors are shown even with -q: {err}"
    );
}

#[test]
fn a_backup_without_a_database_says_where_it_looked_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = lifeboat_testkit::unique("lbtestnostack");
    let out = lifeboat(
        "lifeboat-backup",
        dir.path(),
        &[],
        &[("COMPOSE_PROJECT_NAME", &project)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "no running container for service `postgres` of compose project `{project}`"
        )),
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "no backup path on stdout: {}",
        stdout(&out)
    );
    let backups = dir.path().join("backups");
    let empty = std::fs::read_dir(&backups).map_or(true, |mut d| d.next().is_none());
    assert!(empty, "nothing written to {}", backups.display());
}
