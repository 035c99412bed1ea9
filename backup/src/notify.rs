//! Telling people: the ping URL (a dead-man switch), mail, and a summary on a terminal.
//!
//! Seed 001 learnt about its backups from a second cron line that mailed "Backup semanal
//! completado" whatever had happened, and from nothing at all when cron stopped running it.
//! Here:
//!
//! - **The ping URL** follows healthchecks.io's convention, which Uptime Kuma's push monitors,
//!   Cronitor and Better Stack's heartbeats accept too: `GET <url>/start` when the run starts,
//!   `POST <url>` when it succeeded and `POST <url>/fail` when it failed, each POST with a short
//!   plain-text body (the backup, or the reason) that healthchecks.io shows in its log. The
//!   service alerts when a run fails, and when none arrives in time: the one failure a backup
//!   cannot report itself.
//! - **Mail** to `LIFEBOAT_MAIL_TO`: on failure (the default), after every run, or on failure and
//!   in a weekly digest that lists the backups and checks each archive against its manifest.
//! - **A summary** of the new backup and the directory, in colour on stderr, for a person at a
//!   terminal; nothing changes for cron, scripts and log collectors.
//!
//! None of them changes the outcome: a ping or a mail that cannot be delivered is said loudly
//! on stderr and the exit code stays the backup's own, because cron, deploy and CI must read the
//! truth about the backup, not about the mail server. The ping URL carries its check's token, so
//! it is shown as its scheme and host only.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat::config::{Config, MailWhen};
use lifeboat::output::{human_bytes, LogFormat, OutputOptions};
use lifeboat::secret::{redact_url, SecretUrl};
use tracing::{debug, error, info, warn};

use crate::guard::Hold;
use crate::manifest::{self, Entry};
use crate::Done;

/// Each ping must be answered within this, connection included.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per ping; the waits between them grow by [`PING_RETRY_DELAY`] each time.
const PING_ATTEMPTS: u32 = 3;
const PING_RETRY_DELAY: Duration = Duration::from_secs(1);
/// healthchecks.io keeps up to 100 kB of a ping's body; a reason is a few lines.
const PING_BODY_MAX: usize = 10_000;

/// The weekly digest's state, in the backup directory: the time of the last digest (RFC 3339).
pub const DIGEST_STATE: &str = ".lifeboat-digest";
const DIGEST_EVERY: TimeDelta = TimeDelta::days(7);
/// A nightly job finishes a little earlier or later each night; without this slack a digest sent
/// at 02:00:40 would not be due at 02:00:38 a week later, and would slip a day every time.
const DIGEST_SLACK: TimeDelta = TimeDelta::hours(1);

/// What a ping says.
#[derive(Debug, Clone, Copy)]
enum Ping {
    Start,
    Success,
    Fail,
}

impl Ping {
    fn suffix(self) -> &'static str {
        match self {
            Ping::Start => "/start",
            Ping::Success => "",
            Ping::Fail => "/fail",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ping::Start => "start",
            Ping::Success => "success",
            Ping::Fail => "failure",
        }
    }
}

/// The dead-man switch of `LIFEBOAT_BACKUP_PING_URL`.
pub struct Pinger {
    client: lifeboat::http::Client,
    url: SecretUrl,
}

impl Pinger {
    /// A pinger when a ping URL is configured. A client that cannot be built is a warning, not a
    /// reason to skip the backup.
    pub fn new(config: &Config) -> Option<Self> {
        let url = config.backup.ping_url.clone()?;
        match lifeboat::http::client(PING_TIMEOUT) {
            Ok(client) => Some(Self { client, url }),
            Err(e) => {
                warn!("{e}; the ping URL {} will not be called", shown(&url));
                None
            }
        }
    }

    /// One ping, tried up to [`PING_ATTEMPTS`] times; a failure is a warning.
    async fn send(&self, ping: Ping, body: Option<String>) {
        let url = with_suffix(self.url.expose(), ping.suffix());
        let mut reason = String::new();
        let mut tries = 0;
        for attempt in 1..=PING_ATTEMPTS {
            tries = attempt;
            let request = match &body {
                Some(text) => self
                    .client
                    .post(&url)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(text.clone()),
                None => self.client.get(&url),
            };
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    debug!("pinged {} ({})", shown(&self.url), ping.name());
                    return;
                }
                Ok(response) => {
                    let status = response.status();
                    reason = format!("answered {status}");
                    // A wrong URL or token stays wrong; only the server's trouble is retried.
                    if status.is_client_error() && status.as_u16() != 429 {
                        break;
                    }
                }
                Err(e) => reason = lifeboat::http::describe(&e),
            }
            if attempt < PING_ATTEMPTS {
                tokio::time::sleep(PING_RETRY_DELAY * attempt).await;
            }
        }
        warn!(
            "the {} ping to {} failed ({tries} {}): {reason}; the monitor may report this run \
             wrongly, but the backup's outcome and exit code are its own",
            ping.name(),
            shown(&self.url),
            if tries == 1 { "try" } else { "tries" },
        );
    }
}

/// `GET <url>/start`, run beside the backup so that a slow ping server never delays it.
pub async fn ping_start(pinger: Option<&Pinger>) {
    if let Some(pinger) = pinger {
        pinger.send(Ping::Start, None).await;
    }
}

/// After the run: ping success or failure, then mail as `LIFEBOAT_BACKUP_MAIL` asks.
/// `backup` is the backup and its off-site copy; `retention` what came after a backup.
/// Neither a ping nor a mail changes the outcome: their failures are logged here.
pub async fn finish(
    config: &Config,
    pinger: Option<&Pinger>,
    backup: &anyhow::Result<Done>,
    retention: &anyhow::Result<()>,
    holds: &[Hold],
) {
    if let Some(pinger) = pinger {
        match (backup, retention) {
            (Ok(done), Ok(())) => pinger.send(Ping::Success, Some(done_line(done))).await,
            (Err(e), _) | (Ok(_), Err(e)) => {
                pinger
                    .send(Ping::Fail, Some(truncate(redact_url(&format!("{e:#}")))))
                    .await;
            }
        }
    }
    if let Err(e) = mail(config, backup, retention, holds).await {
        // The exit code stays the backup's own; the mail's failure is said loudly.
        error!("cannot send the backup report by mail: {e:#}");
    }
}

/// Mail the outcome to `LIFEBOAT_MAIL_TO`: failures unless `never`, every success with `always`,
/// and with `weekly` a digest when the last one is a week old. Nothing is sent unless both
/// `SMTP_HOST` and `LIFEBOAT_MAIL_TO` are set: a stack's `.env` often configures SMTP for the app
/// alone.
async fn mail(
    config: &Config,
    backup: &anyhow::Result<Done>,
    retention: &anyhow::Result<()>,
    holds: &[Hold],
) -> anyhow::Result<()> {
    if config.backup.mail == MailWhen::Never || !lifeboat::mail::outcome_wanted(config) {
        return Ok(());
    }
    let dir = &config.backup.dir;
    let now = Utc::now();
    let host = hostname();
    let mut digest = false;
    let (subject, body) = match (backup, retention) {
        (Err(e), _) => (
            format!("lifeboat-backup FAILED on {host}"),
            format!("{e:#}\n\nThe run stopped there; earlier backups are untouched.\n"),
        ),
        (Ok(done), Err(e)) => (
            format!("lifeboat-backup FAILED on {host}"),
            format!(
                "{e:#}\n\nThe new backup {} is complete; retention stopped at the step above.\n",
                done.archive.display()
            ),
        ),
        // Mailed whatever the setting but `never`: nothing is being deleted until someone looks.
        (Ok(done), Ok(())) if !holds.is_empty() => (
            format!("lifeboat-backup: retention HELD on {host}"),
            format!(
                "The backup {} is complete, but retention deleted nothing:\n\n{}\n\nEvery \
                 backup is kept until a good backup of the usual size is the newest.\n",
                done.archive.display(),
                holds
                    .iter()
                    .map(|h| format!("- {h}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
        (Ok(done), Ok(())) => match config.backup.mail {
            MailWhen::Always => (
                format!("lifeboat-backup OK: {} on {host}", done.manifest.database),
                format!(
                    "{}\n\n{}\n",
                    done.archive.display(),
                    serde_json::to_string_pretty(&done.manifest)?
                ),
            ),
            MailWhen::Weekly if digest_due(dir, now) => {
                digest = true;
                let (entries, _) = manifest::list(dir)?;
                weekly_digest(config, &host, &entries, now)
            }
            _ => return Ok(()),
        },
    };
    lifeboat::mail::send_outcome(config, "to mail backup reports", &subject, &body).await?;
    let to = config.smtp.to.join(", ");
    if digest {
        info!("mailed the weekly digest to {to}");
        if let Err(e) = record_digest(dir, now) {
            warn!(
                "cannot record the digest's time in {}: {e}; the next run will send it again",
                dir.join(DIGEST_STATE).display()
            );
        }
    } else {
        info!("mailed the report to {to}");
    }
    Ok(())
}

/// True when no digest was recorded in `dir`, or the last is (about) a week old.
fn digest_due(dir: &Path, now: DateTime<Utc>) -> bool {
    let path = dir.join(DIGEST_STATE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => {
            warn!("cannot read {}: {e}; sending the digest", path.display());
            return true;
        }
    };
    match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(last) => now - last.with_timezone(&Utc) >= DIGEST_EVERY - DIGEST_SLACK,
        Err(e) => {
            warn!(
                "{} does not hold a time ({e}); sending the digest",
                path.display()
            );
            true
        }
    }
}

/// Write the digest's time to `dir/.lifeboat-digest` (0600, replaced atomically).
fn record_digest(dir: &Path, now: DateTime<Utc>) -> std::io::Result<()> {
    let line = format!(
        "{}\n",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    lifeboat::files::write_atomic(&dir.join(DIGEST_STATE), line.as_bytes())
}

/// The digest's line on the last restore drill ([`crate::drill`]).
fn drill_line(dir: &Path, now: DateTime<Utc>) -> String {
    match crate::drill::last(dir) {
        Some(d) if d.passed() => format!(
            "Last restore drill: {} ({} ago), {} restored into a scratch database,\n\
             {} tables, {} rows, as its manifest says: PASSED.",
            d.at.format("%Y-%m-%d %H:%M UTC"),
            age(now - d.at),
            d.backup,
            d.tables,
            d.rows
        ),
        Some(d) => format!(
            "Last restore drill: {} ({} ago), {}: FAILED:\n  {}",
            d.at.format("%Y-%m-%d %H:%M UTC"),
            age(now - d.at),
            d.backup,
            d.error.unwrap_or_default()
        ),
        None => "No restore drill recorded: `lifeboat-backup verify --restore-test`, or\n\
                 LIFEBOAT_BACKUP_DRILL_SCHEDULE with `lifeboat-backup schedule`, proves a\n\
                 backup restores."
            .to_owned(),
    }
}

/// The weekly digest: every backup in the directory with its time, size and whether its archive
/// still matches its manifest, and the totals. Plain ASCII, so that it reads the same raw.
fn weekly_digest(
    config: &Config,
    host: &str,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> (String, String) {
    let width = entries
        .iter()
        .map(|e| e.manifest.database.len())
        .chain([8])
        .max()
        .unwrap_or(8);
    let mut rows = format!(
        "{:<21}{:>12}  {:<10}{:<width$}  file\n",
        "started (UTC)", "size", "verified", "database"
    );
    let mut bad = Vec::new();
    for e in entries {
        // The whole archive is read back: the digest is where a disk that silently corrupts a
        // backup is noticed, before the day it is needed.
        let verified = match e.intact() {
            Ok(true) => "yes",
            Ok(false) => {
                bad.push(format!(
                    "{}: its SHA-256 differs from its manifest's",
                    e.manifest.file
                ));
                "NO"
            }
            Err(reason) => {
                bad.push(format!("{}: cannot read it: {reason}", e.manifest.file));
                "NO"
            }
        };
        let _ = writeln!(
            rows,
            "{:<21}{:>12}  {verified:<10}{:<width$}  {}",
            e.manifest.started.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(e.manifest.size),
            e.manifest.database,
            e.manifest.file,
        );
    }
    let total: u64 = entries.iter().map(|e| e.manifest.size).sum();
    let subject = if bad.is_empty() {
        format!(
            "lifeboat-backup weekly digest: {} on {host}",
            backups(entries.len())
        )
    } else {
        format!(
            "lifeboat-backup weekly digest: {} of {} backups FAILED verification on {host}",
            bad.len(),
            entries.len()
        )
    };
    let mut body = format!(
        "Backups in {} on {host}, oldest first\n(lifeboat-backup {}).\n\n\
         {}, {} in all. Each archive was read back and its SHA-256\n\
         compared with its manifest: ",
        config.backup.dir.display(),
        env!("CARGO_PKG_VERSION"),
        backups(entries.len()),
        human_bytes(total),
    );
    if bad.is_empty() {
        body.push_str("all verified.\n\n");
    } else {
        let _ = writeln!(
            body,
            "{} did NOT verify;\ndo not trust it for a restore:",
            bad.len()
        );
        for line in &bad {
            let _ = writeln!(body, "  {line}");
        }
        body.push('\n');
    }
    body.push_str(&rows);
    let _ = writeln!(body, "\n{}", drill_line(&config.backup.dir, now));
    let _ = write!(
        body,
        "\nRetention keeps {} days of backups, and never fewer than {}.\n\
         Failures are mailed when they happen; the next digest comes with\n\
         the first backup after {}.\n",
        config.backup.keep.days,
        config.backup.keep.min,
        (now + DIGEST_EVERY - DIGEST_SLACK).format("%Y-%m-%d %H:%M UTC"),
    );
    (subject, body)
}

/// ANSI codes for the summary: bold, dim, green, reset.
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// The seed script's closing lines, for a person at a terminal: the new backup's size and
/// duration, and every backup in the directory with its size and age. On stderr, only when it
/// is a terminal, `NO_COLOR` is unset, the logs are not JSON and not `-q`: stdout keeps carrying
/// only the new backup's path.
pub fn summary(config: &Config, output: &OutputOptions, done: &Done) {
    if output.format == LogFormat::Json
        || output.verbosity < 0
        || !lifeboat::output::color_enabled()
    {
        return;
    }
    let dir = &config.backup.dir;
    let Ok((entries, _)) = manifest::list(dir) else {
        return;
    };
    let m = &done.manifest;
    let mut text = format!(
        "\n{GREEN}{BOLD}backup complete{RESET} {BOLD}{}{RESET}: {} ({} of SQL) in {:.1} s\n",
        m.file,
        human_bytes(m.size),
        human_bytes(m.raw_size),
        m.duration_ms as f64 / 1000.0
    );
    let total: u64 = entries.iter().map(|e| e.manifest.size).sum();
    let _ = writeln!(
        text,
        "{BOLD}{}{RESET} in {}, {} in all {DIM}(kept {} days, never fewer than {}){RESET}",
        backups(entries.len()),
        dir.display(),
        human_bytes(total),
        config.backup.keep.days,
        config.backup.keep.min
    );
    let width = entries
        .iter()
        .map(|e| e.manifest.file.len())
        .max()
        .unwrap_or(0);
    let now = Utc::now();
    for e in &entries {
        let line = format!(
            "  {:<width$}  {:>10}  {}",
            e.manifest.file,
            human_bytes(e.manifest.size),
            age(now - e.manifest.finished)
        );
        if e.manifest.file == m.file {
            let _ = writeln!(text, "{GREEN}{line}  <- new{RESET}");
        } else {
            let _ = writeln!(text, "{line}");
        }
    }
    lifeboat::output::write_stderr(&text);
}

/// `1 backup`, `3 backups`.
fn backups(n: usize) -> String {
    if n == 1 {
        "1 backup".into()
    } else {
        format!("{n} backups")
    }
}

/// `just now`, `12 min ago`, `5 h ago`, `3 days ago`.
pub(crate) fn age(d: TimeDelta) -> String {
    match d.num_minutes() {
        ..=0 => "just now".into(),
        m @ 1..=59 => format!("{m} min ago"),
        _ if d.num_hours() < 48 => format!("{} h ago", d.num_hours()),
        _ => format!("{} days ago", d.num_days()),
    }
}

/// A success, for the ping's body and the logs.
fn done_line(done: &Done) -> String {
    let m = &done.manifest;
    format!(
        "{} of {}: {} in {:.1} s, sha256 {}",
        m.file,
        m.database,
        human_bytes(m.size),
        m.duration_ms as f64 / 1000.0,
        m.sha256
    )
}

/// At most [`PING_BODY_MAX`] bytes, cut at a character boundary.
fn truncate(mut text: String) -> String {
    if text.len() > PING_BODY_MAX {
        let mut end = PING_BODY_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `<url><suffix>`, before any query string, with no doubled `/`.
fn with_suffix(url: &str, suffix: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = base.trim_end_matches('/').to_owned();
    out.push_str(suffix);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The ping URL as it may be shown: its scheme and host. Its path holds the check's token
/// (`https://hc-ping.com/<uuid>`), which [`SecretUrl`]'s redaction, made for passwords, keeps.
fn shown(url: &SecretUrl) -> String {
    let redacted = url.redacted();
    match redacted.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}/***")
        }
        None => "the ping URL".into(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this host".into(), |h| h.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_paths_follow_healthchecks_io() {
        let base = "https://hc-ping.com/0f1e2d3c";
        assert_eq!(
            with_suffix(base, "/start"),
            "https://hc-ping.com/0f1e2d3c/start"
        );
        assert_eq!(
            with_suffix(&format!("{base}/"), "/fail"),
            format!("{base}/fail")
        );
        assert_eq!(with_suffix(base, ""), base);
        assert_eq!(
            with_suffix("https://kuma.example/api/push/abc?status=up", "/start"),
            "https://kuma.example/api/push/abc/start?status=up"
        );
    }

    #[test]
    fn the_ping_url_is_shown_without_its_token_or_password() {
        let url = SecretUrl::new("https://user:pw@hc-ping.com/0f1e2d3c-token/start?rid=1");
        let text = shown(&url);
        assert_eq!(text, "https://hc-ping.com/***");
        assert!(!text.contains("token") && !text.contains("pw"));
    }

    #[test]
    fn a_digest_is_due_when_absent_garbled_or_a_week_old_with_an_hours_slack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        assert!(digest_due(dir.path(), now), "no digest yet");
        record_digest(dir.path(), now).expect("record");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(DIGEST_STATE))
                .expect("state")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(!digest_due(dir.path(), now + TimeDelta::days(1)));
        assert!(digest_due(
            dir.path(),
            now + TimeDelta::days(7) - TimeDelta::minutes(5)
        ));
        assert!(digest_due(dir.path(), now + TimeDelta::days(8)));
        std::fs::write(dir.path().join(DIGEST_STATE), "last tuesday").expect("write");
        assert!(
            digest_due(dir.path(), now),
            "a garbled state sends a digest"
        );
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        assert_eq!(age(TimeDelta::seconds(30)), "just now");
        assert_eq!(age(TimeDelta::minutes(12)), "12 min ago");
        assert_eq!(age(TimeDelta::hours(30)), "30 h ago");
        assert_eq!(age(TimeDelta::days(6)), "6 days ago");
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let text = truncate("é".repeat(PING_BODY_MAX));
        assert!(text.len() <= PING_BODY_MAX && text.chars().all(|c| c == 'é'));
    }
}
