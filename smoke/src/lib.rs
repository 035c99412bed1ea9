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

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use lifeboat::cli::{GlobalArgs, EXIT_CODES_HELP};
use lifeboat::config::Config;
use lifeboat::exit::UsageError;

pub mod checks;
pub mod report;
pub mod run;
pub mod spec;
pub mod vars;

use crate::report::{Printer, ReportTarget};
use crate::spec::{Kind, Spec};
use crate::vars::Ref;

/// Run the checks of a smoke.toml against an environment.
#[derive(Debug, Parser)]
#[command(name = "lifeboat-smoke", version, after_help = EXIT_CODES_HELP)]
// `--env` is shared by every binary as lifeboat.toml's profile; here it first chooses the spec's
// environment, which is what a person running smoke tests means by it.
#[command(mut_arg("profile", |a| a.help(ENV_HELP)))]
pub struct Cli {
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

/// `--env` as lifeboat-smoke reads it.
const ENV_HELP: &str = "Environment: the spec's [environments.NAME] to run against (needed when \
     it has several; e.g. staging, production); it also applies lifeboat.toml's [profile.NAME]";

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(message))
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
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
        print!("{out}");
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

/// What [`plan`] hands to the run.
struct Planned {
    run: run::Plan,
    base_url: Option<String>,
}

/// Choose the environment and the checks, resolve the variables, and refuse (exit 2) anything
/// that would fail for a reason of the spec or the configuration rather than of the app.
// One pass in the order a person checks a run before starting it; split, it reads worse.
#[allow(clippy::too_many_lines)]
fn plan(
    spec: &Spec,
    config: &Config,
    cli: &Cli,
    env: HashMap<String, String>,
) -> anyhow::Result<(Planned, Vec<String>)> {
    let path = spec.path.display().to_string();
    let at = |line: usize, m: String| usage(format!("{path} line {line}: {m}"));

    // The environment: --env (or LIFEBOAT_ENV), or the only one the spec has.
    let names: Vec<&str> = spec.environments.keys().map(String::as_str).collect();
    let environment = match (&config.profile, names.as_slice()) {
        (Some(p), _) if spec.environments.contains_key(p) => Some(&spec.environments[p]),
        (Some(p), []) => return Err(usage(format!("--env {p}: {path} defines no environments"))),
        (Some(p), _) => {
            return Err(usage(format!(
                "--env {p}: {path} defines {}",
                names.join(", ")
            )))
        }
        (None, []) => None,
        (None, [only]) => Some(&spec.environments[*only]),
        (None, _) => {
            return Err(usage(format!(
                "--env (or LIFEBOAT_ENV) is required: {path} defines {}",
                names.join(", ")
            )))
        }
    };

    // The checks: all, or those named or tagged, with what they depend on.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for name in &cli.checks {
        if spec.check(name).is_none() {
            return Err(usage(format!(
                "--check {name}: {path} has no such check (it has {})",
                spec.checks
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        wanted.insert(name.clone());
    }
    for tag in &cli.tags {
        let tagged: Vec<&str> = spec
            .checks
            .iter()
            .filter(|c| c.tags.contains(tag))
            .map(|c| c.name.as_str())
            .collect();
        if tagged.is_empty() {
            return Err(usage(format!(
                "--tag {tag}: no check in {path} has this tag"
            )));
        }
        wanted.extend(tagged.into_iter().map(str::to_owned));
    }
    if cli.checks.is_empty() && cli.tags.is_empty() {
        wanted.extend(spec.checks.iter().map(|c| c.name.clone()));
    }
    let graph: HashMap<String, Vec<String>> = spec
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.depends_on.clone()))
        .collect();
    for name in wanted.clone() {
        wanted.extend(spec::ancestors(&name, &graph));
    }
    let checks: Vec<spec::Check> = spec
        .checks
        .iter()
        .filter(|c| wanted.contains(&c.name))
        .cloned()
        .collect();
    if checks.is_empty() {
        return Err(usage(format!("{path} has no checks")));
    }

    // In a read-only run, a check that writes is skipped, and so is what depends on it: what
    // only those need (variables, settings, secrets) is not asked for.
    let read_only = environment.is_some_and(|e| e.read_only) && !cli.allow_writes;
    let mut runs: BTreeSet<&str> = checks
        .iter()
        .filter(|c| !read_only || c.read_only)
        .map(|c| c.name.as_str())
        .collect();
    loop {
        let before = runs.len();
        let skipped: Vec<&str> = checks
            .iter()
            .filter(|c| runs.contains(c.name.as_str()))
            .filter(|c| c.depends_on.iter().any(|d| !runs.contains(d.as_str())))
            .map(|c| c.name.as_str())
            .collect();
        for name in skipped {
            runs.remove(name);
        }
        if runs.len() == before {
            break;
        }
    }
    let running = || checks.iter().filter(|c| runs.contains(c.name.as_str()));

    // Variables: the spec's, under the environment's; only those the checks use must resolve.
    let mut secrets = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for c in running() {
        let mut probe = c.spec.clone();
        let _ = probe.for_each_string(&mut |s| {
            for r in vars::references(s)? {
                if let Ref::Plain(n) = r {
                    used.insert(n);
                }
            }
            Ok(())
        });
    }
    let mut resolve_env = |text: &str, line: usize, what: &str| -> anyhow::Result<String> {
        vars::interpolate(text, &mut |r| match r {
            Ref::Env {
                name,
                default,
                secret,
            } => {
                let v = env
                    .get(name)
                    .cloned()
                    .or_else(|| default.clone())
                    .ok_or_else(|| {
                        format!("{what} reads {name}, which is not set in the environment or .env")
                    })?;
                if *secret {
                    if vars::too_short(&v) {
                        return Err(format!("{what}: {}", too_short(name)));
                    }
                    secrets.push(v.clone());
                }
                Ok(v)
            }
            Ref::Plain(n) => Err(format!(
                "{what} uses `${{{n}}}`, which is not allowed there"
            )),
        })
        .map_err(|m| at(line, m))
    };
    let mut resolved = HashMap::new();
    let mut layered: Vec<(&String, &spec::Located)> = spec.vars.iter().collect();
    if let Some(e) = environment {
        layered.extend(e.vars.iter());
    }
    for (name, v) in layered {
        if used.contains(name) {
            let value = resolve_env(&v.value, v.line, &format!("variable `{name}`"))?;
            resolved.insert(name.clone(), value);
        }
    }
    let base_url = match environment.and_then(|e| e.base_url.as_ref()) {
        Some(b) => Some(resolve_env(&b.value, b.line, "base-url")?),
        None => None,
    };

    // Every `${secret:…}` any check reads is known to the redactor before the first check runs:
    // a secret first read by a late check is then scrubbed from what earlier checks printed.
    for c in &checks {
        for r in &c.env_refs {
            if let Ref::Env {
                name,
                default,
                secret: true,
            } = r
            {
                if let Some(v) = env.get(name).or(default.as_ref()) {
                    if vars::too_short(v) {
                        return Err(at(
                            c.line,
                            format!("check `{}`: {}", c.name, too_short(name)),
                        ));
                    }
                    secrets.push(v.clone());
                }
            }
        }
    }

    // Each check: what it reads from the environment, and what it needs from the configuration.
    for c in running() {
        for r in &c.env_refs {
            if let Ref::Env {
                name,
                default: None,
                ..
            } = r
            {
                if !env.contains_key(name) {
                    return Err(at(
                        c.line,
                        format!(
                            "check `{}` reads {name}, which is not set in the environment or .env",
                            c.name
                        ),
                    ));
                }
            }
        }
        let why = format!(
            "the {} check `{}` ({path} line {})",
            c.kind.name(),
            c.name,
            c.line
        );
        let relative = c
            .spec
            .url
            .as_ref()
            .is_some_and(|u| !u.get_ref().contains("://") && !u.get_ref().starts_with("${"));
        match c.kind {
            Kind::Http | Kind::RateLimit | Kind::Webhook if relative && base_url.is_none() => {
                return Err(at(
                    c.line,
                    format!(
                        "check `{}` has a relative url and {} no base-url",
                        c.name,
                        environment.map_or_else(
                            || "the spec has no environment, so".to_owned(),
                            |e| format!("environment `{}` has", e.name)
                        )
                    ),
                ));
            }
            Kind::Postgres if c.spec.url.is_none() => {
                config.require_database_url(&why)?;
            }
            Kind::Redis if c.spec.url.is_none() => {
                config.require_redis_url(&why)?;
            }
            Kind::S3 => {
                config.require_s3(&why)?;
            }
            Kind::Smtp => {
                if config.smtp.host.is_none() {
                    return Err(usage(format!(
                        "SMTP_HOST is not set: {why} sends through it"
                    )));
                }
                if c.spec.from.is_none() && config.smtp.from.is_none() {
                    return Err(at(
                        c.line,
                        format!("check `{}` needs `from`, or SMTP_FROM set", c.name),
                    ));
                }
                if c.spec.to.is_none() && config.smtp.to.is_empty() {
                    return Err(at(
                        c.line,
                        format!("check `{}` needs `to`, or LIFEBOAT_MAIL_TO set", c.name),
                    ));
                }
            }
            _ => {}
        }
    }

    Ok((
        Planned {
            run: run::Plan {
                checks,
                environment: environment.map(|e| e.name.clone()),
                read_only,
                vars: resolved,
                env,
                spec: spec.path.clone(),
            },
            base_url,
        },
        secrets,
    ))
}

/// Parse a spec's text as `lifeboat-smoke` does (README's example is checked with this).
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
