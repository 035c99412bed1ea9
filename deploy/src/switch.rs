//! The switch: a compose service's containers replaced by containers of another image, health
//! gated, with the old container kept until the new one is healthy.
//!
//! A new container is created from the old one's own configuration, as compose would create it
//! from the same service: environment, command, labels (so `docker compose ps` and `down` still
//! see it as the service's), volumes (anonymous ones too), published ports, restart policy, every
//! network with its aliases. What the old container only had from its image (the image's `ENV`,
//! `CMD`, `HEALTHCHECK`, labels) is left for the new image to give.
//!
//! Two orders:
//! - **start first** when the service publishes no host port: the new container starts beside
//!   the old one, both answer under the service's network alias, and the old one is stopped only
//!   once the new one is healthy. Behind a reverse proxy on the compose network, no request fails.
//! - **stop first** when it publishes a host port (or has a fixed IP): two containers cannot hold
//!   the same port, so the old one is stopped, then the new one started; the gap is the new
//!   container's start-up.
//!
//! Either way the old container is only renamed (`<name>_lifeboat_prev`) until the new one is
//! healthy; if it is not, the new one is removed and the old one renamed back and started: the
//! previous release serves again. [`Switch::converge`] is idempotent, so the same call finishes
//! or undoes a switch that a crash interrupted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, ImageInspect,
    NetworkingConfig,
};
use lifeboat::docker::{Docker, Health, LABEL_PROJECT, LABEL_SERVICE};
use lifeboat::proxy::{self, Drained, Proxy, HOSTS_CACHE};
use tracing::{info, warn};

use crate::release::Release;
use lifeboat::signal::Stop;
use lifeboat_restore::app::probe;

/// The label lifeboat puts on the containers it creates: the release they run.
pub const LABEL_RELEASE: &str = "io.lifeboat.release";
/// compose's replica number of a container.
const LABEL_NUMBER: &str = "com.docker.compose.container-number";
/// compose's label of one-off containers (`compose run`): never switched.
const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
/// The suffix of an old container while its replacement starts.
pub const PREV_SUFFIX: &str = "_lifeboat_prev";
/// How long a container has to stop before Docker kills it.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What to switch to, and how long a new container has to become healthy.
pub struct Switch<'a> {
    pub docker: &'a Docker,
    pub project: &'a str,
    pub health_timeout: Duration,
    /// Also checked with lifeboat-healthcheck once Docker says healthy.
    pub health_url: Option<&'a str>,
    pub stop: &'a Stop,
    /// The reverse proxies of the project (see [`lifeboat::proxy`]).
    pub proxies: &'a [Proxy],
    /// The most an old container behind a proxy gets to finish its requests.
    pub drain: Duration,
}

/// A new container going live: the switch it is part of.
struct Live<'a> {
    service: &'a str,
    name: &'a str,
    old: &'a ContainerInspectResponse,
    fronting: &'a [&'a Proxy],
    /// Behind a proxy, start first: the proxies are steered from the old container to it.
    steer: bool,
    stop_first: bool,
    /// Set once the proxies may send it requests (steering began).
    steered: &'a std::cell::Cell<bool>,
}

/// What putting a previous container back needs to know of the switch.
struct Back<'a> {
    live: &'a Live<'a>,
    old_id: &'a str,
    was_running: bool,
    /// The proxies were steered to the new container: steer them back before removing it.
    steered: bool,
}

/// How long a drained container must receive nothing before it is stopped.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// One replica of a service: its containers (the live one, and leftovers of an interrupted
/// switch), by compose's container number.
struct Replica {
    name: String,
    containers: Vec<ContainerInspectResponse>,
}

impl Switch<'_> {
    /// Make every replica of `service` run `release`, one after the other. Replicas already on
    /// it are only started if stopped; leftovers of an interrupted switch are cleaned up.
    pub async fn converge(&self, service: &str, release: &Release) -> anyhow::Result<()> {
        let replicas = self.replicas(service).await?;
        if replicas.is_empty() {
            bail!(
                "service {service} of compose project {} has no container; bring the stack up first (`docker compose -p {} up -d`)",
                self.project,
                self.project
            );
        }
        for replica in replicas {
            self.converge_replica(service, replica, release).await?;
        }
        Ok(())
    }

    async fn replicas(&self, service: &str) -> anyhow::Result<Vec<Replica>> {
        let mut by_number: BTreeMap<String, Replica> = BTreeMap::new();
        for c in self
            .docker
            .compose_containers(self.project, Some(service), true)
            .await?
        {
            let info = self.docker.inspect(&c.id).await?;
            let labels = labels_of(&info);
            if labels.get(LABEL_ONEOFF).is_some_and(|v| v == "True") {
                continue;
            }
            let number = labels
                .get(LABEL_NUMBER)
                .cloned()
                .unwrap_or_else(|| "1".into());
            let name = c.name.trim_end_matches(PREV_SUFFIX).to_owned();
            let replica = by_number.entry(number).or_insert_with(|| Replica {
                name: name.clone(),
                containers: Vec::new(),
            });
            if name.len() < replica.name.len() {
                replica.name = name;
            }
            replica.containers.push(info);
        }
        Ok(by_number.into_values().collect())
    }

    async fn converge_replica(
        &self,
        service: &str,
        replica: Replica,
        release: &Release,
    ) -> anyhow::Result<()> {
        let name = replica.name;
        let running = |c: &ContainerInspectResponse| {
            c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        };
        let named = |c: &ContainerInspectResponse, n: &str| container_name(c) == n;
        // The container to keep until its replacement is healthy: the one serving now.
        let keep = replica
            .containers
            .iter()
            .position(|c| running(c) && named(c, &name))
            .or_else(|| replica.containers.iter().position(running))
            .or_else(|| replica.containers.iter().position(|c| named(c, &name)))
            .unwrap_or(0);
        let mut containers = replica.containers;
        let old = containers.swap_remove(keep);
        for stale in &containers {
            let stale_name = container_name(stale);
            warn!("removing {stale_name}, left by an interrupted switch");
            self.docker.remove(&id_of(stale)).await?;
        }
        let old_id = id_of(&old);
        let old_image = old.image.clone().unwrap_or_default();

        if old_image == release.image_id && named(&old, &name) {
            if !running(&old) {
                info!(
                    step = "starting",
                    service, "starting {name} ({})", release.version
                );
                self.docker.start(&old_id).await?;
            }
            self.wait_healthy(&old_id, &name).await?;
            info!(service, "{name} runs {} already", release.version);
            return Ok(());
        }
        // Boxed: a switch's future is large.
        Box::pin(self.replace(service, &name, &old, release)).await
    }

    /// Replace `old`, the container of one replica of `service`, by one of `release`.
    async fn replace(
        &self,
        service: &str,
        name: &str,
        old: &ContainerInspectResponse,
        release: &Release,
    ) -> anyhow::Result<()> {
        let old_id = id_of(old);
        let old_image = old.image.clone().unwrap_or_default();
        let running = |c: &ContainerInspectResponse| {
            c.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        };
        let prev_name = format!("{name}{PREV_SUFFIX}");
        if container_name(old) != prev_name {
            self.docker.rename(&old_id, &prev_name).await?;
        }
        let image = self.docker.image(&old_image).await?.unwrap_or_default();
        let (mut body, extra_networks) = spec_from(old, &image, release);
        let stop_first = needs_stop_first(old);
        if stop_first {
            keep_host_ports(old, &mut body);
        }
        let was_running = running(old);
        let fronting: Vec<&Proxy> = self.proxies.iter().filter(|p| p.fronts(old)).collect();
        // Behind a proxy, start first: the proxy is steered from the old container to the new.
        let steer = !stop_first && was_running && !fronting.is_empty();
        let clock = Instant::now();
        if steer {
            self.hold(service, &fronting, old).await?;
        }
        if stop_first && was_running {
            info!(step = "stopping", service, "stopping {name} (it publishes a host port, so the new container can only start after it)");
            self.docker.stop(&old_id, STOP_GRACE).await?;
        }
        info!(
            step = "switching",
            service, "starting {name} on {} ({})", release.version, release.image
        );
        let started = self.start_new(name, body, &extra_networks).await;
        let steered = std::cell::Cell::new(false);
        let live = Live {
            service,
            name,
            old,
            fronting: &fronting,
            steer,
            stop_first,
            steered: &steered,
        };
        let result = match started {
            Ok(new_id) => match self.go_live(&live, &new_id).await {
                Ok(()) => Ok(new_id),
                Err(e) => Err((Some(new_id), e)),
            },
            Err(e) => Err((None, e)),
        };
        match result {
            Ok(_) => {
                if !stop_first {
                    self.docker.stop_own(&old_id).await?;
                }
                self.docker.remove(&old_id).await?;
                if steer {
                    self.unpin(&fronting).await?;
                }
                info!(
                    step = "switched",
                    service,
                    "{name} runs {} and is healthy ({:.1} s)",
                    release.version,
                    clock.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err((new_id, e)) => {
                warn!(
                    step = "undoing",
                    service,
                    "{name} on {} failed: putting the previous container back",
                    release.version
                );
                let back = Back {
                    live: &live,
                    old_id: &old_id,
                    was_running,
                    steered: steered.get(),
                };
                Err(self.put_back(&back, new_id, e).await?.context(format!(
                    "{name} did not become healthy on {}; its previous container serves again",
                    release.version
                )))
            }
        }
    }

    /// The new container healthy, then serving: behind a proxy, the proxy steered to it (and
    /// the health URL, reached through the proxy, checked there), the old one drained.
    async fn go_live(&self, live: &Live<'_>, new_id: &str) -> anyhow::Result<()> {
        let (service, name) = (live.service, live.name);
        // Through a proxy, the health URL reaches the new container only once it is steered.
        self.wait(new_id, name, true, !live.steer).await?;
        if live.stop_first {
            // The new container has a new address: the proxies resolve the name again.
            for p in live.fronting {
                p.reload(self.docker).await.with_context(|| {
                    format!("{name} is healthy, but {} could not be reloaded", p.name)
                })?;
                info!(
                    step = "proxy",
                    service, "{} reloaded: it reaches the new {name}", p.name
                );
            }
        }
        if !live.steer {
            return Ok(());
        }
        live.steered.set(true);
        self.steer(service, live.fronting, live.old, name).await?;
        if self.health_url.is_some() {
            self.wait(new_id, name, true, true).await?;
        }
        self.drain(
            service,
            live.fronting,
            &id_of(live.old),
            &format!("the previous {name}"),
        )
        .await;
        Ok(())
    }

    /// Containers of `service` that run, but `except`.
    async fn serving(
        &self,
        service: &str,
        except: &str,
    ) -> anyhow::Result<Vec<ContainerInspectResponse>> {
        let mut out = Vec::new();
        for c in self
            .docker
            .compose_containers(self.project, Some(service), false)
            .await?
        {
            if c.id != except {
                out.push(self.docker.inspect(&c.id).await?);
            }
        }
        Ok(out)
    }

    /// Before a new container joins the service's name: proxies that resolve it at each
    /// connection (Caddy) keep it on the containers that serve now, or they would send
    /// requests to the new one before it listens.
    async fn hold(
        &self,
        service: &str,
        fronting: &[&Proxy],
        old: &ContainerInspectResponse,
    ) -> anyhow::Result<()> {
        let per_connection: Vec<&&Proxy> = fronting
            .iter()
            .filter(|p| p.kind.resolves_per_connection())
            .collect();
        if per_connection.is_empty() {
            return Ok(());
        }
        let serving = self.serving(service, "").await?;
        let serving: Vec<&ContainerInspectResponse> = serving.iter().collect();
        for p in per_connection {
            let pins = proxy::pins_for(p, old, &serving)?;
            p.pin(self.docker, &pins).await?;
            info!(
                step = "proxy",
                service,
                "{} keeps {service} on the serving container while the new one starts",
                p.name
            );
        }
        // A resolver may cache /etc/hosts for a few seconds (Go's: 5 s).
        tokio::time::sleep(HOSTS_CACHE).await;
        Ok(())
    }

    /// Point every proxy's names of `from` at the other serving containers of `service`, and
    /// reload it. `from` is the old container at a switch, the new one when it is put back.
    async fn steer(
        &self,
        service: &str,
        fronting: &[&Proxy],
        from: &ContainerInspectResponse,
        name: &str,
    ) -> anyhow::Result<()> {
        let serving = self.serving(service, &id_of(from)).await?;
        let serving: Vec<&ContainerInspectResponse> = serving.iter().collect();
        for p in fronting {
            let pins = proxy::pins_for(p, from, &serving)?;
            if pins.is_empty() {
                bail!(
                    "no other container of {service} answers to {name}'s network names where {} reaches it; the proxy was left as it was",
                    p.name
                );
            }
            p.pin(self.docker, &pins).await?;
            p.reload(self.docker)
                .await
                .with_context(|| format!("steering {} for {name}", p.name))?;
            let to: Vec<String> = pins.iter().map(|p| p.ip.to_string()).collect();
            info!(
                step = "proxy",
                service,
                "{} ({}) now sends {service} to {}",
                p.name,
                p.kind.name(),
                to.join(", ")
            );
        }
        Ok(())
    }

    /// Wait until a container the proxies no longer send to has finished its requests.
    async fn drain(&self, service: &str, fronting: &[&Proxy], id: &str, what: &str) {
        let per_connection = fronting.iter().any(|p| p.kind.resolves_per_connection());
        let quiet = if per_connection {
            HOSTS_CACHE + DRAIN_QUIET
        } else {
            DRAIN_QUIET
        };
        match proxy::drain(self.docker, id, self.drain, quiet).await {
            Drained::Quiet(d) => info!(
                step = "draining",
                service,
                "{what} receives nothing ({:.1} s)",
                d.as_secs_f64()
            ),
            Drained::TimedOut { open } => warn!(
                step = "draining",
                service,
                "{what} still had {open} open connection(s) after {} s (deploy.drain); stopping it with its own stop signal and grace period",
                self.drain.as_secs()
            ),
            Drained::Unobserved => info!(
                step = "draining",
                service,
                "{what} was given {} s (deploy.drain) to finish its requests (its connections cannot be seen from this host)",
                self.drain.as_secs()
            ),
        }
    }

    /// Remove lifeboat's pins: Docker's DNS names exactly the containers that run again.
    async fn unpin(&self, fronting: &[&Proxy]) -> anyhow::Result<()> {
        for p in fronting {
            p.unpin(self.docker).await?;
        }
        Ok(())
    }

    /// After a failed switch: the new container removed (its last lines kept for the error),
    /// the old one named and started again (behind a proxy: the proxy steered back to it
    /// first, and the new one drained). Returns the error to report.
    async fn put_back(
        &self,
        back: &Back<'_>,
        new_id: Option<String>,
        e: anyhow::Error,
    ) -> anyhow::Result<anyhow::Error> {
        let (name, live) = (back.live.name, back.live);
        if let Some(new_id) = new_id {
            if let Ok(tail) = self.docker.logs_tail(&new_id, 15).await {
                let tail = lifeboat::secret::redact_url(tail.trim());
                if !tail.is_empty() {
                    warn!("the last lines of the new {name}'s output:");
                    for line in tail.lines() {
                        warn!("  {line}");
                    }
                }
            }
            if back.steered {
                if let Ok(new) = self.docker.inspect(&new_id).await {
                    self.steer(live.service, live.fronting, &new, name)
                        .await
                        .context("steering the proxies back to the previous container")?;
                    self.drain(
                        live.service,
                        live.fronting,
                        &new_id,
                        &format!("the new {name}"),
                    )
                    .await;
                }
            }
            self.docker.remove(&new_id).await?;
        }
        self.docker.rename(back.old_id, name).await?;
        if back.was_running {
            self.docker.start(back.old_id).await?;
            self.wait_healthy_ignoring_stop(back.old_id, name)
                .await
                .with_context(|| format!("{name} was put back, but is not healthy either"))?;
        }
        if live.steer {
            self.unpin(live.fronting).await?;
        } else if live.stop_first && back.was_running {
            for p in live.fronting {
                p.reload(self.docker).await?;
            }
        }
        Ok(e)
    }

    async fn start_new(
        &self,
        name: &str,
        body: ContainerCreateBody,
        extra_networks: &[(String, EndpointSettings)],
    ) -> anyhow::Result<String> {
        let id = self
            .docker
            .create(Some(name), body)
            .await
            .with_context(|| format!("creating the new {name}"))?;
        let started = async {
            for (network, endpoint) in extra_networks {
                self.docker
                    .connect_network(network, &id, endpoint.clone())
                    .await?;
            }
            self.docker.start(&id).await?;
            anyhow::Ok(())
        };
        if let Err(e) = started.await {
            let _ = self.docker.remove(&id).await;
            return Err(e.context(format!("starting the new {name}")));
        }
        Ok(id)
    }

    async fn wait_healthy(&self, id: &str, name: &str) -> anyhow::Result<()> {
        self.wait(id, name, true, true).await
    }

    /// A previous container put back: a signal must not cut the wait short, and Docker's
    /// health is what it had before (the health URL gates new releases only).
    async fn wait_healthy_ignoring_stop(&self, id: &str, name: &str) -> anyhow::Result<()> {
        self.wait(id, name, false, false).await
    }

    /// Docker's health (or running, without a HEALTHCHECK), then, for a new container and
    /// with `url`, the health URL when set.
    async fn wait(&self, id: &str, name: &str, new: bool, url: bool) -> anyhow::Result<()> {
        let stoppable = new;
        if stoppable {
            crate::pause_at(self.stop, "switching").await?;
        }
        let health_url = if new && url { self.health_url } else { None };
        let started = Instant::now();
        let deadline = self.health_timeout;
        let mut docker_ok = false;
        let mut last = String::new();
        loop {
            if stoppable {
                self.stop.check()?;
            }
            if !docker_ok {
                let status = self.docker.ready(id).await?;
                match status {
                    Health::Healthy | Health::Running => docker_ok = true,
                    Health::NotRunning if started.elapsed() > Duration::from_secs(2) => {
                        bail!("{name} stopped while starting ({status})")
                    }
                    // Docker says unhealthy only after the HEALTHCHECK's start period and
                    // retries: waiting longer would only prolong the outage.
                    Health::Unhealthy => bail!(
                        "{name} is unhealthy (Docker's health check failed its retries after {:.1} s)",
                        started.elapsed().as_secs_f64()
                    ),
                    _ => last = format!("Docker says {status}"),
                }
            }
            if docker_ok {
                match health_url {
                    None => return Ok(()),
                    Some(url) => match probe(url).await {
                        Ok(()) => return Ok(()),
                        Err(why) => last = why,
                    },
                }
            }
            if started.elapsed() >= deadline {
                bail!(
                    "{name} did not become healthy within {} s ({last})",
                    deadline.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub use lifeboat::docker::container_name;

pub fn id_of(c: &ContainerInspectResponse) -> String {
    c.id.clone().unwrap_or_default()
}

pub fn labels_of(c: &ContainerInspectResponse) -> HashMap<String, String> {
    c.config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

/// A service that publishes a host port or has a fixed address cannot run twice at once.
pub fn needs_stop_first(old: &ContainerInspectResponse) -> bool {
    let ports = old
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .is_some_and(|p| {
            p.values()
                .any(|b| b.as_ref().is_some_and(|b| !b.is_empty()))
        });
    let fixed_ip = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .is_some_and(|n| {
            n.values().any(|e| {
                e.ipam_config.as_ref().is_some_and(|i| {
                    i.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                        || i.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
                })
            })
        });
    let host_network = old
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .is_some_and(|m| m == "host");
    ports || fixed_ip || host_network
}

/// A port published on an ephemeral host port (`127.0.0.1::3000`) keeps the port the old
/// container got, so the app stays at its address across the switch (the old container has
/// released it by then: stop first).
fn keep_host_ports(old: &ContainerInspectResponse, body: &mut ContainerCreateBody) {
    let actual = old
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.clone())
        .unwrap_or_default();
    let Some(bindings) = body
        .host_config
        .as_mut()
        .and_then(|h| h.port_bindings.as_mut())
    else {
        return;
    };
    for (port, wanted) in bindings.iter_mut() {
        let Some(wanted) = wanted.as_mut() else {
            continue;
        };
        let got = actual.get(port).cloned().flatten().unwrap_or_default();
        for b in wanted.iter_mut() {
            if b.host_port.as_deref().is_some_and(|p| !p.is_empty()) {
                continue;
            }
            let ip = b.host_ip.clone().unwrap_or_default();
            let same = got.iter().find(|g| {
                let gip = g.host_ip.clone().unwrap_or_default();
                gip == ip || (ip.is_empty() && (gip == "0.0.0.0" || gip == "::"))
            });
            if let Some(g) = same {
                b.host_port.clone_from(&g.host_port);
            }
        }
    }
}

/// A container's environment without what its image's `ENV` gave it.
pub fn own_env(c: &ContainerInspectResponse, image: &ImageInspect) -> Vec<String> {
    let image_env = image
        .config
        .as_ref()
        .and_then(|i| i.env.clone())
        .unwrap_or_default();
    c.config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| !image_env.contains(kv))
        .collect()
}

/// Keep `value` only where it is the container's own, not what its image gave it.
fn own<T: PartialEq>(value: Option<T>, from_image: Option<&T>) -> Option<T> {
    match (value, from_image) {
        (Some(v), Some(i)) if v == *i => None,
        (v, _) => v,
    }
}

/// The create request for a container like `old` on `release`'s image, and the networks to
/// connect after creating it (an engine before API 1.44 takes one network at create).
pub fn spec_from(
    old: &ContainerInspectResponse,
    old_image: &ImageInspect,
    release: &Release,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let config = old.config.clone().unwrap_or_default();
    let image_config = old_image.config.clone().unwrap_or_default();
    let env = own_env(old, old_image);
    let image_labels = image_config.labels.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = config
        .labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| image_labels.get(k) != Some(v))
        .collect();
    labels.insert(LABEL_RELEASE.into(), release.version.clone());
    let short_id: String = id_of(old).chars().take(12).collect();
    let hostname = config.hostname.filter(|h| *h != short_id);

    let mut host_config: HostConfig = old.host_config.clone().unwrap_or_default();
    // Anonymous volumes (an image's VOLUME, or `- /data` in compose) go with the service, as
    // compose keeps them when it recreates a container.
    let mut binds = host_config.binds.clone().unwrap_or_default();
    let covered = |dest: &str, binds: &[String], host_config: &HostConfig| {
        binds.iter().any(|b| b.split(':').nth(1) == Some(dest))
            || host_config
                .mounts
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m.target.as_deref() == Some(dest)))
    };
    for m in old.mounts.clone().unwrap_or_default() {
        if m.typ.as_deref() != Some("volume") {
            continue;
        }
        let (Some(name), Some(dest)) = (m.name, m.destination) else {
            continue;
        };
        if !covered(&dest, &binds, &host_config) {
            let mode = if m.rw == Some(false) { ":ro" } else { "" };
            binds.push(format!("{name}:{dest}{mode}"));
        }
    }
    host_config.binds = (!binds.is_empty()).then_some(binds);

    let networks = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let endpoint = |e: &EndpointSettings| EndpointSettings {
        aliases: e.aliases.as_ref().map(|a| {
            a.iter()
                .filter(|alias| **alias != short_id)
                .cloned()
                .collect()
        }),
        ipam_config: e.ipam_config.clone(),
        links: e.links.clone(),
        driver_opts: e.driver_opts.clone(),
        ..EndpointSettings::default()
    };
    let primary = host_config.network_mode.clone().unwrap_or_default();
    let mut first = HashMap::new();
    let mut extra = Vec::new();
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    for name in names {
        let settings = endpoint(&networks[name]);
        if *name == primary || (first.is_empty() && !networks.contains_key(&primary)) {
            first.insert(name.clone(), settings);
        } else {
            extra.push((name.clone(), settings));
        }
    }

    let body = ContainerCreateBody {
        hostname,
        domainname: config.domainname.filter(|d| !d.is_empty()),
        user: own(config.user, image_config.user.as_ref()),
        exposed_ports: config.exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: Some(env),
        cmd: own(config.cmd, image_config.cmd.as_ref()),
        healthcheck: own(config.healthcheck, image_config.healthcheck.as_ref()),
        image: Some(release.image.clone()),
        working_dir: own(config.working_dir, image_config.working_dir.as_ref()),
        entrypoint: own(config.entrypoint, image_config.entrypoint.as_ref()),
        labels: Some(labels),
        stop_signal: own(config.stop_signal, image_config.stop_signal.as_ref()),
        stop_timeout: config.stop_timeout,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(first),
        }),
        ..ContainerCreateBody::default()
    };
    (body, extra)
}

/// The create request of a one-off container (migrations) on `release`'s image, configured as
/// the service's container `like` is (environment, volumes, networks), with `command`, no
/// published port, no restart policy, and none of compose's labels (compose must not take it
/// for one of the service's replicas).
pub fn oneoff_from(
    like: &ContainerInspectResponse,
    like_image: &ImageInspect,
    release: &Release,
    command: &[String],
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let (mut body, extra) = spec_from(like, like_image, release);
    body.cmd = Some(command.to_vec());
    body.hostname = None;
    body.healthcheck = Some(bollard::models::HealthConfig {
        test: Some(vec!["NONE".into()]),
        ..Default::default()
    });
    if let Some(labels) = body.labels.as_mut() {
        labels.retain(|k, _| !k.starts_with("com.docker.compose."));
        labels.insert("io.lifeboat.oneoff".into(), "migrate".into());
    }
    if let Some(h) = body.host_config.as_mut() {
        h.port_bindings = None;
        h.publish_all_ports = None;
        h.restart_policy = None;
        h.auto_remove = None;
    }
    if let Some(n) = body.networking_config.as_mut() {
        if let Some(endpoints) = n.endpoints_config.as_mut() {
            for e in endpoints.values_mut() {
                e.aliases = None;
                e.ipam_config = None;
            }
        }
    }
    let extra = extra
        .into_iter()
        .map(|(n, mut e)| {
            e.aliases = None;
            e.ipam_config = None;
            (n, e)
        })
        .collect();
    (body, extra)
}

/// The compose labels that say which project and service a container belongs to.
pub fn belongs(c: &ContainerInspectResponse, project: &str, service: &str) -> bool {
    let labels = labels_of(c);
    labels.get(LABEL_PROJECT).is_some_and(|p| p == project)
        && labels.get(LABEL_SERVICE).is_some_and(|s| s == service)
}
