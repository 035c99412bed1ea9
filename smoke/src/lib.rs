//! lifeboat-smoke: declarative smoke tests for staging and production.
//!
//! Replaces `smoke_tests.sh` (seed 002) and seed 000's manual validations. The logic lives here
//! so that lifeboat-deploy can run the smoke tests after a switch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lifeboat::cli::{GlobalArgs, EXIT_CODES_HELP};

/// Run the checks of a smoke.toml against an environment.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-smoke", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The spec file
    #[arg(long, value_name = "FILE", default_value = "smoke.toml")]
    pub spec: PathBuf,

    /// Allow checks that write in production
    #[arg(long)]
    pub allow_writes: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let _config = cli.global.load_config(Vec::new())?;
    Err(lifeboat::cli::not_built(
        "lifeboat-smoke",
        "running smoke tests",
        7,
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
