use std::process::ExitCode;

/// Docker reads only 0 (healthy) and 1 (unhealthy) and reserves 2: `run` returns nothing else.
fn main() -> ExitCode {
    ExitCode::from(lifeboat_healthcheck::run(std::env::args().skip(1)))
}
