use std::process::ExitCode;

use clap::Parser;
use lifeboat_backup::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    lifeboat::output::init(&cli.global.output());
    lifeboat::exit::report(lifeboat_backup::run(&cli))
}
