//! lifeboat-deploy, lifeboat-rollback and lifeboat-restore on the seeds' own topology: a reverse
//! proxy (nginx, or Caddy) publishes the only port, the app publishes none
//! (tests/compose/proxy.yml). A request every 10 ms goes through the proxy across each
//! operation, and every test counts the failures: a deploy, a broken deploy rolled back, a
//! rollback and a deploy stopped by SIGTERM lose none; a rollback with data and a restore fail
//! requests only while the app is down (503 with restore.maintenance, else 502 from the proxy,
//! never a hang), and the proxy reaches the app again afterwards. A proxy whose
//! configuration fails `nginx -t` stops a deploy before anything is switched, and a stack whose
//! public URL does not answer is never said to serve.

use std::time::Duration;

use lifeboat_testkit::{http_get, wait_for, DemoStack, Lifeboat, RequestLoop, Requests, Running};

#[path = "support/deploy.rs"]
mod deploy_support;
use deploy_support::Ran;

/// The longest any request loop runs, whatever happens to the test.
const LOOP_BOUND: Duration = Duration::from_mins(4);

/// The demo stack behind a proxy, migrated and seeded on v1, and a working directory.
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
    fn up(prefix: &str, proxy_image: &str) -> Self {
        let demo = DemoStack::build("v1")
            .prefix(prefix)
            .file("compose/proxy.yml")
            .env("PROXY_IMAGE", proxy_image)
            .up();
        let port = demo.published("proxy", "80");
        let stack = Self { demo, port };
        wait_for(
            "the app reachable through the proxy",
            Duration::from_mins(1),
            || (stack.health() == Some(200)).then_some(()),
        );
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

    /// The version the proxy serves.
    fn version(&self) -> String {
        let (status, body) = http_get(&self.address(), "/api/version").expect("GET /api/version");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["version"].as_str().unwrap_or_default().to_owned()
    }

    /// The names of the project's containers, each with its image and state.
    fn containers(&self) -> String {
        self.demo.containers(" ")
    }

    fn command(&self, binary: &str, args: &[&str]) -> Lifeboat {
        deploy_support::command(binary, args, self.work.path(), &self.project.name).env(
            "LIFEBOAT_DEPLOY_HEALTH_URL",
            format!("http://{}/api/health", self.address()),
        )
    }

    fn run(&self, binary: &str, args: &[&str]) -> Ran {
        self.run_with(binary, args, &[])
    }

    fn run_with(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
        self.command(binary, args).envs(env.iter().copied()).run()
    }

    /// `lifeboat-deploy VERSION --no-backup` in the background with one more setting, its
    /// stderr piped for the test to read.
    fn spawn_deploy(&self, version: &str, (key, value): (&str, &str)) -> Running {
        self.command("lifeboat-deploy", &[version, "--no-backup"])
            .env(key, value)
            .spawn()
    }

    /// `sh -c script` in the proxy's container.
    fn in_proxy(&self, script: &str) {
        self.project
            .ok(&["exec", "-T", "proxy", "sh", "-c", script]);
    }

    /// Run `binary args` with requests through the proxy all along; what they saw.
    fn under_load(&self, binary: &str, args: &[&str]) -> (Ran, Requests) {
        self.under_load_with(binary, args, &[])
    }

    fn under_load_with(
        &self,
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Ran, Requests) {
        let requests = RequestLoop::start(&self.address(), "/api/version", LOOP_BOUND);
        requests.settle(10);
        let ran = self.run_with(binary, args, env);
        requests.settle(10);
        (ran, requests.finish())
    }

    fn journal_exists(&self) -> bool {
        self.work.path().join("state/journal.json").exists()
    }
}

/// No request failed, at least `min` were sent, and the proxy served `version` last.
fn assert_lost_none(requests: &Requests, min: usize, version: &str, ran: &Ran) {
    assert!(
        requests.failures.is_empty(),
        "{}\n{}",
        requests.show(),
        ran.show()
    );
    assert!(
        requests.sent >= min,
        "only {} requests were sent",
        requests.sent
    );
    assert_eq!(
        requests.versions.last().map(String::as_str),
        Some(version),
        "{}",
        requests.show()
    );
}

#[test]
fn behind_nginx_a_deploy_a_failed_deploy_and_rollbacks_lose_no_request() {
    let stack = Stack::up("lbtest-proxy-nginx-", "lifeboat-test/nginx:1.22");

    // The plan names the proxy and what will be done to it.
    let plan = stack.run("lifeboat-deploy", &["v2", "--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.show());
    assert!(
        plan.stdout.contains("proxy:") && plan.stdout.contains("(nginx, service proxy)"),
        "{}",
        plan.show()
    );

    // A good deploy: v1 then v2, not one request lost, and v2 is what users reach.
    let (ran, requests) = stack.under_load("lifeboat-deploy", &["v2"]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(ran.stderr.contains("now sends app to"), "{}", ran.show());
    assert_lost_none(&requests, 100, "v2", &ran);
    // v1 first; while nginx's old workers finish after the reload, a request may still meet v1.
    assert_eq!(requests.versions.first().map(String::as_str), Some("v1"));
    assert_eq!(stack.version(), "v2");
    assert!(!stack.containers().contains("_lifeboat_prev"));

    // A broken release, rolled back by itself: exit 3, and v2 served all along.
    let (ran, requests) = stack.under_load("lifeboat-deploy", &["broken", "--no-backup"]);
    assert_eq!(ran.code, 3, "{}", ran.show());
    assert!(ran.stderr.contains("v2 serves again"), "{}", ran.show());
    assert!(ran.stderr.contains("v2 answers at"), "{}", ran.show());
    assert_lost_none(&requests, 100, "v2", &ran);
    assert_eq!(requests.versions, ["v2"], "{}", requests.show());

    // lifeboat-rollback: back to v1, nothing lost.
    let (ran, requests) = stack.under_load("lifeboat-rollback", &[]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_lost_none(&requests, 100, "v1", &ran);
    assert_eq!(stack.version(), "v1");

    // lifeboat-rollback --with-data with restore.maintenance: v1's data back through
    // lifeboat-restore, which stops the app. While it is down, nginx answers from lifeboat's
    // stand-in: 503 (with Retry-After), never a 502 or a hang; then it reaches the restarted app,
    // which lifeboat checks at the public URL.
    let (ran, requests) = stack.under_load_with(
        "lifeboat-rollback",
        &["v1", "--with-data", "--yes"],
        &[("LIFEBOAT_RESTORE_MAINTENANCE", "true")],
    );
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(
        ran.stderr.contains("answers 503 with Retry-After")
            && ran
                .stderr
                .contains("reloaded: it reaches the restarted app")
            && ran.stderr.contains("the maintenance page is off")
            && ran.stderr.contains("the app answers at"),
        "{}",
        ran.show()
    );
    assert!(
        !requests.failures.is_empty(),
        "the app was down a moment: {}",
        requests.show()
    );
    for (_, what) in &requests.failures {
        assert_eq!(what, "HTTP 503", "{}", requests.show());
    }
    assert_eq!(requests.versions.last().map(String::as_str), Some("v1"));
    assert!(!stack.containers().contains("_lifeboat_maintenance"));
    let hosts = stack
        .project
        .ok(&["exec", "-T", "proxy", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("lifeboat"), "{hosts}");

    // lifeboat-restore without it: while the app is down nginx still sends requests to its
    // address from before, which fail (a 502, or a connection that hangs once that address is
    // gone); once it is back, nginx is reloaded and reaches it.
    let (ran, requests) = stack.under_load("lifeboat-restore", &["latest", "--yes"]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(
        ran.stderr
            .contains("reloaded: it reaches the restarted app"),
        "{}",
        ran.show()
    );
    assert!(requests.sent >= 50, "{}", requests.show());
    let after = RequestLoop::start(&stack.address(), "/api/version", LOOP_BOUND);
    std::thread::sleep(Duration::from_secs(2));
    let after = after.finish();
    assert!(after.failures.is_empty(), "{}", after.show());
    assert_eq!(stack.version(), "v1");
}

#[test]
fn behind_nginx_a_sigterm_or_sigkill_at_the_switch_leaves_the_stack_reachable() {
    let stack = Stack::up("lbtest-proxy-sig-", "lifeboat-test/nginx:1.22");
    let requests = RequestLoop::start(&stack.address(), "/api/version", LOOP_BOUND);
    // broken never becomes healthy: the deploy waits at the switch until the signal.
    let mut deploy = stack.spawn_deploy("broken", ("LIFEBOAT_DEPLOY_HEALTH_TIMEOUT", "60"));
    wait_for("the switch under way", Duration::from_mins(2), || {
        stack.containers().contains("_lifeboat_prev").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    deploy.signal("TERM");
    let ran = deploy.wait();
    let (status, stderr) = (ran.status, ran.stderr);
    requests.settle(10);
    let requests = requests.finish();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(
        requests.failures.is_empty(),
        "{}\n{stderr}",
        requests.show()
    );
    assert_eq!(requests.versions, ["v1"], "{}", requests.show());
    assert_eq!(stack.version(), "v1");
    assert!(!stack.journal_exists());

    // SIGKILL once nginx is steered to the new container, while the old one drains: the pin
    // stays in nginx's /etc/hosts and the journal on disk. The next run brings v1 back (its
    // switch steers nginx again, and no pin outlives it) and deploys; users lose no request
    // through all of it.
    let requests = RequestLoop::start(&stack.address(), "/api/version", LOOP_BOUND);
    let mut killed = stack.spawn_deploy("v2", ("LIFEBOAT_DEPLOY_DRAIN", "60"));
    // Read its stderr to the end (a closed pipe must not end it first), saying when nginx
    // is steered.
    let lines = killed.stderr_lines();
    let (tx, steered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            if line.contains("now sends app to") {
                let _ = tx.send(());
            }
        }
    });
    steered
        .recv_timeout(Duration::from_mins(2))
        .expect("the deploy steers nginx to v2");
    killed.signal("KILL");
    killed.wait();
    let hosts = stack
        .project
        .ok(&["exec", "-T", "proxy", "cat", "/etc/hosts"]);
    assert!(hosts.contains("# lifeboat: begin"), "{hosts}");
    assert!(stack.journal_exists());
    let ran = stack.run("lifeboat-deploy", &["v2", "--no-backup"]);
    requests.settle(10);
    let requests = requests.finish();
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(
        ran.stderr.contains("bringing the stack back to v1"),
        "{}",
        ran.show()
    );
    assert!(
        requests.failures.is_empty(),
        "{}\n{}",
        requests.show(),
        ran.show()
    );
    assert_eq!(stack.version(), "v2");
    let hosts = stack
        .project
        .ok(&["exec", "-T", "proxy", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("lifeboat"), "{hosts}");
    assert!(!stack.journal_exists());
}

#[test]
fn a_proxy_failing_its_own_test_stops_a_deploy_and_an_unreachable_stack_never_serves() {
    let stack = Stack::up("lbtest-proxy-bad-", "lifeboat-test/nginx:1.22");
    let before = stack.containers();

    // nginx still serves its loaded configuration, but the file on disk fails `nginx -t`: the
    // reload at the switch would fail, so nothing is switched.
    stack.in_proxy(
        "cp /etc/nginx/nginx.conf /tmp/good.conf && echo 'not nginx;' >> /etc/nginx/nginx.conf",
    );
    let ran = stack.run("lifeboat-deploy", &["v2", "--no-backup"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(
        ran.stderr.contains("refuses its own configuration")
            && ran.stderr.contains("nginx -t")
            && ran.stderr.contains("nothing was switched, v1 serves"),
        "{}",
        ran.show()
    );
    assert_eq!(stack.containers(), before, "nothing was switched");
    assert_eq!(stack.version(), "v1");
    stack.in_proxy("cp /tmp/good.conf /etc/nginx/nginx.conf");

    // deploy.proxies naming a service that is no proxy is the user's mistake: exit 2.
    let wrong = stack
        .command("lifeboat-deploy", &["v2", "--dry-run"])
        .env("LIFEBOAT_DEPLOY_PROXIES", "redis")
        .run();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    assert!(wrong
        .stderr
        .contains("deploy.proxies (LIFEBOAT_DEPLOY_PROXIES) names redis"));

    // The proxy is down: the containers of v1 are put back healthy, but users cannot reach
    // them, so lifeboat does not say v1 serves: exit 1, and the journal stays.
    stack.project.ok(&["stop", "proxy"]);
    let ran = stack.run("lifeboat-deploy", &["broken", "--no-backup"]);
    assert_eq!(ran.code, 1, "{}", ran.show());
    assert!(
        ran.stderr
            .contains("the containers of v1 are healthy, but users do not reach it")
            && !ran.stderr.contains("v1 serves again"),
        "{}",
        ran.show()
    );
    assert!(stack.journal_exists());
}

#[test]
fn behind_caddy_a_deploy_loses_no_request() {
    let stack = Stack::up("lbtest-proxy-caddy-", "lifeboat-test/caddy:2.6");
    let (ran, requests) = stack.under_load("lifeboat-deploy", &["v2", "--no-backup"]);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert!(
        ran.stderr.contains("(Caddy) now sends app to"),
        "{}",
        ran.show()
    );
    assert_lost_none(&requests, 100, "v2", &ran);
    assert_eq!(requests.versions.first().map(String::as_str), Some("v1"));
    assert_eq!(stack.version(), "v2");
}
