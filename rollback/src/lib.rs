//! lifeboat-rollback: go back to a previous release, code and optionally data.
//!
//! Replaces `rollback.sh` (seed 002): list the releases, go back to the previous one or a named
//! one through lifeboat-deploy's own switch (each service health-gated, put back if it is not
//! healthy), with `--with-data` restore the backup taken just before that release was left
//! (code and schema go back together), then the smoke tests; recorded in the history.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lifeboat::cli::{after_long_help, after_short_help, exit_codes, GlobalArgs};
use lifeboat::exit::UsageError;
use lifeboat_deploy::history::{who, Entry, Journal};
use lifeboat_deploy::release::Release;
use lifeboat_deploy::stack::{Outcome, Stack};
use lifeboat_deploy::REQUIRED_HELP;
use tracing::{info, warn};

/// `--help`'s examples, kept line by line.
const EXAMPLES: &str = "\
Examples:
  lifeboat-rollback list            the releases, the current one marked *
  lifeboat-rollback                 back to the previous release
  lifeboat-rollback v1 --with-data  back to v1, with the data from before v1
                                    was left (the database is replaced: --yes
                                    or a question on a terminal)";

/// `--help`'s exit codes: lifeboat-rollback never puts the release it leaves back on purpose,
/// so it has no exit 3.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  rolled back and healthy (and the data restored, with --with-data)
  1  failed; the message says which release serves (a service that was not
     healthy on the older release was put back)
  2  the request was wrong (flag, config key, variable, VERSION); nothing
     was done";

/// Roll the compose stack back to the previous release, or to a named one.
///
/// Without VERSION: the release that was live before the current one. The switch is
/// lifeboat-deploy's: each app service, then each worker, gets a container of that release's
/// image with its current configuration and must become healthy, or it is put back.
///
/// --with-data also restores, through lifeboat-restore, the backup lifeboat-deploy took just
/// before that release was replaced: the schema and data it ran on. That replaces the
/// database (the one from before is kept as <db>__pre_restore_<time>): confirm on a terminal,
/// or pass --yes.
///
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-rollback",
    version = lifeboat::cli::complete::version(env!("LIFEBOAT_COMMIT")),
    after_help = format!("{}\n\n{REQUIRED_HELP}", after_short_help("lifeboat-rollback    (back to the previous release)")),
    after_long_help = after_long_help(&[REQUIRED_HELP, EXAMPLES, EXIT_CODES_HELP])
)]
pub struct Cli {
    /// The release to go back to [default: the previous one]
    #[arg(value_name = "VERSION")]
    pub release: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Also restore that release's data: the backup taken just before it was replaced
    #[arg(long)]
    pub with_data: bool,

    /// Do not ask before restoring data (scripts)
    #[arg(long)]
    pub yes: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The releases, newest first, tab-separated: * for the current one, version, image id,
    /// when it was last deployed, the backup of its data (for --with-data) or -
    #[command(after_help = exit_codes("printed (no history yet is not an error)", "the stack or the history could not be read"))]
    List,
    /// Print the completion script for a shell: bash, zsh or fish
    #[command(after_help = lifeboat::cli::complete::COMPLETIONS_HELP)]
    Completions(lifeboat::cli::complete::CompletionsArgs),
}

/// A release the stack can go back to, as the history knows it.
pub struct Known {
    pub release: Release,
    pub last_live: chrono::DateTime<chrono::Utc>,
    /// The backup taken just before it was replaced: its data.
    pub backup: Option<String>,
}

/// Every release in the history, newest first, each once.
pub fn releases(entries: &[Entry]) -> Vec<Known> {
    let mut out: Vec<Known> = Vec::new();
    for e in entries.iter().rev() {
        let live = e.live_after().map(|r| (r, e.finished));
        let before = e.previous.clone().map(|r| (r, e.started));
        for (r, when) in live.into_iter().chain(before) {
            if !out.iter().any(|k| k.release.image_id == r.image_id) {
                out.push(Known {
                    release: r,
                    last_live: when,
                    backup: None,
                });
            }
        }
    }
    for k in &mut out {
        k.backup = entries
            .iter()
            .rev()
            .filter(|e| e.action == "deploy")
            .find(|e| {
                e.backup.is_some()
                    && e.previous
                        .as_ref()
                        .is_some_and(|p| p.image_id == k.release.image_id)
            })
            .and_then(|e| e.backup.clone());
    }
    out
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Completions(args)) = &cli.command {
        return lifeboat::cli::complete::print::<Cli>(args);
    }
    let config = cli.global.load_config(Vec::new())?;
    if let Some(Command::List) = cli.command {
        let stack = Stack::open(&cli.global, config, false)?;
        let (live, _) = stack.live()?;
        let known = releases(&stack.history.entries()?);
        if known.is_empty() {
            lifeboat::errln!(
                "no releases in the history yet ({})",
                stack.history.path().display()
            );
        }
        for k in known {
            lifeboat::outln!(
                "{}\t{}\t{}\t{}\t{}",
                if k.release.image_id == live.image_id {
                    "*"
                } else {
                    " "
                },
                k.release.version,
                k.release.short_id(),
                k.last_live.format("%Y-%m-%d %H:%M:%S UTC"),
                k.backup.as_deref().unwrap_or("-")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stack = Stack::open(&cli.global, config, true)?;
    rollback(&stack, cli)
}

fn rollback(stack: &Stack, cli: &Cli) -> anyhow::Result<ExitCode> {
    stack.recover()?;
    let (current, _) = stack.live()?;
    let entries = stack.history.entries()?;
    let known = releases(&entries);
    let target = target(stack, cli.release.as_deref(), &known, &entries, &current)?;
    let backup = if cli.with_data {
        let b = target.backup.clone().ok_or_else(|| {
            UsageError::new(format!(
                "no pre-deploy backup of {}'s data in the history: lifeboat-deploy takes one before each deploy (unless --no-backup); restore one by hand with lifeboat-restore",
                target.release.version
            ))
        })?;
        confirm(cli.yes, &target.release, &b)?;
        Some(b)
    } else {
        None
    };
    let to = &target.release;
    if to.image_id == current.image_id && backup.is_none() {
        info!("{} is live already; nothing to do", to.version);
        return Ok(ExitCode::SUCCESS);
    }
    let smoke_spec = stack.smoke_spec()?;
    let proxies = stack.proxies()?;
    stack.check_proxies(&proxies, &current.version)?;
    info!(
        step = "plan",
        "rolling back from {} to {}{}",
        current.version,
        to.version,
        backup
            .as_deref()
            .map(|b| format!(", with the data of {b}"))
            .unwrap_or_default()
    );

    let started = chrono::Utc::now();
    let mut outcome = Outcome {
        action: "rollback",
        to,
        from: Some(&current),
        backup: backup.clone(),
        migrated: false,
        restored: false,
        started,
    };
    stack.write_journal(&Journal {
        action: "rollback".into(),
        to: to.clone(),
        from: current.clone(),
        step: "switching".into(),
        backup: backup.clone(),
        migrated: false,
        started,
        pid: std::process::id(),
        by: who(),
    })?;
    // Code first: the older code then meets its own schema at the restore's swap, which stops
    // the app for seconds only.
    let result = stack.switch_all(to, true).and_then(|()| {
        if let Some(b) = &backup {
            stack.stop.check()?;
            stack.restore(b)?;
            outcome.restored = true;
            stack.check_public(to)?;
        }
        match &smoke_spec {
            Some(spec) => stack.smoke(spec),
            None => Ok(()),
        }
    });
    settle(stack, &outcome, result, &current)
}

/// How the rollback ended: recorded, told, and on a failure the release from before put back.
fn settle(
    stack: &Stack,
    outcome: &Outcome,
    result: anyhow::Result<()>,
    current: &Release,
) -> anyhow::Result<ExitCode> {
    let to = outcome.to;
    match result {
        Ok(()) => {
            info!(
                step = "done",
                "rolled back to {} ({})",
                to.version,
                to.short_id()
            );
            let subject = format!(
                "lifeboat-rollback: {} serves on {}",
                to.version,
                stack.project()
            );
            outcome.finish(stack, "done", None, &subject, false)?;
            lifeboat::outln!("rolled back\t{}\t{}", to.version, to.image_id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if outcome.restored => {
            // The data is back; the code must stay with it. The history says it serves (`done`),
            // with the smoke tests' failure as its error.
            let subject = format!(
                "lifeboat-rollback to {} FAILED its smoke tests on {}",
                to.version,
                stack.project()
            );
            outcome.finish(stack, "done", Some(&e), &subject, false)?;
            Err(e.context(format!(
                "{} serves with its data restored, but its smoke tests failed",
                to.version
            )))
        }
        Err(e) => {
            warn!(
                step = "undoing",
                "the rollback to {} failed: putting {} back", to.version, current.version
            );
            let back = stack
                .switch_all(current, false)
                .and_then(|()| stack.check_public(current));
            let keep_journal = back.is_err();
            let e = match back {
                Ok(()) => e.context(format!("the rollback to {} failed; {} serves again, as before", to.version, current.version)),
                Err(r) => e.context(format!("the rollback to {} failed, and putting {} back failed too: {r:#}; run lifeboat-rollback again", to.version, current.version)),
            };
            let subject = format!(
                "lifeboat-rollback to {} FAILED on {}",
                to.version,
                stack.project()
            );
            outcome.finish(stack, "failed", Some(&e), &subject, keep_journal)?;
            Err(e)
        }
    }
}

/// The release to go back to: the named one, or the one live before the current one.
fn target<'a>(
    stack: &Stack,
    named: Option<&str>,
    known: &'a [Known],
    entries: &[Entry],
    current: &Release,
) -> anyhow::Result<&'a Known> {
    if let Some(v) = named {
        return known
            .iter()
            .find(|k| k.release.version == v)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "{v} is not a release in the history ({}); `lifeboat-rollback list` shows them",
                    stack.history.path().display()
                ))
                .into()
            });
    }
    // The release live before the current one (a redeploy of the same image does not count).
    let previous = entries
        .iter()
        .rev()
        .filter(|e| {
            e.live_after()
                .is_some_and(|r| r.image_id == current.image_id)
        })
        .find_map(|e| {
            e.previous
                .clone()
                .filter(|p| p.image_id != current.image_id)
        })
        .ok_or_else(|| {
            UsageError::new(format!(
                "the history ({}) has no release before {}: name one (`lifeboat-rollback list`)",
                stack.history.path().display(),
                current.version
            ))
        })?;
    known
        .iter()
        .find(|k| k.release.image_id == previous.image_id)
        .context("the previous release is missing from the list")
}

/// Restoring data replaces the database: the person types the version, or --yes.
fn confirm(yes: bool, to: &Release, backup: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(UsageError::new(format!(
            "--with-data replaces the database with {backup}: confirm on a terminal, or pass --yes; nothing was done"
        )));
    }
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "Roll back to {} and restore its data from {backup} (the database now is kept as <db>__pre_restore_<time>).\nType the version ({}) to continue: ",
        to.version, to.version
    )?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != to.version {
        bail!(UsageError::new("not confirmed; nothing was done"));
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
