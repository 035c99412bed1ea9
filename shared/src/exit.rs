//! Exit codes: the one place where their meaning is defined.
//!
//! cron, Docker and CI believe these numbers, so 0 must mean the job really worked. README lists
//! them; `lifeboat-healthcheck` is the exception that maps everything to 0 or 1 (Docker reserves 2).

use std::process::ExitCode;

use crate::config::ConfigError;

/// The job did what was asked.
pub const OK: u8 = 0;
/// The job failed; the message says what was left as it was.
pub const FAILED: u8 = 1;
/// The request was wrong: a bad flag, an unknown config key, a missing variable. Nothing was done.
pub const USAGE: u8 = 2;
/// lifeboat-deploy: the deploy failed, and the previous release was put back and serves.
pub const ROLLED_BACK: u8 = 3;

/// An error that is the user's to fix (exit 2), as opposed to a failure of the job (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The exit code for an error chain: 2 when any cause is a user's mistake, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ConfigError>()
            || matches!(
                cause.downcast_ref::<crate::lock::LockError>(),
                Some(crate::lock::LockError::Dir { .. })
            )
            || bad_docker_host(cause)
    });
    if usage {
        USAGE
    } else {
        FAILED
    }
}

/// DOCKER_HOST that is not an address: the user's to fix, like any bad variable.
#[cfg(feature = "docker")]
fn bad_docker_host(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        cause.downcast_ref::<crate::docker::DockerError>(),
        Some(crate::docker::DockerError::BadHost { .. })
    )
}

#[cfg(not(feature = "docker"))]
fn bad_docker_host(_cause: &(dyn std::error::Error + 'static)) -> bool {
    false
}

/// Report an error once, with its whole chain, and turn it into the process exit code.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            let code = code_for(&err);
            tracing::error!("{err:#}");
            ExitCode::from(code)
        }
    }
}
