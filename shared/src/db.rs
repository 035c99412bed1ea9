//! PostgreSQL: from a URL, or from a database container's own `POSTGRES_*` environment.
//!
//! Managed PostgreSQL (seed 003) gives `postgres://…?sslmode=require`; libpq's rules are honoured
//! over rustls with no OpenSSL:
//! - `disable`; `prefer` (the default: TLS when offered, the certificate not checked);
//! - `require`: encrypted; the certificate is not checked, unless a root certificate is there
//!   (`sslrootcert`, or `~/.postgresql/root.crt`), and then its chain is, as `verify-ca`;
//! - `verify-ca`: the chain is checked against the root certificate, not the host name;
//! - `verify-full`: the chain and the host name.
//!
//! The root certificate is the URL's `sslrootcert`, else `PGSSLROOTCERT`, else
//! `~/.postgresql/root.crt`; `sslrootcert=system` means the public roots. `verify-ca` and
//! `verify-full` with none of them is an error, as in libpq. `PGSSLMODE` applies when the URL has
//! no `sslmode`. The local pg_dump and psql get the same mode and root certificate.
//!
//! A URL is shown only redacted, in errors too.

use std::sync::Arc;

// libpq's `require` and `verify-ca` checks, shared with the static probe.
use lifeboat_healthcheck::verifier::{AcceptAny, ChainOnly};
use rustls::ClientConfig;
use tokio_postgres::config::SslMode as PgSslMode;

use crate::secret::{redact_url, Secret, SecretUrl};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("TLS setup for {target}: {reason}")]
    Tls { target: String, reason: String },
    #[error("query on {target} failed: {reason}")]
    Query { target: String, reason: String },
    #[cfg(feature = "docker")]
    #[error("reading the database container's environment: {0}")]
    Docker(#[from] crate::docker::DockerError),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The certificates a server's chain is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file.
    File(std::path::PathBuf),
    /// The public roots (`sslrootcert=system`).
    System,
}

/// Where and how to connect; displays without the password.
#[derive(Clone)]
pub struct DbTarget {
    config: tokio_postgres::Config,
    ssl: SslMode,
    root_cert: Option<RootCert>,
    shown: String,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl DbTarget {
    /// Parse a `postgres://` URL, with libpq's `sslmode` and `sslrootcert` parameters.
    pub fn from_url(url: &SecretUrl) -> Result<Self, DbError> {
        let shown = url.redacted();
        let invalid = |reason: String| DbError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        if Engine::of_url(url.expose()) == Engine::Mysql {
            return Err(invalid(
                "a MySQL URL where this command speaks PostgreSQL only (MySQL is supported by lifeboat-backup, lifeboat-healthcheck and lifeboat-smoke)".into(),
            ));
        }
        let mut parsed = url::Url::parse(url.expose()).map_err(|e| invalid(e.to_string()))?;
        let mut mode = None;
        let mut root = None;
        let mut kept = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "sslmode" => mode = Some(v.into_owned()),
                "sslrootcert" => root = Some(v.into_owned()),
                _ => kept.push((k.into_owned(), v.into_owned())),
            }
        }
        // libpq's environment fills in what the URL does not say.
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let ssl = match mode.or_else(|| env(crate::env_vars::PGSSLMODE)).as_deref() {
            None | Some("allow" | "prefer") => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => return Err(invalid(format!("unknown sslmode `{other}`"))),
        };
        let default_root = env("HOME")
            .map(|home| std::path::Path::new(&home).join(".postgresql/root.crt"))
            .filter(|p| p.is_file());
        let root_cert = match root.or_else(|| env(crate::env_vars::PGSSLROOTCERT)) {
            Some(r) if r == "system" => Some(RootCert::System),
            Some(r) => Some(RootCert::File(r.into())),
            None => default_root.map(RootCert::File),
        };
        if matches!(ssl, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(DbError::RootCert {
                path: "~/.postgresql/root.crt".into(),
                reason: "it does not exist, and sslrootcert is not given: give the server's CA with sslrootcert=FILE (or PGSSLROOTCERT), or sslrootcert=system for the public roots, or use sslmode=require".into(),
            });
        }
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut config: tokio_postgres::Config = parsed
            .as_str()
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(redact_url(&e.to_string())))?;
        if config.get_dbname().is_none() {
            if let Some(user) = config.get_user().map(str::to_owned) {
                config.dbname(user);
            }
        }
        config.ssl_mode(if ssl == SslMode::Disable {
            PgSslMode::Disable
        } else if ssl == SslMode::Prefer {
            PgSslMode::Prefer
        } else {
            PgSslMode::Require
        });
        config.connect_timeout(std::time::Duration::from_secs(10));
        config.application_name("lifeboat");
        Ok(Self {
            config,
            ssl,
            root_cert,
            shown,
        })
    }

    /// A target from its parts (a container's `POSTGRES_*`, reached on a published port).
    pub fn from_parts(host: &str, port: u16, user: &str, password: &Secret, dbname: &str) -> Self {
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(user)
            .password(password.expose())
            .dbname(dbname)
            .ssl_mode(PgSslMode::Prefer)
            .connect_timeout(std::time::Duration::from_secs(10))
            .application_name("lifeboat");
        let shown = format!("postgres://{user}:***@{host}:{port}/{dbname}");
        Self {
            config,
            ssl: SslMode::Prefer,
            root_cert: None,
            shown,
        }
    }

    /// The same server, another database.
    #[must_use]
    pub fn with_database(&self, dbname: &str) -> Self {
        let mut next = self.clone();
        next.config.dbname(dbname);
        if let Some((head, _)) = self.shown.rsplit_once('/') {
            let query = self
                .shown
                .find('?')
                .map(|i| &self.shown[i..])
                .unwrap_or_default();
            next.shown = format!("{head}/{dbname}{query}");
        }
        next
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// The root certificate the chain is checked against, if any (see the module's rules).
    pub fn root_cert(&self) -> Option<&RootCert> {
        self.root_cert.as_ref()
    }

    /// The driver's configuration (for tools that need host, port and user).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Connect; the connection task runs on the current tokio runtime until the client drops.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, DbError> {
        let connect_err = |e| DbError::Connect {
            target: self.shown.clone(),
            reason: describe(&e),
        };
        if self.ssl == SslMode::Disable {
            let (client, conn) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(connect_err)?;
            tokio::spawn(async move { drop(conn.await) });
            return Ok(client);
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        let (client, conn) = self.config.connect(tls).await.map_err(connect_err)?;
        tokio::spawn(async move { drop(conn.await) });
        Ok(client)
    }

    fn tls_config(&self) -> Result<ClientConfig, DbError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_err = |e: rustls::Error| DbError::Tls {
            target: self.shown.clone(),
            reason: e.to_string(),
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        // libpq: `require` checks the chain when a root certificate is there.
        let check = match (self.ssl, &self.root_cert) {
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
            (SslMode::Require | SslMode::VerifyCa, Some(root)) => Some((root, false)),
            (SslMode::VerifyFull, Some(root)) => Some((root, true)),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(DbError::RootCert {
                    path: "~/.postgresql/root.crt".into(),
                    reason: "it does not exist".into(),
                })
            }
        };
        let Some((root, host_name)) = check else {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth());
        };
        let roots = Arc::new(root_store(root)?);
        if host_name {
            return Ok(builder.with_root_certificates(roots).with_no_client_auth());
        }
        let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| DbError::Tls {
                target: self.shown.clone(),
                reason: e.to_string(),
            })?;
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
            .with_no_client_auth())
    }
}

/// The certificates of `root`.
fn root_store(root: &RootCert) -> Result<rustls::RootCertStore, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    let path = match root {
        RootCert::System => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        }
        RootCert::File(path) => path,
    };
    let bad = |reason: String| DbError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    // A CA bundle is a few hundred KiB at most.
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16 << 20), &mut pem))
        .map_err(|e| bad(e.to_string()))?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// What went wrong, in the server's words when it said something: tokio-postgres's own
/// `Display` is only "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    redact_url(&text)
}

/// A query error on `target`.
pub fn query_error(target: &DbTarget, e: &tokio_postgres::Error) -> DbError {
    DbError::Query {
        target: target.to_string(),
        reason: describe(e),
    }
}

/// The server's version, e.g. `15.18`.
pub async fn server_version(
    client: &tokio_postgres::Client,
    target: &DbTarget,
) -> Result<String, DbError> {
    let row = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| query_error(target, &e))?;
    let full: String = row.get(0);
    Ok(full.split_whitespace().next().unwrap_or(&full).to_owned())
}

/// The database engine: PostgreSQL, or a MySQL-protocol server (MySQL, MariaDB, TiDB).
///
/// Chosen by the URL's scheme (`postgres://`, `mysql://`) or by the database container's
/// environment (`POSTGRES_*`, or `MYSQL_*`/`MARIADB_*` as the official images read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    /// By a URL's scheme: `mysql://` and `mariadb://` are MySQL, anything else PostgreSQL
    /// (whose own parser then judges it).
    pub fn of_url(url: &str) -> Self {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if scheme.eq_ignore_ascii_case("mysql") || scheme.eq_ignore_ascii_case("mariadb") {
            Self::Mysql
        } else {
            Self::Postgres
        }
    }

    /// By a container's environment: `MYSQL_*`/`MARIADB_*` without `POSTGRES_*` is MySQL.
    pub fn of_env(env: &std::collections::HashMap<String, String>) -> Self {
        let has = |prefix: &str| env.keys().any(|k| k.starts_with(prefix));
        if !has("POSTGRES_") && (has("MYSQL_") || has("MARIADB_")) {
            Self::Mysql
        } else {
            Self::Postgres
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MySQL",
        }
    }
}

/// The credentials a database container was created with, read from its environment with the
/// official images' defaults: `POSTGRES_*` (user `postgres`, database = user), or
/// `MARIADB_*`/`MYSQL_*` (root with `*_ROOT_PASSWORD` when it is known, else `*_USER`).
#[derive(Debug, Clone)]
pub struct ContainerCredentials {
    pub engine: Engine,
    pub user: String,
    pub password: Option<Secret>,
    pub database: String,
    /// The server's host, for a client beside it rather than in its container (a one-off
    /// container on a Swarm stack's network); `None`: the container's own server.
    pub host: Option<String>,
}

impl ContainerCredentials {
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> Self {
        if Engine::of_env(env) == Engine::Mysql {
            return Self::from_mysql_env(env);
        }
        let user = env
            .get("POSTGRES_USER")
            .filter(|u| !u.is_empty())
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let database = env
            .get("POSTGRES_DB")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| user.clone());
        let password = env
            .get("POSTGRES_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        Self {
            engine: Engine::Postgres,
            user,
            password,
            database,
            host: None,
        }
    }

    /// MariaDB's and MySQL's images: `MARIADB_X`, else `MYSQL_X`. The dump runs as root when
    /// its password is there (routines, events and every grant are visible to it), else as
    /// the application's user.
    fn from_mysql_env(env: &std::collections::HashMap<String, String>) -> Self {
        let var = |name: &str| {
            env.get(&format!("MARIADB_{name}"))
                .or_else(|| env.get(&format!("MYSQL_{name}")))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let database = var("DATABASE").unwrap_or_default();
        let (user, password) = match (var("ROOT_PASSWORD"), var("USER")) {
            (Some(root), _) => ("root".to_owned(), Some(root)),
            (None, Some(user)) => (user, var("PASSWORD")),
            (None, None) => ("root".to_owned(), None),
        };
        Self {
            engine: Engine::Mysql,
            user,
            password: password.map(Secret::new),
            database,
            host: None,
        }
    }

    /// Environment for a client run inside the container (`PGUSER`, `PGPASSWORD`, `PGDATABASE`),
    /// so that no password ever appears on a command line.
    pub fn client_env(&self) -> Vec<String> {
        if self.engine == Engine::Mysql {
            // Read by mysql, mysqldump, mariadb and mariadb-dump alike; the user goes in `--user`.
            let mut env = Vec::new();
            if let Some(p) = &self.password {
                env.push(format!("MYSQL_PWD={}", p.expose()));
            }
            if let Some(h) = &self.host {
                env.push(format!("MYSQL_HOST={h}"));
            }
            return env;
        }
        let mut env = vec![
            format!("PGUSER={}", self.user),
            format!("PGDATABASE={}", self.database),
        ];
        if let Some(p) = &self.password {
            env.push(format!("PGPASSWORD={}", p.expose()));
        }
        if let Some(h) = &self.host {
            env.push(format!("PGHOST={h}"));
        }
        env
    }
}

/// Read a database container's credentials from its environment.
#[cfg(feature = "docker")]
pub async fn container_credentials(
    docker: &crate::docker::Docker,
    container: &str,
) -> Result<ContainerCredentials, DbError> {
    Ok(ContainerCredentials::from_env(
        &docker.container_env(container).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_parsed_like_libpq_and_removed_from_the_driver_url() {
        let t = DbTarget::from_url(&SecretUrl::new(
            "postgres://app:pw@db:25060/app?sslmode=require&application_name=x",
        ))
        .expect("parse");
        assert_eq!(t.ssl_mode(), SslMode::Require);
        assert_eq!(t.database(), "app");
        let t = DbTarget::from_url(&SecretUrl::new(
            "postgresql://app:pw@db/app?sslmode=verify-full&sslrootcert=/ca.pem",
        ))
        .expect("parse");
        assert_eq!(t.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(t.root_cert(), Some(&RootCert::File("/ca.pem".into())));
        let t = DbTarget::from_url(&SecretUrl::new(
            "postgresql://app:pw@db/app?sslmode=verify-ca&sslrootcert=system",
        ))
        .expect("parse");
        assert_eq!(t.root_cert(), Some(&RootCert::System));
    }

    #[test]
    fn errors_and_display_never_show_the_password() {
        let t =
            DbTarget::from_url(&SecretUrl::new("postgres://app:hunter2@db/app")).expect("parse");
        assert!(!format!("{t} {t:?}").contains("hunter2"));
        let err = DbTarget::from_url(&SecretUrl::new(
            "postgres://app:hunter2@db/app?sslmode=sometimes",
        ))
        .expect_err("must fail")
        .to_string();
        assert!(err.contains("sslmode") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn container_credentials_default_like_the_official_image() {
        let env = [("POSTGRES_PASSWORD".to_owned(), "pw".to_owned())]
            .into_iter()
            .collect();
        let c = ContainerCredentials::from_env(&env);
        assert_eq!(
            (c.user.as_str(), c.database.as_str()),
            ("postgres", "postgres")
        );
        assert!(c.client_env().contains(&"PGPASSWORD=pw".to_owned()));
        assert_eq!(c.engine, Engine::Postgres);
    }

    #[test]
    fn a_mariadb_or_mysql_container_is_read_like_the_official_images() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let c = ContainerCredentials::from_env(&env(&[
            ("MARIADB_ROOT_PASSWORD", "rootpw"),
            ("MARIADB_USER", "app"),
            ("MARIADB_PASSWORD", "apppw"),
            ("MARIADB_DATABASE", "shop"),
        ]));
        assert_eq!(c.engine, Engine::Mysql);
        assert_eq!((c.user.as_str(), c.database.as_str()), ("root", "shop"));
        assert_eq!(c.client_env(), vec!["MYSQL_PWD=rootpw".to_owned()]);
        let c = ContainerCredentials::from_env(&env(&[
            ("MYSQL_USER", "app"),
            ("MYSQL_PASSWORD", "apppw"),
            ("MYSQL_DATABASE", "shop"),
            ("MYSQL_RANDOM_ROOT_PASSWORD", "yes"),
        ]));
        assert_eq!((c.user.as_str(), c.database.as_str()), ("app", "shop"));
        assert_eq!(Engine::of_url("mysql://u:p@h:4000/db"), Engine::Mysql);
        assert_eq!(Engine::of_url("postgres://u:p@h/db"), Engine::Postgres);
    }
}
