//! Docker Swarm: a `docker stack`'s services, through the engine's API (never the CLI).
//!
//! A stack is found by the `com.docker.stack.namespace` label `docker stack deploy` puts on its
//! services; a service `app` of stack `shop` is `shop_app` to the engine. What lifeboat does
//! here is what `docker service` cannot: scale a stack's app to zero and back (restore), update
//! every service of a stack and put **all** of them back on failure (deploy, rollback), and run a
//! one-off task (migrations, a `pg_dump` beside a database on another node).
//!
//! [`detect`] chooses between compose and Swarm for `docker.engine = auto`: compose when the
//! project has containers, else the stack of that name when the engine is in a swarm.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum as FailureAction,
    ServiceSpecUpdateConfigOrderEnum as Order, ServiceUpdateStatusStateEnum as UpdateState,
    TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListContainersOptions, ListServicesOptions, ListTasksOptions,
    UpdateServiceOptions,
};

use crate::config::{Config, EngineChoice};
use crate::docker::{api_err, Docker, DockerError, Scope, LABEL_PROJECT, LABEL_STACK};

/// How often task and update states are read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Which engine drives `config`'s project or stack, as `docker.engine` says or as found.
pub async fn detect(docker: &Docker, config: &Config) -> Result<Scope, DockerError> {
    let compose = &config.compose;
    let scope = match compose.engine {
        EngineChoice::Compose => Scope::compose(&compose.project),
        EngineChoice::Swarm => Scope::swarm(&compose.stack),
        EngineChoice::Auto => {
            if !docker
                .labelled(LABEL_PROJECT, &compose.project)
                .await?
                .is_empty()
                || !in_swarm(docker).await
            {
                Scope::compose(&compose.project)
            } else if !docker
                .labelled(LABEL_STACK, &compose.stack)
                .await?
                .is_empty()
                || !stack_services(docker, &compose.stack).await?.is_empty()
            {
                Scope::swarm(&compose.stack)
            } else {
                Scope::compose(&compose.project)
            }
        }
    };
    tracing::info!(
        "driving {scope}{}",
        match (compose.engine, scope.engine) {
            (EngineChoice::Auto, crate::docker::Engine::Swarm) =>
                " (found by its com.docker.stack.namespace label; LIFEBOAT_ENGINE=compose forces compose)",
            (EngineChoice::Auto, _) => "",
            _ => " (LIFEBOAT_ENGINE)",
        }
    );
    Ok(scope)
}

/// This engine is a node of an active swarm.
pub async fn in_swarm(docker: &Docker) -> bool {
    docker
        .api()
        .info()
        .await
        .ok()
        .and_then(|i| i.swarm)
        .is_some_and(|s| s.local_node_state == Some(bollard::models::LocalNodeState::ACTIVE))
}

/// This node's id in the swarm.
pub async fn node_id(docker: &Docker) -> Result<String, DockerError> {
    let info = docker.api().info().await.map_err(api_err("info"))?;
    Ok(info.swarm.and_then(|s| s.node_id).unwrap_or_default())
}

/// Node ids to host names, for messages; empty when this node is no manager.
pub async fn node_names(docker: &Docker) -> HashMap<String, String> {
    docker
        .api()
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            let host = n.description.and_then(|d| d.hostname)?;
            Some((n.id?, host))
        })
        .collect()
}

/// A service of a stack, as lifeboat needs to know it.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    /// The engine's name (`shop_app`).
    pub name: String,
    /// The stack file's name (`app`).
    pub short: String,
    /// The object version an update must name.
    pub version: u64,
    pub spec: ServiceSpec,
    pub update: Option<UpdateState>,
    pub update_message: Option<String>,
}

impl Service {
    fn from_api(s: bollard::models::Service, stack: &str) -> Self {
        let spec = s.spec.unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        let short = name
            .strip_prefix(&format!("{stack}_"))
            .unwrap_or(&name)
            .to_owned();
        let status = s.update_status.unwrap_or_default();
        Self {
            id: s.id.unwrap_or_default(),
            name,
            short,
            version: s.version.and_then(|v| v.index).unwrap_or_default(),
            spec,
            update: status.state,
            update_message: status.message,
        }
    }

    /// Replicas wanted; `None` for a global service.
    pub fn replicas(&self) -> Option<u64> {
        replicas_of(&self.spec)
    }

    /// Its containers' environment, `KEY=value` each, as the stack file gives it.
    pub fn env(&self) -> Vec<String> {
        self.spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
    }

    /// The image its tasks are created from (without the digest Swarm may have pinned).
    pub fn image(&self) -> String {
        image_of(&self.spec)
    }
}

/// Replicas wanted by a spec; `None` for a global service or a job.
pub fn replicas_of(spec: &ServiceSpec) -> Option<u64> {
    spec.mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .map(|r| u64::try_from(r.replicas.unwrap_or(1)).unwrap_or(0))
}

/// The image of a spec's containers, without an `@sha256:` pin.
pub fn image_of(spec: &ServiceSpec) -> String {
    let image = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    match image.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => image,
    }
}

/// The services of a stack, by name.
pub async fn stack_services(docker: &Docker, stack: &str) -> Result<Vec<Service>, DockerError> {
    let options = ListServicesOptions {
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_STACK}={stack}")],
        )])),
        ..ListServicesOptions::default()
    };
    let mut out: Vec<Service> = docker
        .api()
        .list_services(Some(options))
        .await
        .map_err(api_err("list services"))?
        .into_iter()
        .map(|s| Service::from_api(s, stack))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One service of a stack, by its short name.
pub async fn service(docker: &Docker, scope: &Scope, short: &str) -> anyhow::Result<Service> {
    let name = scope.service_name(short);
    match docker
        .api()
        .inspect_service(&name, None::<InspectServiceOptions>)
        .await
    {
        Ok(s) => {
            let mut svc = Service::from_api(s, &scope.name);
            // The engine says `Healthcheck` where bollard reads `HealthCheck`: without this, a
            // spec written back would lose the service's health check.
            if let Some(check) = raw_health_check(docker, &svc.id).await {
                svc.spec
                    .task_template
                    .get_or_insert_with(Default::default)
                    .container_spec
                    .get_or_insert_with(Default::default)
                    .health_check = Some(check);
            }
            Ok(svc)
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => anyhow::bail!(
            "{scope} has no service `{short}` (`{name}`); `docker stack services {}` lists them",
            scope.name
        ),
        Err(e) => Err(api_err("inspect service")(e).into()),
    }
}

/// The most of the engine's answer read for one service (its spec is a few KiB).
const RAW_SERVICE_MAX: u64 = 4 * 1024 * 1024;

/// A service's `Spec.TaskTemplate.ContainerSpec.Healthcheck`, read from the engine's own JSON
/// (a plain HTTP/1.0 GET on its socket), or `None` when it has none or cannot be read.
async fn raw_health_check(docker: &Docker, id: &str) -> Option<bollard::models::HealthConfig> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /services/{id} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let mut answer = Vec::new();
    let host = docker.host();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut s = tokio::net::UnixStream::connect(path).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        s.take(RAW_SERVICE_MAX)
            .read_to_end(&mut answer)
            .await
            .ok()?;
    } else {
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))?
            .trim_end_matches('/');
        let mut s = tokio::net::TcpStream::connect(address).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        s.take(RAW_SERVICE_MAX)
            .read_to_end(&mut answer)
            .await
            .ok()?;
    }
    let start = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let json: serde_json::Value = serde_json::from_slice(&answer[start..]).ok()?;
    let spec = json.pointer("/Spec/TaskTemplate/ContainerSpec")?;
    let check = spec
        .get("Healthcheck")
        .or_else(|| spec.get("HealthCheck"))?;
    serde_json::from_value(check.clone()).ok()
}

/// A task of a service, as lifeboat needs to know it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub slot: Option<i64>,
    pub node: String,
    pub state: Option<TaskState>,
    pub desired: Option<TaskState>,
    pub image: String,
    pub container: Option<String>,
    pub exit_code: Option<i64>,
    /// What Swarm says of it (`started`, an error).
    pub message: String,
}

impl Task {
    pub fn running(&self) -> bool {
        self.state == Some(TaskState::RUNNING)
    }

    /// Swarm wants it running (it is not being replaced or shut down).
    pub fn wanted(&self) -> bool {
        matches!(
            self.desired,
            Some(TaskState::RUNNING | TaskState::READY | TaskState::COMPLETE)
        )
    }
}

/// A service's tasks, newest state first.
pub async fn tasks(docker: &Docker, service_id: &str) -> Result<Vec<Task>, DockerError> {
    let options = ListTasksOptions {
        filters: Some(HashMap::from([(
            "service".to_owned(),
            vec![service_id.to_owned()],
        )])),
    };
    let list = docker
        .api()
        .list_tasks(Some(options))
        .await
        .map_err(api_err("list tasks"))?;
    Ok(list
        .into_iter()
        .map(|t| {
            let status = t.status.unwrap_or_default();
            let container = status.container_status.clone().unwrap_or_default();
            Task {
                id: t.id.unwrap_or_default(),
                slot: t.slot,
                node: t.node_id.unwrap_or_default(),
                state: status.state,
                desired: t.desired_state,
                image: t.spec.map(|s| image_of_task(&s)).unwrap_or_default(),
                container: container.container_id,
                exit_code: container.exit_code,
                message: status
                    .err
                    .filter(|e| !e.is_empty())
                    .or(status.message)
                    .unwrap_or_default(),
            }
        })
        .collect())
}

fn image_of_task(spec: &bollard::models::TaskSpec) -> String {
    image_of(&ServiceSpec {
        task_template: Some(spec.clone()),
        ..ServiceSpec::default()
    })
}

/// Replace a service's spec (as read at `version`); Swarm rolls its tasks as its update
/// config says.
pub async fn update(
    docker: &Docker,
    service: &Service,
    spec: ServiceSpec,
) -> Result<(), DockerError> {
    docker
        .api()
        .update_service(
            &service.name,
            spec,
            UpdateServiceOptions {
                version: i32::try_from(service.version).unwrap_or(i32::MAX),
                ..UpdateServiceOptions::default()
            },
            None,
        )
        .await
        .map_err(api_err("update service"))?;
    Ok(())
}

/// The spec that runs `image`, one task at a time, the new task started and healthy before
/// the old one stops, each watched for `monitor` before the next; a failure pauses the update
/// (lifeboat, not Swarm, decides what goes back, and it puts back every service).
pub fn with_image(spec: &ServiceSpec, image: &str, monitor: Duration) -> ServiceSpec {
    let mut spec = spec.clone();
    let template = spec.task_template.get_or_insert_with(Default::default);
    let container = template.container_spec.get_or_insert_with(Default::default);
    container.image = Some(image.to_owned());
    // A new task per update even when only the image's tag moved.
    template.force_update = Some(template.force_update.unwrap_or(0) + 1);
    let update = spec.update_config.get_or_insert_with(Default::default);
    update.parallelism = Some(1);
    update.order = Some(Order::START_FIRST);
    update.failure_action = Some(FailureAction::PAUSE);
    update.monitor = Some(i64::try_from(monitor.as_nanos()).unwrap_or(i64::MAX));
    update.max_failure_ratio = Some(0.0);
    spec
}

/// The spec with `replicas` tasks.
pub fn with_replicas(spec: &ServiceSpec, replicas: u64) -> ServiceSpec {
    let mut spec = spec.clone();
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
        }),
        ..ServiceSpecMode::default()
    });
    spec
}

/// The update config of a spec, for the journal and messages.
pub fn update_config(spec: &ServiceSpec) -> ServiceSpecUpdateConfig {
    spec.update_config.clone().unwrap_or_default()
}

/// How many tasks the engine may fail to start (not the app: no exit code) before an update
/// is taken for failed.
const ENGINE_RETRIES: usize = 3;

/// How a wait for a service ended.
#[derive(Debug)]
pub enum Settled {
    /// Every wanted task runs the spec (and is healthy where it has a health check).
    Done,
    /// Swarm paused or rolled back the update, or a task failed: why.
    Failed(String),
    TimedOut(String),
}

/// Wait until `service` runs `replicas` tasks of `image` (its update completed, where one was
/// started), at most `deadline`. A task that fails to start on the new image, or an update
/// that Swarm pauses, ends the wait at once.
pub async fn wait_rolled_out(
    docker: &Docker,
    scope: &Scope,
    short: &str,
    image: &str,
    deadline: Duration,
    stop: &crate::signal::Stop,
) -> anyhow::Result<Settled> {
    let started = Instant::now();
    let mut retried = std::collections::HashSet::new();
    loop {
        let svc = service(docker, scope, short).await?;
        let tasks = tasks(docker, &svc.id).await?;
        let wanted: Vec<&Task> = tasks.iter().filter(|t| t.wanted()).collect();
        let on_new = wanted
            .iter()
            .filter(|t| t.running() && t.image == image)
            .count();
        let replicas = svc.replicas();
        let failed: Vec<&Task> = tasks
            .iter()
            .filter(|t| {
                t.image == image && matches!(t.state, Some(TaskState::FAILED | TaskState::REJECTED))
            })
            .collect();
        // The release's own failure: a non-zero exit or an unhealthy container. A task the
        // engine could not start (no exit code: its network or container could not be set up,
        // as Docker 20.10 does when a task of the same image was just removed) is Swarm's to
        // start again, up to ENGINE_RETRIES of them.
        let failed = failed
            .iter()
            .find(|t| t.exit_code.is_some_and(|c| c != 0) || t.message.contains("unhealthy"))
            .or_else(|| failed.get(ENGINE_RETRIES - 1))
            .copied()
            .or_else(|| {
                for t in &failed {
                    if retried.insert(t.id.clone()) {
                        tracing::warn!(
                            "a task of {} on {image} could not start ({}); Swarm starts another",
                            svc.name,
                            t.message
                        );
                    }
                }
                None
            });
        if matches!(
            svc.update,
            Some(
                UpdateState::PAUSED
                    | UpdateState::ROLLBACK_STARTED
                    | UpdateState::ROLLBACK_PAUSED
                    | UpdateState::ROLLBACK_COMPLETED
            )
        ) {
            return Ok(Settled::Failed(format!(
                "Swarm {} the update of {}: {}",
                svc.update
                    .map(|u| u.to_string())
                    .unwrap_or_default()
                    .replace('_', " "),
                svc.name,
                svc.update_message.unwrap_or_default()
            )));
        }
        if let Some(t) = failed {
            return Ok(Settled::Failed(format!(
                "a task of {} on {image} failed: {}{}",
                svc.name,
                t.message,
                t.exit_code
                    .filter(|c| *c != 0)
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default()
            )));
        }
        let update_done = !matches!(svc.update, Some(UpdateState::UPDATING));
        // Converged: every task Swarm wants is a running one of the image, as many as wanted
        // (a task of another image still starting or stopping is not done with).
        let enough = replicas.map_or(on_new > 0, |r| on_new as u64 == r);
        let stale = wanted.iter().any(|t| t.image != image || !t.running());
        if update_done && enough && !stale {
            return Ok(Settled::Done);
        }
        if started.elapsed() >= deadline {
            return Ok(Settled::TimedOut(format!(
                "{} has {on_new} of {} tasks running {image} after {} s{}",
                svc.name,
                replicas.map_or_else(|| "its".to_owned(), |r| r.to_string()),
                deadline.as_secs(),
                wanted
                    .iter()
                    .find(|t| t.image == image && !t.running())
                    .map(|t| format!(" (a new task is {}: {})", state_name(t.state), t.message))
                    .unwrap_or_default()
            )));
        }
        stop.check()?;
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until `service` has no running task (scaled to 0), at most `deadline`.
pub async fn wait_stopped(
    docker: &Docker,
    service_id: &str,
    name: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let running = tasks(docker, service_id)
            .await?
            .iter()
            .filter(|t| {
                matches!(
                    t.state,
                    Some(
                        TaskState::RUNNING
                            | TaskState::STARTING
                            | TaskState::PREPARING
                            | TaskState::ASSIGNED
                            | TaskState::ACCEPTED
                            | TaskState::READY
                    )
                )
            })
            .count();
        if running == 0 {
            return Ok(());
        }
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "{name} still has {running} running task(s) {} s after it was scaled to 0",
                deadline.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A task state as `docker service ps` shows it.
pub fn state_name(state: Option<TaskState>) -> String {
    state.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

/// The label on a one-off container: the stack it serves, and who made it (`host:pid`).
const LABEL_ONEOFF: &str = "lifeboat.oneoff";
const LABEL_ONEOFF_OWNER: &str = "lifeboat.oneoff.owner";
/// A one-off container ends by itself after this long, should lifeboat be killed outright.
const ONEOFF_LIFETIME: &str = "86400";

/// A container of a service's image on the stack's network, running nothing but a timer, that
/// clients are exec'd in (`pg_dump`, `psql` beside a database task on another node). Removed
/// when dropped, whatever happened; one left by a killed run is removed by the next.
#[derive(Debug)]
pub struct OneOff {
    docker: Docker,
    pub id: String,
    /// The service's name on the network (its short name: the stack file's).
    pub host: String,
}

impl OneOff {
    /// Start one beside `short`: its image (so the client matches the server), its first
    /// network (which must be attachable), no environment: credentials go to each exec.
    pub async fn start(docker: &Docker, scope: &Scope, short: &str) -> anyhow::Result<Self> {
        remove_stale_oneoffs(docker).await;
        let svc = service(docker, scope, short).await?;
        let template = svc.spec.task_template.clone().unwrap_or_default();
        let image = template
            .container_spec
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let network = template
            .networks
            .as_ref()
            .and_then(|n| n.first())
            .and_then(|n| n.target.clone())
            .or_else(|| {
                svc.spec
                    .networks
                    .as_ref()
                    .and_then(|n| n.first())
                    .and_then(|n| n.target.clone())
            })
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "service {} is on no network a one-off container could join",
                    svc.name
                )
            })?;
        let net = docker
            .api()
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .map_err(api_err("inspect network"))?;
        let net_name = net.name.clone().unwrap_or_else(|| network.clone());
        if net.attachable != Some(true) {
            anyhow::bail!(
                "network {net_name} of service {} is not attachable, so no one-off container can join it: add `attachable: true` to the network in the stack file and deploy it again (or set DATABASE_URL to reach the database another way)",
                svc.name
            );
        }
        let owner = format!("{}:{}", crate::lock::who(), std::process::id());
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.clone()),
            entrypoint: Some(vec!["sleep".into()]),
            cmd: Some(vec![ONEOFF_LIFETIME.into()]),
            labels: Some(HashMap::from([
                (LABEL_ONEOFF.to_owned(), scope.name.clone()),
                (LABEL_ONEOFF_OWNER.to_owned(), owner),
            ])),
            host_config: Some(bollard::models::HostConfig {
                auto_remove: Some(true),
                network_mode: Some(net_name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = docker.create(None, body).await.map_err(|e| {
            anyhow::anyhow!("creating a one-off container of {image} (the image of {}) failed: {e}; the image must be on this node (`docker pull` it)", svc.name)
        })?;
        let this = Self {
            docker: docker.clone(),
            id,
            host: short.to_owned(),
        };
        docker.start(&this.id).await?;
        tracing::info!(
            "a one-off container of {image} on network {net_name} reaches {} as `{short}`",
            svc.name
        );
        Ok(this)
    }
}

impl Drop for OneOff {
    fn drop(&mut self) {
        let id = self.id.clone();
        let removed = in_own_runtime(&self.docker, move |docker| async move {
            docker.remove(&id).await
        });
        if removed {
            tracing::debug!("one-off container {} removed", self.id);
        } else {
            tracing::warn!(
                "could not remove one-off container {}; `docker rm -f` it (it ends by itself within a day)",
                self.id
            );
        }
    }
}

/// Run `work` to its end on a thread and runtime of its own: a `drop` cannot await, and may
/// run inside a runtime. Whether it succeeded.
fn in_own_runtime<F, Fut>(docker: &Docker, work: F) -> bool
where
    F: FnOnce(Docker) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), DockerError>>,
{
    let docker = docker.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .is_ok_and(|rt| rt.block_on(work(docker)).is_ok())
    })
    .join()
    .unwrap_or(false)
}

/// A one-off task: a `replicated-job` service of one completion, made from a service's task
/// template (its networks, secrets, configs, environment, placement) with another image and
/// command, and no health check. Removed when dropped.
#[derive(Debug)]
pub struct Job {
    docker: Docker,
    pub name: String,
    id: String,
}

/// The label on a job service: the stack it ran for.
const LABEL_JOB: &str = "lifeboat.job";

impl Job {
    pub async fn create(
        docker: &Docker,
        like: &Service,
        name: &str,
        image: &str,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let mut template = like.spec.task_template.clone().unwrap_or_default();
        let container = template.container_spec.get_or_insert_with(Default::default);
        container.image = Some(image.to_owned());
        container.args = Some(args.to_vec());
        container.health_check = Some(bollard::models::HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
        template.restart_policy = Some(bollard::models::TaskSpecRestartPolicy {
            condition: Some(bollard::models::TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        });
        template.force_update = None;
        // On the service's networks, but under no alias of its own: nothing may resolve the
        // app's name to a job that serves nothing.
        for n in template.networks.iter_mut().flatten() {
            n.aliases = None;
        }
        let stack = like
            .spec
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_STACK))
            .cloned()
            .unwrap_or_default();
        let spec = ServiceSpec {
            name: Some(name.to_owned()),
            labels: Some(HashMap::from([(LABEL_JOB.to_owned(), stack)])),
            task_template: Some(template),
            mode: Some(ServiceSpecMode {
                replicated_job: Some(bollard::models::ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..ServiceSpecMode::default()
            }),
            networks: like.spec.networks.clone(),
            ..ServiceSpec::default()
        };
        let created = docker
            .api()
            .create_service(spec, None)
            .await
            .map_err(api_err("create service"))?;
        Ok(Self {
            docker: docker.clone(),
            name: name.to_owned(),
            id: created.id.unwrap_or_else(|| name.to_owned()),
        })
    }

    /// Wait until its task ends, at most `deadline`: its exit code, or `None` on timeout.
    pub async fn wait(&self, deadline: Duration) -> anyhow::Result<Option<i64>> {
        let started = Instant::now();
        loop {
            for t in tasks(&self.docker, &self.id).await? {
                match t.state {
                    Some(TaskState::COMPLETE) => return Ok(Some(0)),
                    Some(TaskState::FAILED | TaskState::REJECTED) => {
                        if let Some(code) = t.exit_code.filter(|c| *c != 0) {
                            return Ok(Some(code));
                        }
                        anyhow::bail!("the job {} could not run: {}", self.name, t.message);
                    }
                    _ => {}
                }
            }
            if started.elapsed() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Its last `lines` lines of output (stdout and stderr together), or nothing.
    pub async fn logs_tail(&self, lines: usize) -> String {
        use futures_util::StreamExt;
        let mut stream = self.docker.api().service_logs(
            &self.id,
            Some(bollard::query_parameters::LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            }),
        );
        let mut out = Vec::new();
        while let Some(Ok(frame)) = stream.next().await {
            out.extend_from_slice(&frame.into_bytes());
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let id = self.id.clone();
        let removed = in_own_runtime(&self.docker, move |docker| async move {
            match docker.api().delete_service(&id).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(api_err("remove service")(e)),
            }
            // Its ended task's container on this node, which the engine keeps for a while.
            for c in docker.labelled("com.docker.swarm.service.id", &id).await? {
                docker.remove(&c).await?;
            }
            Ok(())
        });
        if !removed {
            tracing::warn!(
                "could not remove the job service {}; `docker service rm` it",
                self.name
            );
        }
    }
}

/// One-off containers left by runs of this host that are gone (killed outright).
async fn remove_stale_oneoffs(docker: &Docker) {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![LABEL_ONEOFF.to_owned()],
        )])),
        ..ListContainersOptions::default()
    };
    let Ok(list) = docker.api().list_containers(Some(options)).await else {
        return;
    };
    let me = crate::lock::who();
    for c in list {
        let owner = c
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_ONEOFF_OWNER))
            .cloned()
            .unwrap_or_default();
        let Some((host, pid)) = owner.rsplit_once(':') else {
            continue;
        };
        let dead = host == me
            && pid
                .parse::<i32>()
                .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
        if dead {
            if let Some(id) = c.id {
                tracing::info!("removing one-off container {id}, left by a run that was killed");
                let _ = docker.remove(&id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{TaskSpec, TaskSpecContainerSpec};

    fn spec(image: &str) -> ServiceSpec {
        ServiceSpec {
            name: Some("shop_app".into()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.into()),
                    env: Some(vec!["DATABASE_URL=postgres://db/shop".into()]),
                    ..Default::default()
                }),
                force_update: Some(3),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(2) }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_image_is_rolled_out_start_first_one_task_at_a_time_and_pauses_on_failure() {
        let old = spec("shop/app:v1@sha256:abc");
        assert_eq!(image_of(&old), "shop/app:v1");
        let new = with_image(&old, "shop/app:v2", Duration::from_secs(5));
        assert_eq!(image_of(&new), "shop/app:v2");
        let update = update_config(&new);
        assert_eq!(update.order, Some(Order::START_FIRST));
        assert_eq!(update.failure_action, Some(FailureAction::PAUSE));
        assert_eq!(update.parallelism, Some(1));
        assert_eq!(update.monitor, Some(5_000_000_000));
        let template = new.task_template.as_ref().expect("template");
        assert_eq!(template.force_update, Some(4), "a new task per update");
        assert_eq!(
            template.container_spec.as_ref().and_then(|c| c.env.clone()),
            Some(vec!["DATABASE_URL=postgres://db/shop".into()]),
            "the rest of the spec as it was"
        );
        assert_eq!(replicas_of(&new), Some(2));
    }

    #[test]
    fn replicas_are_changed_and_a_global_service_has_none() {
        let scaled = with_replicas(&spec("shop/app:v1"), 0);
        assert_eq!(replicas_of(&scaled), Some(0));
        let mut global = spec("shop/app:v1");
        global.mode = serde_json::from_str(r#"{"Global": {}}"#).ok();
        assert_eq!(replicas_of(&global), None);
    }

    #[test]
    fn a_scope_names_services_and_selects_containers_by_its_engine_s_labels() {
        let swarm = Scope::swarm("shop");
        assert_eq!(swarm.service_name("app"), "shop_app");
        assert_eq!(swarm.to_string(), "Swarm stack `shop`");
        let compose = Scope::compose("shop");
        assert_eq!(compose.service_name("app"), "app");
        assert!(swarm.up_hint().contains("docker stack ps shop"));
        assert!(compose.up_hint().contains("docker compose -p shop ps"));
    }
}
