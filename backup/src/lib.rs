//! lifeboat-backup: PostgreSQL backups that never fail silently.
//!
//! Replaces `backup-db.sh` (seed 001) and the pre-deploy backup of `deploy_production.sh`
//! (seed 002). The logic lives here, not in `main.rs`, so that lifeboat-deploy can call it.

mod archive;
pub mod manifest;
mod metrics;
mod offsite;
pub mod retention;
mod source;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Parser, Subcommand};
use lifeboat::cli::{flag, GlobalArgs, EXIT_CODES_HELP};
use lifeboat::config::Config;
use lifeboat::config::MailWhen;
use lifeboat::lock::JobLock;
use lifeboat::mail::Mailer;
use lifeboat::output::human_bytes;
use tracing::{error, info, warn};

use crate::archive::ArchiveWriter;
pub use crate::manifest::Manifest;
use crate::source::Source;

/// Back up a compose stack's PostgreSQL database: pg_dump → gzip → SHA-256, with a manifest.
///
/// By default pg_dump runs inside the database container (found by compose project and
/// service, credentials from its POSTGRES_* environment), so its version always matches the
/// server's. With --url (DATABASE_URL) the local pg_dump connects instead (managed PostgreSQL).
/// The archive appears only complete, with its manifest; on any failure nothing new is left and
/// earlier backups are untouched. The path of the new backup is printed on stdout.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-backup", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Directory of local backups [env: LIFEBOAT_BACKUP_DIR] [default: ./backups]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Connect to this PostgreSQL URL with the local pg_dump instead of exec'ing into the container [env: DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,

    /// The database to dump [env: LIFEBOAT_DB_NAME] [default: the container's POSTGRES_DB, or the URL's]
    #[arg(long, global = true, value_name = "NAME")]
    pub database: Option<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a backup now (the default)
    Run,
    /// List the backups
    List,
    /// Apply the retention policy now, printing the plan (--dry-run: only print it); every
    /// backup run applies the same plan after the backup
    Prune {
        /// Print what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let overrides = [
        flag("backup.dir", "--dir", cli.dir.as_ref().map(|d| d.display())),
        flag("database.url", "--url", cli.url.as_ref()),
        flag("database.name", "--database", cli.database.as_ref()),
    ];
    let config = cli
        .global
        .load_config(overrides.into_iter().flatten().collect())?;
    match cli.command {
        None | Some(Command::Run) => {
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
            let result = runtime.block_on(async {
                let done = take(&config).await?;
                if let Some(settings) = &offsite {
                    offsite::copy(settings, &config, &done).await.with_context(|| {
                        format!("{} is complete here, but its off-site copy failed; the local copy is kept", done.archive.display())
                    })?;
                }
                anyhow::Ok(done)
            });
            if let Some(file) = &config.metrics_file {
                if let Err(e) = metrics::record(file, result.as_ref().ok().map(|d| &d.manifest)) {
                    warn!("cannot write the metrics file {}: {e}", file.display());
                }
            }
            if let Err(e) = runtime.block_on(notify(&config, &result)) {
                // The exit code stays the backup's own; the mail's failure is said loudly.
                error!("cannot send the backup report by mail: {e:#}");
            }
            let done = result?;
            println!("{}", done.archive.display());
            // The same plan `prune --dry-run` prints; a backup that cannot prune is not "all well".
            prune(&config, false, false).context("the backup is complete, but retention failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::List) => {
            list(&config)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Prune { dry_run }) => {
            prune(&config, dry_run, true)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A backup that was taken.
#[derive(Debug, Clone)]
pub struct Done {
    pub archive: PathBuf,
    pub manifest: Manifest,
}

/// Take one backup: dump, compress, hash, write the manifest. On any failure, or a signal,
/// nothing new is left in the directory and earlier backups are untouched.
pub async fn take(config: &Config) -> anyhow::Result<Done> {
    let source = Source::resolve(config).await?;
    let _lock = JobLock::acquire(&config.lock_dir, &format!("backup-{}", source.database()))?;
    let dir = &config.backup_dir;
    archive::ensure_dir(dir)
        .with_context(|| format!("cannot create the backup directory {}", dir.display()))?;

    let started = Utc::now();
    let clock = Instant::now();
    let (server_version, tables) = source.inspect().await?;
    let path = free_name(dir, started);
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    info!(database = source.database(), source = %source.describe(), "dumping {} to {}", source.database(), path.display());
    let mut sink = ArchiveWriter::create(&path, config.compression_level)
        .with_context(|| format!("cannot create {}", path.display()))?;
    tokio::select! {
        dumped = source.dump(&mut sink) => dumped?,
        signal = shutdown_signal() => bail!("stopped by {signal}; the partial file was removed and earlier backups are untouched"),
    }
    let finished = sink
        .finish()
        .with_context(|| format!("cannot complete {} (is the disk full?)", path.display()))?;
    let manifest = Manifest {
        format: manifest::FORMAT,
        file,
        database: source.database().to_owned(),
        server_version,
        source: source.describe(),
        size: finished.size,
        raw_size: finished.raw_size,
        sha256: finished.sha256.clone(),
        compression: format!("gzip level {}", config.compression_level),
        started,
        finished: Utc::now(),
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        tool: format!("lifeboat-backup {}", env!("CARGO_PKG_VERSION")),
        tables,
    };
    if let Err(e) = manifest.write(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(anyhow::Error::new(e).context(format!(
            "cannot write the manifest of {}; the archive was removed",
            path.display()
        )));
    }
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

/// Mail the outcome to `LIFEBOAT_MAIL_TO`, as `LIFEBOAT_BACKUP_MAIL` asks (failures by default).
/// Nothing is sent unless both `SMTP_HOST` and `LIFEBOAT_MAIL_TO` are set: a stack's `.env` often
/// configures SMTP for the app alone.
async fn notify(config: &Config, result: &anyhow::Result<Done>) -> anyhow::Result<()> {
    let wanted = match config.backup_mail {
        MailWhen::Never => false,
        MailWhen::Failure => result.is_err(),
        MailWhen::Always => true,
    };
    if !wanted || config.smtp.host.is_none() || config.smtp.to.is_empty() {
        return Ok(());
    }
    let mailer = Mailer::new(config.require_smtp("to mail backup reports")?)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this host".into(), |h| h.trim().to_owned());
    let (subject, body) = match result {
        Ok(done) => (
            format!("lifeboat-backup OK: {} on {host}", done.manifest.database),
            format!(
                "{}\n\n{}\n",
                done.archive.display(),
                serde_json::to_string_pretty(&done.manifest)?
            ),
        ),
        Err(e) => (
            format!("lifeboat-backup FAILED on {host}"),
            format!("{e:#}\n\nNo new backup was written; earlier backups are untouched.\n"),
        ),
    };
    mailer
        .send(&subject, &lifeboat::secret::redact_url(&body))
        .await?;
    info!("mailed the report to {}", config.smtp.to.join(", "));
    Ok(())
}

/// `backup_YYYYMMDD_HHMMSS.sql.gz` (UTC), with `_2`, `_3`… if that second is taken.
fn free_name(dir: &Path, at: chrono::DateTime<Utc>) -> PathBuf {
    let stem = format!("backup_{}", at.format("%Y%m%d_%H%M%S"));
    let mut path = dir.join(format!("{stem}.sql.gz"));
    let mut n = 2;
    while path.exists() || manifest::path_for(&path).exists() {
        path = dir.join(format!("{stem}_{n}.sql.gz"));
        n += 1;
    }
    path
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => std::future::pending().await,
    }
}

/// Apply (or with `dry_run` only print) the retention plan; `print` puts the plan on stdout.
/// Only backups with a manifest are considered: no other file is ever deleted.
fn prune(config: &Config, dry_run: bool, print: bool) -> anyhow::Result<()> {
    let dir = &config.backup_dir;
    let (entries, _) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let plan = retention::plan(entries, Utc::now(), config.keep_days, config.keep_min);
    for decision in &plan {
        let line = decision.describe(config.keep_days, config.keep_min);
        if print {
            println!("{line}");
        }
        if decision.keep.is_some() || dry_run {
            continue;
        }
        // The manifest first: without it the archive is no longer a backup, whatever happens next.
        let archive = &decision.entry.archive;
        std::fs::remove_file(manifest::path_for(archive))
            .and_then(|()| std::fs::remove_file(archive))
            .with_context(|| format!("cannot delete {}", archive.display()))?;
        info!(
            "deleted {} (older than {} days)",
            decision.entry.manifest.file, config.keep_days
        );
    }
    Ok(())
}

/// Print the backups (those with a manifest), oldest first: name, time, size, database.
fn list(config: &Config) -> anyhow::Result<()> {
    let (entries, orphans) = manifest::list(&config.backup_dir)
        .with_context(|| format!("cannot read {}", config.backup_dir.display()))?;
    for e in &entries {
        println!(
            "{}\t{}\t{}\t{}",
            e.manifest.file,
            e.manifest.started.format("%Y-%m-%d %H:%M:%S UTC"),
            e.manifest.size,
            e.manifest.database
        );
    }
    if entries.is_empty() {
        info!("no backups in {}", config.backup_dir.display());
    }
    if orphans > 0 {
        warn!("{orphans} archive(s) in {} have no manifest: runs that did not finish; they are not backups", config.backup_dir.display());
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
