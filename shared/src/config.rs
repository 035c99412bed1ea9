//! Configuration from five layers, with every value remembering where it came from.
//!
//! Precedence, highest first: command-line flags > environment > the stack's `.env` file >
//! `lifeboat.toml` (its `[profile.NAME]` table over its top level) > defaults. lifeboat reads the
//! variable names these stacks already use (`DATABASE_URL`, `S3_BUCKET`, `SMTP_HOST`, …) so that it
//! works beside an existing `docker-compose.yml` and its `.env` with no file of its own.
//!
//! A typo must not silently fall back to a default: an unknown key in `lifeboat.toml` or an unknown
//! `LIFEBOAT_*` variable is an error, and every error names the key and the file, line, variable or
//! flag the bad value came from. Secrets never appear in these messages.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::env_vars as ev;
use crate::secret::{Secret, SecretUrl};

/// The default configuration file, read when present.
pub const DEFAULT_CONFIG_FILE: &str = "lifeboat.toml";
/// The stack's environment file, read when present.
pub const DEFAULT_ENV_FILE: &str = ".env";

/// One setting: its key in `lifeboat.toml`, its environment variable, and its default.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub doc: &'static str,
}

const fn setting(key: &'static str, env: &'static str, doc: &'static str) -> Setting {
    Setting {
        key,
        env,
        default: None,
        secret: false,
        doc,
    }
}

const fn with_default(mut s: Setting, default: &'static str) -> Setting {
    s.default = Some(default);
    s
}

const fn secret(mut s: Setting) -> Setting {
    s.secret = true;
    s
}

/// The default name of a backup: seed 001's `backup_YYYYMMDD_HHMMSS`, in UTC.
pub const DEFAULT_BACKUP_NAME: &str = "backup_%Y%m%d_%H%M%S";

/// Every setting, in the order README's reference lists them.
pub const SETTINGS: &[Setting] = &[
    secret(setting("database.url", ev::DATABASE_URL, "PostgreSQL URL; when set, lifeboat connects directly instead of through the database container")),
    with_default(setting("database.service", ev::LIFEBOAT_DB_SERVICE, "compose service of the database container"), "postgres"),
    setting("database.container", ev::LIFEBOAT_DB_CONTAINER, "database container by name or id (instead of the compose service)"),
    secret(setting("redis.url", ev::REDIS_URL, "Redis URL")),
    setting("s3.endpoint", ev::S3_ENDPOINT, "S3-compatible endpoint URL (MinIO, Spaces); unset means AWS"),
    with_default(setting("s3.region", ev::S3_REGION, "S3 region"), "us-east-1"),
    setting("s3.access-key-id", ev::S3_ACCESS_KEY_ID, "S3 access key id"),
    secret(setting("s3.secret-access-key", ev::S3_SECRET_ACCESS_KEY, "S3 secret access key")),
    setting("s3.bucket", ev::S3_BUCKET, "S3 bucket"),
    with_default(setting("s3.prefix", ev::LIFEBOAT_S3_PREFIX, "prefix of every object lifeboat writes"), "lifeboat/"),
    with_default(setting("s3.path-style", ev::LIFEBOAT_S3_PATH_STYLE, "path-style addressing (true for MinIO)"), "true"),
    setting("smtp.host", ev::SMTP_HOST, "SMTP server"),
    setting("smtp.port", ev::SMTP_PORT, "SMTP port (default by TLS mode: 465 tls, 587 starttls, 25 none)"),
    setting("smtp.user", ev::SMTP_USER, "SMTP user"),
    secret(setting("smtp.password", ev::SMTP_PASSWORD, "SMTP password")),
    setting("smtp.from", ev::SMTP_FROM, "sender address of lifeboat's mails"),
    setting("smtp.tls", ev::LIFEBOAT_SMTP_TLS, "none, starttls or tls (default by port: 465 tls, 587 starttls, else none)"),
    setting("smtp.ca-file", ev::LIFEBOAT_SMTP_CA_FILE, "PEM file of extra CA certificates trusted for SMTP"),
    setting("mail.to", ev::LIFEBOAT_MAIL_TO, "recipients of lifeboat's mails, comma-separated"),
    setting("compose.project", ev::COMPOSE_PROJECT_NAME, "compose project name (default: the current directory's name, as compose does)"),
    setting("compose.file", ev::COMPOSE_FILE, "compose file(s), separated by ':'"),
    setting("docker.host", ev::DOCKER_HOST, "Docker engine (default: the local socket)"),
    setting("database.name", ev::LIFEBOAT_DB_NAME, "database to back up (default: the container's POSTGRES_DB, or the URL's)"),
    with_default(setting("backup.dir", ev::LIFEBOAT_BACKUP_DIR, "directory of local backups"), "./backups"),
    with_default(setting("backup.compress", ev::LIFEBOAT_BACKUP_COMPRESS, "gzip (.sql.gz) or zstd (.sql.zst)"), "gzip"),
    setting("backup.compression-level", ev::LIFEBOAT_BACKUP_COMPRESSION_LEVEL, "gzip 1-9 (default 6), zstd 1-19 (default 3)"),
    setting("backup.threads", ev::LIFEBOAT_BACKUP_THREADS, "threads that compress (default: the cores)"),
    with_default(setting("backup.name", ev::LIFEBOAT_BACKUP_NAME, "archive name, a UTC strftime pattern"), DEFAULT_BACKUP_NAME),
    with_default(setting("backup.all", ev::LIFEBOAT_BACKUP_ALL, "back up every database and the roles"), "false"),
    with_default(setting("backup.keep-days", ev::LIFEBOAT_BACKUP_KEEP_DAYS, "retention: keep backups younger than this many days"), "7"),
    with_default(setting("backup.keep-daily", ev::LIFEBOAT_BACKUP_KEEP_DAILY, "retention: also keep the last backup of this many days"), "0"),
    with_default(setting("backup.keep-weekly", ev::LIFEBOAT_BACKUP_KEEP_WEEKLY, "retention: also keep the last backup of this many weeks"), "0"),
    with_default(setting("backup.keep-monthly", ev::LIFEBOAT_BACKUP_KEEP_MONTHLY, "retention: also keep the last backup of this many months"), "0"),
    with_default(setting("backup.keep-min", ev::LIFEBOAT_BACKUP_KEEP_MIN, "retention: never keep fewer backups than this"), "3"),
    setting("backup.metrics-file", ev::LIFEBOAT_BACKUP_METRICS_FILE, "Prometheus textfile written after each backup run"),
    with_default(setting("backup.mail", ev::LIFEBOAT_BACKUP_MAIL, "when to mail: failure, always, weekly or never (needs SMTP_HOST)"), "failure"),
    secret(setting("backup.key", ev::LIFEBOAT_BACKUP_KEY, "key that signs manifests, so that lifeboat-restore trusts only this host's off-site backups (default: <backup dir>/.lifeboat-signing-key, made at first use)")),
    secret(setting("backup.ping-url", ev::LIFEBOAT_BACKUP_PING_URL, "dead-man switch URL called on start, success and failure")),
    setting("lock.dir", ev::LIFEBOAT_LOCK_DIR, "directory of job locks, ours alone (default: /run/lock/lifeboat for root, else $XDG_RUNTIME_DIR/lifeboat or <backup dir>/.lifeboat-locks)"),
    setting("restore.app-services", ev::LIFEBOAT_RESTORE_APP_SERVICES, "compose services lifeboat-restore stops during the swap, comma-separated, or none (default: those whose environment names the database)"),
    with_default(setting("restore.health-timeout", ev::LIFEBOAT_RESTORE_HEALTH_TIMEOUT, "seconds the app has to become healthy after a restore before it is undone"), "120"),
    with_default(setting("restore.keep-days", ev::LIFEBOAT_RESTORE_KEEP_DAYS, "days pre-restore databases are kept, and at least their safety backups"), "7"),
    with_default(setting("restore.maintenance", ev::LIFEBOAT_RESTORE_MAINTENANCE, "while the app is down, the proxy in front (nginx, Caddy) answers 503 with Retry-After instead of 502"), "false"),
    setting("deploy.services", ev::LIFEBOAT_DEPLOY_SERVICES, "compose services that serve the app, comma-separated: switched first, each health-gated"),
    setting("deploy.workers", ev::LIFEBOAT_DEPLOY_WORKERS, "compose services of the app's workers, comma-separated: switched after the services"),
    setting("deploy.image", ev::LIFEBOAT_DEPLOY_IMAGE, "image repository of the releases, VERSION being the tag (default: the running service's image repository)"),
    setting("deploy.git-repo", ev::LIFEBOAT_DEPLOY_GIT_REPO, "the app's git repository: VERSION is a tag or commit built from a clean export of it"),
    with_default(setting("deploy.dockerfile", ev::LIFEBOAT_DEPLOY_DOCKERFILE, "the Dockerfile's path inside the git repository"), "Dockerfile"),
    setting("deploy.migrate", ev::LIFEBOAT_DEPLOY_MIGRATE, "migration command run in a one-off container of the new image, words separated by spaces (e.g. `migrate`)"),
    with_default(setting("deploy.migrate-timeout", ev::LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT, "seconds the migration may take"), "600"),
    with_default(setting("deploy.health-timeout", ev::LIFEBOAT_DEPLOY_HEALTH_TIMEOUT, "seconds a new container has to become healthy"), "60"),
    setting("deploy.health-url", ev::LIFEBOAT_DEPLOY_HEALTH_URL, "the app's URL where users reach it (through the proxy): checked after each service's switch, after a rollback and after a restore"),
    setting("deploy.proxies", ev::LIFEBOAT_DEPLOY_PROXIES, "compose services of the reverse proxies in front of the app, comma-separated, or none (default: discovered: nginx, Caddy, HAProxy or Traefik on the app's network)"),
    with_default(setting("deploy.drain", ev::LIFEBOAT_DEPLOY_DRAIN, "the most seconds an old container behind a proxy gets to finish its requests before it is stopped (less when it receives nothing)"), "10"),
    setting("deploy.smoke-spec", ev::LIFEBOAT_DEPLOY_SMOKE_SPEC, "smoke.toml run after the switch (default: ./smoke.toml when present)"),
    with_default(setting("deploy.backup", ev::LIFEBOAT_DEPLOY_BACKUP, "take a backup before deploying"), "true"),
    with_default(setting("deploy.restore-on-failure", ev::LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE, "when a deploy whose migrations ran is rolled back, also restore its pre-deploy backup"), "false"),
    with_default(setting("deploy.keep-releases", ev::LIFEBOAT_DEPLOY_KEEP_RELEASES, "releases whose images are kept for rollbacks"), "5"),
    with_default(setting("deploy.dir", ev::LIFEBOAT_DEPLOY_DIR, "directory of the deploy history and journal"), "./.lifeboat"),
    secret(setting("deploy.webhook-url", ev::LIFEBOAT_DEPLOY_WEBHOOK_URL, "URL that receives each deploy's and rollback's result as a JSON POST")),
];

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    DotEnv {
        path: PathBuf,
        line: usize,
        var: String,
    },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::DotEnv { path, line, var } => {
                write!(f, "{var} in {} line {line}", path.display())
            }
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("{} line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("unknown key `{key}` in {}{hint}", path.display())]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: String,
    },
    #[error("unknown variable {var} (from {origin}); lifeboat's own variables are listed in README's configuration reference")]
    UnknownVariable { var: String, origin: Origin },
    #[error("invalid value for `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        reason: String,
    },
    #[error("`{key}` is not set: set {env} in the environment or .env, or `{key}` in lifeboat.toml ({why})")]
    Missing {
        key: &'static str,
        env: &'static str,
        why: String,
    },
}

/// What the binary knows before reading any file: from its flags and their `env =` fallbacks.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`: must exist when given. Default `./lifeboat.toml`, optional.
    pub config_file: Option<PathBuf>,
    /// `--env-file`: must exist when given. Default `./.env`, optional.
    pub env_file: Option<PathBuf>,
    /// `--env`: the profile. When unset, `LIFEBOAT_ENV` from `.env` applies.
    pub profile: Option<String>,
    /// Where `profile` came from (flag `--env` or variable `LIFEBOAT_ENV`), for errors.
    pub profile_origin: Option<Origin>,
    /// Values given by flags, the highest layer.
    pub overrides: Vec<Override>,
}

/// A value given on the command line for a setting.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: &'static str,
    pub flag: &'static str,
    pub value: String,
}

/// When a job sends mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailWhen {
    Never,
    Failure,
    Always,
    /// Failures, and a digest of the backups once a week.
    Weekly,
}

fn parse_mail_when(v: &str) -> Result<MailWhen, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "never" | "off" => Ok(MailWhen::Never),
        "failure" | "failures" => Ok(MailWhen::Failure),
        "always" => Ok(MailWhen::Always),
        "weekly" => Ok(MailWhen::Weekly),
        _ => Err(format!(
            "expected failure, always, weekly or never, got {v:?}"
        )),
    }
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
        let mut layers = Layers::default();
        for s in SETTINGS {
            if let Some(default) = s.default {
                layers.set(s.key, default.to_owned(), Origin::Default);
            }
        }

        // `.env` is read first (its LIFEBOAT_ENV may choose the profile) but applied later.
        let dotenv = read_optional(opts.env_file.as_deref(), DEFAULT_ENV_FILE)?
            .map(|(path, text)| parse_dotenv(&path, &text).map(|vars| (path, vars)))
            .transpose()?;
        let profile_origin = opts
            .profile_origin
            .clone()
            .unwrap_or_else(|| Origin::Flag("--env".into()));
        let from_dotenv = || {
            let (path, vars) = dotenv.as_ref()?;
            let v = vars.iter().find(|v| v.name == ev::LIFEBOAT_ENV)?;
            let origin = Origin::DotEnv {
                path: path.clone(),
                line: v.line,
                var: v.name.clone(),
            };
            Some((v.value.clone(), origin))
        };
        let (profile, profile_origin) = match (opts.profile.clone(), from_dotenv()) {
            (Some(p), _) => (Some(p), profile_origin),
            (None, Some((p, origin))) => (Some(p), origin),
            (None, None) => (None, profile_origin),
        };
        if let Some(p) = &profile {
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid {
                    key: "profile",
                    origin: profile_origin,
                    reason: format!("{p:?} is not a profile name (letters, digits, '-' and '_')"),
                });
            }
        }

        let mut sources = Vec::new();
        if let Some((path, text)) = read_optional(opts.config_file.as_deref(), DEFAULT_CONFIG_FILE)?
        {
            apply_toml(
                &mut layers,
                &path,
                &text,
                profile.as_deref().map(|p| (p, &profile_origin)),
            )?;
            sources.push(path);
        }
        if let Some((path, vars)) = dotenv {
            for var in vars {
                let origin = Origin::DotEnv {
                    path: path.clone(),
                    line: var.line,
                    var: var.name.clone(),
                };
                apply_variable(&mut layers, &var.name, var.value, origin)?;
            }
            sources.push(path);
        }
        let mut names: Vec<&String> = env.keys().collect();
        names.sort();
        for name in names {
            apply_variable(
                &mut layers,
                name,
                env[name].clone(),
                Origin::Env(name.clone()),
            )?;
        }
        for o in &opts.overrides {
            layers.set(o.key, o.value.clone(), Origin::Flag(o.flag.to_owned()));
        }
        layers.build(profile, sources)
    }

    /// The database URL, or an error saying how to give one.
    pub fn require_database_url(&self, why: &str) -> Result<&SecretUrl, ConfigError> {
        self.database
            .url
            .as_ref()
            .ok_or_else(|| missing("database.url", why))
    }

    pub fn require_redis_url(&self, why: &str) -> Result<&SecretUrl, ConfigError> {
        self.redis
            .url
            .as_ref()
            .ok_or_else(|| missing("redis.url", why))
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
                .ok_or_else(|| missing("s3.access-key-id", why))?,
            secret_access_key: s3
                .secret_access_key
                .clone()
                .ok_or_else(|| missing("s3.secret-access-key", why))?,
            bucket: s3.bucket.clone().ok_or_else(|| missing("s3.bucket", why))?,
            prefix: s3.prefix.clone(),
            path_style: s3.path_style,
        })
    }

    /// The mail settings, complete, or an error naming the first one missing.
    pub fn require_smtp(&self, why: &str) -> Result<&SmtpConfig, ConfigError> {
        let smtp = &self.smtp;
        smtp.host
            .as_ref()
            .ok_or_else(|| missing("smtp.host", why))?;
        smtp.from
            .as_ref()
            .ok_or_else(|| missing("smtp.from", why))?;
        if smtp.to.is_empty() {
            return Err(missing("mail.to", why));
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

fn missing(key: &'static str, why: &str) -> ConfigError {
    let env = setting_for(key).map_or("", |s| s.env);
    ConfigError::Missing {
        key,
        env,
        why: why.to_owned(),
    }
}

fn setting_for(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The raw values of every layer, later layers replacing earlier ones.
#[derive(Default)]
struct Layers {
    values: HashMap<&'static str, (String, Origin)>,
}

impl Layers {
    fn set(&mut self, key: &'static str, value: String, origin: Origin) {
        self.values.insert(key, (value, origin));
    }

    fn raw(&self, key: &'static str) -> Option<&(String, Origin)> {
        self.values.get(key).filter(|(v, _)| !v.is_empty())
    }

    fn string(&self, key: &'static str) -> Option<String> {
        self.raw(key).map(|(v, _)| v.clone())
    }

    fn parse<T>(
        &self,
        key: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(key)
            .map(|(value, origin)| {
                f(value).map_err(|reason| ConfigError::Invalid {
                    key,
                    origin: origin.clone(),
                    reason,
                })
            })
            .transpose()
    }

    fn smtp(&self) -> Result<SmtpConfig, ConfigError> {
        let tls = self.parse("smtp.tls", parse_smtp_tls)?;
        let port = self.parse("smtp.port", parse_port)?;
        let (tls, port) = match (tls, port) {
            (Some(t), Some(p)) => (t, p),
            (Some(t), None) => (t, default_smtp_port(t)),
            (None, Some(p)) => (tls_for_port(p), p),
            (None, None) => (SmtpTls::None, 25),
        };
        // Half a login would silently send without authentication, and the relay refuse it.
        for (have, lack) in [
            ("smtp.user", "smtp.password"),
            ("smtp.password", "smtp.user"),
        ] {
            if self.raw(have).is_some() && self.raw(lack).is_none() {
                return Err(missing(
                    lack,
                    &format!("`{have}` is set, and SMTP needs both"),
                ));
            }
        }
        // A login over a plain connection hands the password to anyone on the path: only when
        // the user asked for no TLS in so many words.
        if tls == SmtpTls::None && self.raw("smtp.user").is_some() && self.raw("smtp.tls").is_none()
        {
            return Err(ConfigError::Invalid {
                key: "smtp.tls",
                origin: self.raw("smtp.user").map_or(Origin::Default, |(_, o)| o.clone()),
                reason: format!(
                    "an SMTP user and password would be sent in clear on port {port}: set LIFEBOAT_SMTP_TLS=starttls (port 587) or tls (port 465), or LIFEBOAT_SMTP_TLS=none to send them in clear anyway"
                ),
            });
        }
        let to = self
            .string("mail.to")
            .map(|v| comma_list(&v))
            .unwrap_or_default();
        Ok(SmtpConfig {
            host: self.string("smtp.host"),
            port,
            user: self.string("smtp.user"),
            password: self.string("smtp.password").map(Secret::new),
            from: self.parse("smtp.from", parse_mailbox)?,
            tls,
            ca_file: self.string("smtp.ca-file").map(PathBuf::from),
            to,
        })
    }

    fn build(self, profile: Option<String>, sources: Vec<PathBuf>) -> Result<Config, ConfigError> {
        let url = |schemes: &'static [&'static str]| {
            move |v: &str| parse_url(v, schemes).map(SecretUrl::new)
        };
        let compose_project = match self.string("compose.project") {
            Some(p) => p,
            None => default_compose_project(),
        };
        let backup = self.backup()?;
        Ok(Config {
            profile,
            database: DatabaseConfig {
                url: self.parse("database.url", url(&["postgres", "postgresql"]))?,
                service: self
                    .string("database.service")
                    .unwrap_or_else(|| "postgres".into()),
                container: self.string("database.container"),
                name: self.string("database.name"),
            },
            redis: RedisConfig {
                url: self.parse("redis.url", url(&["redis", "rediss"]))?,
            },
            s3: S3Config {
                endpoint: self.parse("s3.endpoint", |v| parse_url(v, &["http", "https"]))?,
                region: self
                    .string("s3.region")
                    .unwrap_or_else(|| "us-east-1".into()),
                access_key_id: self.string("s3.access-key-id"),
                secret_access_key: self.string("s3.secret-access-key").map(Secret::new),
                bucket: self.parse("s3.bucket", parse_bucket)?,
                prefix: self
                    .parse("s3.prefix", parse_prefix)?
                    .unwrap_or_else(|| "lifeboat/".into()),
                path_style: self.parse("s3.path-style", parse_bool)?.unwrap_or(true),
            },
            smtp: self.smtp()?,
            compose: ComposeConfig {
                project: compose_project,
                files: self
                    .string("compose.file")
                    .map(|v| {
                        v.split(':')
                            .filter(|s| !s.is_empty())
                            .map(PathBuf::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            docker_host: self.string("docker.host"),
            lock_dir: self
                .string("lock.dir")
                .map_or_else(|| crate::lock::default_dir(&backup.dir), PathBuf::from),
            backup,
            restore: RestoreConfig {
                app_services: self.string("restore.app-services").map(|v| {
                    let mut services = comma_list(&v);
                    services.retain(|s| s != "none");
                    services
                }),
                health_timeout: self
                    .parse("restore.health-timeout", |v| parse_count(v, 1))?
                    .unwrap_or(120),
                keep_days: self
                    .parse("restore.keep-days", |v| parse_days(v, 0))?
                    .unwrap_or(7),
                maintenance: self
                    .parse("restore.maintenance", parse_bool)?
                    .unwrap_or(false),
            },
            deploy: self.deploy()?,
            sources,
        })
    }

    fn deploy(&self) -> Result<DeployConfig, ConfigError> {
        let list = |key: &'static str| self.string(key).map(|v| comma_list(&v)).unwrap_or_default();
        Ok(DeployConfig {
            services: list("deploy.services"),
            workers: list("deploy.workers"),
            image: self.string("deploy.image").filter(|s| !s.is_empty()),
            git_repo: self.string("deploy.git-repo").map(PathBuf::from),
            dockerfile: self
                .string("deploy.dockerfile")
                .unwrap_or_else(|| "Dockerfile".into()),
            migrate: self
                .string("deploy.migrate")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            migrate_timeout: self
                .parse("deploy.migrate-timeout", |v| parse_count(v, 1))?
                .unwrap_or(600),
            health_timeout: self
                .parse("deploy.health-timeout", |v| parse_count(v, 1))?
                .unwrap_or(60),
            health_url: self.parse("deploy.health-url", |v| {
                parse_url(v, &["http", "https"]).map(|_| v.to_owned())
            })?,
            proxies: list("deploy.proxies"),
            drain: self
                .parse("deploy.drain", |v| parse_count(v, 0))?
                .unwrap_or(10),
            smoke_spec: self.string("deploy.smoke-spec").map(PathBuf::from),
            backup: self.parse("deploy.backup", parse_bool)?.unwrap_or(true),
            restore_on_failure: self
                .parse("deploy.restore-on-failure", parse_bool)?
                .unwrap_or(false),
            keep_releases: self
                .parse("deploy.keep-releases", |v| parse_count(v, 1))?
                .unwrap_or(5),
            dir: self
                .string("deploy.dir")
                .map_or_else(|| PathBuf::from("./.lifeboat"), PathBuf::from),
            webhook_url: self.parse("deploy.webhook-url", |v| {
                parse_url(v, &["http", "https"]).map(SecretUrl::new)
            })?,
        })
    }
}

impl Layers {
    fn backup(&self) -> Result<BackupConfig, ConfigError> {
        let compress = self
            .parse("backup.compress", parse_compress)?
            .unwrap_or(Compress::Gzip);
        let level = match self.parse("backup.compression-level", |v| parse_level(v, compress))? {
            Some(level) => level,
            None => compress.default_level(),
        };
        let count = |key| {
            self.parse(key, |v| parse_count(v, 0))
                .map(Option::unwrap_or_default)
        };
        Ok(BackupConfig {
            dir: PathBuf::from(
                self.string("backup.dir")
                    .unwrap_or_else(|| "./backups".into()),
            ),
            compress,
            level,
            threads: self
                .parse("backup.threads", |v| parse_count(v, 1))?
                .map_or_else(
                    || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    |n| n as usize,
                ),
            name: self
                .parse("backup.name", parse_backup_name)?
                .unwrap_or_else(|| DEFAULT_BACKUP_NAME.into()),
            all: self.parse("backup.all", parse_bool)?.unwrap_or(false),
            keep: Retention {
                days: self
                    .parse("backup.keep-days", |v| parse_days(v, 1))?
                    .unwrap_or(7),
                daily: count("backup.keep-daily")?,
                weekly: count("backup.keep-weekly")?,
                monthly: count("backup.keep-monthly")?,
                min: self
                    .parse("backup.keep-min", |v| parse_count(v, 1))?
                    .unwrap_or(3),
            },
            metrics_file: self.string("backup.metrics-file").map(PathBuf::from),
            mail: self
                .parse("backup.mail", parse_mail_when)?
                .unwrap_or(MailWhen::Failure),
            ping_url: self
                .parse("backup.ping-url", |v| parse_url(v, &["http", "https"]))?
                .map(SecretUrl::new),
            key: self.string("backup.key").map(Secret::new),
        })
    }
}

/// Read `explicit` (which must exist) or `default` (which may be absent).
fn read_optional(
    explicit: Option<&Path>,
    default: &str,
) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(default), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Variables read by the command line before any file: in `.env` they would be silently ignored.
const CLI_ONLY: &[&str] = &[
    ev::LIFEBOAT_CONFIG,
    ev::LIFEBOAT_ENV_FILE,
    ev::LIFEBOAT_LOG_FORMAT,
    ev::LIFEBOAT_LOG,
];

/// A variable from the environment or `.env`: a setting's variable is applied; an unknown
/// `LIFEBOAT_*` is a typo; anything else belongs to the stack and is none of our business.
fn apply_variable(
    layers: &mut Layers,
    name: &str,
    value: String,
    origin: Origin,
) -> Result<(), ConfigError> {
    if let Some(s) = SETTINGS.iter().find(|s| s.env == name) {
        layers.set(s.key, value, origin);
    } else if matches!(origin, Origin::DotEnv { .. }) && CLI_ONLY.contains(&name) {
        return Err(ConfigError::Invalid {
            key: "environment",
            origin,
            reason: format!(
                "{name} is read before .env: set it in the environment or use its flag"
            ),
        });
    } else if name.starts_with(ev::PREFIX) && !ev::ALL.contains(&name) {
        return Err(ConfigError::UnknownVariable {
            var: name.to_owned(),
            origin,
        });
    }
    Ok(())
}

fn apply_toml(
    layers: &mut Layers,
    path: &Path,
    text: &str,
    profile: Option<(&str, &Origin)>,
) -> Result<(), ConfigError> {
    // The parser's own message quotes the offending line, which may hold a secret: keep only
    // what it says and where.
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        ConfigError::Toml {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            },
        }
    })?;
    let mut flat = BTreeMap::new();
    let mut profiles = BTreeMap::new();
    for (name, value) in &table {
        if name == "profile" {
            let Some(ps) = value.as_table() else {
                return Err(unknown_key(
                    path,
                    "profile",
                    "profiles are tables: [profile.production]",
                ));
            };
            for (pname, pvalue) in ps {
                let mut pflat = BTreeMap::new();
                flatten(path, &format!("profile.{pname}."), "", pvalue, &mut pflat)?;
                profiles.insert(pname.clone(), pflat);
            }
        } else {
            flatten(path, "", name, value, &mut flat)?;
        }
    }
    // A typo in --env must not silently fall back to the top level (production settings for
    // a staging run, or the reverse). A profile with nothing to override is an empty table.
    let chosen = match profile {
        Some((p, origin)) if !profiles.is_empty() => {
            let known: Vec<String> = profiles.keys().cloned().collect();
            profiles.remove(p).ok_or_else(|| ConfigError::Invalid {
                key: "profile",
                origin: origin.clone(),
                reason: format!(
                    "{} has no [profile.{p}] (its profiles: {}); add an empty [profile.{p}] if it needs no overrides",
                    path.display(),
                    known.join(", ")
                ),
            })?
        }
        _ => BTreeMap::new(),
    };
    for (key, value) in flat.into_iter().chain(chosen) {
        let s = setting_for(&key).expect("flatten only yields known keys");
        layers.set(s.key, value, Origin::File(path.to_path_buf()));
    }
    Ok(())
}

/// Flatten `[section] key = value` into `section.key`, rejecting unknown keys and non-scalars.
fn flatten(
    path: &Path,
    shown_prefix: &str,
    name: &str,
    value: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::Table(t) if name.is_empty() => {
            for (section, v) in t {
                flatten(path, shown_prefix, section, v, out)?;
            }
            Ok(())
        }
        toml::Value::Table(t) if !name.contains('.') => {
            for (k, v) in t {
                flatten(path, shown_prefix, &format!("{name}.{k}"), v, out)?;
            }
            Ok(())
        }
        _ => {
            let shown = format!("{shown_prefix}{name}");
            if setting_for(name).is_none() {
                let section = name.split('.').next().unwrap_or(name);
                let known: Vec<&str> = SETTINGS
                    .iter()
                    .filter_map(|s| s.key.strip_prefix(section)?.strip_prefix('.'))
                    .collect();
                let hint = if known.is_empty() {
                    let sections: std::collections::BTreeSet<&str> = SETTINGS
                        .iter()
                        .filter_map(|s| s.key.split('.').next())
                        .collect();
                    format!(
                        "; known sections: {}",
                        sections.into_iter().collect::<Vec<_>>().join(", ")
                    )
                } else {
                    format!("; known keys in [{section}]: {}", known.join(", "))
                };
                return Err(unknown_key(path, &shown, &hint));
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(","))
                    .ok_or_else(|| invalid_toml(path, &shown, "expected a list of strings"))?,
                _ => {
                    return Err(invalid_toml(
                        path,
                        &shown,
                        "expected a string, number or boolean",
                    ))
                }
            };
            out.insert(name.to_owned(), text);
            Ok(())
        }
    }
}

fn unknown_key(path: &Path, key: &str, hint: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_owned(),
        path: path.to_path_buf(),
        hint: hint.to_owned(),
    }
}

fn invalid_toml(path: &Path, key: &str, reason: &str) -> ConfigError {
    ConfigError::Toml {
        path: path.to_path_buf(),
        message: format!("`{key}`: {reason}"),
    }
}

/// One `NAME=value` of a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotEnvVar {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Parse a `.env` file as docker compose reads it: `NAME=value`, optional `export `, `#`
/// comments, single quotes literal, double quotes with `\n`, `\"` and `\\` escapes.
pub fn parse_dotenv(path: &Path, text: &str) -> Result<Vec<DotEnvVar>, ConfigError> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let Some((name, value)) = body.split_once('=') else {
            // The line is not echoed: it may be a secret pasted on its own line.
            return Err(syntax("expected NAME=value".into()));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax(format!("{name:?} is not a variable name")));
        }
        let value = unquote(value.trim()).map_err(|m| syntax(format!("{name}: {m}")))?;
        vars.push(DotEnvVar {
            name: name.to_owned(),
            value,
            line,
        });
    }
    Ok(vars)
}

fn unquote(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single quote")?;
        return Ok(rest[..end].to_owned());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    // Unquoted: an inline comment starts at " #".
    Ok(v.split(" #").next().unwrap_or(v).trim_end().to_owned())
}

fn parse_url(v: &str, schemes: &[&str]) -> Result<String, String> {
    let parsed = url::Url::parse(v).map_err(|e| format!("not a URL ({e})"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "scheme `{}` is not one of {}",
            parsed.scheme(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(v.to_owned())
}

fn parse_port(v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("expected a port number 1-65535, got {v:?}")),
    }
}

/// `true/false`, `yes/no`, `1/0`, `on/off`, as people write them in `.env` files.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn parse_smtp_tls(v: &str) -> Result<SmtpTls, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "none" | "plain" | "off" => Ok(SmtpTls::None),
        "starttls" => Ok(SmtpTls::StartTls),
        "tls" | "ssl" | "smtps" => Ok(SmtpTls::Tls),
        _ => Err(format!("expected none, starttls or tls, got {v:?}")),
    }
}

fn parse_bucket(v: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{v:?} is not a bucket name (3-63 lowercase letters, digits, '-' or '.')"
        ))
    }
}

/// `a, b,,c` → `["a", "b", "c"]`: a comma-separated list, blanks dropped.
fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_count(v: &str, min: u32) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least {min}, got {v:?}"
        )),
    }
}

/// The most days a day count may say: about 270 years, "keep forever" in practice, and far inside
/// the dates chrono can hold (99999999 days would not be).
pub const MAX_DAYS: u32 = 100_000;

fn parse_days(v: &str, min: u32) -> Result<u32, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if n >= u64::from(min) && n <= u64::from(MAX_DAYS) => {
            Ok(u32::try_from(n).unwrap_or(MAX_DAYS))
        }
        _ => Err(format!(
            "expected a number of days from {min} to {MAX_DAYS} (about 270 years: keep forever), got {v:?}"
        )),
    }
}

/// `days` days before `now`, or the earliest date there is: never a panic, whatever the count.
pub fn days_before(now: chrono::DateTime<chrono::Utc>, days: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::TimeDelta::try_days(i64::from(days))
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

fn parse_level(v: &str, compress: Compress) -> Result<u32, String> {
    let max = compress.max_level();
    match v.trim().parse::<u32>() {
        Ok(l) if (1..=max).contains(&l) => Ok(l),
        _ => Err(format!("expected a {compress} level 1-{max}, got {v:?}")),
    }
}

fn parse_compress(v: &str) -> Result<Compress, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "gzip" | "gz" => Ok(Compress::Gzip),
        "zstd" | "zst" => Ok(Compress::Zstd),
        _ => Err(format!("expected gzip or zstd, got {v:?}")),
    }
}

/// A strftime pattern that names one file: no `/`, and it must change every second, or two
/// backups of the same day would fight over one name.
fn parse_backup_name(v: &str) -> Result<String, String> {
    use chrono::format::{Item, StrftimeItems};
    let v = v.trim();
    if v.is_empty() || v.contains('/') || v.starts_with('.') {
        return Err(format!(
            "expected a file name pattern such as {DEFAULT_BACKUP_NAME}, got {v:?}"
        ));
    }
    let items: Vec<Item> = StrftimeItems::new(v).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(format!("{v:?} is not a valid strftime pattern"));
    }
    let probe = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    // What it makes must be a plain file name too: `%D` writes `11/14/23`, `%n` a newline.
    let made = probe.format(v).to_string();
    if made.contains('/') || made.starts_with('.') || made.chars().any(char::is_control) {
        return Err(format!(
            "{v:?} makes names like {made:?}, not a plain file name (no '/', no leading '.', no control characters; `%D` has slashes: use %Y%m%d)"
        ));
    }
    if made.len() > 200 {
        return Err(format!("{v:?} makes names longer than 200 bytes"));
    }
    let later = probe + chrono::Duration::seconds(1);
    if probe.format(v).to_string() == later.format(v).to_string() {
        return Err(format!(
            "{v:?} must name each second apart (use %S, or %s): backups of the same day would share a name"
        ));
    }
    Ok(v.to_owned())
}

/// An object prefix, never empty (that would be the whole bucket), always ending in `/`.
fn parse_prefix(v: &str) -> Result<String, String> {
    let v = v.trim().trim_start_matches('/');
    if v.is_empty() {
        return Err(
            "an empty prefix would be the whole bucket; give one such as `lifeboat/`".into(),
        );
    }
    Ok(if v.ends_with('/') {
        v.to_owned()
    } else {
        format!("{v}/")
    })
}

fn parse_mailbox(v: &str) -> Result<String, String> {
    if v.contains('@') {
        Ok(v.to_owned())
    } else {
        Err(format!("{v:?} is not a mail address"))
    }
}

fn tls_for_port(port: u16) -> SmtpTls {
    match port {
        465 => SmtpTls::Tls,
        587 => SmtpTls::StartTls,
        _ => SmtpTls::None,
    }
}

fn default_smtp_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::Tls => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    }
}

/// Compose's default project name: the current directory's name, lowercased, keeping
/// letters, digits, `-` and `_`.
pub fn default_compose_project() -> String {
    let dir = std::env::current_dir().ok();
    let name = dir
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("default");
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Load from `pairs` alone: no files.
    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(
            &LoadOptions {
                env_file: None,
                ..LoadOptions::default()
            },
            &env(pairs),
        )
    }

    fn opts_in(dir: &Path) -> LoadOptions {
        LoadOptions {
            config_file: Some(dir.join("lifeboat.toml")).filter(|p| p.exists()),
            env_file: Some(dir.join(".env")).filter(|p| p.exists()),
            ..LoadOptions::default()
        }
    }

    #[test]
    fn precedence_is_flags_then_environment_then_dotenv_then_file_then_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[backup]\ndir = \"/from/file\"\n[s3]\nbucket = \"file-bucket\"\nregion = \"eu-file\"\n[smtp]\nhost = \"file-host\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join(".env"),
            "S3_BUCKET=dotenv-bucket\nSMTP_HOST=dotenv-host\n",
        )
        .expect("write");
        let mut opts = opts_in(dir.path());
        opts.overrides.push(Override {
            key: "backup.dir",
            flag: "--dir",
            value: "/from/flag".into(),
        });
        let cfg = Config::load_with_env(
            &opts,
            &env(&[
                ("SMTP_HOST", "env-host"),
                ("LIFEBOAT_BACKUP_DIR", "/from/env"),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.backup.dir, PathBuf::from("/from/flag"));
        assert_eq!(cfg.smtp.host.as_deref(), Some("env-host"));
        assert_eq!(cfg.s3.bucket.as_deref(), Some("dotenv-bucket"));
        assert_eq!(cfg.s3.region, "eu-file");
        assert_eq!(cfg.database.service, "postgres");
    }

    #[test]
    fn the_profile_table_overrides_the_top_level_and_can_come_from_dotenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[s3]\nbucket = \"base-bucket\"\n[profile.production.s3]\nbucket = \"prod-bucket\"\n[profile.staging.s3]\nbucket = \"staging-bucket\"\n",
        )
        .expect("write");
        std::fs::write(dir.path().join(".env"), "LIFEBOAT_ENV=staging\n").expect("write");
        let mut opts = opts_in(dir.path());
        assert_eq!(
            Config::load_with_env(&opts, &env(&[]))
                .expect("load")
                .s3
                .bucket
                .as_deref(),
            Some("staging-bucket")
        );
        opts.profile = Some("production".into());
        let cfg = Config::load_with_env(&opts, &env(&[])).expect("load");
        assert_eq!(cfg.s3.bucket.as_deref(), Some("prod-bucket"));
        assert_eq!(cfg.profile.as_deref(), Some("production"));
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[database]\nuri = \"x\"\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("`database.uri`"), "{err}");
        assert!(err.contains("lifeboat.toml"), "{err}");
        assert!(err.contains("url"), "the hint lists the known keys: {err}");

        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[profile.production.smtp]\nhots = \"x\"\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("`profile.production.smtp.hots`"), "{err}");
    }

    #[test]
    fn an_unknown_lifeboat_variable_is_a_typo_but_other_variables_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err =
            Config::load_with_env(&opts_in(dir.path()), &env(&[("LIFEBOAT_BAKUP_DIR", "/x")]))
                .expect_err("must fail")
                .to_string();
        assert!(err.contains("LIFEBOAT_BAKUP_DIR"), "{err}");
        std::fs::write(
            dir.path().join(".env"),
            "NODE_ENV=production\nLIFEBOAT_MAIL_TOO=a@b.c\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("LIFEBOAT_MAIL_TOO in") && err.contains(".env line 2"),
            "{err}"
        );
    }

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
                ("DATABASE_URL", "mysql://u:hunter2@h/d"),
                ("SMTP_PORT", "25"),
            ]),
        )
        .expect_err("must fail")
        .to_string();
        assert!(err.contains("environment variable DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn an_explicit_file_must_exist_but_the_defaults_are_optional() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = LoadOptions {
            env_file: Some(dir.path().join("nope.env")),
            ..LoadOptions::default()
        };
        let err = Config::load_with_env(&opts, &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("nope.env"), "{err}");
    }

    #[test]
    fn dotenv_follows_compose_quoting() {
        let vars = parse_dotenv(
            Path::new(".env"),
            "export A=1\nB='x # y'\nC=\"a\\nb\"\nD=plain # comment\nE=\n",
        )
        .expect("parse");
        let got: Vec<(&str, &str)> = vars
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", "x # y"),
                ("C", "a\nb"),
                ("D", "plain"),
                ("E", "")
            ]
        );
        let err = parse_dotenv(Path::new(".env"), "OK=1\nnot a line\n")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(".env line 2"), "{err}");
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
    fn a_backup_name_must_make_a_plain_file_name() {
        for bad in ["backup_%D_%S", "b%n%S", ".hidden_%s", "a/b_%S"] {
            let err = parse_backup_name(bad).expect_err(bad);
            assert!(err.contains(bad) || err.contains("file name"), "{err}");
        }
        assert!(parse_backup_name("backup_%Y%m%d_%H%M%S").is_ok());
        assert!(parse_backup_name("app-%s").is_ok());
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
    fn a_profile_missing_from_the_file_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[profile.production.s3]\nbucket = \"prod\"\n[profile.staging]\n",
        )
        .expect("write");
        let mut opts = opts_in(dir.path());
        opts.profile = Some("prodution".into());
        let err = Config::load_with_env(&opts, &env(&[]))
            .expect_err("a typo")
            .to_string();
        assert!(
            err.contains("no [profile.prodution]") && err.contains("production, staging"),
            "{err}"
        );
        opts.profile = Some("staging".into());
        assert_eq!(
            Config::load_with_env(&opts, &env(&[]))
                .expect("an empty profile")
                .s3
                .bucket,
            None
        );
    }

    #[test]
    fn toml_errors_name_the_line_without_quoting_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[smtp]\nhost = \"mail\"\npassword = \"hunter2\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("unterminated")
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::write(dir.path().join(".env"), "OK=1\nhunter2\n").expect("write");
        std::fs::remove_file(dir.path().join("lifeboat.toml")).expect("rm");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("bad line")
            .to_string();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
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

    #[test]
    fn every_setting_variable_is_in_env_vars() {
        for s in SETTINGS {
            assert!(
                ev::ALL.contains(&s.env),
                "{} missing from env_vars::ALL",
                s.env
            );
        }
    }
}
