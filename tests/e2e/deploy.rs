//! lifeboat-deploy and lifeboat-rollback, run for real on the demo compose stack with the demo
//! images v1, v2 (one more migration) and broken (never healthy): a good deploy, a broken one
//! rolled back by itself, a failing migration that switches nothing, a rollback with data, the
//! deploy lock, SIGTERM and SIGKILL mid-deploy followed by a rerun, and a release built from a
//! git tag with nothing of the working tree in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_testkit::{
    closed_port, docker, docker_ok, http_get, http_response, run, smtp, unique, wait_for,
    DemoStack, HttpFixture, Lifeboat, Reply, Running,
};

#[path = "support/deploy.rs"]
mod deploy_support;
use deploy_support::Ran;

/// The demo stack on a fixed loopback port (so the app keeps its address across switches),
/// migrated and seeded on v1, and a working directory for lifeboat's files.
struct Stack {
    demo: DemoStack,
    port: u16,
}

/// `stack.project`, `stack.work`: the demo stack's.
impl std::ops::Deref for Stack {
    type Target = DemoStack;
    fn deref(&self) -> &DemoStack {
        &self.demo
    }
}

impl Stack {
    fn up(prefix: &str) -> Self {
        let port = closed_port();
        let port_s = port.to_string();
        let demo = DemoStack::build("v1")
            .prefix(prefix)
            .env("APP_PORT", &port_s)
            .up();
        let stack = Self { demo, port };
        wait_for("the app healthy on v1", Duration::from_mins(1), || {
            (stack.health() == Some(200)).then_some(())
        });
        let spec = format!(
            "[environments.test]\nbase-url = \"http://127.0.0.1:{port}\"\n\n\
             [[check]]\nname = \"health\"\nurl = \"/api/health\"\nwait = \"10s\"\nexpect.status = 200\n\n\
             [[check]]\nname = \"version\"\nurl = \"/api/version\"\nexpect.json = [{{ pointer = \"/version\", type = \"string\" }}]\n"
        );
        std::fs::write(stack.work.path().join("smoke.toml"), spec).expect("smoke.toml");
        stack
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn health(&self) -> Option<u16> {
        http_get(&self.address(), "/api/health")
            .ok()
            .map(|(s, _)| s)
    }

    /// `/api/version`: (version, schema).
    fn version(&self) -> (String, i64) {
        let (status, body) = http_get(&self.address(), "/api/version").expect("GET /api/version");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        (
            v["version"].as_str().unwrap_or_default().to_owned(),
            v["schema"].as_i64().unwrap_or(-1),
        )
    }

    /// The containers of the project: (name, running image reference).
    fn containers(&self) -> Vec<(String, String)> {
        let out = self.demo.containers("\t");
        out.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_owned(), format!("{} {}", f.next()?, f.next()?)))
            })
            .collect()
    }

    fn app_id(&self) -> String {
        self.project.ok(&["ps", "-q", "app"])
    }

    fn command(&self, binary: &str, args: &[&str], extra: &[(&str, &str)]) -> Lifeboat {
        deploy_support::command(binary, args, self.work.path(), &self.project.name)
            .env("LIFEBOAT_ENV", "test")
            .envs(extra.iter().copied())
    }

    fn run(&self, binary: &str, args: &[&str], extra: &[(&str, &str)]) -> Ran {
        self.command(binary, args, extra).run()
    }

    fn deploy(&self, args: &[&str]) -> Ran {
        self.run("lifeboat-deploy", args, &[])
    }

    fn history(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.work.path().join("state/history.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a history line is JSON"))
            .collect()
    }

    /// Wait until a switch is under way: the old app container renamed aside.
    fn wait_switching(&self) {
        wait_for("the switch under way", Duration::from_mins(2), || {
            self.containers()
                .iter()
                .any(|(n, _)| n.ends_with("_lifeboat_prev"))
                .then_some(())
        });
    }
}

/// The app serves `version`, healthy, with one app and one worker container, nothing left aside.
fn assert_serves(stack: &Stack, version: &str, why: &str) {
    wait_for("the app healthy", Duration::from_secs(30), || {
        (stack.health() == Some(200)).then_some(())
    });
    assert_eq!(stack.version().0, version, "{why}");
    let containers = stack.containers();
    let apps: Vec<_> = containers
        .iter()
        .filter(|(n, _)| n.contains("_app_") || n.contains("-app-"))
        .collect();
    let workers: Vec<_> = containers
        .iter()
        .filter(|(n, _)| n.contains("_worker_") || n.contains("-worker-"))
        .collect();
    assert_eq!(apps.len(), 1, "{why}: one app container: {containers:?}");
    assert_eq!(
        workers.len(),
        1,
        "{why}: one worker container: {containers:?}"
    );
    for (name, state) in apps.iter().chain(&workers) {
        assert!(state.ends_with("running"), "{why}: {name} is {state}");
        assert!(!name.ends_with("_lifeboat_prev"), "{why}: {containers:?}");
    }
    let migrations = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={}_lifeboat_migrate", stack.project.name),
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        migrations.is_empty(),
        "{why}: a migration container was left: {migrations}"
    );
}

#[test]
fn deploy_rollback_on_failure_a_failing_migration_and_a_rollback_with_data() {
    let stack = Stack::up("lbtest-deploy-");
    stack.sql("INSERT INTO businesses (name) VALUES ('before-v2')");

    // Bad input: exit 2 naming what is wrong, nothing done.
    let unknown = stack.deploy(&["v9-does-not-exist"]);
    assert_eq!(unknown.code, 2, "{}", unknown.show());
    assert!(
        unknown
            .stderr
            .contains("lifeboat-demo/app:v9-does-not-exist")
            && unknown.stderr.contains("LIFEBOAT_DEPLOY_GIT_REPO"),
        "{}",
        unknown.show()
    );
    let unconfigured = stack.run(
        "lifeboat-deploy",
        &["v2"],
        &[("LIFEBOAT_DEPLOY_SERVICES", "")],
    );
    assert_eq!(unconfigured.code, 2, "{}", unconfigured.show());
    assert!(
        unconfigured.stderr.contains("LIFEBOAT_DEPLOY_SERVICES"),
        "{}",
        unconfigured.show()
    );
    let misspelt = stack.run(
        "lifeboat-deploy",
        &["v2"],
        &[("LIFEBOAT_DEPLOY_WORKERS", "wrker")],
    );
    assert_eq!(misspelt.code, 2, "{}", misspelt.show());
    assert!(
        misspelt.stderr.contains("no container of service wrker"),
        "{}",
        misspelt.show()
    );
    let before = stack.app_id();

    // --dry-run prints the plan and changes nothing.
    let plan = stack.deploy(&["v2", "--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.show());
    assert!(
        plan.stdout.contains("deploy v2") && plan.stdout.contains("lifeboat-demo-app migrate"),
        "{}",
        plan.show()
    );
    assert_eq!(stack.app_id(), before);
    assert!(stack.history().is_empty());

    let backup = deploys_v2(&stack);
    broken_is_rolled_back(&stack);
    a_failing_migration_switches_nothing(&stack);
    rolls_back_with_data(&stack, &backup);
}

/// v1 → v2; returns the pre-deploy backup.
fn deploys_v2(stack: &Stack) -> String {
    // v1 → v2: backup, migration 4, both services switched, smoke tests, history.
    let v2 = stack.deploy(&["v2"]);
    assert_eq!(v2.code, 0, "{}", v2.show());
    assert!(
        v2.stdout.starts_with("deployed\tv2\tsha256:"),
        "{}",
        v2.show()
    );
    assert_serves(stack, "v2", "after deploying v2");
    assert_eq!(stack.version().1, 4, "migration 4 applied");
    let worker_image = docker_ok(&[
        "inspect",
        "-f",
        "{{.Config.Image}}",
        &stack.project.ok(&["ps", "-q", "worker"]),
    ]);
    assert_eq!(
        worker_image, "lifeboat-demo/app:v2",
        "the worker is switched too"
    );
    let h = stack.history();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["action"], "deploy");
    assert_eq!(h[0]["version"], "v2");
    assert_eq!(h[0]["outcome"], "deployed");
    assert_eq!(h[0]["migrated"], true);
    assert_eq!(h[0]["previous"]["version"], "v1");
    let backup = h[0]["backup"]
        .as_str()
        .expect("a pre-deploy backup")
        .to_owned();
    assert!(
        stack.work.path().join("backups").join(&backup).exists(),
        "{backup}"
    );
    assert!(
        h[0]["env_hash"].as_str().is_some_and(|s| s.len() == 16),
        "{h:?}"
    );
    let status = stack.deploy(&["status"]);
    assert_eq!(status.code, 0, "{}", status.show());
    assert!(
        status.stdout.contains("app\t") && status.stdout.contains("\tv2\t"),
        "{}",
        status.show()
    );

    backup
}

fn broken_is_rolled_back(stack: &Stack) {
    // Data written on v2, which a rollback with data must take away.
    stack.sql("INSERT INTO businesses (name, plan) VALUES ('after-v2', 'pro')");

    // broken never becomes healthy: rolled back to v2 by itself, exit 3.
    // With deploy.restore-on-failure, the migrations having run, the pre-deploy backup is
    // restored too.
    let broken = stack.run(
        "lifeboat-deploy",
        &["broken"],
        &[("LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE", "true")],
    );
    assert_eq!(broken.code, 3, "{}", broken.show());
    assert!(
        broken.stderr.contains("the pre-deploy backup backup_")
            && broken.stderr.contains("was restored"),
        "{}",
        broken.show()
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name = 'after-v2'"),
        "1",
        "the backup was taken after it"
    );
    assert_eq!(stack.history().last().expect("entry")["restored"], true);
    // The database from before the restore is kept on the server, as a restore keeps it.
    let kept = stack
        .sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'demo\\_\\_pre\\_restore\\_%'");
    assert_eq!(kept, "1", "one <db>__pre_restore_* database");
    // Without deploy.health-url, "serves again" rests on the smoke spec's `health` check.
    assert!(
        broken
            .stderr
            .contains("v2 passes the `health` check of smoke.toml")
            && broken.stderr.contains("v2 serves again"),
        "{}",
        broken.show()
    );
    assert!(broken.stdout.is_empty(), "{}", broken.show());
    assert_serves(stack, "v2", "after the broken deploy");
    let h = stack.history();
    assert_eq!(h.last().expect("entry")["outcome"], "rolled-back", "{h:?}");
    assert_eq!(h.last().expect("entry")["version"], "broken");
}

fn a_failing_migration_switches_nothing(stack: &Stack) {
    // A failing migration (v1 refuses schema 4) switches nothing.
    let app = stack.app_id();
    let v1 = stack.deploy(&["v1", "--no-backup"]);
    assert_eq!(v1.code, 1, "{}", v1.show());
    assert!(
        v1.stderr.contains("migrations of v1 failed")
            && v1.stderr.contains("newer than this build knows"),
        "{}",
        v1.show()
    );
    assert_eq!(stack.app_id(), app, "the app container was not touched");
    assert_serves(stack, "v2", "after the failed migration");
    assert_eq!(stack.history().last().expect("entry")["outcome"], "failed");
}

fn rolls_back_with_data(stack: &Stack, backup: &str) {
    // The releases: v2 current, v1 with the backup of its data.
    let list = stack.run("lifeboat-rollback", &["list"], &[]);
    assert_eq!(list.code, 0, "{}", list.show());
    assert!(
        list.stdout.lines().any(|l| l.starts_with("*\tv2\t")),
        "{}",
        list.show()
    );
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with(" \tv1\t") && l.ends_with(&backup)),
        "{}",
        list.show()
    );

    // --with-data without a terminal and without --yes: refused, nothing done.
    let asked = stack.run("lifeboat-rollback", &["--with-data"], &[]);
    assert_eq!(asked.code, 2, "{}", asked.show());
    assert!(asked.stderr.contains("--yes"), "{}", asked.show());
    assert_serves(stack, "v2", "after the refused rollback");

    // Back to the previous release (v1) with its data: the pre-v2 schema and rows.
    let back = stack.run("lifeboat-rollback", &["--with-data", "--yes"], &[]);
    assert_eq!(back.code, 0, "{}", back.show());
    assert!(
        back.stdout.starts_with("rolled back\tv1\t"),
        "{}",
        back.show()
    );
    assert_serves(stack, "v1", "after the rollback with data");
    assert_eq!(stack.version().1, 3, "the pre-v2 schema");
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name = 'before-v2'"),
        "1"
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name = 'after-v2'"),
        "0"
    );
    let entry = stack.history().last().cloned().expect("entry");
    assert_eq!(entry["action"], "rollback");
    assert_eq!(entry["outcome"], "done");
    assert_eq!(entry["restored"], true);
    let status = stack.deploy(&["status"]);
    assert_eq!(status.code, 0, "{}", status.show());
    let listed = stack.run("lifeboat-rollback", &["list"], &[]);
    assert!(
        listed.stdout.lines().any(|l| l.starts_with("*\tv1\t")),
        "{}",
        listed.show()
    );
    let history = stack.deploy(&["history"]);
    assert_eq!(history.stdout.lines().count(), 4, "{}", history.show());
}

/// `lifeboat-deploy VERSION --no-backup` in the background, a minute to become healthy.
fn spawn_deploy(stack: &Stack, version: &str) -> Running {
    stack
        .command(
            "lifeboat-deploy",
            &[version, "--no-backup"],
            &[("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "60")],
        )
        .spawn()
}

#[test]
fn the_lock_refuses_a_second_deploy_and_sigterm_or_sigkill_mid_deploy_end_consistent() {
    let stack = Stack::up("lbtest-deploy-sig-");

    // A deploy of broken waits for its health; meanwhile a second deploy is refused.
    let mut first = spawn_deploy(&stack, "broken");
    stack.wait_switching();
    let second = stack.deploy(&["v2", "--no-backup"]);
    assert_eq!(second.code, 1, "{}", second.show());
    assert!(
        second.stderr.contains("already running") && second.stderr.contains("lifeboat-deploy"),
        "{}",
        second.show()
    );

    // SIGTERM mid-switch: the deploy stops, puts v1 back and says so (exit 3).
    first.signal("TERM");
    let ran = first.wait();
    let stderr = ran.stderr;
    assert_eq!(ran.code, 3, "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_serves(&stack, "v1", "after SIGTERM mid-deploy");
    assert!(!stack.work.path().join("state/journal.json").exists());

    // SIGKILL mid-switch: the journal stays; status says the stack is not right; the next
    // run brings v1 back first, records it, and then deploys.
    let mut killed = spawn_deploy(&stack, "broken");
    stack.wait_switching();
    killed.signal("KILL");
    killed.wait();
    assert!(
        stack.work.path().join("state/journal.json").exists(),
        "the journal outlives a SIGKILL"
    );
    // A dry run only says what the next run would undo first.
    let plan = stack.deploy(&["v2", "--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.show());
    assert!(
        plan.stdout.contains("the interrupted deploy of broken")
            && plan.stderr.contains("the deploy lock was left by `"),
        "{}",
        plan.show()
    );
    assert!(
        stack.work.path().join("state/journal.json").exists(),
        "a dry run undoes nothing"
    );
    let v2 = stack.deploy(&["v2", "--no-backup"]);
    assert_eq!(v2.code, 0, "{}", v2.show());
    assert!(
        v2.stderr.contains("did not finish") && v2.stderr.contains("bringing the stack back to v1"),
        "{}",
        v2.show()
    );
    assert_serves(&stack, "v2", "after the rerun");
    let outcomes: Vec<String> = stack
        .history()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["version"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        ["broken rolled-back", "broken interrupted", "v2 deployed"],
        "{outcomes:?}"
    );
}

/// A git repository of the "app": a Dockerfile over the demo image, tagged, with a dirty
/// working tree that must not reach the build.
fn app_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("app-repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let git = |args: &[&str]| {
        let out = run(Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t"));
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::write(
        repo.join("Dockerfile"),
        "FROM lifeboat-demo/app:v1\nENV DEMO_VERSION=v2\n",
    )
    .expect("write");
    git(&["add", "Dockerfile"]);
    git(&["commit", "-qm", "v2 from git"]);
    git(&["tag", "release-2"]);
    // Uncommitted: a build from the working tree would be broken.
    std::fs::write(
        repo.join("Dockerfile"),
        "FROM lifeboat-demo/app:v1\nENV DEMO_VERSION=broken\n",
    )
    .expect("write");
    repo
}

/// A deploy's JSON events, its webhook POST and its mail.
fn assert_told(built: &Ran, hook: &HttpFixture, smtp: &lifeboat_testkit::SmtpStack) {
    let steps: Vec<String> = built
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .filter_map(|v| {
            v["fields"]["step"]
                .as_str()
                .or(v["step"].as_str())
                .map(str::to_owned)
        })
        .collect();
    for step in [
        "plan",
        "building",
        "image",
        "migrating",
        "switching",
        "switched",
        "smoke",
        "done",
    ] {
        assert!(
            steps.iter().any(|s| s == step),
            "no {step} event in {steps:?}\n{}",
            built.show()
        );
    }
    let posted = hook.requests();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert!(
        posted[0].starts_with("POST /hooks/deploy-token-123")
            && posted[0].contains("\"outcome\": \"deployed\"")
            && posted[0].contains("release-2"),
        "{posted:?}"
    );
    assert!(
        !built.stderr.contains("deploy-token-123"),
        "the webhook's path is a secret: {}",
        built.show()
    );
    let mail = smtp.wait_for_message("release-2 deployed");
    assert!(mail.contains("ops@demo.test"), "{mail}");
}

#[test]
fn a_release_is_built_from_a_clean_export_of_its_git_tag() {
    let stack = Stack::up("lbtest-deploy-git-");
    let repo = app_repo(stack.work.path());
    let image = unique("lbtest-deploy-img-");
    let repo_s = repo.display().to_string();
    let env = [
        ("LIFEBOAT_DEPLOY_GIT_REPO", repo_s.as_str()),
        ("LIFEBOAT_DEPLOY_IMAGE", image.as_str()),
    ];
    let missing = stack.run("lifeboat-deploy", &["no-such-tag"], &env);
    assert_eq!(missing.code, 2, "{}", missing.show());
    assert!(
        missing.stderr.contains("not a tag or commit"),
        "{}",
        missing.show()
    );

    // The outcome goes to a webhook and by mail; the story is JSON, one event per line.
    let hook = HttpFixture::start(Reply::Raw(http_response("200 OK", "", "ok")));
    let hook_url = hook.url("/hooks/deploy-token-123");
    let smtp = smtp();
    let smtp_port = smtp.plain_port.to_string();
    let mut env = env.to_vec();
    env.extend([
        ("LIFEBOAT_DEPLOY_WEBHOOK_URL", hook_url.as_str()),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", smtp_port.as_str()),
        ("SMTP_FROM", "lifeboat@demo.test"),
        ("LIFEBOAT_MAIL_TO", "ops@demo.test"),
    ]);
    // deploy.health-url is checked too: one that never answers fails the switch. v1's
    // containers are put back healthy, but the URL where users reach the app does not answer
    // either, so lifeboat does not say v1 serves: exit 1, the journal kept for the next run.
    let refused = lifeboat_testkit::refused_port();
    let closed = format!("http://127.0.0.1:{}/health", refused.port);
    let unreachable = stack.run(
        "lifeboat-deploy",
        &["v2", "--no-backup"],
        &[
            ("LIFEBOAT_DEPLOY_HEALTH_URL", closed.as_str()),
            ("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "5"),
        ],
    );
    assert_eq!(unreachable.code, 1, "{}", unreachable.show());
    assert!(
        unreachable
            .stderr
            .contains("did not become healthy within 5 s")
            && unreachable
                .stderr
                .contains("the containers of v1 are healthy, but users do not reach it")
            && stack.work.path().join("state/journal.json").exists(),
        "{}",
        unreachable.show()
    );
    assert_serves(&stack, "v1", "after a health URL that never answered");

    let built = stack.run(
        "lifeboat-deploy",
        &["release-2", "--no-backup", "--log-format", "json"],
        &env,
    );
    let cleanup = || {
        for tag in ["release-2", "lifeboat-release-2"] {
            let _ = docker(&["rmi", "-f", &format!("{image}:{tag}")]);
        }
    };
    if built.code != 0 {
        cleanup();
    }
    assert_eq!(built.code, 0, "{}", built.show());
    assert_serves(&stack, "v2", "the tag's Dockerfile, not the working tree's");
    assert_told(&built, &hook, &smtp);
    let revision = docker_ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"org.opencontainers.image.revision\"}}",
        &format!("{image}:release-2"),
    ]);
    let head = String::from_utf8_lossy(
        &run(Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "release-2"]))
        .stdout,
    )
    .trim()
    .to_owned();
    assert_eq!(revision, head);
    let kept = docker(&["image", "inspect", &format!("{image}:lifeboat-release-2")]);
    // The app must leave the image before it can be removed.
    stack.project.ok(&["rm", "-sf", "app", "worker"]);
    cleanup();
    assert!(
        kept.status.success(),
        "the release's image is kept under lifeboat's own tag"
    );
}

/// Send SIG`signal` to a paused deploy and wait (two minutes at most) for it to end: its exit
/// status and all it said.
fn signal_and_wait(
    (mut deploy, _said): (Running, std::sync::Arc<std::sync::Mutex<String>>),
    signal: &str,
) -> (std::process::ExitStatus, String) {
    deploy.signal(signal);
    wait_for("the deploy to end", Duration::from_mins(2), || {
        deploy.has_exited().then_some(())
    });
    let ran = deploy.wait();
    (ran.status, ran.stderr)
}

/// Whether the app container runs the image `reference` names (by image id).
fn app_runs(stack: &Stack, reference: &str) -> bool {
    let running = docker_ok(&["inspect", "-f", "{{.Image}}", &stack.app_id()]);
    running == docker_ok(&["image", "inspect", "-f", "{{.Id}}", reference])
}

/// `lifeboat-deploy v2 --no-backup` paused at `step` (the test hook), once it says so; what it
/// says on stderr is collected as it comes. Its health timeout is ten minutes: a deploy that
/// ignored a signal would take that long.
fn paused_deploy(stack: &Stack, step: &str) -> (Running, std::sync::Arc<std::sync::Mutex<String>>) {
    let mut child = stack
        .command(
            "lifeboat-deploy",
            &["v2", "--no-backup"],
            &[
                ("LBTEST_DEPLOY_PAUSE_AT", step),
                ("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "600"),
            ],
        )
        .spawn();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let lines = child.stderr_lines();
    let into = std::sync::Arc::clone(&said);
    std::thread::spawn(move || {
        for line in lines {
            let mut s = into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.push_str(&line);
            s.push('\n');
        }
    });
    let marker = format!("paused at step {step}");
    wait_for(&marker, Duration::from_mins(2), || {
        said.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&marker)
            .then_some(())
    });
    (child, said)
}

#[test]
fn a_signal_at_each_step_of_a_deploy_is_obeyed_and_the_previous_release_serves() {
    let stack = Stack::up("lbtest-deploy-steps-");
    // Before the migration runs: nothing deployed (1); during the switch and at the smoke
    // tests: rolled back (3). SIGINT as from Ctrl-C, SIGTERM as from CI or docker stop.
    for (step, signal, code) in [
        ("migrating", "TERM", 1),
        ("switching", "INT", 3),
        ("smoke", "TERM", 3),
    ] {
        let paused = paused_deploy(&stack, step);
        // Obeyed, not waited out: far sooner than the ten-minute health timeout.
        let (status, said) = signal_and_wait(paused, signal);
        assert_eq!(status.code(), Some(code), "{step} SIG{signal}: {said}");
        assert!(
            said.contains(&format!("stopped by SIG{signal}")),
            "{step}: {said}"
        );
        assert_serves(&stack, "v1", &format!("after SIG{signal} at {step}"));
        assert!(
            app_runs(&stack, "lifeboat-demo/app:v1"),
            "{step}: the v1 image"
        );
        if step == "migrating" {
            assert_eq!(stack.version().1, 3, "the migration never ran");
        }
        assert!(
            !stack.work.path().join("state/journal.json").exists(),
            "{step}"
        );
    }
    let outcomes: Vec<String> = stack
        .history()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        ["failed", "rolled-back", "rolled-back"],
        "{outcomes:?}"
    );
}

#[test]
fn a_failed_backup_or_smoke_test_leaves_v1_and_a_rollback_goes_to_a_named_release() {
    let stack = Stack::up("lbtest-deploy-fail-");
    let app = stack.app_id();

    // The pre-deploy backup fails (its directory is a file): nothing deployed, exit 1.
    let not_a_dir = stack.work.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "a file").expect("file");
    let failed = stack.run(
        "lifeboat-deploy",
        &["v2"],
        &[("LIFEBOAT_BACKUP_DIR", not_a_dir.to_str().expect("utf-8"))],
    );
    assert_eq!(failed.code, 1, "{}", failed.show());
    assert!(
        failed
            .stderr
            .contains("the pre-deploy backup failed; nothing was deployed"),
        "{}",
        failed.show()
    );
    assert_eq!(stack.app_id(), app, "not touched");
    assert_eq!(stack.version(), ("v1".to_owned(), 3), "no migration either");

    // The smoke tests fail after the switch: rolled back to v1, exit 3.
    let spec = stack.work.path().join("failing-smoke.toml");
    std::fs::write(
        &spec,
        format!(
            "[environments.test]\nbase-url = \"http://127.0.0.1:{}\"\n\n\
             [[check]]\nname = \"teapot\"\nurl = \"/api/health\"\nexpect.status = 418\n",
            stack.port
        ),
    )
    .expect("spec");
    let smoked = stack.run(
        "lifeboat-deploy",
        &["v2", "--no-backup"],
        &[("LIFEBOAT_DEPLOY_SMOKE_SPEC", spec.to_str().expect("utf-8"))],
    );
    assert_eq!(smoked.code, 3, "{}", smoked.show());
    assert!(smoked.stderr.contains("teapot"), "{}", smoked.show());
    assert_serves(&stack, "v1", "after the failed smoke tests");
    assert!(app_runs(&stack, "lifeboat-demo/app:v1"), "the v1 image");
    assert_eq!(
        stack.history().last().expect("entry")["outcome"],
        "rolled-back"
    );

    // A good deploy, then back to v1 by name, without data: the schema stays.
    let v2 = stack.deploy(&["v2", "--no-backup"]);
    assert_eq!(v2.code, 0, "{}", v2.show());
    assert_serves(&stack, "v2", "after deploying v2");
    let back = stack.run("lifeboat-rollback", &["v1"], &[]);
    assert_eq!(back.code, 0, "{}", back.show());
    assert!(
        back.stdout.starts_with("rolled back\tv1\t"),
        "{}",
        back.show()
    );
    assert_serves(&stack, "v1", "after the rollback by name");
    assert_eq!(
        stack.version().1,
        4,
        "without --with-data the data stays as it is"
    );
    let entry = stack.history().last().cloned().expect("entry");
    assert_eq!(entry["action"], "rollback");
    assert_eq!(entry["restored"], false);

    // A release that is not in the history: exit 2, naming it, nothing done.
    let app = stack.app_id();
    let unknown = stack.run("lifeboat-rollback", &["v9"], &[]);
    assert_eq!(unknown.code, 2, "{}", unknown.show());
    assert!(
        unknown
            .stderr
            .contains("v9 is not a release in the history"),
        "{}",
        unknown.show()
    );
    assert_eq!(stack.app_id(), app);
}

/// Image references removed when dropped: declared before the stack, dropped after it (its
/// containers gone), so that the images really go.
struct Untag(Vec<String>);

impl Drop for Untag {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker(&["rmi", "-f", image]);
        }
    }
}

/// A release of the test's own: v1's files under another image id (a label), tagged
/// `lifeboat-demo/app:VERSION`, so that removing it harms no other test; its reference.
fn own_release(version: &str) -> String {
    let image = format!("lifeboat-demo/app:{version}");
    let mut build = Command::new("docker");
    build
        .args(["build", "-q", "-t", &image, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = build.spawn().expect("docker build");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        format!("FROM lifeboat-demo/app:v1\nLABEL lbtest.release=\"{version}\"\n").as_bytes(),
    )
    .expect("Dockerfile");
    assert!(child.wait().expect("build").success(), "docker build");
    image
}

#[test]
fn keep_releases_removes_the_tags_of_older_releases_only() {
    let versions: Vec<String> = (0..3).map(|_| unique("keep-")).collect();
    let images: Vec<String> = versions.iter().map(|v| own_release(v)).collect();
    let _untag = Untag(
        versions
            .iter()
            .map(|v| format!("lifeboat-demo/app:lifeboat-{v}"))
            .chain(images.iter().cloned())
            .collect(),
    );
    let stack = Stack::up("lbtest-deploy-keep-");
    let kept = |v: &str| {
        docker(&[
            "image",
            "inspect",
            &format!("lifeboat-demo/app:lifeboat-{v}"),
        ])
        .status
        .success()
    };
    for (i, v) in versions.iter().enumerate() {
        let keep = if i == 2 { "2" } else { "5" };
        let ran = stack.run(
            "lifeboat-deploy",
            &[v, "--no-backup"],
            &[("LIFEBOAT_DEPLOY_KEEP_RELEASES", keep)],
        );
        assert_eq!(ran.code, 0, "{}", ran.show());
        if i == 2 {
            assert!(
                ran.stderr.contains(&format!(
                    "removed the tag lifeboat-demo/app:lifeboat-{}",
                    versions[0]
                )),
                "{}",
                ran.show()
            );
        }
    }
    // The last two releases keep lifeboat's tag (what a rollback needs); the oldest lost it,
    // and its image is still there under its own tag.
    assert!(!kept(&versions[0]), "the oldest release's tag is removed");
    assert!(
        kept(&versions[1]) && kept(&versions[2]),
        "the last two keep theirs"
    );
    assert!(docker(&["image", "inspect", &images[0]]).status.success());
    assert_serves(&stack, "v1", "the last release (v1's files)");
    for (v, image) in versions.iter().zip(&images) {
        let _ = docker(&[
            "rmi",
            "-f",
            image,
            &format!("lifeboat-demo/app:lifeboat-{v}"),
        ]);
    }
}

#[test]
fn a_rollback_to_a_release_whose_image_is_gone_says_so_and_touches_nothing() {
    // A release of its own (v1's files, another image id), so that removing it harms no
    // other test.
    let version = unique("gone-");
    let image = own_release(&version);
    let stack = Stack::up("lbtest-deploy-gone-");
    let deployed = stack.deploy(&[&version, "--no-backup"]);
    assert_eq!(deployed.code, 0, "{}", deployed.show());
    let back = stack.deploy(&["v1", "--no-backup"]);
    assert_eq!(back.code, 0, "{}", back.show());
    let app = stack.app_id();
    // The image and lifeboat's own tag of it are removed.
    for tag in [
        image.clone(),
        format!("lifeboat-demo/app:lifeboat-{version}"),
    ] {
        let _ = docker(&["rmi", "-f", &tag]);
    }
    let gone = stack.run("lifeboat-rollback", &[&version], &[]);
    assert_eq!(gone.code, 1, "{}", gone.show());
    assert!(
        gone.stderr.contains("is no longer on this engine")
            && gone.stderr.contains(&format!("lifeboat-deploy {version}")),
        "{}",
        gone.show()
    );
    assert_serves(&stack, "v1", "after the refused rollback");
    assert_eq!(stack.app_id(), app, "nothing was touched");
}

#[test]
fn a_rollback_that_cannot_put_the_previous_release_back_says_so_and_keeps_the_journal() {
    // The previous release is one of the test's own, so that its image can be taken away.
    let version = unique("prev-");
    let image = own_release(&version);
    let _untag = Untag(vec![
        image.clone(),
        format!("lifeboat-demo/app:lifeboat-{version}"),
    ]);
    let stack = Stack::up("lbtest-deploy-putback-");
    let first = stack.deploy(&[&version, "--no-backup"]);
    assert_eq!(first.code, 0, "{}", first.show());

    // v2 is live and at its smoke tests; meanwhile the previous release's image goes away;
    // then the deploy is stopped: the rollback cannot put it back.
    let (deploy, said) = paused_deploy(&stack, "smoke");
    for tag in [
        image.clone(),
        format!("lifeboat-demo/app:lifeboat-{version}"),
    ] {
        let _ = docker(&["rmi", "-f", &tag]);
    }
    let (status, said) = signal_and_wait((deploy, said), "TERM");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("rolling back to {version} failed too"))
            && said.contains("is no longer on this engine"),
        "{said}"
    );
    assert!(
        stack.work.path().join("state/journal.json").exists(),
        "the journal is kept for the next run"
    );
    // Nothing lost: the new release still serves.
    assert_eq!(stack.health(), Some(200));
    assert_eq!(stack.version().0, "v2");
}
