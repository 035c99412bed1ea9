//! Retention: which backups to delete, as a plan that `prune --dry-run` prints and every run
//! applies, the same plan both times.
//!
//! The rules make the scripts' failures impossible: only backups with a manifest of ours are
//! ever considered (no other file in the directory is touched); the newest backup is always
//! kept; never fewer than `keep_min`, however old (a backup that stopped running weeks ago must
//! not end with an empty directory); otherwise what is older than `keep_days` goes.

use chrono::{DateTime, Duration, Utc};

use crate::manifest::Entry;

/// Why a backup stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Newest,
    Recent,
    Minimum,
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Decision {
    pub entry: Entry,
    /// `None`: delete.
    pub keep: Option<Keep>,
}

/// The plan for `entries` (any order) at `now`, newest first.
pub fn plan(
    mut entries: Vec<Entry>,
    now: DateTime<Utc>,
    keep_days: u32,
    keep_min: u32,
) -> Vec<Decision> {
    entries.sort_by_key(|e| std::cmp::Reverse(e.manifest.started));
    let cutoff = now - Duration::days(i64::from(keep_days));
    let min = usize::try_from(keep_min).unwrap_or(usize::MAX);
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let keep = if i == 0 {
                Some(Keep::Newest)
            } else if entry.manifest.started >= cutoff {
                Some(Keep::Recent)
            } else if i < min {
                Some(Keep::Minimum)
            } else {
                None
            };
            Decision { entry, keep }
        })
        .collect()
}

impl Decision {
    /// `keep NAME (reason)` or `delete NAME`, for `prune --dry-run` and the log.
    pub fn describe(&self, keep_days: u32, keep_min: u32) -> String {
        let name = &self.entry.manifest.file;
        match self.keep {
            Some(Keep::Newest) => format!("keep\t{name}\tthe newest backup"),
            Some(Keep::Recent) => format!("keep\t{name}\tyounger than {keep_days} days"),
            Some(Keep::Minimum) => format!("keep\t{name}\tone of the {keep_min} kept at least"),
            None => format!("delete\t{name}\tolder than {keep_days} days"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn entry(days_ago: i64, now: DateTime<Utc>) -> Entry {
        let started = now - Duration::days(days_ago);
        Entry {
            archive: format!("backup_{days_ago}.sql.gz").into(),
            manifest: Manifest {
                format: 1,
                file: format!("backup_{days_ago}.sql.gz"),
                database: "app".into(),
                server_version: "15".into(),
                source: "test".into(),
                size: 1,
                raw_size: 1,
                sha256: String::new(),
                compression: "gzip".into(),
                started,
                finished: started,
                duration_ms: 0,
                tool: "test".into(),
                tables: Vec::new(),
            },
        }
    }

    fn deleted(plan: &[Decision]) -> Vec<String> {
        plan.iter()
            .filter(|d| d.keep.is_none())
            .map(|d| d.entry.manifest.file.clone())
            .collect()
    }

    #[test]
    fn retention_deletes_what_is_older_than_the_days_and_keeps_the_rest() {
        let now = Utc::now();
        let entries = [0, 1, 6, 8, 9, 30].map(|d| entry(d, now)).to_vec();
        let p = plan(entries, now, 7, 3);
        assert_eq!(
            deleted(&p),
            ["backup_8.sql.gz", "backup_9.sql.gz", "backup_30.sql.gz"]
        );
        assert_eq!(p.iter().filter(|d| d.keep == Some(Keep::Recent)).count(), 2);
    }

    #[test]
    fn retention_never_deletes_the_newest_or_goes_below_the_minimum() {
        let now = Utc::now();
        // Backups stopped 40 days ago: all are old, but the 3 newest stay.
        let entries = [40, 41, 42, 43, 44].map(|d| entry(d, now)).to_vec();
        let p = plan(entries, now, 7, 3);
        assert_eq!(deleted(&p), ["backup_43.sql.gz", "backup_44.sql.gz"]);
        assert_eq!(p[0].keep, Some(Keep::Newest));
        // A minimum of 1 still keeps the newest.
        let p = plan(vec![entry(90, now), entry(100, now)], now, 7, 1);
        assert_eq!(deleted(&p), ["backup_100.sql.gz"]);
        assert!(plan(Vec::new(), now, 7, 3).is_empty());
    }
}
