use std::process::ExitCode;

use clap::Parser;
use lifeboat_smoke::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    lifeboat::output::init(&cli.global.output());
    lifeboat::exit::report(lifeboat_smoke::run(&cli))
}
