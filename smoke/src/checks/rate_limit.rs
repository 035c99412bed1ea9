//! `kind = "rate-limit"`: a burst of `requests` requests must meet the limit's answer (429 by
//! default) with a `Retry-After` within the burst (its last request included), as seed 002's
//! rate limiting test asked.
//!
//! The burst is sequential: a limiter counts requests, and a burst in parallel would only test
//! how many connections the server accepts at once. The burst leaves the limiter full for the
//! caller's address (the demo app: a minute), so the check writes, as far as production goes.

use std::time::Instant;

use super::http::{client_for, request_body, resolve_url, send, url_of};
use super::{ms, Ctx, Outcome};
use crate::spec::{Check, CheckSpec, StatusExpect};

/// The default burst.
pub const DEFAULT_REQUESTS: u32 = 10;

pub async fn run(_check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let path = url_of(spec);
    let expect = spec
        .expect
        .as_ref()
        .map(|e| e.get_ref().clone())
        .unwrap_or_default();
    let limited = expect.status.clone().unwrap_or(StatusExpect::Code(429));
    let need_retry_after = expect.retry_after.unwrap_or(true);
    let requests = spec.requests.unwrap_or(DEFAULT_REQUESTS);
    let setup =
        resolve_url(ctx, path).and_then(|url| Ok((url, client_for(ctx, spec.ca_file.as_deref())?)));
    let (url, client) = match setup {
        Ok(v) => v,
        Err(e) => return Outcome::fail(format!("{method} {path}: {e}")),
    };
    let headers: Vec<(String, String)> = spec.headers.clone().into_iter().collect();
    let started = Instant::now();
    let mut seen: Vec<u16> = Vec::new();
    for n in 1..=requests {
        let body = match request_body(spec) {
            Ok(b) => b,
            Err(e) => return Outcome::fail(e),
        };
        let response = match send(&client, &method, &url, &headers, body).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::fail(format!("{method} {path}, request {n} of {requests}: {e}"))
            }
        };
        if limited.matches(response.status) {
            let retry_after = response
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if need_retry_after && retry_after.is_none() {
                return Outcome::fail(format!(
                    "{method} {path}: {} at request {n} of {requests}, but without Retry-After",
                    response.status
                ));
            }
            let took = started.elapsed();
            if let Some(max) = expect.max_ms {
                if took.as_millis() > u128::from(max) {
                    return Outcome::fail(format!(
                        "{method} {path}: limited at request {n}, but the burst took {} (more than {max} ms)",
                        ms(took)
                    ));
                }
            }
            return Outcome::pass(format!(
                "{method} {path}: {} at request {n} of {requests}{} in {}",
                response.status,
                retry_after
                    .map(|r| format!(", Retry-After {r}"))
                    .unwrap_or_default(),
                ms(took)
            ));
        }
        seen.push(response.status);
    }
    Outcome::fail(format!(
        "{method} {path}: no {} in {requests} requests (answers: {})",
        limited.describe(),
        summarize(&seen)
    ))
}

/// `401×9, 200` for a list of statuses.
fn summarize(statuses: &[u16]) -> String {
    let mut runs: Vec<(u16, usize)> = Vec::new();
    for s in statuses {
        match runs.last_mut() {
            Some((last, n)) if last == s => *n += 1,
            _ => runs.push((*s, 1)),
        }
    }
    runs.iter()
        .map(|(s, n)| {
            if *n == 1 {
                s.to_string()
            } else {
                format!("{s}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses_are_summarized_in_runs() {
        assert_eq!(super::summarize(&[401, 401, 401, 200]), "401×3, 200");
    }
}
