//! A lock per job, so that two runs never overlap.
//!
//! cron starting the nightly backup while a person runs one by hand, or two deploys from two CI
//! jobs, must not interleave. The lock is an OS file lock (`flock`): the kernel releases it when
//! the process dies, so a crashed run never leaves a stale lock behind. The file also holds who
//! took it and when, so that the error says who holds it and since when.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{job} is already running: {holder}; wait for it to finish (lock file {})", path.display())]
    Held {
        job: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot use lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who holds a lock: written into the lock file by the holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub command: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (pid {}, user {} on {}) since {}",
            self.command,
            self.pid,
            self.user,
            self.host,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct JobLock {
    file: File,
    path: PathBuf,
    stale: Option<Holder>,
}

impl JobLock {
    /// Take the lock for `job` (e.g. `backup-myapp`) in `dir`, or say who holds it.
    pub fn acquire(dir: &Path, job: &str) -> Result<Self, LockError> {
        // A job is named after a database, which may hold any character: only safe ones go
        // into the file name.
        let file: String = job
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| LockError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let stale = match file.try_lock() {
            Ok(()) => {
                // A holder that released the lock emptied the file: a record still there was
                // left by a run that died (SIGKILL, a crash, a reboot).
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                serde_json::from_str::<Holder>(&text).ok()
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text)
                    .map_or_else(|_| "another process".to_owned(), |h| h.to_string());
                return Err(LockError::Held {
                    job: job.to_owned(),
                    holder,
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        };
        let holder = Holder {
            pid: std::process::id(),
            host: hostname(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            // Redacted: `--url postgres://user:password@…` must not end up in a file.
            command: crate::secret::redact_url(&std::env::args().collect::<Vec<_>>().join(" ")),
            since: chrono::Utc::now(),
        };
        let json = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(json.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self { file, path, stale })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who held the lock last without releasing it: a run that died, whose work may be half
    /// done.
    pub fn stale(&self) -> Option<&Holder> {
        self.stale.as_ref()
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        // Empty the holder record, then let the kernel drop the lock with the file handle.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_and_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = JobLock::acquire(dir.path(), "backup-app").expect("first");
        let err = JobLock::acquire(dir.path(), "backup-app")
            .expect_err("second must fail")
            .to_string();
        assert!(err.contains("backup-app is already running"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("since 20"), "{err}");
        // Another job is independent.
        let _other = JobLock::acquire(dir.path(), "restore-app").expect("other job");
        drop(first);
        let again = JobLock::acquire(dir.path(), "backup-app").expect("free again after release");
        assert!(again.stale().is_none(), "a released lock is not stale");
        // A holder that died (its record left behind, its flock gone with it) is told.
        drop(again);
        let path = dir.path().join("backup-app.lock");
        let dead = Holder {
            pid: 999_999,
            host: "h".into(),
            user: "u".into(),
            command: "lifeboat-backup".into(),
            since: chrono::Utc::now(),
        };
        std::fs::write(&path, serde_json::to_string(&dead).expect("json")).expect("write");
        let taken = JobLock::acquire(dir.path(), "backup-app").expect("a dead holder's lock");
        assert_eq!(taken.stale(), Some(&dead));
    }

    #[test]
    fn any_database_name_makes_a_lock_file_in_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _all = JobLock::acquire(dir.path(), "backup-(all databases)").expect("all");
        let _odd = JobLock::acquire(dir.path(), "backup-../a/b").expect("slashes");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["backup-.._a_b.lock", "backup-_all_databases_.lock"]);
    }
}
