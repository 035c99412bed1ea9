//! The stack being deployed: the Docker engine, the compose project, its app services and
//! workers, the history, the lock, and a runtime to drive them.
//!
//! lifeboat-deploy and lifeboat-rollback both open one, and both go through [`Stack::switch_all`]:
//! a rollback is a switch to an older release, by the same path as a deploy.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::ServiceSpec;

use anyhow::{bail, Context};
use lifeboat::cli::GlobalArgs;
use lifeboat::config::Config;
use lifeboat::docker::{Docker, Scope};
use lifeboat::exit::UsageError;
use lifeboat::lock::JobLock;
use lifeboat::proxy::{self, Proxy, ProxyError};
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::history::{who, Entry, History, Journal};
use crate::release::{self, Release};
use crate::switch::{self, Switch};
use lifeboat::signal::Stop;

/// The smoke spec's check that says users reach the app, when deploy.health-url is not set.
const PUBLIC_CHECK: &str = "health";

pub struct Stack {
    pub config: Config,
    pub global: GlobalArgs,
    pub rt: Runtime,
    pub docker: Docker,
    /// The compose project or Swarm stack deployed.
    pub scope: Scope,
    /// On Swarm: each service's spec before this run changed it, to put every one back.
    pub before: RefCell<Vec<(String, ServiceSpec)>>,
    pub history: History,
    pub stop: Stop,
    _lock: Option<JobLock>,
}

impl Stack {
    /// Load the configuration and connect. `lock`: take the deploy lock (deploy and rollback;
    /// `status` and `history` only read).
    pub fn open(global: &GlobalArgs, config: Config, lock: bool) -> anyhow::Result<Self> {
        if config.deploy.services.is_empty() {
            bail!(UsageError::new(
                "say which compose services serve the app: deploy.services in lifeboat.toml, or LIFEBOAT_DEPLOY_SERVICES (e.g. `app`; workers in LIFEBOAT_DEPLOY_WORKERS)"
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let docker = rt.block_on(Docker::connect(config.docker_host.as_deref()))?;
        let scope = rt.block_on(lifeboat::swarm::detect(&docker, &config))?;
        let stop = if lock {
            rt.block_on(async { Stop::install("deploy", "one known release serving") })?
        } else {
            Stop::never()
        };
        let lock = if lock {
            let taken = JobLock::acquire(
                &config.lock_dir,
                &format!("deploy-{}", config.compose.project),
            )?;
            if let Some(dead) = taken.stale() {
                warn!("the deploy lock was left by {dead}, which ended without releasing it (killed, or the machine stopped); taking it over");
            }
            Some(taken)
        } else {
            None
        };
        Ok(Self {
            history: History::new(&config.deploy.dir),
            config,
            global: global.clone(),
            rt,
            docker,
            scope,
            before: RefCell::new(Vec::new()),
            stop,
            _lock: lock,
        })
    }

    /// The compose project's or the Swarm stack's name.
    pub fn project(&self) -> &str {
        &self.scope.name
    }

    /// The app services, then the workers.
    pub fn services(&self) -> Vec<String> {
        let d = &self.config.deploy;
        d.services.iter().chain(&d.workers).cloned().collect()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The release the first app service runs now, from its container.
    pub fn live(&self) -> anyhow::Result<(Release, bollard::models::ContainerInspectResponse)> {
        self.block_on(self.live_async())
    }

    pub async fn live_async(
        &self,
    ) -> anyhow::Result<(Release, bollard::models::ContainerInspectResponse)> {
        let service = &self.config.deploy.services[0];
        if self.scope.is_swarm() {
            let release = crate::swarm::live(&self.docker, &self.scope, service).await?;
            return Ok((
                release,
                bollard::models::ContainerInspectResponse::default(),
            ));
        }
        {
            let found = self
                .docker
                .compose_containers(self.project(), Some(service), false)
                .await?;
            let Some(c) = found
                .iter()
                .find(|c| !c.name.ends_with(switch::PREV_SUFFIX))
                .or_else(|| found.first())
            else {
                bail!(
                    "service {service} of compose project {} has no running container; bring the stack up first (`docker compose -p {} up -d`), or check COMPOSE_PROJECT_NAME",
                    self.project(),
                    self.project()
                );
            };
            let info = self.docker.inspect(&c.id).await?;
            Ok((Release::of_container(&info), info))
        }
    }

    /// Every configured service has a container in the project: a misspelt service fails
    /// here, before anything is done, not halfway through the switch.
    pub fn check_services(&self) -> anyhow::Result<()> {
        if self.scope.is_swarm() {
            for service in self.services() {
                self.block_on(lifeboat::swarm::service(&self.docker, &self.scope, &service))
                    .map_err(|e| UsageError::new(format!("{e:#} (deploy.services, deploy.workers; LIFEBOAT_DEPLOY_SERVICES, LIFEBOAT_DEPLOY_WORKERS)")))?;
            }
            return Ok(());
        }
        for service in self.services() {
            let found = self.block_on(self.docker.compose_containers(
                self.project(),
                Some(&service),
                true,
            ))?;
            if found.is_empty() {
                bail!(UsageError::new(format!(
                    "compose project {} has no container of service {service} (deploy.services, deploy.workers; LIFEBOAT_DEPLOY_SERVICES, LIFEBOAT_DEPLOY_WORKERS); is the stack up, and is COMPOSE_PROJECT_NAME right?",
                    self.project()
                )));
            }
        }
        Ok(())
    }

    /// The reverse proxies in front of the app services (deploy.proxies, or discovered).
    pub fn proxies(&self) -> anyhow::Result<Vec<Proxy>> {
        if self.scope.is_swarm() {
            // A proxy on a stack's network reaches a service by its virtual IP, which an
            // update does not change: Swarm moves the traffic, nothing to steer.
            return Ok(Vec::new());
        }
        self.block_on(proxy::find(
            &self.docker,
            self.project(),
            &self.config.deploy.proxies,
            &self.config.deploy.services,
        ))
        .map_err(|e| match e {
            ProxyError::NotAProxy { .. } => UsageError::new(e.to_string()).into(),
            other => anyhow::Error::new(other),
        })
    }

    /// Every proxy passes its own configuration test (`nginx -t`): one that fails it would
    /// fail the reload at the switch. Checked before anything is done.
    pub fn check_proxies(&self, proxies: &[Proxy], serving: &str) -> anyhow::Result<()> {
        for p in proxies {
            self.block_on(p.test(&self.docker))
                .with_context(|| format!("nothing was switched, {serving} serves"))?;
        }
        Ok(())
    }

    /// Switch every app service, then every worker, to `release`.
    pub fn switch_all(&self, release: &Release, stoppable: bool) -> anyhow::Result<()> {
        if self.scope.is_swarm() {
            return self.switch_all_swarm(release, stoppable);
        }
        let no_stop = Stop::never();
        let proxies = self.proxies()?;
        let switch = |proxies| Switch {
            docker: &self.docker,
            project: self.project(),
            health_timeout: Duration::from_secs(u64::from(self.config.deploy.health_timeout)),
            // The health URL gates a release going live; going back to the release that
            // served before is gated on Docker's health alone, as it was before.
            health_url: if stoppable {
                self.config.deploy.health_url.as_deref()
            } else {
                None
            },
            stop: if stoppable { &self.stop } else { &no_stop },
            proxies,
            drain: Duration::from_secs(u64::from(self.config.deploy.drain)),
        };
        // Proxies front the app services; workers take no requests.
        let front = switch(&proxies);
        let back = switch(&[]);
        self.block_on(async {
            let release = release::resolve_image(&self.docker, release).await?;
            for service in self.services() {
                if stoppable {
                    self.stop.check()?;
                }
                let switch = if self.config.deploy.services.contains(&service) {
                    &front
                } else {
                    &back
                };
                switch
                    .converge(&service, &release)
                    .await
                    .with_context(|| format!("switching {service} to {}", release.version))?;
            }
            anyhow::Ok(())
        })
    }

    /// [`Stack::switch_all`] on Swarm: each service updated in turn; going back (`stoppable`
    /// false) puts every service this run changed back on its previous spec.
    fn switch_all_swarm(&self, release: &Release, stoppable: bool) -> anyhow::Result<()> {
        let switch = crate::swarm::SwarmSwitch {
            docker: &self.docker,
            scope: &self.scope,
            health_timeout: Duration::from_secs(u64::from(self.config.deploy.health_timeout)),
            before: &self.before,
        };
        let no_stop = Stop::never();
        let stop = if stoppable { &self.stop } else { &no_stop };
        self.block_on(async {
            let release = release::resolve_image(&self.docker, release).await?;
            if !stoppable && !self.before.borrow().is_empty() {
                return switch.put_back(&self.services(), &release).await;
            }
            for service in self.services() {
                stop.check()?;
                switch
                    .converge(&service, &release, stop)
                    .await
                    .with_context(|| format!("switching {service} to {}", release.version))?;
            }
            anyhow::Ok(())
        })
    }

    /// "It serves" is said where users reach it: deploy.health-url (through the proxy) must
    /// answer 2xx within deploy.health-timeout; without one, the smoke spec's check named
    /// `health`, when it has one. Without either, Docker's health is all we know.
    pub fn check_public(&self, release: &Release) -> anyhow::Result<()> {
        let Some(url) = self.config.deploy.health_url.as_deref() else {
            return self.check_public_by_smoke(release);
        };
        let timeout = Duration::from_secs(u64::from(self.config.deploy.health_timeout));
        self.block_on(lifeboat_restore::app::probe_until(url, timeout))
            .map_err(|why| {
                anyhow::anyhow!(
                    "the containers of {} are healthy, but users do not reach it: {why} (deploy.health-url; is the proxy in front routing to them?)",
                    release.version
                )
            })?;
        info!(
            step = "public",
            "{} answers at {}",
            release.version,
            lifeboat::secret::redact_url(url)
        );
        Ok(())
    }

    /// A hash of the app's configuration: the environment of its first container, without
    /// what the image gives. Only the hash is kept, never a value.
    pub fn env_hash(&self) -> Option<String> {
        use sha2::Digest as _;
        if self.scope.is_swarm() {
            let svc = self
                .block_on(lifeboat::swarm::service(
                    &self.docker,
                    &self.scope,
                    &self.config.deploy.services[0],
                ))
                .ok()?;
            let mut env = svc.env();
            env.sort();
            let digest = sha2::Sha256::digest(env.join("\n").as_bytes());
            return Some(lifeboat::output::hex(&digest[..8]));
        }
        let (_, info) = self.live().ok()?;
        let image = self
            .block_on(self.docker.image(info.image.as_deref()?))
            .ok()??;
        let mut env = switch::own_env(&info, &image);
        env.sort();
        let digest = sha2::Sha256::digest(env.join("\n").as_bytes());
        Some(lifeboat::output::hex(&digest[..8]))
    }

    /// A run that died left its journal: bring the stack back to what served before it (the
    /// switch is idempotent), record it, and say so. Returns whether there was one.
    pub fn recover(&self) -> anyhow::Result<bool> {
        let Some(j) = self.history.read_journal()? else {
            return Ok(false);
        };
        warn!(
            step = "recovering",
            "the {} of {} started {} by {} (pid {}) did not finish (it was at step {}): bringing the stack back to {}",
            j.action,
            j.to.version,
            j.started.format("%Y-%m-%d %H:%M:%S UTC"),
            j.by,
            j.pid,
            j.step,
            j.from.version
        );
        self.switch_all(&j.from, false).with_context(|| {
            format!(
                "cannot bring the stack back to {} after the interrupted {}; the journal {} is kept",
                j.from.version,
                j.action,
                self.history.journal_path().display()
            )
        })?;
        // A pin the dead run left in a proxy's /etc/hosts would outlive the containers it
        // names at the proxy's next reload; Docker's DNS is right again.
        for p in self.proxies()? {
            match self.block_on(p.unpin(&self.docker)) {
                Ok(true) => info!(
                    "removed the pin the interrupted run left in {}'s /etc/hosts",
                    p.name
                ),
                Ok(false) => {}
                Err(e) => warn!("{e}"),
            }
        }
        if j.migrated {
            if let Some(b) = &j.backup {
                warn!("the interrupted {} had run its migrations: {} serves on the newer schema. To put the data back too: lifeboat-rollback {} --with-data (backup {b})", j.action, j.from.version, j.from.version);
            } else {
                warn!("the interrupted {} had run its migrations, and took no backup: {} serves on the newer schema", j.action, j.from.version);
            }
        }
        self.history.append(&Entry {
            action: j.action.clone(),
            version: j.to.version.clone(),
            image: j.to.image.clone(),
            image_id: j.to.image_id.clone(),
            revision: j.to.revision.clone(),
            previous: Some(j.from.clone()),
            env_hash: self.env_hash(),
            backup: j.backup.clone(),
            migrated: j.migrated,
            restored: false,
            started: j.started,
            finished: chrono::Utc::now(),
            outcome: "interrupted".into(),
            error: Some(format!(
                "the run died at step {}; the next run brought {} back",
                j.step, j.from.version
            )),
            by: j.by.clone(),
        })?;
        self.history.remove_journal()?;
        info!(
            step = "recovered",
            "{} serves again, as before the interrupted {}", j.from.version, j.action
        );
        Ok(true)
    }

    pub fn write_journal(&self, j: &Journal) -> anyhow::Result<()> {
        self.history.write_journal(j)
    }

    /// The smoke spec to run after a switch: configured (must exist), or ./smoke.toml when
    /// present; checked now, so that a broken spec stops the deploy before anything changes.
    pub fn smoke_spec(&self) -> anyhow::Result<Option<PathBuf>> {
        let path = if let Some(p) = &self.config.deploy.smoke_spec {
            p.clone()
        } else {
            let p = PathBuf::from(lifeboat::config::settings::DEFAULT_SMOKE_SPEC);
            if !p.exists() {
                return Ok(None);
            }
            p
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            UsageError::new(format!(
                "cannot read the smoke spec {} (deploy.smoke-spec, LIFEBOAT_DEPLOY_SMOKE_SPEC): {e}",
                path.display()
            ))
        })?;
        lifeboat_smoke::parse_spec(&path, &text).map_err(|e| UsageError::new(e.to_string()))?;
        Ok(Some(path))
    }

    /// [`Stack::check_public`] by the smoke spec's `health` check (its `wait` lets the app
    /// come up), when there is a spec and it has one.
    fn check_public_by_smoke(&self, release: &Release) -> anyhow::Result<()> {
        let Some(spec) = self.smoke_spec()? else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&spec).unwrap_or_default();
        let has_health = lifeboat_smoke::parse_spec(&spec, &text)
            .is_ok_and(|s| s.checks.iter().any(|c| c.name == PUBLIC_CHECK));
        if !has_health {
            return Ok(());
        }
        self.smoke_checks(&spec, &[PUBLIC_CHECK]).map_err(|_| {
            anyhow::anyhow!(
                "the containers of {} are healthy, but users do not reach it: the `{PUBLIC_CHECK}` check of {} fails (is the proxy in front routing to them?)",
                release.version,
                spec.display()
            )
        })?;
        info!(
            step = "public",
            "{} passes the `{PUBLIC_CHECK}` check of {}",
            release.version,
            spec.display()
        );
        Ok(())
    }

    /// lifeboat-smoke for the environment (`--env`), as its own command would run it.
    pub fn smoke(&self, spec: &std::path::Path) -> anyhow::Result<()> {
        info!(step = "smoke", "smoke tests: {}", spec.display());
        self.smoke_checks(spec, &[])
    }

    /// lifeboat-smoke's `checks` of `spec` (all when empty).
    fn smoke_checks(&self, spec: &std::path::Path, checks: &[&str]) -> anyhow::Result<()> {
        let cli = lifeboat_smoke::Cli {
            command: None,
            spec: spec.to_path_buf(),
            allow_writes: false,
            checks: checks.iter().map(|c| (*c).to_owned()).collect(),
            tags: Vec::new(),
            report: Vec::new(),
            list: false,
            global: self.global.clone(),
        };
        let code = lifeboat_smoke::run(&cli)?;
        if code != std::process::ExitCode::SUCCESS {
            bail!("the smoke tests of {} failed", spec.display());
        }
        Ok(())
    }

    /// Restore a backup into the database through lifeboat-restore (checks, swap, undo).
    pub fn restore(&self, backup: &str) -> anyhow::Result<()> {
        info!(step = "restoring", "restoring the backup {backup}");
        let cli = lifeboat_restore::Cli {
            command: None,
            backup: Some(backup.to_owned()),
            db: lifeboat::cli::DatabaseArgs {
                dir: Some(self.config.backup.dir.clone()),
                ..lifeboat::cli::DatabaseArgs::default()
            },
            yes: true,
            no_safety_backup: false,
            no_progress: true,
            // restore.jobs from the settings, as a restore by hand.
            jobs: None,
            // The deploy's own backup, on this host; nothing from the bucket is trusted blindly.
            trust_unsigned: false,
            global: self.global.clone(),
        };
        lifeboat_restore::restore_now(&cli).with_context(|| format!("restoring {backup}"))?;
        Ok(())
    }

    /// Keep lifeboat's tags of the last `deploy.keep-releases` releases (and of what serves
    /// now); remove the older ones. An image a container still uses is never removed.
    pub fn prune_images(&self) {
        let keep = self.config.deploy.keep_releases as usize;
        let Ok(entries) = self.history.entries() else {
            return;
        };
        let mut releases: Vec<Release> = Vec::new();
        for e in entries.iter().rev() {
            for r in e.live_after().into_iter().chain(e.previous.clone()) {
                if !releases.iter().any(|k| k.image_id == r.image_id) {
                    releases.push(r);
                }
            }
        }
        for old in releases.iter().skip(keep) {
            let (repo, _) = release::split_reference(&old.image);
            let tag = format!("{repo}:{}", release::kept_tag(&old.version));
            if releases[..keep]
                .iter()
                .any(|k| release::kept_tag(&k.version) == release::kept_tag(&old.version))
            {
                continue;
            }
            match self.block_on(self.docker.untag_image(&tag)) {
                Ok(()) => info!("removed the tag {tag} (older than the last {keep} releases)"),
                Err(e) => warn!("cannot remove the tag {tag}: {e}"),
            }
        }
    }
}

/// One history entry for a run that started at `started`.
pub struct Outcome<'a> {
    pub action: &'a str,
    pub to: &'a Release,
    pub from: Option<&'a Release>,
    pub backup: Option<String>,
    pub migrated: bool,
    pub restored: bool,
    pub started: chrono::DateTime<chrono::Utc>,
}

impl Outcome<'_> {
    /// Record how the run ended: its history line, the journal removed (kept when the stack
    /// may not be as it should, for the next run), the mail and the webhook.
    pub fn finish(
        &self,
        stack: &Stack,
        outcome: &str,
        error: Option<&anyhow::Error>,
        subject: &str,
        keep_journal: bool,
    ) -> anyhow::Result<()> {
        let entry = self.entry(stack, outcome, error.map(|e| format!("{e:#}")));
        stack.history.append(&entry)?;
        if !keep_journal {
            stack.history.remove_journal()?;
        }
        crate::notify::send(stack, subject, &entry);
        Ok(())
    }

    pub fn entry(&self, stack: &Stack, outcome: &str, error: Option<String>) -> Entry {
        Entry {
            action: self.action.into(),
            version: self.to.version.clone(),
            image: self.to.image.clone(),
            image_id: self.to.image_id.clone(),
            revision: self.to.revision.clone(),
            previous: self.from.cloned(),
            env_hash: stack.env_hash(),
            backup: self.backup.clone(),
            migrated: self.migrated,
            restored: self.restored,
            started: self.started,
            finished: chrono::Utc::now(),
            outcome: outcome.into(),
            error: error.map(|e| lifeboat::secret::redact_url(&e)),
            by: who(),
        }
    }
}
