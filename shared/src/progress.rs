//! Progress bars for long jobs on a terminal: bytes done of the total, the rate and the time
//! left (indicatif), for a restore, a verify, a backup by hand and S3 transfers.
//!
//! A bar is drawn only when [`crate::output::progress_enabled`] says so: stderr is a terminal,
//! the logs are for a person and not quiet, no `--no-progress`. Anywhere else (cron's mail, a
//! log collector, CI, the tests) a [`Bar`] is hidden and costs an atomic add: what those read
//! never changes because of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar is redrawn, and a followed counter read.
const REDRAW: Duration = Duration::from_millis(200);

/// A progress bar in bytes, or a hidden one; cleared from the terminal when dropped.
pub struct Bar {
    bar: ProgressBar,
    /// The thread that copies a counter into the bar ([`Bar::start`]), and its stop.
    follower: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Bar {
    /// A bar for `what` (`uploading backup_….sql.gz`), out of `total` bytes when known, advanced
    /// with [`Bar::inc`].
    pub fn bytes(what: &str, total: Option<u64>) -> Self {
        let bar = if crate::output::progress_enabled() {
            Self::drawn(what, total)
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            follower: None,
        }
    }

    /// A bar for `what` out of `total` bytes that follows `counter`, which the work advances
    /// from any thread.
    pub fn start(what: &str, total: u64, counter: Arc<AtomicU64>) -> Self {
        let mut this = Self::bytes(what, Some(total));
        if !this.bar.is_hidden() {
            let bar = this.bar.clone();
            let (stop, stopped) = mpsc::channel::<()>();
            let thread = std::thread::spawn(move || loop {
                bar.set_position(counter.load(Ordering::Relaxed));
                if !matches!(stopped.recv_timeout(REDRAW), Err(RecvTimeoutError::Timeout)) {
                    break;
                }
            });
            this.follower = Some((stop, thread));
        }
        this
    }

    /// A bar drawn on stderr's terminal.
    fn drawn(what: &str, total: Option<u64>) -> ProgressBar {
        let template = if total.is_some() {
            "{msg}: {bytes} of {total_bytes}, {percent}%, {bytes_per_sec}, {eta} left"
        } else {
            "{msg}: {bytes}, {bytes_per_sec}"
        };
        // Not ProgressDrawTarget::stderr: it hides the bar when TERM is unset (sudo, cron
        // with a terminal, `script`), and whether to draw is decided above.
        let stderr = Box::new(console::Term::stderr());
        let bar =
            ProgressBar::with_draw_target(total, ProgressDrawTarget::term_like_with_hz(stderr, 5));
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        // Drawn once before the work starts, so that even a short step is seen.
        bar.tick();
        bar
    }

    /// `n` more bytes done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// The work ended: the bar is cleared.
    pub fn finish(self) {}
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.follower.take() {
            drop(stop);
            let _ = thread.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_off_a_terminal_is_hidden_and_still_counts() {
        let counter = Arc::new(AtomicU64::new(0));
        let followed = Bar::start("restoring", 10, Arc::clone(&counter));
        assert!(followed.bar.is_hidden() && followed.follower.is_none());
        counter.store(5, Ordering::Relaxed);
        followed.finish();
        let bar = Bar::bytes("uploading", None);
        bar.inc(3);
        assert!(bar.bar.is_hidden());
        assert_eq!(bar.bar.position(), 3);
    }
}
