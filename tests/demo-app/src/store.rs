//! Self-healing handles on PostgreSQL and Redis.
//!
//! The toolkit under test stops, restores and swaps these services under the running app, so
//! every use checks the connection and dials again when it is gone: the app becomes healthy by
//! itself once its database is back, without a restart. Also the password hashing shared by
//! `seed` and the login route.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

/// Bound on one connection attempt to either service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A few PostgreSQL clients, as a real app's pool, each reconnected on demand; requests take
/// them in turn. Queries run concurrently on a shared client (tokio-postgres pipelines them),
/// but one connection runs them one after the other, each behind the commit (and its fsync)
/// before it, and concurrent requests would wait in one line; a slot's lock is only held to
/// check or replace its client.
pub struct Db {
    config: tokio_postgres::Config,
    clients: Vec<Mutex<Option<Arc<Client>>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Connections in the pool (node-postgres defaults to 10, Rails to 5).
const POOL: usize = 4;

impl Db {
    pub fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            clients: (0..POOL).map(|_| Mutex::new(None)).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next slot's client, or a new one if it has none or it has been closed.
    /// The error is a short, printable reason.
    pub async fn client(&self) -> Result<Arc<Client>, String> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % POOL;
        let mut slot = self.clients[i].lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        *slot = None;
        let client = Arc::new(connect(&self.config).await?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Forgets every client, for when one stopped answering: a connection to a database that
    /// vanished without closing it (container replaced, network cut) would hang for minutes.
    pub async fn reset(&self) {
        for slot in &self.clients {
            *slot.lock().await = None;
        }
    }
}

/// A fresh connection, its driver spawned on the runtime, the attempt bounded by
/// [`CONNECT_TIMEOUT`].
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, String> {
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await;
    let (client, connection) = match attempt {
        Err(_) => return Err("timed out connecting to the database".into()),
        Ok(Err(e)) => return Err(pg_reason(&e)),
        Ok(Ok(pair)) => pair,
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("database connection lost: {}", pg_reason(&e));
        }
    });
    Ok(client)
}

/// The server's message for SQL errors (`relation "users" does not exist`), the whole chain
/// for the others (`error connecting to server: Connection refused (os error 111)`).
pub fn pg_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_owned();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !reason.contains(&cause_text) {
            reason = format!("{reason}: {cause_text}");
        }
        source = cause.source();
    }
    reason
}

/// One Redis multiplexed connection, dropped after an I/O failure and dialled again on the
/// next use.
pub struct Cache {
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Cache {
    /// `response_timeout` bounds every command: keep it above the timeout of blocking commands.
    pub fn new(client: redis::Client, response_timeout: Duration) -> Self {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        Self {
            client,
            config,
            conn: Mutex::new(None),
        }
    }

    /// Runs one command, reconnecting first if needed.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = {
            let mut slot = self.conn.lock().await;
            if let Some(conn) = slot.as_ref() {
                conn.clone()
            } else {
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                *slot = Some(conn.clone());
                conn
            }
        };
        let result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_unrecoverable_error()
            {
                *self.conn.lock().await = None;
            }
        }
        result
    }
}

/// What `users.password_sha256` holds: hex SHA-256 of a fixed salt and the password.
/// (A demo, not a password store: real apps want a slow KDF.)
pub fn password_sha256(password: &str) -> String {
    hex(&Sha256::digest(
        format!("lifeboat-demo:{password}").as_bytes(),
    ))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lowercase or uppercase hex to bytes; `None` on odd length or a non-hex digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://demo:s3cr@t@db:5432/demo"),
            "postgres://demo:***@db:5432/demo"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(redact_url("redis://cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(redact_url("postgres://demo@db/x"), "postgres://demo@db/x");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("éé"), None);
    }

    #[test]
    fn password_hash_is_salted_sha256() {
        // sha256("lifeboat-demo:demo-password")
        let h = password_sha256("demo-password");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hex(&Sha256::digest(b"lifeboat-demo:demo-password")));
        assert_ne!(h, hex(&Sha256::digest(b"demo-password")));
    }
}
