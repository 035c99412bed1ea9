//! The options every binary shares, flattened into each one's clap parser.
//!
//! Each option has its environment variable (clap `env =`), so `--help` shows it and cron or a
//! container can set it without a wrapper script. A flag that overrides a setting says the
//! setting's variable and default in its help, taken from the settings table ([`setting_help`]),
//! so that `--help` cannot disagree with the loader.

pub mod complete;
mod parse;

pub use parse::{parse, try_parse, Refused};

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::config::settings::{self as s, Setting};
use crate::config::{Config, ConfigError, LoadOptions, Override};
use crate::env_vars as ev;
use crate::output::{LogFormat, OutputOptions};

/// Configuration sources and logging, shared by every lifeboat binary.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    #[arg(long, global = true, value_name = "FILE", env = ev::LIFEBOAT_CONFIG, hide_env_values = true, help = format!("Configuration file [default: ./{} when present]", s::DEFAULT_CONFIG_FILE))]
    pub config: Option<PathBuf>,

    #[arg(long, global = true, value_name = "FILE", env = ev::LIFEBOAT_ENV_FILE, hide_env_values = true, help = format!("The stack's environment file [default: ./{} when present]", s::DEFAULT_ENV_FILE))]
    pub env_file: Option<PathBuf>,

    /// Profile: applies lifeboat.toml's [profile.NAME] table (e.g. staging, production)
    #[arg(long = "env", global = true, value_name = "NAME", env = ev::LIFEBOAT_ENV, hide_env_values = true)]
    pub profile: Option<String>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, ignore_case = true, default_value = s::DEFAULT_LOG_FORMAT, env = ev::LIFEBOAT_LOG_FORMAT, hide_env_values = true)]
    pub log_format: LogFormat,

    /// More detail on stderr: -v what was found and chosen (engine, project, containers,
    /// database, files), -vv every lifeboat event (dependencies' only through LIFEBOAT_LOG)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Errors only on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// A tracing filter for stderr, overriding -v/-q (e.g. "debug", "lifeboat=trace")
    #[arg(long, global = true, value_name = "FILTER", env = ev::LIFEBOAT_LOG, hide_env_values = true, hide = true)]
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

/// The backups and the database a command works on: `--dir`, `--url` and `--database`, flags
/// over the settings `backup.dir`, `database.url` and `database.name`. lifeboat-backup and
/// lifeboat-restore flatten it, and reword `--url` and `--database` for what they do with them.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    #[arg(long, global = true, value_name = "DIR", help = setting_help("Directory of local backups", &s::LIFEBOAT_BACKUP_DIR))]
    pub dir: Option<PathBuf>,

    #[arg(long, global = true, value_name = "URL", help = setting_help("Connect to this PostgreSQL URL instead of the database container", &s::DATABASE_URL))]
    pub url: Option<String>,

    #[arg(long, global = true, value_name = "NAME", help = setting_help("The database", &s::LIFEBOAT_DB_NAME))]
    pub database: Option<String>,
}

impl DatabaseArgs {
    /// The flags given, as configuration overrides.
    pub fn overrides(&self) -> impl Iterator<Item = Override> {
        [
            flag(
                s::LIFEBOAT_BACKUP_DIR.name(),
                "--dir",
                self.dir.as_ref().map(|d| d.display()),
            ),
            flag(s::DATABASE_URL.name(), "--url", self.url.as_ref()),
            flag(
                s::LIFEBOAT_DB_NAME.name(),
                "--database",
                self.database.as_ref(),
            ),
        ]
        .into_iter()
        .flatten()
    }
}

/// A flag's help that names its setting's variable and default: `TEXT [env: VAR] [default: X]`.
pub fn setting_help(text: &str, setting: &Setting) -> String {
    match setting.default_text() {
        Some(default) => format!("{text} [env: {}] [default: {default}]", setting.var),
        None => env_help(text, setting),
    }
}

/// A switch's help that names its setting's variable: `TEXT [env: VAR]`.
pub fn env_help(text: &str, setting: &Setting) -> String {
    format!("{text} [env: {}]", setting.var)
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

/// A subcommand's exit codes: what 0 and 1 mean for it; 2 is always a wrong request.
pub fn exit_codes(ok: &str, failed: &str) -> String {
    format!(
        "Exit codes:\n  0  {ok}\n  1  {failed}\n  2  the request was wrong (flag, config key, variable); nothing\n     was done"
    )
}

/// The variables every binary reads besides its settings, for `--help`.
pub const ENVIRONMENT_HELP: &str = "\
Environment (each flag's variable is beside it; every setting and its variable:
docs/configuration.md):
  NO_COLOR=1           no colour (colour is only ever used on a terminal)
  LIFEBOAT_LOG=FILTER  the log filter, over -v and -q: `debug`,
                       `lifeboat=trace,hyper=debug` (a dependency's events
                       show only this way)";

/// `--help`'s text after the options: the sections given (examples, steps, exit codes), then
/// [`ENVIRONMENT_HELP`]. Each line is kept as written at 80 columns: clap only wraps lines
/// longer than the terminal.
pub fn after_long_help(sections: &[&str]) -> String {
    let mut out = sections.join("\n\n");
    out.push_str("\n\n");
    out.push_str(ENVIRONMENT_HELP);
    out
}

/// `-h`'s text after the options: one example, and where the rest is.
pub fn after_short_help(example: &str) -> String {
    format!("Example: {example}\n\n--help shows more examples, the variables and the exit codes.")
}
