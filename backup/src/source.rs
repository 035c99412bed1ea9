//! Where the dump comes from: `pg_dump` inside the database container (the default: its client
//! always matches the server), or the local `pg_dump` against a URL (managed PostgreSQL). A
//! MySQL-protocol server (a `mysql://` URL, or a container with `MYSQL_*`/`MARIADB_*`) is dumped
//! by [`crate::mysql`] instead.

use anyhow::Context;
use lifeboat::config::Config;
use lifeboat::db::{self, ContainerCredentials, DbTarget, Engine, SslMode};
use lifeboat::engine::DatabaseServer;
use std::sync::Arc;
use tracing::info;

use lifeboat::docker::{Docker, DockerError, Scope};
use lifeboat::swarm::{self, OneOff};

use crate::archive::ArchiveWriter;

/// The name a backup of every database goes by, in the manifest, the lock and retention.
pub const ALL_DATABASES: &str = "(all databases)";

#[derive(Clone)]
pub enum Source {
    Container {
        docker: Docker,
        container: String,
        credentials: ContainerCredentials,
        /// Every database and the roles (pg_dumpall).
        all: bool,
        /// The compose project or Swarm stack the database belongs to.
        scope: Scope,
        /// On Swarm: the one-off container `container` is, beside the database's task
        /// (removed when the source is dropped).
        oneoff: Option<Arc<OneOff>>,
    },
    Url {
        target: DbTarget,
        all: bool,
    },
    /// A MySQL, MariaDB or TiDB server at a `mysql://` URL, dumped by the local client.
    MysqlUrl {
        options: lifeboat_healthcheck::mysql::Options,
        /// The URL without its password.
        shown: String,
    },
}

impl Source {
    /// The URL when one is configured, else the container (by name, or by compose service).
    pub async fn resolve(config: &Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.database.url {
            if Engine::of_url(url.expose()) == Engine::Mysql {
                return Self::mysql_url(url, config);
            }
            let mut target = DbTarget::from_url(url)
                .map_err(|e| lifeboat::exit::UsageError::new(e.to_string()))?;
            if let Some(name) = &config.database.name {
                target = target.with_database(name);
            }
            tracing::debug!(
                "database: {target} (database.url), database {}, the local client",
                target.database()
            );
            return Ok(Self::Url {
                target,
                all: config.backup.all,
            });
        }
        let docker = Docker::connect(config.docker_host.as_deref()).await?;
        let scope = swarm::detect(&docker, config).await?;
        let (container, oneoff) = locate(&docker, &scope, config).await?;
        let mut credentials = if let Some(o) = &oneoff {
            oneoff_credentials(&docker, &scope, &config.database.service, o).await?
        } else {
            db::container_credentials(&docker, &container).await?
        };
        if let Some(name) = &config.database.name {
            credentials.database.clone_from(name);
        }
        if credentials.engine == Engine::Mysql && config.backup.all {
            return Err(lifeboat::exit::UsageError::new(
                "--all (LIFEBOAT_BACKUP_ALL) is for PostgreSQL (pg_dumpall); a MySQL backup is of one database (LIFEBOAT_DB_NAME)",
            )
            .into());
        }
        tracing::debug!(
            "database: container {container} ({}), database {} as user {} (from its POSTGRES_* environment{})",
            if config.database.container.is_some() {
                "database.container"
            } else if oneoff.is_some() {
                "a one-off container beside the Swarm service database.service"
            } else {
                "the service database.service"
            },
            credentials.database,
            credentials.user,
            if config.database.name.is_some() {
                ", database.name over it"
            } else {
                ""
            }
        );
        Ok(Self::Container {
            docker,
            container,
            credentials,
            all: config.backup.all,
            scope,
            oneoff: oneoff.map(Arc::new),
        })
    }

    fn mysql_url(url: &lifeboat::secret::SecretUrl, config: &Config) -> anyhow::Result<Self> {
        let usage = |e: String| lifeboat::exit::UsageError::new(format!("DATABASE_URL: {e}"));
        let mut options =
            lifeboat_healthcheck::mysql::Options::from_url(url.expose()).map_err(usage)?;
        if let Some(name) = &config.database.name {
            options.database = Some(name.clone());
        }
        if config.backup.all {
            return Err(usage(
                "--all (LIFEBOAT_BACKUP_ALL) is for PostgreSQL (pg_dumpall); a MySQL backup is of one database".into(),
            )
            .into());
        }
        Ok(Self::MysqlUrl {
            options,
            shown: url.redacted(),
        })
    }

    /// The engine of the server dumped.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Container { credentials, .. } => credentials.engine,
            Self::Url { .. } => Engine::Postgres,
            Self::MysqlUrl { .. } => Engine::Mysql,
        }
    }

    /// The database dumped, or [`ALL_DATABASES`].
    pub fn database(&self) -> &str {
        match self {
            Self::Container { all: true, .. } | Self::Url { all: true, .. } => ALL_DATABASES,
            Self::Container { credentials, .. } => &credentials.database,
            Self::Url { target, .. } => target.database(),
            Self::MysqlUrl { options, .. } => options.database.as_deref().unwrap_or_default(),
        }
    }

    /// A backup of every database and the roles.
    pub fn all(&self) -> bool {
        matches!(
            self,
            Self::Container { all: true, .. } | Self::Url { all: true, .. }
        )
    }

    /// For the manifest and messages; never with a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Container {
                oneoff: Some(o), ..
            } => format!("service {} through a one-off container", o.host),
            Self::Container { container, .. } => format!("container {container}"),
            Self::Url { target, .. } => format!("url {target}"),
            Self::MysqlUrl { shown, .. } => format!("url {shown}"),
        }
    }

    /// The server, as its engine speaks (see [`crate::engine`]).
    pub fn server(&self) -> Box<dyn DatabaseServer> {
        crate::engine::server(self)
    }

    /// The server's version, as `SHOW server_version` gives it (`15.4`), or MySQL's `VERSION()`
    /// (`10.11.6-MariaDB-0+deb12u1`, `8.0.11-TiDB-v7.5.0`).
    pub async fn server_version(&self) -> anyhow::Result<String> {
        self.server()
            .version()
            .await
            .context("asking the server its version")
    }

    /// The database's own properties (owner, locale, settings, grants, comment), recorded in
    /// the manifest; none for a backup of every database, nor for MySQL.
    pub async fn properties(
        &self,
    ) -> anyhow::Result<Option<crate::properties::DatabaseProperties>> {
        match self.server().properties_json().await? {
            Some(json) => crate::properties::parse(&json).map(Some),
            None => Ok(None),
        }
    }

    /// Stream the dump into `sink`. Fails on a non-zero exit and on an error line on stderr, so
    /// that a dump cut short is never taken for a complete one.
    pub async fn dump(&self, sink: &mut ArchiveWriter) -> anyhow::Result<()> {
        self.server().dump(sink).await
    }
}

/// The database's container: named, or the service's (on Swarm, its task on this node, else a
/// one-off container beside it, as also when LIFEBOAT_SWARM_ONEOFF says so).
async fn locate(
    docker: &Docker,
    scope: &Scope,
    config: &Config,
) -> anyhow::Result<(String, Option<OneOff>)> {
    let service = &config.database.service;
    if let Some(c) = &config.database.container {
        return Ok((c.clone(), None));
    }
    if scope.is_swarm() && config.compose.swarm_oneoff {
        let o = OneOff::start(docker, scope, service).await?;
        return Ok((o.id.clone(), Some(o)));
    }
    match docker.scope_container(scope, service).await {
        Ok(c) => Ok((c.name, None)),
        Err(DockerError::NoContainer { .. }) if scope.is_swarm() => {
            info!(
                "the task of {} is not on this node: pg_dump and psql run in a one-off container beside it",
                scope.service_name(service)
            );
            let o = OneOff::start(docker, scope, service).await?;
            Ok((o.id.clone(), Some(o)))
        }
        Err(e) => Err(anyhow::Error::new(e).context(
            "finding the database container (set COMPOSE_PROJECT_NAME and LIFEBOAT_DB_SERVICE, LIFEBOAT_DB_CONTAINER, or DATABASE_URL)",
        )),
    }
}

/// The credentials a client in a one-off container uses: the database service's `POSTGRES_*`
/// (from its spec), and its name on the network as the host.
async fn oneoff_credentials(
    docker: &Docker,
    scope: &Scope,
    service: &str,
    oneoff: &OneOff,
) -> anyhow::Result<ContainerCredentials> {
    let svc = swarm::service(docker, scope, service).await?;
    let env = svc
        .env()
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let mut credentials = ContainerCredentials::from_env(&env);
    credentials.host = Some(oneoff.host.clone());
    Ok(credentials)
}

/// The local PostgreSQL client `program` (pg_dump, psql…) with the target's host, port, user
/// and sslmode; the password goes in the environment, never on the command line. The caller
/// adds the database (`--dbname`, or pg_dumpall's `--database`).
pub fn local_client(program: &str, target: &DbTarget) -> tokio::process::Command {
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
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("--no-password")
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--username={}", target.user()))
        .env("PGSSLMODE", sslmode)
        .env("PGCONNECT_TIMEOUT", "10")
        .kill_on_drop(true);
    if let Some(pw) = cfg.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
    // The same root certificate as lifeboat's own connection (the URL's `sslrootcert` would
    // otherwise be lost on the way), so that pg_dump checks what lifeboat checked.
    match target.root_cert() {
        Some(lifeboat::db::RootCert::File(path)) => {
            cmd.env("PGSSLROOTCERT", path);
        }
        Some(lifeboat::db::RootCert::System) => {
            cmd.env("PGSSLROOTCERT", "system");
        }
        None => {}
    }
    cmd
}
