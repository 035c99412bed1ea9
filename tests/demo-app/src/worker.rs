//! The background worker: moves jobs from the Redis list `jobs` into the `jobs_done` table.
//!
//! It gives the demo a second long-running process that depends on both services, so the
//! toolkit's stop/restore/start sequence has more than the web server to get right. It rides
//! out outages of either service by retrying every second.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{pg_reason, Cache, Db};

/// How long one BLPOP waits for a job, in seconds (Redis 6+ takes a fraction): also the longest
/// a `docker stop` waits for the worker (a restore's or a deploy's downtime), so short, as a
/// well-behaved worker polls.
const POP_TIMEOUT_SECONDS: f64 = 0.25;
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true. A BLPOP in progress is let finish (at most
/// [`POP_TIMEOUT_SECONDS`]) rather than cancelled, because a cancelled pop may lose its job.
pub async fn run(db: &Db, cache: &Cache, mut shutdown: watch::Receiver<bool>) {
    eprintln!("worker: waiting for jobs on redis list `jobs`");
    let mut failing = false;
    while !*shutdown.borrow() {
        match step(db, cache).await {
            Ok(job) => {
                if failing {
                    eprintln!("worker: connected again");
                    failing = false;
                }
                if let Some(job) = job {
                    eprintln!("worker: done {job:?}");
                }
            }
            Err(reason) => {
                eprintln!("worker: {reason}; retrying in 1 s");
                failing = true;
                tokio::select! {
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
            }
        }
    }
    eprintln!("worker: stopped");
}

/// Waits for one job and records it. `Ok(None)` when the wait timed out.
async fn step(db: &Db, cache: &Cache) -> Result<Option<String>, String> {
    // Connect to PostgreSQL before taking a job off the list, so that an outage leaves jobs queued.
    let client = db.client().await.map_err(|e| format!("database: {e}"))?;
    let popped: Option<(String, String)> = cache
        .query(redis::cmd("BLPOP").arg("jobs").arg(POP_TIMEOUT_SECONDS))
        .await
        .map_err(|e| format!("redis: {e}"))?;
    let Some((_list, job)) = popped else {
        return Ok(None);
    };
    if let Err(e) = client
        .execute("INSERT INTO jobs_done (job) VALUES ($1)", &[&job])
        .await
    {
        // Put it back at the head so that it is the next one tried.
        let requeued = cache
            .query::<()>(redis::cmd("LPUSH").arg("jobs").arg(&job))
            .await
            .is_ok();
        let fate = if requeued { "requeued" } else { "lost" };
        return Err(format!(
            "cannot record job {job:?} ({fate}): {}",
            pg_reason(&e)
        ));
    }
    Ok(Some(job))
}
