//! lifeboat-deploy: health-gated releases with automatic, data-aware rollback.
//!
//! Replaces `deploy_production.sh` (seed 002). It will call lifeboat-backup, lifeboat-restore,
//! lifeboat-healthcheck and lifeboat-smoke as libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lifeboat::cli::{GlobalArgs, EXIT_CODES_HELP};

/// Deploy VERSION of the app to the compose stack, rolling back by itself if it is not healthy.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-deploy", version, after_help = EXIT_CODES_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The version to deploy: a git tag or commit of the app, or an image tag
    #[arg(value_name = "VERSION")]
    pub release: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the plan and stop
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What runs now, healthy or not
    Status,
    /// Past deploys and rollbacks
    History,
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let _config = cli.global.load_config(Vec::new())?;
    let what =
        match (&cli.command, &cli.release) {
            (Some(Command::Status), _) => "showing the deploy status",
            (Some(Command::History), _) => "showing the deploy history",
            (None, Some(_)) => "deploying",
            (None, None) => return Err(lifeboat::exit::UsageError::new(
                "lifeboat-deploy: say which VERSION to deploy (or `status`, `history`); see --help",
            )
            .into()),
        };
    Err(lifeboat::cli::not_built("lifeboat-deploy", what, 8))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
