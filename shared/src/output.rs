//! Output: the story goes to stderr, data to stdout.
//!
//! Logs are `tracing` events on stderr, human by default and one JSON object per line with
//! `--log-format json` (for log collectors). stdout carries only what a script would parse.
//! Colour only on a terminal and never with `NO_COLOR`. Every line, log or data, passes through
//! [`crate::redact`] on its way out, so a URL with a password in an error chain cannot reach a
//! log, a terminal or `docker inspect`.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::env_vars;

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Short lines for a person.
    #[default]
    Human,
    /// One JSON object per event, for log collectors.
    Json,
}

/// How loud the logs are, from `-v`/`-q` or `LIFEBOAT_LOG`.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    pub format: LogFormat,
    /// -1 quiet (errors only), 0 normal (info), 1 debug, 2 and more trace.
    pub verbosity: i8,
    /// A tracing filter that overrides `verbosity` (`LIFEBOAT_LOG`).
    pub filter: Option<String>,
}

/// True when colour is wanted on stderr: a terminal, and `NO_COLOR` unset or empty.
pub fn color_enabled() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os(env_vars::NO_COLOR).is_none_or(|v| v.is_empty())
}

/// Whether progress bars are wanted: set by [`init`] (human logs, not `-q`), turned off by a
/// binary's `--no-progress` through [`disable_progress`].
static PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when progress bars may be drawn: stderr is a terminal, the logs are for a person (not
/// `--log-format json`) and not quiet (`-q`), and no `--no-progress`. Never in a log file or CI.
pub fn progress_enabled() -> bool {
    PROGRESS.load(std::sync::atomic::Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// No progress bars from here on (`--no-progress`).
pub fn disable_progress() {
    PROGRESS.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// The crates whose events `-v` and `-vv` open up: lifeboat's own. A dependency's debug and
/// trace events (hyper's connection pool, the SDK's retries) show only through `LIFEBOAT_LOG`.
const OWN_CRATES: [&str; 7] = [
    "lifeboat",
    "lifeboat_backup",
    "lifeboat_restore",
    "lifeboat_healthcheck",
    "lifeboat_smoke",
    "lifeboat_deploy",
    "lifeboat_rollback",
];

/// The filter for a verbosity: `-q` errors only; by default lifeboat's info and everyone's
/// warnings; `-v` lifeboat's debug events (what was found and chosen: engine, project,
/// containers, database, files); `-vv` lifeboat's trace events.
pub fn verbosity_filter(verbosity: i8) -> String {
    let own = match verbosity {
        i8::MIN..=-1 => return "error".into(),
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    OWN_CRATES
        .iter()
        .fold(String::from("warn"), |filter, krate| {
            format!("{filter},{krate}={own}")
        })
}

/// Install the global subscriber. Call once, first thing in `main` ([`crate::cli::parse`]
/// does). A `LIFEBOAT_LOG` filter that does not parse is an error naming it (exit 2).
pub fn init(opts: &OutputOptions) -> Result<(), String> {
    let filter = match opts.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => EnvFilter::builder().parse(f).map_err(|e| {
            format!(
                "{}={f:?} is not a log filter ({e}); write it as tracing's filters are, e.g. `debug`, `lifeboat=trace,hyper=debug`",
                env_vars::LIFEBOAT_LOG
            )
        })?,
        None => EnvFilter::new(verbosity_filter(opts.verbosity)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    let result = match opts.format {
        LogFormat::Human => builder
            .with_ansi(color_enabled())
            .with_target(false)
            .without_time()
            .with_level(true)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .flatten_event(true)
            .try_init(),
    };
    // A second init (tests calling run twice) keeps the first subscriber.
    drop(result);
    PROGRESS.store(
        opts.format == LogFormat::Human && opts.verbosity >= 0,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}

/// Print on stdout through the one redaction, ignoring a closed pipe (`| head`): what
/// [`outln!`](crate::outln) and [`out!`](crate::out) do. stdout carries data for scripts.
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(crate::redact::redact(text).as_bytes());
    let _ = out.flush();
}

/// Print on stderr through the one redaction: what [`errln!`](crate::errln) does, for the few
/// lines that are a command's answer rather than a log event (`status` on stderr).
pub fn write_stderr(text: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(crate::redact::redact(text).as_bytes());
}

/// `println!` through the one redaction (clippy forbids the bare one in this workspace).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through the one redaction.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

/// `eprintln!` through the one redaction.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// stderr, with every URL password and `password=` value replaced by `***`.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(Vec::new())
    }
}

/// Buffers one event and writes it redacted, in one write, when dropped.
struct RedactingWriter(Vec<u8>);

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let redacted = crate::redact::redact(&text);
        let mut err = std::io::stderr().lock();
        // Nothing sensible is left to do when stderr is gone.
        let _ = err.write_all(redacted.as_bytes());
    }
}

/// Human-readable bytes: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Lowercase hex, as `sha256sum` prints a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_ls_h() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
