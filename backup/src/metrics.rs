//! Prometheus textfile metrics (node_exporter's textfile collector), so that an alert such as
//! the seed's `BackupFailed` fires when a backup fails, and `time() - last_success > 26h` when
//! backups silently stopped running at all.
//!
//! The file is replaced atomically, mode 0644 whatever the umask (node_exporter often runs as
//! another user; the file holds no secret); a failure keeps the last success's time, size and
//! duration and counts one more failure. A job that never succeeded says its last success was at
//! 0 (1970), so that the "stopped running" alert fires for it too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use crate::guard::Hold;
use crate::manifest::Manifest;

const LAST_SUCCESS: &str = "lifeboat_backup_last_success_timestamp_seconds";
const LAST_RUN: &str = "lifeboat_backup_last_run_timestamp_seconds";
const LAST_OK: &str = "lifeboat_backup_last_run_success";
const DURATION: &str = "lifeboat_backup_last_success_duration_seconds";
const SIZE: &str = "lifeboat_backup_last_success_size_bytes";
const FAILURES: &str = "lifeboat_backup_failures_total";
const HELD: &str = "lifeboat_backup_retention_held";
const LAST_VERIFIED: &str = "lifeboat_backup_last_verified_timestamp_seconds";
const LAST_DRILL: &str = "lifeboat_backup_last_drill_timestamp_seconds";
const LAST_DRILL_OK: &str = "lifeboat_backup_last_drill_success";

/// Every metric: its name, type and help, in the file's order.
const METRICS: [(&str, &str, &str); 10] = [
    (LAST_SUCCESS, "gauge", "Unix time of the last complete backup."),
    (LAST_RUN, "gauge", "Unix time of the last run, complete or not."),
    (LAST_OK, "gauge", "1 if the last run produced a complete backup, else 0."),
    (DURATION, "gauge", "Seconds the last complete backup took."),
    (SIZE, "gauge", "Bytes of the last complete backup's archive."),
    (FAILURES, "counter", "Runs that failed, since this file was created."),
    (
        HELD,
        "gauge",
        "1 while retention deletes nothing, by reason: the newest backup not verified good, or its SQL shrunk under LIFEBOAT_BACKUP_MIN_RATIO of the one before.",
    ),
    (
        LAST_VERIFIED,
        "gauge",
        "Unix time of the last restore drill that passed (verify --restore-test); 0 if none has.",
    ),
    (LAST_DRILL, "gauge", "Unix time of the last restore drill, passed or not."),
    (LAST_DRILL_OK, "gauge", "1 if the last restore drill passed, else 0."),
];

/// Record a run: `Some(manifest)` for a complete backup, `None` for a failure; `holds` what
/// kept retention from deleting anything.
pub fn record(path: &Path, outcome: Option<&Manifest>, holds: &[Hold]) -> std::io::Result<()> {
    let mut values = previous(path);
    let mut set = |name: &str, v: f64| {
        values.insert(name.to_owned(), v);
    };
    set(LAST_RUN, seconds(chrono::Utc::now()));
    if let Some(m) = outcome {
        set(LAST_OK, 1.0);
        set(LAST_SUCCESS, seconds(m.finished));
        set(DURATION, m.duration_ms as f64 / 1000.0);
        set(SIZE, m.size as f64);
        for reason in Hold::REASONS {
            let held = holds.iter().any(|h| h.reason() == reason);
            set(
                &format!("{HELD}{{reason=\"{reason}\"}}"),
                f64::from(u8::from(held)),
            );
        }
        values.entry(FAILURES.to_owned()).or_insert(0.0);
    } else {
        values.insert(LAST_OK.to_owned(), 0.0);
        values.entry(LAST_SUCCESS.to_owned()).or_insert(0.0);
        *values.entry(FAILURES.to_owned()).or_insert(0.0) += 1.0;
    }
    write(path, &values)
}

/// Record a restore drill at `at`, passed or not.
pub fn record_drill(
    path: &Path,
    passed: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<()> {
    let mut values = previous(path);
    values.insert(LAST_DRILL.to_owned(), seconds(at));
    values.insert(LAST_DRILL_OK.to_owned(), f64::from(u8::from(passed)));
    if passed {
        values.insert(LAST_VERIFIED.to_owned(), seconds(at));
    } else {
        values.entry(LAST_VERIFIED.to_owned()).or_insert(0.0);
    }
    write(path, &values)
}

/// Write every series of `values` under its metric's HELP and TYPE.
fn write(path: &Path, values: &BTreeMap<String, f64>) -> std::io::Result<()> {
    let mut text = String::new();
    for (name, kind, doc) in METRICS {
        let series: Vec<_> = values
            .iter()
            .filter(|(series, _)| base(series) == name)
            .collect();
        if series.is_empty() {
            continue;
        }
        let _ = write!(text, "# HELP {name} {doc}\n# TYPE {name} {kind}\n");
        for (series, v) in series {
            let _ = writeln!(text, "{series} {v}");
        }
    }
    // 0644 on the open file: the umask does not decide who may read it.
    lifeboat::files::write_atomic_mode(path, text.as_bytes(), 0o644)
}

/// A series' metric name: what comes before its labels.
fn base(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The series of the previous file that are ours, with their values.
fn previous(path: &Path) -> BTreeMap<String, f64> {
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        // Ours is a few hundred bytes.
        let _ = std::io::Read::take(f, 64 * 1024).read_to_string(&mut text);
    }
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            METRICS
                .iter()
                .any(|(name, _, _)| base(series) == *name)
                .then(|| Some((series.to_owned(), value.trim().parse().ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_job_that_never_succeeded_says_so_and_anyone_may_read_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.prom");
        super::record(&path, None, &[]).expect("record");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("\nlifeboat_backup_last_success_timestamp_seconds 0\n"),
            "{text}"
        );
        assert!(
            text.contains("\nlifeboat_backup_failures_total 1\n"),
            "{text}"
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
