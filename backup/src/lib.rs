//! lifeboat-backup: PostgreSQL backups that never fail silently.
//!
//! Replaces `backup-db.sh` (seed 001) and the pre-deploy backup of `deploy_production.sh`
//! (seed 002). The logic lives here, not in `main.rs`, so that lifeboat-deploy can call it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lifeboat::cli::{flag, GlobalArgs, EXIT_CODES_HELP};

/// Back up a compose stack's PostgreSQL database: pg_dump → gzip → SHA-256, with a manifest.
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

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a backup now (the default)
    Run,
    /// List the backups
    List,
    /// Apply the retention policy (--dry-run prints the plan)
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
    ];
    let _config = cli
        .global
        .load_config(overrides.into_iter().flatten().collect())?;
    let what = match cli.command {
        None | Some(Command::Run) => "taking a backup",
        Some(Command::List) => "listing backups",
        Some(Command::Prune { .. }) => "pruning backups",
    };
    Err(lifeboat::cli::not_built("lifeboat-backup", what, 4))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
