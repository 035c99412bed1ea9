//! MySQL-protocol servers (MySQL, MariaDB, TiDB) behind the engine seam: the dump and the client
//! of [`crate::mysql`], in the database container or locally against a `mysql://` URL.
//!
//! MySQL's sessions have no maintenance database: statements without one name every object
//! with its database ([`ident`] backquotes each part).

use anyhow::Context;
use async_trait::async_trait;
use lifeboat::engine::{DatabaseServer, Engine, LoadPlan, Loaded, Rows, Script, Sink};
use tracing::debug;

use crate::mysql::server::{ident, literal, rows, script};
use crate::source::Source;

pub struct Mysql {
    source: Source,
}

impl Mysql {
    pub fn new(source: Source) -> Self {
        Self { source }
    }
}

/// End every other session on `dbs`; how many. A session gone meanwhile is as good as ended.
pub async fn terminate(source: &Source, dbs: &[&str]) -> anyhow::Result<u64> {
    if dbs.is_empty() {
        return Ok(0);
    }
    let list = dbs
        .iter()
        .map(|d| literal(d))
        .collect::<Vec<_>>()
        .join(", ");
    let ids = rows(
        source,
        &format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN ({list}) AND ID <> CONNECTION_ID()"
        ),
    )
    .await?;
    let mut ended = 0;
    for id in ids.into_iter().filter_map(|r| r.into_iter().next()) {
        let Ok(id) = id.parse::<u64>() else { continue };
        match rows(source, &format!("KILL CONNECTION {id}")).await {
            Ok(_) => ended += 1,
            Err(e) => debug!("KILL {id}: {e:#}"),
        }
    }
    Ok(ended)
}

#[async_trait]
impl DatabaseServer for Mysql {
    fn engine(&self) -> Engine {
        Engine::Mysql
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
        let version = self
            .rows(None, "SELECT VERSION()")
            .await
            .context("asking the server its version")?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default();
        Ok(version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_owned())
    }

    /// One statement without a database goes through lifeboat's own client on a URL; anything
    /// else is one script through the server's client, in one session.
    async fn batch(&self, database: Option<&str>, statements: &[&str]) -> anyhow::Result<Rows> {
        if let (None, [sql]) = (database, statements) {
            return rows(&self.source, sql).await;
        }
        let joined = statements.join(";\n") + ";\n";
        script(&self.source, database, &joined).await
    }

    async fn databases(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .rows(None, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// The bytes of a database's tables and indexes.
    async fn size(&self, database: &str) -> anyhow::Result<u64> {
        let answer = self
            .rows(
                None,
                &format!(
                    "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}",
                    literal(database)
                ),
            )
            .await?;
        Ok(answer
            .first()
            .and_then(|r| r.first())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    // free_space: MySQL names its data directory too (`datadir`), but whether the container's
    // df sees it is not sure enough to refuse a restore on; the default (unknown) stands.

    /// In utf8mb4, as the dump's `SET NAMES` expects.
    async fn create_database(&self, database: &str) -> anyhow::Result<()> {
        crate::mysql::server::create_database(&self.source, database).await
    }

    async fn terminate(&self, databases: &[&str]) -> anyhow::Result<u64> {
        terminate(&self.source, databases).await
    }

    async fn drop_database(&self, database: &str) -> anyhow::Result<()> {
        if !self.exists(database).await? {
            return Ok(());
        }
        self.terminate(&[database]).await?;
        crate::mysql::server::drop_database(&self.source, database).await
    }

    async fn count_rows(&self, database: &str, tables: &[&str]) -> anyhow::Result<Vec<i64>> {
        crate::mysql::server::count(&self.source, database, tables).await
    }

    /// A MySQL database's character set goes with the dump's `CREATE`, its grants stay with its
    /// name: nothing to record.
    async fn properties_json(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }

    async fn dump(&self, sink: Sink<'_>) -> anyhow::Result<()> {
        let tidb = crate::mysql::is_tidb(&self.version().await?);
        let mut sink = sink;
        let stderr = match &self.source {
            Source::Container {
                docker,
                container,
                credentials,
                ..
            } => {
                crate::mysql::dump_in_container(docker, container, credentials, tidb, &mut sink)
                    .await?
            }
            Source::MysqlUrl { options, .. } => {
                crate::mysql::dump_local(options, tidb, &mut sink).await?
            }
            Source::Url { .. } => anyhow::bail!("a PostgreSQL server reached mysqldump's path"),
        };
        super::check_stderr(&stderr)
    }

    /// The client says nothing of rows: `copied` is `None`, and the caller counts the tables
    /// where they landed.
    /// One session: a MySQL dump's statements are not cut for several.
    async fn load(
        &self,
        database: &str,
        script: Script<'_>,
        _plan: &LoadPlan,
    ) -> anyhow::Result<Loaded> {
        let mut script = script;
        let fed = crate::mysql::server::load(&self.source, database, &mut script).await?;
        Ok(Loaded { fed, copied: None })
    }
}
