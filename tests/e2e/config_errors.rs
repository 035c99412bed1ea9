//! Configuration and engine errors a newcomer meets: each names its flag, variable, key or file,
//! suggests the near name, and is exit 2 before anything is touched.

use lifeboat_testkit::lifeboat;

/// Run `name` with `args` and `env` in a directory holding `toml` as lifeboat.toml (if any).
fn run(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    toml: Option<&str>,
) -> lifeboat_testkit::Ran {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(text) = toml {
        std::fs::write(dir.path().join("lifeboat.toml"), text).expect("write");
    }
    lifeboat(name)
        .dir(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .run()
}

/// `name` refuses the request (exit 2), and says each of `says`.
fn refused(name: &str, env: &[(&str, &str)], toml: Option<&str>, says: &[&str]) {
    let out = run(name, &["list"], env, toml);
    assert_eq!(out.code, 2, "{}", out.show());
    for each in says {
        assert!(
            out.stderr.contains(each),
            "{each} is not said:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_misspelled_variable_or_key_gets_the_name_meant() {
    refused(
        "lifeboat-backup",
        &[("LIFEBOAT_BAKUP_DIR", "/srv/backups")],
        None,
        &[
            "unknown variable LIFEBOAT_BAKUP_DIR",
            "did you mean LIFEBOAT_BACKUP_DIR?",
        ],
    );
    refused(
        "lifeboat-restore",
        &[],
        Some("[backup]\ndir = \"backups\"\nkeep_days = 3\n"),
        &["unknown key `backup.keep_days` in lifeboat.toml line 3: did you mean `backup.keep-days`?"],
    );
    refused(
        "lifeboat-backup",
        &[],
        Some("[bakup]\ndir = \"b\"\n"),
        &["did you mean [backup]?"],
    );
}

#[test]
fn toml_errors_name_their_line() {
    refused(
        "lifeboat-backup",
        &[],
        Some("# retention\n[backup]\n\nkeep-days = \"three\"\n"),
        &["`backup.keep-days` (from lifeboat.toml line 4)"],
    );
    refused(
        "lifeboat-backup",
        &[],
        Some("[backup]\ndir = \n"),
        &["lifeboat.toml is not valid TOML: line 2"],
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    refused(
        "lifeboat-backup",
        &[("LIFEBOAT_BAKUP_DIR", "/x"), ("SMTP_PORT", "smtp")],
        Some("[backup]\nkeep_days = 3\nkeep-weekly = \"three\"\n"),
        &[
            "4 problems in the configuration",
            "`backup.keep_days` in lifeboat.toml line 2",
            "unknown variable LIFEBOAT_BAKUP_DIR",
            "`backup.keep-weekly` (from lifeboat.toml line 3)",
            "`smtp.port` (from environment variable SMTP_PORT)",
        ],
    );
}

#[test]
fn a_config_file_that_is_not_there_names_the_flag_and_the_variable_once() {
    for (args, env) in [
        (vec!["--config", "nope.toml", "list"], vec![]),
        (vec!["list"], vec![("LIFEBOAT_CONFIG", "nope.toml")]),
    ] {
        let out = run("lifeboat-backup", &args, &env, None);
        assert_eq!(out.code, 2, "{}", out.show());
        assert!(
            out.stderr.contains(
                "cannot read nope.toml (given by --config or LIFEBOAT_CONFIG): no such file"
            ),
            "{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("no such file").count(),
            1,
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("os error"), "{}", out.stderr);
    }
}

#[test]
fn docker_host_that_is_no_address_is_exit_2_and_an_unreachable_engine_is_said_once() {
    for host in ["bogus", "ssh://user@host", "tcp://", "unix://relative.sock"] {
        for (name, args) in [
            ("lifeboat-backup", vec![]),
            ("lifeboat-deploy", vec!["status"]),
        ] {
            let out = run(
                name,
                &args,
                &[("DOCKER_HOST", host), ("LIFEBOAT_DEPLOY_SERVICES", "app")],
                None,
            );
            assert_eq!(out.code, 2, "{name} DOCKER_HOST={host}: {}", out.show());
            assert!(
                out.stderr.contains("is not an engine address"),
                "{}",
                out.stderr
            );
        }
    }
    for host in ["tcp://127.0.0.1:1", "unix:///nonexistent/docker.sock"] {
        let out = run(
            "lifeboat-deploy",
            &["status"],
            &[("DOCKER_HOST", host), ("LIFEBOAT_DEPLOY_SERVICES", "app")],
            None,
        );
        assert_eq!(out.code, 1, "{}", out.show());
        assert_eq!(
            out.stderr.matches("cannot reach the Docker engine").count(),
            1,
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(host), "{}", out.stderr);
        assert!(!out.stderr.contains("hyper"), "{}", out.stderr);
    }
}
