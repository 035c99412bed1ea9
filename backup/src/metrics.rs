//! Prometheus textfile metrics (node_exporter's textfile collector), so that an alert such as
//! the seed's `BackupFailed` fires when a backup fails, and `time() - last_success > 26h` when
//! backups silently stopped running at all.
//!
//! The file is replaced atomically, mode 0644 whatever the umask (node_exporter often runs as
//! another user; the file holds no secret); a failure keeps the last success's time, size and
//! duration and counts one more failure. A job that never succeeded says its last success was at
//! 0 (1970), so that the "stopped running" alert fires for it too.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use crate::manifest::Manifest;

const LAST_SUCCESS: &str = "lifeboat_backup_last_success_timestamp_seconds";
const LAST_RUN: &str = "lifeboat_backup_last_run_timestamp_seconds";
const LAST_OK: &str = "lifeboat_backup_last_run_success";
const DURATION: &str = "lifeboat_backup_last_success_duration_seconds";
const SIZE: &str = "lifeboat_backup_last_success_size_bytes";
const FAILURES: &str = "lifeboat_backup_failures_total";

/// Record a run: `Some(manifest)` for a complete backup, `None` for a failure.
pub fn record(path: &Path, outcome: Option<&Manifest>) -> std::io::Result<()> {
    let mut values = previous(path);
    let now = chrono::Utc::now();
    values.insert(LAST_RUN, seconds(now));
    if let Some(m) = outcome {
        values.insert(LAST_OK, 1.0);
        values.insert(LAST_SUCCESS, seconds(m.finished));
        values.insert(DURATION, m.duration_ms as f64 / 1000.0);
        values.insert(SIZE, m.size as f64);
        values.entry(FAILURES).or_insert(0.0);
    } else {
        values.insert(LAST_OK, 0.0);
        values.entry(LAST_SUCCESS).or_insert(0.0);
        *values.entry(FAILURES).or_insert(0.0) += 1.0;
    }
    let help = [
        (
            LAST_SUCCESS,
            "gauge",
            "Unix time of the last complete backup.",
        ),
        (
            LAST_RUN,
            "gauge",
            "Unix time of the last run, complete or not.",
        ),
        (
            LAST_OK,
            "gauge",
            "1 if the last run produced a complete backup, else 0.",
        ),
        (DURATION, "gauge", "Seconds the last complete backup took."),
        (
            SIZE,
            "gauge",
            "Bytes of the last complete backup's archive.",
        ),
        (
            FAILURES,
            "counter",
            "Runs that failed, since this file was created.",
        ),
    ];
    let mut text = String::new();
    for (name, kind, doc) in help {
        if let Some(v) = values.get(name) {
            use std::fmt::Write as _;
            let _ = write!(
                text,
                "# HELP {name} {doc}
# TYPE {name} {kind}
{name} {v}
"
            );
        }
    }
    // 0644 on the open file: the umask does not decide who may read it.
    lifeboat::files::write_atomic_mode(path, text.as_bytes(), 0o644)
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The values of the previous file, by metric name.
fn previous(path: &Path) -> HashMap<&'static str, f64> {
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        // Ours is a few hundred bytes.
        let _ = std::io::Read::take(f, 64 * 1024).read_to_string(&mut text);
    }
    let known = [LAST_SUCCESS, LAST_RUN, LAST_OK, DURATION, SIZE, FAILURES];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            let name = known.into_iter().find(|k| *k == name)?;
            Some((name, value.trim().parse().ok()?))
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
        super::record(&path, None).expect("record");
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
