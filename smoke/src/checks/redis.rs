//! `kind = "redis"`: PING, and its latency against `expect.max-ms` (seed 000: "Redis
//! responding to ping").

use std::time::Duration;

use lifeboat::secret::SecretUrl;

use super::{Ctx, Outcome};
use crate::spec::{Check, CheckSpec};

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let url = match spec.url.as_ref().map(|u| u.get_ref().clone()) {
        Some(u) => SecretUrl::new(u),
        None => match &ctx.config.redis.url {
            Some(u) => u.clone(),
            None => return Outcome::fail("no url and REDIS_URL is not set"),
        },
    };
    let ca = match spec.ca_file.as_deref().map(super::read_ca_file).transpose() {
        Ok(ca) => ca,
        Err(e) => return Outcome::fail(e),
    };
    let redis = match lifeboat::redis::Redis::with_ca(&url, ca) {
        Ok(r) => r,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let latency = match redis.ping(check.timeout).await {
        Ok(l) => l,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let micros = latency.as_micros();
    let shown = format!("PONG in {:.1} ms", latency.as_secs_f64() * 1000.0);
    match spec.expect.as_ref().and_then(|e| e.get_ref().max_ms) {
        Some(max) if latency > Duration::from_millis(max) => {
            Outcome::fail(format!("{shown} ({micros} µs), more than {max} ms"))
        }
        _ => Outcome::pass(shown),
    }
}
