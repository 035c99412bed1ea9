//! SIGTERM and Ctrl-C during a job that must not be cut halfway (a restore, a deploy, a
//! rollback): from [`Stop::install`] on, a signal no longer ends the process; it asks the job to
//! stop at its next safe point and leave one known state (the old database or the new one live,
//! one release serving). A second signal does not kill the undo either: it is only said.

use std::future::Future;

use anyhow::anyhow;
use tokio::sync::watch;
use tracing::warn;

/// `SIGTERM` or `SIGINT`, once one arrived.
#[derive(Clone)]
pub struct Stop(watch::Receiver<Option<&'static str>>);

impl Stop {
    /// Listen for SIGTERM and SIGINT on the current runtime. `job` names what stops (`restore`),
    /// `leaving` what it promises to leave (`a consistent database`).
    pub fn install(job: &'static str, leaving: &'static str) -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            warn!("{name}: stopping the {job} and leaving {leaving}");
            let _ = tx.send(Some(name));
            // Keep the handlers installed: a second signal must not kill the undo.
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                warn!("a signal again: the {job} is being undone, wait for it to end");
            }
        });
        Ok(Self(rx))
    }

    /// One that never fires: for the steps of an undo that must not be cut short.
    pub fn never() -> Self {
        let (_, rx) = watch::channel(None);
        Self(rx)
    }

    /// Wait for a signal.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.0.clone();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Fail if a signal arrived.
    pub fn check(&self) -> anyhow::Result<()> {
        match *self.0.borrow() {
            Some(name) => Err(anyhow!("stopped by {name}")),
            None => Ok(()),
        }
    }

    /// Run `f` unless a signal comes first.
    pub async fn interruptible<T>(
        &self,
        f: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            r = f => r,
            name = self.wait() => Err(anyhow!("stopped by {name}")),
        }
    }
}

/// A test hook: wait for ever (for a signal) when the environment variable `var` names `point`,
/// saying so first, so that tests can interrupt a job at a step for sure. A job selects this
/// against [`Stop::wait`] where a signal must be obeyed.
pub async fn pause_at(var: &str, point: &str) {
    // Once per process: the undo that follows a signal passes the same points, and must not
    // wait there for a signal that already came.
    static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if std::env::var(var).is_ok_and(|v| v == point)
        && !PAUSED.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        tracing::info!(step = point, "paused at step {point} ({var})");
        std::future::pending::<()>().await;
    }
}
