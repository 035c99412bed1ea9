//! The options every binary shares, flattened into each one's clap parser.
//!
//! Each option has its environment variable (clap `env =`), so `--help` shows it and cron or a
//! container can set it without a wrapper script.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::config::{Config, ConfigError, LoadOptions, Override};
use crate::env_vars as ev;
use crate::output::{LogFormat, OutputOptions};

/// Configuration sources and logging, shared by every lifeboat binary.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./lifeboat.toml when present]
    #[arg(long, global = true, value_name = "FILE", env = ev::LIFEBOAT_CONFIG)]
    pub config: Option<PathBuf>,

    /// The stack's environment file [default: ./.env when present]
    #[arg(long, global = true, value_name = "FILE", env = ev::LIFEBOAT_ENV_FILE)]
    pub env_file: Option<PathBuf>,

    /// Profile: applies lifeboat.toml's [profile.NAME] table (e.g. staging, production)
    #[arg(long = "env", global = true, value_name = "NAME", env = ev::LIFEBOAT_ENV)]
    pub profile: Option<String>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = ev::LIFEBOAT_LOG_FORMAT)]
    pub log_format: LogFormat,

    /// More detail on stderr (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Errors only on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// A tracing filter for stderr, overriding -v/-q (e.g. "debug", "lifeboat=trace")
    #[arg(long, global = true, value_name = "FILTER", env = ev::LIFEBOAT_LOG, hide = true)]
    pub log_filter: Option<String>,
}

impl GlobalArgs {
    pub fn output(&self) -> OutputOptions {
        let verbosity = if self.quiet {
            -1
        } else {
            i8::try_from(self.verbose).unwrap_or(i8::MAX)
        };
        OutputOptions {
            format: self.log_format,
            verbosity,
            filter: self.log_filter.clone(),
        }
    }

    /// Load the configuration with these sources and the given flag overrides.
    pub fn load_config(&self, overrides: Vec<Override>) -> Result<Config, ConfigError> {
        Config::load(&LoadOptions {
            config_file: self.config.clone(),
            env_file: self.env_file.clone(),
            profile: self.profile.clone(),
            profile_origin: Some(crate::config::Origin::Flag(
                "--env (or LIFEBOAT_ENV)".into(),
            )),
            overrides,
        })
    }
}

/// A flag's value as a configuration override, when the flag was given.
pub fn flag(
    key: &'static str,
    flag: &'static str,
    value: Option<impl ToString>,
) -> Option<Override> {
    value.map(|v| Override {
        key,
        flag,
        value: v.to_string(),
    })
}

/// The exit codes, for each binary's `--help` (README lists them too).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  it worked
  1  the job failed; the message says what was left as it was
  2  the request was wrong (flag, config key, variable); nothing was done";
