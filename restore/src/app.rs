//! The app around the database: the compose services stopped during the swap (workers
//! included, or they would write into the old database or fail on the vanished one), started
//! again after it, and waited on until Docker says they are healthy.
//!
//! Which services: `restore.app-services` (`LIFEBOAT_RESTORE_APP_SERVICES`) when set (`none`
//! for none); otherwise, when the database runs in a container, every running container of the
//! compose project whose environment names the database (a `postgres://…/<db>` URL, or
//! `PGDATABASE`/`POSTGRES_DB`/`DB_NAME`/`DATABASE_NAME` = `<db>`). Only containers that were
//! running are stopped and started again: a restore never starts what was meant to be down.

use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::models::ContainerInspectResponse;
use lifeboat::config::Config;
use lifeboat::docker::{Container, Docker, Scope};
use lifeboat::proxy::{self, Proxy};
use lifeboat_backup::source::Source;
use tracing::{info, warn};

use crate::scaled::{self, Scaled};

/// How long a container has to stop before Docker kills it.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The most a container waits, around the maintenance page, for the proxies to stop using it.
const MAINTENANCE_DRAIN: Duration = Duration::from_secs(3);

pub struct App {
    docker: Option<Docker>,
    pub containers: Vec<Container>,
    /// On Swarm: the stack and its services scaled to 0 and back instead.
    swarm: Option<(Scope, Vec<Scaled>)>,
    /// Where users reach the app: its proxies and public URL (see [`App::reach`]).
    front: Front,
}

/// The app as users reach it: through the proxies in front of it (deploy.proxies, or
/// discovered), at deploy.health-url.
#[derive(Debug, Clone, Default)]
struct Front {
    project: String,
    proxies: Vec<String>,
    url: Option<String>,
    /// restore.maintenance: the proxies answer 503 while the app is down.
    maintenance: bool,
}

impl Front {
    fn of(config: &Config) -> Self {
        Self {
            project: config.compose.project.clone(),
            proxies: config.deploy.proxies.clone(),
            url: config.deploy.health_url.clone(),
            maintenance: config.restore.maintenance,
        }
    }
}

/// Variables that name a database outright.
const NAME_VARS: &[&str] = &["PGDATABASE", "POSTGRES_DB", "DB_NAME", "DATABASE_NAME"];

/// Whether a container's environment points at database `db`.
pub fn env_names_database<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>, db: &str) -> bool {
    env.into_iter().any(|(key, value)| {
        if NAME_VARS.contains(&key) && value == db {
            return true;
        }
        let Some(rest) = value
            .strip_prefix("postgres://")
            .or_else(|| value.strip_prefix("postgresql://"))
        else {
            return false;
        };
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        let name = path.split(['?', '#']).next().unwrap_or_default();
        name == db
    })
}

impl App {
    pub fn none() -> Self {
        Self {
            docker: None,
            containers: Vec::new(),
            swarm: None,
            front: Front::default(),
        }
    }

    /// The app's running containers, from the configuration or discovered.
    pub async fn find(config: &Config, source: &Source, db: &str) -> anyhow::Result<Self> {
        let (docker, db_container) = match source {
            Source::Container {
                docker,
                container,
                scope,
                ..
            } => {
                if scope.is_swarm() {
                    return Self::find_swarm(config, docker, scope, db).await;
                }
                (Some(docker.clone()), Some(container.clone()))
            }
            Source::Url { .. } | Source::MysqlUrl { .. } => (None, None),
        };
        match &config.restore.app_services {
            Some(services) if services.is_empty() => {
                info!("no app to stop (restore.app-services = none)");
                Ok(Self::none())
            }
            Some(services) => {
                let docker = match docker {
                    Some(d) => d,
                    None => Docker::connect(config.docker_host.as_deref())
                        .await
                        .context("the app's services are configured (LIFEBOAT_RESTORE_APP_SERVICES): lifeboat-restore needs Docker to stop them")?,
                };
                let scope = lifeboat::swarm::detect(&docker, config).await?;
                if scope.is_swarm() {
                    return Self::find_swarm(config, &docker, &scope, db).await;
                }
                let mut containers = Vec::new();
                for service in services {
                    let found = docker
                        .compose_containers(&config.compose.project, Some(service.as_str()), false)
                        .await?;
                    if found.is_empty() {
                        warn!(
                            "service {service} of compose project {} has no running container; nothing to stop there",
                            config.compose.project
                        );
                    }
                    containers.extend(found);
                }
                Ok(Self {
                    docker: Some(docker),
                    containers,
                    swarm: None,
                    front: Front::of(config),
                })
            }
            None => {
                let Some(docker) = docker else {
                    info!("--url: no app to stop (set LIFEBOAT_RESTORE_APP_SERVICES to name the compose services that use the database); its sessions will be ended at the swap");
                    return Ok(Self::none());
                };
                let mut containers = Vec::new();
                for c in docker
                    .compose_containers(&config.compose.project, None, false)
                    .await?
                {
                    if db_container
                        .as_deref()
                        .is_some_and(|d| d == c.name || d == c.id)
                    {
                        continue;
                    }
                    let env = docker.container_env(&c.id).await?;
                    if env_names_database(env.iter().map(|(k, v)| (k.as_str(), v.as_str())), db) {
                        containers.push(c);
                    }
                }
                Ok(Self {
                    docker: Some(docker),
                    containers,
                    swarm: None,
                    front: Front::of(config),
                })
            }
        }
    }

    /// A Swarm stack's services that use the database (or restore.app-services).
    async fn find_swarm(
        config: &Config,
        docker: &Docker,
        scope: &Scope,
        db: &str,
    ) -> anyhow::Result<Self> {
        let named = match &config.restore.app_services {
            Some(s) if s.is_empty() => {
                info!("no app to stop (restore.app-services = none)");
                return Ok(Self::none());
            }
            other => other.as_deref(),
        };
        let services = scaled::find(docker, scope, named, &config.database.service, db).await?;
        Ok(Self {
            docker: Some(docker.clone()),
            containers: Vec::new(),
            swarm: Some((scope.clone(), services)),
            front: Front::of(config),
        })
    }

    /// Containers given by name or id (a journal's), as they are now; Swarm services with
    /// their replicas (`swarm:app=2`).
    pub async fn from_names(config: &Config, names: &[String]) -> anyhow::Result<Self> {
        if names.is_empty() {
            return Ok(Self::none());
        }
        let docker = Docker::connect(config.docker_host.as_deref()).await?;
        let services: Vec<Scaled> = names
            .iter()
            .filter_map(|n| Scaled::from_journal(n))
            .collect();
        if !services.is_empty() {
            return Ok(Self {
                docker: Some(docker),
                containers: Vec::new(),
                swarm: Some((Scope::swarm(&config.compose.stack), services)),
                front: Front::of(config),
            });
        }
        let containers = names
            .iter()
            .map(|n| Container {
                id: n.clone(),
                name: n.clone(),
                image: String::new(),
                state: String::new(),
                project: None,
                service: None,
            })
            .collect();
        Ok(Self {
            docker: Some(docker),
            containers,
            swarm: None,
            front: Front::of(config),
        })
    }

    pub fn names(&self) -> Vec<String> {
        match &self.swarm {
            Some((_, services)) => services.iter().map(Scaled::journal_name).collect(),
            None => self.containers.iter().map(|c| c.name.clone()).collect(),
        }
    }

    pub fn describe(&self) -> String {
        if let Some((scope, services)) = &self.swarm {
            return if services.is_empty() {
                "no app services".into()
            } else {
                services
                    .iter()
                    .map(|s| format!("{} ({} replicas)", scope.service_name(&s.short), s.replicas))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
        }
        if self.containers.is_empty() {
            "no app containers".into()
        } else {
            self.names().join(", ")
        }
    }

    pub async fn stop(&self) -> anyhow::Result<()> {
        let Some(docker) = &self.docker else {
            return Ok(());
        };
        if let Some((scope, services)) = &self.swarm {
            Box::pin(scaled::stop(docker, scope, services)).await?;
            if !services.is_empty() {
                info!(step = "stopped", "scaled {} to 0", self.describe());
            }
            return Ok(());
        }
        if self.front.maintenance && !self.containers.is_empty() {
            // Boxed: its future is large, and a restore's stays small.
            Box::pin(self.maintenance(docker)).await;
        }
        // All at once: the downtime is the slowest container's stop, not their sum.
        futures_util::future::try_join_all(self.containers.iter().map(|c| async move {
            docker
                .stop(&c.id, STOP_GRACE)
                .await
                .with_context(|| format!("stopping {}", c.name))
        }))
        .await?;
        if !self.containers.is_empty() {
            info!(step = "stopped", "stopped {}", self.describe());
        }
        Ok(())
    }

    /// Start every container, then wait until each is healthy (or running, without a health
    /// check), `timeout` in all.
    pub async fn start_and_wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let Some(docker) = &self.docker else {
            return Ok(());
        };
        if let Some((scope, services)) = &self.swarm {
            let started = Instant::now();
            Box::pin(scaled::start(docker, scope, services, timeout)).await?;
            if !services.is_empty() {
                info!(
                    step = "healthy",
                    "{} running again in {:.1} s",
                    self.describe(),
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        // All at once, each waited on as soon as it started: the downtime is the slowest
        // container's start, not their sum.
        let started = Instant::now();
        futures_util::future::try_join_all(self.containers.iter().map(|c| async move {
            docker
                .start(&c.id)
                .await
                .with_context(|| format!("starting {}", c.name))?;
            let left = timeout.saturating_sub(started.elapsed());
            docker
                .wait_healthy(&c.id, left.max(Duration::from_secs(1)))
                .await
                .with_context(|| format!("{} after the restore", c.name))
        }))
        .await?;
        if !self.containers.is_empty() {
            info!(
                step = "healthy",
                "{} healthy in {:.1} s",
                self.describe(),
                started.elapsed().as_secs_f64()
            );
            Box::pin(self.reach(docker, timeout.saturating_sub(started.elapsed()))).await?;
        }
        Ok(())
    }

    /// The proxies in front of the app's containers (deploy.proxies, or discovered), and the
    /// containers as the engine sees them now.
    async fn fronts(
        &self,
        docker: &Docker,
    ) -> anyhow::Result<(Vec<Proxy>, Vec<ContainerInspectResponse>)> {
        let mut services: Vec<String> = Vec::new();
        let mut infos = Vec::new();
        for c in &self.containers {
            let info = docker.inspect(&c.id).await?;
            if let Some(s) = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(lifeboat::docker::LABEL_SERVICE))
            {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
            infos.push(info);
        }
        let proxies = proxy::find(docker, &self.front.project, &self.front.proxies, &services)
            .await
            .context("finding the proxies in front of the app")?
            .into_iter()
            .filter(|p| infos.iter().any(|i| p.fronts(i)))
            .collect();
        Ok((proxies, infos))
    }

    /// restore.maintenance: before the app stops, each proxy in front sends its requests to
    /// a stand-in that answers 503 with `Retry-After`. Best effort: the restore goes on
    /// without it, with a warning.
    async fn maintenance(&self, docker: &Docker) {
        let (proxies, infos) = match self.fronts(docker).await {
            Ok(found) => found,
            Err(e) => {
                warn!("no maintenance page: {e:#}");
                return;
            }
        };
        if proxies.is_empty() {
            warn!("restore.maintenance is on, but no proxy (nginx, Caddy) is in front of the app: users get refused connections while it is down");
        }
        let app: Vec<&ContainerInspectResponse> = infos.iter().collect();
        let mut on = false;
        for p in &proxies {
            match p.maintenance(docker, &self.front.project, &app).await {
                Ok(Some(name)) => {
                    on = true;
                    info!(step = "maintenance", "{} ({}) answers 503 with Retry-After from {name} while the app is down", p.name, p.kind.name());
                }
                Ok(None) => warn!("no maintenance page on {} ({}): lifeboat has a stand-in for nginx and Caddy only, and the app must EXPOSE its port", p.name, p.kind.name()),
                Err(e) => warn!("no maintenance page on {}: {e}", p.name),
            }
        }
        if on {
            // The proxies' reload takes a moment: requests already sent to the app finish.
            for c in &self.containers {
                proxy::drain(docker, &c.id, MAINTENANCE_DRAIN, Duration::from_millis(500)).await;
            }
        }
    }

    /// The containers came back with new addresses: the proxies in front of them resolve the
    /// names again (a maintenance pin removed first; nginx: `nginx -t`, graceful reload), the
    /// maintenance stand-ins go, and the public URL, when set, must answer through them within
    /// what is left of `timeout`.
    async fn reach(&self, docker: &Docker, timeout: Duration) -> anyhow::Result<()> {
        let proxies = match self.fronts(docker).await {
            Ok((proxies, _)) => proxies,
            Err(e) => {
                warn!("the proxies in front of the app were not reloaded: {e:#}");
                Vec::new()
            }
        };
        for p in &proxies {
            let pinned = p.unpin(docker).await?;
            p.reload(docker).await.with_context(|| {
                format!(
                    "the app is healthy, but its proxy {} could not be reloaded",
                    p.name
                )
            })?;
            info!(
                step = "proxy",
                "{} ({}) reloaded: it reaches the restarted app",
                p.name,
                p.kind.name()
            );
            if pinned && p.kind.resolves_per_connection() {
                // Its resolver may keep the stand-in's address a few seconds more.
                tokio::time::sleep(proxy::HOSTS_CACHE).await;
            }
        }
        // A request a proxy sent to a stand-in just before its reload gets its 503.
        for id in docker
            .labelled(proxy::LABEL_MAINTENANCE, &self.front.project)
            .await?
        {
            proxy::drain(docker, &id, MAINTENANCE_DRAIN, Duration::from_millis(500)).await;
        }
        let removed = proxy::remove_maintenance(docker, &self.front.project).await?;
        if removed > 0 {
            info!(step = "maintenance", "the maintenance page is off");
        }
        if let Some(url) = &self.front.url {
            probe_until(url, timeout.max(Duration::from_secs(5)))
                .await
                .map_err(|why| {
                    anyhow::anyhow!(
                        "the app is healthy, but users do not reach it: {why} (deploy.health-url)"
                    )
                })?;
            info!(
                step = "public",
                "the app answers at {}",
                lifeboat::secret::redact_url(url)
            );
        }
        Ok(())
    }
}

/// [`probe`] every 0.2 s until it passes, at most `timeout`; the last failure otherwise.
pub async fn probe_until(url: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match probe(url).await {
            Ok(()) => return Ok(()),
            Err(why) if started.elapsed() >= timeout => return Err(why),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One lifeboat-healthcheck probe of `url`, as the image's HEALTHCHECK would run it.
pub async fn probe(url: &str) -> Result<(), String> {
    let opts = lifeboat_healthcheck::Options {
        targets: vec![url.to_owned()],
        timeout: Duration::from_secs(5),
        expect_status: lifeboat_healthcheck::StatusSpec::parse("2xx")?,
        expect_body: None,
        expect_json: Vec::new(),
        headers: Vec::new(),
        cert_min_days: None,
        insecure: false,
        follow_redirects: false,
        head: false,
    };
    let reports = tokio::task::spawn_blocking(move || lifeboat_healthcheck::check_all(&opts))
        .await
        .map_err(|e| e.to_string())?;
    match reports.into_iter().find(|r| !r.healthy) {
        None => Ok(()),
        Some(r) => Err(format!(
            "{}: {}",
            lifeboat::secret::redact_url(&r.target),
            r.detail
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::env_names_database;

    #[test]
    fn an_app_is_found_by_the_database_its_environment_names() {
        let yes = [
            ("DATABASE_URL", "postgres://demo:pw@postgres:5432/demo"),
            ("X", "postgresql://u@db/demo?sslmode=disable"),
            ("PGDATABASE", "demo"),
        ];
        for pair in yes {
            assert!(env_names_database([pair], "demo"), "{pair:?}");
        }
        let no = [
            ("DATABASE_URL", "postgres://demo:pw@postgres:5432/demo_test"),
            ("REDIS_URL", "redis://redis:6379/demo"),
            ("NOTE", "demo"),
        ];
        for pair in no {
            assert!(!env_names_database([pair], "demo"), "{pair:?}");
        }
    }
}
