//! The restore as a transaction.
//!
//! 1. The backup is restored into `<db>__restore_<time>` beside the live database, which the app
//!    keeps using; the database's owner, encoding, locale, settings, grants and comment are
//!    copied onto it (a dump without `--create` carries none of them, and a rename would leave
//!    them on the old database). Any error, or a signal, drops it: the live database was never
//!    touched.
//! 2. The app's containers are stopped, the live database's sessions ended, and the two
//!    databases swapped by two renames in one transaction (`<db>` → `<db>__pre_restore_<time>`,
//!    the restored one → `<db>`): at every instant one of them is live, never neither. The app
//!    is started and waited on until healthy.
//! 3. Any failure in 2, an unhealthy app or a signal: the renames are reversed, the restored
//!    database dropped, the app started on its old data, and the run exits 1 saying so.
//!
//! Every step is written to a journal first, so a run killed outright is finished or undone by
//! the next one ([`recover`]). The swap is never cancelled halfway: signals are looked at
//! between its statements, not during them.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use lifeboat::config::Config;
use lifeboat::signal::Stop;
use lifeboat_backup::manifest::Entry;
use tracing::{error, info, warn};

use crate::app::App;
use crate::journal::{Journal, Step};
use crate::safety;
use crate::server::{DbInfo, Server};
use lifeboat::progress::Bar;

/// A test hook: the name of a step at which to stop and wait for a signal (SIGTERM, Ctrl-C,
/// or SIGKILL from the test), so that tests can interrupt every step for sure.
pub const PAUSE_VAR: &str = "LBTEST_RESTORE_PAUSE_AT";

/// The pattern of the time in the names of restore's databases (UTC).
const STAMP: &str = "%Y%m%d_%H%M%S";

/// What a restore needs besides the backup.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub server: &'a Server,
    pub journal: PathBuf,
    pub stop: Stop,
    /// What decrypts an encrypted archive (`LIFEBOAT_BACKUP_IDENTITY`, the passphrase).
    pub keys: lifeboat_backup::crypt::Keys,
}

/// A restore that was done.
#[derive(Debug)]
pub struct Restored {
    pub database: String,
    pub backup: String,
    /// The database from before, kept under this name (none if there was no live database).
    pub pre_db: Option<String>,
    pub downtime: Duration,
    pub total: Duration,
    pub safety_backup: Option<PathBuf>,
}

/// The names a restore at `now` uses for database `db`.
pub fn names(db: &str, now: chrono::DateTime<Utc>) -> (String, String) {
    let stamp = now.format(STAMP);
    (
        format!("{db}__restore_{stamp}"),
        format!("{db}__pre_restore_{stamp}"),
    )
}

/// When a pre-restore (or restore) database of `db` was made, from its name.
pub fn made_at(db: &str, name: &str) -> Option<(bool, chrono::DateTime<Utc>)> {
    let (pre, stamp) = if let Some(s) = name.strip_prefix(&format!("{db}__pre_restore_")) {
        (true, s)
    } else {
        (false, name.strip_prefix(&format!("{db}__restore_"))?)
    };
    let at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Some((pre, at.and_utc()))
}

async fn pause_if(step: Step) {
    pause_at(step.name()).await;
}

/// Wait for ever (for a signal) if [`PAUSE_VAR`] names this point.
pub async fn pause_at(point: &str) {
    lifeboat::signal::pause_at(PAUSE_VAR, point).await;
}

fn checkpoint(ctx: &Ctx<'_>, j: &mut Journal, step: Step) -> anyhow::Result<()> {
    j.write(&ctx.journal, step)?;
    tracing::debug!(step = step.name(), "journal: {}", step.name());
    Ok(())
}

/// Restore `entry` (already checked) into the live database as a transaction.
///
/// Read top to bottom: each step, and what undoes it, is a function below in the same order.
pub async fn restore(
    ctx: &Ctx<'_>,
    entry: &Entry,
    app: &App,
    safety_backup: bool,
) -> anyhow::Result<Restored> {
    let server = ctx.server;
    let db = server.database().to_owned();
    let clock = Instant::now();
    let started = Utc::now();
    let (restore_db, pre_db) = free_names(server, &db, started).await?;
    let live = server.info(&db).await?;
    let mut j = Journal {
        step: Step::Restoring,
        pid: std::process::id(),
        backup: entry.manifest.file.clone(),
        database: db.clone(),
        restore_db: restore_db.clone(),
        pre_db: pre_db.clone(),
        live_existed: live.is_some(),
        containers: app.names(),
        safety_backup,
        started,
        updated: started,
    };
    if live.is_none() {
        warn!("there is no database {db} on the server: the restore creates it");
    }
    // The database as it was at backup time: its owner, locale, settings, grants and comment
    // from the manifest; what differs from the live database is said.
    let recorded = entry.manifest.properties.as_ref();
    say_how_it_differs(server, entry, &db, live.is_some()).await?;
    let shape = recorded.map(DbInfo::from).or_else(|| live.clone());

    // Step 1, the app running.
    checkpoint(ctx, &mut j, Step::Restoring)?;
    info!(step = "restoring", database = %restore_db, "restoring {} into {restore_db} ({}); {db} stays live meanwhile", entry.manifest.file, server.describe());
    let loaded = ctx
        .stop
        .interruptible(restore_beside(
            ctx,
            entry,
            &restore_db,
            shape.as_ref(),
            live.is_some(),
        ))
        .await;
    if let Err(e) = loaded {
        return Err(drop_restored(ctx, &restore_db, e).await);
    }

    // Step 2: the swap, the app down.
    let downtime = swap_or_undo(ctx, &mut j, app, live.is_some()).await?;
    checkpoint(ctx, &mut j, Step::Done)?;
    info!(
        step = "done",
        downtime_ms = u64::try_from(downtime.as_millis()).unwrap_or(u64::MAX),
        "{db} is the restored {}; the app was down {:.1} s",
        entry.manifest.file,
        downtime.as_secs_f64()
    );

    let kept = live.is_some().then(|| pre_db.clone());
    let safety = keep_or_expire(ctx, &db, kept.as_deref(), safety_backup).await?;
    Ok(Restored {
        database: db,
        backup: entry.manifest.file.clone(),
        pre_db: kept,
        downtime,
        total: clock.elapsed(),
        safety_backup: safety,
    })
}

/// The restore's and pre-restore's names of `started`, or of the next free second: a restore a
/// second after another (or one whose names someone took) must not meet its databases.
async fn free_names(
    server: &Server,
    db: &str,
    started: chrono::DateTime<Utc>,
) -> anyhow::Result<(String, String)> {
    let mut at = started;
    loop {
        let (r, p) = names(db, at);
        if !server.exists(&r).await? && !server.exists(&p).await? {
            return Ok((r, p));
        }
        at += chrono::TimeDelta::seconds(1);
    }
}

/// Warn where the live database differs from the one the backup recorded, or that the backup
/// recorded nothing, and so where the restored database's properties come from.
async fn say_how_it_differs(
    server: &Server,
    entry: &Entry,
    db: &str,
    live: bool,
) -> anyhow::Result<()> {
    if server.is_mysql() {
        // A MySQL database's own properties are its character set (copied by `create`) and
        // grants, which name it and so stay with it.
        return Ok(());
    }
    match (entry.manifest.properties.as_ref(), live) {
        (Some(p), true) => {
            if let Some(now) = server.properties(db).await? {
                for d in p.differences(&now) {
                    warn!("{db} differs from the backup: {d}");
                }
            }
        }
        (None, true) => warn!(
            "{} does not record the database's own properties (made before lifeboat 0.1, or they could not be read): owner, locale, settings, grants and comment are copied from the live {db}, as they are now",
            entry.manifest.file
        ),
        (None, false) => warn!(
            "{} does not record the database's own properties, and there is no live {db} to copy them from: {db} gets the server's defaults",
            entry.manifest.file
        ),
        (Some(_), false) => {}
    }
    Ok(())
}

/// Step 1: create `restore_db` beside the live database, give it the backup's (or else the
/// live database's) properties, and load the archive into it.
async fn restore_beside(
    ctx: &Ctx<'_>,
    entry: &Entry,
    restore_db: &str,
    shape: Option<&DbInfo>,
    live: bool,
) -> anyhow::Result<()> {
    let server = ctx.server;
    let db = server.database();
    pause_if(Step::Restoring).await;
    server
        .create(restore_db, shape)
        .await
        .with_context(|| format!("cannot create the database {restore_db}"))?;
    if let Some(p) = entry.manifest.properties.as_ref() {
        let n = server.apply_properties(restore_db, p).await?;
        info!("gave {restore_db} the backup's {n} database-level setting(s), grant(s) and comment");
    } else if live && !server.is_mysql() {
        let n = server.copy_database_properties(db, restore_db).await?;
        info!("copied {n} database-level setting(s), grant(s) and comment(s) of {db} onto {restore_db}");
    }
    load(ctx, entry, restore_db).await
}

/// Step 1 failed (`e`): drop `restore_db`; the live database was never touched.
async fn drop_restored(ctx: &Ctx<'_>, restore_db: &str, e: anyhow::Error) -> anyhow::Error {
    let db = ctx.server.database();
    match ctx.server.drop_database(restore_db).await {
        Ok(()) => {
            if let Err(removing) = Journal::remove(&ctx.journal) {
                return removing;
            }
            e.context(format!(
                "the restore into {restore_db} failed and it was dropped; the live database {db} was not touched and the app kept running"
            ))
        }
        Err(drop_error) => {
            error!("{restore_db} could not be dropped: {drop_error:#}");
            e.context(format!(
                "the restore into {restore_db} failed; the live database {db} was not touched. {restore_db} is left over: a rerun of lifeboat-restore drops it"
            ))
        }
    }
}

/// Step 2: the swap, the app down, undone if it fails; how long the app was down.
async fn swap_or_undo(
    ctx: &Ctx<'_>,
    j: &mut Journal,
    app: &App,
    live: bool,
) -> anyhow::Result<Duration> {
    checkpoint(ctx, j, Step::Stopping)?;
    let down = Instant::now();
    let swapped = swap(ctx, j, app, live).await;
    if let Err(e) = swapped {
        let db = &j.database;
        error!("{e:#}");
        warn!(
            step = "undoing",
            "undoing the restore: {db} goes back to the database from before"
        );
        checkpoint(ctx, j, Step::Undoing)?;
        return match undo(ctx.config, ctx.server, j, app).await {
            Ok(()) => {
                Journal::remove(&ctx.journal)?;
                Err(e.context(format!(
                    "the restore was undone: {} is the database from before, and the app was started again on it",
                    j.database
                )))
            }
            Err(undo_error) => Err(undo_error.context(format!(
                "{e:#}; and undoing it failed: run lifeboat-restore again to finish the undo (the journal {} says where it stopped)",
                ctx.journal.display()
            ))),
        };
    }
    Ok(down.elapsed())
}

/// After the swap: the safety backup of the database from before (`kept`) if asked, then
/// leftovers past `restore.keep-days` expired and the journal removed.
async fn keep_or_expire(
    ctx: &Ctx<'_>,
    db: &str,
    kept: Option<&str>,
    safety_backup: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let safety = match (kept, safety_backup) {
        (Some(pre), true) => Some(safety::take(ctx.config, db, pre).await.map_err(|e| {
            e.context(format!(
                "the restore is complete and the app healthy, but the safety backup of {pre} failed; {pre} is kept on the server"
            ))
        })?),
        _ => None,
    };
    pause_at("safety-backup-taken").await;
    expire(ctx.config, ctx.server, db, kept).await;
    Journal::remove(&ctx.journal)?;
    Ok(safety)
}

/// Stream the archive into `restore_db`, decompressing it for the only time, then check what
/// arrived: the archive read to its end and as long as its manifest says, every table's rows
/// in the archive as the manifest says, and as many taken in by the server (psql's `COPY n`
/// tags: exact, and free, where a `count(*)` of every table would read the database again).
async fn load(ctx: &Ctx<'_>, entry: &Entry, restore_db: &str) -> anyhow::Result<()> {
    let m = &entry.manifest;
    let sql_bytes = Arc::new(AtomicU64::new(0));
    let bar = Bar::start("restoring", m.raw_size, Arc::clone(&sql_bytes));
    let loaded = lifeboat_backup::load::archive(
        &ctx.server.source,
        restore_db,
        entry,
        &ctx.keys,
        Some(sql_bytes),
        ctx.config.restore.jobs,
    )
    .await;
    bar.finish();
    let copied = loaded?.copied;
    info!(
        "{restore_db}: {} tables, {} rows taken in by the server, each as the archive holds",
        copied.len(),
        copied.iter().sum::<u64>()
    );
    Ok(())
}

/// Stop the app, swap the databases, start the app, wait until it is healthy.
async fn swap(ctx: &Ctx<'_>, j: &mut Journal, app: &App, live: bool) -> anyhow::Result<()> {
    let server = ctx.server;
    let (db, restore_db, pre_db) = (j.database.clone(), j.restore_db.clone(), j.pre_db.clone());
    ctx.stop
        .interruptible(async {
            pause_if(Step::Stopping).await;
            Ok(())
        })
        .await?;
    info!(step = "stopping", "stopping {}", app.describe());
    ctx.stop.interruptible(app.stop()).await?;
    ctx.stop.check()?;
    checkpoint(ctx, j, Step::Swapping)?;
    ctx.stop
        .interruptible(async {
            pause_if(Step::Swapping).await;
            Ok(())
        })
        .await?;
    // One psql for the whole swap: each one started costs a tenth of a second of downtime.
    if live {
        let ended = server
            .close_and_rename(
                Some(&db),
                &[&restore_db],
                &[
                    (db.as_str(), pre_db.as_str()),
                    (restore_db.as_str(), db.as_str()),
                ],
            )
            .await
            .context("swapping the databases")?;
        if ended > 0 {
            info!("ended {ended} session(s) still on {db} or {restore_db}");
        }
        checkpoint(ctx, j, Step::Starting)?;
        info!(
            step = "swapped",
            "swapped: {db} is the restored database; the one from before is {pre_db}"
        );
    } else {
        server
            .close_and_rename(None, &[&restore_db], &[(restore_db.as_str(), db.as_str())])
            .await?;
        checkpoint(ctx, j, Step::Starting)?;
        info!(step = "swapped", "{restore_db} renamed to {db}");
    }
    ctx.stop
        .interruptible(async {
            pause_if(Step::Starting).await;
            Ok(())
        })
        .await?;
    info!(step = "starting", "starting {}", app.describe());
    let timeout = Duration::from_secs(u64::from(ctx.config.restore.health_timeout));
    ctx.stop.interruptible(app.start_and_wait(timeout)).await?;
    // The database from before was closed for the swap; open again (its safety backup reads
    // it), once the app is back: no part of the downtime.
    if live {
        server.allow_connections(&pre_db, true).await?;
    }
    Ok(())
}

/// Whether the swap of `j` committed (and was not reversed since).
async fn is_swapped(server: &Server, j: &Journal) -> anyhow::Result<bool> {
    if server.is_mysql() && j.live_existed {
        // The pre-restore database is made just before the one RENAME TABLE: swapped when
        // the tables are in it.
        return Ok(!crate::mysql::tables(&server.source, &j.pre_db)
            .await?
            .is_empty());
    }
    Ok(if j.live_existed {
        server.exists(&j.pre_db).await?
    } else {
        !server.exists(&j.restore_db).await? && server.exists(&j.database).await?
    })
}

/// Put the database from before back in place (if the swap happened), drop the restored one,
/// start the app on it.
pub async fn undo(config: &Config, server: &Server, j: &Journal, app: &App) -> anyhow::Result<()> {
    let db = &j.database;
    if is_swapped(server, j).await? {
        app.stop().await?;
        if j.live_existed {
            server
                .close_and_rename(
                    Some(db),
                    &[&j.pre_db],
                    &[
                        (db.as_str(), j.restore_db.as_str()),
                        (j.pre_db.as_str(), db.as_str()),
                    ],
                )
                .await
                .context("swapping the databases back")?;
        } else {
            server
                .close_and_rename(Some(db), &[], &[(db.as_str(), j.restore_db.as_str())])
                .await?;
        }
        info!("{db} is the database from before again");
    }
    if j.live_existed {
        server.allow_connections(db, true).await?;
    }
    server
        .drop_database(&j.restore_db)
        .await
        .with_context(|| format!("dropping {}", j.restore_db))?;
    info!("dropped {}", j.restore_db);
    let timeout = Duration::from_secs(u64::from(config.restore.health_timeout));
    app.start_and_wait(timeout)
        .await
        .context("the database from before is back, but the app did not become healthy on it")
}

/// What a rerun did with an interrupted restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    Finished,
    Undone,
}

/// Finish or undo the restore a journal describes, and say which.
pub async fn recover(
    config: &Config,
    server: &Server,
    j: &Journal,
    journal: &Path,
) -> anyhow::Result<Recovered> {
    warn!(
        "a restore of {} from {} (pid {}, started {}) was interrupted at step `{}`; recovering",
        j.database,
        j.backup,
        j.pid,
        j.started.format("%Y-%m-%d %H:%M:%S UTC"),
        j.step.name()
    );
    let app = App::from_names(config, &j.containers).await?;
    let swapped = j.step != Step::Restoring && is_swapped(server, j).await?;
    let outcome = match j.step {
        Step::Restoring | Step::Stopping | Step::Undoing => {
            undo(config, server, j, &app).await?;
            Recovered::Undone
        }
        Step::Swapping | Step::Starting if !swapped => {
            undo(config, server, j, &app).await?;
            Recovered::Undone
        }
        Step::Swapping | Step::Starting => {
            server.allow_connections(&j.database, true).await?;
            if j.live_existed {
                server.allow_connections(&j.pre_db, true).await?;
            }
            let timeout = Duration::from_secs(u64::from(config.restore.health_timeout));
            match app.start_and_wait(timeout).await {
                Ok(()) => {
                    // The journal goes first: a chore that fails (or worse) must not be replayed
                    // by every later run.
                    Journal::remove(journal)?;
                    finish_done(config, server, j).await;
                    Recovered::Finished
                }
                Err(e) => {
                    warn!("{e:#}; undoing the restore");
                    undo(config, server, j, &app).await?;
                    Recovered::Undone
                }
            }
        }
        Step::Done => {
            Journal::remove(journal)?;
            finish_done(config, server, j).await;
            Recovered::Finished
        }
    };
    Journal::remove(journal)?;
    match outcome {
        Recovered::Finished => warn!(
            step = "recovered",
            "finished the interrupted restore: {} is the restored {}{}",
            j.database,
            j.backup,
            if j.live_existed {
                format!("; the database from before is kept as {}", j.pre_db)
            } else {
                String::new()
            }
        ),
        Recovered::Undone => warn!(
            step = "recovered",
            "undid the interrupted restore of {}: {} is the database from before",
            j.backup,
            j.database
        ),
    }
    Ok(outcome)
}

/// The last chores of a finished restore; their failures are reported, not fatal.
async fn finish_done(config: &Config, server: &Server, j: &Journal) {
    if j.live_existed && j.safety_backup {
        if let Err(e) = safety::take(config, &j.database, &j.pre_db).await {
            error!(
                "the safety backup of {} failed ({e:#}); it is kept on the server",
                j.pre_db
            );
        }
    }
    expire(
        config,
        server,
        &j.database,
        j.live_existed.then_some(j.pre_db.as_str()),
    )
    .await;
}

/// The pre-restore databases of `db` (and restore databases left by a crash), oldest first.
pub async fn leftovers(
    server: &Server,
    db: &str,
) -> anyhow::Result<Vec<(String, bool, chrono::DateTime<Utc>)>> {
    let mut found: Vec<_> = server
        .databases()
        .await?
        .into_iter()
        .filter_map(|name| {
            let (pre, at) = made_at(db, &name)?;
            Some((name, pre, at))
        })
        .collect();
    found.sort_by_key(|(_, _, at)| *at);
    Ok(found)
}

/// Drop pre-restore databases older than `restore.keep-days`, never `keep`; then delete the
/// safety backups whose pre-restore database is gone and that are as old (see [`safety`]).
async fn expire(config: &Config, server: &Server, db: &str, keep: Option<&str>) {
    let days = config.restore.keep_days;
    let limit = lifeboat::config::days_before(Utc::now(), days);
    let old = leftovers(server, db).await.unwrap_or_else(|e| {
        warn!("cannot list the old pre-restore databases: {e:#}");
        Vec::new()
    });
    for (name, pre, at) in old {
        if !pre || Some(name.as_str()) == keep || at >= limit {
            continue;
        }
        match server.drop_database(&name).await {
            Ok(()) => info!("dropped {name}: older than {days} days (restore.keep-days)"),
            Err(e) => warn!("cannot drop {name}: {e:#}"),
        }
    }
    safety::expire(config, server, db).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time_and_are_read_back() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T14:05:09Z")
            .expect("time")
            .with_timezone(&Utc);
        let (restore, pre) = names("app", at);
        assert_eq!(restore, "app__restore_20261123_140509");
        assert_eq!(pre, "app__pre_restore_20261123_140509");
        assert_eq!(made_at("app", &pre), Some((true, at)));
        assert_eq!(made_at("app", &restore), Some((false, at)));
        assert_eq!(made_at("app", "app"), None);
        assert_eq!(made_at("app", "apple__pre_restore_20261123_140509"), None);
        assert_eq!(made_at("app", "app__pre_restore_junk"), None);
    }
}
