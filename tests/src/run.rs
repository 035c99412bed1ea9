//! Every run of a lifeboat binary in a test goes through [`Lifeboat`]: a clean environment (no
//! stray `LIFEBOAT_*`, `DATABASE_URL` or `S3_*` of the machine), and one [`Ran`] whose
//! construction fails the test when stdout or stderr shows a panic or a known secret. A test
//! cannot forget the check: there is no other way to get a `Ran`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

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

    /// Run it through `wrapper` (a program and its first arguments, e.g. `sh -c 'umask 077 &&
    /// exec "$0" "$@"'`), which is given the binary and its arguments after its own. Call after
    /// the args.
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        let (program, first) = wrapper.split_first().expect("a wrapper program");
        let mut outer = Command::new(program);
        outer
            .args(first)
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args())
            .env_clear();
        self.cmd = rebuilt(&self.cmd, outer);
        self
    }

    /// Run it on a new pseudo-terminal (util-linux `script -qec CMD /dev/null`), as a person at a
    /// terminal would: stdout is then everything it wrote there. Call after the args.
    pub fn on_a_terminal(mut self) -> Self {
        // `script -c` hands the line to a shell: each word single-quoted.
        let line = std::iter::once(self.cmd.get_program())
            .chain(self.cmd.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = Command::new("script");
        script.args(["-qec", &line, "/dev/null"]).env_clear();
        self.cmd = rebuilt(&self.cmd, script);
        self
    }

    /// The command as it would run, to show in a message.
    pub fn show(&self) -> String {
        format!("{:?}", self.cmd)
    }

    /// Run to the end; the output is checked before it is returned.
    pub fn run(self) -> Ran {
        self.spawn().wait()
    }

    /// Start it with stdout and stderr piped; killed when dropped unless waited for.
    pub fn spawn(self) -> Running {
        self.spawn_with()
    }

    /// Start it with stdin piped, for a test that answers a prompt.
    pub fn spawn_interactive(mut self) -> Running {
        self.cmd.stdin(Stdio::piped());
        self.spawn_with()
    }

    fn spawn_with(mut self) -> Running {
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd));
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin piped");
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            });
        }
        Running::start(self.name, child, self.checks)
    }
}

/// `outer` with `inner`'s environment and directory (both cleared of the machine's).
fn rebuilt(inner: &Command, mut outer: Command) -> Command {
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            outer.env(key, value);
        }
    }
    if let Some(dir) = inner.get_current_dir() {
        outer.current_dir(dir);
    }
    outer.stdin(Stdio::null());
    outer
}

/// A binary started by [`Lifeboat::spawn`]: its stdout and stderr are read as they come (so
/// that it never blocks on a full pipe) and checked like a [`Ran`]'s when it is waited for, or
/// when it is dropped (killed and reaped then, pass or fail).
pub struct Running {
    name: String,
    child: Option<Child>,
    checks: Checks,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    lines: Option<std::sync::mpsc::Receiver<String>>,
}

impl Running {
    fn start(name: String, mut child: Child, checks: Checks) -> Self {
        let out = child.stdout.take();
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = out {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let err = child.stderr.take();
        let (send, lines) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            if let Some(pipe) = err {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    all.push_str(&line);
                    all.push('\n');
                    let _ = send.send(line);
                }
            }
            all
        });
        Self {
            name,
            child: Some(child),
            checks,
            stdout: Some(stdout),
            stderr: Some(stderr),
            lines: Some(lines),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("not waited for yet").id()
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

    /// Its stderr, line by line as it comes (once); the whole of it is checked at the end.
    pub fn stderr_lines(&mut self) -> impl Iterator<Item = String> {
        self.lines
            .take()
            .expect("stderr lines taken once")
            .into_iter()
    }

    /// Whether it has ended, without waiting.
    pub fn has_exited(&mut self) -> bool {
        self.try_wait().is_some()
    }

    /// How it ended, if it has, without waiting (the output is checked by [`Running::wait`]).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child_mut().try_wait().ok().flatten()
    }

    /// Wait for the end; the whole output is checked.
    pub fn wait(&mut self) -> Ran {
        let mut child = self.child.take().expect("waited for once");
        let status = child.wait().expect("wait for the child");
        let (stdout, stderr) = self.output();
        Ran::new(&self.name, status, stdout, stderr, &self.checks)
    }

    fn output(&mut self) -> (String, String) {
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        (join(self.stdout.take()), join(self.stderr.take()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                let (stdout, stderr) = self.output();
                // A second panic while the test fails already would abort the whole run.
                if !std::thread::panicking() {
                    drop(Ran::new(&self.name, status, stdout, stderr, &self.checks));
                }
            }
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
        for name in ["LBTEST_DATABASE_URL", "LBTEST_MYSQL_URL"] {
            if let Some(password) = var(name).as_deref().and_then(password_of) {
                checks.add(password);
            }
        }
        for name in [
            "LBTEST_S3_SECRET_ACCESS_KEY",
            "LBTEST_SMTP_PASSWORD",
            "LBTEST_MYSQL_ROOT_PASSWORD",
        ] {
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
