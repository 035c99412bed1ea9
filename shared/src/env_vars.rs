//! Every environment variable lifeboat reads, as a constant.
//!
//! The names are written once, in the settings table ([`crate::config::settings`]); these
//! constants are its variables by name, for clap's `env =`, for code that reads a variable
//! itself, and for the check that the configuration reference names every one of them.

use crate::config::settings as s;

pub const DATABASE_URL: &str = s::DATABASE_URL.var;
pub const LIFEBOAT_DB_SERVICE: &str = s::LIFEBOAT_DB_SERVICE.var;
pub const LIFEBOAT_DB_CONTAINER: &str = s::LIFEBOAT_DB_CONTAINER.var;
pub const LIFEBOAT_DB_NAME: &str = s::LIFEBOAT_DB_NAME.var;
pub const PGSSLMODE: &str = s::PGSSLMODE.var;
pub const PGSSLROOTCERT: &str = s::PGSSLROOTCERT.var;
pub const REDIS_URL: &str = s::REDIS_URL.var;
pub const S3_ENDPOINT: &str = s::S3_ENDPOINT.var;
pub const S3_REGION: &str = s::S3_REGION.var;
pub const S3_ACCESS_KEY_ID: &str = s::S3_ACCESS_KEY_ID.var;
pub const S3_SECRET_ACCESS_KEY: &str = s::S3_SECRET_ACCESS_KEY.var;
pub const S3_BUCKET: &str = s::S3_BUCKET.var;
pub const LIFEBOAT_S3_PREFIX: &str = s::LIFEBOAT_S3_PREFIX.var;
pub const LIFEBOAT_S3_PATH_STYLE: &str = s::LIFEBOAT_S3_PATH_STYLE.var;
pub const SMTP_HOST: &str = s::SMTP_HOST.var;
pub const SMTP_PORT: &str = s::SMTP_PORT.var;
pub const SMTP_USER: &str = s::SMTP_USER.var;
pub const SMTP_PASSWORD: &str = s::SMTP_PASSWORD.var;
pub const SMTP_FROM: &str = s::SMTP_FROM.var;
pub const LIFEBOAT_SMTP_TLS: &str = s::LIFEBOAT_SMTP_TLS.var;
pub const LIFEBOAT_SMTP_CA_FILE: &str = s::LIFEBOAT_SMTP_CA_FILE.var;
pub const LIFEBOAT_MAIL_TO: &str = s::LIFEBOAT_MAIL_TO.var;
pub const COMPOSE_PROJECT_NAME: &str = s::COMPOSE_PROJECT_NAME.var;
pub const COMPOSE_FILE: &str = s::COMPOSE_FILE.var;
pub const DOCKER_HOST: &str = s::DOCKER_HOST.var;
pub const LIFEBOAT_ENGINE: &str = s::LIFEBOAT_ENGINE.var;
pub const LIFEBOAT_STACK: &str = s::LIFEBOAT_STACK.var;
pub const LIFEBOAT_SWARM_ONEOFF: &str = s::LIFEBOAT_SWARM_ONEOFF.var;
pub const LIFEBOAT_BACKUP_DIR: &str = s::LIFEBOAT_BACKUP_DIR.var;
pub const LIFEBOAT_BACKUP_COMPRESS: &str = s::LIFEBOAT_BACKUP_COMPRESS.var;
pub const LIFEBOAT_BACKUP_COMPRESSION_LEVEL: &str = s::LIFEBOAT_BACKUP_COMPRESSION_LEVEL.var;
pub const LIFEBOAT_BACKUP_THREADS: &str = s::LIFEBOAT_BACKUP_THREADS.var;
pub const LIFEBOAT_BACKUP_NAME: &str = s::LIFEBOAT_BACKUP_NAME.var;
pub const LIFEBOAT_BACKUP_ALL: &str = s::LIFEBOAT_BACKUP_ALL.var;
pub const LIFEBOAT_BACKUP_KEEP_DAYS: &str = s::LIFEBOAT_BACKUP_KEEP_DAYS.var;
pub const LIFEBOAT_BACKUP_KEEP_DAILY: &str = s::LIFEBOAT_BACKUP_KEEP_DAILY.var;
pub const LIFEBOAT_BACKUP_KEEP_WEEKLY: &str = s::LIFEBOAT_BACKUP_KEEP_WEEKLY.var;
pub const LIFEBOAT_BACKUP_KEEP_MONTHLY: &str = s::LIFEBOAT_BACKUP_KEEP_MONTHLY.var;
pub const LIFEBOAT_BACKUP_KEEP_MIN: &str = s::LIFEBOAT_BACKUP_KEEP_MIN.var;
pub const LIFEBOAT_BACKUP_MAIL: &str = s::LIFEBOAT_BACKUP_MAIL.var;
pub const LIFEBOAT_BACKUP_PING_URL: &str = s::LIFEBOAT_BACKUP_PING_URL.var;
pub const LIFEBOAT_BACKUP_KEY: &str = s::LIFEBOAT_BACKUP_KEY.var;
pub const LIFEBOAT_BACKUP_METRICS_FILE: &str = s::LIFEBOAT_BACKUP_METRICS_FILE.var;
pub const LIFEBOAT_LOCK_DIR: &str = s::LIFEBOAT_LOCK_DIR.var;
pub const LIFEBOAT_RESTORE_APP_SERVICES: &str = s::LIFEBOAT_RESTORE_APP_SERVICES.var;
pub const LIFEBOAT_RESTORE_HEALTH_TIMEOUT: &str = s::LIFEBOAT_RESTORE_HEALTH_TIMEOUT.var;
pub const LIFEBOAT_RESTORE_MAINTENANCE: &str = s::LIFEBOAT_RESTORE_MAINTENANCE.var;
pub const LIFEBOAT_RESTORE_JOBS: &str = s::LIFEBOAT_RESTORE_JOBS.var;
pub const LIFEBOAT_RESTORE_KEEP_DAYS: &str = s::LIFEBOAT_RESTORE_KEEP_DAYS.var;
pub const LIFEBOAT_DEPLOY_SERVICES: &str = s::LIFEBOAT_DEPLOY_SERVICES.var;
pub const LIFEBOAT_DEPLOY_WORKERS: &str = s::LIFEBOAT_DEPLOY_WORKERS.var;
pub const LIFEBOAT_DEPLOY_IMAGE: &str = s::LIFEBOAT_DEPLOY_IMAGE.var;
pub const LIFEBOAT_DEPLOY_REGISTRY: &str = s::LIFEBOAT_DEPLOY_REGISTRY.var;
pub const LIFEBOAT_DEPLOY_GIT_REPO: &str = s::LIFEBOAT_DEPLOY_GIT_REPO.var;
pub const LIFEBOAT_DEPLOY_DOCKERFILE: &str = s::LIFEBOAT_DEPLOY_DOCKERFILE.var;
pub const LIFEBOAT_DEPLOY_MIGRATE: &str = s::LIFEBOAT_DEPLOY_MIGRATE.var;
pub const LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT: &str = s::LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT.var;
pub const LIFEBOAT_DEPLOY_HEALTH_TIMEOUT: &str = s::LIFEBOAT_DEPLOY_HEALTH_TIMEOUT.var;
pub const LIFEBOAT_DEPLOY_HEALTH_URL: &str = s::LIFEBOAT_DEPLOY_HEALTH_URL.var;
pub const LIFEBOAT_DEPLOY_PROXIES: &str = s::LIFEBOAT_DEPLOY_PROXIES.var;
pub const LIFEBOAT_DEPLOY_DRAIN: &str = s::LIFEBOAT_DEPLOY_DRAIN.var;
pub const LIFEBOAT_DEPLOY_SMOKE_SPEC: &str = s::LIFEBOAT_DEPLOY_SMOKE_SPEC.var;
pub const LIFEBOAT_DEPLOY_BACKUP: &str = s::LIFEBOAT_DEPLOY_BACKUP.var;
pub const LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE: &str = s::LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE.var;
pub const LIFEBOAT_DEPLOY_KEEP_RELEASES: &str = s::LIFEBOAT_DEPLOY_KEEP_RELEASES.var;
pub const LIFEBOAT_DEPLOY_DIR: &str = s::LIFEBOAT_DEPLOY_DIR.var;
pub const LIFEBOAT_DEPLOY_WEBHOOK_URL: &str = s::LIFEBOAT_DEPLOY_WEBHOOK_URL.var;
pub const HEALTHCHECK_URL: &str = s::HEALTHCHECK_URL.var;
pub const PORT: &str = s::PORT.var;
pub const HEALTHCHECK_TIMEOUT: &str = s::HEALTHCHECK_TIMEOUT.var;
pub const HEALTHCHECK_EXPECT_STATUS: &str = s::HEALTHCHECK_EXPECT_STATUS.var;
pub const HEALTHCHECK_EXPECT_BODY: &str = s::HEALTHCHECK_EXPECT_BODY.var;
pub const HEALTHCHECK_EXPECT_JSON: &str = s::HEALTHCHECK_EXPECT_JSON.var;
pub const HEALTHCHECK_HEADER: &str = s::HEALTHCHECK_HEADER.var;
pub const HEALTHCHECK_CERT_MIN_DAYS: &str = s::HEALTHCHECK_CERT_MIN_DAYS.var;
pub const HEALTHCHECK_INSECURE: &str = s::HEALTHCHECK_INSECURE.var;
pub const HEALTHCHECK_FOLLOW_REDIRECTS: &str = s::HEALTHCHECK_FOLLOW_REDIRECTS.var;
pub const HEALTHCHECK_HEAD: &str = s::HEALTHCHECK_HEAD.var;
pub const HEALTHCHECK_LISTEN: &str = s::HEALTHCHECK_LISTEN.var;
pub const LIFEBOAT_CONFIG: &str = s::LIFEBOAT_CONFIG.var;
pub const LIFEBOAT_ENV_FILE: &str = s::LIFEBOAT_ENV_FILE.var;
pub const LIFEBOAT_ENV: &str = s::LIFEBOAT_ENV.var;
pub const LIFEBOAT_LOG_FORMAT: &str = s::LIFEBOAT_LOG_FORMAT.var;
pub const LIFEBOAT_LOG: &str = s::LIFEBOAT_LOG.var;
pub const NO_COLOR: &str = s::NO_COLOR.var;

/// Every variable of the table, for the reference check and for telling typos from settings.
pub const ALL: &[&str] = s::VARIABLES;

/// The prefix of lifeboat's own variables: an unknown one is a typo and an error.
pub const PREFIX: &str = "LIFEBOAT_";
