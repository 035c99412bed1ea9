//! The switch on Docker Swarm: each service of the stack updated to the new image through the
//! engine's API (`start-first`, one task at a time, each new task healthy before its old one
//! stops, watched for a monitor period), and on any failure **every** service put back on the
//! spec it had before the run, where Swarm's own rollback is one service's.
//!
//! What runs is read from the services' specs, so a run that died is recovered by converging
//! them again; a service whose spec already runs the release and has every task on it is left
//! alone.

use std::cell::RefCell;
use std::time::Duration;

use anyhow::{bail, Context};
use bollard::models::ServiceSpec;
use lifeboat::docker::{Docker, Scope};
use lifeboat::signal::Stop;
use lifeboat::swarm::{self, Settled};
use tracing::info;

use crate::release::Release;
use crate::switch::LABEL_RELEASE;

/// The most Swarm watches a new task for failure before it goes on to the next.
const MONITOR: Duration = Duration::from_secs(5);

/// One run's updates of a stack's services, and what they were before it.
pub struct SwarmSwitch<'a> {
    pub docker: &'a Docker,
    pub scope: &'a Scope,
    pub health_timeout: Duration,
    /// Each service's spec before this run first changed it.
    pub before: &'a RefCell<Vec<(String, ServiceSpec)>>,
}

impl SwarmSwitch<'_> {
    /// Update `short` to `release` and wait until every task runs it, healthy.
    pub async fn converge(
        &self,
        short: &str,
        release: &Release,
        stop: &Stop,
    ) -> anyhow::Result<()> {
        let svc = swarm::service(self.docker, self.scope, short).await?;
        if !self.before.borrow().iter().any(|(s, _)| s == short) {
            self.before
                .borrow_mut()
                .push((short.to_owned(), svc.spec.clone()));
        }
        let image = release.image.as_str();
        if svc.image() != image || release_of(&svc.spec) != release.version {
            let mut spec = swarm::with_image(&svc.spec, image, MONITOR.min(self.health_timeout));
            label_release(&mut spec, &release.version, image);
            swarm::update(self.docker, &svc, spec)
                .await
                .with_context(|| format!("updating {} to {image}", svc.name))?;
            info!(
                step = "switching",
                "{} updating to {} ({image}), start-first, one task at a time",
                svc.name,
                release.version
            );
            crate::pause_at(stop, "switching").await?;
        }
        self.settle(short, image, stop).await?;
        info!(
            step = "switched",
            "{} runs {}",
            self.scope.service_name(short),
            release.version
        );
        Ok(())
    }

    /// Every service this run changed, back on the spec it had before (in the reverse order),
    /// each waited on; then the others converge on `release`.
    pub async fn put_back(&self, services: &[String], release: &Release) -> anyhow::Result<()> {
        let before = self.before.borrow().clone();
        let never = Stop::never();
        for (short, spec) in before.iter().rev() {
            let svc = swarm::service(self.docker, self.scope, short).await?;
            let mut spec = spec.clone();
            // A new task even where only the tag of the image moved back.
            let template = spec.task_template.get_or_insert_with(Default::default);
            template.force_update = Some(
                svc.spec
                    .task_template
                    .as_ref()
                    .and_then(|t| t.force_update)
                    .unwrap_or(0)
                    + 1,
            );
            swarm::update(self.docker, &svc, spec.clone())
                .await
                .with_context(|| format!("putting {} back on its previous spec", svc.name))?;
            info!(
                step = "rolling-back",
                "{} back on its previous spec ({})",
                svc.name,
                swarm::image_of(&spec)
            );
            self.settle(short, &swarm::image_of(&spec), &never).await?;
        }
        for short in services {
            if !before.iter().any(|(s, _)| s == short) {
                self.converge(short, release, &never).await?;
            }
        }
        Ok(())
    }

    async fn settle(&self, short: &str, image: &str, stop: &Stop) -> anyhow::Result<()> {
        match swarm::wait_rolled_out(
            self.docker,
            self.scope,
            short,
            image,
            self.health_timeout,
            stop,
        )
        .await?
        {
            Settled::Done => Ok(()),
            Settled::Failed(why) => bail!("{why}"),
            Settled::TimedOut(why) => bail!("{why} (deploy.health-timeout)"),
        }
    }
}

/// The label beside [`LABEL_RELEASE`] naming the image it was given with: a label whose image
/// is no longer the spec's (a `docker service update --image` by hand) is not believed.
const LABEL_RELEASE_IMAGE: &str = "lifeboat.release.image";

/// The release a spec's containers are labelled with (while they run the image labelled), else
/// its image's tag.
pub fn release_of(spec: &ServiceSpec) -> String {
    let image = swarm::image_of(spec);
    spec.task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.labels.as_ref())
        .filter(|l| l.get(LABEL_RELEASE_IMAGE) == Some(&image))
        .and_then(|l| l.get(LABEL_RELEASE).cloned())
        .unwrap_or_else(|| crate::release::split_reference(&image).1.to_owned())
}

fn label_release(spec: &mut ServiceSpec, version: &str, image: &str) {
    let container = spec
        .task_template
        .get_or_insert_with(Default::default)
        .container_spec
        .get_or_insert_with(Default::default);
    let labels = container.labels.get_or_insert_with(Default::default);
    labels.insert(LABEL_RELEASE.to_owned(), version.to_owned());
    labels.insert(LABEL_RELEASE_IMAGE.to_owned(), image.to_owned());
}

/// The release the first app service's spec runs.
pub async fn live(docker: &Docker, scope: &Scope, short: &str) -> anyhow::Result<Release> {
    let svc = swarm::service(docker, scope, short).await?;
    let image = svc.image();
    let image_id = docker
        .image(&image)
        .await?
        .and_then(|i| i.id)
        .with_context(|| format!("the image {image} of {} is not on this node", svc.name))?;
    Ok(Release {
        version: release_of(&svc.spec),
        image,
        image_id,
        revision: None,
    })
}

/// The migration command as a one-off Swarm job of the new image, with the first app
/// service's networks, secrets, configs and environment: its exit code and last lines decide.
/// The job service is removed afterwards, whatever happened.
pub async fn migrate(
    docker: &Docker,
    scope: &Scope,
    like: &str,
    release: &Release,
    command: &[String],
    deadline: Duration,
    stop: &Stop,
) -> anyhow::Result<()> {
    let svc = swarm::service(docker, scope, like).await?;
    let name = format!(
        "{}_lifeboat-migrate-{}",
        scope.name,
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    info!(
        step = "migrating",
        "running `{}` as the Swarm job {name} ({})",
        command.join(" "),
        release.version
    );
    let job = swarm::Job::create(docker, &svc, &name, &release.image, command).await?;
    crate::pause_at(stop, "migrating").await?;
    let ended = tokio::select! {
        e = job.wait(deadline) => e?,
        _ = stop.wait() => {
            stop.check()?;
            None
        }
    };
    crate::migration_outcome(ended, &job.logs_tail(20).await, command, deadline)
}

/// deploy.registry: the release's image tagged `<registry>/<repository>:lifeboat-<version>`
/// and pushed there, so that every node can pull it; the release then names that image.
pub async fn publish(
    docker: &Docker,
    registry: &str,
    release: &Release,
) -> anyhow::Result<Release> {
    use futures_util::StreamExt;
    let registry = registry.trim_end_matches('/');
    let (repo, _) = crate::release::split_reference(&release.image);
    let repo = if repo.starts_with(&format!("{registry}/")) {
        repo.to_owned()
    } else {
        format!("{registry}/{repo}")
    };
    let tag = crate::release::kept_tag(&release.version);
    docker.tag_image(&release.image_id, &repo, &tag).await?;
    info!(step = "image", "pushing {repo}:{tag} (deploy.registry)");
    let mut pushed = docker.api().push_image(
        &repo,
        Some(bollard::query_parameters::PushImageOptions {
            tag: Some(tag.clone()),
            ..Default::default()
        }),
        // The engine wants an X-Registry-Auth header, if only an empty one.
        Some(registry_login(registry)),
    );
    while let Some(step) = pushed.next().await {
        let step = step.with_context(|| format!("pushing {repo}:{tag} to {registry}"))?;
        if let Some(e) = step.error_detail.and_then(|d| d.message) {
            bail!("pushing {repo}:{tag} to {registry} failed: {e} (is the registry up, and is this host logged in to it with `docker login {registry}`?)");
        }
    }
    Ok(Release {
        image: format!("{repo}:{tag}"),
        ..release.clone()
    })
}

/// The login `docker login REGISTRY` saved in the Docker CLI's config.json (`DOCKER_CONFIG`, else
/// `~/.docker`), as the API wants it; none (an anonymous push) when there is none. Credential
/// helpers (`credsStore`) are not asked.
fn registry_login(registry: &str) -> bollard::auth::DockerCredentials {
    use base64::Engine as _;
    let anonymous = bollard::auth::DockerCredentials {
        serveraddress: Some(registry.to_owned()),
        ..Default::default()
    };
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    let Some(text) = dir.and_then(|d| {
        let path = d.join("config.json");
        // A config.json is a few KiB; anything larger is not read.
        (std::fs::metadata(&path).ok()?.len() < 1 << 20)
            .then(|| std::fs::read_to_string(&path).ok())
            .flatten()
    }) else {
        return anonymous;
    };
    let Some(auth) = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|c| {
            c.pointer(&format!(
                "/auths/{}/auth",
                registry.replace('~', "~0").replace('/', "~1")
            ))?
            .as_str()
            .map(str::to_owned)
        })
    else {
        return anonymous;
    };
    let Some((user, password)) = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
    else {
        return anonymous;
    };
    bollard::auth::DockerCredentials {
        username: Some(user),
        password: Some(password),
        ..anonymous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ServiceSpec {
        ServiceSpec {
            task_template: Some(bollard::models::TaskSpec {
                container_spec: Some(bollard::models::TaskSpecContainerSpec {
                    image: Some(image.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_release_label_is_believed_only_while_its_image_runs() {
        let mut s = spec("shop/app:lifeboat-v2");
        label_release(&mut s, "v2", "shop/app:lifeboat-v2");
        assert_eq!(release_of(&s), "v2");
        // `docker service update --image shop/app:v3` by hand: the label is stale.
        s.task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
            .expect("container")
            .image = Some("shop/app:v3".into());
        assert_eq!(release_of(&s), "v3");
        assert_eq!(release_of(&spec("shop/app:v1")), "v1");
    }
}
