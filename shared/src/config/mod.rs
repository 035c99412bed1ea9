//! Configuration from five layers, with every value remembering where it came from.
//!
//! Precedence, highest first: command-line flags > environment > the stack's `.env` file >
//! `lifeboat.toml` (its `[profile.NAME]` table over its top level) > defaults. lifeboat reads the
//! variable names these stacks already use (`DATABASE_URL`, `S3_BUCKET`, `SMTP_HOST`, …) so that it
//! works beside an existing `docker-compose.yml` and its `.env` with no file of its own.
//!
//! A typo must not silently fall back to a default: an unknown key in `lifeboat.toml` or an unknown
//! `LIFEBOAT_*` variable is an error, and every error names the key and the file, line, variable or
//! flag the bad value came from. Secrets never appear in these messages.
//!
//! | module | what it holds |
//! |---|---|
//! | [`settings`] | the table: every setting's variable, key, default, kind and meaning, written once |
//! | `sources` | the layers: flags, environment, `.env`, `lifeboat.toml` and its profiles |
//! | `values` | the typed [`Config`] each binary reads, built from the layers |
//! | `parse` | what one value must look like |
//! | `reference` | `docs/configuration.md`, generated from the table |

mod error;
mod parse;
mod reference;
pub mod settings;
mod sources;
mod values;

pub use error::ConfigError;
pub use parse::{days_before, default_compose_project, parse_bool, MAX_DAYS};
pub use reference::reference_markdown;
pub use settings::{
    Kind, Section, Setting, DEFAULT_BACKUP_NAME, DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, SETTINGS,
};
pub use sources::{parse_dotenv, DotEnvVar, LoadOptions, Origin, Override};
pub use values::{
    BackupConfig, ComposeConfig, Compress, Config, DatabaseConfig, DeployConfig, EngineChoice,
    MailWhen, RedisConfig, RestoreConfig, Retention, S3Config, S3Settings, SmtpConfig, SmtpTls,
};

/// What the tests of every module load from.
#[cfg(test)]
mod testing {
    use std::collections::HashMap;
    use std::path::Path;

    use super::{Config, ConfigError, LoadOptions};

    pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Load from `pairs` alone: no files.
    pub fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(
            &LoadOptions {
                env_file: None,
                ..LoadOptions::default()
            },
            &env(pairs),
        )
    }

    pub fn opts_in(dir: &Path) -> LoadOptions {
        LoadOptions {
            config_file: Some(dir.join("lifeboat.toml")).filter(|p| p.exists()),
            env_file: Some(dir.join(".env")).filter(|p| p.exists()),
            ..LoadOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::load;
    use super::*;

    #[test]
    fn every_default_in_the_table_is_a_valid_value() {
        let cfg = load(&[]).expect("the defaults load");
        assert_eq!(
            cfg.backup.dir.to_str(),
            settings::LIFEBOAT_BACKUP_DIR.default
        );
        assert_eq!(Some(cfg.s3.region.as_str()), settings::S3_REGION.default);
    }

    #[test]
    fn every_variable_is_named_once_and_every_key_once() {
        let mut vars: Vec<&str> = SETTINGS.iter().map(|s| s.var).collect();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(
            vars.len(),
            SETTINGS.len(),
            "a variable is in the table twice"
        );
        let mut keys: Vec<&str> = SETTINGS.iter().filter_map(|s| s.key).collect();
        let with_key = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), with_key, "a key is in the table twice");
        for s in SETTINGS {
            assert!(
                s.default.is_none() || s.default_doc.is_none(),
                "{}: a default and a text for it",
                s.var
            );
        }
    }
}
