//! `serve`: a JSON health endpoint aggregating targets, like the seed's `/api/health`, for
//! services that have no health route of their own (a worker, Redis, a managed database).
//!
//! `GET /` (or any path) runs every check now and answers 200 when all pass, 503 otherwise, with
//! the status and latency of each. One thread per connection; no keep-alive. A client has
//! [`REQUEST_DEADLINE`] for its whole request, however it dribbles it: slow clients cannot hold
//! the [`MAX_CONCURRENT`] slots for longer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{check_all, Options};

/// Requests answered at once; more get 503 at once.
const MAX_CONCURRENT: usize = 16;
/// The time a client has to send its whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"error\":\"busy\"}";

pub fn serve(listen: &str, opts: &Options) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    crate::warn(&format!(
        "lifeboat-healthcheck: serving the health of {} target(s) on http://{listen}/",
        opts.targets.len()
    ));
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // Each request runs every check; a flood of slow clients must not exhaust threads.
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONCURRENT {
            busy.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.write_all(BUSY.as_bytes());
            continue;
        }
        let (opts, done) = (opts.clone(), Arc::clone(&busy));
        let spawned = std::thread::Builder::new().spawn(move || {
            answer(stream, &opts);
            done.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

fn answer(mut stream: TcpStream, opts: &Options) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = [0u8; 4096];
    let mut request = Vec::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        // The time left of the whole request's, not a fresh timeout per read.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let head = String::from_utf8_lossy(&request);
    let method = head.split_whitespace().next().unwrap_or_default();
    let (status, body) = if method == "GET" || method == "HEAD" {
        let reports = check_all(opts);
        let healthy = reports.iter().all(|r| r.healthy);
        let checks: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "target": r.target,
                    "status": if r.healthy { "healthy" } else { "unhealthy" },
                    "latency_ms": r.latency.as_millis(),
                    "detail": r.detail,
                })
            })
            .collect();
        let body = serde_json::json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": checks,
        });
        (
            if healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            },
            body.to_string(),
        )
    } else {
        (
            "405 Method Not Allowed",
            r#"{"error":"only GET"}"#.to_owned(),
        )
    };
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
