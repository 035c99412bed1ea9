//! lifeboat-rollback: go back to a previous release, code and optionally data.
//!
//! Replaces `rollback.sh` (seed 002), through the same switch path as lifeboat-deploy.

use std::process::ExitCode;

use clap::Parser;
use lifeboat::cli::{GlobalArgs, EXIT_CODES_HELP};

/// Roll the compose stack back to the previous release, or to a named one.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-rollback", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The release to go back to [default: the previous one]
    #[arg(value_name = "VERSION")]
    pub release: Option<String>,

    /// Also restore that release's pre-deploy backup (code and schema go back together)
    #[arg(long)]
    pub with_data: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let _config = cli.global.load_config(Vec::new())?;
    Err(lifeboat::cli::not_built(
        "lifeboat-rollback",
        "rolling back",
        8,
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
