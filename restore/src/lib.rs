//! lifeboat-restore: an incident restore as a transaction, with seconds of downtime and an
//! automatic undo.
//!
//! Replaces `restore-db.sh` (seed 001): list the backups, ask for confirmation, take a safety
//! backup, stop the app, restore, restart, and roll back if it fails. It runs at the worst
//! moment, by a tired person, so it checks what it can before touching anything (the manifest,
//! the archive's size and SHA-256, the room on the server), restores beside the live database
//! while the app keeps running, checks what arrived there (the archive decompressed to its
//! end, its length and every table's rows as the server counted them), and swaps the two in
//! one transaction (see [`txn`]). The logic lives here so that
//! lifeboat-deploy and lifeboat-rollback can restore a pre-deploy backup.

pub mod app;
pub mod journal;
pub mod mysql;
pub mod pick;
pub mod safety;
pub mod scaled;
pub mod server;
pub mod txn;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lifeboat::cli::{
    after_long_help, after_short_help, exit_codes, setting_help, DatabaseArgs, GlobalArgs,
    EXIT_CODES_HELP,
};
use lifeboat::config::settings;
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use lifeboat::lock::JobLock;
use lifeboat::output::human_bytes;
use lifeboat_backup::archive;
use lifeboat_backup::manifest::Entry;
use tracing::{info, warn};

use crate::app::App;
use crate::journal::Journal;
use crate::pick::Catalog;
use crate::server::Server;
use crate::txn::{Ctx, Recovered};
use lifeboat::progress::Bar;
use lifeboat::signal::Stop;

/// The longest database name whose `<db>__pre_restore_YYYYMMDD_HHMMSS` fits PostgreSQL's 63 bytes.
const MAX_NAME: usize = 63 - "__pre_restore_20261123_140509".len();

/// Restore a backup into the stack's database, as a transaction: the live database stays in
/// place, and the app running, until the restored one is complete and checked.
///
/// Without BACKUP, on a terminal: the backups here and in the bucket, numbered, and a question.
/// Before anything is touched the backup is checked (size and SHA-256 against its manifest)
/// and so is the room on the server; then the person types the database's name (--yes for
/// scripts). The backup is restored into <db>__restore_<time> while the app runs, and checked
/// there (decompressed to its end, every table's rows as its manifest says; anything else drops
/// it, the live database untouched); the app's compose services are stopped, the live
/// database renamed <db>__pre_restore_<time> and the restored one renamed <db> in one
/// transaction; the app is started and must become healthy, or everything is put back. A file
/// safety backup of the database from before is written beside the others.
///
/// A run stopped by SIGTERM or Ctrl-C undoes what it did; a run killed outright leaves a
/// journal beside the backups, and the next run finishes or undoes it, and says which.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-restore",
    version = lifeboat::cli::complete::version(env!("LIFEBOAT_COMMIT")),
    after_help = after_short_help("lifeboat-restore latest    (the newest backup, after a question)"),
    after_long_help = after_long_help(&[EXAMPLES, EXIT_CODES_HELP])
)]
#[command(mut_arg("url", |a| a.help(setting_help("Restore into the database at this URL (managed PostgreSQL or MySQL) instead of the container", &settings::DATABASE_URL))))]
#[command(mut_arg("database", |a| a.help(setting_help("The database to restore into", &settings::LIFEBOAT_DB_NAME))))]
#[allow(clippy::struct_excessive_bools)] // each is a command-line switch, as clap reads them
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// What to restore: latest, a backup name, a path, or s3://…; without it, list and ask
    #[arg(value_name = "BACKUP")]
    pub backup: Option<String>,

    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Do not ask for confirmation (scripts); without it and without a terminal, nothing is done (exit 2)
    #[arg(long)]
    pub yes: bool,

    /// Do not write a file backup of the database from before (it is still kept on the server as <db>__pre_restore_<time>)
    #[arg(long)]
    pub no_safety_backup: bool,

    /// No progress line on the terminal
    #[arg(long)]
    pub no_progress: bool,

    #[arg(long, value_name = "N", help = setting_help("sessions the restore loads on at once (PostgreSQL): the schema on one (psql), then each table's rows (over lifeboat's own connections where the server is reachable, else psql) (the largest first, waiting in a temporary file in the backup directory while every session is busy), then indexes and keys spread over them, the largest table's first; 1 loads in order", &settings::LIFEBOAT_RESTORE_JOBS))]
    pub jobs: Option<u32>,

    #[arg(long, help = TRUST_UNSIGNED_HELP)]
    pub trust_unsigned: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `--help`'s examples, kept line by line.
const EXAMPLES: &str = "\
Examples:
  lifeboat-restore                        choose from the list, on a terminal
  lifeboat-restore latest                 the newest backup of the database
  lifeboat-restore backup_20261123_020000 --yes
                                          a given backup, no question (scripts)
  lifeboat-restore s3://bucket/lifeboat/backups/backup_20261123_020000.sql.gz
                                          one in the bucket
  lifeboat-restore list                   the backups, for scripts
  lifeboat-restore cleanup                drop the kept pre-restore databases
                                          (and old safety backups)";

const TRUST_UNSIGNED_HELP: &str = "Offer backups in the bucket that this host did not sign (an older lifeboat's, another host's); check them first: a restore runs them as the database superuser";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the backups, here and in the bucket, oldest first, tab-separated: number, where,
    /// name, start, age, size in bytes, database, whether it matches its manifest
    #[command(after_help = exit_codes("listed (none is not an error)", "the backups or the bucket could not be read"))]
    List {
        #[arg(long, help = TRUST_UNSIGNED_HELP)]
        trust_unsigned: bool,
    },
    /// Drop the pre-restore databases kept by earlier restores (<db>__pre_restore_…), and any
    /// restore database a crash left; delete the safety backups older than restore.keep-days
    /// whose pre-restore database is gone; --dry-run only prints them
    #[command(after_help = exit_codes("dropped and deleted (or only printed)", "a drop or a deletion failed; the message says which"))]
    Cleanup {
        /// Print what would be dropped, drop nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (scripts); without it and without a terminal, nothing is done (exit 2)
        #[arg(long)]
        yes: bool,
    },
    /// Print the completion script for a shell: bash, zsh or fish
    #[command(after_help = lifeboat::cli::complete::COMPLETIONS_HELP)]
    Completions(lifeboat::cli::complete::CompletionsArgs),
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Completions(args)) = &cli.command {
        return lifeboat::cli::complete::print::<Cli>(args);
    }
    let (config, runtime) = load(cli)?;
    match &cli.command {
        Some(Command::Completions(_)) => Ok(ExitCode::SUCCESS),
        Some(Command::List { trust_unsigned }) => runtime.block_on(async {
            let catalog = Catalog::load(&config, cli.trust_unsigned || *trust_unsigned).await?;
            if catalog.candidates.is_empty() {
                info!("no backups in {}", config.backup.dir.display());
            }
            for line in catalog.lines() {
                lifeboat::outln!("{line}");
            }
            anyhow::Ok(ExitCode::SUCCESS)
        }),
        Some(Command::Cleanup { dry_run, yes }) => {
            runtime.block_on(cleanup(&config, cli.yes || *yes, *dry_run))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            if let Some(r) = restore_with(&runtime, &config, cli)? {
                lifeboat::outln!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.database,
                    r.backup,
                    r.pre_db.as_deref().unwrap_or("-"),
                    r.safety_backup
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |p| p.display().to_string()),
                    r.downtime.as_millis()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A restore as `lifeboat-restore BACKUP` runs it (mail included), for lifeboat-deploy and
/// lifeboat-rollback; `None` when a rerun only finished an interrupted restore. Prints nothing
/// on stdout.
pub fn restore_now(cli: &Cli) -> anyhow::Result<Option<txn::Restored>> {
    let (config, runtime) = load(cli)?;
    restore_with(&runtime, &config, cli)
}

/// The configuration with the command line's overrides, and a runtime.
fn load(cli: &Cli) -> anyhow::Result<(Config, tokio::runtime::Runtime)> {
    let jobs = lifeboat::cli::flag(settings::LIFEBOAT_RESTORE_JOBS.name(), "--jobs", cli.jobs);
    let config = cli
        .global
        .load_config(cli.db.overrides().chain(jobs).collect())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((config, runtime))
}

fn restore_with(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    cli: &Cli,
) -> anyhow::Result<Option<txn::Restored>> {
    if cli.no_progress {
        // S3 downloads included.
        lifeboat::output::disable_progress();
    }
    let result = runtime.block_on(restore(config, cli));
    if !matches!(&result, Err(e) if lifeboat::exit::code_for(e) == lifeboat::exit::USAGE) {
        runtime.block_on(mail(config, &result));
    }
    result
}

/// The server, its database (name checked), and the restore lock.
async fn open(config: &Config) -> anyhow::Result<(Server, String, JobLock)> {
    let server = Server::connect(config).await?;
    let db = server.database().to_owned();
    if db.len() > MAX_NAME {
        bail!(UsageError::new(format!(
            "the database name {db} is longer than {MAX_NAME} bytes: {db}__pre_restore_<time> would not fit PostgreSQL's 63"
        )));
    }
    let lock = JobLock::acquire(&config.lock_dir, &format!("restore-{db}"))?;
    Ok((server, db, lock))
}

/// The restore; `None` when a rerun only finished an interrupted restore of the same backup.
async fn restore(config: &Config, cli: &Cli) -> anyhow::Result<Option<txn::Restored>> {
    // A bad identity file is exit 2 before any server is touched.
    let keys = lifeboat_backup::crypt::Keys::from_config(config)?;
    let (server, db, _lock) = open(config).await?;
    remove_stale_downloads(&config.backup.dir);
    let (journal_path, journal) = Journal::find(&config.backup.dir, &db)?;
    let recovered = match journal {
        Some(j) => Some((
            txn::recover(config, &server, &j, &journal_path).await?,
            j.backup,
        )),
        None => None,
    };

    let catalog = Catalog::load(config, cli.trust_unsigned).await?;
    let chosen = match &cli.backup {
        Some(wanted) => catalog.pick(config, wanted, &db)?,
        None if recovered.is_some() => {
            info!("nothing more to do; run lifeboat-restore again to restore another backup");
            return Ok(None);
        }
        None => catalog.choose(config, &db)?,
    };
    let m = &chosen.entry.manifest;
    if let Some((Recovered::Finished, backup)) = &recovered {
        if *backup == m.file {
            info!("{db} already is the restored {backup}: not restoring it again");
            return Ok(None);
        }
    }
    if m.all {
        bail!(UsageError::new(format!(
            "{} is a backup of every database and the roles (pg_dumpall, --all); lifeboat-restore restores one database. Restore it by hand with psql -d postgres -f",
            m.file
        )));
    }
    if lifeboat_backup::crypt::is_encrypted(&m.file) && keys.is_empty() {
        // Said before a download or anything else, with what to set.
        keys.open(std::io::empty(), &m.file)?;
    }
    if m.database != db {
        warn!(
            "{} is a backup of database {}, restored here into {db}",
            m.file, m.database
        );
    }

    // From here a signal no longer kills the process: it ends the run, and the download is
    // removed (Download's drop) before anything was touched.
    let stop = Stop::install("restore", "a consistent database")?;
    let download = Download::new(&config.backup.dir, chosen.place == pick::Place::S3)?;
    let entry = before(&stop, async {
        txn::pause_at("downloading").await;
        Box::pin(catalog.fetch(&chosen, &download.dir)).await
    })
    .await?;
    check_archive_interruptible(&stop, &entry).await?;
    before(&stop, check_room(&server, &db, entry.manifest.raw_size)).await?;
    let app = before(&stop, App::find(config, &server.source, &db)).await?;
    before(&stop, async {
        txn::pause_at("confirming").await;
        confirm(cli.yes, &db, &server, &entry, &app).await
    })
    .await?;

    let ctx = Ctx {
        config,
        server: &server,
        journal: journal_path,
        stop,
        keys,
    };
    let done = txn::restore(&ctx, &entry, &app, !cli.no_safety_backup).await?;
    info!(
        "restored {} into {db} in {:.1} s; the app was down {:.1} s",
        done.backup,
        done.total.as_secs_f64(),
        done.downtime.as_secs_f64()
    );
    Ok(Some(done))
}

/// Run `f`, a step before anything is touched, unless a signal comes first.
async fn before<T>(
    stop: &Stop,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = f => r,
        name = stop.wait() => bail!("stopped by {name}; nothing was touched"),
    }
}

/// What a download directory's name starts with, before the pid of the run that made it.
const DOWNLOAD_PREFIX: &str = ".lifeboat-restore-download-";

/// A directory for a backup downloaded from the bucket, removed when done, on an error and on
/// a signal (the run ends through its drop); one that a killed run left is removed by the next
/// run ([`remove_stale_downloads`]).
struct Download {
    dir: PathBuf,
    remove: bool,
}

/// Remove the download directories in `backups` of runs that no longer exist (killed outright:
/// SIGKILL, a power cut). A directory of a run still alive on this machine is left alone.
fn remove_stale_downloads(backups: &std::path::Path) {
    // Whether a pid is alive is read from /proc (Linux); without it nothing is removed.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(read) = std::fs::read_dir(backups) else {
        return;
    };
    for item in read.flatten() {
        let name = item.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DOWNLOAD_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match std::fs::remove_dir_all(item.path()) {
            Ok(()) => warn!(
                "removed {}: a download left by a run that was killed (pid {pid})",
                item.path().display()
            ),
            Err(e) => warn!("cannot remove {}: {e}", item.path().display()),
        }
    }
}

impl Download {
    fn new(backups: &Path, needed: bool) -> anyhow::Result<Self> {
        let dir = backups.join(format!("{DOWNLOAD_PREFIX}{}", std::process::id()));
        if needed {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Self {
            dir,
            remove: needed,
        })
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// [`check_archive`] on a thread of its own, given up at the next block read on a signal.
async fn check_archive_interruptible(stop: &Stop, entry: &Entry) -> anyhow::Result<()> {
    let cancel = Arc::new(AtomicBool::new(false));
    let mut task = tokio::task::spawn_blocking({
        let (entry, cancel) = (entry.clone(), Arc::clone(&cancel));
        move || check_archive(&entry, &cancel)
    });
    tokio::select! {
        checked = &mut task => checked.context("checking the archive")?,
        name = stop.wait() => {
            cancel.store(true, Ordering::Relaxed);
            let _ = task.await;
            bail!("stopped by {name} while checking {}; nothing was touched", entry.manifest.file)
        }
    }
}

/// Reads through `inner`, counting the bytes read and failing once `cancel` is set.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
    counter: &'a AtomicU64,
}

impl<R: std::io::Read> std::io::Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not `Interrupted`: a reader retries that.
            return Err(std::io::Error::other("stopped by a signal"));
        }
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Size and SHA-256 against the manifest: a damaged backup is refused before anything is
/// touched. The archive is decompressed once, as it is restored beside the live database
/// ([`txn`]): its end, its length and every table's rows are checked there, and a failure drops
/// the restore database.
fn check_archive(entry: &Entry, cancel: &AtomicBool) -> anyhow::Result<()> {
    let refused = |e: anyhow::Error| {
        e.context(format!(
            "{} is refused; nothing was touched",
            entry.manifest.file
        ))
    };
    archive::check_size(entry).map_err(refused)?;
    let counter = Arc::new(AtomicU64::new(0));
    let bar = Bar::start("checking", entry.manifest.size, Arc::clone(&counter));
    let file = std::fs::File::open(&entry.archive)
        .with_context(|| format!("cannot open {}", entry.archive.display()))?;
    let checked = archive::check_sha256_of(
        entry,
        &mut Cancellable {
            inner: file,
            cancel,
            counter: &counter,
        },
    );
    bar.finish();
    if cancel.load(Ordering::Relaxed) {
        bail!("stopped by a signal");
    }
    checked.map_err(refused)
}

/// Room for a second copy of the database on the server's disk.
async fn check_room(server: &Server, db: &str, raw_size: u64) -> anyhow::Result<()> {
    let live = if server.exists(db).await? {
        server.size(db).await?
    } else {
        0
    };
    // The restored copy takes about what the live one does; a tenth more for indexes being
    // built and the write-ahead log.
    let needed = live.max(raw_size).saturating_add(live.max(raw_size) / 10);
    match server.free_space().await {
        Ok(Some(free)) if free < needed => bail!(
            "the server has {} free where its data lives, and the restore needs about {} (a second copy of {db}); nothing was touched",
            human_bytes(free),
            human_bytes(needed)
        ),
        Ok(Some(free)) => info!(
            "room on the server: {} free, about {} needed",
            human_bytes(free),
            human_bytes(needed)
        ),
        Ok(None) => info!("the room on a managed server cannot be checked from here; a full disk fails the restore before the swap, with the live database untouched"),
        Err(e) => warn!("cannot check the room on the server: {e:#}"),
    }
    Ok(())
}

/// A line from stdin, read on a thread of its own so that a signal can end the run meanwhile
/// (the thread, blocked on the terminal, ends with the process).
async fn read_answer() -> anyhow::Result<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map(|_| answer);
        let _ = tx.send(read);
    });
    Ok(rx.await.context("reading the answer")??)
}

/// The person types the database's name; `--yes` for scripts; no terminal and no --yes: exit 2.
async fn confirm(
    yes: bool,
    db: &str,
    server: &Server,
    entry: &Entry,
    app: &App,
) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(UsageError::new(format!(
            "restoring replaces the database {db}: confirm on a terminal, or pass --yes; nothing was done"
        )));
    }
    let m = &entry.manifest;
    let rows: i64 = m.tables.iter().map(|t| t.rows).sum();
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "\nRestore {} (database {}, taken {}, {} ago, {} tables, {rows} rows)\ninto the database {db} ({}):\n  \
         1. restore it beside {db} while the app keeps running\n  \
         2. stop {}, swap the databases (the current one is kept as {db}__pre_restore_<time>)\n  \
         3. start the app and wait until it is healthy; if anything fails, put everything back\n",
        m.file,
        m.database,
        m.started.format("%Y-%m-%d %H:%M UTC"),
        pick::age(chrono::Utc::now() - m.started),
        m.tables.len(),
        server.describe(),
        app.describe()
    )?;
    write!(err, "Type the database name ({db}) to continue: ")?;
    err.flush()?;
    drop(err);
    let answer = read_answer().await?;
    if answer.trim() != db {
        bail!(UsageError::new(format!(
            "not confirmed (typed {:?}, not {db:?}); nothing was done",
            answer.trim()
        )));
    }
    Ok(())
}

/// `cleanup`: drop every pre-restore database of the database, and restore databases a crash
/// left behind; then delete the safety backups older than `restore.keep-days` days whose
/// pre-restore database is gone (a younger one stays until it is as old: see [`safety`]).
async fn cleanup(config: &Config, yes: bool, dry_run: bool) -> anyhow::Result<()> {
    let (server, db, _lock) = open(config).await?;
    let (journal_path, journal) = Journal::find(&config.backup.dir, &db)?;
    if let Some(j) = journal {
        txn::recover(config, &server, &j, &journal_path).await?;
    }
    let found = txn::leftovers(&server, &db).await?;
    let dropping: Vec<String> = found.iter().map(|(name, _, _)| name.clone()).collect();
    let files = safety::expired(config, &server, &db, &dropping).await?;
    if found.is_empty() && files.is_empty() {
        info!(
            "no pre-restore databases of {db}, and no safety backup of it older than {} days (restore.keep-days)",
            config.restore.keep_days
        );
        return Ok(());
    }
    if dry_run {
        for name in &dropping {
            lifeboat::outln!("would drop\t{name}");
        }
        for e in &files {
            lifeboat::outln!("would delete\t{}", e.archive.display());
        }
        return Ok(());
    }
    if !yes {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            bail!(UsageError::new(
                "cleanup drops databases: confirm on a terminal, or pass --yes; nothing was done"
            ));
        }
        let mut err = std::io::stderr().lock();
        for name in &dropping {
            writeln!(err, "  drop the database {name}")?;
        }
        for e in &files {
            writeln!(err, "  delete the safety backup {}", e.archive.display())?;
        }
        write!(
            err,
            "Drop {} database(s) and delete {} safety backup(s)? Type the database name ({db}) to continue: ",
            dropping.len(),
            files.len()
        )?;
        err.flush()?;
        drop(err);
        let answer = read_answer().await?;
        if answer.trim() != db {
            bail!(UsageError::new("not confirmed; nothing was dropped"));
        }
    }
    for name in dropping {
        server
            .drop_database(&name)
            .await
            .with_context(|| format!("cannot drop {name}"))?;
        info!("dropped {name}");
        lifeboat::outln!("dropped\t{name}");
    }
    // Only now: every database these files are copies of is gone.
    for e in files {
        safety::delete(&e, config.restore.keep_days)?;
        lifeboat::outln!("deleted\t{}", e.archive.display());
    }
    Ok(())
}

/// A mail when a restore ends, either way, when SMTP_HOST and LIFEBOAT_MAIL_TO are set.
async fn mail(config: &Config, result: &anyhow::Result<Option<txn::Restored>>) {
    if !lifeboat::mail::outcome_wanted(config) {
        return;
    }
    let (subject, body) = match result {
        Ok(None) => return,
        Ok(Some(r)) => (
            format!("lifeboat-restore: {} restored from {}", r.database, r.backup),
            format!(
                "{} is now the restored {}.\nThe app was down {:.1} s; the restore took {:.1} s.\nThe database from before: {}.\nSafety backup: {}.\n",
                r.database,
                r.backup,
                r.downtime.as_secs_f64(),
                r.total.as_secs_f64(),
                r.pre_db.as_deref().unwrap_or("none (there was no database)"),
                r.safety_backup
                    .as_ref()
                    .map_or_else(|| "not taken".to_owned(), |p| p.display().to_string())
            ),
        ),
        Err(e) => (
            "lifeboat-restore: the restore FAILED".to_owned(),
            format!("{e:#}\n"),
        ),
    };
    lifeboat::mail::tell_outcome(config, "to mail the restore's outcome", &subject, &body).await;
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn the_longest_database_name_still_fits_with_its_suffix() {
        let db = "d".repeat(super::MAX_NAME);
        let (restore, pre) = super::txn::names(&db, chrono::Utc::now());
        assert!(pre.len() <= 63 && restore.len() <= 63, "{pre}");
    }
}
