//! Helpers for lifeboat's tests against real services.
//!
//! `scripts/test` starts PostgreSQL, Redis, an S3 server (moto), an SMTP server (aiosmtpd) and
//! builds the images, then hands their addresses to the tests in `LBTEST_*` variables. A test that
//! needs one of them and finds it missing fails with a message saying so: it never passes by
//! skipping.
//!
//! The harness every e2e file uses: [`lifeboat()`] runs a binary with a clean environment and
//! returns a [`Ran`] already checked for panics and known secrets; [`DemoStack`] is the demo
//! app's compose stack, migrated and seeded; [`S3Stack::bucket`] and [`rewrite_sql`] /
//! [`edited_copy`] handle the bucket and backups; [`bin`] refuses a binary older than any
//! workspace crate it is built from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod archive;
mod demo;
mod fresh;
mod run;
mod swarm;

pub use archive::{
    block_on, edited_copy, gunzip, manifest_of, manifest_path, patch_manifest, rewrite_sql,
    sha256_hex,
};
pub use demo::{DemoStack, DemoStackBuilder};
pub use run::{lifeboat, Lifeboat, Ran, Running};
pub use swarm::SwarmStack;

/// A variable set by `scripts/test`; panics with instructions when it is missing.
pub fn stack_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the real service stack. Run `scripts/test` \
             (it starts PostgreSQL, Redis, S3, SMTP and builds the images), or export the LBTEST_* \
             variables it prints with `scripts/test --services-only`."
        ),
    }
}

/// The test PostgreSQL server, as a superuser URL.
pub fn database_url() -> String {
    stack_var("LBTEST_DATABASE_URL")
}

/// The password in [`database_url`], for tests that check it is never shown.
pub fn database_password() -> String {
    run::password_of(&database_url()).expect("a password in LBTEST_DATABASE_URL")
}

/// The MariaDB server's URL (user `lifeboat`, database `lifeboat`), over 127.0.0.1.
pub fn mysql_url() -> String {
    stack_var("LBTEST_MYSQL_URL")
}

/// The password in [`mysql_url`].
pub fn mysql_password() -> String {
    run::password_of(&mysql_url()).expect("a password in LBTEST_MYSQL_URL")
}

/// The MariaDB server's container (its `MARIADB_*` environment names the credentials).
pub fn mysql_container() -> String {
    stack_var("LBTEST_MARIADB_CONTAINER")
}

/// The CA that signed the MariaDB server's certificate (for `localhost` and 127.0.0.1).
pub fn mysql_ca_file() -> String {
    stack_var("LBTEST_MYSQL_CA_FILE")
}

/// The password of the MariaDB server's `root` user.
pub fn mysql_root_password() -> String {
    stack_var("LBTEST_MYSQL_ROOT_PASSWORD")
}

pub fn redis_url() -> String {
    stack_var("LBTEST_REDIS_URL")
}

/// The S3 server: endpoint, bucket, access key id, secret.
pub struct S3Stack {
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub fn s3() -> S3Stack {
    S3Stack {
        endpoint: stack_var("LBTEST_S3_ENDPOINT"),
        bucket: stack_var("LBTEST_S3_BUCKET"),
        access_key_id: stack_var("LBTEST_S3_ACCESS_KEY_ID"),
        secret_access_key: stack_var("LBTEST_S3_SECRET_ACCESS_KEY"),
    }
}

/// The SMTP server: one port per TLS mode, a CA that signed its certificate, and its maildir.
pub struct SmtpStack {
    pub plain_port: u16,
    pub starttls_port: u16,
    pub tls_port: u16,
    pub ca_file: PathBuf,
    pub maildir: PathBuf,
}

pub fn smtp() -> SmtpStack {
    let port = |name: &str| {
        stack_var(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a port"))
    };
    SmtpStack {
        plain_port: port("LBTEST_SMTP_PORT"),
        starttls_port: port("LBTEST_SMTP_STARTTLS_PORT"),
        tls_port: port("LBTEST_SMTP_TLS_PORT"),
        ca_file: stack_var("LBTEST_SMTP_CA_FILE").into(),
        maildir: stack_var("LBTEST_MAILDIR").into(),
    }
}

impl SmtpStack {
    /// Wait up to 10 s for a received message containing `needle`; returns it.
    pub fn wait_for_message(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for dir in ["new", "cur"] {
                if let Ok(entries) = std::fs::read_dir(self.maildir.join(dir)) {
                    for entry in entries.flatten() {
                        if let Ok(text) = std::fs::read_to_string(entry.path()) {
                            if text.contains(needle) {
                                return text;
                            }
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no mail containing {needle:?} arrived in {}",
                self.maildir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A name no other test or run uses: `prefix` and 8 random lowercase characters.
pub fn unique(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase();
    format!("{prefix}{suffix}")
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// A lifeboat binary built by `cargo build --workspace --bins` (as `scripts/test` does first),
/// checked once per test process.
pub fn bin(name: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = checked.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let path = fresh_bin(name);
    checked.push((name.to_owned(), path.clone()));
    path
}

/// [`bin`]'s check: the binary is there and newer than every source it is built from.
fn fresh_bin(name: &str) -> PathBuf {
    // The test executable is target/<profile>/deps/<test>-<hash>; binaries are in target/<profile>/.
    let exe = std::env::current_exe().expect("current test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    // `cargo test` builds only this package's binaries: refuse to test an older build of another,
    // or one older than a workspace crate it is built from (deploy is stale after an edit under
    // restore/). Sources only: a manifest or lockfile change does not always relink every binary.
    let root = workspace_root();
    let sources: Vec<PathBuf> = fresh::crate_dirs_of(&root, name)
        .unwrap_or_else(|| panic!("no workspace member builds {name}"))
        .iter()
        .map(|dir| root.join(dir).join("src"))
        .collect();
    let built = modified(&path);
    if let Some(newer) = sources
        .iter()
        .filter_map(|s| newest(s).filter(|(t, _)| *t > built))
        .map(|(_, p)| p)
        .next()
    {
        panic!(
            "{} is older than {}: run `cargo build --workspace --bins` (scripts/test does)",
            path.display(),
            newer.display()
        );
    }
    path
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The newest file at or below `path`, with its time.
fn newest(path: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((modified(path), path.to_path_buf()));
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .max_by_key(|(t, _)| *t)
}

/// Run a command, returning its output; panics only if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `docker ARGS…` through the CLI, for test setup and inspection.
pub fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// `docker ARGS…` that must succeed; returns its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A container that is removed (with its volumes) when dropped, pass or fail.
pub struct TestContainer {
    pub name: String,
}

impl TestContainer {
    /// `docker run -d --name <unique> ARGS…`
    pub fn run(prefix: &str, args: &[&str]) -> Self {
        let name = unique(prefix);
        let mut full = vec!["run", "-d", "--name", &name, "--label", "lifeboat-test=1"];
        full.extend_from_slice(args);
        docker_ok(&full);
        Self { name }
    }

    /// The host port published for `container_port` (e.g. "5432").
    pub fn host_port(&self, container_port: &str) -> u16 {
        let out = docker_ok(&["port", &self.name, container_port]);
        out.lines()
            .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no published port for {container_port} on {}: {out}",
                    self.name
                )
            })
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// The compose command of this machine: `docker compose` (v2) or `docker-compose` (v1).
pub fn compose_command() -> Vec<String> {
    if let Ok(c) = std::env::var("LBTEST_COMPOSE") {
        return c.split_whitespace().map(str::to_owned).collect();
    }
    let v2 = Command::new("docker").args(["compose", "version"]).output();
    if v2.is_ok_and(|o| o.status.success()) {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// A compose project with a unique name, brought down with its volumes when dropped.
pub struct ComposeProject {
    pub name: String,
    pub file: PathBuf,
    /// More compose files over `file` (`-f` each, in order).
    overrides: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl ComposeProject {
    pub fn new(prefix: &str, file: &Path, env: &[(&str, &str)]) -> Self {
        Self {
            name: unique(prefix),
            file: file.to_path_buf(),
            overrides: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The same project with another compose file over the first (e.g. one that publishes ports).
    #[must_use]
    pub fn with_file(mut self, file: &Path) -> Self {
        self.overrides.push(file.to_path_buf());
        self
    }

    /// A compose command for this project.
    pub fn command(&self, args: &[&str]) -> Command {
        let compose = compose_command();
        let mut cmd = Command::new(&compose[0]);
        cmd.args(&compose[1..])
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file);
        for file in &self.overrides {
            cmd.arg("-f").arg(file);
        }
        cmd.args(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Run a compose command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.command(args));
        assert!(
            out.status.success(),
            "compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = run(self
            .command(&["down", "-v", "--remove-orphans", "-t", "2"])
            .stdout(std::process::Stdio::null()));
    }
}

/// Poll `f` every 200 ms until it returns `Some`, at most `timeout`; panics with `what` after.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.1 GET over a TcpStream: (status, body). Test helper, not a client.
pub fn http_get(host_port: &str, path: &str) -> std::io::Result<(u16, String)> {
    http(host_port, "GET", path, &[], "").map(|r| (r.status, r.body))
}

/// A response as the tests read it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close` (test helper, not a client).
pub fn http(
    host_port: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpReply> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host_port)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.extend([*k, ": ", *v, "\r\n"]);
    }
    request.push_str("\r\n");
    request.push_str(body);
    s.write_all(request.as_bytes())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// What a [`HttpFixture`] does with each connection.
#[derive(Clone)]
pub enum Reply {
    /// Answer these raw bytes, then close.
    Raw(String),
    /// Accept, read the request, and never answer.
    Silent,
    /// Send the head, then the body one byte every `gap`.
    Dribble {
        head: String,
        body: String,
        gap: Duration,
    },
    /// Answer 200 only when the request contains `needle`, else 400.
    RequireInRequest { needle: String },
}

/// A real HTTP server on a loopback port whose behaviour each test chooses: the edge cases a
/// health check must handle (silence, a slow body, a redirect) that no well-behaved app shows.
/// It records every request it reads (head and body), before it answers.
pub struct HttpFixture {
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpFixture {
    pub fn start(reply: Reply) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let requests = std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let reply = reply.clone();
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || serve_one(&mut stream, &reply, &seen));
            }
        });
        Self { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far, in the order they were read: `GET /path HTTP/1.1`, the
    /// headers, a blank line and the body.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn serve_one(
    stream: &mut std::net::TcpStream,
    reply: &Reply,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::{Read, Write};
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    // The body, as long as Content-Length says.
    let head_len = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(request.len(), |p| p + 4);
    let length = String::from_utf8_lossy(&request[..head_len])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_len + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(String::from_utf8_lossy(&request).into_owned());
    match reply {
        Reply::Raw(raw) => drop(stream.write_all(raw.as_bytes())),
        Reply::Silent => std::thread::sleep(Duration::from_secs(30)),
        Reply::Dribble { head, body, gap } => {
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            for b in body.bytes() {
                std::thread::sleep(*gap);
                if stream.write_all(&[b]).is_err() {
                    return;
                }
            }
        }
        Reply::RequireInRequest { needle } => {
            let ok = String::from_utf8_lossy(&request).contains(needle.as_str());
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            drop(write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ));
        }
    }
}

/// `HTTP/1.1 {status}` with a body and its length.
pub fn http_response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// A child process killed (and reaped) when dropped, pass or fail.
pub struct Background(pub std::process::Child);

impl Background {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that refuses every connection while this is alive: bound (so no one else
/// takes it), never listening (so the kernel answers a connection with a reset).
pub struct Refused {
    pub port: u16,
    _socket: rustix::fd::OwnedFd,
}

pub fn refused_port() -> Refused {
    use rustix::net::{
        bind, getsockname, ipproto, socket, AddressFamily, SocketAddrAny, SocketAddrV4, SocketType,
    };
    let socket =
        socket(AddressFamily::INET, SocketType::STREAM, Some(ipproto::TCP)).expect("a socket");
    bind(
        &socket,
        &SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
    )
    .expect("bind");
    let addr: SocketAddrAny = getsockname(&socket).expect("its address");
    let port = std::net::SocketAddr::try_from(addr)
        .expect("an IP address")
        .port();
    Refused {
        port,
        _socket: socket,
    }
}

/// A free loopback port for a server a test starts next (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Whether the tests run as root (the owner of `/proc/self` is uid 0).
/// A small tmpfs, unmounted when dropped: a disk that really fills up.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_string_lossy().into_owned();
        let options = format!("size={size},mode=0700");
        let args = ["mount", "-t", "tmpfs", "-o", &options, "tmpfs", &path];
        // Root mounts it; anyone else needs password-less sudo (scripts/test runs as root in CI).
        let mut cmd = if is_root() {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        } else {
            let mut c = Command::new("sudo");
            c.arg("-n").args(args);
            c
        };
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (root or password-less sudo): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.dir.path().to_string_lossy().into_owned();
        let mut cmd = if is_root() {
            Command::new("umount")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "umount"]);
            c
        };
        let _ = cmd.arg(&path).output();
    }
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Requests through a proxy while an operation runs: `GET path` every 10 ms, each on a new
/// connection with a 5 s timeout, for at most `bound`, until [`RequestLoop::finish`].
pub struct RequestLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests that got an answer (or an error) so far.
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: Option<std::thread::JoinHandle<Requests>>,
}

/// What a [`RequestLoop`] saw.
#[derive(Debug, Default)]
pub struct Requests {
    pub sent: usize,
    /// Each failure: its time since the start, and the status or the error.
    pub failures: Vec<(Duration, String)>,
    /// The answers' `"version"` fields (the demo app's /api/version), in order, each once
    /// per run of the same value.
    pub versions: Vec<String>,
}

impl Requests {
    /// The failures, one per line, for an assertion's message.
    pub fn show(&self) -> String {
        let lines: Vec<String> = self
            .failures
            .iter()
            .take(20)
            .map(|(t, what)| format!("  at {:.3} s: {what}", t.as_secs_f64()))
            .collect();
        format!(
            "{} of {} requests failed:\n{}\nversions seen: {:?}",
            self.failures.len(),
            self.sent,
            lines.join("\n"),
            self.versions
        )
    }
}

impl RequestLoop {
    pub fn start(host_port: &str, path: &str, bound: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (host_port, path) = (host_port.to_owned(), path.to_owned());
        let flag = stop.clone();
        let count = done.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Requests::default();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < bound {
                seen.sent += 1;
                match http(&host_port, "GET", &path, &[], "") {
                    Ok(r) if r.status == 200 => {
                        let v = serde_json::from_str::<serde_json::Value>(&r.body)
                            .ok()
                            .and_then(|j| j["version"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        if seen.versions.last() != Some(&v) {
                            seen.versions.push(v);
                        }
                    }
                    Ok(r) => seen
                        .failures
                        .push((started.elapsed(), format!("HTTP {}", r.status))),
                    Err(e) => seen.failures.push((started.elapsed(), e.to_string())),
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        Self {
            stop,
            done,
            handle: Some(handle),
        }
    }

    /// Wait until `n` more requests have been answered: users were there, before or after.
    pub fn settle(&self, n: usize) {
        let target = self.done.load(std::sync::atomic::Ordering::SeqCst) + n;
        wait_for("requests answered", Duration::from_mins(1), || {
            (self.done.load(std::sync::atomic::Ordering::SeqCst) >= target).then_some(())
        });
    }

    /// Stop, and what was seen.
    pub fn finish(mut self) -> Requests {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `openssl` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = run(std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, another CA, and a server certificate the first signed for `localhost` and
/// `db.example` only (not 127.0.0.1).
pub fn test_certificates(dir: &Path) {
    for ca in ["ca", "wrong-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=lifeboat {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=db.example",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:db.example,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

/// What a [`FaultyProxy`] does with a request, by its head (request line and headers).
pub enum Fault {
    /// Pass it on.
    Forward,
    /// Answer this status instead, without passing it on.
    Fail(u16),
    /// Pass it on after this long.
    Delay(Duration),
}

/// An HTTP proxy on loopback in front of `upstream` (an S3 server), request by request, that
/// fails or delays the requests a rule picks: the storage faults (a part that never uploads, a
/// slow answer) no real server shows on demand. Bodies must have a Content-Length.
pub struct FaultyProxy {
    pub port: u16,
}

impl FaultyProxy {
    pub fn start(upstream: &str, rule: impl Fn(&str) -> Fault + Send + Sync + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let rule = std::sync::Arc::new(rule);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, rule) = (upstream.clone(), std::sync::Arc::clone(&rule));
                std::thread::spawn(move || {
                    let _ = proxy_connection(client, &upstream, &*rule);
                });
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn proxy_connection(
    mut client: std::net::TcpStream,
    upstream: &str,
    rule: &dyn Fn(&str) -> Fault,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // One request: its head, then its body by Content-Length.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let request: Vec<u8> = buf.drain(..head_end + length).collect();
        match rule(&head) {
            Fault::Fail(status) => {
                client.write_all(
                    format!(
                        "HTTP/1.1 {status} Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )?;
                return Ok(());
            }
            Fault::Delay(d) => std::thread::sleep(d),
            Fault::Forward => {}
        }
        // Upstream, one request per connection: the answer is what comes until it closes.
        let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let mut up = std::net::TcpStream::connect(upstream)?;
        up.write_all(head.as_bytes())?;
        up.write_all(&request[head_end..])?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        client.write_all(&answer)?;
    }
}

/// A PostgreSQL of its own whose server certificate is [`test_certificates`]' (signed by the
/// test CA for `localhost` and `db.example`), with `password` for its `postgres` user.
pub fn tls_postgres(certs: &Path, password: &str) -> TestContainer {
    let pg = TestContainer::run(
        "lbtest-tls-",
        &[
            "-e",
            &format!("POSTGRES_PASSWORD={password}"),
            "-p",
            "127.0.0.1::5432",
            "lifeboat-test/postgres:15",
        ],
    );
    wait_for("postgres ready", Duration::from_mins(1), || {
        let ready = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &pg.name]);
        (ready == "healthy").then_some(())
    });
    // The server's certificate becomes the one the test CA signed; a reload takes it.
    let data = "/var/lib/postgresql/data";
    for file in ["server.crt", "server.key"] {
        docker_ok(&[
            "cp",
            &certs.join(file).display().to_string(),
            &format!("{}:{data}/{file}", pg.name),
        ]);
    }
    docker_ok(&[
        "exec",
        &pg.name,
        "sh",
        "-c",
        &format!("chown postgres:postgres {data}/server.* && chmod 600 {data}/server.key"),
    ]);
    docker_ok(&[
        "exec",
        "-u",
        "postgres",
        &pg.name,
        "psql",
        "-qtA",
        "-c",
        "SELECT pg_reload_conf()",
    ]);
    pg
}
