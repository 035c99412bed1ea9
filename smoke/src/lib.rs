//! lifeboat-smoke: declarative smoke tests for staging and production.
//!
//! Replaces `smoke_tests.sh` (seed 002: ten critical tests run one by one with curl and grep,
//! secrets echoed into CI logs) and seed 000's manual validations after a deploy. A spec file,
//! `smoke.toml` ([`spec`]), names the checks; [`run`] schedules them concurrently; each kind is a
//! module of [`checks`]; [`report`] shows and writes the results. The logic lives here so that
//! lifeboat-deploy can run the smoke tests after a switch.
//!
//! Exit codes: 0 every selected check passed (or was skipped by choice), 1 a check or a cleanup
//! failed, 2 the spec, a flag or a variable is wrong (naming the spec's line) and nothing was sent.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use lifeboat::cli::{after_long_help, after_short_help, GlobalArgs};
use lifeboat::config::Config;
use lifeboat::exit::UsageError;

pub mod checks;
mod plan;
pub mod report;
pub mod run;
pub mod spec;
pub mod vars;

use crate::plan::plan;
use crate::report::{Printer, ReportTarget};
use crate::spec::Spec;

/// `--help`'s examples, kept line by line.
const EXAMPLES: &str = "\
Examples:
  lifeboat-smoke --env staging            every check of smoke.toml, on staging
  lifeboat-smoke --env production --tag critical
                                          the critical ones, read-only ones only
  lifeboat-smoke --list                   the checks, run nothing
  lifeboat-smoke --report junit:smoke.xml also a JUnit report for CI

A minimal smoke.toml:
  [environments.staging]
  base-url = \"https://staging.example.com\"

  [[check]]
  name = \"health\"
  url = \"/api/health\"
  expect.status = 200";

/// Run the checks of a smoke.toml against an environment.
///
/// The spec names the environments (base-url, variables, read-only or not) and the checks:
/// http (the default kind), postgres, redis, s3, smtp, rate-limit and webhook
/// (docs/lifeboat-smoke.md). Checks run concurrently, each with its deadline; what a check
/// writes is cleaned up whatever happens.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-smoke",
    version = lifeboat::cli::complete::version(env!("LIFEBOAT_COMMIT")),
    after_help = after_short_help("lifeboat-smoke --env staging    (every check of ./smoke.toml)"),
    after_long_help = after_long_help(&[EXAMPLES, SMOKE_EXIT_CODES])
)]
// `--env` is shared by every binary as lifeboat.toml's profile; here it first chooses the spec's
// environment, which is what a person running smoke tests means by it.
#[command(mut_arg("profile", |a| a.help(ENV_HELP)))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The spec file
    #[arg(long, value_name = "FILE", default_value = lifeboat::config::settings::DEFAULT_SMOKE_SPEC)]
    pub spec: PathBuf,

    /// Run the checks that write even in a read-only environment (production)
    #[arg(long)]
    pub allow_writes: bool,

    /// Run only this check (and what it depends on); repeatable
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,

    /// Run only the checks with this tag (and what they depend on); repeatable
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Also write a report for CI: junit:FILE or json:FILE (`-` for stdout); repeatable
    #[arg(long, value_name = "FORMAT:FILE", value_parser = report::parse_target)]
    pub report: Vec<ReportTarget>,

    /// Print the checks (name, kind, read-only, tags, depends-on) and run nothing
    #[arg(long)]
    pub list: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

const SMOKE_EXIT_CODES: &str = "\
Exit codes:
  0  every selected check passed (or was skipped by choice)
  1  a check or a cleanup failed
  2  the spec, a flag or a variable is wrong (naming the spec's line); nothing
     was sent";

/// lifeboat-smoke's one subcommand: without it, the checks run.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the completion script for a shell: bash, zsh or fish
    #[command(after_help = lifeboat::cli::complete::COMPLETIONS_HELP)]
    Completions(lifeboat::cli::complete::CompletionsArgs),
}

/// `--env` as lifeboat-smoke reads it.
const ENV_HELP: &str = "Environment: the spec's [environments.NAME] to run against (needed when \
     it has several; e.g. staging, production); it also applies lifeboat.toml's [profile.NAME]";

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(message))
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Completions(args)) = &cli.command {
        return lifeboat::cli::complete::print::<Cli>(args);
    }
    let config = cli.global.load_config(Vec::new())?;
    let spec = Spec::load(&cli.spec).map_err(|e| usage(e.to_string()))?;
    if cli.list {
        let mut out = String::new();
        for c in &spec.checks {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\ttags={}\tdepends-on={}",
                c.name,
                c.kind.name(),
                if c.read_only { "read-only" } else { "writes" },
                c.tags.join(","),
                c.depends_on.join(",")
            );
        }
        lifeboat::out!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let env = environment(&cli.global)?;
    let (planned, secrets) = plan(&spec, &config, cli, env)?;
    for target in &cli.report {
        writable(target.path())?;
    }
    let redactor = vars::Redactor::default();
    // Scrubbed from everything shown: lifeboat's own secrets, and the values of `${secret:…}`
    // in variables and base-url (read while planning).
    for secret in config_secrets(&config)?.iter().chain(&secrets) {
        redactor.add(secret);
    }
    let names: Vec<&str> = planned.run.checks.iter().map(|c| c.name.as_str()).collect();
    let printer = Printer::new(cli.global.quiet, &names)
        .json(cli.global.log_format == lifeboat::output::LogFormat::Json);
    let run_id = format!(
        "smoke-{}-{:04x}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    );
    let base_url = planned.base_url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let client = checks::http::shared_client().map_err(anyhow::Error::msg)?;
        let ctx = Arc::new(checks::Ctx {
            client,
            base_url,
            config,
            run_id,
            redactor,
            cleanups: checks::Cleanups::default(),
        });
        // From here a signal stops the checks and runs the cleanups, then the run fails.
        let stop = lifeboat::signal::Stop::install(
            "smoke tests",
            "no probe data behind: the cleanups registered so far run",
        )?;
        anyhow::Ok(run::execute(planned.run, ctx, &printer, &stop).await)
    })?;
    printer.summary(&report);
    for target in &cli.report {
        target
            .write(&report)
            .with_context(|| format!("writing the report {}", target.path().display()))?;
    }
    Ok(match report.stopped {
        // As a shell reports a job Ctrl-C ended.
        Some("SIGINT") => ExitCode::from(130),
        _ if report.success() => ExitCode::SUCCESS,
        _ => ExitCode::from(lifeboat::exit::FAILED),
    })
}

/// Refuse (exit 2) a `--report` file that cannot be written before any check runs, rather than
/// lose the report of a whole run at its end. A file made only to find out is removed again.
fn writable(path: &Path) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| {
            usage(format!(
                "--report {}: cannot write it: {e}; nothing was run",
                path.display()
            ))
        })?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The variables `${env:…}` reads: the stack's `.env` (when there is one), under the process
/// environment.
fn environment(global: &GlobalArgs) -> anyhow::Result<HashMap<String, String>> {
    let mut env = HashMap::new();
    let path = global
        .env_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(lifeboat::config::DEFAULT_ENV_FILE));
    if let Ok(text) = std::fs::read_to_string(&path) {
        // Config::load read and checked this file already.
        for v in lifeboat::config::parse_dotenv(&path, &text)? {
            env.insert(v.name, v.value);
        }
    }
    for (k, v) in std::env::vars_os() {
        if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
            env.insert(k, v);
        }
    }
    Ok(env)
}

/// The secret values of lifeboat's own configuration, scrubbed too. A password in a URL is
/// replaced wherever a URL is shown whatever its length; the others must be long enough to
/// scrub (exit 2 naming the variable).
fn config_secrets(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for url in [&config.database.url, &config.redis.url]
        .into_iter()
        .flatten()
    {
        if let Ok(u) = url::Url::parse(url.expose()) {
            if let Some(p) = u.password() {
                // As written in the URL (`p%40ss`) and as the server and its errors see it
                // (`p@ss`).
                let decoded = vars::percent_decode(p);
                if decoded != p {
                    out.push(decoded);
                }
                out.push(p.to_owned());
            }
        }
    }
    for (name, secret) in [
        (
            lifeboat::env_vars::S3_SECRET_ACCESS_KEY,
            &config.s3.secret_access_key,
        ),
        (lifeboat::env_vars::SMTP_PASSWORD, &config.smtp.password),
    ] {
        if let Some(s) = secret {
            if vars::too_short(s.expose()) {
                return Err(usage(too_short(name)));
            }
            out.push(s.expose().to_owned());
        }
    }
    Ok(out)
}

/// Why a secret of 1 or 2 characters is refused.
fn too_short(name: &str) -> String {
    format!(
        "the secret {name} is shorter than {} characters: too short to scrub from the output \
         (every `a` would be hidden), so it would be shown; use a longer one",
        vars::MIN_SECRET_CHARS
    )
}

/// Parse a spec's text as `lifeboat-smoke` does (the example in docs/lifeboat-smoke.md is checked with this).
pub fn parse_spec(path: &Path, text: &str) -> Result<Spec, spec::SpecError> {
    Spec::parse(path, text)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn help_says_env_chooses_the_spec_s_environment() {
        let help = super::Cli::command().render_help().to_string();
        let env = help
            .split("--env <NAME>")
            .nth(1)
            .expect("--env is in the help");
        assert!(
            env.trim_start()
                .starts_with("Environment: the spec's [environments.NAME]"),
            "{help}"
        );
        assert!(env.contains("lifeboat.toml's [profile.NAME]"), "{help}");
    }
}
