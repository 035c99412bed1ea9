//! lifeboat-healthcheck: a tiny static probe with exact Docker HEALTHCHECK semantics.
//!
//! Replaces `HEALTHCHECK CMD wget --spider …` (seed 001). Docker reads only 0 (healthy) and 1
//! (unhealthy) and reserves 2, so this binary never exits with anything else. It stays light:
//! no tokio runtime, no AWS SDK, no bollard (`lifeboat` is used without its service features).

use std::process::ExitCode;

use clap::Parser;

/// Check that a service is healthy, for Docker's HEALTHCHECK: exit 0 healthy, 1 unhealthy.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-healthcheck",
    version,
    after_help = "Exit codes:\n  0  healthy\n  1  unhealthy, or the check could not run (Docker reserves 2)"
)]
pub struct Cli {
    /// Targets: http://…, https://…, tcp://host:port, postgres://…, redis://…
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Run the check; only ever 0 or 1.
pub fn run(_cli: &Cli) -> ExitCode {
    println!("lifeboat-healthcheck: checking targets is not built yet (tracked in issue #6); reporting unhealthy");
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
