//! The check kinds, one module each, and what they share: the run's context, an attempt's
//! outcome, and the cleanups that remove probe data at the end of the run.
//!
//! A check never panics and never returns an error to the scheduler: every failure is an
//! [`Outcome`] whose message says what was expected and what came, for a person reading CI logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use lifeboat::config::{Config, S3Settings};
use lifeboat::engine::Engine;

use crate::spec::{Check, CheckSpec, Kind, MailApiKind};
use crate::vars::Redactor;

pub mod http;
pub mod rate_limit;
pub mod redis;
pub mod s3;
pub mod smtp;
mod sql;
pub mod webhook;

/// What every check may use.
pub struct Ctx {
    /// One HTTP client for every check without its own CA file: connections are reused.
    pub client: reqwest::Client,
    pub base_url: Option<String>,
    pub config: Config,
    pub run_id: String,
    pub redactor: Redactor,
    pub cleanups: Cleanups,
}

/// A value a check captured for later ones.
#[derive(Debug, Clone)]
pub struct Captured {
    pub name: String,
    pub value: String,
}

/// The result of one attempt.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    pub captures: Vec<Captured>,
    /// The app answered (it may have created something, even when the check failed).
    pub answered: bool,
}

impl Outcome {
    pub fn pass(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
            captures: Vec::new(),
            answered: false,
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            captures: Vec::new(),
            answered: false,
        }
    }
}

/// Run one attempt of a check whose strings are already interpolated.
pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    match check.kind {
        Kind::Http => http::run(check, spec, ctx).await,
        Kind::RateLimit => rate_limit::run(check, spec, ctx).await,
        Kind::Webhook => webhook::run(check, spec, ctx).await,
        Kind::Postgres => sql::run(check, spec, ctx, Engine::Postgres).await,
        Kind::Mysql => sql::run(check, spec, ctx, Engine::Mysql).await,
        Kind::Redis => redis::run(check, spec, ctx).await,
        Kind::S3 => s3::run(check, ctx).await,
        Kind::Smtp => smtp::run(check, spec, ctx).await,
    }
}

/// Probe data to remove at the end of the run, whatever happened to the checks.
#[derive(Debug, Clone)]
pub enum Cleanup {
    /// A request the spec's `cleanup` table describes (e.g. `DELETE /api/businesses/42`).
    Http {
        check: String,
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        ca_file: Option<String>,
    },
    /// A probe object left by an s3 check that did not get to delete it.
    S3 {
        check: String,
        settings: S3Settings,
        name: String,
    },
    /// A probe mail in a Mailhog or Mailpit, found by the token in its subject.
    Mail {
        check: String,
        api: String,
        kind: MailApiKind,
        token: String,
    },
}

impl Cleanup {
    pub fn check(&self) -> &str {
        match self {
            Cleanup::Http { check, .. }
            | Cleanup::S3 { check, .. }
            | Cleanup::Mail { check, .. } => check,
        }
    }

    /// Whether both remove the same thing (two attempts that created it).
    fn same_request(&self, other: &Cleanup) -> bool {
        match (self, other) {
            (
                Cleanup::Http {
                    check,
                    method,
                    url,
                    headers,
                    ..
                },
                Cleanup::Http {
                    check: c2,
                    method: m2,
                    url: u2,
                    headers: h2,
                    ..
                },
            ) => check == c2 && method == m2 && url == u2 && headers == h2,
            // Every attempt's probe carries the same token: one search deletes them all.
            (Cleanup::Mail { token, .. }, Cleanup::Mail { token: t2, .. }) => token == t2,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Cleanup::Http { method, url, .. } => format!("{method} {url}"),
            Cleanup::S3 { settings, name, .. } => {
                format!("delete s3://{}/{}{name}", settings.bucket, settings.prefix)
            }
            Cleanup::Mail { .. } => "delete the probe mail through the mail API".into(),
        }
    }

    /// Remove it; an error says why not.
    pub async fn run(&self, ctx: &Ctx) -> Result<(), String> {
        match self {
            Cleanup::Http {
                method,
                url,
                headers,
                ca_file,
                ..
            } => {
                let client = http::client_for(ctx, ca_file.as_deref())?;
                let method = reqwest::Method::from_bytes(method.as_bytes())
                    .map_err(|_| format!("{method:?} is not an HTTP method"))?;
                let mut request = client.request(method, url).timeout(CLEANUP_TIMEOUT);
                for (k, v) in headers {
                    request = request.header(k, v);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| lifeboat::http::describe(&e))?;
                let status = response.status().as_u16();
                // Gone already is as good as removed.
                if response.status().is_success() || status == 404 || status == 410 {
                    Ok(())
                } else {
                    Err(format!("answered {status}"))
                }
            }
            Cleanup::S3 { settings, name, .. } => {
                let bucket = lifeboat::s3::Bucket::new(settings);
                bucket.delete(name).await.map_err(|e| e.to_string())?;
                // A probe the storage took in whole but answered after the check gave up can
                // land after that delete: look again for a while, and delete it then.
                let until = std::time::Instant::now() + S3_SETTLE;
                while std::time::Instant::now() < until {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    if bucket.get(name, 64 * 1024).await.is_ok() {
                        bucket.delete(name).await.map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            }
            Cleanup::Mail {
                api, kind, token, ..
            } => smtp::remove_probe(&ctx.client, api, *kind, token).await,
        }
    }
}

/// The time a cleanup request has.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A check's `ca-file`: PEM certificates, read up to 16 MiB (a CA bundle is a few hundred KiB).
pub fn read_ca_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(16 << 20).read_to_end(&mut pem))
        .map_err(|e| format!("cannot read ca-file {path}: {e}"))?;
    Ok(pem)
}

/// How long an s3 check's cleanup keeps looking for a probe that lands late.
const S3_SETTLE: Duration = Duration::from_secs(5);

/// A cleanup that could not be filled in: what an attempt may have created stays.
#[derive(Debug, Clone)]
pub struct NotSent {
    pub check: String,
    /// The cleanup as written (`DELETE /api/businesses/${business_id}`).
    pub what: String,
    pub why: String,
    /// How many attempts of the check it was for.
    pub attempts: u32,
}

/// The run's pending cleanups. A check registers one before it creates something and removes it
/// when it deleted the thing itself, so a timeout in between still leaves nothing behind.
#[derive(Default)]
pub struct Cleanups {
    items: Mutex<Vec<(u64, Cleanup)>>,
    next: AtomicU64,
    not_sent: Mutex<Vec<NotSent>>,
}

impl Cleanups {
    /// Register a cleanup; one already pending (a retry that created the same thing) is not
    /// registered twice.
    pub fn add(&self, cleanup: Cleanup) -> u64 {
        let mut items = self.lock();
        if let Some((id, _)) = items.iter().find(|(_, c)| c.same_request(&cleanup)) {
            return *id;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        items.push((id, cleanup));
        id
    }

    /// Record a cleanup an attempt needed but could not have (once per check and reason).
    pub fn not_sent(&self, check: &str, what: String, why: String) {
        let mut list = self
            .not_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = list.iter_mut().find(|n| n.check == check && n.why == why) {
            n.attempts += 1;
        } else {
            list.push(NotSent {
                check: check.to_owned(),
                what,
                why,
                attempts: 1,
            });
        }
    }

    /// The cleanups that could not be sent, in the order they were met.
    pub fn take_not_sent(&self) -> Vec<NotSent> {
        std::mem::take(
            &mut *self
                .not_sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// The pending cleanups of one check, newest first.
    pub fn take_for(&self, check: &str) -> Vec<Cleanup> {
        let mut items = self.lock();
        let mut taken = Vec::new();
        items.retain(|(_, c)| {
            if c.check() == check {
                taken.push(c.clone());
                false
            } else {
                true
            }
        });
        taken.reverse();
        taken
    }

    /// Every pending cleanup, newest first (what was created last is removed first).
    pub fn take_all(&self) -> Vec<Cleanup> {
        let mut items = std::mem::take(&mut *self.lock());
        items.reverse();
        items.into_iter().map(|(_, c)| c).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Cleanup)>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `12 ms`, `1.4 s`.
pub fn ms(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
