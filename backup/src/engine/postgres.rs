//! PostgreSQL behind the engine seam: `pg_dump` (or `pg_dumpall`) and psql inside the database
//! container, whose clients always match the server, or the local ones against a URL (managed
//! PostgreSQL, with libpq's `sslmode`).
//!
//! Statements (checks, create, rename, drop) go over a connection when one is possible: the
//! URL's server, or the container's own over its Docker network when this machine reaches it
//! (see [`direct_target`]), a connection instead of a `docker exec` of psql, a tenth of a second
//! each, some of them while the app is down. Otherwise psql in the container. Scripts (a
//! restore's data) go through psql, as the backup came from pg_dump; on several sessions, the
//! rows and indexes over such connections when there are ([`super::parallel`]).
//!
//! Maintenance statements (create, rename, drop) run from `postgres`, else `template1` (else,
//! for a URL, its own database): never from one of the databases they rename.

use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use lifeboat::db::{self, DbTarget, Engine};
use lifeboat::docker::DockerError;
use lifeboat::engine::{DatabaseServer, LoadPlan, Loaded, Rows, Script, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;
use tracing::{debug, info};

use crate::source::{local_client, Source};

/// A test hook: set, statements go through psql in the container even where the container's
/// address is reachable, so that the tests cover both ways.
pub const VIA_EXEC_VAR: &str = "LBTEST_RESTORE_VIA_EXEC";

/// Bytes read and handed on to psql at a time.
const CHUNK: usize = 64 * 1024;

/// `"name"`, with any `"` doubled: safe for any database or role name.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (standard_conforming_strings is on since PostgreSQL 9.1).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub struct Postgres {
    source: Source,
    /// The container's server over its Docker network, when reachable; looked for on the
    /// first statement (a dump needs none of it).
    direct: OnceCell<Option<DbTarget>>,
    /// `postgres`, else `template1` (else a URL's own database): found on the first
    /// maintenance statement.
    maintenance: OnceCell<String>,
}

impl Postgres {
    pub fn new(source: Source) -> Self {
        Self {
            source,
            direct: OnceCell::new(),
            maintenance: OnceCell::new(),
        }
    }

    async fn direct(&self) -> Option<&DbTarget> {
        self.direct
            .get_or_init(|| async {
                match &self.source {
                    Source::Container {
                        docker,
                        container,
                        credentials,
                        ..
                    } => direct_target(docker, container, credentials).await,
                    _ => None,
                }
            })
            .await
            .as_ref()
    }

    async fn maintenance(&self) -> anyhow::Result<&str> {
        let direct = self.direct().await;
        self.maintenance
            .get_or_try_init(|| async {
                // A managed server's URL may name the only database its user can reach: the
                // last resort (a restore cannot rename it from there, and says so).
                let own = match &self.source {
                    Source::Url { target, .. } => Some(target.database()),
                    _ => None,
                };
                let mut first_error = None;
                for maintenance in ["postgres", "template1"].into_iter().chain(own) {
                    match self.run(direct, maintenance, &["SELECT 1"]).await {
                        Ok(_) => return Ok(maintenance.to_owned()),
                        Err(e) => {
                            debug!("no maintenance database {maintenance} ({e:#})");
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(first_error.unwrap_or_else(|| anyhow!("no maintenance database")))
            })
            .await
            .map(String::as_str)
    }

    /// `statements` one after the other, each its own transaction, in one session of `db`,
    /// stopping at the first error (one psql started instead of one per statement: the swap
    /// runs while the app is down); the rows of all of them, as text.
    async fn run(
        &self,
        direct: Option<&DbTarget>,
        db: &str,
        statements: &[&str],
    ) -> anyhow::Result<Rows> {
        for sql in statements {
            debug!(database = db, "SQL: {sql}");
        }
        let (docker, container, credentials) = match (direct, &self.source) {
            (Some(target), _) | (None, Source::Url { target, .. }) => {
                return over_tcp(target, db, statements).await
            }
            (None, Source::MysqlUrl { .. }) => bail!("a MySQL server reached psql's path"),
            (
                None,
                Source::Container {
                    docker,
                    container,
                    credentials,
                    ..
                },
            ) => (docker, container, credentials),
        };
        let dbname = format!("--dbname={db}");
        let mut out = Vec::new();
        let mut command = vec![
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-F",
            "\x1f",
            "-R",
            "\x1e",
            "-v",
            "ON_ERROR_STOP=1",
            "--no-password",
            dbname.as_str(),
        ];
        for sql in statements {
            command.extend(["-c", sql]);
        }
        match docker
            .exec(container, &command, &credentials.client_env(), &mut out)
            .await
        {
            Ok(_) => {}
            Err(DockerError::ExecFailed { stderr, .. }) => {
                bail!("{}", stderr.trim())
            }
            Err(e) => return Err(e.into()),
        }
        let text = String::from_utf8_lossy(&out);
        Ok(text
            .split('\x1e')
            .map(|r| r.trim_end_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\x1f').map(str::to_owned).collect())
            .collect())
    }

    /// The server's `server_version_num` (`150004` for 15.4).
    pub async fn version_num(&self) -> anyhow::Result<u32> {
        let rows = self.rows(None, "SHOW server_version_num").await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("the server did not give its version number"))
    }

    /// The server's cores, for a parallel load: its container's `nproc` (at most 16), else 2.
    async fn cores(&self) -> u32 {
        if let Source::Container {
            docker,
            container,
            oneoff: None,
            ..
        } = &self.source
        {
            if let Ok(n) = docker.exec_output(container, &["nproc"]).await {
                if let Ok(n) = n.trim().parse::<u32>() {
                    return n.clamp(1, 16);
                }
            }
        }
        2
    }

    /// The database dumped, or a database that surely exists (pg_dumpall's start).
    fn own_database(&self) -> &str {
        match &self.source {
            Source::Container { credentials, .. } => &credentials.database,
            Source::Url { target, .. } => target.database(),
            Source::MysqlUrl { .. } => "",
        }
    }
}

#[async_trait]
impl DatabaseServer for Postgres {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn describe(&self) -> String {
        self.source.describe()
    }

    fn database(&self) -> &str {
        self.source.database()
    }

    fn ident(&self, name: &str) -> String {
        ident(name)
    }

    fn literal(&self, text: &str) -> String {
        literal(text)
    }

    async fn version(&self) -> anyhow::Result<String> {
        let version = match &self.source {
            Source::Url { target, .. } => {
                let client = target.connect().await?;
                db::server_version(&client, target).await?
            }
            _ => first(
                &self
                    .rows(Some(self.own_database()), "SHOW server_version")
                    .await?,
            ),
        };
        Ok(version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_owned())
    }

    async fn batch(&self, database: Option<&str>, statements: &[&str]) -> anyhow::Result<Rows> {
        let db = match database {
            Some(db) => db,
            None => self.maintenance().await?,
        };
        self.run(self.direct().await, db, statements).await
    }

    async fn databases(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .rows(None, "SELECT datname FROM pg_database")
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    async fn exists(&self, database: &str) -> anyhow::Result<bool> {
        let rows = self
            .rows(
                None,
                &format!(
                    "SELECT 1 FROM pg_database WHERE datname = {}",
                    literal(database)
                ),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn size(&self, database: &str) -> anyhow::Result<u64> {
        first(
            &self
                .rows(
                    None,
                    &format!("SELECT pg_database_size({})", literal(database)),
                )
                .await?,
        )
        .parse()
        .map_err(|_| anyhow!("no size for database {database}"))
    }

    /// The container's file system under the data directory; a one-off container beside a
    /// Swarm task does not hold the data, and a managed server does not say.
    async fn free_space(&self) -> anyhow::Result<Option<u64>> {
        let Source::Container {
            docker,
            container,
            oneoff: None,
            ..
        } = &self.source
        else {
            return Ok(None);
        };
        let dir = self.rows(None, "SHOW data_directory").await?;
        let dir = dir
            .first()
            .and_then(|r| r.first())
            .context("the server did not give its data directory")?;
        let df = docker
            .exec_output(container, &["df", "-P", "-k", dir.as_str()])
            .await
            .context("asking the database container for its free space (df)")?;
        let available = df
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|kb| kb.parse::<u64>().ok())
            .with_context(|| format!("cannot read df's answer: {df}"))?;
        Ok(Some(available * 1024))
    }

    async fn create_database(&self, database: &str) -> anyhow::Result<()> {
        self.rows(
            None,
            &format!("CREATE DATABASE {} TEMPLATE template0", ident(database)),
        )
        .await
        .map(drop)
    }

    async fn terminate(&self, databases: &[&str]) -> anyhow::Result<u64> {
        if databases.is_empty() {
            return Ok(0);
        }
        Ok(first_count(
            &self.rows(None, &terminate_sql(databases)).await?,
        ))
    }

    async fn drop_database(&self, database: &str) -> anyhow::Result<()> {
        if !self.exists(database).await? {
            return Ok(());
        }
        self.terminate(&[database]).await?;
        self.rows(
            None,
            &format!("DROP DATABASE IF EXISTS {}", ident(database)),
        )
        .await
        .map(drop)
    }

    /// `tables` as pg_dump names them (`schema.table`, each part bare or quoted), pasted as
    /// they are: the caller checks them first.
    async fn count_rows(&self, database: &str, tables: &[&str]) -> anyhow::Result<Vec<i64>> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        // ONLY: pg_dump's COPY of a table holds its own rows, not those of tables inheriting it.
        let sql = tables
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i}, count(*) FROM ONLY {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut counts = vec![None; tables.len()];
        for row in self.rows(Some(database), &sql).await? {
            let parsed = match row.as_slice() {
                [i, n] => i.parse::<usize>().ok().zip(n.parse::<i64>().ok()),
                _ => None,
            };
            let (i, n) = parsed.with_context(|| format!("the count answered {row:?}"))?;
            if let Some(slot) = counts.get_mut(i) {
                *slot = Some(n);
            }
        }
        tables
            .iter()
            .zip(counts)
            .map(|(t, n)| n.with_context(|| format!("no count came back for {t}")))
            .collect()
    }

    async fn properties_json(&self) -> anyhow::Result<Option<String>> {
        if self.source.all() {
            return Ok(None);
        }
        let version = self.version_num().await?;
        let db = self.own_database().to_owned();
        let json = first(
            &self
                .rows(Some(&db), &crate::properties::query(&db, version))
                .await?,
        );
        Ok((!json.is_empty()).then_some(json))
    }

    async fn dump(&self, sink: Sink<'_>) -> anyhow::Result<()> {
        let stderr = match &self.source {
            Source::Container {
                docker,
                container,
                credentials,
                all,
                ..
            } => {
                // pg_dumpall starts from the container's own database and visits every other.
                let db = format!("--dbname={}", credentials.database);
                let start = format!("--database={}", credentials.database);
                let command: [&str; 3] = if *all {
                    ["pg_dumpall", "--no-password", &start]
                } else {
                    ["pg_dump", "--no-password", &db]
                };
                let output = docker
                    .exec(container, &command, &credentials.client_env(), sink)
                    .await
                    .with_context(|| format!("{} in the database container failed", command[0]))?;
                output.stderr
            }
            Source::Url { target, all } => dump_local(target, *all, sink).await?,
            Source::MysqlUrl { .. } => bail!("a MySQL server reached pg_dump's path"),
        };
        super::check_stderr(&stderr)
    }

    /// `psql -X -v ON_ERROR_STOP=1` on `database`: the first error stops it, and is the
    /// reason given. Not -q: the command tags on stdout carry each COPY's row count, as the
    /// server saw it. With more than one job, on that many sessions ([`super::parallel`]).
    async fn load(
        &self,
        database: &str,
        script: Script<'_>,
        plan: &LoadPlan,
    ) -> anyhow::Result<Loaded> {
        let jobs = match plan.jobs {
            Some(n) => n,
            None => self.cores().await,
        };
        if jobs > 1 {
            // psql for the schema; the rows over connections from here when the server is
            // reachable so: no psql, no `docker exec` stream in their way.
            let (client, direct) = match &self.source {
                Source::Container {
                    docker,
                    container,
                    credentials,
                    ..
                } => (
                    super::parallel::Client::Exec {
                        docker: docker.clone(),
                        container: container.clone(),
                        env: credentials.client_env(),
                    },
                    self.direct().await,
                ),
                Source::Url { target, .. } => (
                    super::parallel::Client::Local {
                        target: target.clone(),
                    },
                    Some(target),
                ),
                Source::MysqlUrl { .. } => bail!("a MySQL server reached the PostgreSQL loader"),
            };
            info!("loading on {jobs} sessions (restore.jobs)");
            return super::parallel::load(&client, direct, database, script, jobs as usize, plan)
                .await;
        }
        let db = format!("--dbname={database}");
        let psql = psql_load(&db);
        let mut tags = CopyTags::default();
        let fed = match &self.source {
            Source::Container {
                docker,
                container,
                credentials,
                ..
            } => {
                let mut script = script;
                match docker
                    .exec_with_input(
                        container,
                        &psql,
                        &credentials.client_env(),
                        &mut script,
                        &mut tags,
                    )
                    .await
                {
                    Ok(out) => out.stdin_bytes,
                    Err(DockerError::ExecFailed { code, stderr, .. }) => {
                        return Err(sql_error(database, &stderr, &format!("exit code {code}")));
                    }
                    Err(e) => return Err(e).context("restoring through docker exec"),
                }
            }
            Source::Url { target, .. } => {
                load_local(&target.with_database(database), database, script, &mut tags).await?
            }
            Source::MysqlUrl { .. } => bail!("a MySQL server reached the PostgreSQL loader"),
        };
        Ok(Loaded {
            fed,
            copied: Some(tags.finish()),
        })
    }
}

/// psql loading a script on `dbname` (`--dbname=…`): no psqlrc, the first error stops it, never
/// a password prompt; not -q, so that each COPY's `COPY n` tag comes back on stdout.
pub(super) fn psql_load(dbname: &str) -> [&str; 6] {
    [
        "psql",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        dbname,
    ]
}

/// The first field of the first row, or nothing.
fn first(rows: &Rows) -> String {
    rows.first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default()
}

/// The number in the first row's first column; 0 without one.
pub fn first_count(rows: &[Vec<String>]) -> u64 {
    rows.first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Ends every session on `dbs` but ours, and counts them.
pub fn terminate_sql(dbs: &[&str]) -> String {
    let names: Vec<String> = dbs.iter().map(|db| literal(db)).collect();
    format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname IN ({}) AND pid <> pg_backend_pid()",
        names.join(", ")
    )
}

/// `statements` in one session of `db` on `target`; the rows of all of them, as text.
async fn over_tcp(target: &DbTarget, db: &str, statements: &[&str]) -> anyhow::Result<Rows> {
    let target = target.with_database(db);
    let client = target.connect().await?;
    let mut rows = Vec::new();
    for sql in statements {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| db::query_error(&target, &e))?;
        rows.extend(messages.into_iter().filter_map(|m| {
            match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or_default().to_owned())
                        .collect(),
                ),
                _ => None,
            }
        }));
    }
    Ok(rows)
}

/// The container's PostgreSQL over a Docker network it is on, when this machine reaches it (the
/// engine is local, on Linux) and the container's own credentials (`POSTGRES_*`) let us in.
/// Otherwise `None`, and psql in the container.
async fn direct_target(
    docker: &lifeboat::docker::Docker,
    container: &str,
    credentials: &db::ContainerCredentials,
) -> Option<DbTarget> {
    if std::env::var_os(VIA_EXEC_VAR).is_some() {
        debug!("{VIA_EXEC_VAR} is set: SQL goes through psql in the container");
        return None;
    }
    let info = docker.inspect(container).await.ok()?;
    let addresses: Vec<String> = info
        .network_settings?
        .networks?
        .into_values()
        .filter_map(|n| n.ip_address)
        .filter(|ip| !ip.is_empty())
        .collect();
    let password = credentials
        .password
        .clone()
        .unwrap_or_else(|| lifeboat::secret::Secret::new(""));
    for ip in addresses {
        let wait = std::time::Duration::from_millis(500);
        let open =
            tokio::time::timeout(wait, tokio::net::TcpStream::connect((ip.as_str(), 5432))).await;
        if !matches!(open, Ok(Ok(_))) {
            debug!("{container}'s PostgreSQL is not reachable at {ip}:5432; SQL goes through psql in the container");
            continue;
        }
        let target = DbTarget::from_parts(&ip, 5432, &credentials.user, &password, "postgres");
        match tokio::time::timeout(wait * 4, target.connect()).await {
            Ok(Ok(_)) => {
                debug!("{container}'s PostgreSQL answers at {ip}:5432: SQL goes there directly");
                return Some(target);
            }
            Ok(Err(e)) => debug!("{container}'s PostgreSQL at {ip}:5432 refused us ({e}); SQL goes through psql in the container"),
            Err(_) => debug!("{container}'s PostgreSQL at {ip}:5432 did not answer in time; SQL goes through psql in the container"),
        }
    }
    None
}

/// The local `pg_dump` (or `pg_dumpall`) against a URL; the password goes through the
/// environment, never argv. Returns its stderr.
async fn dump_local(target: &DbTarget, all: bool, sink: Sink<'_>) -> anyhow::Result<String> {
    let (program, database) = if all {
        ("pg_dumpall", "--database")
    } else {
        ("pg_dump", "--dbname")
    };
    let mut cmd = local_client(program, target);
    cmd.arg(format!("{database}={}", target.database()));
    super::dump_process(
        cmd,
        program,
        "install postgresql-client, or back up through the container",
        sink,
    )
    .await
}

/// The local psql, fed on its stdin, its stdout read into `tags`; returns the bytes it was
/// given.
async fn load_local(
    target: &DbTarget,
    database: &str,
    script: Script<'_>,
    tags: &mut CopyTags,
) -> anyhow::Result<u64> {
    let mut cmd = local_client("psql", target);
    cmd.arg(format!("--dbname={}", target.database()))
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().context(
        "cannot run the local psql (install postgresql-client, or verify through the container)",
    )?;
    let mut stdin = child.stdin.take().context("psql's stdin")?;
    let mut stdout_pipe = child.stdout.take().context("psql's stdout")?;
    let mut stderr_pipe = child.stderr.take().context("psql's stderr")?;
    let feeding = async move {
        let mut buf = vec![0; CHUNK];
        let mut fed = 0;
        loop {
            let n = AsyncReadExt::read(script, &mut buf).await?;
            // A failed write: psql stopped reading (it exited); its status says why.
            if n == 0 || stdin.write_all(&buf[..n]).await.is_err() {
                return Ok::<u64, io::Error>(fed);
            }
            fed += n as u64;
        }
        // stdin is dropped here, closed: psql sees the end of its input.
    };
    let read_stdout = async {
        let mut buf = vec![0; 8 * 1024];
        while let Ok(n) = stdout_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tags.feed(&buf[..n]);
        }
    };
    let (fed, (), stderr) =
        tokio::join!(feeding, read_stdout, super::stderr_tail(&mut stderr_pipe));
    let status = child.wait().await.context("waiting for psql")?;
    let fed = fed.context("reading the archive")?;
    if !status.success() {
        return Err(sql_error(database, &stderr, &status.to_string()));
    }
    Ok(fed)
}

/// psql's failure, by its error lines (`psql:<stdin>:42: ERROR:  …`).
pub(super) fn sql_error(database: &str, stderr: &str, exit: &str) -> anyhow::Error {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:") || l.contains("error:"))
        .take(3)
        .collect();
    let reason = if errors.is_empty() {
        stderr.trim()
    } else {
        &errors.join(" | ")
    };
    anyhow!(
        "the restore into the scratch database {database} failed with an SQL error ({exit}): {}",
        lifeboat::secret::redact_url(reason)
    )
}

/// What a line-by-line reader of a child's stdout does with the start of each line.
pub trait LineHead {
    /// The longest line start looked at; one byte more is kept, to mark a longer line.
    const HEAD: usize;
    fn line(&mut self, head: &[u8]);
}

/// A child's stdout read line by line as it comes, only the start of each line kept and given
/// to `T`; everything else is dropped.
#[derive(Default)]
pub struct Lines<T> {
    line: Vec<u8>,
    pub(crate) inner: T,
}

impl<T: LineHead> Lines<T> {
    pub fn new(inner: T) -> Self {
        Self {
            line: Vec::new(),
            inner,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.take(&bytes[..i]);
            self.inner.line(&self.line);
            self.line.clear();
            bytes = &bytes[i + 1..];
        }
        self.take(bytes);
    }

    fn take(&mut self, part: &[u8]) {
        let room = (T::HEAD + 1).saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }
}

impl<T: LineHead + Unpin> tokio::io::AsyncWrite for Lines<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().feed(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// psql's `COPY n` command tag on a line, if it is one.
pub fn copy_tag(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line.strip_prefix(b"COPY ")?)
        .ok()?
        .parse()
        .ok()
}

/// psql's stdout read for its `COPY n` command tags; everything else (other tags, the result
/// of `setval`) is dropped as it comes.
pub type CopyTags = Lines<Counts>;

/// The `COPY n` tags, in order.
#[derive(Default)]
pub struct Counts(Vec<u64>);

impl LineHead for Counts {
    /// `COPY ` and a 64-bit count.
    const HEAD: usize = 32;

    fn line(&mut self, head: &[u8]) {
        if let Some(n) = copy_tag(head) {
            self.0.push(n);
        }
    }
}

impl CopyTags {
    pub fn finish(self) -> Vec<u64> {
        self.inner.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tags_are_read_across_chunks_and_other_lines_dropped() {
        let mut tags = CopyTags::default();
        for chunk in [
            "SET\nCOPY 1",
            "2\nsetval\n-------\n 5\nCO",
            "PY 0\nCOPY x\n",
        ] {
            tags.feed(chunk.as_bytes());
        }
        assert_eq!(tags.finish(), [12, 0]);
    }

    #[test]
    fn names_and_texts_are_quoted_whatever_they_hold() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(
            terminate_sql(&["a'b"]),
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname IN ('a''b') AND pid <> pg_backend_pid()"
        );
    }
}
