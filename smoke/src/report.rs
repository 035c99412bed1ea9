//! What a run shows: one line per check on stderr as it ends (✓/✗/–, name, duration, why), a
//! summary, and the reports CI reads (`--report junit:FILE`, `--report json:FILE`).
//!
//! Every message was scrubbed of secrets when its result was made (see [`crate::vars`]); the
//! reports are built from those results only, so nothing else can reach them.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::run::{CheckResult, CleanupResult, RunReport, Status};

/// The live lines on stderr.
pub struct Printer {
    color: bool,
    quiet: bool,
    /// `--log-format json`: each line is a log event, so stderr stays one JSON object a line.
    json: bool,
    width: usize,
}

impl Printer {
    /// `quiet` shows failures only; colour only on a terminal without `NO_COLOR`.
    pub fn new(quiet: bool, names: &[&str]) -> Self {
        Self {
            color: lifeboat::output::color_enabled(),
            quiet,
            json: false,
            width: names.iter().map(|n| n.chars().count()).max().unwrap_or(0),
        }
    }

    /// Lines as JSON log events (`--log-format json`), without colour.
    #[must_use]
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self.color &= !json;
        self
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn emit(&self, line: &str) {
        if self.json {
            tracing::info!(step = "smoke", "{line}");
            return;
        }
        lifeboat::output::write_stderr(&format!("{line}\n"));
    }

    pub fn check(&self, r: &CheckResult) {
        if self.quiet && r.status != Status::Failed {
            return;
        }
        if self.json {
            check_event(r);
            return;
        }
        let mark = match r.status {
            Status::Passed => self.paint("32", "✓"),
            Status::Failed => self.paint("31", "✗"),
            Status::Skipped => self.paint("33", "–"),
        };
        let took = if r.status == Status::Skipped {
            String::new()
        } else {
            crate::checks::ms(r.duration)
        };
        let attempts = if r.attempts > 1 {
            format!(" ({} attempts)", r.attempts)
        } else {
            String::new()
        };
        self.emit(&format!(
            "{mark} {:<width$} {took:>8}  {}{attempts}",
            r.name,
            r.message,
            width = self.width
        ));
    }

    /// A cleanup's line; one that was not sent is shown even with `-q`: data may be left.
    pub fn cleanup(&self, c: &CleanupResult) {
        if self.json {
            cleanup_event(c, self.quiet);
            return;
        }
        if let Some(why) = &c.not_sent {
            self.emit(&format!(
                "{} cleanup of {}: {} {why}",
                self.paint("33", "!"),
                c.check,
                c.what
            ));
            return;
        }
        match &c.error {
            None if self.quiet => {}
            None => self.emit(&format!("  cleanup of {}: {}", c.check, c.what)),
            Some(e) => self.emit(&format!(
                "{} cleanup of {}: {} failed: {e}",
                self.paint("31", "✗"),
                c.check,
                c.what
            )),
        }
    }

    /// The closing line; with `-q`, only when something failed (cron mails only bad news).
    pub fn summary(&self, report: &RunReport) {
        if self.quiet && report.success() {
            return;
        }
        let failed = report.count(Status::Failed);
        let skipped = report.count(Status::Skipped);
        let bad_cleanups = report.cleanups.iter().filter(|c| c.error.is_some()).count();
        let not_sent = report
            .cleanups
            .iter()
            .filter(|c| c.not_sent.is_some())
            .count();
        let mut line = format!(
            "{} of {} checks passed",
            report.count(Status::Passed),
            report.results.len()
        );
        if failed > 0 {
            let _ = write!(line, ", {failed} failed");
        }
        if skipped > 0 {
            let _ = write!(line, ", {skipped} skipped");
        }
        if bad_cleanups > 0 {
            let _ = write!(line, ", {bad_cleanups} cleanup(s) failed");
        }
        if not_sent > 0 {
            let _ = write!(line, ", {not_sent} cleanup(s) not sent");
        }
        if let Some(signal) = report.stopped {
            let _ = write!(line, ", stopped by {signal}");
        }
        // Said plainly in every run: whether this run could write to the app.
        let _ = write!(
            line,
            " in {} (run {}, {}; {})",
            crate::checks::ms(report.duration),
            report.run_id,
            report.environment.as_deref().map_or_else(
                || "no environment".to_owned(),
                |e| format!("environment {e}")
            ),
            if report.read_only {
                "read-only, checks that write are skipped"
            } else {
                "writes allowed"
            }
        );
        if self.json {
            summary_event(report, &line, bad_cleanups, not_sent);
            return;
        }
        let line = if report.success() {
            self.paint("1;32", &line)
        } else {
            self.paint("1;31", &line)
        };
        self.emit(&line);
    }
}

/// A check as a log event (`--log-format json`): `check`, `outcome`, `duration_ms`, `kind`,
/// `attempts`, `line` (of the spec) as fields; a failure at level ERROR, so that log tooling
/// finds it without reading the text.
fn check_event(r: &CheckResult) {
    let duration_ms = u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX);
    let text = format!("{}: {}", r.name, r.message);
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                step = "smoke",
                check = %r.name,
                outcome = r.status.name(),
                kind = r.kind.name(),
                duration_ms,
                attempts = r.attempts,
                line = r.line,
                "{text}"
            )
        };
    }
    match r.status {
        Status::Failed => event!(error),
        Status::Passed | Status::Skipped => event!(info),
    }
}

/// A cleanup as a log event: `cleanup_of` (the check), `outcome` (done, failed, not-sent).
fn cleanup_event(c: &CleanupResult, quiet: bool) {
    match (&c.error, &c.not_sent) {
        (_, Some(why)) => tracing::warn!(
            step = "smoke",
            cleanup_of = %c.check,
            outcome = "not-sent",
            "cleanup of {}: {} {why}",
            c.check,
            c.what
        ),
        (Some(e), None) => tracing::error!(
            step = "smoke",
            cleanup_of = %c.check,
            outcome = "failed",
            "cleanup of {}: {} failed: {e}",
            c.check,
            c.what
        ),
        (None, None) if !quiet => tracing::info!(
            step = "smoke",
            cleanup_of = %c.check,
            outcome = "done",
            "cleanup of {}: {}",
            c.check,
            c.what
        ),
        (None, None) => {}
    }
}

/// The run's summary as a log event with its counts; ERROR when anything failed.
fn summary_event(report: &RunReport, line: &str, cleanups_failed: usize, cleanups_not_sent: usize) {
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    macro_rules! event {
        ($level:ident, $outcome:expr) => {
            tracing::$level!(
                step = "smoke",
                summary = true,
                outcome = $outcome,
                total = report.results.len(),
                passed = report.count(Status::Passed),
                failed = report.count(Status::Failed),
                skipped = report.count(Status::Skipped),
                cleanups_failed,
                cleanups_not_sent,
                duration_ms,
                run_id = %report.run_id,
                "{line}"
            )
        };
    }
    if report.success() {
        event!(info, "passed");
    } else {
        event!(error, "failed");
    }
}

/// A `--report` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    Junit(PathBuf),
    Json(PathBuf),
}

/// clap's parser for `--report`: `junit:FILE` or `json:FILE` (`-` is stdout).
pub fn parse_target(value: &str) -> Result<ReportTarget, String> {
    match value.split_once(':') {
        Some(("junit", path)) if !path.is_empty() => Ok(ReportTarget::Junit(path.into())),
        Some(("json", path)) if !path.is_empty() => Ok(ReportTarget::Json(path.into())),
        _ => Err(format!(
            "{value:?} is not a report: give junit:FILE or json:FILE (- for stdout)"
        )),
    }
}

impl ReportTarget {
    /// Write the report; `-` writes to stdout.
    pub fn write(&self, report: &RunReport) -> std::io::Result<()> {
        let (path, text) = match self {
            ReportTarget::Junit(p) => (p, junit(report)),
            ReportTarget::Json(p) => (p, format!("{:#}\n", json(report))),
        };
        if path.as_os_str() == "-" {
            lifeboat::output::write_stdout(&text);
            Ok(())
        } else {
            std::fs::write(path, text)
        }
    }

    pub fn path(&self) -> &PathBuf {
        match self {
            ReportTarget::Junit(p) | ReportTarget::Json(p) => p,
        }
    }
}

/// The JSON report.
pub fn json(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "run_id": report.run_id,
        "environment": report.environment,
        "spec": report.spec.display().to_string(),
        "started_at": report.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration_ms": report.duration.as_millis(),
        "success": report.success(),
        "passed": report.count(Status::Passed),
        "failed": report.count(Status::Failed),
        "skipped": report.count(Status::Skipped),
        "checks": report.results.iter().map(|r| serde_json::json!({
            "name": r.name,
            "kind": r.kind.name(),
            "line": r.line,
            "tags": r.tags,
            "depends_on": r.depends_on,
            "read_only": r.read_only,
            "status": r.status.name(),
            "duration_ms": r.duration.as_millis(),
            "attempts": r.attempts,
            "message": r.message,
        })).collect::<Vec<_>>(),
        "cleanups": report.cleanups.iter().map(|c| serde_json::json!({
            "check": c.check,
            "what": c.what,
            "ok": c.error.is_none() && c.not_sent.is_none(),
            "sent": c.not_sent.is_none(),
            "error": c.error,
            "warning": c.not_sent,
        })).collect::<Vec<_>>(),
    })
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML report (the format GitLab, Jenkins and GitHub's test reporters read); a failed
/// cleanup is a failed test case of its own.
pub fn junit(report: &RunReport) -> String {
    let secs = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64());
    let bad_cleanups: Vec<&CleanupResult> = report
        .cleanups
        .iter()
        .filter(|c| c.error.is_some())
        .collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"lifeboat-smoke\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        report.results.len() + bad_cleanups.len(),
        report.count(Status::Failed) + bad_cleanups.len(),
        report.count(Status::Skipped),
        secs(report.duration)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
        xml_escape(format!(
            "smoke {}",
            report.environment.as_deref().unwrap_or("")
        ).trim_end()),
        report.results.len() + bad_cleanups.len(),
        report.count(Status::Failed) + bad_cleanups.len(),
        report.count(Status::Skipped),
        secs(report.duration),
        report.started_at.format("%Y-%m-%dT%H:%M:%S")
    );
    let _ = writeln!(
        out,
        "    <properties><property name=\"run_id\" value=\"{}\"/></properties>",
        xml_escape(&report.run_id)
    );
    for r in &report.results {
        // A cleanup of this check that was not sent: said in the check's own test case.
        let warnings: String = report
            .cleanups
            .iter()
            .filter(|c| c.check == r.name)
            .filter_map(|c| {
                c.not_sent
                    .as_ref()
                    .map(|w| format!("warning: cleanup {} {w}\n", c.what))
            })
            .collect();
        let system_err = if warnings.is_empty() {
            String::new()
        } else {
            format!("<system-err>{}</system-err>", xml_escape(&warnings))
        };
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"smoke.{}\" time=\"{}\"",
            xml_escape(&r.name),
            r.kind.name(),
            secs(r.duration)
        );
        match r.status {
            Status::Passed => {
                let _ = writeln!(
                    out,
                    "><system-out>{}</system-out>{system_err}</testcase>",
                    xml_escape(&r.message)
                );
            }
            Status::Failed => {
                let _ = writeln!(
                    out,
                    "><failure message=\"{}\">{}</failure>{system_err}</testcase>",
                    xml_escape(&r.message),
                    xml_escape(&r.message)
                );
            }
            Status::Skipped => {
                let _ = writeln!(
                    out,
                    "><skipped message=\"{}\"/>{system_err}</testcase>",
                    xml_escape(&r.message)
                );
            }
        }
    }
    for c in bad_cleanups {
        let message = format!("{}: {}", c.what, c.error.as_deref().unwrap_or_default());
        let _ = writeln!(
            out,
            "    <testcase name=\"cleanup of {}\" classname=\"smoke.cleanup\" time=\"0.000\"><failure message=\"{}\">{}</failure></testcase>",
            xml_escape(&c.check),
            xml_escape(&message),
            xml_escape(&message)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_targets_parse_and_bad_ones_say_the_form() {
        assert_eq!(
            parse_target("junit:out.xml"),
            Ok(ReportTarget::Junit("out.xml".into()))
        );
        assert_eq!(parse_target("json:-"), Ok(ReportTarget::Json("-".into())));
        assert!(parse_target("xml:out")
            .expect_err("not a format")
            .contains("junit:FILE"));
        assert!(parse_target("json:").is_err());
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot; "
        );
    }
}
