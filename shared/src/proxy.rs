//! Reverse proxies in front of the app: found, told where the app now is, and waited on.
//!
//! Every seed's stack puts nginx in front of the app, which publishes no port of its own. nginx
//! resolves `proxy_pass http://app:3000` once, when it loads its configuration, and keeps that
//! address: after a switch it would send every request to a container that is gone (the trap of
//! docker-rollout#14 and dokku#8595). Caddy resolves the name at each new connection, so it
//! would send requests to a new container before it listens.
//!
//! Docker's DNS cannot drop one container from a name without cutting that container's open
//! connections, so lifeboat pins the name in the proxy's own `/etc/hosts` (which the resolver
//! of nginx, Caddy and HAProxy reads before DNS) for the length of a switch:
//! 1. [`Proxy::pin`] the service's names to the containers that serve now (Caddy: before the
//!    new container starts, so that it gets no request before it is healthy);
//! 2. once the new container is healthy, pin them to it instead and [`Proxy::reload`] (nginx:
//!    `nginx -t`, then a graceful `nginx -s reload`: old workers finish their requests);
//! 3. [`drain`] the old container until it receives nothing (bounded);
//! 4. stop it, then [`Proxy::unpin`]: Docker's DNS now names exactly the containers that run.
//!
//! Every name and address written comes from Docker and is checked first: a line of
//! `/etc/hosts` is only ever an IP address and DNS names.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;

use crate::docker::{Docker, DockerError, LABEL_SERVICE};

/// The kinds of proxy lifeboat knows how to steer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Haproxy,
    Traefik,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "Caddy",
            Kind::Haproxy => "HAProxy",
            Kind::Traefik => "Traefik",
        }
    }

    /// What a switch does to a proxy of this kind, for the plan.
    pub fn action(self) -> &'static str {
        match self {
            Kind::Nginx => "`nginx -t` first; at each switch the service's name pinned to the new container in its /etc/hosts, `nginx -t`, `nginx -s reload`, the old container drained",
            Kind::Caddy => "the service's name pinned in its /etc/hosts to the serving container (Caddy resolves it per connection), moved to the new one once healthy, the old container drained",
            Kind::Haproxy => "at each switch the service's name pinned to the new container in its /etc/hosts, `haproxy -c`, a graceful reload (SIGUSR2 to its master), the old container drained",
            Kind::Traefik => "nothing to change (it follows Docker's events and health); the old container drained until it receives nothing",
        }
    }

    /// Whether it resolves the app's name at each new connection (rather than at load).
    pub fn resolves_per_connection(self) -> bool {
        matches!(self, Kind::Caddy)
    }

    /// The kind a container runs, from its image reference, entrypoint and command.
    pub fn of(info: &ContainerInspectResponse) -> Option<Kind> {
        let config = info.config.clone().unwrap_or_default();
        let mut words: Vec<String> = config.image.into_iter().collect();
        words.extend(config.entrypoint.unwrap_or_default());
        words.extend(config.cmd.unwrap_or_default().into_iter().take(1));
        let words = words.join(" ").to_ascii_lowercase();
        [
            ("nginx", Kind::Nginx),
            ("caddy", Kind::Caddy),
            ("haproxy", Kind::Haproxy),
            ("traefik", Kind::Traefik),
        ]
        .into_iter()
        .find(|(w, _)| words.contains(w))
        .map(|(_, k)| k)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("deploy.proxies (LIFEBOAT_DEPLOY_PROXIES) names {service}, but {detail}")]
    NotAProxy { service: String, detail: String },
    #[error("the {kind} proxy {name} refuses its own configuration (`{test}`): {detail}")]
    BadConfig {
        kind: &'static str,
        name: String,
        test: String,
        detail: String,
    },
    #[error("cannot rewrite /etc/hosts in the proxy {name} (lifeboat runs `sh` and `head` there as root): {detail}")]
    Hosts { name: String, detail: String },
    #[error("Docker gave {what} {value:?} for {container}, which lifeboat will not write into a proxy's /etc/hosts")]
    Hostile {
        what: &'static str,
        value: String,
        container: String,
    },
}

/// A proxy container of the compose project.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub id: String,
    pub name: String,
    pub service: Option<String>,
    pub kind: Kind,
    /// The networks it is on, by name.
    pub networks: BTreeSet<String>,
    /// `--config` and `--adapter` of its command line (Caddy), for a forced reload.
    config_args: Vec<String>,
    /// Its image's id: a maintenance stand-in runs the same server.
    image: String,
}

/// The proxies of `project` in front of the `served` compose services: the services named in
/// `configured` (deploy.proxies; `none` for none), or else every running container of the
/// project that runs nginx, Caddy, HAProxy or Traefik and shares a network with one of them.
pub async fn find(
    docker: &Docker,
    project: &str,
    configured: &[String],
    served: &[String],
) -> Result<Vec<Proxy>, ProxyError> {
    if configured.iter().any(|s| s == "none") {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    if configured.is_empty() {
        let mut served_networks = BTreeSet::new();
        let mut candidates = Vec::new();
        for c in docker.compose_containers(project, None, false).await? {
            let info = docker.inspect(&c.id).await?;
            if c.service.as_ref().is_some_and(|s| served.contains(s)) {
                served_networks.extend(networks_of(&info));
            } else if let Some(kind) = Kind::of(&info) {
                candidates.push(Proxy::new(&info, kind));
            }
        }
        for p in candidates {
            // A name is not a proxy (an `nginx-exporter`): its own binary must answer.
            if !p.networks.is_disjoint(&served_networks) && p.answers(docker).await {
                found.push(p);
            }
        }
    } else {
        for service in configured {
            let containers = docker
                .compose_containers(project, Some(service), false)
                .await?;
            if containers.is_empty() {
                return Err(ProxyError::NotAProxy {
                    service: service.clone(),
                    detail: format!("compose project {project} has no running container of it"),
                });
            }
            for c in containers {
                let info = docker.inspect(&c.id).await?;
                let Some(kind) = Kind::of(&info) else {
                    return Err(ProxyError::NotAProxy {
                        service: service.clone(),
                        detail: format!(
                            "its container {} runs none of nginx, Caddy, HAProxy or Traefik (by its image and command)",
                            c.name
                        ),
                    });
                };
                found.push(Proxy::new(&info, kind));
            }
        }
    }
    Ok(found)
}

impl Proxy {
    fn new(info: &ContainerInspectResponse, kind: Kind) -> Self {
        let config = info.config.clone().unwrap_or_default();
        let argv: Vec<String> = config
            .entrypoint
            .unwrap_or_default()
            .into_iter()
            .chain(config.cmd.unwrap_or_default())
            .collect();
        let mut config_args = Vec::new();
        for pair in argv.windows(2) {
            if matches!(pair[0].as_str(), "--config" | "--adapter") {
                config_args.extend(pair.iter().cloned());
            }
        }
        Self {
            id: info.id.clone().unwrap_or_default(),
            name: crate::docker::container_name(info),
            service: config.labels.and_then(|l| l.get(LABEL_SERVICE).cloned()),
            kind,
            networks: networks_of(info),
            config_args,
            image: info.image.clone().unwrap_or_default(),
        }
    }

    /// Whether the proxy's own binary runs in it (`nginx -v`, `caddy version`, `haproxy -v`);
    /// Traefik is taken at its word (its images have no shell to ask).
    async fn answers(&self, docker: &Docker) -> bool {
        let command: &[&str] = match self.kind {
            Kind::Nginx => &["nginx", "-v"],
            Kind::Caddy => &["caddy", "version"],
            Kind::Haproxy => &["haproxy", "-v"],
            Kind::Traefik => return true,
        };
        docker
            .exec_as_root(&self.id, command, None, &mut tokio::io::sink())
            .await
            .is_ok()
    }

    /// Whether it can reach `container` (they share a network).
    pub fn fronts(&self, container: &ContainerInspectResponse) -> bool {
        !self.networks.is_disjoint(&networks_of(container))
    }

    /// The proxy's own test of its configuration, where it has one: `nginx -t`, `haproxy -c`,
    /// `caddy validate`. A configuration that fails it would make the next reload fail.
    pub async fn test(&self, docker: &Docker) -> Result<(), ProxyError> {
        let command: Vec<String> = match self.kind {
            Kind::Nginx => vec!["nginx".into(), "-t".into(), "-q".into()],
            Kind::Haproxy => vec![
                "haproxy".into(),
                "-c".into(),
                "-q".into(),
                "-f".into(),
                "/usr/local/etc/haproxy/haproxy.cfg".into(),
            ],
            Kind::Caddy if !self.config_args.is_empty() => {
                let mut a = vec!["caddy".into(), "validate".into()];
                a.extend(self.config_args.iter().cloned());
                a
            }
            Kind::Caddy | Kind::Traefik => return Ok(()),
        };
        self.run_in(docker, &command).await
    }

    /// Make the proxy route to where its configuration's names now point: nginx and HAProxy
    /// re-resolve at a graceful reload (after their own configuration test); Caddy drops its
    /// pooled connections at a forced reload; Traefik follows Docker by itself.
    pub async fn reload(&self, docker: &Docker) -> Result<(), ProxyError> {
        let command: Vec<String> = match self.kind {
            Kind::Nginx => {
                self.test(docker).await?;
                vec!["nginx".into(), "-s".into(), "reload".into()]
            }
            Kind::Haproxy => {
                self.test(docker).await?;
                vec!["kill".into(), "-USR2".into(), "1".into()]
            }
            Kind::Caddy if !self.config_args.is_empty() => {
                let mut a = vec!["caddy".into(), "reload".into(), "--force".into()];
                a.extend(self.config_args.iter().cloned());
                a
            }
            Kind::Caddy | Kind::Traefik => return Ok(()),
        };
        self.run_in(docker, &command).await
    }

    /// Run `command` in the proxy as root; a failure is its configuration refused.
    async fn run_in(&self, docker: &Docker, command: &[String]) -> Result<(), ProxyError> {
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        match docker
            .exec_as_root(&self.id, &words, None, &mut tokio::io::sink())
            .await
        {
            Ok(_) => Ok(()),
            Err(DockerError::ExecFailed { stderr, code, .. }) => Err(ProxyError::BadConfig {
                kind: self.kind.name(),
                name: self.name.clone(),
                test: command.join(" "),
                detail: last_lines(&stderr, code),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Pin names to addresses in the proxy's `/etc/hosts`, replacing an earlier pin.
    pub async fn pin(&self, docker: &Docker, pins: &[Pin]) -> Result<(), ProxyError> {
        let hosts = self.read_hosts(docker).await?;
        self.write_hosts(docker, &with_pins(&hosts, pins)).await
    }

    /// Remove lifeboat's pin from the proxy's `/etc/hosts`; whether there was one.
    pub async fn unpin(&self, docker: &Docker) -> Result<bool, ProxyError> {
        let hosts = self.read_hosts(docker).await?;
        let clean = without_pins(&hosts);
        if clean == hosts {
            return Ok(false);
        }
        self.write_hosts(docker, &clean).await?;
        Ok(true)
    }

    async fn read_hosts(&self, docker: &Docker) -> Result<String, ProxyError> {
        let mut out = Vec::new();
        docker
            .exec_as_root(
                &self.id,
                &["head", "-c", "1048576", "/etc/hosts"],
                None,
                &mut out,
            )
            .await
            .map_err(|e| self.hosts_error(&e))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// In place: `/etc/hosts` is a file Docker bind-mounts, which cannot be renamed over.
    async fn write_hosts(&self, docker: &Docker, text: &str) -> Result<(), ProxyError> {
        let mut input = text.as_bytes();
        docker
            .exec_as_root(
                &self.id,
                &["sh", "-c", "cat > /etc/hosts"],
                Some(&mut input),
                &mut tokio::io::sink(),
            )
            .await
            .map_err(|e| self.hosts_error(&e))?;
        Ok(())
    }

    fn hosts_error(&self, e: &DockerError) -> ProxyError {
        ProxyError::Hosts {
            name: self.name.clone(),
            detail: e.to_string(),
        }
    }
}

/// How long a resolver may keep an old `/etc/hosts` (Go's cache, in Caddy and Traefik).
pub const HOSTS_CACHE: Duration = Duration::from_secs(5);

/// The label of a maintenance stand-in; its value is the compose project.
pub const LABEL_MAINTENANCE: &str = "io.lifeboat.maintenance";

/// What a maintenance stand-in answers, and for how long clients should wait.
const MAINTENANCE_BODY: &str = "Down for maintenance (a database restore); back in a moment.";
const RETRY_AFTER: u32 = 10;

impl Proxy {
    /// While `app` is down: a stand-in container of the proxy's own image (nginx or Caddy) on
    /// the proxy's networks answers 503 with `Retry-After` on the app's exposed ports, and the
    /// app's names are pinned to it. `None` when this kind of proxy has no stand-in or the app
    /// exposes no port. [`remove_maintenance`] takes it away.
    pub async fn maintenance(
        &self,
        docker: &Docker,
        project: &str,
        app: &[&ContainerInspectResponse],
    ) -> Result<Option<String>, ProxyError> {
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        for c in app {
            let exposed = c
                .config
                .as_ref()
                .and_then(|c| c.exposed_ports.clone())
                .unwrap_or_default();
            ports.extend(exposed.iter().filter_map(|p| {
                let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                (proto == "tcp").then(|| port.parse::<u16>().ok()).flatten()
            }));
        }
        let Some((config, run)) = maintenance_config(self.kind, &ports) else {
            return Ok(None);
        };
        // The configuration travels in the environment: no quoting of it in a command line.
        let script = format!(
            "printf '%s' \"$LIFEBOAT_MAINTENANCE\" > /tmp/lifeboat-maintenance.conf && exec {run}"
        );
        let shared: Vec<String> = app
            .iter()
            .flat_map(|c| networks_of(c))
            .filter(|n| self.networks.contains(n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(first) = shared.first() else {
            return Ok(None);
        };
        let name = format!("{}_lifeboat_maintenance", self.name);
        docker.remove(&name).await?;
        let body = bollard::models::ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
            cmd: Some(Vec::new()),
            env: Some(vec![format!("LIFEBOAT_MAINTENANCE={config}")]),
            user: Some("0".into()),
            labels: Some(std::collections::HashMap::from([(
                LABEL_MAINTENANCE.to_owned(),
                project.to_owned(),
            )])),
            healthcheck: Some(bollard::models::HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(first.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = docker.create(Some(&name), body).await?;
        for network in &shared[1..] {
            docker
                .connect_network(network, &id, bollard::models::EndpointSettings::default())
                .await?;
        }
        docker.start(&id).await?;
        // Serving once it listens on every port (a bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = docker.inspect(&id).await?;
            let pid = info.state.as_ref().and_then(|s| s.pid).unwrap_or(0);
            if pid > 0 && listens(pid, &ports) {
                let pins = maintenance_pins(self, app, &info)?;
                self.pin(docker, &pins).await?;
                self.reload(docker).await?;
                if self.kind.resolves_per_connection() {
                    tokio::time::sleep(HOSTS_CACHE).await;
                }
                return Ok(Some(name));
            }
            if Instant::now() >= deadline || info.state.and_then(|s| s.running) != Some(true) {
                let tail = docker.logs_tail(&id, 5).await.unwrap_or_default();
                docker.remove(&id).await?;
                return Err(ProxyError::Hosts {
                    name: name.clone(),
                    detail: format!("the maintenance stand-in did not start: {}", tail.trim()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Remove every maintenance stand-in of `project`; how many there were.
pub async fn remove_maintenance(docker: &Docker, project: &str) -> Result<usize, ProxyError> {
    let ids = docker.labelled(LABEL_MAINTENANCE, project).await?;
    for id in &ids {
        docker.remove(id).await?;
    }
    Ok(ids.len())
}

/// The stand-in's server configuration, and the command that runs it from
/// `/tmp/lifeboat-maintenance.conf`.
fn maintenance_config(kind: Kind, ports: &BTreeSet<u16>) -> Option<(String, &'static str)> {
    if ports.is_empty() {
        return None;
    }
    match kind {
        Kind::Nginx => {
            let listen: String = ports.iter().fold(String::new(), |acc, p| {
                acc + &format!("        listen {p};\n")
            });
            Some((
                format!(
                    "daemon off;\npid /tmp/lifeboat-maintenance.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n    access_log off;\n    server {{\n{listen}        location / {{\n            add_header Retry-After {RETRY_AFTER} always;\n            return 503 \"{MAINTENANCE_BODY}\";\n        }}\n    }}\n}}\n"
                ),
                "nginx -c /tmp/lifeboat-maintenance.conf",
            ))
        }
        Kind::Caddy => {
            let sites: Vec<String> = ports.iter().map(|p| format!(":{p}")).collect();
            Some((
                format!(
                    "{{\n\tadmin off\n\tauto_https off\n}}\n{} {{\n\theader Retry-After {RETRY_AFTER}\n\trespond \"{MAINTENANCE_BODY}\" 503\n}}\n",
                    sites.join(", ")
                ),
                "caddy run --adapter caddyfile --config /tmp/lifeboat-maintenance.conf",
            ))
        }
        Kind::Haproxy | Kind::Traefik => None,
    }
}

/// Pins of every app container's names (on the proxy's networks) to the stand-in.
fn maintenance_pins(
    proxy: &Proxy,
    app: &[&ContainerInspectResponse],
    stand_in: &ContainerInspectResponse,
) -> Result<Vec<Pin>, ProxyError> {
    let mut pins: Vec<Pin> = Vec::new();
    for c in app {
        for (network, names) in names_on(proxy, c)? {
            if let Some(e) = endpoint(stand_in, &network) {
                add_pin(&mut pins, address(stand_in, &e)?, names);
            }
        }
    }
    Ok(pins)
}

/// Whether the process `pid` (its network namespace) listens on every one of `ports`.
fn listens(pid: i64, ports: &BTreeSet<u16>) -> bool {
    let mut text = String::new();
    let read = std::fs::File::open(format!("/proc/{pid}/net/tcp"))
        .and_then(|f| f.take(8 << 20).read_to_string(&mut text));
    if read.is_err() {
        // Not on the engine's host: a moment for the server to start.
        std::thread::sleep(Duration::from_millis(500));
        return true;
    }
    let _ = std::fs::File::open(format!("/proc/{pid}/net/tcp6"))
        .and_then(|f| f.take(8 << 20).read_to_string(&mut text));
    ports.iter().all(|p| {
        let hex = format!(":{p:04X}");
        text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&"0A") && f.get(1).is_some_and(|a| a.ends_with(&hex))
        })
    })
}

fn last_lines(stderr: &str, code: i64) -> String {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    if tail.is_empty() {
        format!("exit code {code}")
    } else {
        tail
    }
}

/// The networks a container is on, by name.
pub fn networks_of(info: &ContainerInspectResponse) -> BTreeSet<String> {
    info.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// One line of lifeboat's block in a proxy's `/etc/hosts`: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// The pins that send `container`'s names on the networks of `proxy` to the containers in
/// `serving` (each name to every container that has it on that network). `container` is the
/// one whose names are moved: the old one at a switch, or the new one when it is put back.
pub fn pins_for(
    proxy: &Proxy,
    container: &ContainerInspectResponse,
    serving: &[&ContainerInspectResponse],
) -> Result<Vec<Pin>, ProxyError> {
    let mut pins: Vec<Pin> = Vec::new();
    for (network, names) in names_on(proxy, container)? {
        for other in serving {
            let Some(e) = endpoint(other, &network) else {
                continue;
            };
            let theirs = e.aliases.clone().unwrap_or_default();
            let shared: Vec<String> = names
                .iter()
                .filter(|n| theirs.contains(n))
                .cloned()
                .collect();
            if !shared.is_empty() {
                add_pin(&mut pins, address(other, &e)?, shared);
            }
        }
    }
    Ok(pins)
}

/// The names `container` answers to on each network it shares with `proxy`: its network
/// aliases (the compose service's name, custom aliases, its name), but not its short id, which
/// is its alone; each checked.
fn names_on(
    proxy: &Proxy,
    container: &ContainerInspectResponse,
) -> Result<Vec<(String, Vec<String>)>, ProxyError> {
    let name_of = crate::docker::container_name(container);
    let short: String = container
        .id
        .clone()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let networks = container
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (network, e) in networks {
        if !proxy.networks.contains(&network) {
            continue;
        }
        let names: Vec<String> = e
            .aliases
            .unwrap_or_default()
            .into_iter()
            .filter(|a| *a != short)
            .collect();
        if let Some(bad) = names.iter().find(|n| !is_dns_name(n)) {
            return Err(ProxyError::Hostile {
                what: "the network alias",
                value: bad.clone(),
                container: name_of,
            });
        }
        out.push((network, names));
    }
    Ok(out)
}

/// A container's endpoint on `network`.
fn endpoint(
    c: &ContainerInspectResponse,
    network: &str,
) -> Option<bollard::models::EndpointSettings> {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network).cloned())
}

/// The address of `c`'s endpoint `e`, checked.
fn address(
    c: &ContainerInspectResponse,
    e: &bollard::models::EndpointSettings,
) -> Result<IpAddr, ProxyError> {
    let raw = e.ip_address.clone().unwrap_or_default();
    raw.parse().map_err(|_| ProxyError::Hostile {
        what: "the address",
        value: raw,
        container: crate::docker::container_name(c),
    })
}

/// `names` at `ip` in `pins`, each name once.
fn add_pin(pins: &mut Vec<Pin>, ip: IpAddr, names: Vec<String>) {
    match pins.iter_mut().find(|p| p.ip == ip) {
        Some(p) => {
            for n in names {
                if !p.names.contains(&n) {
                    p.names.push(n);
                }
            }
        }
        None => pins.push(Pin { ip, names }),
    }
}

/// A name Docker could give as an alias and a resolver would read back unchanged.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

const BEGIN: &str = "# lifeboat: begin (a switch under way; lifeboat removes this block)";
const END: &str = "# lifeboat: end";

/// `hosts` without lifeboat's block.
pub fn without_pins(hosts: &str) -> String {
    let mut out = String::with_capacity(hosts.len());
    let mut inside = false;
    for line in hosts.lines() {
        if line.starts_with("# lifeboat: begin") {
            inside = true;
        } else if inside && line == END {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `hosts` with lifeboat's block (and only that one) first, so its lines win over Docker's.
pub fn with_pins(hosts: &str, pins: &[Pin]) -> String {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    for p in pins {
        let _ = writeln!(out, "{}\t{}", p.ip, p.names.join(" "));
    }
    out.push_str(END);
    out.push('\n');
    out.push_str(&without_pins(hosts));
    out
}

/// What a drain saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// No new connection and none open for the quiet period.
    Quiet(Duration),
    /// Still receiving (or holding connections) when the bound was reached.
    TimedOut { open: usize },
    /// Its connections cannot be seen from here (another host's engine): waited the bound.
    Unobserved,
}

/// Wait until `container` receives nothing: no new connection from another host to one of
/// its listening ports for `quiet`, at most `max`. Connections are told apart by their peer's
/// address and port in the kernel's TCP table, where a closed one lingers in `TIME_WAIT`, so a
/// request of a millisecond is still seen at the next look; its own HEALTHCHECK, over
/// loopback, does not count. An idle keep-alive connection a proxy no longer uses does not hold
/// the drain; a request still in flight is finished by the container's own graceful stop.
pub async fn drain(docker: &Docker, container: &str, max: Duration, quiet: Duration) -> Drained {
    let quiet = quiet.min(max);
    let started = Instant::now();
    let pid = docker
        .inspect(container)
        .await
        .ok()
        .and_then(|i| i.state.and_then(|s| s.pid))
        .filter(|p| *p > 0);
    let Some(mut last) = pid.and_then(traffic) else {
        tokio::time::sleep(max).await;
        return Drained::Unobserved;
    };
    let mut quiet_since = Instant::now();
    loop {
        if quiet_since.elapsed() >= quiet {
            return Drained::Quiet(started.elapsed());
        }
        if started.elapsed() >= max {
            return Drained::TimedOut { open: last.open };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(now) = pid.and_then(traffic) else {
            // The process is gone: nothing more can reach it.
            return Drained::Quiet(started.elapsed());
        };
        if !now.peers.is_subset(&last.peers) {
            quiet_since = Instant::now();
        }
        last = now;
    }
}

/// A container's inbound TCP connections, from its network namespace's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Every connection from another host to one of its listening ports that the kernel
    /// still knows (open, closing or in `TIME_WAIT`), by local port and peer.
    pub peers: BTreeSet<String>,
    /// Of those, the ones open (`ESTABLISHED`).
    pub open: usize,
}

/// Read through the host's `/proc/<pid>/net` (lifeboat on the engine's host); `None` when it
/// cannot be read. Each file is read up to a bound.
fn traffic(pid: i64) -> Option<Traffic> {
    let read = |name: &str| -> Option<String> {
        let mut text = String::new();
        std::fs::File::open(format!("/proc/{pid}/net/{name}"))
            .ok()?
            .take(8 << 20)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    };
    let mut tables = read("tcp")?;
    tables.push_str(&read("tcp6").unwrap_or_default());
    Some(inbound(&tables))
}

/// Connections from another host to a listening port, in `/proc/net/tcp` tables (loopback
/// peers, such as its own HEALTHCHECK, do not count; nor do its own outbound connections).
fn inbound(tables: &str) -> Traffic {
    // (local port, peer address, peer port, state)
    let rows: Vec<(&str, &str, &str, &str)> = tables
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = f.get(1)?.rsplit_once(':')?.1;
            let (peer, peer_port) = f.get(2)?.rsplit_once(':')?;
            Some((port, peer, peer_port, *f.get(3)?))
        })
        .collect();
    let listening: BTreeSet<&str> = rows
        .iter()
        .filter(|(_, _, _, st)| *st == "0A")
        .map(|(p, _, _, _)| *p)
        .collect();
    let loopback = |peer: &str| {
        // 127.x.x.x is written little-endian: its last two hex digits are 7F.
        (peer.len() == 8 && peer.ends_with("7F"))
            || peer == "00000000000000000000000001000000"
            || (peer.len() == 32
                && peer.starts_with("0000000000000000FFFF0000")
                && peer.ends_with("7F"))
    };
    let mut t = Traffic {
        peers: BTreeSet::new(),
        open: 0,
    };
    for (port, peer, peer_port, st) in rows {
        if st == "0A" || !listening.contains(port) || loopback(peer) {
            continue;
        }
        t.peers.insert(format!("{port}<{peer}:{peer_port}"));
        if st == "01" {
            t.open += 1;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_replace_lifeboats_block_and_only_it() {
        let docker = "127.0.0.1\tlocalhost\n172.18.0.4\tabc123\n";
        let pins = [Pin {
            ip: "172.18.0.9".parse().expect("an address"),
            names: vec!["app".into(), "web".into()],
        }];
        let once = with_pins(docker, &pins);
        assert!(once.starts_with("# lifeboat: begin"));
        assert!(once.contains("172.18.0.9\tapp web\n"));
        assert!(once.ends_with(docker));
        let twice = with_pins(&once, &pins);
        assert_eq!(once, twice);
        assert_eq!(without_pins(&twice), docker);
    }

    #[test]
    fn inbound_connections_are_read_as_the_kernel_writes_them() {
        let tcp = "  sl  local_address rem_address   st tx_queue\n\
           0: 00000000:0BB8 00000000:0000 0A 00000000:00000000\n\
           1: 0400120A:0BB8 0300120A:D2F0 01 00000000:00000000\n\
           2: 0400120A:0BB8 0300120A:D2F2 06 00000000:00000000\n\
           3: 0400120A:9C40 0200120A:1538 01 00000000:00000000\n\
           4: 0100007F:0BB8 0100007F:A000 01 00000000:00000000\n";
        // Two connections from the proxy to :3000, one open and one closed; neither the
        // outbound one to PostgreSQL nor the health check's over loopback counts.
        let t = inbound(tcp);
        assert_eq!(t.open, 1);
        assert_eq!(t.peers.len(), 2);
    }

    /// A container on network `demo` with `aliases` at `ip`.
    fn on_demo(id: &str, name: &str, aliases: &[&str], ip: &str) -> ContainerInspectResponse {
        let endpoint = bollard::models::EndpointSettings {
            aliases: Some(aliases.iter().map(|a| (*a).to_owned()).collect()),
            ip_address: Some(ip.to_owned()),
            ..Default::default()
        };
        ContainerInspectResponse {
            id: Some(id.to_owned()),
            name: Some(format!("/{name}")),
            network_settings: Some(bollard::models::NetworkSettings {
                networks: Some(std::collections::HashMap::from([(
                    "demo".to_owned(),
                    endpoint,
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn nginx_on_demo() -> Proxy {
        Proxy::new(
            &on_demo("p0", "proxy", &["proxy"], "172.18.0.2"),
            Kind::Nginx,
        )
    }

    #[test]
    fn the_old_containers_names_go_to_the_containers_that_share_them() {
        let old = on_demo(
            "abcdef1234567890",
            "app_prev",
            &["app", "abcdef123456", "web"],
            "172.18.0.5",
        );
        let new = on_demo(
            "0123456789abcdef",
            "app",
            &["app", "web", "0123456789ab"],
            "172.18.0.9",
        );
        let worker = on_demo("fedcba", "worker", &["worker"], "172.18.0.7");
        let pins = pins_for(&nginx_on_demo(), &old, &[&new, &worker]).expect("pins");
        assert_eq!(
            pins,
            [Pin {
                ip: "172.18.0.9".parse().expect("an address"),
                names: vec!["app".into(), "web".into()],
            }]
        );
        // The stand-in of a maintenance page takes every name of the app, whatever its own.
        let stand_in = on_demo("5e", "proxy_lifeboat_maintenance", &[], "172.18.0.11");
        let pins = maintenance_pins(&nginx_on_demo(), &[&new], &stand_in).expect("pins");
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].ip.to_string(), "172.18.0.11");
        assert_eq!(pins[0].names, ["app", "web"]);
    }

    #[test]
    fn an_alias_or_address_that_is_not_one_is_refused() {
        let hostile = on_demo("ab", "app", &["app\n10.0.0.1 bank.example"], "172.18.0.5");
        let new = on_demo("cd", "app", &["app"], "172.18.0.9");
        assert!(matches!(
            pins_for(&nginx_on_demo(), &hostile, &[&new]),
            Err(ProxyError::Hostile { .. })
        ));
        let old = on_demo("ab", "app", &["app"], "172.18.0.5");
        let garbled = on_demo("cd", "app", &["app"], "172.18.0.9 evil");
        assert!(matches!(
            pins_for(&nginx_on_demo(), &old, &[&garbled]),
            Err(ProxyError::Hostile { .. })
        ));
    }

    #[test]
    fn only_dns_names_go_into_hosts() {
        assert!(is_dns_name("app"));
        assert!(is_dns_name("my_app.internal"));
        assert!(!is_dns_name("app\n1.2.3.4 bank"));
        assert!(!is_dns_name("app web"));
        assert!(!is_dns_name(""));
    }
}
