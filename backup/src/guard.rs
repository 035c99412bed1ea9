//! The retention guard: no backup is deleted while the newest one is not known good.
//!
//! Retention that deletes old backups while new ones are broken ends with nothing to restore
//! (offen/docker-volume-backup#283). Before any deletion, here and in the bucket, each database's
//! newest backup must be whole (its archive as long as its manifest says, its SHA-256 the
//! manifest's, and its SQL read to the end with every table's rows as the manifest says), and
//! its SQL must not have shrunk under `LIFEBOAT_BACKUP_MIN_RATIO` of the backup before it (a dump
//! that lost tables, or a database emptied by mistake). Otherwise retention keeps everything,
//! and says why: a warning, the mail, the metrics.
//!
//! The backup a run has just taken was hashed and its rows counted as it was written: its
//! archive is checked for its size only, not read again. An encrypted newest backup is read to
//! its end only where an identity is configured (the backup host may hold public keys only);
//! without one its checksum stands for it.

use std::fmt;

use crate::archive;
use crate::crypt::{self, Keys};
use crate::manifest::Entry;
use crate::retention::is_pre_restore;

/// Why retention keeps everything.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The newest backup of a database is not whole.
    Unverified { file: String, why: String },
    /// The newest backup's SQL is under `min_ratio` of the one before.
    Shrunk {
        file: String,
        raw_size: u64,
        before: String,
        before_raw_size: u64,
        min_ratio: f64,
    },
}

impl Hold {
    /// The reason, as the metrics label it.
    pub const REASONS: [&'static str; 2] = ["unverified", "shrunk"];

    pub fn reason(&self) -> &'static str {
        match self {
            Hold::Unverified { .. } => Self::REASONS[0],
            Hold::Shrunk { .. } => Self::REASONS[1],
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Unverified { file, why } => write!(
                f,
                "the newest backup {file} is not verified good ({why}); retention deletes nothing \
                 until a good backup is the newest"
            ),
            Hold::Shrunk {
                file,
                raw_size,
                before,
                before_raw_size,
                min_ratio,
            } => write!(
                f,
                "the newest backup {file} holds {raw_size} bytes of SQL, under {min_ratio} of the \
                 {before_raw_size} of {before} before it (LIFEBOAT_BACKUP_MIN_RATIO): a dump that \
                 lost tables, or a database emptied? Retention deletes nothing until that is \
                 looked at; a good backup of the usual size lifts it"
            ),
        }
    }
}

/// What holds retention for `entries` (a directory's backups, any order): for each database
/// but lifeboat-restore's safety backups, its newest backup checked and compared with the one
/// before. `fresh` is the file name of the backup this run has just written.
pub fn check(entries: &[Entry], min_ratio: f64, keys: &Keys, fresh: Option<&str>) -> Vec<Hold> {
    let mut databases: Vec<&str> = entries
        .iter()
        .map(|e| e.manifest.database.as_str())
        .filter(|db| !is_pre_restore(db))
        .collect();
    databases.sort_unstable();
    databases.dedup();
    let mut holds = Vec::new();
    for db in databases {
        let mut mine: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.manifest.database == db)
            .collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.manifest.started));
        let newest = mine[0];
        let file = &newest.manifest.file;
        if let Err(why) = verified(newest, keys, fresh == Some(file.as_str())) {
            holds.push(Hold::Unverified {
                file: file.clone(),
                why: format!("{why:#}"),
            });
            continue;
        }
        if let Some(before) = mine.get(1) {
            let (now, then) = (newest.manifest.raw_size, before.manifest.raw_size);
            if min_ratio > 0.0 && (now as f64) < min_ratio * then as f64 {
                holds.push(Hold::Shrunk {
                    file: file.clone(),
                    raw_size: now,
                    before: before.manifest.file.clone(),
                    before_raw_size: then,
                    min_ratio,
                });
            }
        }
    }
    holds
}

/// Whether `entry` is whole: its size, and unless `fresh` its SHA-256 and its SQL to the end.
fn verified(entry: &Entry, keys: &Keys, fresh: bool) -> anyhow::Result<()> {
    archive::check_size(entry)?;
    if fresh {
        return Ok(());
    }
    archive::check_sha256(entry)?;
    if crypt::is_encrypted(&entry.manifest.file) && keys.is_empty() {
        return Ok(());
    }
    let scan = archive::decompress(entry, keys, None)?;
    archive::check_scan(entry, &scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::fixture::{backup, SQL};

    #[test]
    fn a_damaged_or_shrunken_newest_backup_holds_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = backup(
            dir.path(),
            "backup_1.sql.gz",
            &SQL.repeat(10),
            "2026-11-21T02:00:00Z",
        );
        let good = backup(
            dir.path(),
            "backup_2.sql.gz",
            &SQL.repeat(10),
            "2026-11-22T02:00:00Z",
        );
        let keys = Keys::none();
        assert_eq!(
            check(&[old.clone(), good.clone()], 0.5, &keys, None),
            vec![]
        );

        let small = backup(dir.path(), "backup_3.sql.gz", SQL, "2026-11-23T02:00:00Z");
        let entries = [old.clone(), good.clone(), small.clone()];
        let holds = check(&entries, 0.5, &keys, None);
        assert!(
            matches!(&holds[..], [Hold::Shrunk { file, .. }] if file == "backup_3.sql.gz"),
            "{holds:?}"
        );
        assert!(holds[0].to_string().contains("backup_2.sql.gz"));
        assert_eq!(check(&entries, 0.0, &keys, None), vec![], "0 turns it off");

        let mut bytes = std::fs::read(&small.archive).expect("read");
        bytes[20] ^= 1;
        std::fs::write(&small.archive, &bytes).expect("damage");
        let holds = check(&entries, 0.0, &keys, None);
        assert!(
            matches!(&holds[..], [Hold::Unverified { why, .. }] if why.contains("checksum")),
            "{holds:?}"
        );
        // The backup a run has just written is not read again.
        assert_eq!(check(&entries, 0.0, &keys, Some("backup_3.sql.gz")), vec![]);
    }
}
