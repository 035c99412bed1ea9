//! Before the first request: the environment and the checks chosen, the variables resolved, and
//! anything that would fail for a reason of the spec or the configuration rather than of the
//! app refused (exit 2). The phases run in the order a person checks a run before starting it.

use std::collections::{BTreeSet, HashMap};

use lifeboat::config::Config;

use crate::spec::{self, Check, Environment, Kind, Spec};
use crate::vars::{self, Ref};
use crate::{run, too_short, usage, Cli};

/// What [`plan`] hands to the run.
pub(crate) struct Planned {
    pub run: run::Plan,
    pub base_url: Option<String>,
}

/// Choose the environment and the checks, resolve the variables, and refuse (exit 2) anything
/// that would fail for a reason of the spec or the configuration rather than of the app; also
/// the secret values read, for the redactor.
pub(crate) fn plan(
    spec: &Spec,
    config: &Config,
    cli: &Cli,
    env: HashMap<String, String>,
) -> anyhow::Result<(Planned, Vec<String>)> {
    let path = spec.path.display().to_string();
    let environment = environment(spec, config, &path)?;
    let checks = selected(spec, cli, &path)?;
    // In a read-only run, a check that writes is skipped, and so is what depends on it: what
    // only those need (variables, settings, secrets) is not asked for.
    let read_only = environment.is_some_and(|e| e.read_only) && !cli.allow_writes;
    let runs = runnable(&checks, read_only);
    let running: Vec<&Check> = checks
        .iter()
        .filter(|c| runs.contains(c.name.as_str()))
        .collect();
    let mut secrets = Vec::new();
    let (resolved, base_url) = variables(spec, environment, &running, &env, &mut secrets, &path)?;
    secrets_known(&checks, &env, &mut secrets, &path)?;
    for c in running {
        requirements(c, config, environment, base_url.is_some(), &env, &path)?;
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

/// A mistake at a line of the spec (exit 2).
fn at(path: &str, line: usize, m: &str) -> anyhow::Error {
    usage(format!("{path} line {line}: {m}"))
}

/// The environment: --env (or LIFEBOAT_ENV), or the only one the spec has.
fn environment<'a>(
    spec: &'a Spec,
    config: &Config,
    path: &str,
) -> anyhow::Result<Option<&'a Environment>> {
    let names: Vec<&str> = spec.environments.keys().map(String::as_str).collect();
    Ok(match (&config.profile, names.as_slice()) {
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
    })
}

/// The checks: all, or those named or tagged, with what they depend on.
fn selected(spec: &Spec, cli: &Cli, path: &str) -> anyhow::Result<Vec<Check>> {
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
    let checks: Vec<Check> = spec
        .checks
        .iter()
        .filter(|c| wanted.contains(&c.name))
        .cloned()
        .collect();
    if checks.is_empty() {
        return Err(usage(format!("{path} has no checks")));
    }
    Ok(checks)
}

/// The checks that run: in a read-only run not those that write, nor what depends on a check
/// that does not run.
fn runnable(checks: &[Check], read_only: bool) -> BTreeSet<&str> {
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
            return runs;
        }
    }
}

/// Variables: the spec's, under the environment's; only those the `running` checks use must
/// resolve. Also the environment's base-url. `${secret:…}` values read go to `secrets`.
fn variables(
    spec: &Spec,
    environment: Option<&Environment>,
    running: &[&Check],
    env: &HashMap<String, String>,
    secrets: &mut Vec<String>,
    path: &str,
) -> anyhow::Result<(HashMap<String, String>, Option<String>)> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    for c in running {
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
        .map_err(|m| at(path, line, &m))
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
        Some(b) => {
            let value = resolve_env(&b.value, b.line, "base-url")?;
            // Refused here, before anything is sent, rather than by the first request.
            if let Err(why) = url_for(&value, &["http", "https"]) {
                return Err(at(path, b.line, &format!("base-url: {why}")));
            }
            tracing::debug!("base-url: {value}");
            Some(value)
        }
        None => None,
    };
    Ok((resolved, base_url))
}

/// Every `${secret:…}` any check reads is known to the redactor before the first check runs: a
/// secret first read by a late check is then scrubbed from what earlier checks printed.
fn secrets_known(
    checks: &[Check],
    env: &HashMap<String, String>,
    secrets: &mut Vec<String>,
    path: &str,
) -> anyhow::Result<()> {
    for c in checks {
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
                            path,
                            c.line,
                            &format!("check `{}`: {}", c.name, too_short(name)),
                        ));
                    }
                    secrets.push(v.clone());
                }
            }
        }
    }
    Ok(())
}

/// A check's `url` that is written out (no `${…}` or `{{…}}` filled in at run time): absolute
/// with its kind's scheme and a host, or a path for the http kinds.
fn check_url(c: &Check, url: &str) -> Result<(), String> {
    if url.contains("${") || url.contains("{{") {
        return Ok(());
    }
    let schemes: &[&str] = match c.kind {
        Kind::Postgres => &["postgres", "postgresql"],
        Kind::Mysql => &["mysql", "mariadb"],
        Kind::Redis => &["redis", "rediss"],
        Kind::Http | Kind::RateLimit | Kind::Webhook if url.starts_with('/') => return Ok(()),
        Kind::Http | Kind::RateLimit | Kind::Webhook => &["http", "https"],
        Kind::S3 | Kind::Smtp => return Ok(()),
    };
    url_for(url, schemes).map(|_| ())
}

/// `text` as a URL with one of `schemes` and a host; why not, without quoting it (it may hold a
/// password).
fn url_for(text: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let parsed =
        url::Url::parse(text).map_err(|e| format!("not a URL ({e}); expected {expected}…"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "the scheme is {}:, expected {expected}…",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("no host; expected {expected}HOST…"));
    }
    Ok(parsed)
}

/// A check that runs: what it reads from the environment is set, and what it needs from the
/// configuration (or the environment's base-url) is there.
fn requirements(
    c: &Check,
    config: &Config,
    environment: Option<&Environment>,
    has_base_url: bool,
    env: &HashMap<String, String>,
    path: &str,
) -> anyhow::Result<()> {
    for r in &c.env_refs {
        if let Ref::Env {
            name,
            default: None,
            ..
        } = r
        {
            if !env.contains_key(name) {
                return Err(at(
                    path,
                    c.line,
                    &format!(
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
    if let Some(url) = c.spec.url.as_ref().map(|u| u.get_ref().as_str()) {
        check_url(c, url).map_err(|why| at(path, c.line, &format!("check `{}`: {why}", c.name)))?;
    }
    match c.kind {
        Kind::Http | Kind::RateLimit | Kind::Webhook if relative && !has_base_url => {
            return Err(at(
                path,
                c.line,
                &format!(
                    "check `{}` has a relative url and {} no base-url",
                    c.name,
                    environment.map_or_else(
                        || "the spec has no environment, so".to_owned(),
                        |e| format!("environment `{}` has", e.name)
                    )
                ),
            ));
        }
        Kind::Postgres | Kind::Mysql if c.spec.url.is_none() => {
            config.require_database_url(&why)?;
        }
        Kind::Redis if c.spec.url.is_none() => {
            config.require_redis_url(&why)?;
        }
        Kind::S3 => {
            config.require_s3(&why)?;
        }
        Kind::Smtp => smtp_settings(c, config, &why, path)?,
        _ => {}
    }
    Ok(())
}

/// An smtp check needs SMTP_HOST, and a sender and a recipient from the check or the settings.
fn smtp_settings(c: &Check, config: &Config, why: &str, path: &str) -> anyhow::Result<()> {
    if config.smtp.host.is_none() {
        return Err(usage(format!(
            "SMTP_HOST is not set: {why} sends through it"
        )));
    }
    if c.spec.from.is_none() && config.smtp.from.is_none() {
        return Err(at(
            path,
            c.line,
            &format!("check `{}` needs `from`, or SMTP_FROM set", c.name),
        ));
    }
    if c.spec.to.is_none() && config.smtp.to.is_empty() {
        return Err(at(
            path,
            c.line,
            &format!("check `{}` needs `to`, or LIFEBOAT_MAIL_TO set", c.name),
        ));
    }
    Ok(())
}
