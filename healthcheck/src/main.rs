use std::process::ExitCode;

use clap::Parser;
use lifeboat_healthcheck::Cli;

/// Docker reads only 0 (healthy) and 1 (unhealthy) and reserves 2, so even a usage error is 1.
fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => lifeboat_healthcheck::run(&cli),
        Err(err) => {
            let informational = !err.use_stderr();
            let _ = err.print();
            ExitCode::from(u8::from(!informational))
        }
    }
}
