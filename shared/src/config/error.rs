//! The errors of loading the configuration: each names the key and the file, line, variable or
//! flag its value came from, and none quotes a value (it may be a secret).

use std::path::PathBuf;

use super::settings::Setting;
use super::sources::Origin;

/// What went wrong loading the configuration; every one is the user's to fix (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("{} line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("unknown key `{key}` in {}{hint}", path.display())]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: String,
    },
    #[error("unknown variable {var} (from {origin}); lifeboat's own variables are listed in docs/configuration.md")]
    UnknownVariable { var: String, origin: Origin },
    #[error("invalid value for `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        reason: String,
    },
    #[error("`{key}` is not set: set {env} in the environment or .env, or `{key}` in lifeboat.toml ({why})")]
    Missing {
        key: &'static str,
        env: &'static str,
        why: String,
    },
}

/// `setting` is needed for `why` and not set: say which variable or key to set.
pub(super) fn missing(setting: &Setting, why: &str) -> ConfigError {
    ConfigError::Missing {
        key: setting.name(),
        env: setting.var,
        why: why.to_owned(),
    }
}
