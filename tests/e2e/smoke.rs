//! lifeboat-smoke, run for real: the demo spec (seed 002's ten tests and seed 000's validations)
//! against the demo compose stack, every assertion and check kind passing and failing as it
//! should against the demo app, PostgreSQL, Redis, S3 (moto), SMTP (aiosmtpd) and HTTP servers
//! with the edge cases no app shows; the broken image failing exactly its health checks; spec
//! errors naming their line; and no secret in any output or report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lifeboat_testkit::{
    block_on, closed_port, http_get, http_response, lifeboat, run, s3, smtp, stack_var, unique,
    wait_for, workspace_root, Background, DemoStack, HttpFixture, Ran, Reply,
};

/// lifeboat-smoke in `dir` (no .env, no lifeboat.toml) with `env`, through the testkit's
/// runner: a clean environment, and no panic or known secret in what it says.
fn smoke(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    lifeboat("lifeboat-smoke")
        .dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .run()
}

/// `fail-s3-no-such-bucket` names the bucket and says what the storage said, in a line, not
/// the SDK's nested debug output of every layer.
fn the_s3_failure_is_in_the_storage_s_words(
    checks: &BTreeMap<String, (String, String, u64)>,
    no_such_bucket: &str,
) {
    let says = |words: &str| assert_says(checks, "fail-s3-no-such-bucket", words);
    says(&format!("S3 put s3://{no_such_bucket}/"));
    says("(NoSuchBucket)");
    says("The specified bucket does not exist");
    let s3_said = &checks["fail-s3-no-such-bucket"].1;
    assert!(
        s3_said.len() < 300 && !s3_said.contains("Error {") && !s3_said.contains("request_id"),
        "{s3_said}"
    );
}

/// The check that failed before its capture: its cleanup could not be sent, and the output
/// and both reports say so (what it may have created is left), without failing the run twice.
fn the_unsent_cleanup_is_said(ran: &Ran, report: &serde_json::Value, junit: &Path) {
    let cleanups = report["cleanups"].as_array().expect("cleanups");
    let unsent: Vec<&serde_json::Value> = cleanups
        .iter()
        .filter(|c| c["check"] == "fails-before-capture")
        .collect();
    assert_eq!(unsent.len(), 1, "{cleanups:?}");
    assert_eq!(unsent[0]["sent"], false);
    assert_eq!(unsent[0]["what"], "DELETE /broken/${id2}");
    let warning = unsent[0]["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("`${id2}` has no value")
            && warning.contains("failed before its capture")
            && warning.contains("left behind"),
        "{warning}"
    );
    assert!(
        ran.stderr
            .contains("! cleanup of fails-before-capture: DELETE /broken/${id2} not sent"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("1 cleanup(s) not sent"),
        "{}",
        ran.stderr
    );
    let xml = std::fs::read_to_string(junit).expect("junit");
    let case = xml
        .lines()
        .find(|l| l.contains("<testcase name=\"fails-before-capture\""))
        .expect("its test case");
    assert!(
        case.contains("<system-err>warning: cleanup DELETE /broken/${id2} not sent"),
        "{case}"
    );
}

/// Every check's status by its name: `pass-*` passed, `fail-*` failed, any other `other`.
fn assert_statuses(checks: &BTreeMap<String, (String, String, u64)>, other: &str) {
    for (name, (status, message, _)) in checks {
        let want = if name.starts_with("pass-") {
            "passed"
        } else if name.starts_with("fail-") {
            "failed"
        } else {
            other
        };
        assert_eq!(status, want, "{name}: {message}");
    }
}

/// Check `name`'s message says `words`.
fn assert_says(checks: &BTreeMap<String, (String, String, u64)>, name: &str, words: &str) {
    let message = &checks[name].1;
    assert!(
        message.contains(words),
        "{name}: {message:?} should say {words:?}"
    );
}

/// tests/fixtures/NAME with each `{{key}}` replaced by its value; every one must be.
fn fixture_with(name: &str, values: &[(&str, String)]) -> String {
    let path = workspace_root().join("tests/fixtures").join(name);
    let mut text = std::fs::read_to_string(&path).expect("fixture");
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(!text.contains("{{"), "a {{…}} of {name} is not filled in");
    text
}

fn fixture_spec() -> PathBuf {
    workspace_root().join("tests/fixtures/smoke.toml")
}

/// The JSON report's checks by name: (status, message, attempts).
fn by_name(report: &serde_json::Value) -> BTreeMap<String, (String, String, u64)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                (
                    c["status"].as_str().expect("status").to_owned(),
                    c["message"].as_str().expect("message").to_owned(),
                    c["attempts"].as_u64().expect("attempts"),
                ),
            )
        })
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the JSON report was written");
    serde_json::from_str(&text).expect("the JSON report is JSON")
}

/// Run `spec` (written to a fresh directory) with `env`; the run and its JSON report.
fn run_spec(spec: &str, env: &[(&str, &str)]) -> (Ran, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, spec).expect("write");
    let json = dir.path().join("r.json");
    let ran = smoke(
        dir.path(),
        &[
            "--spec",
            &path.to_string_lossy(),
            "--report",
            &format!("json:{}", json.display()),
        ],
        env,
    );
    let report = read_json(&json);
    (ran, report)
}

/// A spec for the staging app at `base` whose one check, `create`, POSTs /things, captures the
/// new thing's `id` and cleans it up with `DELETE /things/{id}`.
fn create_with_cleanup(base: &str) -> String {
    format!(
        r#"[environments.staging]
base-url = "{base}"

[[check]]
name = "create"
method = "POST"
url = "/things"
expect.status = 201
capture.id = "/id"
cleanup = {{ url = "/things/${{id}}" }}
"#
    )
}

/// The ways a secret may be written in output: as itself, escaped in a JSON string, in XML,
/// and percent-encoded (every byte but letters and digits).
fn forms_of(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("a string");
    let xml = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    let mut percent = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() {
            percent.push(char::from(b));
        } else {
            let _ = write!(percent, "%{b:02X}");
        }
    }
    let mut forms = vec![
        secret.to_owned(),
        json[1..json.len() - 1].to_owned(),
        xml,
        percent,
    ];
    forms.dedup();
    forms
}

/// No secret, in any of its forms, in stdout, stderr or any of `files`.
fn assert_no_secret(ran: &Ran, files: &[&Path], secrets: &[&str]) {
    for secret in secrets {
        for form in forms_of(secret) {
            assert!(!ran.stdout.contains(&form), "{form} on stdout");
            assert!(
                !ran.stderr.contains(&form),
                "{form} on stderr:\n{}",
                ran.stderr
            );
            for f in files {
                let text = std::fs::read_to_string(f).expect("the report was written");
                assert!(!text.contains(&form), "{form} in {}:\n{text}", f.display());
            }
        }
    }
}

/// A loopback HTTP server whose answer `reply` makes from each request (its head, a blank line
/// and its body), for what a fixed reply cannot do (echo a request, count). It records every
/// request before answering.
struct Server {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(reply: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        let reply = std::sync::Arc::new(reply);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (record, reply) = (
                    std::sync::Arc::clone(&record),
                    std::sync::Arc::clone(&reply),
                );
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    let complete = |r: &[u8]| {
                        let text = String::from_utf8_lossy(r);
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            return false;
                        };
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        body.len() >= length
                    };
                    while !complete(&request) {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&request).into_owned();
                    record
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(request.clone());
                    let _ = stream.write_all(reply(&request).as_bytes());
                });
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The testkit's demo stack with its own secrets, postgres and redis published on loopback.
struct SmokeStack {
    demo: DemoStack,
    app: String,
    db_url: String,
    redis_url: String,
    admin_password: String,
    webhook_secret: String,
    db_password: String,
}

/// [`demo_stack`] on v1, once its health check passes.
fn healthy_demo_stack(prefix: &str) -> SmokeStack {
    let stack = demo_stack(prefix, "v1");
    wait_for("the app is healthy", Duration::from_mins(1), || {
        http_get(stack.app.trim_start_matches("http://"), "/api/health")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    stack
}

fn demo_stack(prefix: &str, version: &str) -> SmokeStack {
    let admin_password = unique("admin-pw-");
    let webhook_secret = unique("hook-secret-");
    let db_password = unique("db-pw-");
    let demo = DemoStack::build(version)
        .prefix(prefix)
        .env("DEMO_ADMIN_PASSWORD", &admin_password)
        .env("WEBHOOK_SECRET", &webhook_secret)
        .env("POSTGRES_PASSWORD", &db_password)
        .env("APP_ENV", "staging")
        .with_file("fixtures/smoke-ports.yml")
        .up();
    let app = format!("127.0.0.1:{}", demo.published("app", "3000"));
    // /api/version answers even on the broken image, whose health never passes.
    wait_for("the app answers", Duration::from_mins(1), || {
        http_get(&app, "/api/version")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    let db_url = format!(
        "postgres://demo:{db_password}@127.0.0.1:{}/demo",
        demo.published("postgres", "5432")
    );
    let redis_url = format!("redis://127.0.0.1:{}", demo.published("redis", "6379"));
    SmokeStack {
        demo,
        app: format!("http://{app}"),
        db_url,
        redis_url,
        admin_password,
        webhook_secret,
        db_password,
    }
}

impl SmokeStack {
    /// The environment the demo spec reads, with the test S3 and SMTP services.
    fn env(&self, mail_api: &str) -> Vec<(String, String)> {
        let s3 = s3();
        let smtp = smtp();
        vec![
            ("APP_URL".into(), self.app.clone()),
            ("DATABASE_URL".into(), self.db_url.clone()),
            ("REDIS_URL".into(), self.redis_url.clone()),
            ("DEMO_ADMIN_PASSWORD".into(), self.admin_password.clone()),
            ("WEBHOOK_SECRET".into(), self.webhook_secret.clone()),
            ("S3_ENDPOINT".into(), s3.endpoint),
            ("S3_BUCKET".into(), s3.bucket),
            ("S3_ACCESS_KEY_ID".into(), s3.access_key_id),
            ("S3_SECRET_ACCESS_KEY".into(), s3.secret_access_key),
            ("SMTP_HOST".into(), "127.0.0.1".into()),
            ("SMTP_PORT".into(), smtp.plain_port.to_string()),
            ("SMTP_FROM".into(), "lifeboat-smoke@demo.test".into()),
            ("MAIL_API_URL".into(), mail_api.to_owned()),
        ]
    }

    /// One value from the demo database, through psql in its container.
    fn sql(&self, query: &str) -> String {
        self.demo.sql(query)
    }
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A Mailpit/Mailhog-style API over the test SMTP server's Maildir.
fn mail_api() -> (Background, String) {
    mail_api_below("")
}

/// The same API below a path (`/mailpit`), as behind a reverse proxy; its URL includes the path.
fn mail_api_below(prefix: &str) -> (Background, String) {
    mail_api_late(prefix, 0.0)
}

/// The API showing a mail only `late` seconds after it was received.
fn mail_api_late(prefix: &str, late: f64) -> (Background, String) {
    let port = closed_port();
    let server = Background::spawn(
        Command::new("python3").args([
            workspace_root()
                .join("tests/fixtures/mail_api.py")
                .to_string_lossy()
                .as_ref(),
            &stack_var("LBTEST_MAILDIR"),
            &port.to_string(),
            prefix,
            &late.to_string(),
        ]),
    );
    wait_for("the mail API listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (server, format!("http://127.0.0.1:{port}{prefix}"))
}

/// Whether any mail in the test Maildir contains `needle`.
fn maildir_has(needle: &str) -> bool {
    let maildir = PathBuf::from(stack_var("LBTEST_MAILDIR"));
    ["new", "cur"].iter().any(|d| {
        std::fs::read_dir(maildir.join(d)).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle)))
        })
    })
}

#[test]
fn the_demo_spec_passes_on_the_demo_stack_cleans_up_and_never_shows_a_secret() {
    let stack = healthy_demo_stack("lbtest-smoke-");
    let (_mail, api) = mail_api();
    let env = stack.env(&api);
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = [
        stack.admin_password.as_str(),
        stack.webhook_secret.as_str(),
        stack.db_password.as_str(),
        "lbtest-secret",
    ];
    a_failure_shows_no_token_and_no_secret(dir.path(), &env, &secrets);
    let prod_json = production_runs_only_what_reads(&stack, dir.path(), &env);
    let (ran, json, junit) = staging_runs_everything(dir.path(), &env);
    the_probe_data_is_gone(&stack, &read_json(&json));
    assert_no_secret(&ran, &[&json, &junit, &prod_json], &secrets);
}

/// First, a failure that shows a response and a URL shows neither the token nor the secret.
fn a_failure_shows_no_token_and_no_secret(dir: &Path, env: &[(String, String)], secrets: &[&str]) {
    let leaky = dir.join("leaky.toml");
    std::fs::write(
        &leaky,
        r#"
[environments.staging]
base-url = "${env:APP_URL}"

[[check]]
name = "login"
method = "POST"
url = "/api/auth/login"
json = { email = "admin@demo.test", password = "${secret:DEMO_ADMIN_PASSWORD}" }
capture.token = { pointer = "/token", secret = true }
expect.status = 500

[[check]]
name = "echo"
url = "/api/health?key=${secret:WEBHOOK_SECRET}"
expect.status = 404
"#,
    )
    .expect("write");
    let leak_json = dir.join("leak.json");
    let leak_junit = dir.join("leak.xml");
    let ran = smoke(
        dir,
        &[
            "--spec",
            &leaky.to_string_lossy(),
            "--report",
            &format!("json:{}", leak_json.display()),
            "--report",
            &format!("junit:{}", leak_junit.display()),
        ],
        &env_refs(env),
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let checks = by_name(&read_json(&leak_json));
    // The first login attempt of the stack: the limiter (5 a minute) lets it through.
    let login = &checks["login"].1;
    assert!(
        login.contains("\"token\":\"***\""),
        "the token is scrubbed: {login}"
    );
    assert!(checks["echo"].1.contains("key=***"), "{:?}", checks["echo"]);
    assert_no_secret(&ran, &[&leak_json, &leak_junit], secrets);
}

/// Production is read-only: the checks that write are skipped, and what they depend on too.
/// What only those need (the bucket, the mail server, the webhook's secret) is not asked for.
/// Returns the path of its JSON report.
fn production_runs_only_what_reads(
    stack: &SmokeStack,
    dir: &Path,
    env: &[(String, String)],
) -> PathBuf {
    let spec = fixture_spec();
    let spec = spec.to_string_lossy();
    let prod_json = dir.join("prod.json");
    let prod_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("S3_") && !k.starts_with("SMTP_") && k != "WEBHOOK_SECRET")
        .cloned()
        .collect();
    let ran = smoke(
        dir,
        &[
            "--spec",
            &spec,
            "--env",
            "production",
            "--report",
            &format!("json:{}", prod_json.display()),
        ],
        &env_refs(&prod_env),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let checks = by_name(&read_json(&prod_json));
    for name in [
        "health",
        "version",
        "login",
        "login-rejects-wrong-password",
        "auth-required",
        "response-time",
        "postgres",
        "redis",
    ] {
        assert_eq!(checks[name].0, "passed", "{name}: {:?}", checks[name]);
    }
    for name in ["create-business", "rate-limit", "webhook", "upload", "mail"] {
        assert_eq!(checks[name].0, "skipped", "{name}");
        assert!(
            checks[name]
                .1
                .contains("read-only (--allow-writes runs it)"),
            "{:?}",
            checks[name]
        );
    }
    assert!(
        checks["read-business"]
            .1
            .contains("depends on `create-business`, which was skipped"),
        "{:?}",
        checks["read-business"]
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM businesses WHERE name LIKE 'smoke %'"),
        "0"
    );

    prod_json
}

/// Staging: everything, with both reports. The run and its reports' paths (JSON, JUnit).
fn staging_runs_everything(dir: &Path, env: &[(String, String)]) -> (Ran, PathBuf, PathBuf) {
    let spec = fixture_spec();
    let spec = spec.to_string_lossy();
    let json = dir.join("smoke.json");
    let junit = dir.join("smoke.xml");
    let ran = smoke(
        dir,
        &[
            "--spec",
            &spec,
            "--env",
            "staging",
            "--report",
            &format!("json:{}", json.display()),
            "--report",
            &format!("junit:{}", junit.display()),
        ],
        &env_refs(env),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report = read_json(&json);
    let checks = by_name(&report);
    assert_eq!(checks.len(), 14, "{checks:?}");
    for (name, (status, message, _)) in &checks {
        assert_eq!(status, "passed", "{name}: {message}");
    }
    assert!(
        checks["rate-limit"].1.contains("429 at request")
            && checks["rate-limit"].1.contains("Retry-After")
    );
    assert!(
        checks["mail"].1.contains("arrived in the mail API"),
        "{:?}",
        checks["mail"]
    );
    assert!(checks["upload"].1.contains("put, read back and deleted"));
    assert!(
        ran.stderr.contains("14 of 14 checks passed"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("✓ health"),
        "one line per check: {}",
        ran.stderr
    );
    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert!(xml.contains("tests=\"14\" failures=\"0\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 14);

    (ran, json, junit)
}

/// Probe data carried the run id and is gone: the business (DELETE at the end), the S3 object
/// and the mail; the payment event is the app's record of the webhook.
fn the_probe_data_is_gone(stack: &SmokeStack, report: &serde_json::Value) {
    let run_id = report["run_id"].as_str().expect("run id");
    assert!(run_id.starts_with("smoke-"), "{run_id}");
    let cleanups = report["cleanups"].as_array().expect("cleanups");
    assert_eq!(cleanups.len(), 1, "{cleanups:?}");
    assert_eq!(cleanups[0]["ok"], true, "{cleanups:?}");
    assert_eq!(
        stack.sql(&format!(
            "SELECT count(*) FROM businesses WHERE name = 'smoke {run_id}'"
        )),
        "0",
        "the business the smoke test created was deleted"
    );
    assert_eq!(
        stack.sql(&format!(
            "SELECT count(*) FROM payments WHERE event_id = 'smoke-{run_id}'"
        )),
        "1"
    );
    assert!(
        !maildir_has(run_id),
        "the probe mail was deleted through the mail API"
    );
    let bucket = lifeboat_bucket();
    let left = tokio_block(bucket.list(&format!("smoke/{run_id}")));
    assert!(left.is_empty(), "probe objects left: {left:?}");
}

/// The test bucket, through lifeboat's own S3 module.
fn lifeboat_bucket() -> lifeboat::s3::Bucket {
    s3().bucket("lifeboat/")
}

/// An S3 call that must succeed.
fn tokio_block<T, E: std::fmt::Debug>(f: impl std::future::Future<Output = Result<T, E>>) -> T {
    block_on(f).expect("S3 call")
}

/// A CA and a certificate for 127.0.0.1 it signed, valid 10 days, served over HTTPS.
fn https_server() -> (Background, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let openssl = |args: &[&str]| {
        let out = run(Command::new("openssl").args(args));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=smoke-test-ca",
        "-days",
        "10",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("leaf.key"),
        "-out",
        &p("leaf.csr"),
    ]);
    std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "10",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("leaf.pem"),
    ]);
    let port = closed_port();
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{cert}', '{key}')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        cert = p("leaf.pem"),
        key = p("leaf.key"),
    );
    let server = Background::spawn(
        Command::new("python3")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null()),
    );
    wait_for("the https server listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (server, port, dir)
}

#[test]
fn every_assertion_and_check_kind_passes_and_fails_as_it_should() {
    let stack = healthy_demo_stack("lbtest-smoke-kinds-");
    let (_mail, api) = mail_api();
    let (_proxied_mail, proxied_api) = mail_api_below("/mailpit");
    let (_https, tls_port, tls_dir) = https_server();
    let slow = HttpFixture::start(Reply::Dribble {
        head: "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n".into(),
        body: "sloooo".into(),
        gap: Duration::from_millis(60),
    });
    let silent = HttpFixture::start(Reply::Silent);
    let refused = lifeboat_testkit::refused_port();
    let closed = refused.port;
    let spec = fixture_with(
        "smoke-kinds.toml",
        &[
            ("api", api.clone()),
            ("ca", tls_dir.path().join("ca.pem").display().to_string()),
            ("closed", closed.to_string()),
            ("proxied_api", proxied_api.clone()),
            ("silent", silent.url("/")),
            ("slow", slow.url("/")),
            ("tls_port", tls_port.to_string()),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kinds.toml");
    std::fs::write(&path, spec).expect("write");
    let json = dir.path().join("kinds.json");
    let mut env = stack.env(&api);
    env.push(("SMOKE_DB".into(), stack.db_url.clone()));
    let ran = smoke(
        dir.path(),
        &[
            "--spec",
            &path.to_string_lossy(),
            "--report",
            &format!("json:{}", json.display()),
        ],
        &env_refs(&env),
    );
    assert_eq!(ran.code, 1, "some checks fail: {}", ran.stderr);
    let checks = by_name(&read_json(&json));
    assert_statuses(&checks, "skipped");
    let says = |name: &str, words: &str| assert_says(&checks, name, words);
    says("fail-status", "status 200, expected 404");
    says(
        "fail-header-contains",
        "header content-type is \"application/json\", expected it to contain \"text/html\"",
    );
    says("fail-header-present", "no x-nope header");
    says(
        "fail-json-equals",
        "/status is \"healthy\", expected \"sick\"",
    );
    says("fail-json-exists", "nothing at /nope");
    says(
        "fail-json-type",
        "/status is \"healthy\", expected a number",
    );
    says("fail-body-contains", "does not contain \"unicorn\"");
    says("fail-body-regex", "does not match /^<html/");
    says("fail-max-ms", "more than 100 ms");
    says("fail-tls-days", "expected at least 30");
    says("fail-untrusted-certificate", "certificate");
    says("fail-timeout", "no result within its timeout of 300 ms");
    says("fail-postgres-compare", "41, expected \"42\"");
    says("fail-postgres-read-only", "read-only transaction");
    says("fail-redis-down", "Redis");
    says("fail-smtp-mail-api-down", "the mail API");
    says("pass-smtp-mail-api-below-a-path", "arrived in the mail API");
    says("pass-rate-limit", "429 at request");
    says("fail-rate-limit", "no 429 in 3 requests (answers: 200×3)");
    says("fail-webhook-wrong-secret", "status 401");
    says(
        "skip-after-a-failure",
        "depends on `fail-status`, which failed",
    );
    assert_eq!(checks["fail-retries"].2, 3, "the first try and 2 retries");
    // Without `wait` a failing check is tried once; with it, again until the time is up (how
    // often depends on the machine's load).
    assert!(
        checks["fail-wait-until-ready"].2 >= 2,
        "{:?}",
        checks["fail-wait-until-ready"]
    );
    assert_eq!(
        stack.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'smoke_must_not_exist'"),
        "0"
    );
    assert_no_secret(
        &ran,
        &[&json],
        &[stack.db_password.as_str(), stack.webhook_secret.as_str()],
    );
}

#[test]
fn the_broken_image_fails_exactly_the_health_checks_and_the_report_says_which() {
    let stack = demo_stack("lbtest-smoke-broken-", "broken");
    let env = stack.env("");
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("broken.xml");
    let json = dir.path().join("broken.json");
    let ran = smoke(
        dir.path(),
        &[
            "--spec",
            &fixture_spec().to_string_lossy(),
            "--env",
            "staging",
            "--tag",
            "seed-002",
            "--tag",
            "stack",
            "--report",
            &format!("junit:{}", junit.display()),
            "--report",
            &format!("json:{}", json.display()),
        ],
        &env_refs(&env),
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let checks = by_name(&read_json(&json));
    assert_eq!(checks.len(), 12, "{checks:?}");
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, c)| c.0 == "failed")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(failed, ["health", "response-time"], "{checks:#?}");
    assert!(
        checks["health"].1.contains("status 503, expected 200"),
        "{:?}",
        checks["health"]
    );
    assert!(
        checks["health"].2 > 1,
        "health waited until ready before failing"
    );
    assert!(
        ran.stderr.contains("10 of 12 checks passed, 2 failed"),
        "{}",
        ran.stderr
    );
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("failures=\"2\""), "{xml}");
    assert!(
        xml.contains("<testcase name=\"health\" classname=\"smoke.http\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
}

/// One case of tests/fixtures/spec-errors (see its README): the spec, with `{{app}}` replaced,
/// the arguments and variables of the run, and what stderr must say.
struct SpecErrorCase {
    name: String,
    spec: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    expected: Vec<String>,
}

fn spec_error_cases(app: &str) -> Vec<SpecErrorCase> {
    let dir = workspace_root().join("tests/fixtures/spec-errors");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/spec-errors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    specs.sort();
    specs
        .iter()
        .map(|spec| {
            let name = spec
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let expected = spec.with_extension("expected");
            let expected = std::fs::read_to_string(&expected)
                .unwrap_or_else(|e| panic!("{name} has no {}: {e}", expected.display()));
            let mut case = SpecErrorCase {
                spec: std::fs::read_to_string(spec)
                    .expect("spec")
                    .replace("{{app}}", app),
                name,
                args: Vec::new(),
                env: Vec::new(),
                expected: Vec::new(),
            };
            for line in expected.lines().filter(|l| !l.is_empty()) {
                if let Some(args) = line.strip_prefix("@args ") {
                    case.args.extend(args.split(' ').map(str::to_owned));
                } else if let Some(pair) = line.strip_prefix("@env ") {
                    let (k, v) = pair.split_once('=').expect("@env KEY=VALUE");
                    case.env.push((k.to_owned(), v.to_owned()));
                } else {
                    case.expected.push(line.to_owned());
                }
            }
            assert!(!case.expected.is_empty(), "{}: nothing expected", case.name);
            case
        })
        .collect()
}

/// A spec mistake: exit 2 and stderr.
fn spec_error(case: &SpecErrorCase) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, &case.spec).expect("write");
    let mut all = vec!["--spec", path.to_str().expect("utf-8 path")];
    all.extend(case.args.iter().map(String::as_str));
    let env: Vec<(&str, &str)> = case
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ran = smoke(dir.path(), &all, &env);
    assert_eq!(
        ran.code, 2,
        "tests/fixtures/spec-errors/{}:\n{}\n{}",
        case.name, case.spec, ran.stderr
    );
    ran.stderr
}

#[test]
fn every_spec_error_case_names_its_line_and_sends_nothing() {
    let app = HttpFixture::start(Reply::Raw(http_response("200 OK", "", "{}")));
    let cases = spec_error_cases(&app.url(""));
    assert!(
        cases.len() >= 22,
        "every case of tests/fixtures/spec-errors"
    );
    for case in &cases {
        let stderr = spec_error(case);
        for w in &case.expected {
            assert!(
                stderr.contains(w.as_str()),
                "tests/fixtures/spec-errors/{}: {stderr:?} should say {w:?}",
                case.name
            );
        }
    }
    assert!(
        app.requests().is_empty(),
        "nothing was sent: {:?}",
        app.requests()
    );
    // And the spec of the flag cases, right, runs.
    let base = format!("[environments.staging]\nbase-url = \"{}\"\n", app.url(""));
    let ok = format!("{base}[[check]]\nname = \"a\"\nurl = \"/\"\ntags = [\"t\"]\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, &ok).expect("write");
    let ran = smoke(dir.path(), &["--spec", path.to_str().expect("utf-8")], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(app.requests().len(), 1);
}

#[test]
fn production_sends_only_read_only_checks_unless_writes_are_allowed() {
    let app = HttpFixture::start(Reply::Raw(http_response("200 OK", "", "{}")));
    let text = format!(
        "[environments.production]\nbase-url = \"{}\"\n\n\
         [[check]]\nname = \"read\"\nurl = \"/read\"\n\n\
         [[check]]\nname = \"write\"\nmethod = \"POST\"\nurl = \"/write\"\n",
        app.url("")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, text).expect("write");
    let spec = path.to_string_lossy();
    let ran = smoke(dir.path(), &["--spec", &spec], &[]);
    assert_eq!(
        ran.code, 0,
        "a skipped write is not a failure: {}",
        ran.stderr
    );
    assert!(ran.stderr.contains("– write"), "{}", ran.stderr);
    let seen = app.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /read "), "{seen:?}");
    let ran = smoke(dir.path(), &["--spec", &spec, "--allow-writes"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(app.requests().iter().any(|r| r.starts_with("POST /write ")));
}

#[test]
fn independent_checks_run_at_the_same_time() {
    // Three checks that each wait out a 1 s timeout: one after the other would take 3 s.
    let silent = HttpFixture::start(Reply::Silent);
    let mut text = String::new();
    for n in 0..3 {
        let _ = write!(
            text,
            "[[check]]\nname = \"c{n}\"\nurl = \"{}\"\ntimeout = \"1s\"\n",
            silent.url(&format!("/{n}"))
        );
    }
    let (ran, report) = run_spec(&text, &[]);
    assert_eq!(ran.code, 1);
    assert_eq!(report["failed"], 3);
    let ms = report["duration_ms"].as_u64().expect("duration");
    assert!(ms < 2500, "the three timeouts overlapped: {ms} ms");
}

#[test]
fn the_readme_example_is_the_demo_spec_and_parses() {
    let readme = std::fs::read_to_string(workspace_root().join("docs/lifeboat-smoke.md"))
        .expect("docs/lifeboat-smoke.md");
    let start = readme
        .find("```toml smoke.toml\n")
        .expect("lifeboat-smoke's manual has a ```toml smoke.toml example")
        + "```toml smoke.toml\n".len();
    let end = readme[start..].find("```").expect("closed") + start;
    let example = &readme[start..end];
    let fixture = std::fs::read_to_string(fixture_spec()).expect("fixture");
    assert_eq!(
        example, fixture,
        "the manual's example is tests/fixtures/smoke.toml"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, example).expect("write");
    let ran = smoke(
        dir.path(),
        &["--spec", &path.to_string_lossy(), "--list"],
        &[],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().count(), 14, "{}", ran.stdout);
    assert_eq!(
        ran.stdout
            .lines()
            .filter(|l| l.contains("seed-002"))
            .count(),
        10,
        "seed 002's ten tests: {}",
        ran.stdout
    );
}

#[test]
fn no_secret_in_any_form_reaches_the_output_or_a_report_at_any_verbosity() {
    // An app that echoes the request into an error page: the secret comes back percent-encoded
    // (from the query) and JSON-escaped (from the body), not as it was written.
    let echo = Server::start(|request| {
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
        let line = head.lines().next().unwrap_or_default();
        http_response("500 Internal Server Error", "", &format!("{body} {line}"))
    });
    let secret = format!("{}\"\u{e9}/x y&", unique("pw-"));
    let spec = format!(
        r#"
[[check]]
name = "query"
url = "{query}"
[[check]]
name = "json"
method = "POST"
url = "{json}"
json = {{ password = "${{secret:SMOKE_SECRET}}" }}
"#,
        query = echo.url("/search?key=${secret:SMOKE_SECRET}"),
        json = echo.url("/login"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, spec).expect("write");
    for flags in [&[][..], &["-v"], &["-vv"], &["-vv", "--log-format", "json"]] {
        let json = dir.path().join("r.json");
        let junit = dir.path().join("r.xml");
        let mut args = vec![
            "--spec".to_owned(),
            path.to_string_lossy().into_owned(),
            "--report".to_owned(),
            format!("json:{}", json.display()),
            "--report".to_owned(),
            format!("junit:{}", junit.display()),
        ];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = smoke(dir.path(), &args, &[("SMOKE_SECRET", secret.as_str())]);
        assert_eq!(ran.code, 1, "{flags:?}: {}", ran.stderr);
        let checks = by_name(&read_json(&json));
        for name in ["query", "json"] {
            assert!(
                checks[name].1.contains("***") && checks[name].1.contains("status 500"),
                "{flags:?}: the echo is shown, scrubbed: {:?}",
                checks[name]
            );
        }
        assert_no_secret(&ran, &[&json, &junit], &[&secret]);
        // The forms the app really saw are scrubbed too, not only those computed above.
        let seen = echo.requests();
        let query = seen
            .iter()
            .find_map(|r| r.strip_prefix("GET /search?key="))
            .and_then(|r| r.split(' ').next())
            .expect("the query check was sent");
        assert_ne!(
            query, secret,
            "the query carried the secret percent-encoded"
        );
        let body = seen
            .iter()
            .find(|r| r.starts_with("POST /login"))
            .and_then(|r| r.split_once("\r\n\r\n"))
            .map(|(_, b)| b)
            .expect("the json check was sent");
        assert!(
            !body.contains(&secret),
            "the body carried the secret JSON-escaped: {body}"
        );
        for text in [&ran.stdout, &ran.stderr] {
            assert!(!text.contains(query), "{flags:?}: {text}");
        }
    }
}

#[test]
fn every_attempt_s_probe_data_is_cleaned_up_and_what_cannot_be_is_said() {
    // An app that creates a thing with a new id on each POST /things, fails on POST /broken
    // (perhaps after creating something), and deletes on DELETE.
    let created = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&created);
    let app = Server::start(move |request| {
        if request.starts_with("POST /things ") {
            let id = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            http_response("201 Created", "", &format!("{{\"id\":{id}}}"))
        } else if request.starts_with("DELETE ") {
            http_response("204 No Content", "", "")
        } else {
            http_response("500 Internal Server Error", "", "{\"error\":\"oops\"}")
        }
    });
    let refused = lifeboat_testkit::refused_port();
    let closed = refused.port;
    let spec = format!(
        r#"
[environments.staging]
base-url = "{base}"

[[check]]
name = "retried-create"
method = "POST"
url = "/things"
retries = 2
retry-delay = "10ms"
expect.status = 200 # the app answers 201: every attempt fails, after creating a thing
capture.id = "/id"
cleanup = {{ url = "/things/${{id}}" }}

[[check]]
name = "fails-before-capture"
method = "POST"
url = "/broken"
capture.id2 = "/id"
cleanup = {{ url = "/broken/${{id2}}" }}

[[check]]
name = "never-answered"
method = "POST"
url = "http://127.0.0.1:{closed}/things"
capture.id3 = "/id"
cleanup = {{ url = "http://127.0.0.1:{closed}/things/${{id3}}" }}
"#,
        base = app.url(""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smoke.toml");
    std::fs::write(&path, spec).expect("write");
    let json = dir.path().join("r.json");
    let junit = dir.path().join("r.xml");
    let ran = smoke(
        dir.path(),
        &[
            "--spec",
            &path.to_string_lossy(),
            "--report",
            &format!("json:{}", json.display()),
            "--report",
            &format!("junit:{}", junit.display()),
        ],
        &[],
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let report = read_json(&json);
    assert_eq!(by_name(&report)["retried-create"].2, 3, "three attempts");
    assert_eq!(created.load(std::sync::atomic::Ordering::SeqCst), 3);

    // Each attempt's thing is deleted, not only the last one's.
    let deletes: Vec<String> = app
        .requests()
        .iter()
        .filter_map(|r| r.lines().next().filter(|l| l.starts_with("DELETE ")))
        .map(str::to_owned)
        .collect();
    for id in 1..=3 {
        assert!(
            deletes.contains(&format!("DELETE /things/{id} HTTP/1.1")),
            "{id}: {deletes:?}"
        );
    }
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    let cleanups = report["cleanups"].as_array().expect("cleanups");
    let of = |check: &str| -> Vec<&serde_json::Value> {
        cleanups.iter().filter(|c| c["check"] == check).collect()
    };
    assert_eq!(of("retried-create").len(), 3, "{cleanups:?}");
    assert!(of("retried-create").iter().all(|c| c["ok"] == true));

    the_unsent_cleanup_is_said(&ran, &report, &junit);
    // The app never answered the third: it created nothing, and nothing is said.
    assert!(of("never-answered").is_empty(), "{cleanups:?}");

    // With -q, the warning is still shown: data may be left.
    let ran = smoke(dir.path(), &["--spec", &path.to_string_lossy(), "-q"], &[]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("! cleanup of fails-before-capture"),
        "{}",
        ran.stderr
    );
}

#[test]
fn each_kind_fails_with_a_message_that_says_why() {
    let raw = |status, headers, body| {
        HttpFixture::start(Reply::Raw(http_response(status, headers, body)))
    };
    let no_retry_after = raw("429 Too Many Requests", "", "slow down");
    let accepts_anything = raw(
        "200 OK",
        "Content-Type: application/json\r\n",
        "{\"received\":true}",
    );
    let powered = raw("200 OK", "X-Powered-By: Express\r\n", "ok");
    let no_content = raw("204 No Content", "", "");
    let redirect = raw("302 Found", "Location: /login\r\n", "");
    let refused = lifeboat_testkit::refused_port();
    let closed = refused.port;
    let s3 = s3();
    let no_such_bucket = unique("lbtest-no-such-bucket-");
    let hook_secret = unique("hook-secret-");
    let spec = fixture_with(
        "smoke-failures.toml",
        &[
            (
                "accepts_anything",
                accepts_anything.url("/api/webhooks/payment"),
            ),
            ("no_content", no_content.url("/")),
            ("no_retry_after", no_retry_after.url("/api/auth/login")),
            ("powered", powered.url("/")),
            ("redirect", redirect.url("/")),
        ],
    );
    let db_url = lifeboat_testkit::database_url();
    let closed_text = closed.to_string();
    let (ran, report) = run_spec(
        &spec,
        &[
            ("SMOKE_HOOK", hook_secret.as_str()),
            ("SMOKE_DB", db_url.as_str()),
            ("SMOKE_REDIS", lifeboat_testkit::redis_url().as_str()),
            ("S3_ENDPOINT", s3.endpoint.as_str()),
            ("S3_BUCKET", no_such_bucket.as_str()),
            ("S3_ACCESS_KEY_ID", s3.access_key_id.as_str()),
            ("S3_SECRET_ACCESS_KEY", s3.secret_access_key.as_str()),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", closed_text.as_str()),
            ("SMTP_FROM", "lifeboat-smoke@demo.test"),
        ],
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let checks = by_name(&report);
    assert_eq!(checks.len(), 13, "{checks:?}");
    assert_statuses(&checks, "failed");
    let says = |name: &str, words: &str| assert_says(&checks, name, words);
    says(
        "fail-rate-limit-without-retry-after",
        "/api/auth/login: 429 at request 1 of 3, but without Retry-After",
    );
    says(
        "pass-rate-limit-retry-after-not-required",
        "429 at request 1 of 3",
    );
    says(
        "fail-webhook-accepts-a-forged-signature",
        "a forged signature was answered 200, expected 4xx",
    );
    // Only the forged payload was sent: a check that already failed sends nothing more.
    let seen = accepts_anything.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains(&format!("sha256={}", "0".repeat(64))),
        "{seen:?}"
    );
    says(
        "fail-header-that-must-be-absent",
        "a x-powered-by header, expected none",
    );
    says("pass-status-class", "→ 204");
    says("fail-status-class", "status 302, expected 2xx");
    says("fail-default-status-is-2xx", "status 302, expected 2xx");
    says("fail-postgres-at-most", "SELECT 5: 5, expected at most 4");
    says("fail-postgres-max-ms", "more than 100 ms");
    says("fail-redis-latency", "more than 0 ms");
    the_s3_failure_is_in_the_storage_s_words(&checks, &no_such_bucket);
    says(
        "fail-smtp-closed-port",
        &format!("sending mail through 127.0.0.1:{closed}: Connection error: Connection refused"),
    );
    // The report, as lifeboat-smoke wrote it (serde_json escapes as it did).
    let written = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(written.path(), report.to_string()).expect("write");
    assert_no_secret(
        &ran,
        &[written.path()],
        &[&hook_secret, &s3.secret_access_key],
    );
}

#[test]
fn a_probe_mail_that_arrives_after_its_check_is_deleted_by_the_cleanup() {
    // A mail catcher that shows a mail 3 s after it came, and a check that waits 1 s for it.
    let (_mail, api) = mail_api_late("", 3.0);
    let port = smtp().plain_port.to_string();
    let (ran, report) = run_spec(
        &format!(
            r#"
[[check]]
name = "late-mail"
kind = "smtp"
to = "probe@demo.test"
mail-api = "{api}"
timeout = "1s"
"#
        ),
        &[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", port.as_str()),
            ("SMTP_FROM", "lifeboat-smoke@demo.test"),
        ],
    );
    assert_eq!(ran.code, 1, "the check timed out: {}", ran.stderr);
    let checks = by_name(&report);
    assert_eq!(checks["late-mail"].0, "failed", "{checks:?}");
    let cleanups = report["cleanups"].as_array().expect("cleanups");
    assert_eq!(cleanups.len(), 1, "{cleanups:?}");
    assert!(cleanups[0]["error"].is_null(), "{cleanups:?}");
    let run_id = report["run_id"].as_str().expect("run id");
    assert!(
        !maildir_has(run_id),
        "the late probe mail was found and deleted at the cleanup"
    );
}

#[test]
fn a_check_s_cleanup_runs_once_what_depends_on_it_ended_not_after_the_slowest_check() {
    // The app's own log of what happened, in order: a slow check answered last.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let events = std::sync::Arc::clone(&log);
    let app = Server::start(move |request| {
        let first = request.lines().next().unwrap_or_default().to_owned();
        if first.starts_with("GET /slow ") {
            std::thread::sleep(Duration::from_millis(1500));
        }
        events.lock().expect("log").push(first.clone());
        if first.starts_with("POST /things ") {
            http_response("201 Created", "", "{\"id\":7}")
        } else if first.starts_with("DELETE ") {
            http_response("204 No Content", "", "")
        } else {
            http_response("200 OK", "", "{\"id\":7}")
        }
    });
    let spec = format!(
        "{}\n[[check]]\nname = \"read\"\ndepends-on = [\"create\"]\nurl = \"/things/${{id}}\"\n\n\
         [[check]]\nname = \"slow\"\nurl = \"/slow\"\n",
        create_with_cleanup(&app.url(""))
    );
    let (ran, _) = run_spec(&spec, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let seen = log.lock().expect("log").clone();
    let at = |line: &str| {
        seen.iter()
            .position(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line}: {seen:?}"))
    };
    // After the check that uses the capture, and before the slow, unrelated check is done.
    assert!(at("GET /things/7 ") < at("DELETE /things/7 "), "{seen:?}");
    assert!(at("DELETE /things/7 ") < at("GET /slow "), "{seen:?}");
}

#[test]
fn a_signal_stops_the_checks_and_removes_the_probe_data_before_the_run_ends() {
    for (signal, code) in [("TERM", 1), ("INT", 130)] {
        // The app answers the read that depends on the created thing only after a minute.
        let app = Server::start(|request| {
            let first = request.lines().next().unwrap_or_default();
            if first.starts_with("POST /things ") {
                http_response("201 Created", "", "{\"id\":7}")
            } else if first.starts_with("DELETE ") {
                http_response("204 No Content", "", "")
            } else {
                std::thread::sleep(Duration::from_mins(1));
                http_response("200 OK", "", "{}")
            }
        });
        let spec = format!(
            "{}\n[[check]]\nname = \"read\"\ndepends-on = [\"create\"]\nurl = \"/things/${{id}}\"\n\
             timeout = \"90s\"\n\n[[check]]\nname = \"after\"\ndepends-on = [\"read\"]\nurl = \"/after\"\n",
            create_with_cleanup(&app.url(""))
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smoke.toml");
        std::fs::write(&path, spec).expect("write");
        let mut child = lifeboat("lifeboat-smoke")
            .dir(dir.path())
            .args(["--spec", &path.to_string_lossy()])
            .spawn();
        // Once the slow read is under way (its cleanup registered), the CI job is cancelled.
        wait_for("the read reaches the app", Duration::from_secs(30), || {
            app.requests()
                .iter()
                .any(|r| r.starts_with("GET /things/7 "))
                .then_some(())
        });
        child.signal(signal);
        let out = child.wait();
        let stderr = &out.stderr;
        assert_eq!(out.code, code, "SIG{signal}: {stderr}");
        let seen: Vec<String> = app
            .requests()
            .iter()
            .map(|r| r.lines().next().unwrap_or_default().to_owned())
            .collect();
        assert!(
            seen.iter().any(|l| l.starts_with("DELETE /things/7 ")),
            "SIG{signal}: the probe data is removed: {seen:?}\n{stderr}"
        );
        assert!(
            !seen.iter().any(|l| l.starts_with("GET /after ")),
            "SIG{signal}: nothing new starts: {seen:?}"
        );
        assert!(
            stderr.contains(&format!("stopped by SIG{signal}")),
            "SIG{signal}: {stderr}"
        );
    }
}

#[test]
fn a_redis_check_speaks_tls_to_managed_redis_and_checks_its_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    lifeboat_testkit::test_certificates(certs.path());
    // The server runs as the image's redis user: it must read its key.
    for f in ["server.key", "server.crt", "ca.pem"] {
        let all_read =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
        std::fs::set_permissions(certs.path().join(f), all_read).expect("chmod");
    }
    let mount = format!("{}:/tls:ro", certs.path().display());
    let redis = lifeboat_testkit::TestContainer::run(
        "lbtest-rediss-",
        &[
            "-v",
            &mount,
            "-p",
            "127.0.0.1::6380",
            "lifeboat-test/redis:7",
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            "6380",
            "--tls-cert-file",
            "/tls/server.crt",
            "--tls-key-file",
            "/tls/server.key",
            "--tls-ca-cert-file",
            "/tls/ca.pem",
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tls-redis-pw",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
        ],
    );
    let url = format!(
        "rediss://:tls-redis-pw@localhost:{}",
        redis.host_port("6380")
    );
    let ca = certs.path().join("ca.pem");
    let wrong = certs.path().join("wrong-ca.pem");
    let spec = format!(
        r#"
[[check]]
name = "tls"
kind = "redis"
url = "{url}"
ca-file = "{ca}"
wait = "20s"

[[check]]
name = "wrong-ca"
kind = "redis"
depends-on = ["tls"]
url = "{url}"
ca-file = "{wrong}"

[[check]]
name = "public-roots"
kind = "redis"
depends-on = ["tls"]
"#,
        ca = ca.display(),
        wrong = wrong.display(),
    );
    // The last check reads REDIS_URL, password and all: never shown.
    let (ran, report) = run_spec(&spec, &[("REDIS_URL", url.as_str())]);
    assert!(!report.to_string().contains("tls-redis-pw"), "{report}");
    let checks = by_name(&report);
    assert_eq!(checks["tls"].0, "passed", "{}", ran.stderr);
    assert_eq!(checks["wrong-ca"].0, "failed", "{}", ran.stderr);
    assert_eq!(checks["public-roots"].0, "failed", "{}", ran.stderr);
    assert!(!ran.stderr.contains("tls-redis-pw"), "{}", ran.stderr);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
}

#[test]
fn a_cleanup_that_fails_makes_the_run_fail() {
    let app = Server::start(|request| {
        let first = request.lines().next().unwrap_or_default();
        if first.starts_with("POST /things ") {
            http_response("201 Created", "", "{\"id\":7}")
        } else if first.starts_with("DELETE ") {
            http_response("500 Internal Server Error", "", "cannot delete")
        } else {
            http_response("200 OK", "", "{}")
        }
    });
    let spec = create_with_cleanup(&app.url(""));
    let (ran, report) = run_spec(&spec, &[]);
    assert_eq!(
        ran.code, 1,
        "every check passed, but the probe data stays: {}",
        ran.stderr
    );
    assert!(ran.stderr.contains("1 cleanup(s) failed"), "{}", ran.stderr);
    assert_eq!(by_name(&report)["create"].0, "passed");
    let cleanups = report["cleanups"].as_array().expect("cleanups");
    assert!(
        cleanups[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{cleanups:?}"
    );
    assert!(
        app.requests()
            .iter()
            .any(|r| r.starts_with("DELETE /things/7 ")),
        "the cleanup was sent"
    );
}

#[test]
fn an_s3_probe_that_lands_after_its_check_timed_out_is_removed_too() {
    let s3 = s3();
    // The storage takes the probe in whole but answers (and stores it) only after two
    // seconds, when the check has given up.
    let proxy = lifeboat_testkit::FaultyProxy::start(&s3.endpoint, |head| {
        if head.starts_with("PUT ") && head.contains("/smoke/") {
            lifeboat_testkit::Fault::Delay(Duration::from_secs(2))
        } else {
            lifeboat_testkit::Fault::Forward
        }
    });
    let endpoint = proxy.url();
    let spec = "[[check]]\nname = \"upload\"\nkind = \"s3\"\ntimeout = \"1s\"\n";
    let env = [
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_BUCKET", s3.bucket.as_str()),
        ("S3_ACCESS_KEY_ID", s3.access_key_id.as_str()),
        ("S3_SECRET_ACCESS_KEY", s3.secret_access_key.as_str()),
        ("LIFEBOAT_S3_PREFIX", "lifeboat/"),
    ];
    let (ran, report) = run_spec(spec, &env);
    assert_eq!(by_name(&report)["upload"].0, "failed", "{}", ran.stderr);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let run_id = report["run_id"].as_str().expect("run id").to_owned();
    let left = tokio_block(lifeboat_bucket().list(&format!("smoke/{run_id}")));
    assert!(left.is_empty(), "the late probe is gone: {left:?}");
}

#[test]
fn a_secret_across_the_cut_of_a_body_excerpt_or_in_a_basic_header_is_never_shown() {
    let token = "tok-1234567890abcdefghij";
    // The app fails, echoing the request's Authorization header so that the token straddles
    // the 160th character of the body, and again as a Basic header (base64 of user:token).
    let app = Server::start(move |request| {
        let auth = request
            .lines()
            .find_map(|l| l.strip_prefix("Authorization: Bearer "))
            .unwrap_or_default()
            .to_owned();
        let basic = request
            .lines()
            .find_map(|l| l.strip_prefix("X-Echo-Basic: "))
            .unwrap_or_default()
            .to_owned();
        let body = format!("{}{auth} basic={basic}", "x".repeat(150));
        http_response("500 Internal Server Error", "", &body)
    });
    let spec = format!(
        r#"
[environments.staging]
base-url = "{base}"

[[check]]
name = "echo"
url = "/"
headers = {{ "Authorization" = "Bearer ${{secret:API_TOKEN}}", "X-Echo-Basic" = "${{env:BASIC}}" }}
expect.status = 200
"#,
        base = app.url(""),
    );
    // What an app echoing `Authorization: Basic` shows: base64 of user:token.
    let basic = {
        let raw = format!("admin:{token}");
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                out.push(if i <= chunk.len() {
                    char::from(table[((n >> shift) & 63) as usize])
                } else {
                    '='
                });
            }
        }
        out
    };
    let (ran, report) = run_spec(&spec, &[("API_TOKEN", token), ("BASIC", &basic)]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("(body: xxxxx"),
        "the excerpt is shown: {}",
        ran.stderr
    );
    let shown = format!("{}{}{report}", ran.stdout, ran.stderr);
    // No piece of the token (8 characters or more) survives, cut or encoded.
    for start in 0..=token.len() - 8 {
        let piece = &token[start..start + 8];
        assert!(!shown.contains(piece), "{piece} shown: {shown}");
    }
    assert!(
        !shown.contains(&basic[8..basic.len() - 8]),
        "the Basic form shown: {shown}"
    );
}

/// With `--log-format json`, each check is one event with its fields, a failure at ERROR, and
/// the summary carries the counts: log tooling needs no text to find a failure.
#[test]
fn json_logs_give_each_check_and_the_summary_their_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_port();
    std::fs::write(
        dir.path().join("smoke.toml"),
        format!(
            "[environments.staging]\nbase-url = \"http://127.0.0.1:{port}\"\n\n\
             [[check]]\nname = \"health\"\nurl = \"/api/health\"\ntimeout = \"2s\"\n\n\
             [[check]]\nname = \"after-health\"\nurl = \"/x\"\ndepends-on = [\"health\"]\n"
        ),
    )
    .expect("spec");
    let out = smoke(dir.path(), &["--log-format", "json"], &[]);
    assert_eq!(out.code, 1, "{}", out.show());
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let check = events
        .iter()
        .find(|e| e["check"] == "health")
        .unwrap_or_else(|| panic!("no event for the check: {events:?}"));
    assert_eq!(check["level"], "ERROR", "{check}");
    assert_eq!(check["outcome"], "failed", "{check}");
    assert_eq!(check["kind"], "http", "{check}");
    assert!(check["duration_ms"].is_u64(), "{check}");
    let skipped = events
        .iter()
        .find(|e| e["check"] == "after-health")
        .unwrap_or_else(|| panic!("no event for the dependent check: {events:?}"));
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");
    let summary = events
        .iter()
        .find(|e| e["summary"] == true)
        .unwrap_or_else(|| panic!("no summary event: {events:?}"));
    assert_eq!(summary["level"], "ERROR", "{summary}");
    assert_eq!(summary["outcome"], "failed");
    assert_eq!(summary["total"], 2);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["passed"], 0);
    assert_eq!(summary["skipped"], 1);
    assert!(summary["duration_ms"].is_u64(), "{summary}");
}

/// A base-url or check URL that cannot be used is a spec error (exit 2, its line) before
/// anything is sent, and a password in it is never shown.
#[test]
fn a_bad_url_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (spec, says) in [
        (
            "[environments.staging]\nbase-url = \"htp:/app\"\n\n[[check]]\nname = \"h\"\nurl = \"/x\"\n",
            "smoke.toml line 2: base-url: the scheme is htp:",
        ),
        (
            "[[check]]\nname = \"db\"\nkind = \"postgres\"\nurl = \"postgres//u:hunter2@db/app\"\n",
            "smoke.toml line 2: check `db`: not a URL",
        ),
        (
            "[[check]]\nname = \"cache\"\nkind = \"redis\"\nurl = \"http://:hunter2@cache:6379\"\n",
            "check `cache`: the scheme is http:, expected redis:// or rediss://",
        ),
        (
            "[[check]]\nname = \"h\"\nurl = \"https://?token=hunter2\"\n",
            "check `h`: ",
        ),
    ] {
        std::fs::write(dir.path().join("smoke.toml"), spec).expect("spec");
        for verbosity in ["-q", "-v", "-vv"] {
            let out = lifeboat("lifeboat-smoke")
                .dir(dir.path())
                .args([verbosity])
                .secret("hunter2")
                .run();
            assert_eq!(out.code, 2, "{spec}: {}", out.show());
            assert!(out.stderr.contains(says), "{spec}: {}", out.stderr);
        }
    }
}

/// No spec: the error names --spec, the default file and what a spec looks like.
#[test]
fn without_a_spec_the_error_shows_how_to_write_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = smoke(dir.path(), &[], &[]);
    assert_eq!(out.code, 2, "{}", out.show());
    for needed in [
        "--spec FILE",
        "./smoke.toml",
        "[[check]]",
        "base-url",
        "docs/lifeboat-smoke.md",
    ] {
        assert!(out.stderr.contains(needed), "{needed}: {}", out.stderr);
    }
}
