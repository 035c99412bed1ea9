//! SIGTERM and Ctrl-C during a deploy or a rollback: no longer the end of the process, but a
//! request to stop at the next safe point and leave one known release serving.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tracing::warn;

const NONE: u8 = 0;
const TERM: u8 = 1;
const INT: u8 = 2;

/// Set once a signal arrived; checked between steps and while waiting.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicU8>);

impl Stop {
    /// Listen for SIGTERM and SIGINT on the current runtime.
    pub fn install(what: &'static str) -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let stop = Self::default();
        let flag = Arc::clone(&stop.0);
        tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    _ = term.recv() => TERM,
                    _ = int.recv() => INT,
                };
                if flag.swap(got, Ordering::SeqCst) == NONE {
                    warn!(
                        "{}: stopping the {what} and leaving one known release serving",
                        name(got)
                    );
                } else {
                    warn!("a signal again: the {what} is being undone, wait for it to end");
                }
            }
        });
        Ok(stop)
    }

    /// Fail if a signal arrived.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.0.load(Ordering::SeqCst) {
            NONE => Ok(()),
            got => anyhow::bail!("stopped by {}", name(got)),
        }
    }
}

fn name(got: u8) -> &'static str {
    if got == INT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}
