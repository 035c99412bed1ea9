//! Restore drills as evidence: each `lifeboat-backup verify --restore-test` (by hand, from cron
//! or from `lifeboat-backup schedule`) leaves a record that a restore was proved, or was not.
//!
//! - one JSON line in `drills.jsonl` beside the backups (appended, 0600, never through a
//!   symbolic link), with the time, the backup, the outcome, its duration, tables and rows;
//! - in the metrics file, `lifeboat_backup_last_verified_timestamp_seconds` (the last drill
//!   that passed) and the last drill's time and outcome, so that an alert fires when drills
//!   stop passing or stop running;
//! - the weekly digest names the last drill.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use lifeboat::config::Config;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// The drills' log, in the backup directory.
pub const FILE: &str = "drills.jsonl";

/// The most of the log read back for its last line: a few hundred drills.
const TAIL: u64 = 64 * 1024;

/// One drill's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drill {
    pub at: DateTime<Utc>,
    pub backup: String,
    pub database: String,
    /// `passed` or `failed`.
    pub outcome: String,
    pub duration_ms: u64,
    pub tables: usize,
    pub rows: i64,
    /// Why it failed (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Drill {
    pub fn passed(&self) -> bool {
        self.outcome == "passed"
    }
}

/// Record a drill: its line in `drills.jsonl` and the metrics. A record that cannot be written
/// is a warning; the drill's own outcome decides the exit code.
pub fn record(config: &Config, drill: &Drill) {
    let path = config.backup.dir.join(FILE);
    let appended = serde_json::to_string(drill)
        .map_err(std::io::Error::other)
        .and_then(|mut line| {
            line.push('\n');
            let mut file = lifeboat::files::open_append_private(&path)?;
            file.write_all(line.as_bytes())?;
            file.sync_data()
        });
    if let Err(e) = appended {
        warn!("cannot record the drill in {}: {e}", path.display());
    }
    if let Some(file) = &config.backup.metrics_file {
        if let Err(e) = crate::metrics::record_drill(file, drill.passed(), drill.at) {
            warn!("cannot write the metrics file {}: {e}", file.display());
        }
    }
}

/// The last drill recorded in `dir`, if any.
pub fn last(dir: &Path) -> Option<Drill> {
    let text = lifeboat::files::read_own_tail(&dir.join(FILE), TAIL).ok()??;
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Drill>(l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_drill_is_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(last(dir.path()), None);
        let env = [(
            "LIFEBOAT_BACKUP_DIR".to_owned(),
            dir.path().display().to_string(),
        )];
        let options = lifeboat::config::LoadOptions {
            env_file: None,
            ..lifeboat::config::LoadOptions::default()
        };
        let config = Config::load_with_env(&options, &env.into_iter().collect()).expect("config");
        let mut drill = Drill {
            at: Utc::now(),
            backup: "backup_1.sql.gz".into(),
            database: "app".into(),
            outcome: "failed".into(),
            duration_ms: 5,
            tables: 0,
            rows: 0,
            error: Some("boom".into()),
        };
        record(&config, &drill);
        drill.outcome = "passed".into();
        drill.error = None;
        record(&config, &drill);
        assert_eq!(last(dir.path()), Some(drill));
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert_eq!(text.lines().count(), 2);
    }
}
