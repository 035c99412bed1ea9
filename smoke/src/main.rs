use std::process::ExitCode;

use lifeboat_smoke::Cli;

fn main() -> ExitCode {
    let cli: Cli = lifeboat::cli::parse(|cli: &Cli| &cli.global);
    lifeboat::exit::report(lifeboat_smoke::run(&cli))
}
