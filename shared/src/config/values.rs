//! The values: the typed configuration each binary reads, built from the layers of
//! [`super::sources`] with the defaults of [`super::settings`]. Sections hold what is set;
//! `require_*` turn a missing setting into an error that says which variable or key to set.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use super::error::{missing, ConfigError};
use super::parse::{
    comma_list, default_compose_project, default_smtp_port, parse_backup_name, parse_bool,
    parse_bucket, parse_compress, parse_count, parse_days, parse_engine, parse_level,
    parse_mail_when, parse_mailbox, parse_port, parse_prefix, parse_ratio, parse_smtp_tls,
    parse_url, tls_for_port,
};
use super::settings::{self as s, Setting};
use super::sources::{collect, Collected, Layers, LoadOptions, Origin};
use crate::secret::{Secret, SecretUrl};

/// When a job sends mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailWhen {
    Never,
    Failure,
    Always,
    /// Failures, and a digest of the backups once a week.
    Weekly,
}

/// How backups are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// `.sql.gz`, read by plain `gunzip`.
    Gzip,
    /// `.sql.zst`, several times faster.
    Zstd,
}

impl Compress {
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Gzip => "sql.gz",
            Self::Zstd => "sql.zst",
        }
    }
    pub const fn default_level(self) -> u32 {
        match self {
            Self::Gzip => 6,
            Self::Zstd => 3,
        }
    }
    pub const fn max_level(self) -> u32 {
        match self {
            Self::Gzip => 9,
            Self::Zstd => 19,
        }
    }
}

impl fmt::Display for Compress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        })
    }
}

/// Retention: a backup is kept when any rule keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Backups younger than this many days.
    pub days: u32,
    /// GFS: the newest backup of each of the last this-many days that have one.
    pub daily: u32,
    /// GFS: the same per ISO week.
    pub weekly: u32,
    /// GFS: the same per month.
    pub monthly: u32,
    /// Never fewer backups than this (the newest is always kept).
    pub min: u32,
}

/// lifeboat-backup's settings.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub dir: PathBuf,
    pub compress: Compress,
    /// Compression level, valid for `compress`.
    pub level: u32,
    /// Threads that compress.
    pub threads: usize,
    /// The archive's name (before the extension): a strftime pattern, applied in UTC.
    pub name: String,
    /// Every database and the roles.
    pub all: bool,
    pub keep: Retention,
    /// Prometheus textfile written after each backup run.
    pub metrics_file: Option<PathBuf>,
    /// When lifeboat-backup sends mail (when SMTP is configured).
    pub mail: MailWhen,
    /// Dead-man switch: called on start (`/start`), success, and failure (`/fail`).
    pub ping_url: Option<SecretUrl>,
    /// The key that signs manifests (else the key file in `dir`).
    pub key: Option<Secret>,
    /// age recipients (public keys, or files of them) every new archive is encrypted to.
    pub recipients: Vec<String>,
    /// An age passphrase every new archive is encrypted with (instead of recipients).
    pub passphrase: Option<Secret>,
    /// The file of age identities that decrypts backups.
    pub identity: Option<PathBuf>,
    /// Retention deletes nothing while the newest backup is smaller than this fraction of the
    /// one before (0: no check).
    pub min_ratio: f64,
    /// `lifeboat-backup schedule`'s cron expression for backups.
    pub schedule: String,
    /// Its cron expression for restore drills, if any.
    pub drill_schedule: Option<String>,
}

/// The TLS mode of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a local relay, Mailhog).
    None,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Option<SecretUrl>,
    pub service: String,
    /// The database to back up, when not the container's or the URL's own.
    pub name: Option<String>,
    pub container: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Option<SecretUrl>,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub bucket: Option<String>,
    pub prefix: String,
    pub path_style: bool,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub from: Option<String>,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ComposeConfig {
    pub project: String,
    pub files: Vec<PathBuf>,
    /// Compose, Swarm, or found out.
    pub engine: EngineChoice,
    /// The Swarm stack's name (the compose project's unless set).
    pub stack: String,
    /// On Swarm, reach the database from a one-off container even when its task is local.
    pub swarm_oneoff: bool,
}

/// What lifeboat drives: `docker.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// Compose when the project has containers, else a Swarm stack of that name.
    Auto,
    Compose,
    Swarm,
}

/// lifeboat-restore's settings.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// Compose services stopped during the swap; `None`: discovered, `Some(empty)`: none.
    pub app_services: Option<Vec<String>>,
    /// Seconds the app has to become healthy again before the restore is undone.
    pub health_timeout: u32,
    /// Days a pre-restore database is kept.
    pub keep_days: u32,
    /// Sessions of a parallel load; `None`: the server's cores.
    pub jobs: Option<u32>,
    /// While the app is down, the proxies answer 503 with `Retry-After`.
    pub maintenance: bool,
}

/// lifeboat-deploy's and lifeboat-rollback's settings.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The compose services that serve the app, switched first (empty: not configured).
    pub services: Vec<String>,
    /// The compose services of the workers, switched after the services.
    pub workers: Vec<String>,
    pub image: Option<String>,
    /// On Swarm, the registry releases are pushed to for the other nodes.
    pub registry: Option<String>,
    pub git_repo: Option<PathBuf>,
    pub dockerfile: String,
    /// The migration command's words.
    pub migrate: Vec<String>,
    pub migrate_timeout: u32,
    pub health_timeout: u32,
    pub health_url: Option<String>,
    /// The proxies' compose services (empty: discovered; `none`: none).
    pub proxies: Vec<String>,
    /// Seconds an old container behind a proxy gets to finish its requests.
    pub drain: u32,
    pub smoke_spec: Option<PathBuf>,
    pub backup: bool,
    pub restore_on_failure: bool,
    pub keep_releases: u32,
    pub dir: PathBuf,
    pub webhook_url: Option<SecretUrl>,
}

/// The resolved configuration. Sections hold what is set; `require_*` methods turn a missing
/// setting into an error that says which variable or key to set.
#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Option<String>,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub s3: S3Config,
    pub smtp: SmtpConfig,
    pub compose: ComposeConfig,
    pub docker_host: Option<String>,
    pub backup: BackupConfig,
    pub lock_dir: PathBuf,
    pub restore: RestoreConfig,
    pub deploy: DeployConfig,
    /// The files that were read, for `--verbose` and error messages.
    pub sources: Vec<PathBuf>,
}

impl Config {
    /// Load from the process environment and the files in the current directory.
    pub fn load(opts: &LoadOptions) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::load_with_env(opts, &env)
    }

    /// Load with an explicit environment (tests; and callers that sanitise the environment).
    pub fn load_with_env(
        opts: &LoadOptions,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let Collected {
            layers,
            profile,
            sources,
        } = collect(opts, env)?;
        let config = Self::from_layers(&layers, profile, sources);
        // Every problem at once: the bad values, unknown keys and variables found on the way,
        // then the one that stopped the reading, if any.
        let mut errors = layers.take_errors();
        match config {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(super::error::all(errors)),
            Err(e) => {
                errors.push(e);
                Err(super::error::all(errors))
            }
        }
    }

    fn from_layers(
        layers: &Layers,
        profile: Option<String>,
        sources: Vec<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let backup = BackupConfig::from_layers(layers)?;
        Ok(Config {
            profile,
            database: DatabaseConfig::from_layers(layers)?,
            redis: RedisConfig {
                url: layers.parse(&s::REDIS_URL, url(&["redis", "rediss"]))?,
            },
            s3: S3Config::from_layers(layers)?,
            smtp: SmtpConfig::from_layers(layers)?,
            compose: ComposeConfig {
                engine: layers.with_default(&s::LIFEBOAT_ENGINE, parse_engine)?,
                stack: layers
                    .string(&s::LIFEBOAT_STACK)
                    .or_else(|| layers.string(&s::COMPOSE_PROJECT_NAME))
                    .unwrap_or_else(default_compose_project),
                swarm_oneoff: layers.with_default(&s::LIFEBOAT_SWARM_ONEOFF, parse_bool)?,
                project: layers
                    .string(&s::COMPOSE_PROJECT_NAME)
                    .unwrap_or_else(default_compose_project),
                files: layers
                    .string(&s::COMPOSE_FILE)
                    .map(|v| {
                        v.split(':')
                            .filter(|s| !s.is_empty())
                            .map(PathBuf::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            docker_host: layers.string(&s::DOCKER_HOST),
            lock_dir: layers
                .string(&s::LIFEBOAT_LOCK_DIR)
                .map_or_else(|| crate::lock::default_dir(&backup.dir), PathBuf::from),
            backup,
            restore: RestoreConfig::from_layers(layers)?,
            deploy: DeployConfig::from_layers(layers)?,
            sources,
        })
    }

    /// The database URL, or an error saying how to give one.
    pub fn require_database_url(&self, why: &str) -> Result<&SecretUrl, ConfigError> {
        self.database
            .url
            .as_ref()
            .ok_or_else(|| missing(&s::DATABASE_URL, why))
    }

    pub fn require_redis_url(&self, why: &str) -> Result<&SecretUrl, ConfigError> {
        self.redis
            .url
            .as_ref()
            .ok_or_else(|| missing(&s::REDIS_URL, why))
    }

    /// The bucket settings, complete, or an error naming the first one missing.
    pub fn require_s3(&self, why: &str) -> Result<S3Settings, ConfigError> {
        let s3 = &self.s3;
        Ok(S3Settings {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            access_key_id: s3
                .access_key_id
                .clone()
                .ok_or_else(|| missing(&s::S3_ACCESS_KEY_ID, why))?,
            secret_access_key: s3
                .secret_access_key
                .clone()
                .ok_or_else(|| missing(&s::S3_SECRET_ACCESS_KEY, why))?,
            bucket: s3
                .bucket
                .clone()
                .ok_or_else(|| missing(&s::S3_BUCKET, why))?,
            prefix: s3.prefix.clone(),
            path_style: s3.path_style,
        })
    }

    /// The mail settings, complete, or an error naming the first one missing.
    pub fn require_smtp(&self, why: &str) -> Result<&SmtpConfig, ConfigError> {
        let smtp = &self.smtp;
        smtp.host
            .as_ref()
            .ok_or_else(|| missing(&s::SMTP_HOST, why))?;
        smtp.from
            .as_ref()
            .ok_or_else(|| missing(&s::SMTP_FROM, why))?;
        if smtp.to.is_empty() {
            return Err(missing(&s::LIFEBOAT_MAIL_TO, why));
        }
        Ok(smtp)
    }
}

/// Complete S3 settings, as [`Config::require_s3`] returns them.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub bucket: String,
    pub prefix: String,
    pub path_style: bool,
}

/// A parser of URLs with these schemes, kept secret when shown.
fn url(schemes: &'static [&'static str]) -> impl Fn(&str) -> Result<SecretUrl, String> {
    move |v: &str| parse_url(v, schemes).map(SecretUrl::new)
}

/// `a, b,,c` of `setting` as a list; empty when not set.
fn list(layers: &Layers, setting: &Setting) -> Vec<String> {
    layers
        .string(setting)
        .map(|v| comma_list(&v))
        .unwrap_or_default()
}

impl DatabaseConfig {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(DatabaseConfig {
            url: layers.parse(
                &s::DATABASE_URL,
                url(&["postgres", "postgresql", "mysql", "mariadb"]),
            )?,
            service: layers.with_default(&s::LIFEBOAT_DB_SERVICE, |v| Ok(v.to_owned()))?,
            container: layers.string(&s::LIFEBOAT_DB_CONTAINER),
            name: layers.string(&s::LIFEBOAT_DB_NAME),
        })
    }
}

impl S3Config {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(S3Config {
            endpoint: layers.parse(&s::S3_ENDPOINT, |v| parse_url(v, &["http", "https"]))?,
            region: layers.with_default(&s::S3_REGION, |v| Ok(v.to_owned()))?,
            access_key_id: layers.string(&s::S3_ACCESS_KEY_ID),
            secret_access_key: layers.string(&s::S3_SECRET_ACCESS_KEY).map(Secret::new),
            bucket: layers.parse(&s::S3_BUCKET, parse_bucket)?,
            prefix: layers.with_default(&s::LIFEBOAT_S3_PREFIX, parse_prefix)?,
            path_style: layers.with_default(&s::LIFEBOAT_S3_PATH_STYLE, parse_bool)?,
        })
    }
}

impl SmtpConfig {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let tls = layers.parse(&s::LIFEBOAT_SMTP_TLS, parse_smtp_tls)?;
        let port = layers.parse(&s::SMTP_PORT, parse_port)?;
        let (tls, port) = match (tls, port) {
            (Some(t), Some(p)) => (t, p),
            (Some(t), None) => (t, default_smtp_port(t)),
            (None, Some(p)) => (tls_for_port(p), p),
            (None, None) => (SmtpTls::None, default_smtp_port(SmtpTls::None)),
        };
        // Half a login would silently send without authentication, and the relay refuse it.
        for (have, lack) in [
            (&s::SMTP_USER, &s::SMTP_PASSWORD),
            (&s::SMTP_PASSWORD, &s::SMTP_USER),
        ] {
            if layers.given(have).is_some() && layers.given(lack).is_none() {
                return Err(missing(
                    lack,
                    &format!("`{}` is set, and SMTP needs both", have.name()),
                ));
            }
        }
        // A login over a plain connection hands the password to anyone on the path: only when
        // the user asked for no TLS in so many words.
        if tls == SmtpTls::None
            && layers.given(&s::SMTP_USER).is_some()
            && layers.given(&s::LIFEBOAT_SMTP_TLS).is_none()
        {
            return Err(ConfigError::Invalid {
                key: s::LIFEBOAT_SMTP_TLS.name(),
                origin: layers
                    .given(&s::SMTP_USER)
                    .map_or(Origin::Default, |(_, o)| o.clone()),
                reason: format!(
                    "an SMTP user and password would be sent in clear on port {port}: set {tls}=starttls (port 587) or tls (port 465), or {tls}=none to send them in clear anyway",
                    tls = s::LIFEBOAT_SMTP_TLS.var
                ),
            });
        }
        Ok(SmtpConfig {
            host: layers.string(&s::SMTP_HOST),
            port,
            user: layers.string(&s::SMTP_USER),
            password: layers.string(&s::SMTP_PASSWORD).map(Secret::new),
            from: layers.parse(&s::SMTP_FROM, parse_mailbox)?,
            tls,
            ca_file: layers.string(&s::LIFEBOAT_SMTP_CA_FILE).map(PathBuf::from),
            to: list(layers, &s::LIFEBOAT_MAIL_TO),
        })
    }
}

impl BackupConfig {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let compress = layers.with_default(&s::LIFEBOAT_BACKUP_COMPRESS, parse_compress)?;
        let level = match layers.parse(&s::LIFEBOAT_BACKUP_COMPRESSION_LEVEL, |v| {
            parse_level(v, compress)
        })? {
            Some(level) => level,
            None => compress.default_level(),
        };
        let count = |setting| layers.with_default(setting, |v| parse_count(v, 0));
        Ok(BackupConfig {
            dir: layers.with_default(&s::LIFEBOAT_BACKUP_DIR, |v| Ok(PathBuf::from(v)))?,
            compress,
            level,
            threads: layers
                .parse(&s::LIFEBOAT_BACKUP_THREADS, |v| parse_count(v, 1))?
                .map_or_else(
                    || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    |n| n as usize,
                ),
            name: layers.with_default(&s::LIFEBOAT_BACKUP_NAME, parse_backup_name)?,
            all: layers.with_default(&s::LIFEBOAT_BACKUP_ALL, parse_bool)?,
            keep: Retention {
                days: layers.with_default(&s::LIFEBOAT_BACKUP_KEEP_DAYS, |v| parse_days(v, 1))?,
                daily: count(&s::LIFEBOAT_BACKUP_KEEP_DAILY)?,
                weekly: count(&s::LIFEBOAT_BACKUP_KEEP_WEEKLY)?,
                monthly: count(&s::LIFEBOAT_BACKUP_KEEP_MONTHLY)?,
                min: layers.with_default(&s::LIFEBOAT_BACKUP_KEEP_MIN, |v| parse_count(v, 1))?,
            },
            metrics_file: layers
                .string(&s::LIFEBOAT_BACKUP_METRICS_FILE)
                .map(PathBuf::from),
            mail: layers.with_default(&s::LIFEBOAT_BACKUP_MAIL, parse_mail_when)?,
            ping_url: layers
                .parse(&s::LIFEBOAT_BACKUP_PING_URL, |v| {
                    parse_url(v, &["http", "https"])
                })?
                .map(SecretUrl::new),
            key: layers.string(&s::LIFEBOAT_BACKUP_KEY).map(Secret::new),
            recipients: list(layers, &s::LIFEBOAT_BACKUP_RECIPIENTS),
            passphrase: layers
                .string(&s::LIFEBOAT_BACKUP_PASSPHRASE)
                .filter(|p| !p.is_empty())
                .map(Secret::new),
            identity: layers
                .string(&s::LIFEBOAT_BACKUP_IDENTITY)
                .map(PathBuf::from),
            min_ratio: layers.with_default(&s::LIFEBOAT_BACKUP_MIN_RATIO, parse_ratio)?,
            schedule: layers
                .with_default(&s::LIFEBOAT_BACKUP_SCHEDULE, |v| Ok(v.trim().to_owned()))?,
            drill_schedule: layers
                .string(&s::LIFEBOAT_BACKUP_DRILL_SCHEDULE)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
        })
    }
}

impl RestoreConfig {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(RestoreConfig {
            app_services: layers.string(&s::LIFEBOAT_RESTORE_APP_SERVICES).map(|v| {
                let mut services = comma_list(&v);
                services.retain(|s| s != "none");
                services
            }),
            health_timeout: layers
                .with_default(&s::LIFEBOAT_RESTORE_HEALTH_TIMEOUT, |v| parse_count(v, 1))?,
            keep_days: layers.with_default(&s::LIFEBOAT_RESTORE_KEEP_DAYS, |v| parse_days(v, 0))?,
            jobs: layers.parse(&s::LIFEBOAT_RESTORE_JOBS, |v| parse_count(v, 1))?,
            maintenance: layers.with_default(&s::LIFEBOAT_RESTORE_MAINTENANCE, parse_bool)?,
        })
    }
}

impl DeployConfig {
    fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(DeployConfig {
            services: list(layers, &s::LIFEBOAT_DEPLOY_SERVICES),
            workers: list(layers, &s::LIFEBOAT_DEPLOY_WORKERS),
            image: layers.string(&s::LIFEBOAT_DEPLOY_IMAGE),
            registry: layers.string(&s::LIFEBOAT_DEPLOY_REGISTRY),
            git_repo: layers
                .string(&s::LIFEBOAT_DEPLOY_GIT_REPO)
                .map(PathBuf::from),
            dockerfile: layers
                .with_default(&s::LIFEBOAT_DEPLOY_DOCKERFILE, |v| Ok(v.to_owned()))?,
            migrate: layers
                .string(&s::LIFEBOAT_DEPLOY_MIGRATE)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            migrate_timeout: layers
                .with_default(&s::LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT, |v| parse_count(v, 1))?,
            health_timeout: layers
                .with_default(&s::LIFEBOAT_DEPLOY_HEALTH_TIMEOUT, |v| parse_count(v, 1))?,
            health_url: layers.parse(&s::LIFEBOAT_DEPLOY_HEALTH_URL, |v| {
                parse_url(v, &["http", "https"]).map(|_| v.to_owned())
            })?,
            proxies: list(layers, &s::LIFEBOAT_DEPLOY_PROXIES),
            drain: layers.with_default(&s::LIFEBOAT_DEPLOY_DRAIN, |v| parse_count(v, 0))?,
            smoke_spec: layers
                .string(&s::LIFEBOAT_DEPLOY_SMOKE_SPEC)
                .map(PathBuf::from),
            backup: layers.with_default(&s::LIFEBOAT_DEPLOY_BACKUP, parse_bool)?,
            restore_on_failure: layers
                .with_default(&s::LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE, parse_bool)?,
            keep_releases: layers
                .with_default(&s::LIFEBOAT_DEPLOY_KEEP_RELEASES, |v| parse_count(v, 1))?,
            dir: layers.with_default(&s::LIFEBOAT_DEPLOY_DIR, |v| Ok(PathBuf::from(v)))?,
            webhook_url: layers.parse(&s::LIFEBOAT_DEPLOY_WEBHOOK_URL, url(&["http", "https"]))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{env, load, opts_in};
    use super::super::{days_before, Config, LoadOptions, SmtpTls};

    #[test]
    fn a_malformed_value_names_the_key_and_where_it_came_from_without_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".env"), "# stack\nSMTP_PORT=abc\n").expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("`smtp.port`") && err.contains("SMTP_PORT in") && err.contains("line 2"),
            "{err}"
        );

        let err = Config::load_with_env(
            &opts_in(dir.path()),
            &env(&[
                ("DATABASE_URL", "redis://u:hunter2@h/d"),
                ("SMTP_PORT", "25"),
            ]),
        )
        .expect_err("must fail")
        .to_string();
        assert!(err.contains("environment variable DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn day_counts_are_bounded_and_never_overflow_a_date() {
        for key in ["LIFEBOAT_BACKUP_KEEP_DAYS", "LIFEBOAT_RESTORE_KEEP_DAYS"] {
            let err = load(&[(key, "99999999")])
                .expect_err("beyond chrono's dates")
                .to_string();
            assert!(err.contains(key) && err.contains("100000"), "{err}");
            assert!(load(&[(key, "100000")]).is_ok(), "{key}: keep forever");
        }
        let now = chrono::Utc::now();
        assert_eq!(
            days_before(now, u32::MAX),
            chrono::DateTime::<chrono::Utc>::MIN_UTC
        );
        assert_eq!(days_before(now, 1), now - chrono::TimeDelta::days(1));
    }

    #[test]
    fn an_smtp_login_needs_tls_or_a_plain_no() {
        let login = [("SMTP_USER", "u"), ("SMTP_PASSWORD", "hunter2")];
        for port in ["25", "2525"] {
            let mut pairs = login.to_vec();
            pairs.push(("SMTP_PORT", port));
            let err = load(&pairs).expect_err("in clear").to_string();
            assert!(
                err.contains("LIFEBOAT_SMTP_TLS=starttls") && err.contains(port),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        let mut pairs = login.to_vec();
        pairs.push(("LIFEBOAT_SMTP_TLS", "none"));
        assert!(load(&pairs).is_ok(), "explicitly in clear");
        let mut pairs = login.to_vec();
        pairs.push(("SMTP_PORT", "587"));
        assert!(load(&pairs).is_ok(), "STARTTLS by port");
        assert!(
            load(&[("SMTP_PORT", "25")]).is_ok(),
            "no login, no TLS needed"
        );
    }

    #[test]
    fn smtp_tls_and_port_default_from_each_other() {
        let load = |pairs: &[(&str, &str)]| {
            let cfg = load(pairs).expect("load");
            (cfg.smtp.tls, cfg.smtp.port)
        };
        assert_eq!(load(&[("SMTP_PORT", "465")]), (SmtpTls::Tls, 465));
        assert_eq!(load(&[("SMTP_PORT", "587")]), (SmtpTls::StartTls, 587));
        assert_eq!(load(&[("SMTP_PORT", "1025")]), (SmtpTls::None, 1025));
        assert_eq!(
            load(&[("LIFEBOAT_SMTP_TLS", "starttls")]),
            (SmtpTls::StartTls, 587)
        );
    }

    #[test]
    fn a_missing_setting_says_which_variable_to_set() {
        let cfg = Config::load_with_env(&LoadOptions::default(), &env(&[])).expect("load");
        let err = cfg
            .require_s3("to upload backups")
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("S3_ACCESS_KEY_ID") && err.contains("to upload backups"),
            "{err}"
        );
    }

    #[test]
    fn half_an_smtp_login_and_cli_variables_in_dotenv_are_refused() {
        let err = Config::load_with_env(&LoadOptions::default(), &env(&[("SMTP_USER", "app")]))
            .expect_err("no password")
            .to_string();
        assert!(err.contains("SMTP_PASSWORD"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".env"), "LIFEBOAT_LOG_FORMAT=json\n").expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("ignored otherwise")
            .to_string();
        assert!(
            err.contains("LIFEBOAT_LOG_FORMAT is read before .env"),
            "{err}"
        );
    }

    #[test]
    fn the_s3_prefix_is_never_the_whole_bucket() {
        let load = |v: &str| {
            Config::load_with_env(&LoadOptions::default(), &env(&[("LIFEBOAT_S3_PREFIX", v)]))
        };
        assert_eq!(load("backups").expect("load").s3.prefix, "backups/");
        assert_eq!(load("").expect("load").s3.prefix, "lifeboat/");
        assert!(load("/")
            .expect_err("whole bucket")
            .to_string()
            .contains("LIFEBOAT_S3_PREFIX"));
    }
}
