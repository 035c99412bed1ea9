//! The app on Docker Swarm: its services scaled to 0 for the swap and back to the replica
//! counts they had, which the journal remembers (Swarm would restart a stopped container, so
//! stopping containers is no way to keep a Swarm app away from the database).
//!
//! A global service has no replica count to go back to: lifeboat-restore refuses it before
//! touching anything, and says what to do.

use std::time::Duration;

use anyhow::bail;
use lifeboat::docker::{Docker, Scope};
use lifeboat::swarm::{self, Settled};
use tracing::info;

use crate::app::env_names_database;

/// How a scaled service is written in the journal's list of what was stopped.
const PREFIX: &str = "swarm:";

/// A service of the stack and the replicas it runs when the app is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    /// The stack file's name (`app`).
    pub short: String,
    pub replicas: u64,
}

impl Scaled {
    /// `swarm:app=2`, for the journal.
    pub fn journal_name(&self) -> String {
        format!("{PREFIX}{}={}", self.short, self.replicas)
    }

    /// A journal's entry back, when it is one of these.
    pub fn from_journal(name: &str) -> Option<Self> {
        let (short, replicas) = name.strip_prefix(PREFIX)?.split_once('=')?;
        Some(Self {
            short: short.to_owned(),
            replicas: replicas.parse().ok()?,
        })
    }
}

/// The stack's services to scale down: `named` (restore.app-services), or every running
/// replicated service whose environment names database `db`, but the database's own.
pub async fn find(
    docker: &Docker,
    scope: &Scope,
    named: Option<&[String]>,
    db_service: &str,
    db: &str,
) -> anyhow::Result<Vec<Scaled>> {
    let services = swarm::stack_services(docker, &scope.name).await?;
    let mut out = Vec::new();
    for svc in services {
        let chosen = if let Some(wanted) = named {
            wanted.contains(&svc.short)
        } else {
            let env = svc.env();
            svc.short != db_service
                && env_names_database(env.iter().filter_map(|kv| kv.split_once('=')), db)
        };
        if !chosen {
            continue;
        }
        match svc.replicas() {
            None => bail!(lifeboat::exit::UsageError::new(format!(
                "service {} of {scope} is global: lifeboat-restore keeps a Swarm app away from the database by scaling its services to 0 and back, and a global service cannot be scaled. Make it `mode: replicated` in the stack file, or name the services to stop in LIFEBOAT_RESTORE_APP_SERVICES without it (after `docker service rm {}` if it writes to the database; `docker stack deploy` brings it back after the restore)",
                svc.name, svc.name
            ))),
            Some(0) => info!("{} is already scaled to 0; it stays so", svc.name),
            Some(replicas) => out.push(Scaled {
                short: svc.short.clone(),
                replicas,
            }),
        }
    }
    if let Some(wanted) = named {
        for name in wanted {
            if !out.iter().any(|s| &s.short == name) {
                tracing::warn!(
                    "{scope} has no running replicated service `{name}`; nothing to stop there"
                );
            }
        }
    }
    Ok(out)
}

/// Scale every service to 0 at once, and wait until none of their tasks runs.
pub async fn stop(docker: &Docker, scope: &Scope, services: &[Scaled]) -> anyhow::Result<()> {
    futures_util::future::try_join_all(services.iter().map(|s| scale(docker, scope, s, 0))).await?;
    futures_util::future::try_join_all(services.iter().map(|s| async move {
        let svc = swarm::service(docker, scope, &s.short).await?;
        swarm::wait_stopped(docker, &svc.id, &svc.name, Duration::from_secs(60)).await
    }))
    .await?;
    Ok(())
}

/// Scale every service back to its replicas, and wait until they all run, `timeout` in all.
pub async fn start(
    docker: &Docker,
    scope: &Scope,
    services: &[Scaled],
    timeout: Duration,
) -> anyhow::Result<()> {
    futures_util::future::try_join_all(
        services.iter().map(|s| scale(docker, scope, s, s.replicas)),
    )
    .await?;
    let never = lifeboat::signal::Stop::never();
    for s in services {
        let svc = swarm::service(docker, scope, &s.short).await?;
        match swarm::wait_rolled_out(docker, scope, &s.short, &svc.image(), timeout, &never).await?
        {
            Settled::Done => {}
            Settled::Failed(why) | Settled::TimedOut(why) => bail!("{why}"),
        }
    }
    Ok(())
}

async fn scale(docker: &Docker, scope: &Scope, s: &Scaled, replicas: u64) -> anyhow::Result<()> {
    let svc = swarm::service(docker, scope, &s.short).await?;
    if svc.replicas() == Some(replicas) {
        return Ok(());
    }
    let spec = swarm::with_replicas(&svc.spec, replicas);
    swarm::update(docker, &svc, spec).await?;
    info!("{} scaled to {replicas}", svc.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Scaled;

    #[test]
    fn a_scaled_service_goes_through_the_journal_unchanged() {
        let s = Scaled {
            short: "app".into(),
            replicas: 3,
        };
        assert_eq!(s.journal_name(), "swarm:app=3");
        assert_eq!(Scaled::from_journal(&s.journal_name()), Some(s));
        assert_eq!(Scaled::from_journal("lbtest_app_1"), None);
        assert_eq!(Scaled::from_journal("swarm:app=x"), None);
    }
}
