//! lifeboat-healthcheck: a tiny static probe with exact Docker HEALTHCHECK semantics.
//!
//! Replaces `HEALTHCHECK CMD wget --spider …` (seed 001) in images that have no shell, curl or
//! wget. Docker reads only 0 (healthy) and 1 (unhealthy) and reserves 2, so this binary never
//! exits with anything else, not even for a bad option. It always ends before `--timeout`, so
//! Docker never has to kill it, and says in one short line what it checked and why it failed.
//!
//! It is small on purpose: no async runtime, no HTTP client crate, no URL crate, no clap (each
//! would cost more than the rest of the binary). Every option also has an environment variable,
//! since the exec form `HEALTHCHECK ["/lifeboat-healthcheck"]` has no shell to expand anything.

#[cfg(feature = "tls")]
pub mod cert;
mod help;
mod http;
mod net;
pub use net::Deadline;
#[cfg(feature = "mysql")]
pub mod mysql;
mod probes;
mod serve;
mod target;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub mod verifier;
// The one redaction every lifeboat binary prints through; this binary links no shared library
// (its size), so it compiles the same file in.
#[path = "../../shared/src/redact.rs"]
mod redact;

pub use help::{completions, HELP, OPTIONS, SERVE_HELP, SHORT_HELP};

use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use target::{Scheme, Target};

/// The environment variables, one per option (docs/lifeboat-healthcheck.md lists them).
pub mod env {
    pub const URL: &str = "HEALTHCHECK_URL";
    pub const PORT: &str = "PORT";
    pub const TIMEOUT: &str = "HEALTHCHECK_TIMEOUT";
    pub const EXPECT_STATUS: &str = "HEALTHCHECK_EXPECT_STATUS";
    pub const EXPECT_BODY: &str = "HEALTHCHECK_EXPECT_BODY";
    pub const EXPECT_JSON: &str = "HEALTHCHECK_EXPECT_JSON";
    pub const HEADER: &str = "HEALTHCHECK_HEADER";
    pub const CERT_MIN_DAYS: &str = "HEALTHCHECK_CERT_MIN_DAYS";
    pub const INSECURE: &str = "HEALTHCHECK_INSECURE";
    pub const FOLLOW_REDIRECTS: &str = "HEALTHCHECK_FOLLOW_REDIRECTS";
    pub const LISTEN: &str = "HEALTHCHECK_LISTEN";
    pub const HEAD: &str = "HEALTHCHECK_HEAD";
    pub const ALL: &[&str] = &[
        URL,
        PORT,
        TIMEOUT,
        EXPECT_STATUS,
        EXPECT_BODY,
        EXPECT_JSON,
        HEADER,
        CERT_MIN_DAYS,
        INSECURE,
        FOLLOW_REDIRECTS,
        LISTEN,
        HEAD,
    ];
}

/// The longest report line: Docker keeps 4096 bytes of output, `docker ps` shows far less.
pub const MAX_LINE: usize = 200;

/// Which statuses count as healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSpec(Vec<(u16, u16)>);

impl StatusSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            let range =
                if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                    let c: u16 = class
                        .parse()
                        .ok()
                        .filter(|c| (1..=5).contains(c))
                        .ok_or_else(|| bad_status(text))?;
                    (c * 100, c * 100 + 99)
                } else if let Some((a, b)) = part.split_once('-') {
                    (
                        status(a).ok_or_else(|| bad_status(text))?,
                        status(b).ok_or_else(|| bad_status(text))?,
                    )
                } else {
                    let s = status(part).ok_or_else(|| bad_status(text))?;
                    (s, s)
                };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

fn status(s: &str) -> Option<u16> {
    s.trim().parse().ok().filter(|s| (100..=599).contains(s))
}

fn bad_status(text: &str) -> String {
    format!("--expect-status {text:?}: expected 2xx, 200, 200-399 or 200,204")
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(lo, hi)| match (lo, hi) {
                (lo, hi) if lo == hi => lo.to_string(),
                (lo, hi) if lo % 100 == 0 && *hi == lo + 99 => format!("{}xx", lo / 100),
                (lo, hi) => format!("{lo}-{hi}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Everything a check needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: Vec<String>,
    pub timeout: Duration,
    pub expect_status: StatusSpec,
    pub expect_body: Option<String>,
    pub expect_json: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub cert_min_days: Option<u32>,
    pub insecure: bool,
    pub follow_redirects: bool,
    /// HEAD instead of GET: the status and headers alone.
    pub head: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Check(Options),
    Serve {
        listen: String,
        options: Options,
    },
    /// A help text: `-h`, `--help` or `serve --help`.
    Help(&'static str),
    Version,
    /// `completions SHELL`: the script.
    Completions(String),
}

/// Option values as given, before they are checked: the environment's, then the flags'.
/// Each value keeps the name of the flag or variable it came from, for error messages.
#[derive(Default)]
#[allow(clippy::struct_excessive_bools)] // each is a switch of the command line
struct Raw {
    targets: Vec<String>,
    timeout: Option<(String, String)>,
    expect_status: Option<(String, String)>,
    expect_body: Option<String>,
    expect_json: Vec<String>,
    headers: Vec<String>,
    cert_min_days: Option<(String, String)>,
    insecure: bool,
    follow_redirects: bool,
    head: bool,
    listen: Option<String>,
    serve: bool,
}

impl Raw {
    fn from_env(getenv: &dyn Fn(&str) -> Option<String>) -> Self {
        let named = |name: &str| getenv(name).map(|v| (name.to_owned(), v));
        let truthy = |name: &str| {
            getenv(name).is_some_and(|v| {
                !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "0" | "false" | "no" | "off"
                )
            })
        };
        Self {
            timeout: named(env::TIMEOUT),
            expect_status: named(env::EXPECT_STATUS),
            expect_body: getenv(env::EXPECT_BODY),
            expect_json: getenv(env::EXPECT_JSON)
                .map(|j| j.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            headers: getenv(env::HEADER)
                .map(|h| h.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            cert_min_days: named(env::CERT_MIN_DAYS),
            insecure: truthy(env::INSECURE),
            follow_redirects: truthy(env::FOLLOW_REDIRECTS),
            head: truthy(env::HEAD),
            listen: getenv(env::LISTEN),
            ..Self::default()
        }
    }
}

/// Parse the arguments, with the environment as fallback for every option.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    getenv: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let getenv = |name: &str| getenv(name).filter(|v| !v.is_empty());
    let mut raw = Raw::from_env(&getenv);
    let args: Vec<String> = args.into_iter().collect();
    // --help and --version only alone: `-h 'X: y'` is curl's header habit, and a HEALTHCHECK
    // that prints help and exits 0 would be healthy forever.
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["-h"] => return Ok(Command::Help(SHORT_HELP)),
        ["--help"] => return Ok(Command::Help(HELP)),
        ["-V" | "--version"] => return Ok(Command::Version),
        ["serve", "-h" | "--help"] => return Ok(Command::Help(SERVE_HELP)),
        ["completions", shell] => {
            return help::completions(shell)
                .map(Command::Completions)
                .ok_or_else(|| format!("completions {shell:?}: give bash, zsh or fish"))
        }
        ["completions", ..] => return Err("completions needs one SHELL: bash, zsh or fish".into()),
        _ => {}
    }
    let mut args = args.into_iter();
    let mut first = true;
    let (mut json_from_flags, mut headers_from_flags, mut listen_given) = (false, false, false);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value (see --help)"))
        };
        let named = |flag: &str, v: String| Some((flag.to_owned(), v));
        match name.as_str() {
            "-h" | "--help" | "-V" | "--version" => {
                return Err(format!("{name} goes alone, without other arguments"))
            }
            "serve" if first => raw.serve = true,
            "--timeout" => raw.timeout = named("--timeout", value("--timeout")?),
            "--expect-status" => {
                raw.expect_status = named("--expect-status", value("--expect-status")?);
            }
            "--expect-body" => raw.expect_body = Some(value("--expect-body")?),
            "--expect-json" => {
                // Flags replace the environment's list rather than add to it.
                if !std::mem::replace(&mut json_from_flags, true) {
                    raw.expect_json.clear();
                }
                raw.expect_json.push(value("--expect-json")?);
            }
            "--header" | "-H" => {
                if !std::mem::replace(&mut headers_from_flags, true) {
                    raw.headers.clear();
                }
                raw.headers.push(value("--header")?);
            }
            "--cert-min-days" => {
                raw.cert_min_days = named("--cert-min-days", value("--cert-min-days")?);
            }
            "--insecure" | "-k" => raw.insecure = true,
            "--follow-redirects" | "-L" => raw.follow_redirects = true,
            "--head" | "-I" => raw.head = true,
            "--listen" => {
                raw.listen = Some(value("--listen")?);
                listen_given = true;
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                let meant = help::nearest(flag, OPTIONS.iter().map(|(f, _, _)| *f))
                    .map_or_else(String::new, |m| format!(": did you mean {m}?"));
                return Err(format!("unknown option {flag}{meant} (see --help)"));
            }
            _ => raw.targets.push(arg),
        }
        first = false;
    }
    if listen_given && !raw.serve {
        return Err(
            "--listen is for `serve` (lifeboat-healthcheck serve --listen ADDR TARGET...)".into(),
        );
    }
    if raw.targets.is_empty() {
        if raw.serve {
            return Err("serve needs at least one TARGET (see --help)".into());
        }
        raw.targets.push(getenv(env::URL).unwrap_or_else(|| {
            let port = getenv(env::PORT).unwrap_or_else(|| "3000".into());
            format!("http://127.0.0.1:{port}/api/health")
        }));
    }
    check_raw(raw)
}

/// Check every value and build the command.
fn check_raw(raw: Raw) -> Result<Command, String> {
    let mut any_http = false;
    for t in &raw.targets {
        any_http |= matches!(Target::parse(t)?.scheme, Scheme::Http | Scheme::Https);
    }
    let http_only = [
        ("--expect-body", raw.expect_body.is_some()),
        ("--expect-json", !raw.expect_json.is_empty()),
        ("--header", !raw.headers.is_empty()),
        ("--cert-min-days", raw.cert_min_days.is_some()),
        ("--follow-redirects", raw.follow_redirects),
        ("--head", raw.head),
    ];
    if let Some((flag, _)) = http_only.iter().find(|(_, set)| *set).filter(|_| !any_http) {
        return Err(format!(
            "{flag} applies to http(s) targets, and none is given"
        ));
    }
    if raw.head && (raw.expect_body.is_some() || !raw.expect_json.is_empty()) {
        return Err("--head reads no body: --expect-body and --expect-json need a GET".into());
    }
    let timeout = match raw.timeout {
        Some((from, v)) => parse_duration(&v)
            .ok_or_else(|| format!("{from} {v:?}: expected a duration like 5s or 500ms"))?,
        None => Duration::from_secs(5),
    };
    let expect_status = match raw.expect_status {
        Some((_, v)) => StatusSpec::parse(&v)?,
        None => StatusSpec(vec![(200, 299)]),
    };
    let expect_json = raw
        .expect_json
        .iter()
        .map(|e| {
            e.split_once('=')
                .filter(|(p, _)| p.is_empty() || p.starts_with('/'))
                .map(|(p, v)| (p.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--expect-json {e:?}: expected /json/pointer=value"))
        })
        .collect::<Result<_, _>>()?;
    let headers = raw
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .filter(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace))
                .ok_or_else(|| {
                    // The value may be a token: show only what stands before the first space.
                    let name = h.split([':', ' ']).next().unwrap_or_default();
                    format!("--header {name:?}…: expected 'Name: value'")
                })
        })
        .collect::<Result<_, _>>()?;
    let cert_min_days = raw
        .cert_min_days
        .map(|(from, v)| {
            v.parse::<u32>()
                .map_err(|_| format!("{from} {v:?}: expected a number of days"))
        })
        .transpose()?;
    let options = Options {
        targets: raw.targets,
        timeout,
        expect_status,
        expect_body: raw.expect_body,
        expect_json,
        headers,
        cert_min_days,
        insecure: raw.insecure,
        follow_redirects: raw.follow_redirects,
        head: raw.head,
    };
    Ok(if raw.serve {
        Command::Serve {
            // Loopback unless asked: a health report names the app's services.
            listen: raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            options,
        }
    } else {
        Command::Check(options)
    })
}

/// `5s`, `500ms`, `1m`, or plain seconds (`5`, `0.5`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let secs = number.trim().parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0 && secs < 86_400.0).then(|| Duration::from_secs_f64(secs))
}

/// The result of checking one target.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub healthy: bool,
    /// What was seen (healthy) or why not (unhealthy).
    pub detail: String,
    pub latency: Duration,
}

/// The deadline of a run: the timeout less a margin for reporting, so that the process has
/// ended, line printed, before Docker's own timeout.
fn deadline_for(timeout: Duration) -> net::Deadline {
    let margin = (timeout / 10).min(Duration::from_millis(200));
    net::Deadline::after(timeout.saturating_sub(margin))
}

fn check_one(text: &str, opts: &Options, deadline: net::Deadline) -> Report {
    let started = Instant::now();
    let result = Target::parse(text).and_then(|target| match target.scheme {
        Scheme::Http | Scheme::Https => http::check(&target, opts, deadline),
        Scheme::Tcp => probes::tcp(&target, deadline),
        Scheme::Redis | Scheme::Rediss => probes::redis(&target, deadline),
        Scheme::Postgres => probes::postgres(&target, deadline),
        Scheme::Mysql => probes::mysql(&target, deadline),
    });
    let (healthy, detail) = match result {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    Report {
        target: target::redact(text),
        healthy,
        detail,
        latency: started.elapsed(),
    }
}

/// Check every target at once; a target still running at the deadline is reported timed out.
pub fn check_all(opts: &Options) -> Vec<Report> {
    let deadline = deadline_for(opts.timeout);
    let (tx, rx) = mpsc::channel();
    for (i, t) in opts.targets.iter().enumerate() {
        let (tx, t, o) = (tx.clone(), t.clone(), opts.clone());
        // Detached, even for one target: a thread stuck in the system's resolver (which has no
        // timeout of its own) must not hold the report back past the deadline.
        let fallback = tx.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            let _ = tx.send((i, check_one(&t, &o, deadline)));
        });
        // Where no thread can be created (a tight --pids-limit), check inline instead.
        if spawned.is_err() {
            let _ = fallback.send((i, check_one(&opts.targets[i], opts, deadline)));
        }
    }
    drop(tx);
    let mut reports: Vec<Option<Report>> = vec![None; opts.targets.len()];
    let started = Instant::now();
    while reports.iter().any(Option::is_none) {
        let left = deadline.instant().saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => reports[i] = Some(r),
            Err(_) => break,
        }
    }
    reports
        .into_iter()
        .zip(&opts.targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| Report {
                target: target::redact(t),
                healthy: false,
                detail: net::timed_out_after(started.elapsed()),
                latency: started.elapsed(),
            })
        })
        .collect()
}

/// The one line Docker shows: what was checked and, on failure, why. `unverified` says first
/// that TLS certificates were not checked (`--insecure`), where truncation cannot cut it off.
pub fn summary(reports: &[Report], unverified: bool) -> String {
    let healthy = reports.iter().all(|r| r.healthy);
    let note = if unverified {
        " (TLS certificate NOT verified: --insecure)"
    } else {
        ""
    };
    let line = if healthy {
        let parts: Vec<String> = reports
            .iter()
            .map(|r| format!("{} {} in {} ms", r.target, r.detail, net::ms(r.latency)))
            .collect();
        format!("healthy{note}: {}", parts.join("; "))
    } else {
        let failed: Vec<&Report> = reports.iter().filter(|r| !r.healthy).collect();
        let more = if failed.len() > 1 {
            format!(" (+{} more failing)", failed.len() - 1)
        } else {
            String::new()
        };
        format!(
            "unhealthy{note}: {}: {}{more}",
            failed[0].target, failed[0].detail
        )
    };
    truncate(&line, MAX_LINE)
}

fn truncate(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_owned();
    }
    let mut end = max - 3;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

/// Print on stdout through the one redaction, ignoring a closed stdout (Docker may have gone
/// away): every line this binary shows passes here or through [`warn`].
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", redact::redact(line));
    let _ = out.flush();
}

/// This binary's own text (help, a completion script), holding nothing from outside.
fn print_raw(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A warning on stderr, through the one redaction.
pub fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", redact::redact(line));
}

/// A set variable that looks like one of ours and is not: `HEALTHCHECK_TIMOUT`, which would
/// otherwise leave the default in place without a word.
pub fn unknown_variable(names: impl IntoIterator<Item = String>) -> Option<String> {
    names
        .into_iter()
        .find(|n| n.starts_with("HEALTHCHECK_") && !env::ALL.contains(&n.as_str()))
        .map(|n| {
            let meant = help::nearest(&n, env::ALL.iter().copied())
                .map_or_else(String::new, |m| format!(": did you mean {m}?"));
            format!("unknown variable {n}{meant} (every variable: --help)")
        })
}

/// `--version`: the version, the commit built from and the probes compiled in, so that a
/// `--no-default-features` build can be told from the full one.
pub fn version() -> String {
    let features: Vec<&str> = [
        ("tls", cfg!(feature = "tls")),
        ("postgres", cfg!(feature = "postgres")),
        ("mysql", cfg!(feature = "mysql")),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    format!(
        "lifeboat-healthcheck {} (commit {}, features: {})",
        env!("CARGO_PKG_VERSION"),
        env!("LIFEBOAT_COMMIT"),
        if features.is_empty() {
            "none".to_owned()
        } else {
            features.join(", ")
        }
    )
}

/// Run the command line; the exit code is 0 or 1, never anything else.
pub fn run(args: impl IntoIterator<Item = String>) -> u8 {
    if let Some(problem) =
        unknown_variable(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))
    {
        say(&truncate(&format!("unhealthy: {problem}"), MAX_LINE));
        return 1;
    }
    match parse_args(args, |k| std::env::var(k).ok()) {
        Ok(Command::Help(text)) => {
            let width = help::terminal_width(&|k| std::env::var(k).ok());
            // Our own text, with USER:PASS placeholders that are no secret: as written.
            print_raw(&help::wrap(text, width));
            0
        }
        Ok(Command::Version) => {
            say(&version());
            0
        }
        Ok(Command::Completions(script)) => {
            // A script, not a report: written as it is (no redaction to mangle its words).
            print_raw(&script);
            0
        }
        Ok(Command::Check(opts)) => {
            let reports = check_all(&opts);
            // --insecure applies to https:// targets (rediss:// takes ?insecure in its URL).
            let unverified = opts.insecure && opts.targets.iter().any(|t| t.starts_with("https:"));
            if unverified {
                warn(
                    "lifeboat-healthcheck: warning: --insecure: TLS certificates are NOT verified",
                );
            }
            let line = summary(&reports, unverified);
            say(&line);
            u8::from(!reports.iter().all(|r| r.healthy))
        }
        Ok(Command::Serve { listen, options }) => match serve::serve(&listen, &options) {
            Ok(()) => 0,
            Err(e) => {
                say(&truncate(&format!("unhealthy: serve: {e}"), MAX_LINE));
                1
            }
        },
        Err(e) => {
            say(&truncate(
                &format!("unhealthy: bad arguments: {}", target::redact(&e)),
                MAX_LINE,
            ));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_args(args.iter().map(|s| (*s).to_owned()), move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn options(args: &[&str], env: &[(&str, &str)]) -> Options {
        match parse(args, env).expect("parse") {
            Command::Check(o) => o,
            other => panic!("expected a check, got {other:?}"),
        }
    }

    #[test]
    fn serve_listens_on_loopback_unless_told_and_head_reads_no_body() {
        match parse(&["serve", "tcp://db:5432"], &[]).expect("parse") {
            Command::Serve { listen, .. } => assert_eq!(listen, "127.0.0.1:8080"),
            other => panic!("expected serve, got {other:?}"),
        }
        match parse(
            &["serve", "tcp://db:5432"],
            &[("HEALTHCHECK_LISTEN", "0.0.0.0:9")],
        )
        .expect("parse")
        {
            Command::Serve { listen, .. } => assert_eq!(listen, "0.0.0.0:9"),
            other => panic!("expected serve, got {other:?}"),
        }
        assert!(options(&["--head", "http://a/"], &[]).head);
        assert!(options(&["http://a/"], &[("HEALTHCHECK_HEAD", "1")]).head);
        let err = parse(&["--head", "--expect-body", "ok", "http://a/"], &[]).expect_err("no body");
        assert!(err.contains("--head reads no body"), "{err}");
    }

    #[test]
    fn the_default_target_follows_healthcheck_url_then_port() {
        assert_eq!(
            options(&[], &[]).targets,
            ["http://127.0.0.1:3000/api/health"]
        );
        assert_eq!(
            options(&[], &[("PORT", "8080")]).targets,
            ["http://127.0.0.1:8080/api/health"]
        );
        assert_eq!(
            options(&[], &[("HEALTHCHECK_URL", "tcp://db:5432"), ("PORT", "1")]).targets,
            ["tcp://db:5432"]
        );
    }

    #[test]
    fn every_option_has_its_variable_and_flags_win() {
        let env = [
            ("HEALTHCHECK_TIMEOUT", "2s"),
            ("HEALTHCHECK_EXPECT_STATUS", "200,204"),
            ("HEALTHCHECK_EXPECT_BODY", "ok"),
            ("HEALTHCHECK_EXPECT_JSON", "/status=healthy"),
            ("HEALTHCHECK_HEADER", "X-Probe: docker"),
            ("HEALTHCHECK_CERT_MIN_DAYS", "14"),
            ("HEALTHCHECK_INSECURE", "1"),
            ("HEALTHCHECK_FOLLOW_REDIRECTS", "true"),
        ];
        let o = options(&[], &env);
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert!(o.expect_status.matches(204) && !o.expect_status.matches(201));
        assert_eq!(o.expect_body.as_deref(), Some("ok"));
        assert_eq!(
            o.expect_json,
            [("/status".to_owned(), "healthy".to_owned())]
        );
        assert_eq!(o.headers, [("X-Probe".to_owned(), "docker".to_owned())]);
        assert_eq!(o.cert_min_days, Some(14));
        assert!(o.insecure && o.follow_redirects);
        let o = options(&["--timeout", "300ms", "--expect-status=3xx"], &env);
        assert_eq!(o.timeout, Duration::from_millis(300));
        assert!(o.expect_status.matches(301));
    }

    #[test]
    fn bad_input_is_an_error_naming_the_option_or_variable() {
        let err = parse(&["--timeout", "soon"], &[]).expect_err("bad");
        assert!(err.contains("--timeout"), "{err}");
        let err = parse(&[], &[("HEALTHCHECK_TIMEOUT", "-1")]).expect_err("bad");
        assert!(err.contains("HEALTHCHECK_TIMEOUT"), "{err}");
        assert!(parse(&["--expect-status", "20"], &[])
            .expect_err("bad")
            .contains("--expect-status"));
        assert!(parse(&["--expect-json", "status"], &[])
            .expect_err("bad")
            .contains("--expect-json"));
        assert!(parse(&["--frobnicate"], &[])
            .expect_err("bad")
            .contains("--frobnicate"));
        assert!(parse(&["serve"], &[])
            .expect_err("bad")
            .contains("serve needs"));
    }

    #[test]
    fn status_specs_read_like_people_write_them() {
        let s = StatusSpec::parse("2xx,301").expect("spec");
        assert!(s.matches(200) && s.matches(299) && s.matches(301) && !s.matches(302));
        assert_eq!(s.to_string(), "2xx,301");
        assert_eq!(
            StatusSpec::parse("200-399").expect("spec").to_string(),
            "200-399"
        );
    }

    #[test]
    fn the_report_line_is_short_and_names_the_first_failure() {
        let r = |healthy, detail: &str| Report {
            target: "http://x/health".into(),
            healthy,
            detail: detail.into(),
            latency: Duration::from_millis(3),
        };
        assert_eq!(
            summary(&[r(true, "200")], false),
            "healthy: http://x/health 200 in 3 ms"
        );
        let line = summary(
            &[
                r(false, "status 503 (expected 2xx)"),
                r(false, &"x".repeat(500)),
            ],
            false,
        );
        assert_eq!(
            line,
            "unhealthy: http://x/health: status 503 (expected 2xx) (+1 more failing)"
        );
        assert!(summary(&[r(false, &"é".repeat(300))], false).len() <= MAX_LINE);
    }
}
