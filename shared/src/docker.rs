//! The Docker engine, through its API (bollard), never by parsing the docker CLI's output.
//!
//! lifeboat runs beside a compose stack, so containers are found the way compose itself finds
//! them: by the `com.docker.compose.project` and `com.docker.compose.service` labels. The API
//! version is negotiated, so engines from 20.10 on work, and `DOCKER_HOST` is honoured.
//!
//! `exec` streams stdout to a writer (a database dump can be larger than memory) and checks the
//! exit code: a command that fails inside the container is an error here, never a silent empty
//! stream. `exec_with_input` also streams a reader into the command's stdin (a restore can be
//! larger than memory too), a chunk at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::HealthStatusEnum as H;
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, RenameContainerOptions,
    StartContainerOptions, StopContainerOptions, TagImageOptions,
};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The labels compose puts on every container it creates.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// The labels `docker stack deploy` puts on services, and Swarm on their tasks' containers.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";
pub const LABEL_SWARM_SERVICE: &str = "com.docker.swarm.service.name";

/// What lifeboat drives: a compose project's containers or a Swarm stack's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Compose,
    Swarm,
}

/// The project or stack lifeboat works on, and on which engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub engine: Engine,
    /// The compose project's or the stack's name.
    pub name: String,
}

impl Scope {
    pub fn compose(project: &str) -> Self {
        Self {
            engine: Engine::Compose,
            name: project.to_owned(),
        }
    }

    pub fn swarm(stack: &str) -> Self {
        Self {
            engine: Engine::Swarm,
            name: stack.to_owned(),
        }
    }

    pub fn is_swarm(&self) -> bool {
        self.engine == Engine::Swarm
    }

    /// A service's name for the engine: `app` in compose, `<stack>_app` on Swarm.
    pub fn service_name(&self, service: &str) -> String {
        match self.engine {
            Engine::Compose => service.to_owned(),
            Engine::Swarm => format!("{}_{service}", self.name),
        }
    }

    /// The labels that select the scope's containers (and one service's).
    fn labels(&self, service: Option<&str>) -> Vec<String> {
        let (scope, by_service) = match self.engine {
            Engine::Compose => (LABEL_PROJECT, LABEL_SERVICE),
            Engine::Swarm => (LABEL_STACK, LABEL_SWARM_SERVICE),
        };
        let mut labels = vec![format!("{scope}={}", self.name)];
        if let Some(s) = service {
            labels.push(format!("{by_service}={}", self.service_name(s)));
        }
        labels
    }

    /// A container's service, as lifeboat names it (without the stack's prefix on Swarm).
    fn service_of(&self, labels: &HashMap<String, String>) -> Option<String> {
        match self.engine {
            Engine::Compose => labels.get(LABEL_SERVICE).cloned(),
            Engine::Swarm => labels.get(LABEL_SWARM_SERVICE).map(|s| {
                s.strip_prefix(&format!("{}_", self.name))
                    .unwrap_or(s)
                    .to_owned()
            }),
        }
    }

    /// What to run to see whether it is up.
    pub fn up_hint(&self) -> String {
        match self.engine {
            Engine::Compose => format!("is the stack up? (`docker compose -p {} ps`)", self.name),
            Engine::Swarm => format!(
                "is the stack deployed, and its task on this node? (`docker stack ps {}`; a database on another node needs LIFEBOAT_SWARM_ONEOFF or DATABASE_URL)",
                self.name
            ),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.engine {
            Engine::Compose => write!(f, "compose project `{}`", self.name),
            Engine::Swarm => write!(f, "Swarm stack `{}`", self.name),
        }
    }
}

/// The most of a failing command's stderr kept for its error message.
const STDERR_KEPT: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine did not answer: said once, with the root cause only (the client's error
    /// chain repeats itself three times over).
    #[error(
        "cannot reach the Docker engine at {host}: {reason}. Is it running? Start it with \
         `sudo systemctl start docker` (or run `dockerd`), or point DOCKER_HOST at the engine"
    )]
    Unreachable { host: String, reason: String },
    /// DOCKER_HOST is not an address lifeboat can use (exit 2).
    #[error(
        "DOCKER_HOST={host:?} is not an engine address: give unix:///path/to/docker.sock, \
         tcp://HOST:PORT or http://HOST:PORT (TLS to the engine is not supported)"
    )]
    BadHost { host: String },
    #[error("no running container for service `{service}` of {scope} on this engine; {}", scope.up_hint())]
    NoContainer { scope: Scope, service: String },
    #[error(
        "{count} running containers for service `{service}` of {scope}; \
         name the one to use (LIFEBOAT_DB_CONTAINER)"
    )]
    Ambiguous {
        scope: Scope,
        service: String,
        count: usize,
    },
    #[error("container `{0}` does not exist")]
    NotFound(String),
    #[error(
        "`{command}` in container {container} exited with code {code}{}",
        stderr_suffix(stderr)
    )]
    ExecFailed {
        container: String,
        command: String,
        code: i64,
        stderr: String,
    },
    #[error("container {container} did not become healthy within {} s (last status: {status})", waited.as_secs())]
    NotHealthy {
        container: String,
        status: Health,
        waited: Duration,
    },
    #[error("building image {tag} failed: {message}")]
    Build { tag: String, message: String },
    #[error("writing the output of `{command}` failed: {source}")]
    Output {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the input of `{command}` failed: {source}")]
    Input {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the build context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker API ({op}): {source}")]
    Api {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The health of a container as Docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// Running, with no HEALTHCHECK: running is the best we know.
    Running,
    /// Not running at all (exited, created, dead, paused).
    NotRunning,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::Running => "running (no health check)",
            Health::NotRunning => "not running",
        })
    }
}

/// A container, as lifeboat needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub project: Option<String>,
    pub service: Option<String>,
}

/// What an `exec` produced besides its streamed stdout.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout_bytes: u64,
    /// Bytes of input the command was given on stdin (`exec_with_input`), so a command that
    /// stopped reading early is seen.
    pub stdin_bytes: u64,
    /// The end of stderr (at most 16 KiB).
    pub stderr: String,
}

/// A container's name, without the leading `/` the engine gives it.
pub fn container_name(info: &bollard::models::ContainerInspectResponse) -> String {
    info.name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

/// A connection to the Docker engine.
#[derive(Debug, Clone)]
pub struct Docker {
    api: bollard::Docker,
    host: String,
}

/// `tcp://HOST:PORT` or `http://HOST:PORT`, as bollard's HTTP client takes them.
fn is_tcp_address(host: &str) -> bool {
    let Some(rest) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((name, port)) => !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// The last error of a chain: what actually went wrong (`Connection refused`).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

impl Docker {
    /// Connect to `host` (`unix:///path` or `tcp://host:port`), or to `DOCKER_HOST`, or to the
    /// local socket; negotiate the API version and check that the engine answers.
    pub async fn connect(host: Option<&str>) -> Result<Self, DockerError> {
        let shown = host
            .map(str::to_owned)
            .or_else(|| std::env::var(crate::env_vars::DOCKER_HOST).ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let unreachable = |source: bollard::errors::Error| DockerError::Unreachable {
            host: shown.clone(),
            reason: root_cause(&source),
        };
        let api = match host {
            Some(h) if h.starts_with("unix:///") => {
                bollard::Docker::connect_with_unix(h, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(h) if is_tcp_address(h) => {
                bollard::Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(h) => return Err(DockerError::BadHost { host: h.to_owned() }),
            None => bollard::Docker::connect_with_defaults(),
        }
        .map_err(unreachable)?;
        let api = api.negotiate_version().await.map_err(unreachable)?;
        api.ping().await.map_err(unreachable)?;
        let version = api
            .version()
            .await
            .ok()
            .and_then(|v| v.version)
            .unwrap_or_else(|| "unknown".into());
        tracing::debug!("Docker engine: {shown}, version {version}");
        Ok(Self { api, host: shown })
    }

    /// The bollard client, for what this module does not wrap.
    pub fn api(&self) -> &bollard::Docker {
        &self.api
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The containers of a compose project (and service, when given); running ones only unless `all`.
    pub async fn compose_containers(
        &self,
        project: &str,
        service: Option<&str>,
        all: bool,
    ) -> Result<Vec<Container>, DockerError> {
        self.containers(&Scope::compose(project), service, all)
            .await
    }

    /// The containers of a project or stack on this engine (and of one service, when given);
    /// running ones only unless `all`. On Swarm: the tasks' containers on this node.
    pub async fn containers(
        &self,
        scope: &Scope,
        service: Option<&str>,
        all: bool,
    ) -> Result<Vec<Container>, DockerError> {
        let options = ListContainersOptions {
            all,
            filters: Some(HashMap::from([("label".to_owned(), scope.labels(service))])),
            ..ListContainersOptions::default()
        };
        let list = self
            .api
            .list_containers(Some(options))
            .await
            .map_err(api_err("list containers"))?;
        let mut out: Vec<Container> = list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                Container {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    project: Some(scope.name.clone()),
                    service: scope.service_of(&labels),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The ids of the containers with label `key=value` (stopped ones too).
    pub async fn labelled(&self, key: &str, value: &str) -> Result<Vec<String>, DockerError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{key}={value}")],
            )])),
            ..ListContainersOptions::default()
        };
        Ok(self
            .api
            .list_containers(Some(options))
            .await
            .map_err(api_err("list containers"))?
            .into_iter()
            .filter_map(|c| c.id)
            .collect())
    }

    /// The one running container of a compose service.
    pub async fn service_container(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Container, DockerError> {
        self.scope_container(&Scope::compose(project), service)
            .await
    }

    /// The one running container of a service of a compose project or (on this node) of a
    /// Swarm stack.
    pub async fn scope_container(
        &self,
        scope: &Scope,
        service: &str,
    ) -> Result<Container, DockerError> {
        let mut found = self.containers(scope, Some(service), false).await?;
        tracing::debug!(
            "{scope}, service {service}: {}",
            if found.is_empty() {
                "no running container".to_owned()
            } else {
                found
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        match found.len() {
            0 => Err(DockerError::NoContainer {
                scope: scope.clone(),
                service: service.into(),
            }),
            1 => Ok(found.remove(0)),
            count => Err(DockerError::Ambiguous {
                scope: scope.clone(),
                service: service.into(),
                count,
            }),
        }
    }

    /// A container's environment (`KEY=value` pairs of its config), e.g. its `POSTGRES_*`.
    pub async fn container_env(
        &self,
        container: &str,
    ) -> Result<HashMap<String, String>, DockerError> {
        let info = self.inspect(container).await?;
        let env = info.config.and_then(|c| c.env).unwrap_or_default();
        Ok(env
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect())
    }

    /// Everything the engine knows of a container.
    pub async fn inspect(
        &self,
        container: &str,
    ) -> Result<bollard::models::ContainerInspectResponse, DockerError> {
        self.api
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| not_found_or(container, "inspect container", e))
    }

    /// Run `command` in a running container, streaming its stdout into `stdout`.
    /// A non-zero exit code is an [`DockerError::ExecFailed`] carrying the end of its stderr.
    pub async fn exec<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        container: &str,
        command: &[&str],
        env: &[String],
        stdout: &mut W,
    ) -> Result<ExecOutput, DockerError> {
        self.run_exec(container, command, env, None, None, stdout)
            .await
    }

    /// [`Docker::exec`] as root (user 0) whatever the container's own user, with `input` on
    /// its stdin when given: for editing a proxy container's `/etc/hosts`.
    pub async fn exec_as_root<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        container: &str,
        command: &[&str],
        input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        stdout: &mut W,
    ) -> Result<ExecOutput, DockerError> {
        self.run_exec(container, command, &[], Some("0"), input, stdout)
            .await
    }

    /// [`Docker::exec`] with `input` streamed into the command's stdin, which is closed at the
    /// input's end. Memory stays bounded: one chunk is in flight at a time. A command that exits
    /// before reading all of it ends the feeding (its exit code says why, and
    /// [`ExecOutput::stdin_bytes`] how much it got); an error reading `input` is
    /// [`DockerError::Input`] at once, and closes the command's stdin.
    pub async fn exec_with_input<R, W>(
        &self,
        container: &str,
        command: &[&str],
        env: &[String],
        input: &mut R,
        stdout: &mut W,
    ) -> Result<ExecOutput, DockerError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.run_exec(container, command, env, None, Some(input), stdout)
            .await
    }

    async fn run_exec<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        container: &str,
        command: &[&str],
        env: &[String],
        user: Option<&str>,
        input: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        stdout: &mut W,
    ) -> Result<ExecOutput, DockerError> {
        let shown = command.join(" ");
        let created = self
            .api
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(command.iter().map(|s| (*s).to_owned()).collect()),
                    env: Some(env.to_vec()),
                    user: user.map(str::to_owned),
                    attach_stdin: Some(input.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..CreateExecOptions::default()
                },
            )
            .await
            .map_err(|e| not_found_or(container, "create exec", e))?;
        let started = self
            .api
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    ..StartExecOptions::default()
                }),
            )
            .await
            .map_err(api_err("start exec"))?;
        let mut out = ExecOutput::default();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached {
            mut output,
            input: mut stdin,
        } = started
        {
            let mut input_done = input.is_none();
            let mut stdin_bytes = 0;
            let mut feeding = Box::pin(async {
                match input {
                    Some(reader) => feed_stdin(reader, &mut stdin, &mut stdin_bytes).await,
                    None => Ok(()),
                }
            });
            loop {
                // Feeding stdin and draining stdout/stderr go on together: a command that
                // writes while it reads would otherwise block on a full pipe.
                let frame = tokio::select! {
                    done = &mut feeding, if !input_done => {
                        input_done = true;
                        done.map_err(|source| DockerError::Input {
                            command: shown.clone(),
                            source,
                        })?;
                        continue;
                    }
                    frame = output.next() => frame,
                };
                let Some(frame) = frame else { break };
                match frame.map_err(api_err("read exec output"))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout
                            .write_all(&message)
                            .await
                            .map_err(|source| DockerError::Output {
                                command: shown.clone(),
                                source,
                            })?;
                        out.stdout_bytes += message.len() as u64;
                    }
                    LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message);
                        if stderr.len() > 2 * STDERR_KEPT {
                            stderr.drain(..stderr.len() - STDERR_KEPT);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            // The output ended: the command is done with its input, whatever is left of it.
            drop(feeding);
            out.stdin_bytes = stdin_bytes;
        }
        stdout.flush().await.map_err(|source| DockerError::Output {
            command: shown.clone(),
            source,
        })?;
        let keep = stderr.len().saturating_sub(STDERR_KEPT);
        out.stderr = String::from_utf8_lossy(&stderr[keep..]).into_owned();
        self.exit_code(&created.id, container, shown, out).await
    }

    /// The exit code of a finished exec: 0 is `out`, anything else [`DockerError::ExecFailed`].
    async fn exit_code(
        &self,
        exec_id: &str,
        container: &str,
        shown: String,
        out: ExecOutput,
    ) -> Result<ExecOutput, DockerError> {
        // The stream ends when the process closes its output; its exit code may lag a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inspected = self
                .api
                .inspect_exec(exec_id)
                .await
                .map_err(api_err("inspect exec"))?;
            match inspected.exit_code {
                Some(0) => return Ok(out),
                Some(code) => {
                    return Err(DockerError::ExecFailed {
                        container: container.to_owned(),
                        command: shown,
                        code,
                        stderr: out.stderr,
                    })
                }
                // Short: every psql a restore runs in the container waits here once, some
                // while the app is down.
                None if inspected.running == Some(true) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                None => {
                    return Err(DockerError::ExecFailed {
                        container: container.to_owned(),
                        command: shown,
                        code: -1,
                        stderr: format!("{}(no exit code: the container stopped?)", out.stderr),
                    })
                }
            }
        }
    }

    /// Run `command` and return its stdout as text.
    pub async fn exec_output(
        &self,
        container: &str,
        command: &[&str],
    ) -> Result<String, DockerError> {
        let mut buf = Vec::new();
        self.exec(container, command, &[], &mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Stop a container, giving it `grace` before SIGKILL.
    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        self.stop_with(
            container,
            Some(StopContainerOptions {
                t: Some(t),
                signal: None,
            }),
        )
        .await
    }

    /// Stop a container with its own stop signal and grace period (`stop_grace_period` in
    /// compose, else Docker's 10 s) before SIGKILL.
    pub async fn stop_own(&self, container: &str) -> Result<(), DockerError> {
        self.stop_with(container, None).await
    }

    async fn stop_with(
        &self,
        container: &str,
        options: Option<StopContainerOptions>,
    ) -> Result<(), DockerError> {
        match self.api.stop_container(container, options).await {
            // 304: already stopped, which is what was asked.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(not_found_or(container, "stop container", e)),
        }
    }

    pub async fn start(&self, container: &str) -> Result<(), DockerError> {
        match self
            .api
            .start_container(container, None::<StartContainerOptions>)
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(not_found_or(container, "start container", e)),
        }
    }

    /// The container's health now, as Docker last saw it.
    pub async fn health(&self, container: &str) -> Result<Health, DockerError> {
        Ok(health_of(&self.inspect(container).await?))
    }

    /// The container's health without waiting for Docker's next probe: while Docker still says
    /// `starting`, the HEALTHCHECK's own command is run in the container at once, as Docker
    /// runs it (exec, the container's user and environment, the check's timeout), and its
    /// success is `Healthy`. Docker's first probe comes one `interval` after the start (30 s in
    /// seed 001's compose file), and a restore or a switch would keep the app down that long
    /// for nothing. `Unhealthy` stays Docker's word alone.
    pub async fn ready(&self, container: &str) -> Result<Health, DockerError> {
        let info = self.inspect(container).await?;
        let health = health_of(&info);
        if health != Health::Starting {
            return Ok(health);
        }
        let config = info.config.unwrap_or_default();
        let Some(check) = config.healthcheck else {
            return Ok(health);
        };
        let Some(argv) = health_command(check.test.as_deref().unwrap_or_default(), config.shell)
        else {
            return Ok(health);
        };
        let timeout = check
            .timeout
            .and_then(|ns| u64::try_from(ns).ok())
            .filter(|ns| *ns > 0)
            .map_or(Duration::from_secs(30), Duration::from_nanos);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let probed = tokio::time::timeout(
            timeout,
            self.exec(container, &argv, &[], &mut tokio::io::sink()),
        )
        .await;
        Ok(if matches!(probed, Ok(Ok(_))) {
            Health::Healthy
        } else {
            health
        })
    }

    /// Wait until the container is healthy (or, without a health check, running), at most
    /// `deadline`. A container that stops while we wait fails at once.
    pub async fn wait_healthy(
        &self,
        container: &str,
        deadline: Duration,
    ) -> Result<(), DockerError> {
        let started = Instant::now();
        loop {
            let status = self.ready(container).await?;
            match status {
                Health::Healthy | Health::Running => return Ok(()),
                Health::NotRunning if started.elapsed() > Duration::from_secs(2) => {
                    return Err(DockerError::NotHealthy {
                        container: container.to_owned(),
                        status,
                        waited: started.elapsed(),
                    })
                }
                _ if started.elapsed() >= deadline => {
                    return Err(DockerError::NotHealthy {
                        container: container.to_owned(),
                        status,
                        waited: started.elapsed(),
                    })
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// An image by name or id, `None` when the engine does not have it.
    pub async fn image(
        &self,
        image: &str,
    ) -> Result<Option<bollard::models::ImageInspect>, DockerError> {
        match self.api.inspect_image(image).await {
            Ok(i) => Ok(Some(i)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(api_err("inspect image")(e)),
        }
    }

    /// Give image `image` the name `repo:tag` too.
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        self.api
            .tag_image(
                image,
                Some(TagImageOptions {
                    repo: Some(repo.to_owned()),
                    tag: Some(tag.to_owned()),
                }),
            )
            .await
            .map_err(api_err("tag image"))
    }

    /// Remove the name `reference` (`repo:tag`); the image itself goes only with its last name,
    /// and never while a container uses it.
    pub async fn untag_image(&self, reference: &str) -> Result<(), DockerError> {
        match self
            .api
            .remove_image(reference, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api_err("remove image tag")(e)),
        }
    }

    /// Create a container (not started); returns its id.
    pub async fn create(
        &self,
        name: Option<&str>,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let created = self
            .api
            .create_container(
                Some(CreateContainerOptions {
                    name: name.map(str::to_owned),
                    ..CreateContainerOptions::default()
                }),
                body,
            )
            .await
            .map_err(api_err("create container"))?;
        Ok(created.id)
    }

    /// Attach a container to one more network, with its endpoint settings (aliases).
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: bollard::models::EndpointSettings,
    ) -> Result<(), DockerError> {
        self.api
            .connect_network(
                network,
                bollard::models::NetworkConnectRequest {
                    container: container.to_owned(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await
            .map_err(api_err("connect network"))
    }

    pub async fn rename(&self, container: &str, name: &str) -> Result<(), DockerError> {
        self.api
            .rename_container(
                container,
                RenameContainerOptions {
                    name: name.to_owned(),
                },
            )
            .await
            .map_err(|e| not_found_or(container, "rename container", e))
    }

    /// Remove a container, running or not (its anonymous volumes stay); a missing one is fine.
    pub async fn remove(&self, container: &str) -> Result<(), DockerError> {
        match self
            .api
            .remove_container(
                container,
                Some(RemoveContainerOptions {
                    force: true,
                    ..RemoveContainerOptions::default()
                }),
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api_err("remove container")(e)),
        }
    }

    /// Wait until a container exits, at most `deadline`; its exit code, or `None` on timeout.
    pub async fn wait_exit(
        &self,
        container: &str,
        deadline: Duration,
    ) -> Result<Option<i64>, DockerError> {
        let started = Instant::now();
        loop {
            let state = self.inspect(container).await?.state.unwrap_or_default();
            if state.running != Some(true)
                && state.status != Some(bollard::models::ContainerStateStatusEnum::CREATED)
            {
                return Ok(Some(state.exit_code.unwrap_or(-1)));
            }
            if started.elapsed() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `lines` lines of a container's output (stdout and stderr together).
    pub async fn logs_tail(&self, container: &str, lines: usize) -> Result<String, DockerError> {
        let mut stream = self.api.logs(
            container,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..LogsOptions::default()
            }),
        );
        let mut out = Vec::new();
        while let Some(frame) = stream.next().await {
            out.extend_from_slice(&frame.map_err(api_err("read logs"))?.into_bytes());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Build an image from a context directory (its `Dockerfile`), tagged `tag`; returns the image id.
    pub async fn build_image(&self, context: &Path, tag: &str) -> Result<String, DockerError> {
        let tarball = tar_context(context)?;
        self.build_image_tar(tarball, "Dockerfile", tag, HashMap::new())
            .await
    }

    /// Build an image from a context given as a tar archive in memory, with the Dockerfile at
    /// `dockerfile` inside it, tagged `tag` and labelled; returns the image id.
    pub async fn build_image_tar(
        &self,
        tarball: Vec<u8>,
        dockerfile: &str,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, DockerError> {
        let whole = futures_util::stream::once(async { Ok(bytes::Bytes::from(tarball)) });
        self.build(whole, dockerfile, tag, labels).await
    }

    /// The same from a tar stream (`git archive`'s output), sent as it is read, 64 KiB at a
    /// time: a large repository never sits in memory whole.
    pub async fn build_image_stream(
        &self,
        tar: impl AsyncRead + Send + Unpin + 'static,
        dockerfile: &str,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, DockerError> {
        let chunks = futures_util::stream::unfold(tar, |mut tar| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match tar.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), tar))
                }
                Err(e) => Some((Err(e), tar)),
            }
        });
        self.build(chunks, dockerfile, tag, labels).await
    }

    async fn build(
        &self,
        body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        dockerfile: &str,
        tag: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, DockerError> {
        let options = BuildImageOptions {
            dockerfile: dockerfile.into(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            labels: (!labels.is_empty()).then_some(labels),
            ..BuildImageOptions::default()
        };
        let body = bollard::body_try_stream(body);
        let mut stream = self.api.build_image(options, None, Some(body));
        let mut id = None;
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::Build {
                tag: tag.to_owned(),
                message: e.to_string(),
            })?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Build {
                    tag: tag.to_owned(),
                    message: err,
                });
            }
            if let Some(s) = info.stream {
                log.push_str(&s);
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        match id {
            Some(id) => Ok(id),
            // Older engines report the id only in the log ("Successfully built abc123").
            None => log
                .lines()
                .rev()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("Successfully built ")
                        .map(str::to_owned)
                })
                .ok_or_else(|| DockerError::Build {
                    tag: tag.to_owned(),
                    message: "the engine reported no image id".into(),
                }),
        }
    }
}

/// Copy `input` into an exec's stdin a chunk at a time, then close it (the command sees its
/// end). A failed write means the command stopped reading (it exited): that ends the feeding
/// quietly, as its exit code tells the rest. A failed read is the input's own error.
async fn feed_stdin(
    input: &mut (dyn AsyncRead + Unpin + Send),
    stdin: &mut (impl AsyncWrite + Unpin),
    fed: &mut u64,
) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            let _ = stdin.shutdown().await;
            return Ok(());
        }
        // Flushed: a command fed a little at a time (a session of a parallel load) sees each
        // part as it comes.
        if stdin.write_all(&buf[..n]).await.is_err() || stdin.flush().await.is_err() {
            return Ok(());
        }
        *fed += n as u64;
    }
}

fn tar_context(context: &Path) -> Result<Vec<u8>, DockerError> {
    let err = |source| DockerError::Context {
        path: context.to_path_buf(),
        source,
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", context).map_err(err)?;
    builder.into_inner().map_err(err)
}

pub(crate) fn api_err(op: &'static str) -> impl Fn(bollard::errors::Error) -> DockerError {
    move |source| DockerError::Api {
        op: op.to_owned(),
        source,
    }
}

fn not_found_or(container: &str, op: &'static str, e: bollard::errors::Error) -> DockerError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => DockerError::NotFound(container.to_owned()),
        source => DockerError::Api {
            op: op.to_owned(),
            source,
        },
    }
}

/// The health Docker reports in an inspect answer.
fn health_of(info: &bollard::models::ContainerInspectResponse) -> Health {
    let Some(state) = &info.state else {
        return Health::NotRunning;
    };
    if state.running != Some(true) {
        return Health::NotRunning;
    }
    match state.health.as_ref().and_then(|h| h.status) {
        Some(H::HEALTHY) => Health::Healthy,
        Some(H::UNHEALTHY) => Health::Unhealthy,
        Some(H::STARTING) => Health::Starting,
        _ => Health::Running,
    }
}

/// The command a HEALTHCHECK's `test` runs: `CMD` its arguments, `CMD-SHELL` its string through
/// the container's shell (`/bin/sh -c` by default); `NONE` or nothing, none.
fn health_command(test: &[String], shell: Option<Vec<String>>) -> Option<Vec<String>> {
    let (kind, rest) = test.split_first()?;
    match kind.as_str() {
        "CMD" if !rest.is_empty() => Some(rest.to_vec()),
        "CMD-SHELL" => {
            let mut argv = shell
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            argv.push(rest.join(" "));
            Some(argv)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::health_command;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_healthcheck_runs_as_docker_would_run_it() {
        assert_eq!(
            health_command(&strings(&["CMD", "app", "probe"]), None),
            Some(strings(&["app", "probe"]))
        );
        assert_eq!(
            health_command(
                &strings(&["CMD-SHELL", "wget -q --spider http://localhost/ || exit 1"]),
                None
            ),
            Some(strings(&[
                "/bin/sh",
                "-c",
                "wget -q --spider http://localhost/ || exit 1"
            ]))
        );
        assert_eq!(
            health_command(
                &strings(&["CMD-SHELL", "true"]),
                Some(strings(&["/bin/bash", "-ec"]))
            ),
            Some(strings(&["/bin/bash", "-ec", "true"]))
        );
        assert_eq!(health_command(&strings(&["NONE"]), None), None);
        assert_eq!(health_command(&strings(&["CMD"]), None), None);
        assert_eq!(health_command(&[], None), None);
    }
}
