//! Retention: which backups to delete, as a plan that `prune --dry-run` prints and every run
//! applies, the same plan both times.
//!
//! The rules make the scripts' failures impossible: only backups with a manifest of ours are
//! ever considered (no other file in the directory is touched); each database's newest backup
//! is always kept; never fewer than `min` per database, however old (a backup that stopped
//! running weeks ago must not end with an empty directory). Beyond that a backup stays when any
//! rule keeps it: younger than `days`, or the newest of one of the last `daily` days, `weekly`
//! ISO weeks or `monthly` months that have a backup (grandfather-father-son). The rest goes.
//!
//! lifeboat-restore's safety backups (their manifest names a `<db>__pre_restore_<time>`
//! database) are not lifeboat-backup's to prune: each would be the newest of a database of its
//! own and stay for ever. They are always kept here; lifeboat-restore deletes them with their
//! pre-restore database, after `restore.keep-days` days.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use lifeboat::config::Retention;

use crate::manifest::Entry;

/// Why a backup stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Newest,
    Recent,
    Daily,
    Weekly,
    Monthly,
    Minimum,
    /// A safety backup of lifeboat-restore, which prunes it.
    SafetyBackup,
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Decision {
    pub entry: Entry,
    /// `None`: delete.
    pub keep: Option<Keep>,
}

/// The plan for `entries` (any order, any databases) at `now`: each database's backups on
/// their own, newest first.
pub fn plan(entries: Vec<Entry>, now: DateTime<Utc>, rules: &Retention) -> Vec<Decision> {
    let mut by_database: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut safety = Vec::new();
    for entry in entries {
        if is_pre_restore(&entry.manifest.database) {
            safety.push(Decision {
                entry,
                keep: Some(Keep::SafetyBackup),
            });
            continue;
        }
        by_database
            .entry(entry.manifest.database.clone())
            .or_default()
            .push(entry);
    }
    by_database
        .into_values()
        .flat_map(|entries| plan_one(entries, now, rules))
        .chain(safety)
        .collect()
}

/// Whether `database` is a pre-restore database of lifeboat-restore:
/// `<db>__pre_restore_YYYYMMDD_HHMMSS`.
pub fn is_pre_restore(database: &str) -> bool {
    database
        .rsplit_once("__pre_restore_")
        .is_some_and(|(db, stamp)| {
            !db.is_empty()
                && stamp.len() == 15
                && stamp.bytes().enumerate().all(|(i, b)| {
                    if i == 8 {
                        b == b'_'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
}

/// A GFS rule: keeps the newest backup of each of the last `count` periods that have one.
struct Slots {
    count: u32,
    last: Option<(i32, u32)>,
    period: fn(DateTime<Utc>) -> (i32, u32),
}

impl Slots {
    fn new(count: u32, period: fn(DateTime<Utc>) -> (i32, u32)) -> Self {
        Self {
            count,
            last: None,
            period,
        }
    }

    /// Entries arrive newest first: the first of each period takes a slot while any are left.
    fn takes(&mut self, at: DateTime<Utc>) -> bool {
        let period = (self.period)(at);
        if self.count == 0 || self.last == Some(period) {
            return false;
        }
        self.last = Some(period);
        self.count -= 1;
        true
    }
}

fn plan_one(mut entries: Vec<Entry>, now: DateTime<Utc>, rules: &Retention) -> Vec<Decision> {
    entries.sort_by_key(|e| std::cmp::Reverse(e.manifest.started));
    let cutoff = lifeboat::config::days_before(now, rules.days);
    let min = usize::try_from(rules.min).unwrap_or(usize::MAX);
    let mut daily = Slots::new(rules.daily, |t| (t.year(), t.ordinal()));
    let mut weekly = Slots::new(rules.weekly, |t| {
        let w = t.iso_week();
        (w.year(), w.week())
    });
    let mut monthly = Slots::new(rules.monthly, |t| (t.year(), t.month()));
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = entry.manifest.started;
            // Every rule sees every backup, so a slot is taken by its period's newest backup
            // even when another rule keeps that backup too.
            let (d, w, m) = (daily.takes(at), weekly.takes(at), monthly.takes(at));
            let keep = if i == 0 {
                Some(Keep::Newest)
            } else if at >= cutoff {
                Some(Keep::Recent)
            } else if d {
                Some(Keep::Daily)
            } else if w {
                Some(Keep::Weekly)
            } else if m {
                Some(Keep::Monthly)
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
    pub fn describe(&self, rules: &Retention) -> String {
        let name = &self.entry.manifest.file;
        let why = match self.keep {
            Some(Keep::Newest) => "the newest backup".to_owned(),
            Some(Keep::Recent) => format!("younger than {} days", rules.days),
            Some(Keep::Daily) => format!("the last of its day ({} days kept)", rules.daily),
            Some(Keep::Weekly) => format!("the last of its week ({} weeks kept)", rules.weekly),
            Some(Keep::Monthly) => {
                format!("the last of its month ({} months kept)", rules.monthly)
            }
            Some(Keep::Minimum) => format!("one of the {} kept at least", rules.min),
            Some(Keep::SafetyBackup) => {
                "a safety backup of lifeboat-restore, which prunes it (restore.keep-days)"
                    .to_owned()
            }
            None => return format!("delete\t{name}\t{}", delete_reason(rules)),
        };
        format!("keep\t{name}\t{why}")
    }
}

/// Why a backup goes: what no rule kept.
pub fn delete_reason(rules: &Retention) -> String {
    if rules.daily + rules.weekly + rules.monthly == 0 {
        format!("older than {} days", rules.days)
    } else {
        format!(
            "older than {} days and not the last of a kept day, week or month",
            rules.days
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn rules(days: u32, min: u32) -> Retention {
        Retention {
            days,
            daily: 0,
            weekly: 0,
            monthly: 0,
            min,
        }
    }

    fn entry(days_ago: i64, now: DateTime<Utc>) -> Entry {
        let started = now - chrono::Duration::days(days_ago);
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
                all: false,
                properties: None,
                encryption: None,
                signature: None,
                extra: serde_json::Map::new(),
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
        let p = plan(entries, now, &rules(7, 3));
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
        let p = plan(entries, now, &rules(7, 3));
        assert_eq!(deleted(&p), ["backup_43.sql.gz", "backup_44.sql.gz"]);
        assert_eq!(p[0].keep, Some(Keep::Newest));
        // A minimum of 1 still keeps the newest.
        let p = plan(vec![entry(90, now), entry(100, now)], now, &rules(7, 1));
        assert_eq!(deleted(&p), ["backup_100.sql.gz"]);
        assert!(plan(Vec::new(), now, &rules(7, 3)).is_empty());
    }

    #[test]
    fn each_database_has_its_own_newest_and_minimum() {
        let now = Utc::now();
        let mut other = entry(50, now);
        other.manifest.database = "other".into();
        other.manifest.file = "other_50.sql.gz".into();
        let p = plan(
            vec![entry(40, now), entry(41, now), other],
            now,
            &rules(7, 1),
        );
        assert_eq!(deleted(&p), ["backup_41.sql.gz"]);
    }

    #[test]
    fn safety_backups_of_restores_are_left_to_lifeboat_restore() {
        let now = Utc::now();
        let mut safety = entry(90, now);
        safety.manifest.database = "app__pre_restore_20261123_140509".into();
        safety.manifest.file = "safety_before_restore_app_20261123_140509.sql.gz".into();
        let mut second = safety.clone();
        second.manifest.file = "safety_before_restore_app_20261123_140509_2.sql.gz".into();
        let p = plan(
            vec![entry(40, now), entry(41, now), safety, second],
            now,
            &rules(7, 1),
        );
        assert_eq!(deleted(&p), ["backup_41.sql.gz"]);
        assert_eq!(
            p.iter()
                .filter(|d| d.keep == Some(Keep::SafetyBackup))
                .count(),
            2
        );
        assert!(is_pre_restore("a__pre_restore_20261123_140509"));
        assert!(!is_pre_restore("a__pre_restore_2026112_1405091"));
        assert!(!is_pre_restore("__pre_restore_20261123_140509"));
        assert!(!is_pre_restore("app"));
    }

    #[test]
    fn gfs_keeps_the_newest_of_each_day_week_and_month() {
        // A backup every 12 hours for 120 days, at fixed dates so weeks and months are known.
        let now = "2026-06-30T23:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("date");
        let entries: Vec<Entry> = (0..240)
            .map(|i| {
                let mut e = entry(0, now);
                e.manifest.started = now - chrono::Duration::hours(12 * i);
                e.manifest.file = format!("b{i}");
                e
            })
            .collect();
        let rules = Retention {
            days: 1,
            daily: 3,
            weekly: 2,
            monthly: 3,
            min: 1,
        };
        let p = plan(entries, now, &rules);
        let kept: Vec<(String, Keep)> = p
            .iter()
            .filter_map(|d| Some((d.entry.manifest.file.clone(), d.keep?)))
            .collect();
        let names = |k: Keep| -> Vec<String> {
            kept.iter()
                .filter(|(_, why)| *why == k)
                .map(|(n, _)| n.clone())
                .collect()
        };
        // One day back reaches 23:00 June 29 (b2), inclusive.
        assert_eq!(names(Keep::Newest), ["b0"]);
        assert_eq!(names(Keep::Recent), ["b1", "b2"]);
        // Days: June 30 (b0), June 29 (b2), June 28 (b4); only b4 is kept for that alone.
        assert_eq!(names(Keep::Daily), ["b4"]);
        // Weeks: ISO week 27 starts Monday June 29: b0; week 26 ends Sunday June 28: b4
        // (kept as daily). So weekly adds nothing new beyond them.
        assert!(names(Keep::Weekly).is_empty(), "{kept:?}");
        // Months: June (b0), May 31 23:00 (b60), April 30 23:00 (b122).
        assert_eq!(names(Keep::Monthly), ["b60", "b122"]);
        assert_eq!(kept.len(), 6);
    }
}
