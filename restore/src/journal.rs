//! The journal: which step of a restore is under way and which names it uses, written (fsynced,
//! renamed into place) before each step, so that a run killed at any point (SIGKILL, a power
//! cut, a closed SSH session) can be finished or undone by the next run. It lives beside the
//! backups, `.lifeboat-restore-<db>.json`, and is removed when a restore ends either way.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The steps, in order. What a rerun does depends on the last one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The backup is being restored into `restore_db`; the live database is untouched.
    Restoring,
    /// The app's containers (listed) are being stopped.
    Stopping,
    /// Sessions are being ended and the databases swapped (in one transaction).
    Swapping,
    /// The swap may have committed; the app is being started and waited on.
    Starting,
    /// The app was unhealthy (or a step failed): the swap is being undone.
    Undoing,
    /// The restored database is live and the app healthy; the safety backup and the clean-up
    /// of old pre-restore databases remain.
    Done,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Restoring => "restoring",
            Step::Stopping => "stopping",
            Step::Swapping => "swapping",
            Step::Starting => "starting",
            Step::Undoing => "undoing",
            Step::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub step: Step,
    pub pid: u32,
    pub backup: String,
    pub database: String,
    pub restore_db: String,
    pub pre_db: String,
    /// Whether there was a live database to keep (an incident may have dropped it).
    pub live_existed: bool,
    /// The app's containers that were running and are (being) stopped.
    pub containers: Vec<String>,
    pub safety_backup: bool,
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The journal's path for database `db` in the backup directory.
pub fn path(dir: &Path, db: &str) -> PathBuf {
    let safe: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!(".lifeboat-restore-{safe}.json"))
}

impl Journal {
    /// The journal at `path`, if a restore left one.
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "the restore journal {} cannot be read; look at it, and remove it once the databases are as they should be",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Record `step`, durably, before doing it.
    pub fn write(&mut self, path: &Path, step: Step) -> anyhow::Result<()> {
        self.step = step;
        self.updated = Utc::now();
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
            lifeboat::files::write_atomic(path, text.as_bytes())
        };
        write().with_context(|| format!("cannot write the restore journal {}", path.display()))
    }

    /// The restore ended (done or undone): forget it.
    pub fn remove(path: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_survives_a_round_trip_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path(), "app db");
        assert!(p.ends_with(".lifeboat-restore-app_db.json"));
        let mut j = Journal {
            step: Step::Restoring,
            pid: 1,
            backup: "backup_1.sql.gz".into(),
            database: "app db".into(),
            restore_db: "r".into(),
            pre_db: "p".into(),
            live_existed: true,
            containers: vec!["app-1".into()],
            safety_backup: true,
            started: Utc::now(),
            updated: Utc::now(),
        };
        j.write(&p, Step::Swapping).expect("write");
        let back = Journal::read(&p).expect("read").expect("there");
        assert_eq!(back.step, Step::Swapping);
        assert_eq!(back.containers, ["app-1"]);
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        Journal::remove(&p).expect("remove");
        assert!(Journal::read(&p).expect("read").is_none());
    }
}
