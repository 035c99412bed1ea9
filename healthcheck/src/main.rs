use std::process::ExitCode;

/// Docker reads only 0 (healthy) and 1 (unhealthy) and reserves 2: `run` returns nothing else,
/// and even a panic (no thread left to spawn, stdout closed) ends as one line and exit 1.
fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let reason = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        lifeboat_healthcheck::say(&format!("unhealthy: internal error: {reason}"));
        std::process::exit(1);
    }));
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    ExitCode::from(lifeboat_healthcheck::run(args))
}
