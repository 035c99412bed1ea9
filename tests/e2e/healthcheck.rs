//! lifeboat-healthcheck, run for real against HTTP servers, PostgreSQL (SCRAM and md5), Redis
//! (including a real LOADING state) and inside a container, where Docker's own health status is
//! what counts. Exit codes are only ever 0 or 1.

use std::process::Command;
use std::time::{Duration, Instant};

use lifeboat_testkit::{
    bin, docker_ok, http_response, lifeboat, run, unique, wait_for, Background, DemoStack,
    HttpFixture, Reply, TestContainer,
};

fn probe(args: &[&str]) -> (i32, String) {
    probe_env(args, &[])
}

/// One probe through the testkit's runner (clean environment, no panic, no known secret):
/// exit 0 or 1 and one short line, whatever happens.
fn probe_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = lifeboat("lifeboat-healthcheck")
        .args(args)
        .envs(env.iter().copied())
        .run();
    assert!(
        out.status.code().is_some(),
        "exited, not killed: {}",
        out.show()
    );
    let (code, stdout) = (out.code, out.stdout);
    assert!(
        code == 0 || code == 1,
        "exit code {code} is neither 0 nor 1: {stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    assert!(
        stdout.trim_end().len() <= 200,
        "at most 200 characters: {stdout}"
    );
    (code, stdout)
}

fn fixture(status: &str, headers: &str, body: &str) -> HttpFixture {
    HttpFixture::start(Reply::Raw(http_response(status, headers, body)))
}

#[test]
fn http_200_is_healthy_and_503_is_not() {
    let ok = fixture("200 OK", "", "{\"status\":\"healthy\"}");
    let (code, line) = probe(&[&ok.url("/api/health")]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("healthy: http://127.0.0.1:") && line.contains("/api/health 200 in "),
        "{line}"
    );

    let down = fixture("503 Service Unavailable", "", "{\"status\":\"unhealthy\"}");
    let (code, line) = probe(&[&down.url("/api/health")]);
    assert_eq!(code, 1);
    assert!(line.contains("status 503 (expected 2xx)"), "{line}");
    let (code, _) = probe(&["--expect-status", "503", &down.url("/")]);
    assert_eq!(code, 0, "503 is what was expected");
}

#[test]
fn the_default_target_comes_from_healthcheck_url_or_port() {
    let ok = fixture("200 OK", "", "ok");
    let (code, line) = probe_env(&[], &[("PORT", &ok.port.to_string())]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains(&format!("http://127.0.0.1:{}/api/health", ok.port)),
        "{line}"
    );
    let (code, line) = probe_env(
        &[],
        &[("HEALTHCHECK_URL", &ok.url("/custom")), ("PORT", "1")],
    );
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("/custom"), "{line}");
}

#[test]
fn connection_refused_is_unhealthy() {
    let refused = lifeboat_testkit::refused_port();
    let port = refused.port;
    let (code, line) = probe(&[&format!("http://127.0.0.1:{port}/api/health")]);
    assert_eq!(code, 1);
    assert!(line.contains("connection refused"), "{line}");
}

#[test]
fn a_server_that_never_answers_is_unhealthy_before_the_timeout() {
    let silent = HttpFixture::start(Reply::Silent);
    let started = Instant::now();
    let (code, line) = probe(&["--timeout", "2s", &silent.url("/api/health")]);
    let took = started.elapsed();
    assert_eq!(code, 1);
    assert!(line.contains("timed out"), "{line}");
    // The contract with Docker, not a speed target: the probe has ended before its timeout.
    assert!(
        took < Duration::from_secs(2),
        "the probe must end before its own timeout, took {took:?}"
    );
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_unhealthy_unless_head_is_asked() {
    let slow = HttpFixture::start(Reply::Dribble {
        head: "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n".into(),
        body: "status: healthy ....".into(),
        gap: Duration::from_millis(200),
    });
    // A 200 whose body stops arriving is an app that is stuck mid-answer.
    let (code, line) = probe(&["--timeout", "1s", &slow.url("/")]);
    assert_eq!(code, 1, "the body did not arrive in time: {line}");
    assert!(line.contains("timed out"), "{line}");
    let (code, line) = probe(&[
        "--timeout",
        "1s",
        "--expect-body",
        "healthy ....",
        &slow.url("/"),
    ]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("timed out"), "{line}");
    // With --head the status alone decides, and the request was a HEAD.
    let (code, line) = probe(&["--timeout", "1s", "--head", &slow.url("/")]);
    assert_eq!(code, 0, "{line}");
    assert!(
        slow.requests()
            .last()
            .is_some_and(|r| r.starts_with("HEAD / ")),
        "{:?}",
        slow.requests()
    );
    // A body that arrives whole in time is healthy.
    let fast = fixture("200 OK", "", "status: healthy");
    let (code, line) = probe(&["--timeout", "1s", &fast.url("/")]);
    assert_eq!(code, 0, "{line}");
}

#[test]
fn a_header_is_not_sent_on_to_another_host_by_a_redirect() {
    let elsewhere = fixture("200 OK", "", "ok");
    let redirect = fixture(
        "302 Found",
        &format!("Location: {}\r\n", elsewhere.url("/collect")),
        "",
    );
    let (code, line) = probe(&[
        "--follow-redirects",
        "--header",
        "Authorization: Bearer s3cr3t-token",
        &redirect.url("/api/health"),
    ]);
    assert_eq!(code, 0, "{line}");
    let asked = redirect.requests().join("\n");
    assert!(
        asked.contains("Authorization: Bearer s3cr3t-token"),
        "{asked}"
    );
    let followed = elsewhere.requests().join("\n");
    assert!(followed.starts_with("GET /collect "), "{followed}");
    assert!(
        !followed.contains("s3cr3t"),
        "the token went on: {followed}"
    );
}

#[test]
fn a_redirect_is_not_followed_unless_asked() {
    let target = fixture("200 OK", "", "ok");
    let redirect = fixture(
        "302 Found",
        &format!("Location: {}\r\n", target.url("/ok")),
        "",
    );
    let (code, line) = probe(&[&redirect.url("/api/health")]);
    assert_eq!(code, 1);
    assert!(
        line.contains("status 302") && line.contains("not followed"),
        "{line}"
    );
    let (code, line) = probe(&["--follow-redirects", &redirect.url("/api/health")]);
    assert_eq!(code, 0, "{line}");
}

#[test]
fn body_and_json_assertions() {
    let app = fixture(
        "200 OK",
        "Content-Type: application/json\r\n",
        r#"{"status":"degraded","database":{"ok":true}}"#,
    );
    let url = app.url("/api/health");
    assert_eq!(probe(&["--expect-body", "degraded", &url]).0, 0);
    let (code, line) = probe(&["--expect-body", "healthy", &url]);
    assert_eq!(code, 1);
    assert!(line.contains("does not contain \"healthy\""), "{line}");
    assert_eq!(probe(&["--expect-json", "/database/ok=true", &url]).0, 0);
    let (code, line) = probe(&["--expect-json", "/status=healthy", &url]);
    assert_eq!(code, 1);
    assert!(
        line.contains("JSON /status is \"degraded\" (expected \"healthy\")"),
        "{line}"
    );
    let (code, line) = probe_env(&[&url], &[("HEALTHCHECK_EXPECT_JSON", "/missing=x")]);
    assert_eq!(code, 1);
    assert!(line.contains("/missing is missing"), "{line}");
}

#[test]
fn headers_are_sent() {
    let app = HttpFixture::start(Reply::RequireInRequest {
        needle: "X-Probe: docker".into(),
    });
    assert_eq!(probe(&[&app.url("/")]).0, 1);
    assert_eq!(probe(&["--header", "X-Probe: docker", &app.url("/")]).0, 0);
    assert_eq!(
        probe_env(
            &[&app.url("/")],
            &[("HEALTHCHECK_HEADER", "X-Probe: docker")]
        )
        .0,
        0
    );
}

#[test]
fn tcp_open_and_closed() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = open.local_addr().expect("addr").port();
    let (code, line) = probe(&[&format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{line}");
    drop(open);
    let (code, line) = probe(&[&format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, 1);
    assert!(line.contains("connection refused"), "{line}");
}

#[test]
fn bad_arguments_are_unhealthy_never_2() {
    for args in [
        &["--timeout", "soon"][..],
        &["ftp://x"][..],
        &["--frobnicate"][..],
    ] {
        let (code, line) = probe(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(line.starts_with("unhealthy: bad arguments:"), "{line}");
    }
    let (code, line) = probe(&["postgres://app:hunter2@127.0.0.1:99999/x"]);
    assert_eq!(code, 1);
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn postgres_with_scram_up_wrong_password_and_down() {
    let url = lifeboat_testkit::database_url();
    let (code, line) = probe(&[&url]);
    assert_eq!(code, 0, "{line}");
    let password = lifeboat_testkit::database_password();
    assert!(
        !line.contains(password.as_str()),
        "the password is redacted: {line}"
    );
    let (code, line) = probe(&[&format!("{url}?sslmode=require")]);
    assert_eq!(code, 0, "sslmode=require: {line}");

    let wrong = url.replacen(password.as_str(), "wrong-password", 1);
    let (code, line) = probe(&[&wrong]);
    assert_eq!(code, 1);
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(!line.contains("wrong-password"), "{line}");

    let refused = lifeboat_testkit::refused_port();
    let port = refused.port;
    let (code, line) = probe(&[&format!("postgres://app:pw@127.0.0.1:{port}/app")]);
    assert_eq!(code, 1);
    assert!(line.contains("connection refused"), "{line}");
}

#[test]
fn mysql_up_wrong_password_down_and_every_tls_spelling() {
    let url = lifeboat_testkit::mysql_url();
    let password = lifeboat_testkit::mysql_password();
    let ca = lifeboat_testkit::mysql_ca_file();
    let (code, line) = probe(&[&url]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains("ready (10.11"),
        "the version, without MariaDB's 5.5.5- prefix: {line}"
    );
    assert!(
        line.contains("TLS"),
        "TLS is preferred when offered: {line}"
    );
    assert!(!line.contains(password.as_str()), "{line}");

    for query in [
        format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        format!("ssl=%7B%22rejectUnauthorized%22%3Atrue%7D&sslca={ca}"),
        "ssl-mode=REQUIRED".to_owned(),
        "sslaccept=accept_invalid_certs".to_owned(),
    ] {
        let (code, line) = probe(&[&format!("{url}?{query}")]);
        assert_eq!(code, 0, "{query}: {line}");
        assert!(line.contains("TLS"), "{query}: {line}");
    }
    let (code, line) = probe(&[&format!("{url}?ssl-mode=DISABLED")]);
    assert_eq!(code, 0, "{line}");
    assert!(!line.contains("TLS"), "{line}");
    // The public roots do not know the test CA: a certificate that is checked is refused.
    let (code, line) = probe(&[&format!("{url}?ssl={{\"rejectUnauthorized\":true}}")]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("certificate"), "{line}");
    let (code, line) = probe(&[&format!("{url}?ssl-mode=sometimes")]);
    assert_eq!(code, 1);
    assert!(line.contains("unknown ssl-mode `sometimes`"), "{line}");

    let wrong = url.replacen(password.as_str(), "wrong-password", 1);
    let (code, line) = probe(&[&wrong]);
    assert_eq!(code, 1);
    assert!(line.contains("ERROR 1045 (28000): Access denied"), "{line}");
    assert!(!line.contains("wrong-password"), "{line}");

    let refused = lifeboat_testkit::refused_port();
    let (code, line) = probe(&[&format!("mysql://app:pw@127.0.0.1:{}/app", refused.port)]);
    assert_eq!(code, 1);
    assert!(line.contains("connection refused"), "{line}");
    // Something that is not a MySQL server: an HTTP server waits for a request and says nothing.
    let http = fixture("200 OK", "", "ok");
    let authority = http
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (code, line) = probe(&[
        "--timeout",
        "1s",
        &format!("mysql://app:pw@{authority}/app"),
    ]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("timed out"), "{line}");
}

#[test]
fn postgres_with_md5_authentication() {
    let pg = TestContainer::run(
        "lbtest-md5-",
        &[
            "-e",
            "POSTGRES_PASSWORD=md5-secret",
            "-e",
            "POSTGRES_HOST_AUTH_METHOD=md5",
            "-p",
            "127.0.0.1::5432",
            "lifeboat-test/postgres:15",
        ],
    );
    let port = pg.host_port("5432");
    let url = format!("postgres://postgres:md5-secret@127.0.0.1:{port}/postgres?sslmode=disable");
    let (code, line) = wait_for("md5 postgres ready", Duration::from_mins(1), || {
        let r = probe(&["--timeout", "2s", &url]);
        (r.0 == 0).then_some(r)
    });
    assert_eq!(code, 0, "{line}");
    let hba = docker_ok(&[
        "exec",
        &pg.name,
        "sh",
        "-c",
        "grep -v '^#' $PGDATA/pg_hba.conf | grep 'host all all all'",
    ]);
    assert!(hba.contains("md5"), "the server really asks for md5: {hba}");
    let (code, line) = probe(&[&url.replace("md5-secret", "nope")]);
    assert_eq!(code, 1);
    assert!(line.contains("password authentication failed"), "{line}");
}

#[test]
fn redis_up_down_and_loading() {
    let (code, line) = probe(&[&lifeboat_testkit::redis_url()]);
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("PONG"), "{line}");

    // A real Redis that loads its dataset slowly (its own test knobs), so LOADING lasts seconds.
    let redis = TestContainer::run(
        "lbtest-loading-",
        &[
            "-p",
            "127.0.0.1::6379",
            "lifeboat-test/redis:7",
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--enable-debug-command",
            "yes",
            "--key-load-delay",
            "500",
            "--loading-process-events-interval-bytes",
            "1024",
            "--save",
            "",
            "--dir",
            "/tmp",
        ],
    );
    let url = || format!("redis://127.0.0.1:{}", redis.host_port("6379"));
    wait_for("redis up", Duration::from_secs(20), || {
        (probe(&[&url()]).0 == 0).then_some(())
    });
    docker_ok(&[
        "exec",
        &redis.name,
        "redis-cli",
        "DEBUG",
        "POPULATE",
        "20000",
    ]);
    docker_ok(&["exec", &redis.name, "redis-cli", "SAVE"]);
    docker_ok(&["restart", "-t", "1", &redis.name]);
    let line = wait_for("LOADING seen", Duration::from_secs(10), || {
        let (code, line) = probe(&["--timeout", "1s", &url()]);
        (code == 1 && line.contains("LOADING")).then_some(line)
    });
    assert!(line.contains("loading its dataset"), "{line}");

    let last_url = url();
    docker_ok(&["stop", "-t", "1", &redis.name]);
    let (code, line) = probe(&[&last_url]);
    assert_eq!(code, 1, "the stopped server: {line}");
}

#[test]
fn several_targets_must_all_pass() {
    let ok = fixture("200 OK", "", "ok");
    let (code, line) = probe(&[
        &ok.url("/"),
        &lifeboat_testkit::redis_url(),
        &lifeboat_testkit::database_url(),
    ]);
    assert_eq!(code, 0, "{line}");
    let port = lifeboat_testkit::closed_port();
    let (code, line) = probe(&[&ok.url("/"), &format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, 1);
    assert!(
        line.contains(&format!("tcp://127.0.0.1:{port}: ")),
        "names the failing target: {line}"
    );
}

#[test]
fn serve_aggregates_targets_as_json() {
    let port = lifeboat_testkit::closed_port();
    let closed = lifeboat_testkit::closed_port();
    let refused = lifeboat_testkit::refused_port();
    let dead = refused.port;
    let listen = format!("127.0.0.1:{port}");
    let _serve = lifeboat("lifeboat-healthcheck")
        .args([
            "serve",
            "--listen",
            &listen,
            &lifeboat_testkit::redis_url(),
            &lifeboat_testkit::database_url(),
        ])
        .spawn();
    let _degraded = lifeboat("lifeboat-healthcheck")
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{closed}"),
            &lifeboat_testkit::redis_url(),
            &format!("tcp://127.0.0.1:{dead}"),
        ])
        .spawn();
    let (status, body) = wait_for("serve answers", Duration::from_secs(10), || {
        lifeboat_testkit::http_get(&listen, "/").ok()
    });
    let (bad_status, bad_body) = wait_for("serve answers", Duration::from_secs(10), || {
        lifeboat_testkit::http_get(&format!("127.0.0.1:{closed}"), "/").ok()
    });
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["checks"].as_array().map(Vec::len), Some(2));
    assert!(json["checks"][0]["latency_ms"].is_u64(), "{json}");
    assert!(
        !body.contains(
            lifeboat_testkit::database_url()
                .split('@')
                .next()
                .unwrap_or("@")
        ),
        "no password: {body}"
    );
    let bad: serde_json::Value = serde_json::from_str(&bad_body).expect("JSON");
    assert_eq!(bad_status, 503, "{bad_body}");
    assert_eq!(bad["status"], "unhealthy");
    assert_eq!(bad["checks"][1]["status"], "unhealthy");
}

#[test]
fn serve_listens_on_loopback_by_default_and_slow_clients_cannot_starve_it() {
    use std::io::{Read, Write};
    let port = lifeboat_testkit::closed_port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = lifeboat("lifeboat-healthcheck")
        .args(["serve", "--listen", &listen, &lifeboat_testkit::redis_url()])
        .spawn();
    wait_for("serve answers", Duration::from_secs(10), || {
        lifeboat_testkit::http_get(&listen, "/").ok()
    });
    // Sixteen clients that send a byte of their request every 200 ms, forever.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow: Vec<_> = (0..16)
        .map(|_| {
            let (stop, closed, listen) = (stop.clone(), closed.clone(), listen.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(&listen).expect("connect");
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                let mut b = [0u8; 64];
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    // Never the end of a request head.
                    if s.write_all(b"X").is_err() || matches!(s.read(&mut b), Ok(0)) {
                        closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            })
        })
        .collect();
    // Every slow client is cut off at its request's deadline, although it keeps sending; then
    // the server answers again.
    wait_for("the slow clients cut off", Duration::from_secs(30), || {
        (closed.load(std::sync::atomic::Ordering::SeqCst) == 16).then_some(())
    });
    let (status, body) = wait_for("serve answers again", Duration::from_secs(30), || {
        lifeboat_testkit::http_get(&listen, "/")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    assert!(body.contains("healthy"), "{status} {body}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in slow {
        t.join().expect("slow client");
    }

    // Without --listen: loopback only, port 8080 (the default), never every interface.
    let help = lifeboat("lifeboat-healthcheck").arg("--help").run();
    assert!(
        help.stdout.contains("default 127.0.0.1:8080"),
        "{}",
        help.stdout
    );
}

/// The app image with this probe as its HEALTHCHECK: the base has no wget or curl, and Docker's
/// own health status follows the app's database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_health_follows_the_app_s_database() {
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        bin("lifeboat-healthcheck"),
        ctx.path().join("lifeboat-healthcheck"),
    )
    .expect("copy binary");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM lifeboat-demo/app:v1\nCOPY lifeboat-healthcheck /usr/local/bin/lifeboat-healthcheck\n\
         HEALTHCHECK --interval=1s --timeout=3s --retries=2 CMD [\"/usr/local/bin/lifeboat-healthcheck\", \"--timeout\", \"2s\"]\n",
    )
    .expect("Dockerfile");
    let tag = unique("lbtest-hc-");
    let docker = lifeboat::docker::Docker::connect(None)
        .await
        .expect("docker");
    docker
        .build_image(ctx.path(), &format!("lifeboat-demo/app:{tag}"))
        .await
        .expect("build");
    let _image = ImageGuard(format!("lifeboat-demo/app:{tag}"));

    let which = lifeboat_testkit::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &format!("lifeboat-demo/app:{tag}"),
        "-c",
        "command -v wget || command -v curl",
    ]);
    assert!(
        !which.status.success(),
        "the image must have neither wget nor curl"
    );

    let stack = DemoStack::build(&tag)
        .prefix("lbtest-hc-")
        .services(&["postgres", "redis"])
        .unseeded()
        .up();
    let project = &stack.project;
    project.ok(&["up", "-d", "app"]);
    let app = docker
        .service_container(&project.name, "app")
        .await
        .expect("app");
    docker
        .wait_healthy(&app.id, Duration::from_mins(1))
        .await
        .expect("healthy through lifeboat-healthcheck");
    // lifeboat ran the HEALTHCHECK's command itself; Docker's own probe, whose log is read
    // below, follows within its interval.
    let log = docker_health_log(&app.id, "healthy");
    assert!(
        log.contains("healthy: http://127.0.0.1:3000/api/health 200"),
        "{log}"
    );

    let postgres = docker
        .service_container(&project.name, "postgres")
        .await
        .expect("postgres");
    docker
        .stop(&postgres.id, Duration::from_secs(5))
        .await
        .expect("stop postgres");
    let log = docker_health_log(&app.id, "unhealthy");
    assert!(
        log.contains("1 unhealthy: http://127.0.0.1:3000/api/health: status 503"),
        "{log}"
    );

    docker.start(&postgres.id).await.expect("start postgres");
    docker
        .wait_healthy(&app.id, Duration::from_mins(1))
        .await
        .expect("healthy again");
}

/// The static build is the only file of a `FROM scratch` image, and works there.
#[test]
fn the_static_build_runs_alone_in_a_scratch_image() {
    let binary = lifeboat_testkit::stack_var("LBTEST_STATIC_HEALTHCHECK");
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&binary, ctx.path().join("lifeboat-healthcheck")).expect("copy");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY lifeboat-healthcheck /lifeboat-healthcheck\nENTRYPOINT [\"/lifeboat-healthcheck\"]\n")
        .expect("Dockerfile");
    let tag = format!("{}:t", unique("lbtest-scratch-"));
    docker_ok(&["build", "-q", "-t", &tag, &ctx.path().to_string_lossy()]);
    let _image = ImageGuard(tag.clone());
    let ok = fixture("200 OK", "", "ok");
    let out = lifeboat_testkit::docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        &tag,
        &ok.url("/api/health"),
        &lifeboat_testkit::redis_url(),
    ]);
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{line}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.starts_with("healthy: "), "{line}");
    let out = lifeboat_testkit::docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        &tag,
        "tcp://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(1));

    // A sidecar on a compose-like network checks a service by its name. The musl build reads
    // the container's /etc/resolv.conf itself; the glibc fallback has no NSS in a scratch
    // image, and its manual says to give it addresses.
    let network = unique("lbtest-net-");
    docker_ok(&["network", "create", &network]);
    let _network = NetworkGuard(network.clone());
    let _cache = TestContainer::run(
        "lbtest-cache-",
        &[
            "--network",
            &network,
            "--network-alias",
            "cache",
            "lifeboat-test/redis:7",
        ],
    );
    let line = wait_for("redis answers by name", Duration::from_secs(20), || {
        let out = lifeboat_testkit::docker(&[
            "run",
            "--rm",
            "--network",
            &network,
            &tag,
            "redis://cache:6379",
        ]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let settled = out.status.success() || line.contains("cannot resolve");
        settled.then_some(line)
    });
    if binary.contains("-musl/") {
        assert!(
            line.starts_with("healthy: redis://cache:6379 PONG"),
            "{line}"
        );
    } else {
        assert!(line.contains("cannot resolve cache"), "{line}");
    }
}

struct NetworkGuard(String);

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = lifeboat_testkit::docker(&["network", "rm", &self.0]);
    }
}

struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = lifeboat_testkit::docker(&["rmi", "-f", &self.0]);
    }
}

/// A real HTTPS server (Python's, on loopback) with a self-signed certificate valid `days` days.
fn https_server(days: u32) -> (Background, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-days",
        &days.to_string(),
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &cert.to_string_lossy(),
    ]));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(dir.path().join("www/api")).expect("mkdir");
    std::fs::write(
        dir.path().join("www/api/health"),
        "{\"status\":\"healthy\"}",
    )
    .expect("write");
    let port = lifeboat_testkit::closed_port();
    let script = format!(
        "import http.server, ssl, functools\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory='{www}')\n\
         s = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), h)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{cert}', '{key}')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        www = dir.path().join("www").display(),
        cert = cert.display(),
        key = key.display(),
    );
    let server = Background::spawn(Command::new("python3").args(["-c", &script]));
    wait_for("the https server listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (server, port, dir)
}

#[test]
fn https_verifies_the_certificate_unless_insecure_and_checks_its_expiry() {
    let (_server, port, _dir) = https_server(10);
    let url = format!("https://127.0.0.1:{port}/api/health");
    let (code, line) = probe(&[&url]);
    assert_eq!(code, 1, "a self-signed certificate is not trusted: {line}");
    assert!(line.contains("invalid certificate"), "{line}");

    let (code, line) = probe(&["--insecure", "--expect-json", "/status=healthy", &url]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("healthy (TLS certificate NOT verified: --insecure): "),
        "said loudly, first: {line}"
    );
    assert!(
        line.contains("certificate valid 9 more days")
            || line.contains("certificate valid 10 more days"),
        "{line}"
    );

    let (code, line) = probe_env(
        &["--cert-min-days", "30", &url],
        &[("HEALTHCHECK_INSECURE", "1")],
    );
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("certificate expires in") && line.contains("(minimum 30)"),
        "{line}"
    );
    assert_eq!(probe(&["--insecure", "--cert-min-days", "5", &url]).0, 0);
}

#[test]
fn options_that_would_be_ignored_are_refused() {
    let ok = fixture("200 OK", "", "ok");
    for args in [
        &["-h", "X-Probe: yes", "http://127.0.0.1:1/"][..],
        &["--listen", "127.0.0.1:0", "http://127.0.0.1:1/"][..],
        &["--expect-body", "ok", "tcp://127.0.0.1:1"][..],
    ] {
        let (code, line) = probe(args);
        assert_eq!(code, 1, "{args:?}: {line}");
        assert!(line.starts_with("unhealthy: bad arguments:"), "{line}");
    }
    let (code, line) = probe(&[
        "--header",
        "Authorization Bearer s3cr3t-token",
        &ok.url("/"),
    ]);
    assert_eq!(code, 1);
    assert!(
        !line.contains("s3cr3t-token"),
        "a malformed header is named, not echoed: {line}"
    );
}

#[test]
fn the_postgres_probe_follows_libpq_s_sslmode_and_root_certificate_rules() {
    let certs = tempfile::tempdir().expect("tempdir");
    lifeboat_testkit::test_certificates(certs.path());
    let pg = lifeboat_testkit::tls_postgres(certs.path(), "probe-pw");
    let port = pg.host_port("5432");
    let ca = certs.path().join("ca.pem").display().to_string();
    let wrong = certs.path().join("wrong-ca.pem").display().to_string();
    let home = tempfile::tempdir().expect("home");
    let probe_pg = |host: &str, query: &str| {
        probe_env(
            &[&format!(
                "postgres://postgres:probe-pw@{host}:{port}/postgres?{query}"
            )],
            &[("HOME", home.path().to_str().expect("utf-8"))],
        )
    };
    // verify-ca: the chain, not the name (the certificate does not name 127.0.0.1).
    let (code, line) = probe_pg("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert_eq!(code, 0, "{line}");
    let (code, line) = probe_pg(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={wrong}"),
    );
    assert_eq!(code, 1, "{line}");
    // verify-full: the name too.
    let (code, line) = probe_pg(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(code, 0, "{line}");
    let (code, line) = probe_pg(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(code, 1, "{line}");
    // require: nothing checked without a root certificate, the chain with one.
    let (code, line) = probe_pg("127.0.0.1", "sslmode=require");
    assert_eq!(code, 0, "{line}");
    let (code, line) = probe_pg("127.0.0.1", &format!("sslmode=require&sslrootcert={wrong}"));
    assert_eq!(code, 1, "{line}");
    // No root certificate at all for verify-ca: said, not guessed.
    let (code, line) = probe_pg("127.0.0.1", "sslmode=verify-ca");
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("sslrootcert"), "{line}");
    // ~/.postgresql/root.crt, as libpq.
    std::fs::create_dir_all(home.path().join(".postgresql")).expect("mkdir");
    std::fs::copy(&ca, home.path().join(".postgresql/root.crt")).expect("root.crt");
    let (code, line) = probe_pg("127.0.0.1", "sslmode=verify-ca");
    assert_eq!(code, 0, "{line}");
}

/// Docker's own health log of `container` (exit code and output of each probe), once Docker
/// says it is `state`.
fn docker_health_log(container: &str, state: &str) -> String {
    wait_for(
        &format!("Docker says {state}"),
        Duration::from_secs(30),
        || {
            let status = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", container]);
            (status == state).then_some(())
        },
    );
    docker_ok(&[
        "inspect",
        "-f",
        "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}",
        container,
    ])
}

/// The same command-line rules as the other five: a secret in a malformed target never shown
/// (stdout is kept by `docker inspect`), the name meant for a misspelled option or variable,
/// help that wraps to the terminal, `serve --help`, completions, and a `--version` that says
/// which build this is.
#[test]
fn a_malformed_target_never_shows_its_password() {
    for (args, env) in [
        (vec!["redis//:hunter2@cache:6379"], vec![]),
        (vec!["postgres//u:hunter2@db/app"], vec![]),
        (
            vec![],
            vec![("HEALTHCHECK_URL", "redis//:hunter2@cache:6379")],
        ),
        (vec!["http://127.0.0.1:9/?token=hunter2"], vec![]),
        (vec!["--timeout", "1s", "u:hunter2@h"], vec![]),
    ] {
        let out = lifeboat("lifeboat-healthcheck")
            .args(&args)
            .envs(env.iter().copied())
            .secret("hunter2")
            .run();
        assert_eq!(out.code, 1, "{}", out.show());
        assert!(out.stdout.contains("***"), "{}", out.show());
    }
}

#[test]
fn a_misspelled_option_or_variable_gets_the_name_meant() {
    let (code, line) = probe(&["--timout", "5s", "tcp://127.0.0.1:9"]);
    assert_eq!(code, 1);
    assert!(
        line.contains("unknown option --timout: did you mean --timeout?"),
        "{line}"
    );
    let (code, line) = probe_env(&["tcp://127.0.0.1:9"], &[("HEALTHCHECK_TIMOUT", "5s")]);
    assert_eq!(code, 1);
    assert!(
        line.contains("unknown variable HEALTHCHECK_TIMOUT: did you mean HEALTHCHECK_TIMEOUT?"),
        "{line}"
    );
}

#[test]
fn help_wraps_to_the_terminal_and_serve_has_its_own() {
    let help = |args: &[&str], columns: &str| {
        let out = lifeboat("lifeboat-healthcheck")
            .args(args)
            .env("COLUMNS", columns)
            .run();
        assert_eq!(out.code, 0, "{}", out.show());
        out.stdout
    };
    let wide = help(&["--help"], "80");
    assert!(wide.contains("rediss://"), "{wide}");
    assert!(
        wide.contains("\nExamples:\n  HEALTHCHECK --interval=30s --timeout=10s \\\n"),
        "{wide}"
    );
    assert!(wide.lines().all(|l| l.chars().count() <= 80), "{wide}");
    let narrow = help(&["--help"], "60");
    assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
    assert_ne!(narrow, wide);
    let short = help(&["-h"], "80");
    assert!(short.lines().any(|l| l.starts_with("Example: ")), "{short}");
    assert!(short.len() < wide.len() / 2, "{short}");
    for args in [["serve", "--help"], ["serve", "-h"]] {
        let serve = help(&args, "80");
        assert!(serve.contains("--listen ADDR"), "{serve}");
    }
}

#[test]
fn completions_and_version_say_what_this_build_is() {
    for shell in ["bash", "zsh", "fish"] {
        let out = lifeboat("lifeboat-healthcheck")
            .args(["completions", shell])
            .run();
        assert_eq!(out.code, 0, "{}", out.show());
        assert!(
            out.stdout.contains("lifeboat-healthcheck") && out.stdout.contains("timeout"),
            "{shell}: {}",
            out.stdout
        );
    }
    let out = lifeboat("lifeboat-healthcheck")
        .args(["completions", "tcsh"])
        .run();
    assert_eq!(out.code, 1, "{}", out.show());
    let (code, version) = probe(&["--version"]);
    assert_eq!(code, 0);
    let version = version.trim_end();
    assert!(
        version.starts_with(&format!(
            "lifeboat-healthcheck {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && version.ends_with(", features: tls, postgres, mysql)"),
        "{version}"
    );
}
