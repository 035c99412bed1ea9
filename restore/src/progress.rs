//! A progress line in bytes of SQL on a terminal (`restoring: 1.2 GiB of 3.4 GiB, 35%`),
//! redrawn five times a second from a counter the stream advances; nothing at all when stderr
//! is not a terminal, with `--no-progress` or with `--log-format json`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lifeboat::output::human_bytes;

pub struct Bar {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    pub fn start(what: &'static str, total: u64, counter: Arc<AtomicU64>, enabled: bool) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut err = std::io::stderr();
                while !done.load(Ordering::Relaxed) {
                    let n = counter.load(Ordering::Relaxed);
                    let percent = n.saturating_mul(100).checked_div(total).unwrap_or(100);
                    let _ = write!(
                        err,
                        "\r\x1b[2K{what}: {} of {}, {percent}%",
                        human_bytes(n),
                        human_bytes(total)
                    );
                    let _ = err.flush();
                    std::thread::sleep(Duration::from_millis(200));
                }
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            })
        });
        Self { done, thread }
    }

    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
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
