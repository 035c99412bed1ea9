use std::process::ExitCode;

use lifeboat_restore::Cli;

fn main() -> ExitCode {
    let cli: Cli = lifeboat::cli::parse(|cli: &Cli| &cli.global);
    lifeboat::exit::report(lifeboat_restore::run(&cli))
}
