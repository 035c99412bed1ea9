//! The database engine seam: what backup, `verify --restore-test` and restore ask of a database
//! server, whatever engine answers (PostgreSQL, or a MySQL-protocol server: MySQL, MariaDB,
//! TiDB).
//!
//! The engine is chosen once, by the URL's scheme or the database container's environment
//! ([`Engine::of_url`], [`Engine::of_env`]); from there every caller holds a
//! `Box<dyn DatabaseServer>` and never asks which engine it is. The implementations live beside
//! the clients they drive (lifeboat-backup's `engine` module: `pg_dump` and psql, or `mysqldump`
//! and mysql, in the database's container or locally against a URL); what only a restore does
//! (the swap) is lifeboat-restore's, per engine as well.
//!
//! lifeboat-smoke opens a connection and asks one question: [`ask`], in the engine the URL's
//! scheme names. lifeboat-healthcheck is below this library: its static probe links nothing of
//! it (to stay small, about 1.7 MB), and its wire clients are the ones this seam's MySQL side
//! and [`ask`] use.
//!
//! Every name and value that reaches SQL goes through [`DatabaseServer::ident`] and
//! [`DatabaseServer::literal`]: table names come from a dump, database names from the user.

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use crate::db::Engine;

/// An answer's rows, each a list of fields as text (`NULL` as the empty string or `NULL`,
/// as the engine's client prints it).
pub type Rows = Vec<Vec<String>>;

/// Where a dump goes: the archive writer (compression, encryption, the scan of its SQL).
pub type Sink<'a> = &'a mut (dyn AsyncWrite + Unpin + Send);

/// A plain SQL script, as a dump wrote it.
pub type Script<'a> = &'a mut (dyn AsyncRead + Unpin + Send);

/// What a load told of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The bytes of SQL the server's client read: all of the script, or the load stopped early.
    pub fed: u64,
    /// The rows taken in, one number per `COPY` block in the order of the script, when the
    /// client says so (psql's `COPY n` tags); `None` when it does not (MySQL's client), and the
    /// tables must be counted ([`DatabaseServer::count_rows`]).
    pub copied: Option<Vec<u64>>,
}

/// How a load may go: PostgreSQL's parallel load reads it; MySQL's loads in order whatever it
/// says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// The sessions a parallel load may use: `None`, the server's cores when they can be read,
    /// else 2; 1, one session in order (`restore.jobs`).
    pub jobs: Option<u32>,
    /// Where `COPY` blocks may wait in a temporary file while every session is busy (the
    /// backup directory); `None`: they wait in the archive.
    pub spill_dir: Option<std::path::PathBuf>,
    /// Each `COPY` block's size in bytes, in the script's order, from the manifest: the loader
    /// gives the largest waiting block first. `None` (an older manifest): the script's order.
    pub blocks: Option<Vec<u64>>,
}

impl LoadPlan {
    /// One session, in order.
    pub fn serial() -> Self {
        Self {
            jobs: Some(1),
            ..Self::default()
        }
    }
}

/// A database server, as backup, verify and restore use it.
#[async_trait]
pub trait DatabaseServer: Send + Sync {
    /// Which engine this is, for messages and for the few things the user must be told differ.
    fn engine(&self) -> Engine;

    /// Where it is, for messages and the manifest; never with a password.
    fn describe(&self) -> String;

    /// The database a backup dumps and a restore replaces.
    fn database(&self) -> &str;

    /// `name` quoted as an identifier of this engine, whatever it holds.
    fn ident(&self, name: &str) -> String;

    /// `text` quoted as a string literal of this engine, whatever it holds.
    fn literal(&self, text: &str) -> String;

    /// The server's version as the engine gives it: `15.4`, `10.11.6-MariaDB-0+deb12u1`,
    /// `8.0.11-TiDB-v7.5.0`.
    async fn version(&self) -> anyhow::Result<String>;

    /// `statements` one after the other in one session on `database`, or where the engine runs
    /// maintenance statements when `None` (PostgreSQL's `postgres` database, else `template1`;
    /// MySQL's session without a default database, every name qualified); the first error
    /// stops them. The rows of all of them.
    async fn batch(&self, database: Option<&str>, statements: &[&str]) -> anyhow::Result<Rows>;

    /// The rows of `sql` on `database` (see [`DatabaseServer::batch`]).
    async fn rows(&self, database: Option<&str>, sql: &str) -> anyhow::Result<Rows> {
        self.batch(database, &[sql]).await
    }

    /// Every database's name.
    async fn databases(&self) -> anyhow::Result<Vec<String>>;

    async fn exists(&self, database: &str) -> anyhow::Result<bool> {
        Ok(self.databases().await?.iter().any(|d| d == database))
    }

    /// Bytes `database` takes on disk.
    async fn size(&self, database: &str) -> anyhow::Result<u64>;

    /// Bytes free where the server keeps its data, when it can be known for sure (a managed
    /// server does not say).
    async fn free_space(&self) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    /// An empty database, in the encoding a dump of this engine expects.
    async fn create_database(&self, database: &str) -> anyhow::Result<()>;

    /// End every session on `databases` but ours; how many there were.
    async fn terminate(&self, databases: &[&str]) -> anyhow::Result<u64>;

    /// Drop `database` if it exists, its sessions ended first.
    async fn drop_database(&self, database: &str) -> anyhow::Result<()>;

    /// `count(*)` of each of `tables` (as the dump names them) in `database`, in their order.
    async fn count_rows(&self, database: &str, tables: &[&str]) -> anyhow::Result<Vec<i64>>;

    /// The database's own properties that a plain dump does not carry (PostgreSQL's owner,
    /// settings, grants and comment) as JSON, which lifeboat-backup's `properties` module reads
    /// and writes; `None` where the engine keeps them with the database's name (MySQL), and for
    /// a backup of every database.
    async fn properties_json(&self) -> anyhow::Result<Option<String>>;

    /// Stream a logical dump of the database into `sink`. Fails on a non-zero exit and on an
    /// error line on stderr, so that a dump cut short is never taken for a complete one.
    async fn dump(&self, sink: Sink<'_>) -> anyhow::Result<()>;

    /// Stream `script` into the engine's client on `database` (which exists, and is empty);
    /// the first error stops it and is the reason given. `plan`: how a parallel load may go,
    /// where the engine has one (PostgreSQL).
    async fn load(
        &self,
        database: &str,
        script: Script<'_>,
        plan: &LoadPlan,
    ) -> anyhow::Result<Loaded>;
}

/// The first value of one query's answer, and how long connecting and asking took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The database asked, as the URL names it (PostgreSQL's default: the user's name).
    pub database: String,
    /// `None`: no row, or SQL NULL.
    pub value: Option<String>,
    pub took: std::time::Duration,
}

/// The most rows and bytes [`ask`] reads of an answer: a check compares one value.
const ASK_MAX_ROWS: usize = 100;
const ASK_MAX_BYTES: usize = 1024 * 1024;

/// What lifeboat-smoke asks of the database at `url`, in the engine its scheme names: one
/// statement over a connection of its own, inside a read-only transaction that is rolled back
/// when `read_only`, and the first value of its answer. `ca_file` adds a root certificate to a
/// MySQL server's TLS (PostgreSQL's is the URL's `sslrootcert`). Errors name the server
/// without its password.
pub async fn ask(
    url: &crate::secret::SecretUrl,
    ca_file: Option<&str>,
    sql: &str,
    read_only: bool,
    timeout: std::time::Duration,
) -> Result<Answer, String> {
    let started = std::time::Instant::now();
    let (database, value) = match Engine::of_url(url.expose()) {
        Engine::Postgres => ask_postgres(url, sql, read_only).await?,
        Engine::Mysql => ask_mysql(url, ca_file, sql, read_only, timeout).await?,
    };
    Ok(Answer {
        database,
        value,
        took: started.elapsed(),
    })
}

async fn ask_postgres(
    url: &crate::secret::SecretUrl,
    sql: &str,
    read_only: bool,
) -> Result<(String, Option<String>), String> {
    let target = crate::db::DbTarget::from_url(url).map_err(|e| e.to_string())?;
    let client = target.connect().await.map_err(|e| e.to_string())?;
    let result = async {
        if read_only {
            client.batch_execute("BEGIN READ ONLY").await?;
        }
        let messages = client.simple_query(sql).await;
        if read_only {
            // The transaction only guarded the query; nothing in it is kept.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        messages
    }
    .await
    .map_err(|e| format!("{target}: {sql:?} failed: {}", crate::db::describe(&e)))?;
    let value = result
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some(row.try_get(0).ok().flatten().map(str::to_owned))
            }
            _ => None,
        })
        .flatten();
    Ok((target.database().to_owned(), value))
}

/// lifeboat-healthcheck's MySQL protocol (no client library), on a blocking thread bounded by
/// `timeout`.
async fn ask_mysql(
    url: &crate::secret::SecretUrl,
    ca_file: Option<&str>,
    sql: &str,
    read_only: bool,
    timeout: std::time::Duration,
) -> Result<(String, Option<String>), String> {
    use lifeboat_healthcheck::mysql::{Conn, Options};
    let mut options = Options::from_url(url.expose())?;
    if let Some(ca) = ca_file {
        options.ssl_ca = Some(ca.into());
    }
    let deadline = lifeboat_healthcheck::Deadline::after(timeout);
    let database = options.database.clone().unwrap_or_default();
    let shown = url.redacted();
    let query = sql.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(&options, deadline)?;
        if read_only {
            conn.query("START TRANSACTION READ ONLY", 0, 4096)?;
        }
        let answer = conn.query(&query, ASK_MAX_ROWS, ASK_MAX_BYTES);
        if read_only && answer.is_ok() {
            // The transaction only guarded the query; nothing in it is kept.
            let _ = conn.query("ROLLBACK", 0, 4096);
        }
        conn.close();
        answer
    })
    .await;
    match result {
        Ok(Ok(answer)) => Ok((
            database,
            answer
                .rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .flatten(),
        )),
        Ok(Err(e)) => Err(format!("{shown}: {sql:?} failed: {e}")),
        Err(e) => Err(format!("{shown}: the check stopped: {e}")),
    }
}
