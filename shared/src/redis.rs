//! Redis: connect from a URL and PING, with the latency measured.
//!
//! Used by smoke checks and health reports. Errors show the URL redacted.

use std::time::{Duration, Instant};

use crate::secret::SecretUrl;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {url} did not answer within {} ms", timeout.as_millis())]
    Timeout { url: String, timeout: Duration },
    #[error("Redis at {url}: {source}")]
    Command {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {url} answered PING with {reply:?}")]
    UnexpectedReply { url: String, reply: String },
}

/// A Redis server, addressed by URL.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    shown: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Redis {
    pub fn new(url: &SecretUrl) -> Result<Self, RedisError> {
        Self::with_ca(url, None)
    }

    /// The same, and for `rediss://`, the server's certificate checked against the PEM
    /// certificates `ca` (a private CA) instead of the public roots.
    pub fn with_ca(url: &SecretUrl, ca: Option<Vec<u8>>) -> Result<Self, RedisError> {
        let shown = url.redacted();
        let invalid = |source| RedisError::InvalidUrl {
            url: shown.clone(),
            source,
        };
        let client = match ca {
            Some(root) if url.expose().starts_with("rediss://") => redis::Client::build_with_tls(
                url.expose(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            )
            .map_err(invalid)?,
            _ => redis::Client::open(url.expose()).map_err(invalid)?,
        };
        Ok(Self { client, shown })
    }

    /// An async connection, bounded by `timeout`.
    pub async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        match tokio::time::timeout(timeout, self.client.get_multiplexed_async_connection()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(RedisError::Connect {
                url: self.shown.clone(),
                source,
            }),
            Err(_) => Err(RedisError::Timeout {
                url: self.shown.clone(),
                timeout,
            }),
        }
    }

    /// Connect and PING; the latency of the PING alone.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, RedisError> {
        let mut conn = self.connect(timeout).await?;
        let started = Instant::now();
        let reply: String =
            match tokio::time::timeout(timeout, redis::cmd("PING").query_async(&mut conn)).await {
                Ok(r) => r.map_err(|source| RedisError::Command {
                    url: self.shown.clone(),
                    source,
                })?,
                Err(_) => {
                    return Err(RedisError::Timeout {
                        url: self.shown.clone(),
                        timeout,
                    })
                }
            };
        if reply != "PONG" {
            return Err(RedisError::UnexpectedReply {
                url: self.shown.clone(),
                reply,
            });
        }
        Ok(started.elapsed())
    }
}
