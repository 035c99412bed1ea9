//! Every environment variable lifeboat reads, as a constant.
//!
//! clap's `env =` and the configuration loader point here, so `--help` shows each variable, and
//! a test checks that README's configuration reference names every one of them.

// The names the stacks already use (seeds 000–003): lifeboat reads them as they are.
pub const DATABASE_URL: &str = "DATABASE_URL";
pub const REDIS_URL: &str = "REDIS_URL";
pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
pub const S3_REGION: &str = "S3_REGION";
pub const S3_ACCESS_KEY_ID: &str = "S3_ACCESS_KEY_ID";
pub const S3_SECRET_ACCESS_KEY: &str = "S3_SECRET_ACCESS_KEY";
pub const S3_BUCKET: &str = "S3_BUCKET";
pub const SMTP_HOST: &str = "SMTP_HOST";
pub const SMTP_PORT: &str = "SMTP_PORT";
pub const SMTP_USER: &str = "SMTP_USER";
pub const SMTP_PASSWORD: &str = "SMTP_PASSWORD";
pub const SMTP_FROM: &str = "SMTP_FROM";
/// Compose's own names for the project and its files.
pub const COMPOSE_PROJECT_NAME: &str = "COMPOSE_PROJECT_NAME";
pub const COMPOSE_FILE: &str = "COMPOSE_FILE";
/// The Docker engine to talk to, as the docker CLI reads it (`unix:///…` or `tcp://host:port`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Turns colour off, whatever the terminal (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

// lifeboat's own settings.
/// The profile (`staging`, `production`) whose `[profile.NAME]` table of lifeboat.toml applies.
pub const LIFEBOAT_ENV: &str = "LIFEBOAT_ENV";
/// The configuration file (default `./lifeboat.toml`, optional).
pub const LIFEBOAT_CONFIG: &str = "LIFEBOAT_CONFIG";
/// The stack's `.env` file (default `./.env`, optional).
pub const LIFEBOAT_ENV_FILE: &str = "LIFEBOAT_ENV_FILE";
/// `human` (default) or `json`.
pub const LIFEBOAT_LOG_FORMAT: &str = "LIFEBOAT_LOG_FORMAT";
/// A tracing filter (`info`, `debug`, `lifeboat=trace`); overrides `-v`/`-q`.
pub const LIFEBOAT_LOG: &str = "LIFEBOAT_LOG";
/// The compose service of the database (default `postgres`).
pub const LIFEBOAT_DB_SERVICE: &str = "LIFEBOAT_DB_SERVICE";
/// A database container by name or id, instead of finding it by compose service.
pub const LIFEBOAT_DB_CONTAINER: &str = "LIFEBOAT_DB_CONTAINER";
/// The database to back up (default: the container's `POSTGRES_DB`, or the URL's database).
pub const LIFEBOAT_DB_NAME: &str = "LIFEBOAT_DB_NAME";
/// `gzip` (default: `.sql.gz`, read by plain `gunzip`) or `zstd` (`.sql.zst`, faster).
pub const LIFEBOAT_BACKUP_COMPRESS: &str = "LIFEBOAT_BACKUP_COMPRESS";
/// Compression level: gzip 1 (fast) to 9 (small), default 6 as gzip; zstd 1 to 19, default 3.
pub const LIFEBOAT_BACKUP_COMPRESSION_LEVEL: &str = "LIFEBOAT_BACKUP_COMPRESSION_LEVEL";
/// Threads that compress (default: the machine's cores).
pub const LIFEBOAT_BACKUP_THREADS: &str = "LIFEBOAT_BACKUP_THREADS";
/// The archive's name as a UTC strftime pattern (default `backup_%Y%m%d_%H%M%S`, seed 001's).
pub const LIFEBOAT_BACKUP_NAME: &str = "LIFEBOAT_BACKUP_NAME";
/// `true`: every database and the roles (`--all`).
pub const LIFEBOAT_BACKUP_ALL: &str = "LIFEBOAT_BACKUP_ALL";
/// Retention (GFS): also keep the newest backup of each of this many recent days.
pub const LIFEBOAT_BACKUP_KEEP_DAILY: &str = "LIFEBOAT_BACKUP_KEEP_DAILY";
/// Retention (GFS): also keep the newest backup of each of this many recent ISO weeks.
pub const LIFEBOAT_BACKUP_KEEP_WEEKLY: &str = "LIFEBOAT_BACKUP_KEEP_WEEKLY";
/// Retention (GFS): also keep the newest backup of each of this many recent months.
pub const LIFEBOAT_BACKUP_KEEP_MONTHLY: &str = "LIFEBOAT_BACKUP_KEEP_MONTHLY";
/// A URL lifeboat-backup calls on start (`/start`), success (the URL) and failure (`/fail`).
pub const LIFEBOAT_BACKUP_PING_URL: &str = "LIFEBOAT_BACKUP_PING_URL";
/// Retention: keep backups younger than this many days (default 7, as seed 001's script).
pub const LIFEBOAT_BACKUP_KEEP_DAYS: &str = "LIFEBOAT_BACKUP_KEEP_DAYS";
/// Retention: never keep fewer than this many backups, however old (default 3).
pub const LIFEBOAT_BACKUP_KEEP_MIN: &str = "LIFEBOAT_BACKUP_KEEP_MIN";
/// A Prometheus textfile (node_exporter's textfile collector) lifeboat-backup writes after each run.
pub const LIFEBOAT_BACKUP_METRICS_FILE: &str = "LIFEBOAT_BACKUP_METRICS_FILE";
/// When lifeboat-backup mails `LIFEBOAT_MAIL_TO`: `failure` (default), `always`, `weekly` (failures, and a digest once a week) or `never`.
pub const LIFEBOAT_BACKUP_MAIL: &str = "LIFEBOAT_BACKUP_MAIL";
/// The key that signs backup manifests (default: the file `<backup dir>/.lifeboat-signing-key`,
/// made at first use); lifeboat-restore trusts an off-site backup only when signed with it.
pub const LIFEBOAT_BACKUP_KEY: &str = "LIFEBOAT_BACKUP_KEY";
/// Where local backups live (default `./backups`).
pub const LIFEBOAT_BACKUP_DIR: &str = "LIFEBOAT_BACKUP_DIR";
/// A prefix for every object lifeboat writes to the bucket (default `lifeboat/`).
pub const LIFEBOAT_S3_PREFIX: &str = "LIFEBOAT_S3_PREFIX";
/// Path-style bucket addressing (default `true`: MinIO needs it, Spaces and AWS accept it).
pub const LIFEBOAT_S3_PATH_STYLE: &str = "LIFEBOAT_S3_PATH_STYLE";
/// `none`, `starttls` or `tls` (default: `tls` on port 465, `starttls` on 587, else `none`).
pub const LIFEBOAT_SMTP_TLS: &str = "LIFEBOAT_SMTP_TLS";
/// A PEM file of extra CA certificates trusted for SMTP (an internal relay's own CA).
pub const LIFEBOAT_SMTP_CA_FILE: &str = "LIFEBOAT_SMTP_CA_FILE";
/// Who gets lifeboat's mails (comma-separated addresses).
pub const LIFEBOAT_MAIL_TO: &str = "LIFEBOAT_MAIL_TO";
/// Where job locks live: a directory of ours that no one else can write (default:
/// `/run/lock/lifeboat` for root, else `$XDG_RUNTIME_DIR/lifeboat` or `<backup dir>/.lifeboat-locks`).
pub const LIFEBOAT_LOCK_DIR: &str = "LIFEBOAT_LOCK_DIR";

/// Every variable above, for the README check and for telling typos from settings.
pub const ALL: &[&str] = &[
    DATABASE_URL,
    REDIS_URL,
    S3_ENDPOINT,
    S3_REGION,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    S3_BUCKET,
    SMTP_HOST,
    SMTP_PORT,
    SMTP_USER,
    SMTP_PASSWORD,
    SMTP_FROM,
    COMPOSE_PROJECT_NAME,
    COMPOSE_FILE,
    DOCKER_HOST,
    NO_COLOR,
    LIFEBOAT_ENV,
    LIFEBOAT_CONFIG,
    LIFEBOAT_ENV_FILE,
    LIFEBOAT_LOG_FORMAT,
    LIFEBOAT_LOG,
    LIFEBOAT_DB_SERVICE,
    LIFEBOAT_DB_CONTAINER,
    LIFEBOAT_BACKUP_DIR,
    LIFEBOAT_DB_NAME,
    LIFEBOAT_BACKUP_COMPRESS,
    LIFEBOAT_BACKUP_COMPRESSION_LEVEL,
    LIFEBOAT_BACKUP_THREADS,
    LIFEBOAT_BACKUP_NAME,
    LIFEBOAT_BACKUP_ALL,
    LIFEBOAT_BACKUP_KEEP_DAILY,
    LIFEBOAT_BACKUP_KEEP_WEEKLY,
    LIFEBOAT_BACKUP_KEEP_MONTHLY,
    LIFEBOAT_BACKUP_PING_URL,
    LIFEBOAT_BACKUP_KEEP_DAYS,
    LIFEBOAT_BACKUP_KEEP_MIN,
    LIFEBOAT_BACKUP_METRICS_FILE,
    LIFEBOAT_BACKUP_MAIL,
    LIFEBOAT_BACKUP_KEY,
    LIFEBOAT_S3_PREFIX,
    LIFEBOAT_S3_PATH_STYLE,
    LIFEBOAT_SMTP_TLS,
    LIFEBOAT_SMTP_CA_FILE,
    LIFEBOAT_MAIL_TO,
    LIFEBOAT_LOCK_DIR,
    LIFEBOAT_RESTORE_APP_SERVICES,
    LIFEBOAT_RESTORE_HEALTH_TIMEOUT,
    LIFEBOAT_RESTORE_KEEP_DAYS,
    LIFEBOAT_RESTORE_MAINTENANCE,
    LIFEBOAT_DEPLOY_SERVICES,
    LIFEBOAT_DEPLOY_WORKERS,
    LIFEBOAT_DEPLOY_IMAGE,
    LIFEBOAT_DEPLOY_GIT_REPO,
    LIFEBOAT_DEPLOY_DOCKERFILE,
    LIFEBOAT_DEPLOY_MIGRATE,
    LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT,
    LIFEBOAT_DEPLOY_HEALTH_TIMEOUT,
    LIFEBOAT_DEPLOY_HEALTH_URL,
    LIFEBOAT_DEPLOY_PROXIES,
    LIFEBOAT_DEPLOY_DRAIN,
    LIFEBOAT_DEPLOY_SMOKE_SPEC,
    LIFEBOAT_DEPLOY_BACKUP,
    LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE,
    LIFEBOAT_DEPLOY_KEEP_RELEASES,
    LIFEBOAT_DEPLOY_DIR,
    LIFEBOAT_DEPLOY_WEBHOOK_URL,
];

/// lifeboat-restore: the compose services stopped during the swap (comma-separated, or `none`).
pub const LIFEBOAT_RESTORE_APP_SERVICES: &str = "LIFEBOAT_RESTORE_APP_SERVICES";
/// lifeboat-restore: seconds the app has to become healthy before the restore is undone.
pub const LIFEBOAT_RESTORE_HEALTH_TIMEOUT: &str = "LIFEBOAT_RESTORE_HEALTH_TIMEOUT";
/// lifeboat-restore: days pre-restore databases are kept.
pub const LIFEBOAT_RESTORE_KEEP_DAYS: &str = "LIFEBOAT_RESTORE_KEEP_DAYS";
/// lifeboat-restore: while the app is down, the proxy in front answers 503 with Retry-After.
pub const LIFEBOAT_RESTORE_MAINTENANCE: &str = "LIFEBOAT_RESTORE_MAINTENANCE";

/// lifeboat-deploy: the compose services that serve the app, comma-separated (switched first, health-gated).
pub const LIFEBOAT_DEPLOY_SERVICES: &str = "LIFEBOAT_DEPLOY_SERVICES";
/// lifeboat-deploy: the compose services that run the app's workers, comma-separated (switched after the services).
pub const LIFEBOAT_DEPLOY_WORKERS: &str = "LIFEBOAT_DEPLOY_WORKERS";
/// lifeboat-deploy: the image repository of the app's releases (default: the running service's).
pub const LIFEBOAT_DEPLOY_IMAGE: &str = "LIFEBOAT_DEPLOY_IMAGE";
/// lifeboat-deploy: the app's git repository, to build a VERSION that is a tag or commit.
pub const LIFEBOAT_DEPLOY_GIT_REPO: &str = "LIFEBOAT_DEPLOY_GIT_REPO";
/// lifeboat-deploy: the Dockerfile inside the repository.
pub const LIFEBOAT_DEPLOY_DOCKERFILE: &str = "LIFEBOAT_DEPLOY_DOCKERFILE";
/// lifeboat-deploy: the migration command, run in a one-off container of the new image.
pub const LIFEBOAT_DEPLOY_MIGRATE: &str = "LIFEBOAT_DEPLOY_MIGRATE";
/// lifeboat-deploy: seconds the migration command may take.
pub const LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT: &str = "LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT";
/// lifeboat-deploy: seconds a new container has to become healthy.
pub const LIFEBOAT_DEPLOY_HEALTH_TIMEOUT: &str = "LIFEBOAT_DEPLOY_HEALTH_TIMEOUT";
/// lifeboat-deploy: a URL checked by lifeboat-healthcheck after Docker's health check.
pub const LIFEBOAT_DEPLOY_HEALTH_URL: &str = "LIFEBOAT_DEPLOY_HEALTH_URL";
/// lifeboat-deploy: the compose services of the reverse proxies in front of the app (`none`: none; default: discovered).
pub const LIFEBOAT_DEPLOY_PROXIES: &str = "LIFEBOAT_DEPLOY_PROXIES";
/// lifeboat-deploy: the most seconds an old container behind a proxy is given to finish its requests.
pub const LIFEBOAT_DEPLOY_DRAIN: &str = "LIFEBOAT_DEPLOY_DRAIN";
/// lifeboat-deploy: the smoke.toml run after the switch.
pub const LIFEBOAT_DEPLOY_SMOKE_SPEC: &str = "LIFEBOAT_DEPLOY_SMOKE_SPEC";
/// lifeboat-deploy: take a backup before deploying.
pub const LIFEBOAT_DEPLOY_BACKUP: &str = "LIFEBOAT_DEPLOY_BACKUP";
/// lifeboat-deploy: restore the pre-deploy backup when a deploy whose migrations ran is rolled back.
pub const LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE: &str = "LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE";
/// lifeboat-deploy: the releases whose images are kept for rollbacks.
pub const LIFEBOAT_DEPLOY_KEEP_RELEASES: &str = "LIFEBOAT_DEPLOY_KEEP_RELEASES";
/// lifeboat-deploy: the directory of the history and the journal.
pub const LIFEBOAT_DEPLOY_DIR: &str = "LIFEBOAT_DEPLOY_DIR";
/// lifeboat-deploy: a URL that receives each deploy's and rollback's result as JSON.
pub const LIFEBOAT_DEPLOY_WEBHOOK_URL: &str = "LIFEBOAT_DEPLOY_WEBHOOK_URL";

/// The prefix of lifeboat's own variables: an unknown one is a typo and an error.
pub const PREFIX: &str = "LIFEBOAT_";
