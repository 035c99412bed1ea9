//! Where the dump comes from: `pg_dump` inside the database container (the default: its client
//! always matches the server), or the local `pg_dump` against a URL (managed PostgreSQL).

use anyhow::{bail, Context};
use lifeboat::config::Config;
use lifeboat::db::{self, ContainerCredentials, DbTarget, SslMode};
use lifeboat::docker::Docker;
use tokio::io::AsyncReadExt;

use crate::archive::ArchiveWriter;
use crate::manifest::TableEstimate;

/// Tables and their estimated rows, as one JSON array (psql prints it on one line).
const TABLES_SQL: &str = "SELECT coalesce(json_agg(json_build_object('name', t.name, 'rows', t.rows) ORDER BY t.name), '[]') \
     FROM (SELECT c.oid::regclass::text AS name, greatest(c.reltuples::bigint, coalesce(s.n_live_tup, 0), 0) AS rows \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%') t";

pub enum Source {
    Container {
        docker: Docker,
        container: String,
        credentials: ContainerCredentials,
    },
    Url {
        target: DbTarget,
    },
}

impl Source {
    /// The URL when one is configured, else the container (by name, or by compose service).
    pub async fn resolve(config: &Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.database.url {
            let mut target = DbTarget::from_url(url)
                .map_err(|e| lifeboat::exit::UsageError::new(e.to_string()))?;
            if let Some(name) = &config.database.name {
                target = target.with_database(name);
            }
            return Ok(Self::Url { target });
        }
        let docker = Docker::connect(config.docker_host.as_deref()).await?;
        let container = match &config.database.container {
            Some(c) => c.clone(),
            None => docker
                .service_container(&config.compose.project, &config.database.service)
                .await
                .context("finding the database container (set COMPOSE_PROJECT_NAME and LIFEBOAT_DB_SERVICE, LIFEBOAT_DB_CONTAINER, or DATABASE_URL)")?
                .name,
        };
        let mut credentials = db::container_credentials(&docker, &container).await?;
        if let Some(name) = &config.database.name {
            credentials.database.clone_from(name);
        }
        Ok(Self::Container {
            docker,
            container,
            credentials,
        })
    }

    pub fn database(&self) -> &str {
        match self {
            Self::Container { credentials, .. } => &credentials.database,
            Self::Url { target } => target.database(),
        }
    }

    /// For the manifest and messages; never with a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Container { container, .. } => format!("container {container}"),
            Self::Url { target } => format!("url {target}"),
        }
    }

    /// The server's version and the tables with their estimated rows.
    pub async fn inspect(&self) -> anyhow::Result<(String, Vec<TableEstimate>)> {
        let (version, tables_json) = match self {
            Self::Container {
                docker,
                container,
                credentials,
            } => {
                let psql = |sql: &'static str| async move {
                    let mut out = Vec::new();
                    docker
                        .exec(
                            container,
                            &["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
                            &credentials.client_env(),
                            &mut out,
                        )
                        .await
                        .map(|_| String::from_utf8_lossy(&out).trim().to_owned())
                };
                let version = psql("SHOW server_version")
                    .await
                    .context("asking the server its version")?;
                (
                    version,
                    psql(TABLES_SQL).await.context("listing the tables")?,
                )
            }
            Self::Url { target } => {
                let client = target.connect().await?;
                let version = db::server_version(&client, target).await?;
                let row = client
                    .query_one(TABLES_SQL, &[])
                    .await
                    .map_err(|e| db::query_error(target, &e))?;
                let json: serde_json::Value = row.get(0);
                (version, json.to_string())
            }
        };
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_owned();
        let tables = serde_json::from_str(&tables_json).context("reading the table list")?;
        Ok((version, tables))
    }

    /// Stream the dump into `sink`. Fails on a non-zero exit and on an error line on stderr, so
    /// that a dump cut short is never taken for a complete one.
    pub async fn dump(&self, sink: &mut ArchiveWriter) -> anyhow::Result<()> {
        let stderr = match self {
            Self::Container {
                docker,
                container,
                credentials,
            } => {
                let db = format!("--dbname={}", credentials.database);
                let output = docker
                    .exec(
                        container,
                        &["pg_dump", "--no-password", &db],
                        &credentials.client_env(),
                        sink,
                    )
                    .await
                    .context("pg_dump in the database container failed")?;
                output.stderr
            }
            Self::Url { target } => dump_local(target, sink).await?,
        };
        if let Some(line) = stderr
            .lines()
            .find(|l| l.contains("error:") || l.starts_with("FATAL"))
        {
            bail!("pg_dump reported an error although it exited 0: {line}");
        }
        Ok(())
    }
}

/// The local `pg_dump` against a URL; the password goes through the environment, never argv.
async fn dump_local(target: &DbTarget, sink: &mut ArchiveWriter) -> anyhow::Result<String> {
    let cfg = target.config();
    let host = cfg.get_hosts().first().map_or_else(
        || "localhost".into(),
        |h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        },
    );
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let sslmode = match target.ssl_mode() {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    };
    let mut cmd = tokio::process::Command::new("pg_dump");
    cmd.arg("--no-password")
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--username={}", target.user()))
        .arg(format!("--dbname={}", target.database()))
        .env("PGSSLMODE", sslmode)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(pw) = cfg.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
    let mut child = cmd.spawn().context("cannot run the local pg_dump (install postgresql-client, or back up through the container)")?;
    let mut stdout = child.stdout.take().context("pg_dump's stdout")?;
    let mut stderr_pipe = child.stderr.take().context("pg_dump's stderr")?;
    let read_stderr = async move {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text).await;
        text
    };
    let (copied, stderr) = tokio::join!(tokio::io::copy(&mut stdout, sink), read_stderr);
    copied.context("writing the dump")?;
    let status = child.wait().await.context("waiting for pg_dump")?;
    if !status.success() {
        bail!(
            "pg_dump exited with {status}: {}",
            lifeboat::secret::redact_url(stderr.trim())
        );
    }
    Ok(stderr)
}
