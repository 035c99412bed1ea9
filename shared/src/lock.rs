//! A lock per job, so that two runs never overlap.
//!
//! cron starting the nightly backup while a person runs one by hand, or two deploys from two CI
//! jobs, must not interleave. The lock is an OS file lock (`flock`): the kernel releases it when
//! the process dies, so a crashed run never leaves a stale lock behind. The file also holds who
//! took it and when, so that the error says who holds it and since when.
//!
//! Root's nightly backup takes its lock in a directory no other user can write: by default
//! `/run/lock/lifeboat` for root, `$XDG_RUNTIME_DIR/lifeboat` for another user who has one, and
//! `<backup dir>/.lifeboat-locks` otherwise, made 0700. A directory (default or `lock.dir`) that
//! is not ours or that others can write is refused, and a lock file is never opened through a
//! symbolic link nor truncated: a local user's planted link cannot make root's cron overwrite a
//! file.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
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
    #[error("the lock directory cannot be used: {reason} (lock.dir, LIFEBOAT_LOCK_DIR)")]
    Dir { reason: String },
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
        // A job is named after a database, which may hold any character.
        let path = dir.join(format!("{}.lock", crate::files::safe_name(job)));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::files::private_dir(dir).map_err(|reason| LockError::Dir { reason })?;
        let mut file = crate::files::open_private(&path).map_err(io)?;
        let stale = match file.try_lock() {
            Ok(()) => {
                // A holder that released the lock emptied the file: a record still there was
                // left by a run that died (SIGKILL, a crash, a reboot).
                serde_json::from_str::<Holder>(&read_record(&mut file)).ok()
            }
            Err(TryLockError::WouldBlock) => {
                let holder = serde_json::from_str::<Holder>(&read_record(&mut file))
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
            user: user(),
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

/// The holder record, read up to 64 KiB (ours are a few hundred bytes).
fn read_record(file: &mut File) -> String {
    let mut text = String::new();
    let _ = Read::by_ref(file).take(64 * 1024).read_to_string(&mut text);
    text
}

/// Where locks live when `lock.dir` is not set: see the module's documentation.
pub fn default_dir(backup_dir: &Path) -> PathBuf {
    if crate::files::euid() == 0 {
        return PathBuf::from("/run/lock/lifeboat");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(run) if run.is_absolute() && run.is_dir() => run.join("lifeboat"),
        _ => backup_dir.join(".lifeboat-locks"),
    }
}

/// `user@host` of this run: what a lock holder, a deploy's history and its journal record.
pub fn who() -> String {
    format!("{}@{}", user(), hostname())
}

/// The person behind this run: the one who ran `sudo` rather than root, else `USER`,
/// `LOGNAME`, else this process's user in /etc/passwd (cron and CI often set no `USER`), or
/// `unknown`.
pub fn user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user from /etc/passwd, or `uid N`.
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_owned())
        .or(Some(format!("uid {uid}")))
}

/// This machine's name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
        assert_eq!(
            names,
            [
                "backup-%28all%20databases%29.lock",
                "backup-%2E%2E%2Fa%2Fb.lock"
            ]
        );
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locks = dir.path().join("locks");
        crate::files::private_dir(&locks).expect("locks");
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, b"root:secret").expect("victim");
        std::os::unix::fs::symlink(&victim, locks.join("backup-app.lock")).expect("plant");
        let err = JobLock::acquire(&locks, "backup-app")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"root:secret");
        // And a lock directory others may write is refused whole, naming the setting.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let err = JobLock::acquire(&shared, "backup-app")
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("writable by other users") && err.contains("LIFEBOAT_LOCK_DIR"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let other = if crate::files::euid() == 0 { 65534 } else { 0 };
        if std::os::unix::fs::chown(&theirs, Some(other), None).is_err() {
            // Only root can give a directory away; a user can still meet root's directory.
            let err = JobLock::acquire(Path::new("/"), "x")
                .expect_err("/ is root's")
                .to_string();
            assert!(err.contains("belongs to uid 0"), "{err}");
            return;
        }
        let err = JobLock::acquire(&theirs, "backup-app")
            .expect_err("refused")
            .to_string();
        assert!(err.contains(&format!("belongs to uid {other}")), "{err}");
    }
}
