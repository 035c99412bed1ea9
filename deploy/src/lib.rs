//! lifeboat-deploy: health-gated releases with automatic, data-aware rollback.
//!
//! Replaces `deploy_production.sh` (seed 002): the deploy lock, the plan, a backup through
//! lifeboat-backup, the image (built from a clean export of a git revision, or a tag that
//! exists), the migrations in a one-off container, the switch of each app service and then the
//! workers (see [`switch`]), lifeboat-smoke, and on any failure after the migrations the switch
//! back to the previous release (and, where configured, lifeboat-restore of the pre-deploy
//! backup). lifeboat-rollback goes through the same [`stack::Stack::switch_all`].

pub mod history;
pub mod notify;
pub mod release;
pub mod stack;
pub mod status;
pub mod swarm;
pub mod switch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lifeboat::cli::{after_long_help, after_short_help, exit_codes, GlobalArgs};
use tracing::{info, warn};

use crate::history::{who, Journal};
use crate::release::Release;
use crate::stack::{Outcome, Stack};

/// `--help`'s exit codes for lifeboat-deploy.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  deployed and healthy
  1  failed; the message says which release serves (nothing was switched, or
     putting it back failed too)
  2  the request was wrong (flag, config key, variable, VERSION); nothing
     was done
  3  the deploy failed after switching began, and the previous release serves
     again";

/// The one setting lifeboat-deploy and lifeboat-rollback cannot guess, for their `--help`.
pub const REQUIRED_HELP: &str = "\
Required: the compose services that serve the app, in lifeboat.toml's
deploy.services or LIFEBOAT_DEPLOY_SERVICES=app (and workers, if any, in
LIFEBOAT_DEPLOY_WORKERS=worker).";

const STEPS: &str = "\
Steps, each logged (JSON with --log-format json):
  1. take the deploy lock, finish or undo a deploy that died (its journal),
     print the plan (--dry-run stops here)
  2. back up the database through lifeboat-backup (--no-backup skips it, with
     a warning)
  3. the image: VERSION built from a clean export of that tag or commit of
     deploy.git-repo, or the existing image <deploy.image>:VERSION
  4. the migrations (deploy.migrate) in a one-off container of the new image,
     with the app's environment; a failure stops the deploy, nothing switched
  5. each app service (deploy.services), then each worker (deploy.workers): a
     new container with the same configuration on the new image, healthy
     within deploy.health-timeout, then the old one removed
  6. lifeboat-smoke (deploy.smoke-spec, or ./smoke.toml) for the environment
     (--env)
  7. a failure in 4 to 6: every service back on the previous release, and
     with deploy.restore-on-failure the pre-deploy backup restored; exit 3
Each deploy adds a line to the history (deploy.dir/history.jsonl).";

const EXAMPLES: &str = "\
Examples:
  lifeboat-deploy v2 --dry-run    the plan, nothing done
  lifeboat-deploy v2              deploy the tag or image v2
  lifeboat-deploy status          what runs now, healthy or not
  lifeboat-deploy history         every deploy and rollback";

/// Deploy VERSION of the app to the compose stack, rolling back by itself if it is not healthy.
///
/// The deploy lock, the plan, a backup, the image, the migrations, each service switched
/// health-gated, the smoke tests; on a failure after the migrations every service goes back
/// to the previous release (exit 3). The steps are below.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat-deploy",
    version = lifeboat::cli::complete::version(env!("LIFEBOAT_COMMIT")),
    after_help = format!("{}\n\n{REQUIRED_HELP}", after_short_help("lifeboat-deploy v2 --dry-run    (the plan, nothing done)")),
    after_long_help = after_long_help(&[REQUIRED_HELP, STEPS, EXAMPLES, EXIT_CODES_HELP])
)]
pub struct Cli {
    /// The version to deploy: a git tag or commit of deploy.git-repo, or the tag of an existing image
    #[arg(value_name = "VERSION")]
    pub release: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the plan and stop
    #[arg(long)]
    pub dry_run: bool,

    #[arg(long, help = format!("No backup before deploying (a warning says so) [env: {}=false]", lifeboat::config::settings::LIFEBOAT_DEPLOY_BACKUP.var))]
    pub no_backup: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What runs now: each service's containers, release, image and health
    #[command(after_help = exit_codes("every container is healthy and they run one release", "one is unhealthy, or they run different releases"))]
    Status,
    /// Past deploys and rollbacks, oldest first, tab-separated: finished, action, version,
    /// outcome, image, backup, by
    #[command(after_help = exit_codes("printed (no history yet is not an error)", "the history could not be read"))]
    History,
    /// Print the completion script for a shell: bash, zsh or fish
    #[command(after_help = lifeboat::cli::complete::COMPLETIONS_HELP)]
    Completions(lifeboat::cli::complete::CompletionsArgs),
}

/// Run the command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = || cli.global.load_config(Vec::new());
    match (&cli.command, &cli.release) {
        (Some(Command::Completions(args)), _) => lifeboat::cli::complete::print::<Cli>(args),
        (Some(Command::Status), _) => status::status(&Stack::open(&cli.global, config()?, false)?),
        (Some(Command::History), _) => status::history(&config()?),
        (None, Some(version)) => {
            let stack = Stack::open(&cli.global, config()?, true)?;
            deploy(&stack, version, cli)
        }
        (None, None) => {
            // A broken configuration first: it is what the next run would meet.
            config()?;
            Err(lifeboat::exit::UsageError::new(
                "lifeboat-deploy: say which VERSION to deploy (or `status`, `history`); see --help",
            )
            .into())
        }
    }
}

/// The deploy, steps 1 to 8.
fn deploy(stack: &Stack, version: &str, cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = &stack.config;
    // A dry run changes nothing: an interrupted run is only said, not undone.
    let interrupted = if cli.dry_run {
        stack.history.read_journal()?
    } else {
        stack.recover()?;
        None
    };
    // After an interrupted run, what serves is what the next run brings back.
    let current = match &interrupted {
        Some(j) => j.from.clone(),
        None => stack.live()?.0,
    };
    stack.check_services()?;
    let proxies = stack.proxies()?;
    stack.check_proxies(&proxies, &current.version)?;
    let repo = repository(config, &current)?;
    let source = stack.block_on(release::locate(&stack.docker, config, &repo, version))?;
    let smoke_spec = stack.smoke_spec()?;
    let backup_wanted = config.deploy.backup && !cli.no_backup;

    let plan = plan(
        stack,
        version,
        &current,
        &source,
        smoke_spec.as_deref(),
        backup_wanted,
        &proxies,
    );
    for line in &plan {
        info!(step = "plan", "{line}");
    }
    if cli.dry_run {
        print_dry_run(interrupted.as_ref(), &plan);
        return Ok(ExitCode::SUCCESS);
    }

    let started = chrono::Utc::now();
    let backup = pre_deploy_backup(stack, backup_wanted)?;
    let new = stack
        .block_on(release::prepare(
            &stack.docker,
            config,
            &repo,
            version,
            &source,
        ))
        .with_context(|| {
            format!(
                "getting the image of {version}; nothing was switched, {} serves",
                current.version
            )
        })?;
    let new = publish(stack, new, &current)?;
    info!(
        step = "image",
        "{version} is {} ({})",
        new.image,
        new.short_id()
    );

    stack
        .stop
        .check()
        .with_context(|| format!("nothing was switched, {} serves", current.version))?;
    let mut outcome = Outcome {
        action: "deploy",
        to: &new,
        from: Some(&current),
        backup: backup.clone(),
        migrated: false,
        restored: false,
        started,
    };
    let mut journal = Journal {
        action: "deploy".into(),
        to: new.clone(),
        from: current.clone(),
        step: "migrating".into(),
        backup,
        migrated: false,
        started,
        pid: std::process::id(),
        by: who(),
    };
    stack.write_journal(&journal)?;

    // 4. migrations: a failure leaves everything on the previous release.
    if !config.deploy.migrate.is_empty() {
        outcome.migrated = true;
        journal.migrated = true;
        stack.write_journal(&journal)?;
        if let Err(e) = stack.block_on(migrate(stack, &new)) {
            let e = e.context(format!(
                "the migrations of {version} failed; nothing was switched, {} serves",
                current.version
            ));
            return fail_before_switch(stack, &mut outcome, e);
        }
    }

    switch_and_smoke(stack, &mut outcome, &mut journal, smoke_spec.as_deref())
}

/// The image repository of the releases. Releases are found and built under the repository's
/// own name; deploy.registry's copy is only what Swarm services run.
fn repository(config: &lifeboat::config::Config, current: &Release) -> anyhow::Result<String> {
    let repo = release::repository(config, current)?;
    Ok(match &config.deploy.registry {
        Some(r) => repo
            .strip_prefix(&format!("{}/", r.trim_end_matches('/')))
            .map_or_else(|| repo.clone(), str::to_owned),
        None => repo,
    })
}

/// On Swarm with deploy.registry: the release pushed where every node can pull it.
fn publish(stack: &Stack, new: Release, current: &Release) -> anyhow::Result<Release> {
    match (&stack.config.deploy.registry, stack.scope.is_swarm()) {
        (Some(registry), true) => stack
            .block_on(swarm::publish(&stack.docker, registry, &new))
            .with_context(|| format!("nothing was switched, {} serves", current.version)),
        _ => Ok(new),
    }
}

/// Steps 5 to 8: the switch and the smoke tests (a failure goes back to the previous
/// release), then the history.
fn switch_and_smoke(
    stack: &Stack,
    outcome: &mut Outcome,
    journal: &mut Journal,
    smoke_spec: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let new = outcome.to;
    let current = outcome.from.unwrap_or(new);
    let version = &new.version;
    let started = outcome.started;
    journal.step = "switching".into();
    stack.write_journal(journal)?;
    let switched = stack
        .stop
        .check()
        .and_then(|()| stack.switch_all(new, true))
        .and_then(|()| match smoke_spec {
            Some(spec) => {
                journal.step = "smoke".into();
                stack.write_journal(journal)?;
                stack.block_on(pause_at(&stack.stop, "smoke"))?;
                stack.stop.check()?;
                stack.smoke(spec)
            }
            None => Ok(()),
        });
    if let Err(e) = switched {
        journal.step = "rolling-back".into();
        stack.write_journal(journal)?;
        return roll_back(stack, outcome, current, e);
    }

    let elapsed = (chrono::Utc::now() - started)
        .to_std()
        .unwrap_or(Duration::ZERO);
    info!(
        step = "done",
        "deployed {version} ({}) in {:.1} s",
        new.short_id(),
        elapsed.as_secs_f64()
    );
    let subject = format!("lifeboat-deploy: {version} deployed to {}", stack.project());
    outcome.finish(stack, "deployed", None, &subject, false)?;
    // After the history has this release: it is the newest of the last `keep-releases`.
    stack.prune_images();
    lifeboat::outln!("deployed\t{version}\t{}", new.image_id);
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`'s output: what an interrupted run would be brought back to, then the plan.
fn print_dry_run(interrupted: Option<&Journal>, plan: &[String]) {
    if let Some(j) = interrupted {
        lifeboat::outln!(
            "first: the interrupted {} of {} (started {} by {}) would be undone, back to {}",
            j.action,
            j.to.version,
            j.started.format("%Y-%m-%d %H:%M:%S UTC"),
            j.by,
            j.from.version
        );
    }
    for line in plan {
        lifeboat::outln!("{line}");
    }
}

/// Step 2: the backup through lifeboat-backup, unless skipped (with a warning).
fn pre_deploy_backup(stack: &Stack, wanted: bool) -> anyhow::Result<Option<String>> {
    let backup = if wanted {
        info!(step = "backup", "backing up the database before deploying");
        let done = stack
            .block_on(lifeboat_backup::take(&stack.config))
            .context("the pre-deploy backup failed; nothing was deployed")?;
        Some(done.manifest.file)
    } else {
        warn!(step = "backup", "no backup before this deploy (--no-backup or deploy.backup = false): a failed migration cannot be undone by lifeboat");
        None
    };
    stack.stop.check().context("nothing was deployed")?;
    Ok(backup)
}

/// What a deploy will do, a line per step.
fn plan(
    stack: &Stack,
    version: &str,
    current: &Release,
    source: &release::Source,
    smoke_spec: Option<&std::path::Path>,
    backup_wanted: bool,
    proxies: &[lifeboat::proxy::Proxy],
) -> Vec<String> {
    let config = &stack.config;
    let mut lines = vec![
        format!("deploy {version} to {}", stack.scope),
        format!(
            "  live now:   {} ({}, image {})",
            current.version,
            current.image,
            current.short_id()
        ),
        format!("  image:      {source}"),
        format!(
            "  backup:     {}",
            if backup_wanted {
                format!("yes, into {}", config.backup.dir.display())
            } else {
                "NO (--no-backup or deploy.backup = false)".into()
            }
        ),
        format!(
            "  migrations: {}",
            if config.deploy.migrate.is_empty() {
                "none (deploy.migrate)".into()
            } else {
                format!(
                    "`{}` in a one-off {} of the new image",
                    config.deploy.migrate.join(" "),
                    if stack.scope.is_swarm() {
                        "Swarm job (a replicated-job service)"
                    } else {
                        "container"
                    }
                )
            }
        ),
        format!(
            "  switch:     {} (health within {} s{}), then workers: {}",
            config.deploy.services.join(", "),
            config.deploy.health_timeout,
            config
                .deploy
                .health_url
                .as_deref()
                .map(|u| format!(", and {}", lifeboat::secret::redact_url(u)))
                .unwrap_or_default(),
            if config.deploy.workers.is_empty() {
                "none".into()
            } else {
                config.deploy.workers.join(", ")
            }
        ),
    ];
    lines.extend(proxy_lines(stack, proxies));
    lines.extend([
        format!(
            "  smoke:      {}",
            smoke_spec.map_or_else(
                || "none (no smoke.toml, deploy.smoke-spec)".into(),
                |p| p.display().to_string()
            )
        ),
        format!(
            "  on failure: back to {}{}",
            current.version,
            if config.deploy.restore_on_failure {
                ", and the pre-deploy backup restored if migrations ran"
            } else {
                ""
            }
        ),
    ]);
    lines
}

/// The plan's lines on the app services that publish their own port: switched stop first.
fn stop_first_lines(stack: &Stack) -> Vec<String> {
    let mut lines = Vec::new();
    for service in &stack.config.deploy.services {
        let first = stack
            .block_on(
                stack
                    .docker
                    .compose_containers(stack.project(), Some(service), false),
            )
            .ok()
            .and_then(|c| c.into_iter().next());
        let Some(info) = first.and_then(|c| stack.block_on(stack.docker.inspect(&c.id)).ok())
        else {
            continue;
        };
        if switch::needs_stop_first(&info) {
            lines.push(format!(
                "  stop first: {service} publishes a host port (or has a fixed address): its connections are refused from its stop until the new container answers, about the app's start-up time; a proxy in front of an unpublished app avoids it (docs/reverse-proxy.md)"
            ));
        }
    }
    lines
}

/// The plan's lines on the reverse proxies: each, and what the switch does to it; or how a
/// service that publishes its own port is switched.
fn proxy_lines(stack: &Stack, proxies: &[lifeboat::proxy::Proxy]) -> Vec<String> {
    if stack.scope.is_swarm() {
        return vec![
            "  swarm:      each service updated in turn through the API: start-first, one task at a time, each new task healthy before its old one stops; on any failure every service goes back to its previous spec".into(),
            "  proxies:    nothing to steer: a proxy on the stack's network reaches the services through Swarm's DNS".into(),
        ];
    }
    let mut lines = stop_first_lines(stack);
    if proxies.is_empty() {
        let how = if stack.config.deploy.proxies.iter().any(|p| p == "none") {
            "none (deploy.proxies = none)"
        } else {
            "none found (deploy.proxies; a service that publishes its own port is switched stop first: its connections are refused while the new container starts)"
        };
        lines.push(format!("  proxies:    {how}"));
    }
    for p in proxies {
        lines.push(format!(
            "  proxy:      {} ({}{}): {}; drain at most {} s",
            p.name,
            p.kind.name(),
            p.service
                .as_deref()
                .map(|s| format!(", service {s}"))
                .unwrap_or_default(),
            p.kind.action(),
            stack.config.deploy.drain
        ));
    }
    lines
}

/// The migrations failed: nothing was switched. Restore the backup when configured (a
/// migration may have half-applied), record, exit 1.
fn fail_before_switch(
    stack: &Stack,
    outcome: &mut Outcome,
    e: anyhow::Error,
) -> anyhow::Result<ExitCode> {
    let e = restore_if_configured(stack, outcome, e);
    let subject = format!(
        "lifeboat-deploy: {} FAILED on {}",
        outcome.to.version,
        stack.project()
    );
    outcome.finish(stack, "failed", Some(&e), &subject, false)?;
    Err(e)
}

/// With deploy.restore-on-failure, migrations that ran and a backup: restore it.
fn restore_if_configured(stack: &Stack, outcome: &mut Outcome, e: anyhow::Error) -> anyhow::Error {
    if !(outcome.migrated && stack.config.deploy.restore_on_failure) {
        if outcome.migrated {
            warn!("the migrations ran; the data stays as they left it (deploy.restore-on-failure is off){}", outcome.backup.as_deref().map(|b| format!("; the pre-deploy backup is {b}")).unwrap_or_default());
        }
        return e;
    }
    let Some(backup) = outcome.backup.clone() else {
        warn!("the migrations ran, but there is no pre-deploy backup to restore");
        return e;
    };
    match stack.restore(&backup) {
        Ok(()) => {
            outcome.restored = true;
            info!(step = "restored", "the pre-deploy backup {backup} was restored: the data is as it was before the deploy");
            e.context(format!("the pre-deploy backup {backup} was restored"))
        }
        Err(r) => e.context(format!(
            "restoring the pre-deploy backup {backup} failed too: {r:#}"
        )),
    }
}

/// Back to `previous` after a failed switch or smoke test: exit 3 when it serves again.
fn roll_back(
    stack: &Stack,
    outcome: &mut Outcome,
    previous: &Release,
    e: anyhow::Error,
) -> anyhow::Result<ExitCode> {
    tracing::error!(step = "failed", "{e:#}");
    warn!(
        step = "rolling-back",
        "rolling back to {}", previous.version
    );
    // The code back, then the data when configured, then "serves" checked where users are.
    let (e, back) = match stack.switch_all(previous, false) {
        Ok(()) => {
            let e = restore_if_configured(stack, outcome, e);
            (e, stack.check_public(previous))
        }
        Err(r) => (e, Err(r)),
    };
    match back {
        Ok(()) => {
            tracing::error!(
                step = "rolled-back",
                "the deploy of {} failed; {} serves again",
                outcome.to.version,
                previous.version
            );
            let subject = format!(
                "lifeboat-deploy: {} FAILED on {}, rolled back to {}",
                outcome.to.version,
                stack.project(),
                previous.version
            );
            outcome.finish(stack, "rolled-back", Some(&e), &subject, false)?;
            Ok(ExitCode::from(lifeboat::exit::ROLLED_BACK))
        }
        Err(r) => {
            let e = e.context(format!("rolling back to {} failed too: {r:#}; the journal {} is kept, run lifeboat-rollback {}", previous.version, stack.history.journal_path().display(), previous.version));
            let subject = format!(
                "lifeboat-deploy: {} FAILED on {}, and the rollback too",
                outcome.to.version,
                stack.project()
            );
            outcome.finish(stack, "failed", Some(&e), &subject, true)?;
            Err(e)
        }
    }
}

/// The migration command in a one-off container of the new image, configured as the first app
/// service's container; removed afterwards, whatever happened.
/// A test hook: the step (`migrating`, `switching`, `smoke`) at which a deploy stops and waits
/// for a signal, so that tests can interrupt each step for sure.
pub const PAUSE_VAR: &str = "LBTEST_DEPLOY_PAUSE_AT";

/// Wait at `point` if [`PAUSE_VAR`] names it, until a signal comes (then say it).
pub async fn pause_at(stop: &lifeboat::signal::Stop, point: &str) -> anyhow::Result<()> {
    tokio::select! {
        () = lifeboat::signal::pause_at(PAUSE_VAR, point) => Ok(()),
        _ = stop.wait() => stop.check(),
    }
}

async fn migrate(stack: &Stack, release: &Release) -> anyhow::Result<()> {
    let config = &stack.config;
    let command = &config.deploy.migrate;
    if stack.scope.is_swarm() {
        return swarm::migrate(
            &stack.docker,
            &stack.scope,
            &config.deploy.services[0],
            release,
            command,
            Duration::from_secs(u64::from(config.deploy.migrate_timeout)),
            &stack.stop,
        )
        .await;
    }
    let (_, like) = stack.live_async().await?;
    let docker = &stack.docker;
    let like_image = docker
        .image(like.image.as_deref().unwrap_or_default())
        .await?
        .unwrap_or_default();
    let (body, extra) = switch::oneoff_from(&like, &like_image, release, command);
    let name = format!(
        "{}_lifeboat_migrate_{}",
        stack.project(),
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    info!(
        step = "migrating",
        "running `{}` in {name} ({})",
        command.join(" "),
        release.version
    );
    let id = docker.create(Some(&name), body).await?;
    let result = async {
        for (network, endpoint) in extra {
            docker.connect_network(&network, &id, endpoint).await?;
        }
        pause_at(&stack.stop, "migrating").await?;
        docker.start(&id).await?;
        let deadline = Duration::from_secs(u64::from(config.deploy.migrate_timeout));
        let waited = tokio::select! {
            w = docker.wait_exit(&id, deadline) => w?,
            _ = stack.stop.wait() => {
                stack.stop.check()?;
                None
            }
        };
        let tail = docker.logs_tail(&id, 20).await.unwrap_or_default();
        migration_outcome(waited, &tail, command, deadline)
    }
    .await;
    let _ = docker.remove(&id).await;
    result
}

/// How a migration ended (its exit code, `None`: it ran out of time), judged with its last
/// lines of output: said on success, in the error otherwise.
pub fn migration_outcome(
    ended: Option<i64>,
    tail: &str,
    command: &[String],
    deadline: Duration,
) -> anyhow::Result<()> {
    let tail = lifeboat::secret::redact_url(tail.trim());
    match ended {
        Some(0) => {
            for line in tail.lines() {
                info!(step = "migrating", "migrate: {line}");
            }
            Ok(())
        }
        Some(code) => anyhow::bail!("`{}` exited with code {code}:\n{tail}", command.join(" ")),
        None => anyhow::bail!(
            "`{}` did not finish within {} s (deploy.migrate-timeout)",
            command.join(" "),
            deadline.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
