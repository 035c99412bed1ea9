//! The six binaries on Docker Swarm: the demo app as a stack (tests/swarm/stack.yml: nginx in
//! front, app with 2 replicas, worker, postgres, redis) on the single-node swarm that
//! `scripts/test` initialises on loopback and leaves again. The test machine's kernel has no
//! IPVS, so no virtual IPs and no routing mesh: the stack uses `endpoint_mode: dnsrr` and nginx
//! publishes in host mode.
//!
//! Backup and restore of the stack's database (exec into its task, and the one-off container
//! path a database task on another node takes, forced here); a deploy v1 → v2 with its
//! migration as a Swarm job while a request loop counts failed requests through nginx; a broken release rolled back across every service (exit 3); `rollback --with-data`;
//! SIGTERM in the middle of an update.

#[path = "support/deploy.rs"]
mod deploy_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deploy_support::Ran;
use lifeboat_testkit::{
    closed_port, docker_ok, gunzip, http_get, wait_for, Background, Lifeboat, SwarmStack,
};

/// `binary args` on `stack`: the deploy settings of the demo app, the stack named, the engine
/// found (not forced) unless `extra` forces it.
fn command(stack: &SwarmStack, binary: &str, args: &[&str], extra: &[(&str, &str)]) -> Lifeboat {
    deploy_support::command(binary, args, stack.work.path(), "lbswarm-no-such-project")
        .env("LIFEBOAT_STACK", &stack.name)
        .env("LIFEBOAT_ENV", "test")
        .envs(extra.iter().copied())
}

fn run(stack: &SwarmStack, binary: &str, args: &[&str], extra: &[(&str, &str)]) -> Ran {
    command(stack, binary, args, extra).run()
}

/// The single archive `ran` (a backup) printed on stdout, unpacked.
fn archive_sql(stack: &SwarmStack, ran: &Ran) -> String {
    let name = ran
        .stdout
        .lines()
        .find_map(|l| l.split('\t').find(|f| f.ends_with(".sql.gz")))
        .unwrap_or_else(|| panic!("no archive named: {}", ran.show()));
    let path = std::path::Path::new(name);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        stack
            .work
            .path()
            .join("backups")
            .join(path.file_name().expect("name"))
    };
    gunzip(&path)
}

/// No one-off container of lifeboat's is left on the engine.
fn assert_no_oneoff_left() {
    let left = docker_ok(&["ps", "-aq", "--filter", "label=lifeboat.oneoff"]);
    assert!(left.is_empty(), "one-off containers left: {left}");
}

#[test]
fn a_stack_s_database_is_backed_up_from_its_task_or_a_one_off_container_and_restored() {
    let stack = SwarmStack::up("v1");
    stack.sql("CREATE TABLE lb_marker (v text); INSERT INTO lb_marker VALUES ('before')");

    // Found by its label (LIFEBOAT_STACK only, the engine not forced); pg_dump in its task.
    let local = run(&stack, "lifeboat-backup", &[], &[]);
    assert_eq!(local.code, 0, "{}", local.show());
    assert!(
        local
            .stderr
            .contains(&format!("driving Swarm stack `{}`", stack.name)),
        "{}",
        local.show()
    );
    assert!(archive_sql(&stack, &local).contains("before"), "the row");

    // A database task on another node: a one-off container of its image on the stack's
    // network, removed afterwards (forced here: one node).
    std::thread::sleep(Duration::from_secs(1));
    let oneoff = run(
        &stack,
        "lifeboat-backup",
        &[],
        &[("LIFEBOAT_SWARM_ONEOFF", "true")],
    );
    assert_eq!(oneoff.code, 0, "{}", oneoff.show());
    assert!(
        oneoff.stderr.contains("one-off container"),
        "{}",
        oneoff.show()
    );
    assert!(archive_sql(&stack, &oneoff).contains("before"), "the row");
    assert_no_oneoff_left();

    // Restore: the app and the worker scaled to 0 for the swap, and back to 2 and 1.
    stack.sql("UPDATE lb_marker SET v = 'after'");
    let backup = local
        .stdout
        .lines()
        .find_map(|l| l.split('\t').find(|f| f.ends_with(".sql.gz")))
        .expect("archive")
        .to_owned();
    let restored = run(
        &stack,
        "lifeboat-restore",
        &["--yes", &backup],
        &[("LIFEBOAT_SWARM_ONEOFF", "true")],
    );
    assert_eq!(restored.code, 0, "{}", restored.show());
    assert!(
        restored.stderr.contains("scaled") && restored.stderr.contains("(2 replicas)"),
        "{}",
        restored.show()
    );
    assert_eq!(stack.sql("SELECT v FROM lb_marker"), "before");
    assert_eq!(
        stack.inspect("app", "{{.Spec.Mode.Replicated.Replicas}}"),
        "2"
    );
    stack.wait_running("app");
    stack.wait_running("worker");
    assert_no_oneoff_left();

    // A global service that uses the database cannot be scaled to 0: refused before anything
    // is touched, saying what to do.
    stack.sql("UPDATE lb_marker SET v = 'after'");
    docker_ok(&[
        "service",
        "create",
        "--detach",
        "--mode",
        "global",
        "--name",
        &stack.service("reports"),
        "--label",
        &format!("com.docker.stack.namespace={}", stack.name),
        "--env",
        "PGDATABASE=demo",
        "lifeboat-test/redis:7",
    ]);
    let refused = run(&stack, "lifeboat-restore", &["--yes", &backup], &[]);
    assert_eq!(refused.code, 2, "{}", refused.show());
    assert!(
        refused.stderr.contains("is global")
            && refused.stderr.contains("LIFEBOAT_RESTORE_APP_SERVICES"),
        "{}",
        refused.show()
    );
    assert_eq!(
        stack.sql("SELECT v FROM lb_marker"),
        "after",
        "nothing restored"
    );
    assert_eq!(
        stack.inspect("app", "{{.Spec.Mode.Replicated.Replicas}}"),
        "2"
    );
}

/// Requests to the app through nginx, every 20 ms until stopped: (sent, failed).
struct RequestLoop {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RequestLoop {
    fn start(address: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                if !matches!(http_get(&address, "/api/health"), Ok((200, _))) {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Every task of the app and the worker that should run is on `version`'s image, and the app
/// answers through nginx with that version.
fn assert_serves(stack: &SwarmStack, version: &str, why: &str) {
    for service in ["app", "worker"] {
        let images = stack.task_images(service);
        assert!(
            !images.is_empty()
                && images.iter().all(|i| i.ends_with(&format!(":{version}"))
                    || i.ends_with(&format!(":lifeboat-{version}"))),
            "{why}: {service} runs {images:?}, not {version}"
        );
    }
    let address = stack.address();
    wait_for(
        &format!("{version} answering ({why})"),
        Duration::from_mins(1),
        || {
            let (status, body) = http_get(&address, "/api/version").ok()?;
            (status == 200 && body.contains(&format!("\"{version}\""))).then_some(())
        },
    );
}

/// A registry (Debian's docker-registry, which scripts/test installs) on a loopback port, which
/// the engine pushes to without TLS: its address, and the process, stopped when dropped.
fn registry(stack: &SwarmStack) -> (String, Background) {
    let address = format!("127.0.0.1:{}", closed_port());
    let config = stack.work.path().join("registry.yml");
    let storage = stack.work.path().join("registry");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            storage.display()
        ),
    )
    .expect("registry.yml");
    let process = Background::spawn(
        std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    wait_for("the registry", Duration::from_secs(30), || {
        matches!(http_get(&address, "/v2/"), Ok((200, _))).then_some(())
    });
    (address, process)
}

/// The demo database's schema version (3 for v1, 4 for v2).
fn schema(stack: &SwarmStack) -> String {
    stack.sql("SELECT max(version) FROM schema_migrations")
}

#[test]
fn deploy_rollback_with_data_and_sigterm_on_a_stack() {
    let stack = SwarmStack::up("v1");
    let address = stack.address();
    let spec = format!(
        "[environments.test]\nbase-url = \"http://{address}\"\n\n\
         [[check]]\nname = \"health\"\nurl = \"/api/health\"\nwait = \"20s\"\nexpect.status = 200\n"
    );
    std::fs::write(stack.work.path().join("smoke.toml"), spec).expect("smoke.toml");
    assert_serves(&stack, "v1", "the stack as deployed");
    assert_eq!(schema(&stack), "3");
    stack.sql("INSERT INTO businesses (name) VALUES ('before-v2')");

    // v1 → v2: the pre-deploy backup, the image pushed to the registry every node pulls from,
    // the migration as a job, each service start-first, the smoke tests; a request loop
    // through nginx all along.
    let (registry, _registry) = registry(&stack);
    let requests = RequestLoop::start(address.clone());
    let deployed = run(
        &stack,
        "lifeboat-deploy",
        &["v2"],
        &[("LIFEBOAT_DEPLOY_REGISTRY", &registry)],
    );
    let (sent, failed) = requests.finish();
    lifeboat::errln!("deploy v1 -> v2 on Swarm: {failed} of {sent} requests through nginx failed");
    assert_eq!(deployed.code, 0, "{}", deployed.show());
    assert!(deployed.stderr.contains("Swarm job"), "{}", deployed.show());
    assert_serves(&stack, "v2", "after the deploy");
    assert_eq!(schema(&stack), "4", "the migration ran");
    assert!(
        sent > 50,
        "the loop ran through the deploy ({sent} requests)"
    );
    assert_eq!(
        failed, 0,
        "failed requests during the deploy: {failed} of {sent}"
    );
    let pushed = format!("{registry}/lifeboat-demo/app:lifeboat-v2");
    assert_eq!(
        stack.inspect("app", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
        pushed
    );
    let (status, tags) = http_get(&registry, "/v2/lifeboat-demo/app/tags/list").expect("registry");
    assert!(
        status == 200 && tags.contains("lifeboat-v2"),
        "{status} {tags}"
    );
    let jobs = docker_ok(&["service", "ls", "-q", "--filter", "label=lifeboat.job"]);
    assert!(jobs.is_empty(), "the migration job was removed: {jobs}");
    stack.sql("INSERT INTO businesses (name) VALUES ('after-v2')");

    let status = run(&stack, "lifeboat-deploy", &["status"], &[]);
    assert_eq!(status.code, 0, "{}", status.show());
    assert!(
        status
            .stdout
            .lines()
            .filter(|l| l.starts_with("app\t") && l.contains("\tv2\t") && l.ends_with("running"))
            .count()
            == 2,
        "{}",
        status.show()
    );

    // A release that never becomes healthy: every service back on v2's spec, exit 3.
    let broken = run(
        &stack,
        "lifeboat-deploy",
        &["broken", "--no-backup"],
        &[
            ("LIFEBOAT_DEPLOY_MIGRATE", ""),
            ("LIFEBOAT_DEPLOY_REGISTRY", &registry),
        ],
    );
    assert_eq!(broken.code, 3, "{}", broken.show());
    assert_serves(&stack, "v2", "after the broken release");
    assert_eq!(
        stack.inspect("app", "{{.Spec.Mode.Replicated.Replicas}}"),
        "2"
    );

    sigterm_mid_update(&stack, &registry);

    // Back to v1 with its data: the pre-v2 schema and rows, every service on v1.
    let back = run(
        &stack,
        "lifeboat-rollback",
        &["v1", "--with-data", "--yes"],
        &[("LIFEBOAT_DEPLOY_REGISTRY", &registry)],
    );
    assert_eq!(back.code, 0, "{}", back.show());
    assert_serves(&stack, "v1", "after the rollback with data");
    assert_eq!(schema(&stack), "3", "the pre-v2 schema");
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name = 'after-v2'"),
        "0"
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name = 'before-v2'"),
        "1"
    );
    assert_no_oneoff_left();
}

/// SIGTERM while the app's update to v1 is under way: every service on v2 again, exit 3, no
/// journal left.
fn sigterm_mid_update(stack: &SwarmStack, registry: &str) {
    let mut paused = command(
        stack,
        "lifeboat-deploy",
        &["v1", "--no-backup"],
        &[
            ("LBTEST_DEPLOY_PAUSE_AT", "switching"),
            ("LIFEBOAT_DEPLOY_MIGRATE", ""),
            ("LIFEBOAT_DEPLOY_REGISTRY", registry),
        ],
    )
    .spawn();
    let lines = paused.stderr_lines();
    let said = Arc::new(std::sync::Mutex::new(String::new()));
    let into = said.clone();
    std::thread::spawn(move || {
        for line in lines {
            let mut s = into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.push_str(&line);
            s.push('\n');
        }
    });
    wait_for(
        "the deploy paused mid-update",
        Duration::from_mins(2),
        || {
            said.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains("paused at step switching")
                .then_some(())
        },
    );
    paused.signal("TERM");
    let stopped = paused.wait();
    assert_eq!(stopped.code, 3, "{}", stopped.show());
    assert_serves(stack, "v2", "after SIGTERM mid-update");
    assert!(!stack.work.path().join("state/journal.json").exists());
}
