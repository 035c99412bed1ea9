//! Help that reads: examples verbatim at 80 columns, a short example in -h, exit codes and
//! variables named, typo'd subcommands refused before any engine or database call, a secret in
//! a wrong argument never echoed, and logs that say what was chosen without a dependency's
//! traces. (lifeboat-healthcheck's own rules are tested in healthcheck.rs.)

use std::os::unix::net::UnixListener;

use lifeboat_testkit::lifeboat;

const CLAP_BINARIES: [&str; 5] = [
    "lifeboat-backup",
    "lifeboat-restore",
    "lifeboat-smoke",
    "lifeboat-deploy",
    "lifeboat-rollback",
];

/// Each binary's subcommands (besides clap's `help`).
const SUBCOMMANDS: [(&str, &[&str]); 5] = [
    (
        "lifeboat-backup",
        &["run", "list", "prune", "verify", "completions"],
    ),
    ("lifeboat-restore", &["list", "cleanup", "completions"]),
    ("lifeboat-smoke", &["completions"]),
    ("lifeboat-deploy", &["status", "history", "completions"]),
    ("lifeboat-rollback", &["list", "completions"]),
];

/// `--help` at a terminal width, from an empty directory.
fn help(name: &str, args: &[&str], columns: u16) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat(name)
        .dir(dir.path())
        .args(args)
        .env("COLUMNS", columns.to_string())
        .run();
    assert_eq!(out.code, 0, "{name} {args:?}: {}", out.show());
    out.stdout
}

/// What `--help` says after the options: examples, steps, exit codes, variables.
fn after_options(text: &str) -> &str {
    let start = text
        .find("Print version")
        .or_else(|| text.find("Print help"))
        .expect("--help lists its own --help");
    &text[start..]
}

#[test]
fn examples_and_steps_keep_their_lines_at_80_columns() {
    for name in CLAP_BINARIES {
        let wide = help(name, &["--help"], 1000);
        let narrow = help(name, &["--help"], 80);
        let (wide, narrow) = (after_options(&wide), after_options(&narrow));
        assert_eq!(
            wide, narrow,
            "{name} --help reflows its examples at 80 columns"
        );
        assert!(
            narrow.contains("Examples:\n  lifeboat-"),
            "{name}:\n{narrow}"
        );
        let examples = narrow
            .split("Examples:\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("an Examples section");
        let commands = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("lifeboat-"))
            .count();
        assert!(
            commands >= 3,
            "{name}: a few examples, one per line:\n{examples}"
        );
        for line in narrow.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name}: {line:?} is wider than 80"
            );
        }
    }
    let deploy = help("lifeboat-deploy", &["--help"], 80);
    for step in [
        "\n  1. take the deploy lock",
        "\n  4. the migrations",
        "\n  7. a failure in 4 to 6",
    ] {
        assert!(
            deploy.contains(step),
            "deploy's steps run together:\n{deploy}"
        );
    }
}

#[test]
fn short_help_shows_an_example_and_where_the_rest_is() {
    for name in CLAP_BINARIES {
        let short = help(name, &["-h"], 80);
        let example = short
            .lines()
            .find(|l| l.starts_with("Example: "))
            .unwrap_or_else(|| panic!("{name} -h has no example:\n{short}"));
        assert!(example.contains(name), "{name}: {example}");
        assert!(
            short.contains("--help shows more examples"),
            "{name}:\n{short}"
        );
    }
}

#[test]
fn help_names_the_variables_and_every_subcommand_its_exit_codes() {
    for (name, subcommands) in SUBCOMMANDS {
        let text = help(name, &["--help"], 100);
        for needed in ["NO_COLOR", "LIFEBOAT_LOG=", "Exit codes:"] {
            assert!(
                text.contains(needed),
                "{name} --help lacks {needed}:\n{text}"
            );
        }
        for sub in subcommands.iter().copied() {
            let sub_help = help(name, &[sub, "--help"], 100);
            assert!(
                sub_help.contains("Exit codes:\n  0  "),
                "{name} {sub} --help:\n{sub_help}"
            );
        }
    }
    for name in ["lifeboat-deploy", "lifeboat-rollback"] {
        for flag in ["-h", "--help"] {
            let text = help(name, &[flag], 100);
            assert!(
                text.contains("LIFEBOAT_DEPLOY_SERVICES"),
                "{name} {flag} never names the one required setting:\n{text}"
            );
        }
    }
    let deploy = help("lifeboat-deploy", &["--help"], 100);
    assert!(deploy.contains("\n  3  the deploy failed"), "{deploy}");
    let rollback = help("lifeboat-rollback", &["--help"], 100);
    assert!(
        !rollback.contains("\n  3  "),
        "rollback never exits 3 but its help says so:\n{rollback}"
    );
}

#[test]
fn a_subcommand_help_shows_only_the_options_that_apply() {
    let list = help("lifeboat-restore", &["list", "--help"], 100);
    for absent in ["--yes", "--no-safety-backup", "--no-progress"] {
        assert!(
            !list.contains(absent),
            "restore list --help shows {absent}:\n{list}"
        );
    }
    for present in ["--trust-unsigned", "--dir"] {
        assert!(
            list.contains(present),
            "restore list --help lacks {present}:\n{list}"
        );
    }
    let cleanup = help("lifeboat-restore", &["cleanup", "--help"], 100);
    assert!(
        cleanup.contains("--yes") && cleanup.contains("--dry-run"),
        "{cleanup}"
    );
    assert!(!cleanup.contains("--trust-unsigned"), "{cleanup}");
}

#[test]
fn help_names_variables_without_their_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in CLAP_BINARIES {
        let out = lifeboat(name)
            .dir(dir.path())
            .args(["--help"])
            .env("LIFEBOAT_ENV", "hunter2-profile")
            .secret("hunter2")
            .run();
        assert_eq!(out.code, 0, "{}", out.show());
        assert!(out.stdout.contains("[env: LIFEBOAT_ENV]"), "{}", out.stdout);
        assert!(
            !out.stdout.contains("=]"),
            "{name}: an empty [env: X=]:\n{}",
            out.stdout
        );
    }
}

/// A socket that stands for the Docker engine: whether anything connected to it.
struct FakeEngine {
    _dir: tempfile::TempDir,
    listener: UnixListener,
    host: String,
}

impl FakeEngine {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = format!("unix://{}", path.display());
        Self {
            _dir: dir,
            listener,
            host,
        }
    }

    fn was_asked(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

#[test]
fn a_misspelled_subcommand_is_refused_before_the_engine_is_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, typo, meant) in [
        ("lifeboat-deploy", "stauts", "status"),
        ("lifeboat-deploy", "histroy", "history"),
        ("lifeboat-restore", "lsit", "list"),
        ("lifeboat-restore", "claenup", "cleanup"),
        ("lifeboat-rollback", "lsit", "list"),
        ("lifeboat-backup", "lsit", "list"),
        ("lifeboat-backup", "verfiy", "verify"),
    ] {
        let engine = FakeEngine::new();
        let out = lifeboat(name)
            .dir(dir.path())
            .args(["--env", "production", typo])
            .env("DOCKER_HOST", &engine.host)
            .env("LIFEBOAT_DEPLOY_SERVICES", "app")
            .env("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:9/app")
            .secret("hunter2")
            .run();
        assert_eq!(out.code, 2, "{name} {typo}: {}", out.show());
        assert!(
            out.stderr.contains(&format!("'{meant}'")) && out.stderr.contains(typo),
            "{name} {typo}: no suggestion of {meant}:\n{}",
            out.stderr
        );
        assert!(!engine.was_asked(), "{name} {typo} asked the engine first");
    }
    // A name that really is a release: `--` says so, and it is taken as one (here it goes
    // on to an engine that is not there).
    let out = lifeboat("lifeboat-deploy")
        .dir(dir.path())
        .args(["--dry-run", "--", "stauts"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("LIFEBOAT_DEPLOY_SERVICES", "app")
        .run();
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        !out.stderr.contains("looks like a subcommand"),
        "{}",
        out.show()
    );
}

#[test]
fn a_free_argument_given_with_a_subcommand_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = FakeEngine::new();
    for (name, args) in [
        ("lifeboat-restore", ["latest", "list"]),
        ("lifeboat-deploy", ["v2", "status"]),
        ("lifeboat-rollback", ["v1", "list"]),
    ] {
        let out = lifeboat(name)
            .dir(dir.path())
            .args(args)
            .env("DOCKER_HOST", &engine.host)
            .env("LIFEBOAT_DEPLOY_SERVICES", "app")
            .run();
        assert_eq!(out.code, 2, "{name} {args:?}: {}", out.show());
        assert!(
            out.stderr.contains(args[0]) && out.stderr.contains(args[1]),
            "{}",
            out.stderr
        );
    }
    assert!(!engine.was_asked());
}

#[test]
fn a_secret_in_a_wrong_argument_is_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, args) in [
        ("lifeboat-backup", vec!["redis//:hunter2@cache:6379"]),
        (
            "lifeboat-backup",
            vec!["--compress", "postgres//u:hunter2@db/app"],
        ),
        (
            "lifeboat-restore",
            vec!["latest", "postgres://u:hunter2@db/app"],
        ),
        (
            "lifeboat-deploy",
            vec!["--dry-run=https://h/hook?token=hunter2"],
        ),
        ("lifeboat-smoke", vec!["--report", "u:hunter2@h"]),
        ("lifeboat-rollback", vec!["-vv", "v1", "x:hunter2@y"]),
    ] {
        let out = lifeboat(name)
            .dir(dir.path())
            .args(&args)
            .secret("hunter2")
            .run();
        assert_eq!(out.code, 2, "{name} {args:?}: {}", out.show());
        assert!(
            out.stderr.contains("***"),
            "{name} {args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .args(["list"])
        .env("LIFEBOAT_LOG_FORMAT", "xml")
        .run();
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr
            .contains("LIFEBOAT_LOG_FORMAT (the variable of --log-format)"),
        "{}",
        out.stderr
    );
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .args(["--log-format", "xml", "list"])
        .run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("'--log-format <LOG_FORMAT>'")
            && !out.stderr.contains("LIFEBOAT_LOG_FORMAT"),
        "{}",
        out.stderr
    );
    // Upper case is what people write in a .env file.
    let out = lifeboat("lifeboat-backup")
        .dir(dir.path())
        .args(["list", "--dir", "backups"])
        .env("LIFEBOAT_LOG_FORMAT", "JSON")
        .run();
    assert_eq!(out.code, 0, "{}", out.show());
    for line in out.stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[test]
fn an_invalid_log_filter_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in CLAP_BINARIES {
        let out = lifeboat(name)
            .dir(dir.path())
            .env("LIFEBOAT_LOG", "lifeboat=loud")
            .run();
        assert_eq!(out.code, 2, "{name}: {}", out.show());
        assert!(
            out.stderr
                .contains("LIFEBOAT_LOG=\"lifeboat=loud\" is not a log filter"),
            "{name}: {}",
            out.stderr
        );
    }
}

/// The targets of a run's JSON log events.
fn targets(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["target"].as_str().unwrap_or_default().to_owned(),
                v["level"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn verbose_says_what_was_chosen_and_dependencies_trace_only_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], log: Option<&str>| {
        let mut cmd = lifeboat("lifeboat-deploy")
            .dir(dir.path())
            .args(args)
            .args(["--log-format", "json", "status"])
            .env("LIFEBOAT_DEPLOY_SERVICES", "app")
            .env("COMPOSE_PROJECT_NAME", "lbtest-no-such-project")
            .inherit(&["DOCKER_HOST"]);
        if let Some(filter) = log {
            cmd = cmd.env("LIFEBOAT_LOG", filter);
        }
        let out = cmd.run();
        assert_ne!(out.code, 2, "{}", out.show());
        targets(&out.stderr)
    };
    let quiet = run(&[], None);
    assert!(
        quiet
            .iter()
            .all(|(_, level)| level != "DEBUG" && level != "TRACE"),
        "{quiet:?}"
    );
    let verbose = run(&["-v"], None);
    assert!(
        verbose
            .iter()
            .any(|(t, level)| t.starts_with("lifeboat") && level == "DEBUG"),
        "-v says nothing of what was found: {verbose:?}"
    );
    let very = run(&["-vv"], None);
    assert!(
        very.iter().all(|(t, _)| t.starts_with("lifeboat")),
        "-vv shows a dependency's events: {very:?}"
    );
    let traced = run(&[], Some("trace"));
    assert!(
        traced.iter().any(|(t, _)| !t.starts_with("lifeboat")),
        "LIFEBOAT_LOG=trace shows no dependency's traces: {traced:?}"
    );
}

#[test]
fn every_binary_completes_in_every_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in CLAP_BINARIES {
        for shell in ["bash", "zsh", "fish"] {
            let out = lifeboat(name)
                .dir(dir.path())
                .args(["completions", shell])
                .run();
            assert_eq!(out.code, 0, "{name} completions {shell}: {}", out.show());
            assert!(
                out.stdout.contains(name) && out.stdout.contains("log-format"),
                "{name} completions {shell}:\n{}",
                out.stdout
            );
        }
        let out = lifeboat(name)
            .dir(dir.path())
            .args(["completions", "tcsh"])
            .run();
        assert_eq!(out.code, 2, "{}", out.show());
    }
}

/// scripts/man writes a man page and three completion scripts for each of the six binaries,
/// and installs them where man and the shells look.
#[test]
fn scripts_man_writes_and_installs_the_pages_and_completions() {
    let root = lifeboat_testkit::workspace_root();
    let prefix = tempfile::tempdir().expect("tempdir");
    // The generator as built for this run (no cargo inside a test: it would rebuild binaries
    // other tests are running).
    let generator = lifeboat_testkit::bin("lifeboat-man");
    let status = std::process::Command::new(root.join("scripts/man"))
        .env("LIFEBOAT_MAN", generator)
        .args(["--install"])
        .arg(prefix.path())
        .env("XDG_DATA_HOME", prefix.path().join("share"))
        .env("XDG_CONFIG_HOME", prefix.path().join("config"))
        .status()
        .expect("scripts/man");
    assert!(status.success());
    let all = CLAP_BINARIES
        .iter()
        .copied()
        .chain(["lifeboat-healthcheck"]);
    for name in all {
        let page = std::fs::read_to_string(prefix.path().join(format!("share/man/man1/{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(
            page.starts_with(".TH") || page.contains("\n.TH"),
            "{name}.1"
        );
        assert!(page.contains(name), "{name}.1");
        for file in [
            format!("share/bash-completion/completions/{name}"),
            format!("share/zsh/site-functions/_{name}"),
            format!("config/fish/completions/{name}.fish"),
        ] {
            let script = std::fs::read_to_string(prefix.path().join(&file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(script.contains(name), "{file}");
        }
    }
}
