//! Every run of a lifeboat binary in a test goes through [`Lifeboat`]: a clean environment (no
//! stray `LIFEBOAT_*`, `DATABASE_URL` or `S3_*` of the machine), and one [`Ran`] whose
//! construction fails the test when stdout or stderr shows a panic or a known secret. A test
//! cannot forget the check: there is no other way to get a `Ran`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

/// What shows a panic in a binary's output.
const PANIC_MARKS: [&str; 2] = ["panicked", "RUST_BACKTRACE"];

/// Secrets shorter than this are not looked for: too likely to occur by chance.
const MIN_SECRET: usize = 6;

/// A lifeboat binary about to run: `lifeboat("lifeboat-backup").dir(d).args([...]).run()`.
#[must_use]
pub struct Lifeboat {
    name: String,
    cmd: Command,
    checks: Checks,
    stdin: Option<Vec<u8>>,
}

/// The program `name` from [`crate::bin`], with only `PATH` from the machine's environment and
/// stdin from /dev/null.
pub fn lifeboat(name: &str) -> Lifeboat {
    Lifeboat::new(name)
}

impl Lifeboat {
    pub fn new(name: &str) -> Self {
        let mut cmd = Command::new(crate::bin(name));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        Self {
            name: name.to_owned(),
            cmd,
            checks: Checks::known(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.cmd.envs(vars);
        self
    }

    /// The machine's value of each of `vars`, where it has one (`HOME`, `USER`, `DOCKER_HOST`…).
    pub fn inherit(mut self, vars: &[&str]) -> Self {
        for var in vars {
            if let Some(value) = std::env::var_os(var) {
                self.cmd.env(var, value);
            }
        }
        self
    }

    /// Run in `dir` (where the binary looks for `.env` and `lifeboat.toml`).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// These bytes on stdin, then end of file.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// One more secret that must never show, besides the stack's.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.checks.add(secret.into());
        self
    }

    pub fn secrets<S: Into<String>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        for s in secrets {
            self.checks.add(s.into());
        }
        self
    }

    /// A value equal to a known secret that this run prints on purpose (a test's own value
    /// that happens to be the same string): not looked for.
    pub fn not_secret(mut self, value: &str) -> Self {
        self.checks.secrets.retain(|s| s != value);
        self
    }

    /// The command as it would run, to show in a message.
    pub fn show(&self) -> String {
        format!("{:?}", self.cmd)
    }

    /// Run to the end; the output is checked before it is returned.
    pub fn run(self) -> Ran {
        let mut running = self.spawn_with(Stdio::piped(), Stdio::piped());
        running.wait()
    }

    /// Start it with stdout and stderr piped; killed when dropped unless waited for.
    pub fn spawn(self) -> Running {
        self.spawn_with(Stdio::piped(), Stdio::piped())
    }

    /// Start it with stdin piped, for a test that answers a prompt.
    pub fn spawn_interactive(mut self) -> Running {
        self.cmd.stdin(Stdio::piped());
        self.spawn_with(Stdio::piped(), Stdio::piped())
    }

    fn spawn_with(mut self, stdout: Stdio, stderr: Stdio) -> Running {
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self
            .cmd
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd));
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin piped");
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            });
        }
        Running {
            name: self.name,
            child: Some(child),
            checks: self.checks,
            stderr_seen: Arc::default(),
        }
    }
}

/// A binary started by [`Lifeboat::spawn`]: killed and reaped when dropped, pass or fail.
pub struct Running {
    name: String,
    child: Option<Child>,
    checks: Checks,
    /// What [`Running::stderr_lines`] has read, for the check at the end.
    stderr_seen: Arc<Mutex<String>>,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("not waited for yet")
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("not waited for yet")
    }

    /// Send `signal` (e.g. `"TERM"`, `"INT"`, `"KILL"`) through kill(1).
    pub fn signal(&self, signal: &str) {
        let out = crate::run(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.id().to_string()),
        );
        assert!(out.status.success(), "kill -{signal} {}", self.id());
    }

    /// Its stdin, for a test that answers a prompt ([`Lifeboat::spawn_interactive`]).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child_mut().stdin.take().expect("stdin piped")
    }

    /// Its stderr, line by line as it comes; every line read is checked at the end too.
    pub fn stderr_lines(&mut self) -> impl Iterator<Item = String> {
        let stderr = self.child_mut().stderr.take().expect("stderr piped");
        let seen = Arc::clone(&self.stderr_seen);
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .inspect(move |line| {
                let mut all = seen.lock().unwrap_or_else(PoisonError::into_inner);
                all.push_str(line);
                all.push('\n');
            })
    }

    /// Whether it has ended, without waiting.
    pub fn has_exited(&mut self) -> bool {
        self.child_mut().try_wait().ok().flatten().is_some()
    }

    /// Wait for the end; the whole output (including what was read line by line) is checked.
    pub fn wait(&mut self) -> Ran {
        let mut child = self.child.take().expect("waited for once");
        let mut stdout = String::new();
        let mut stderr = String::new();
        let out_pipe = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = out_pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        });
        if let Some(mut pipe) = child.stderr.take() {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            stderr = String::from_utf8_lossy(&bytes).into_owned();
        }
        stdout.push_str(&String::from_utf8_lossy(&reader.join().unwrap_or_default()));
        let status = child.wait().expect("wait for the child");
        let earlier = self
            .stderr_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ran::new(&self.name, status, stdout, earlier + &stderr, &self.checks)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a run of a binary said, and how it ended. Its output has been checked for panics and
/// known secrets before any test sees it.
#[derive(Debug)]
pub struct Ran {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn new(
        name: &str,
        status: ExitStatus,
        stdout: String,
        stderr: String,
        checks: &Checks,
    ) -> Self {
        let ran = Self {
            code: status.code().unwrap_or(-1),
            status,
            stdout,
            stderr,
        };
        checks.assert_clean(name, &ran);
        ran
    }

    /// Exit code, stdout and stderr, for an assertion's message.
    pub fn show(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Stdout of a run that must have exited 0; `what` names it in the failure.
    pub fn ok(&self, what: &str) -> &str {
        assert_eq!(self.code, 0, "{what}: {}", self.show());
        &self.stdout
    }
}

/// The secrets a run must not show: the stack's and the test's own.
#[derive(Clone, Default)]
struct Checks {
    secrets: Vec<String>,
}

impl Checks {
    /// The service stack's passwords and keys, those that are set (a test without the stack
    /// has none).
    fn known() -> Self {
        let mut checks = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(url) = var("LBTEST_DATABASE_URL") {
            if let Some(password) = password_of(&url) {
                checks.add(password);
            }
        }
        for name in ["LBTEST_S3_SECRET_ACCESS_KEY", "LBTEST_SMTP_PASSWORD"] {
            if let Some(secret) = var(name) {
                checks.add(secret);
            }
        }
        checks
    }

    fn add(&mut self, secret: String) {
        if secret.len() >= MIN_SECRET && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
        }
    }

    fn assert_clean(&self, name: &str, ran: &Ran) {
        for (stream, text) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
            if let Some(mark) = PANIC_MARKS.iter().find(|m| text.contains(*m)) {
                panic!("{name} panicked ({mark:?} on {stream}):\n{}", ran.show());
            }
            if let Some(i) = self.secrets.iter().position(|s| text.contains(s.as_str())) {
                // The output, with the secret masked: the failure must not print it either.
                let masked = ran.show().replace(self.secrets[i].as_str(), "<SECRET>");
                panic!("{name} showed a known secret (number {i}) on {stream}:\n{masked}");
            }
        }
    }
}

/// The password of a `scheme://user:password@host…` URL.
pub(crate) fn password_of(url: &str) -> Option<String> {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned())
}
