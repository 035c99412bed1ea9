//! A progress line in bytes of SQL on a terminal (`restoring: 1.2 GiB of 3.4 GiB, 35%`),
//! redrawn five times a second from a counter the stream advances; nothing at all when stderr
//! is not a terminal, with `--no-progress` or with `--log-format json`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lifeboat::output::human_bytes;

pub struct Bar {
    /// Dropped to end the line at once (the thread is not left sleeping out its interval).
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    pub fn start(what: &'static str, total: u64, counter: Arc<AtomicU64>, enabled: bool) -> Self {
        if !enabled {
            return Self {
                done: None,
                thread: None,
            };
        }
        let draw = move || {
            let n = counter.load(Ordering::Relaxed);
            let percent = n.saturating_mul(100).checked_div(total).unwrap_or(100);
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r\x1b[2K{what}: {} of {}, {percent}%",
                human_bytes(n),
                human_bytes(total)
            );
            let _ = err.flush();
        };
        // Drawn once before the work starts, so that even a short step is seen.
        draw();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(200)) {
                draw();
            }
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        });
        Self {
            done: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop();
    }
}
