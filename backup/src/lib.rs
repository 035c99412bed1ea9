//! lifeboat-backup: PostgreSQL backups that never fail silently.
//!
//! Replaces `backup-db.sh` (seed 001) and the pre-deploy backup of `deploy_production.sh`
//! (seed 002). The logic lives here, not in `main.rs`, so that lifeboat-deploy can call it.

// archive, load, manifest, offsite, source and sqlscan are public for lifeboat-restore, which
// reads, checks and restores backups with the very same code.
pub mod archive;
pub mod crypt;
pub mod drill;
pub mod engine;
pub mod guard;
pub mod load;
pub mod manifest;
mod metrics;
pub mod mysql;
mod notify;
pub mod offsite;
pub mod pgscript;
pub mod properties;
pub mod rekey;
pub mod retention;
pub mod schedule;
pub mod sign;
pub mod source;
pub mod sqlscan;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use lifeboat::cli::{
    after_long_help, after_short_help, env_help, exit_codes, flag, setting_help, DatabaseArgs,
    GlobalArgs, EXIT_CODES_HELP,
};
use lifeboat::config::settings;
use lifeboat::config::{Compress, Config};
use lifeboat::lock::JobLock;
use lifeboat::output::human_bytes;
use lifeboat::output::OutputOptions;
use lifeboat::signal::Stop;
use tracing::{info, warn};

use crate::archive::ArchiveWriter;
pub use crate::manifest::Manifest;
use crate::source::Source;

/// `--help`'s examples, kept line by line.
const EXAMPLES: &str = "\
Examples:
  lifeboat-backup                        nightly, from cron, in the stack's dir
  lifeboat-backup --all --compress zstd  every database and the roles, fast
  lifeboat-backup list                   what there is, and whether it is whole
  lifeboat-backup verify latest --restore-test
                                         prove the newest backup restores
  lifeboat-backup prune --dry-run        what retention would delete";

/// Back up a compose stack's PostgreSQL database: pg_dump → gzip on every core → SHA-256, with a
/// manifest.
///
/// By default pg_dump runs inside the database container (found by compose project and
/// service, credentials from its POSTGRES_* environment), so its version always matches the
/// server's. With --url (DATABASE_URL) the local pg_dump connects instead (managed PostgreSQL).
/// The archive appears only complete, with its manifest; on any failure nothing new is left and
/// earlier backups are untouched. The path of the new backup is printed on stdout.
///
/// Retention (LIFEBOAT_BACKUP_KEEP_*), the off-site copy (S3_*), mail (SMTP_*, LIFEBOAT_MAIL_TO,
/// LIFEBOAT_BACKUP_MAIL), the ping URL and metrics are set in lifeboat.toml, .env or the
/// environment: docs/configuration.md lists every key.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-backup",
    version = lifeboat::cli::complete::version(env!("LIFEBOAT_COMMIT")),
    after_help = after_short_help("lifeboat-backup    (nightly, from cron, in the stack's directory)"),
    after_long_help = after_long_help(&[EXAMPLES, EXIT_CODES_HELP])
)]
#[command(mut_arg("url", |a| a.help(setting_help("Connect to this PostgreSQL URL with the local pg_dump instead of exec'ing into the container", &settings::DATABASE_URL))))]
#[command(mut_arg("database", |a| a.help(setting_help("The database to dump", &settings::LIFEBOAT_DB_NAME))))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub db: DatabaseArgs,

    #[arg(long, help = env_help("Every database and the roles, with pg_dumpall, in one archive", &settings::LIFEBOAT_BACKUP_ALL))]
    pub all: bool,

    #[arg(long, value_name = "ALGORITHM", help = setting_help("gzip (.sql.gz, read by plain gunzip) or zstd (.sql.zst, several times faster)", &settings::LIFEBOAT_BACKUP_COMPRESS))]
    pub compress: Option<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a backup now (the default)
    #[command(after_help = exit_codes("the backup is complete, with its manifest (and its off-site copy)", "it failed; nothing new is left and earlier backups are untouched"))]
    Run,
    /// List the backups, here and in the bucket: where, name, start, age, size, database and
    /// whether the archive still matches its manifest
    #[command(after_help = exit_codes("every backup listed matches its manifest", "one does not, or the bucket could not be read"))]
    List,
    /// Apply the retention policy now, printing the plan (--dry-run: only print it); every
    /// backup run applies the same plan after the backup
    #[command(after_help = exit_codes("the plan was applied (or only printed)", "a deletion failed; what was not deleted is said"))]
    Prune {
        /// Print what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a backup against its manifest: size, SHA-256, a decompression to the end and every
    /// table's rows (--restore-test: also restore it into a scratch database on the same server
    /// and count the rows there; the scratch database is always dropped)
    #[command(after_help = exit_codes("everything matches", "something does not, and the message says what"))]
    Verify {
        /// The backup: its file name (as `list` prints it), or `latest` (the default): the newest
        /// with a manifest
        #[arg(value_name = "NAME|latest")]
        name: Option<String>,
        /// Also restore it into a scratch database `lifeboat_verify_…` on the backup source's
        /// server (the container, or --url) and compare `count(*)` of every table; single-database
        /// backups only
        #[arg(long)]
        restore_test: bool,
    },
    /// Re-encrypt the local backups to the current recipients (LIFEBOAT_BACKUP_RECIPIENTS, or
    /// the passphrase), one file at a time, atomically: after a key was rotated, or to encrypt
    /// backups taken before encryption was set up (their clear copies are then deleted). Needs
    /// the identity that reads them now (LIFEBOAT_BACKUP_IDENTITY). Copies in the bucket are
    /// left as they are
    #[command(after_help = exit_codes("every local backup is encrypted to the current recipients", "one could not be re-encrypted; it is left as it was, and the message says why"))]
    Rekey,
    /// Run in the foreground as a sidecar that schedules itself: a backup at each time of
    /// LIFEBOAT_BACKUP_SCHEDULE (cron, default `0 2 * * *`, in the time zone of TZ) and a
    /// restore drill at each time of LIFEBOAT_BACKUP_DRILL_SCHEDULE; never two at once, a run
    /// missed while down caught up once, and SIGTERM stops a running job as a backup stopped by
    /// hand
    #[command(after_help = exit_codes("stopped by SIGTERM or SIGINT (a failed job is logged, mailed and pinged, and the schedule goes on)", "the scheduler itself could not go on"))]
    Schedule,
    /// Print the completion script for a shell: bash, zsh or fish
    #[command(after_help = lifeboat::cli::complete::COMPLETIONS_HELP)]
    Completions(lifeboat::cli::complete::CompletionsArgs),
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Completions(ref args)) => lifeboat::cli::complete::print::<Cli>(args),
        None | Some(Command::Run) => run_backup(&config(cli)?, &cli.global.output()),
        Some(Command::List) => {
            let config = config(cli)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(list(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Schedule) => {
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            schedule::run(&config(cli)?, &args)
        }
        Some(Command::Rekey) => {
            rekey::run(&config(cli)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Prune { dry_run }) => {
            let config = config(cli)?;
            let holds = guard_holds(&config, None);
            prune(&config, dry_run, true, &holds)?;
            if !holds.is_empty() {
                bail!(
                    "retention is held: nothing was deleted ({})",
                    holds
                        .iter()
                        .map(guard::Hold::reason)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Verify {
            ref name,
            restore_test,
        }) => {
            verify::run(&config(cli)?, name.as_deref(), restore_test)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration, with the command line's flags over it.
fn config(cli: &Cli) -> anyhow::Result<Config> {
    let flags = [
        flag(
            settings::LIFEBOAT_BACKUP_ALL.name(),
            "--all",
            cli.all.then_some("true"),
        ),
        flag(
            settings::LIFEBOAT_BACKUP_COMPRESS.name(),
            "--compress",
            cli.compress.as_ref(),
        ),
    ];
    let overrides = cli.db.overrides().chain(flags.into_iter().flatten());
    Ok(cli.global.load_config(overrides.collect())?)
}

/// The default command: take a backup, copy it off-site, apply retention, then tell people
/// (metrics, ping, mail, the summary). Only the backup's own outcome decides the exit code.
fn run_backup(config: &Config, output: &OutputOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The bucket's settings are checked before anything is done (exit 2 if incomplete).
    let offsite = config
        .s3
        .bucket
        .is_some()
        .then(|| config.require_s3("to copy backups off-site"))
        .transpose()?;
    let pinger = notify::Pinger::new(config);
    // What keeps retention from deleting anything, here and in the bucket.
    let mut holds = Vec::new();
    let result = runtime.block_on(async {
        let backup = async {
            // The bucket and its keys are tried before the dump: a wrong key or bucket must
            // not cost an hour of pg_dump first. A storage out of reach is another matter: the
            // local backup is still worth taking, and its upload is tried (and retried) after.
            if let Some(settings) = &offsite {
                match lifeboat::s3::Bucket::new(settings).check().await {
                    Ok(()) => {}
                    Err(e) if e.refused() => {
                        return Err(anyhow::Error::new(e).context(
                            "the bucket refuses these settings (S3_BUCKET, S3_ENDPOINT and its keys); nothing was dumped",
                        ));
                    }
                    Err(e) => warn!(
                        "the bucket cannot be reached now ({e}); the backup is taken here first and its upload tried after"
                    ),
                }
            }
            let done = take_with(config, true).await?;
            holds = guard_holds(config, Some(&done.manifest.file));
            if let Some(settings) = &offsite {
                offsite::copy(settings, config, &done, holds.is_empty()).await.with_context(|| {
                    format!("{} is complete here, but its off-site copy failed; the local copy is kept", done.archive.display())
                })?;
            }
            anyhow::Ok(done)
        };
        // The start ping goes beside the backup: a slow ping server never delays it.
        tokio::join!(notify::ping_start(pinger.as_ref()), backup).1
    });
    if let Some(file) = &config.backup.metrics_file {
        if let Err(e) = metrics::record(file, result.as_ref().ok().map(|d| &d.manifest), &holds) {
            warn!("cannot write the metrics file {}: {e}", file.display());
        }
    }
    let retention = match &result {
        Ok(done) => {
            lifeboat::outln!("{}", done.archive.display());
            // The same plan `prune --dry-run` prints; a backup that cannot prune is not "all well".
            prune(config, false, false, &holds)
                .context("the backup is complete, but retention failed")
        }
        Err(_) => Ok(()),
    };
    // Ping and mail; neither changes the exit code, which stays the run's own.
    runtime.block_on(notify::finish(
        config,
        pinger.as_ref(),
        &result,
        &retention,
        &holds,
    ));
    let done = result?;
    retention?;
    notify::summary(config, output, &done);
    Ok(ExitCode::SUCCESS)
}

/// A test hook: `dumping` makes a backup wait, its `.partial` file made, until a signal comes
/// (or SIGKILL), so that tests interrupt it there for sure.
pub const PAUSE_VAR: &str = "LBTEST_BACKUP_PAUSE_AT";

/// A backup that was taken.
#[derive(Debug, Clone)]
pub struct Done {
    pub archive: PathBuf,
    pub manifest: Manifest,
}

/// Take one backup: dump, compress, hash, write the manifest. On any failure, or a signal,
/// nothing new is left in the directory and earlier backups are untouched.
pub async fn take(config: &Config) -> anyhow::Result<Done> {
    take_with(config, false).await
}

/// [`take`], with a progress bar of the dump on a terminal when `by_hand` (lifeboat-backup's
/// own run, not a backup inside a deploy or a restore, which have their own story).
async fn take_with(config: &Config, by_hand: bool) -> anyhow::Result<Done> {
    // The encryption first, before Docker, the database or the directory are touched: a
    // recipient that does not parse, or an identity that cannot read what the recipients get,
    // is exit 2 with nothing written.
    let sealing = crypt::Sealing::checked(config)?;
    let source = Source::resolve(config).await?;
    let _lock = JobLock::acquire(&config.lock_dir, &format!("backup-{}", source.database()))?;
    let dir = &config.backup.dir;
    archive::ensure_dir(dir)
        .with_context(|| format!("cannot create the backup directory {}", dir.display()))?;
    // Before the dump: a key that cannot be read or made stops the run with nothing written.
    let key = sign::Key::for_backup(config)?;
    clean_leftovers(dir);

    let started = Utc::now();
    let clock = Instant::now();
    let server_version = source.server_version().await?;
    // Recorded for the restore: it applies the backup's, not what the live database has then.
    let properties = source.properties().await.unwrap_or_else(|e| {
        warn!("cannot read the database's own properties (owner, locale, settings, grants, comment): {e:#}; a restore of this backup copies the live database's instead");
        None
    });
    let settings = &config.backup;
    let path = free_name(
        dir,
        &settings.name,
        settings.compress,
        sealing.is_some(),
        started,
    );
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    info!(database = source.database(), source = %source.describe(), "dumping {} to {}", source.database(), path.display());
    let mut sink = ArchiveWriter::create(
        &path,
        settings.compress,
        settings.level,
        settings.threads,
        sealing.as_ref(),
    )
    .with_context(|| format!("cannot create {}", path.display()))?;
    // Only for a person at a terminal: cron's nightly run reads no manifest for an estimate.
    if by_hand && lifeboat::output::progress_enabled() {
        sink = sink.with_progress(dump_bar(dir, source.database()));
    }
    let stop = Stop::install("backup", "the earlier backups as they were")?;
    tokio::select! {
        dumped = async {
            lifeboat::signal::pause_at(PAUSE_VAR, "dumping").await;
            source.dump(&mut sink).await
        } => dumped?,
        signal = stop.wait() => bail!("stopped by {signal}; the partial file was removed and earlier backups are untouched"),
    }
    let database = source.database().to_owned();
    let (source_text, all) = (source.describe(), source.all());
    // The manifest is written before the archive gets its name: a run killed in between
    // leaves a `.partial` file the next run removes, never an archive without its manifest.
    let (finished, manifest) = sink
        .finish_with(|finished| {
            let mut manifest = Manifest {
                format: manifest::FORMAT,
                file,
                database,
                server_version,
                source: source_text,
                size: finished.size,
                raw_size: finished.raw_size,
                sha256: finished.sha256.clone(),
                compression: format!("{} level {}", settings.compress, settings.level),
                started,
                finished: Utc::now(),
                duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
                tool: format!("lifeboat-backup {}", env!("CARGO_PKG_VERSION")),
                tables: finished.tables.clone(),
                all,
                properties,
                encryption: sealing.as_ref().map(|s| s.encryption.clone()),
                signature: None,
                extra: serde_json::Map::new(),
            };
            manifest.signature = Some(key.sign(&manifest));
            manifest.write(&path)?;
            Ok(manifest)
        })
        .with_context(|| {
            format!(
                "cannot complete {} or its manifest (is the disk full?); the partial file was removed",
                path.display()
            )
        })?;
    info!(
        size = finished.size,
        sha256 = %finished.sha256,
        duration_ms = manifest.duration_ms,
        "backup {} complete: {} ({} of SQL) in {:.1} s",
        manifest.file,
        human_bytes(finished.size),
        human_bytes(finished.raw_size),
        clock.elapsed().as_secs_f64()
    );
    Ok(Done {
        archive: path,
        manifest,
    })
}

/// What runs killed outright left (SIGKILL, the OOM killer, a power cut): partial files removed,
/// an interrupted rekey finished or dropped. Called under the backup lock.
fn clean_leftovers(dir: &Path) {
    for name in archive::remove_stale(dir) {
        warn!(
            "removed {name}: left in {} by a backup that was killed",
            dir.display()
        );
    }
    rekey::finish_interrupted(dir);
}

/// A bar of the dump's bytes of SQL, out of the last backup of `database`'s (an estimate; none
/// for the first backup).
fn dump_bar(dir: &Path, database: &str) -> lifeboat::progress::Bar {
    let estimate = manifest::list(dir)
        .ok()
        .and_then(|(entries, _)| {
            entries
                .into_iter()
                .rev()
                .find(|e| e.manifest.database == database)
        })
        .map(|e| e.manifest.raw_size);
    lifeboat::progress::Bar::bytes(&format!("dumping {database}"), estimate)
}

/// The name pattern (UTC) with the compression's extension, `backup_YYYYMMDD_HHMMSS.sql.gz` by
/// default (`.sql.gz.age` when encrypted), with `_2`, `_3`… if that name is taken.
fn free_name(
    dir: &Path,
    pattern: &str,
    compress: Compress,
    encrypted: bool,
    at: DateTime<Utc>,
) -> PathBuf {
    let stem = at.format(pattern).to_string();
    let ext = format!(
        "{}{}",
        compress.extension(),
        if encrypted { crypt::EXTENSION } else { "" }
    );
    let mut path = dir.join(format!("{stem}.{ext}"));
    let mut n = 2;
    let partial = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".partial");
        PathBuf::from(s).exists()
    };
    // Taken, encrypted or not: `rekey` turns `x.sql.gz` into `x.sql.gz.age`.
    let taken = |p: &Path| {
        let name = p.to_string_lossy();
        let other = match name.strip_suffix(crypt::EXTENSION) {
            Some(clear) => PathBuf::from(clear),
            None => PathBuf::from(format!("{name}{}", crypt::EXTENSION)),
        };
        [p, other.as_path()]
            .iter()
            .any(|p| p.exists() || manifest::path_for(p).exists() || partial(p))
    };
    while taken(&path) {
        path = dir.join(format!("{stem}_{n}.{ext}"));
        n += 1;
    }
    path
}

/// What holds retention for the local backups ([`guard`]); `fresh` is the backup this run has
/// just written. A directory that cannot be read holds it too.
fn guard_holds(config: &Config, fresh: Option<&str>) -> Vec<guard::Hold> {
    let dir = &config.backup.dir;
    let entries = match manifest::list(dir) {
        Ok((entries, _)) => entries,
        Err(e) => {
            return vec![guard::Hold::Unverified {
                file: dir.display().to_string(),
                why: format!("cannot read the directory: {e}"),
            }]
        }
    };
    let keys = crypt::Keys::from_config(config).unwrap_or_else(|e| {
        warn!("{e:#}; encrypted backups are checked by their SHA-256 only");
        crypt::Keys::none()
    });
    let holds = guard::check(&entries, config.backup.min_ratio, &keys, fresh);
    for hold in &holds {
        warn!(reason = hold.reason(), "{hold}");
    }
    holds
}

/// Apply (or with `dry_run` only print) the retention plan; `print` puts the plan on stdout.
/// Only backups with a manifest are considered: no other file is ever deleted, and nothing at
/// all while `holds` says the newest backup is not known good.
fn prune(config: &Config, dry_run: bool, print: bool, holds: &[guard::Hold]) -> anyhow::Result<()> {
    let dir = &config.backup.dir;
    let (entries, _) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let rules = &config.backup.keep;
    let plan = retention::plan(entries, Utc::now(), rules);
    for decision in &plan {
        let held = decision.keep.is_none() && !holds.is_empty();
        if print {
            if held {
                lifeboat::outln!(
                    "keep\t{}\tretention held ({})",
                    decision.entry.manifest.file,
                    holds[0].reason()
                );
            } else {
                lifeboat::outln!("{}", decision.describe(rules));
            }
        }
        if decision.keep.is_some() || dry_run || held {
            continue;
        }
        // The manifest first: without it the archive is no longer a backup, whatever happens next.
        let archive = &decision.entry.archive;
        std::fs::remove_file(manifest::path_for(archive))
            .and_then(|()| std::fs::remove_file(archive))
            .with_context(|| format!("cannot delete {}", archive.display()))?;
        info!(
            "deleted {} ({})",
            decision.entry.manifest.file,
            retention::delete_reason(rules)
        );
    }
    Ok(())
}

/// Print the backups (those with a manifest), oldest first, local then in the bucket: where,
/// name, start, age, size in bytes, database, verified. A local archive is read whole to check
/// its SHA-256 against the manifest; in the bucket, the object's size is checked.
async fn list(config: &Config) -> anyhow::Result<()> {
    let dir = &config.backup.dir;
    let (entries, orphans) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let now = Utc::now();
    let line = |place: &str, e: &manifest::Entry, verified: &str| {
        lifeboat::outln!(
            "{place}\t{}\t{}\t{}\t{}\t{}\t{verified}",
            e.manifest.file,
            e.manifest.started.format("%Y-%m-%d %H:%M:%S UTC"),
            notify::age(now - e.manifest.started),
            e.manifest.size,
            e.manifest.database,
        );
    };
    let mut damaged = 0;
    for e in &entries {
        let verified = match e.intact() {
            Ok(true) => "sha256 ok".to_owned(),
            Ok(false) => {
                damaged += 1;
                "DAMAGED: sha256 differs from the manifest".to_owned()
            }
            Err(err) => {
                damaged += 1;
                format!("UNREADABLE: {err}")
            }
        };
        line("local", e, &verified);
    }
    if entries.is_empty() {
        info!("no backups in {}", dir.display());
    }
    if orphans > 0 {
        warn!("{orphans} archive(s) in {} have no manifest: runs that did not finish; they are not backups", dir.display());
    }
    if config.s3.bucket.is_some() {
        let settings = config.require_s3("to list the off-site backups")?;
        let (bucket, remote) = offsite::entries(&settings)
            .await
            .context("cannot list the off-site backups")?;
        // Whether this host signed each (lifeboat-restore offers only those).
        let key = sign::Key::for_restore(config).unwrap_or_else(|e| {
            warn!("{e:#}; the backups in the bucket cannot be checked");
            None
        });
        for e in &remote {
            let signed = key
                .as_ref()
                .map_or(sign::Signed::NoKey, |k| k.check(&e.manifest));
            line("s3", e, &format!("size ok, {}", signed.describe()));
        }
        if remote.is_empty() {
            info!(
                "no backups in s3://{}/{}",
                bucket.bucket(),
                bucket.key("backups/")
            );
        }
    }
    if damaged > 0 {
        bail!("{damaged} local backup(s) do not match their manifest; do not restore from them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
