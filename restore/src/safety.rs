//! Safety backups: the file copy of a pre-restore database (seed 001's
//! `safety_backup_before_restore_…`), written with lifeboat-backup's own code and manifest, and
//! their retention.
//!
//! One restore has at most one: the name comes from the restore's own time
//! (`safety_before_restore_<db>_<time>`, the time of `<db>__pre_restore_<time>`), so a rerun
//! after a crash finds the one that was completed (its manifest names the pre-restore
//! database) and does not take it again, or removes what a killed run left half-written.
//!
//! Their manifest names `<db>__pre_restore_<time>`, so lifeboat-backup's per-database
//! retention would keep each as the newest of its own database for ever; it leaves them to
//! lifeboat-restore instead, which deletes one once it is older than `restore.keep-days` days
//! and its pre-restore database is gone from the server (dropped after those days, or by
//! `cleanup`). So the file outlives the database copy it was taken from, and a restore that
//! was not cleaned up keeps its safety backup whatever its age.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use lifeboat::config::Config;
use lifeboat_backup::manifest::{self, Entry};
use tracing::{info, warn};

use crate::server::Server;
use crate::txn::made_at;

/// The archive's name before its extension for the safety backup of `pre_db`, a pre-restore
/// database of `db` (a strftime pattern for lifeboat-backup with nothing left to expand).
pub fn stem(db: &str, pre_db: &str) -> String {
    let stamp = pre_db
        .strip_prefix(&format!("{db}__pre_restore_"))
        .unwrap_or(pre_db);
    format!("safety_before_restore_{}_{}", safe(db), safe(stamp))
}

/// Letters, digits and `-` kept, anything else `_`: a file name, and nothing for strftime.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The completed safety backups of `pre_db` in `dir`.
fn completed(dir: &Path, pre_db: &str) -> anyhow::Result<Vec<Entry>> {
    let (entries, _) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(entries
        .into_iter()
        .filter(|e| e.manifest.database == pre_db)
        .collect())
}

/// Take the safety backup of `pre_db` (a pre-restore database of `db`), unless a run that was
/// killed afterwards already did: then that one's path. What a run killed midway left (a
/// `.partial` file, or an archive whose manifest was never written or does not match it) is
/// removed first.
pub async fn take(config: &Config, db: &str, pre_db: &str) -> anyhow::Result<PathBuf> {
    let dir = &config.backup.dir;
    if let Some(done) = completed(dir, pre_db)?.into_iter().next() {
        info!(
            step = "safety-backup",
            "the safety backup of {pre_db} was already taken: {}",
            done.archive.display()
        );
        return Ok(done.archive);
    }
    let stem = stem(db, pre_db);
    for ext in manifest::EXTENSIONS {
        let archive = dir.join(format!("{stem}{ext}"));
        let partial = dir.join(format!("{stem}{ext}.partial"));
        // A manifest here is one that does not match its archive (damaged): both go.
        for leftover in [partial, manifest::path_for(&archive), archive] {
            match std::fs::remove_file(&leftover) {
                Ok(()) => warn!(
                    "removed {}: an interrupted safety backup of {pre_db}",
                    leftover.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", leftover.display()))
                }
            }
        }
    }
    let mut c = config.clone();
    c.database.name = Some(pre_db.to_owned());
    c.backup.all = false;
    c.backup.name = stem;
    info!(step = "safety-backup", "safety backup of {pre_db}");
    let done = lifeboat_backup::take(&c).await?;
    Ok(done.archive)
}

/// The safety backups of `db`'s restores that may go: older than `restore.keep-days` days and
/// their pre-restore database no longer on the server (or about to be dropped: `dropping`).
pub async fn expired(
    config: &Config,
    server: &Server,
    db: &str,
    dropping: &[String],
) -> anyhow::Result<Vec<Entry>> {
    let dir = &config.backup.dir;
    let (entries, _) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let limit = lifeboat::config::days_before(Utc::now(), config.restore.keep_days);
    let mut old = Vec::new();
    for e in entries {
        let Some((true, at)) = made_at(db, &e.manifest.database) else {
            continue;
        };
        if at >= limit {
            continue;
        }
        if dropping.contains(&e.manifest.database) || !server.exists(&e.manifest.database).await? {
            old.push(e);
        }
    }
    Ok(old)
}

/// Delete a safety backup: its manifest first (without it the archive is no backup any more).
pub fn delete(entry: &Entry, days: u32) -> anyhow::Result<()> {
    let archive = &entry.archive;
    std::fs::remove_file(manifest::path_for(archive))
        .and_then(|()| std::fs::remove_file(archive))
        .with_context(|| format!("cannot delete {}", archive.display()))?;
    info!(
        "deleted the safety backup {}: older than {days} days (restore.keep-days), and {} is dropped",
        entry.manifest.file, entry.manifest.database
    );
    Ok(())
}

/// Delete the expired safety backups of `db`; failures are reported, not fatal.
pub async fn expire(config: &Config, server: &Server, db: &str) {
    let old = match expired(config, server, db, &[]).await {
        Ok(old) => old,
        Err(e) => {
            warn!("cannot list the old safety backups: {e:#}");
            return;
        }
    };
    for e in old {
        if let Err(err) = delete(&e, config.restore.keep_days) {
            warn!("{err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safety_backup_is_named_after_its_database_and_the_restore_time() {
        assert_eq!(
            stem("app", "app__pre_restore_20261123_140509"),
            "safety_before_restore_app_20261123_140509"
        );
        // Any name makes a safe file name and a pattern with nothing for strftime.
        assert_eq!(
            stem("we/ird %Y", "we/ird %Y__pre_restore_20261123_140509"),
            "safety_before_restore_we_ird__Y_20261123_140509"
        );
    }
}
