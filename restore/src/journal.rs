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

/// The journal's path for database `db` in the backup directory: one name per database, never
/// shared (the same rule as the lock's, [`lifeboat::files::safe_name`]).
pub fn path(dir: &Path, db: &str) -> PathBuf {
    dir.join(format!(
        ".lifeboat-restore-{}.json",
        lifeboat::files::safe_name(db)
    ))
}

/// Where versions before 0.1 wrote it (`app.db` and `app_db` shared `app_db`'s): still read, so
/// that an upgrade in the middle of an incident finds the interrupted restore.
fn legacy_path(dir: &Path, db: &str) -> PathBuf {
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

/// A journal is a few hundred bytes; anything larger is not one of ours.
const MAX_JOURNAL: u64 = 1024 * 1024;

impl Journal {
    /// The journal a restore of `db` left in `dir`, if any, and the path to write it at. A
    /// journal of another database under that name (an older version's shared name) is refused.
    pub fn find(dir: &Path, db: &str) -> anyhow::Result<(PathBuf, Option<Self>)> {
        let current = path(dir, db);
        for at in [current.clone(), legacy_path(dir, db)] {
            if let Some(j) = Self::read(&at)? {
                if j.database != db {
                    anyhow::bail!(
                        "the restore journal {} belongs to database {}, not {db}: finish that restore first (lifeboat-restore with the database {}), or remove the journal once the databases are as they should be",
                        at.display(),
                        j.database,
                        j.database
                    );
                }
                return Ok((at, Some(j)));
            }
        }
        Ok((current, None))
    }

    /// The journal at `path`, if a restore left one: a regular file of ours, read without
    /// following a symbolic link, at most [`MAX_JOURNAL`] bytes.
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = match lifeboat::files::read_own(path, MAX_JOURNAL) {
            Ok(Some((text, _))) => text,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => anyhow::bail!(
                "the restore journal {} is not a regular file of this user's ({e}); another user may have put it there: look at it, and remove it",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "the restore journal {} cannot be read; look at it, and remove it once the databases are as they should be",
                path.display()
            )
        })?))
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
        assert!(p.ends_with(".lifeboat-restore-app%20db.json"));
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

    #[test]
    fn two_databases_never_share_a_journal_and_a_journal_is_checked_against_its_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_ne!(path(dir.path(), "app.db"), path(dir.path(), "app_db"));
        let mut j = Journal {
            step: Step::Restoring,
            pid: 1,
            backup: "b.sql.gz".into(),
            database: "app.db".into(),
            restore_db: "r".into(),
            pre_db: "p".into(),
            live_existed: true,
            containers: vec![],
            safety_backup: false,
            started: Utc::now(),
            updated: Utc::now(),
        };
        // An older version wrote app.db's journal under app_db's name.
        let legacy = dir.path().join(".lifeboat-restore-app_db.json");
        j.write(&legacy, Step::Swapping).expect("write");
        let (at, found) = Journal::find(dir.path(), "app.db").expect("app.db finds its own");
        assert_eq!(at, legacy);
        assert_eq!(found.expect("found").step, Step::Swapping);
        let err = Journal::find(dir.path(), "app_db")
            .expect_err("app_db must not replay app.db's journal")
            .to_string();
        assert!(
            err.contains("belongs to database app.db, not app_db"),
            "{err}"
        );
        // A journal someone planted as a link is not read.
        let planted = path(dir.path(), "other");
        std::os::unix::fs::symlink(&legacy, &planted).expect("symlink");
        let err = Journal::find(dir.path(), "other")
            .expect_err("a link is refused")
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
