//! Every binary, run for real: --help teaches, --version answers, a bad request is exit 2 and
//! names what is wrong, and nothing ever panics or prints a secret.
//! (lifeboat-healthcheck exits only 0 or 1: Docker reserves 2.) Every run goes through the
//! testkit's `lifeboat()`, which fails a test on a panic or a known secret in the output.

use lifeboat_testkit::lifeboat;

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

#[test]
fn help_and_version_work_for_every_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ALL {
        let help = lifeboat(name).dir(dir.path()).args(["--help"]).run();
        assert_eq!(help.code, 0, "{name} --help");
        let text = help.stdout;
        assert!(
            text.contains("Usage:") && text.contains("Exit codes:"),
            "{name} --help:\n{text}"
        );
        let version = lifeboat(name).dir(dir.path()).args(["--version"]).run();
        assert_eq!(version.code, 0);
        // `NAME 0.1.0 (commit 1a2b3c4d5e6f, features: …)`: which build this is.
        let text = version.stdout.trim();
        let rest = text
            .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{name} --version: {text}"));
        let (commit, features) = rest
            .split_once(", features: ")
            .unwrap_or_else(|| panic!("{name} --version: {text}"));
        assert!(
            commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{name} --version has no commit: {text}"
        );
        assert!(features.ends_with(')') && features.len() > 1, "{text}");
    }
}

#[test]
fn help_shows_the_environment_variable_of_each_shared_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .args(["--help"])
        .run()
        .stdout;
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
        let out = lifeboat(name).dir(dir.path()).args(args).run();
        assert_eq!(out.code, 2, "{name} {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("LIFEBOAT_DEPLOY_SERVICES"),
            "{name}: {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "stdout is for data only: {}",
            out.stdout
        );
    }
}

#[test]
fn a_bad_flag_is_exit_2_but_healthcheck_says_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in JOBS {
        let out = lifeboat(name)
            .dir(dir.path())
            .args(["--no-such-flag"])
            .run();
        assert_eq!(out.code, 2, "{name}");
        assert!(
            out.stderr.contains("--no-such-flag"),
            "{name}: {}",
            out.stderr
        );
    }
    let out = lifeboat("lifeboat-healthcheck")
        .dir(dir.path())
        .args(["--no-such-flag"])
        .run();
    assert_eq!(out.code, 1, "Docker reserves 2");
    assert!(
        out.stdout.contains("unknown option --no-such-flag"),
        "{}",
        out.stdout
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
        let out = lifeboat(name).dir(dir.path()).run();
        assert_eq!(out.code, 2, "{name}");
        let err = out.stderr;
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
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .env("LIFEBOAT_BACKUPDIR", "/srv")
        .run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "unknown variable LIFEBOAT_BACKUPDIR (from environment variable LIFEBOAT_BACKUPDIR)"
        ),
        "{}",
        out.stderr
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
    let out = lifeboat("lifeboat-restore")
        .dir(dir.path())
        .args(["latest"])
        .run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("invalid value for `smtp.port` (from SMTP_PORT in .env line 3)"),
        "{}",
        out.stderr
    );

    let out = lifeboat("lifeboat-restore")
        .dir(dir.path())
        .args(["--env-file", "missing.env", "latest"])
        .run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot read missing.env"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_database_url_is_named_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .env("DATABASE_URL", "mongodb://app:Sup3rSecret@db/app")
        .secret("Sup3rSecret")
        .run();
    assert_eq!(out.code, 2);
    let err = out.stderr;
    assert!(
        err.contains("`database.url` (from environment variable DATABASE_URL)"),
        "{err}"
    );
    assert!(!err.contains("Sup3rSecret"), "{err}");

    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .args(["--url", "postgres://app:Sup3rSecret@/app"])
        .secret("Sup3rSecret")
        .run();
    assert_eq!(out.code, 2);
    let err = out.stderr;
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
    let staging = lifeboat("lifeboat-smoke")
        .dir(dir.path())
        .args(["--env", "staging"])
        .run();
    // The configuration loaded; what is missing next is the smoke spec.
    assert!(
        staging.stderr.contains("cannot read the spec"),
        "staging has a valid port: {}",
        staging.stderr
    );
    let typo = lifeboat("lifeboat-smoke")
        .dir(dir.path())
        .args(["--env", "prodution"])
        .run();
    assert_eq!(typo.code, 2, "a typo never falls back to the top level");
    assert!(
        typo.stderr.contains("no [profile.prodution]"),
        "{}",
        typo.stderr
    );
    let production = lifeboat("lifeboat-smoke")
        .dir(dir.path())
        .env("LIFEBOAT_ENV", "production")
        .run();
    assert_eq!(production.code, 2);
    assert!(
        production
            .stderr
            .contains("invalid value for `smtp.port` (from lifeboat.toml line 4)"),
        "{}",
        production.stderr
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat("lifeboat-deploy")
        .dir(dir.path())
        .args(["--log-format", "json", "v2"])
        .run();
    assert_eq!(out.code, 2);
    let err = out.stderr;
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
    let out = lifeboat("lifeboat-rollback")
        .dir(dir.path())
        .args(["-q"])
        .env("NO_COLOR", "1")
        .run();
    assert_eq!(out.code, 2);
    let err = out.stderr;
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
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .env("COMPOSE_PROJECT_NAME", &project)
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = out.stderr;
    assert!(
        err.contains(&format!(
            "no running container for service `postgres` of compose project `{project}`"
        )),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no backup path on stdout: {}",
        out.stdout
    );
    let backups = dir.path().join("backups");
    let empty = std::fs::read_dir(&backups).map_or(true, |mut d| d.next().is_none());
    assert!(empty, "nothing written to {}", backups.display());
}
