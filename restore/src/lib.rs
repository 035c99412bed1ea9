//! lifeboat-restore: an incident restore as a transaction, with automatic undo.
//!
//! Replaces `restore-db.sh` (seed 001). The logic lives here so that lifeboat-deploy and
//! lifeboat-rollback can restore a pre-deploy backup.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lifeboat::cli::{flag, GlobalArgs, EXIT_CODES_HELP};

/// Restore a backup into the stack's database, keeping the live one until the new one is in place.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-restore", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// What to restore: latest, a backup name, a path, or s3://…; without it, list and ask
    #[arg(value_name = "BACKUP")]
    pub backup: Option<String>,

    /// Directory of local backups [env: LIFEBOAT_BACKUP_DIR] [default: ./backups]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Restore into the database at this URL (managed PostgreSQL) instead of the container [env: DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Do not ask for confirmation (scripts)
    #[arg(long)]
    pub yes: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
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
    Err(lifeboat::cli::not_built(
        "lifeboat-restore",
        "restoring a backup",
        5,
    ))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
