//! The errors of loading the configuration: each names the key and the file, line, variable or
//! flag its value came from, and none quotes a value (it may be a secret).

use std::path::PathBuf;

use super::settings::Setting;
use super::sources::Origin;

/// What went wrong loading the configuration; every one is the user's to fix (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    /// `--config` or `--env-file` (or their variable) names a file that cannot be read.
    #[error("cannot read {} ({given}): {reason}", path.display())]
    ReadGiven {
        path: PathBuf,
        given: &'static str,
        reason: String,
    },
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
    #[error("unknown variable {var} (from {origin}){}; lifeboat's own variables are listed in docs/configuration.md", did_you_mean(suggestion.as_deref()))]
    UnknownVariable {
        var: String,
        origin: Origin,
        suggestion: Option<&'static str>,
    },
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
    /// Several of the above, every one found in one reading, in the order found.
    #[error("{} problems in the configuration, all to fix:\n{}", .0.len(), list(.0))]
    Many(Vec<ConfigError>),
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(": did you mean {s}?"))
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The known name nearest to `name`, when near enough to be what was meant: the measure and
/// threshold clap uses for a misspelled flag (Jaro similarity over 0.7), after `-` and `_`
/// are made equal (`keep_days` for `keep-days`) and the `LIFEBOAT_` every variable shares is
/// left out (it would make every name look alike).
pub(super) fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| {
        s.trim_start_matches(crate::env_vars::PREFIX)
            .to_ascii_lowercase()
            .replace('-', "_")
    };
    let wanted = fold(name);
    known
        .into_iter()
        .map(|k| (strsim::jaro(&wanted, &fold(k)), k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// One error for what was found: itself when alone, [`ConfigError::Many`] otherwise.
pub(super) fn all(mut errors: Vec<ConfigError>) -> ConfigError {
    if errors.len() == 1 {
        errors.swap_remove(0)
    } else {
        ConfigError::Many(errors)
    }
}

/// `setting` is needed for `why` and not set: say which variable or key to set.
pub(super) fn missing(setting: &Setting, why: &str) -> ConfigError {
    ConfigError::Missing {
        key: setting.name(),
        env: setting.var,
        why: why.to_owned(),
    }
}
