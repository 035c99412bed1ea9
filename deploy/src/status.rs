//! `lifeboat-deploy status` and `history`: what runs now, and what ran before.

use std::process::ExitCode;

use lifeboat::config::Config;
use lifeboat::docker::Health;

use crate::history::History;
use crate::release::Release;
use crate::stack::Stack;
use crate::switch::labels_of;

/// One line per container of each app service and worker, tab-separated: service, container,
/// release, image id, health. Exit 1 when one is not healthy or they run different releases.
pub fn status(stack: &Stack) -> anyhow::Result<ExitCode> {
    if stack.scope.is_swarm() {
        return swarm_status(stack);
    }
    let known = stack.history.current()?;
    let mut releases = Vec::new();
    let mut all_healthy = true;
    for service in stack.services() {
        let found = stack.block_on(stack.docker.compose_containers(
            stack.project(),
            Some(&service),
            true,
        ))?;
        if found.is_empty() {
            all_healthy = false;
            lifeboat::outln!("{service}\t-\t-\t-\tno container");
        }
        for c in found {
            let info = stack.block_on(stack.docker.inspect(&c.id))?;
            if labels_of(&info)
                .get("com.docker.compose.oneoff")
                .is_some_and(|v| v == "True")
            {
                continue;
            }
            let release = Release::of_container(&info);
            let health = stack.block_on(stack.docker.ready(&c.id))?;
            let worker = stack.config.deploy.workers.contains(&service);
            // A worker has no health check of its own: running is what it can say.
            let ok = matches!(health, Health::Healthy)
                || (matches!(health, Health::Running) && worker)
                || (matches!(health, Health::Running) && !has_healthcheck(&info));
            all_healthy &= ok;
            lifeboat::outln!(
                "{service}\t{}\t{}\t{}\t{health}",
                c.name,
                release.version,
                release.short_id()
            );
            releases.push(release.image_id);
        }
    }
    releases.dedup();
    match &known {
        Some(r) => lifeboat::errln!(
            "the history's current release: {} ({})",
            r.version,
            r.short_id()
        ),
        None => lifeboat::errln!(
            "no deploy in the history yet ({})",
            stack.history.path().display()
        ),
    }
    if releases.len() > 1 {
        lifeboat::errln!("the services run different images: a deploy or rollback did not finish; run lifeboat-rollback");
        return Ok(ExitCode::FAILURE);
    }
    if !all_healthy {
        lifeboat::errln!("not every container is healthy");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// On Swarm: one line per task that should run, tab-separated: service, task (`name.slot`),
/// node, release, image, state. Exit 1 when a service runs fewer tasks than it wants, or the
/// services run different releases.
fn swarm_status(stack: &Stack) -> anyhow::Result<ExitCode> {
    use lifeboat::swarm;
    let nodes = stack.block_on(swarm::node_names(&stack.docker));
    let mut releases = Vec::new();
    let mut all_running = true;
    for service in stack.services() {
        let svc = stack.block_on(swarm::service(&stack.docker, &stack.scope, &service))?;
        let release = crate::swarm::release_of(&svc.spec);
        let mut tasks = stack.block_on(swarm::tasks(&stack.docker, &svc.id))?;
        tasks.retain(swarm::Task::wanted);
        tasks.sort_by_key(|t| t.slot);
        let running = tasks.iter().filter(|t| t.running()).count() as u64;
        if svc.replicas().is_some_and(|r| running < r) || tasks.is_empty() {
            all_running = false;
        }
        if tasks.is_empty() {
            lifeboat::outln!("{service}\t-\t-\t{release}\t{}\tno task", svc.image());
        }
        for t in &tasks {
            lifeboat::outln!(
                "{service}\t{}.{}\t{}\t{release}\t{}\t{}",
                svc.name,
                t.slot.map_or_else(|| t.node.clone(), |s| s.to_string()),
                nodes.get(&t.node).unwrap_or(&t.node),
                t.image,
                if t.running() {
                    "running".to_owned()
                } else {
                    format!("{} ({})", swarm::state_name(t.state), t.message)
                }
            );
        }
        lifeboat::errln!(
            "{}: {running}/{} running, update {}",
            svc.name,
            svc.replicas()
                .map_or_else(|| "global".to_owned(), |r| r.to_string()),
            svc.update
                .map_or_else(|| "none".to_owned(), |u| u.to_string())
        );
        releases.push(release);
    }
    releases.dedup();
    if releases.len() > 1 {
        lifeboat::errln!("the services run different releases: a deploy or rollback did not finish; run lifeboat-rollback");
        return Ok(ExitCode::FAILURE);
    }
    if !all_running {
        lifeboat::errln!("not every service runs all its tasks");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn has_healthcheck(info: &bollard::models::ContainerInspectResponse) -> bool {
    info.config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| t.first().is_some_and(|x| x != "NONE"))
}

/// Every entry, oldest first, tab-separated: finished, action, version, outcome, image id,
/// backup, by.
pub fn history(config: &Config) -> anyhow::Result<ExitCode> {
    let history = History::new(&config.deploy.dir);
    let entries = history.entries()?;
    if entries.is_empty() {
        lifeboat::errln!("no deploys yet ({})", history.path().display());
    }
    for e in entries {
        let id = e.image_id.trim_start_matches("sha256:");
        lifeboat::outln!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.finished.format("%Y-%m-%d %H:%M:%S UTC"),
            e.action,
            e.version,
            e.outcome,
            &id[..id.len().min(12)],
            e.backup.as_deref().unwrap_or("-"),
            e.by
        );
    }
    Ok(ExitCode::SUCCESS)
}
