//! The settings table: the one place a setting's variable, `lifeboat.toml` key, default, kind
//! and meaning are written.
//!
//! The loader reads its keys, variables and defaults from here, clap's help points at these
//! constants, `env_vars` names them, and `docs/configuration.md` is generated from this table
//! (`scripts/config-reference`), as uv's `env_vars.rs` is the source of its environment
//! reference. Variables that are no `lifeboat.toml` key (logging, the command line's own,
//! lifeboat-healthcheck's, libpq's) are here too, without a key, so that the reference names
//! every variable lifeboat reads.

/// The part of the reference a setting is listed in, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Database,
    Redis,
    S3,
    Smtp,
    Mail,
    Compose,
    Docker,
    Backup,
    Lock,
    Restore,
    Deploy,
    Healthcheck,
    CommandLine,
}

impl Section {
    /// Every section, in the reference's order.
    pub const ALL: &'static [Section] = &[
        Section::Database,
        Section::Redis,
        Section::S3,
        Section::Smtp,
        Section::Mail,
        Section::Compose,
        Section::Docker,
        Section::Backup,
        Section::Lock,
        Section::Restore,
        Section::Deploy,
        Section::Healthcheck,
        Section::CommandLine,
    ];

    /// The section's heading in the reference.
    pub const fn title(self) -> &'static str {
        match self {
            Section::Database => "Database",
            Section::Redis => "Redis",
            Section::S3 => "S3 (the off-site copy)",
            Section::Smtp => "SMTP",
            Section::Mail => "Mail",
            Section::Compose => "Compose",
            Section::Docker => "Docker",
            Section::Backup => "Backup",
            Section::Lock => "Locks",
            Section::Restore => "Restore",
            Section::Deploy => "Deploy and rollback",
            Section::Healthcheck => "lifeboat-healthcheck",
            Section::CommandLine => "Command line and output",
        }
    }
}

/// What a setting's value is, as the reference shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text (a name, a command).
    Text,
    /// `true/false`, `yes/no`, `1/0`, `on/off`.
    Bool,
    /// A whole number.
    Number,
    /// A whole number of seconds.
    Seconds,
    /// A whole number of days.
    Days,
    /// A TCP port.
    Port,
    /// A URL.
    Url,
    /// A file or directory.
    Path,
    /// One of a few words.
    Choice,
    /// Comma-separated names (a list of strings in lifeboat.toml).
    List,
    /// A duration such as `5s` or `500ms`.
    Duration,
    /// A decimal fraction such as `0.5`.
    Ratio,
    /// A cron expression such as `0 2 * * *`.
    Cron,
}

impl Kind {
    /// The kind's name in the reference.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Bool => "bool",
            Kind::Number => "number",
            Kind::Seconds => "seconds",
            Kind::Days => "days",
            Kind::Port => "port",
            Kind::Url => "url",
            Kind::Path => "path",
            Kind::Choice => "choice",
            Kind::List => "list",
            Kind::Duration => "duration",
            Kind::Ratio => "ratio",
            Kind::Cron => "cron",
        }
    }
}

/// One setting: its environment variable, its key in `lifeboat.toml` (when it has one), its
/// default, its kind and its meaning.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The key in `lifeboat.toml` (`section.name`); `None` for a variable that is no key.
    pub key: Option<&'static str>,
    /// The environment variable (also read from `.env` when it has a key).
    pub var: &'static str,
    pub section: Section,
    pub kind: Kind,
    /// The value used when none is given, as it would be written.
    pub default: Option<&'static str>,
    /// What applies when none is given, when that is not one value (the machine's cores).
    pub default_doc: Option<&'static str>,
    /// Never printed: shown as `***`.
    pub secret: bool,
    /// What it means, in one line.
    pub doc: &'static str,
}

impl Setting {
    /// A `lifeboat.toml` key and its variable.
    const fn key(
        section: Section,
        key: &'static str,
        var: &'static str,
        kind: Kind,
        doc: &'static str,
    ) -> Self {
        Self {
            key: Some(key),
            var,
            section,
            kind,
            default: None,
            default_doc: None,
            secret: false,
            doc,
        }
    }

    /// A variable that is no `lifeboat.toml` key.
    const fn var(section: Section, var: &'static str, kind: Kind, doc: &'static str) -> Self {
        Self {
            key: None,
            var,
            section,
            kind,
            default: None,
            default_doc: None,
            secret: false,
            doc,
        }
    }

    const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    const fn computed(mut self, doc: &'static str) -> Self {
        self.default_doc = Some(doc);
        self
    }

    const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The name errors and layers use: the key, else the variable.
    pub const fn name(&self) -> &'static str {
        match self.key {
            Some(key) => key,
            None => self.var,
        }
    }

    /// The default as text for `--help` and the reference: the value, or what applies.
    pub const fn default_text(&self) -> Option<&'static str> {
        match self.default {
            Some(value) => Some(value),
            None => self.default_doc,
        }
    }
}

use Kind as K;
use Section as S;

/// The configuration file read when present (`--config` names another).
pub const DEFAULT_CONFIG_FILE: &str = "lifeboat.toml";
/// The stack's environment file read when present (`--env-file` names another).
pub const DEFAULT_ENV_FILE: &str = ".env";
/// The smoke spec lifeboat-smoke reads, and lifeboat-deploy runs when present.
pub const DEFAULT_SMOKE_SPEC: &str = "smoke.toml";
/// The log format on stderr when none is asked for.
pub const DEFAULT_LOG_FORMAT: &str = "human";
/// The default name of a backup: `backup-db.sh`'s `backup_YYYYMMDD_HHMMSS`, in UTC.
pub const DEFAULT_BACKUP_NAME: &str = "backup_%Y%m%d_%H%M%S";

// Database.
pub const DATABASE_URL: Setting = Setting::key(S::Database, "database.url", "DATABASE_URL", K::Url, "PostgreSQL URL; when set, lifeboat connects directly (managed PostgreSQL) instead of through the database container. `sslmode` (else `PGSSLMODE`) as libpq: `disable`, `prefer` (default), `require` (encrypted; the chain is checked only when a root certificate is there), `verify-ca` (the chain, not the host name), `verify-full` (the chain and the host name). The root certificate is `sslrootcert=FILE`, else `PGSSLROOTCERT`, else `~/.postgresql/root.crt`; `sslrootcert=system` means the public roots; `verify-ca`/`verify-full` with none is refused. The local `pg_dump`/`psql` of `--url` get the same mode and root certificate. A `mysql://` URL (MySQL, MariaDB, TiDB; TLS by `ssl-mode`, `ssl={\"rejectUnauthorized\":true}` or `sslaccept`, roots by `ssl-ca`) is backed up with the local `mysqldump` and checked by lifeboat-smoke's `mysql` kind; lifeboat-restore does not restore MySQL yet").secret();
pub const LIFEBOAT_DB_SERVICE: Setting = Setting::key(
    S::Database,
    "database.service",
    "LIFEBOAT_DB_SERVICE",
    K::Text,
    "compose service of the database container",
)
.default("postgres");
pub const LIFEBOAT_DB_CONTAINER: Setting = Setting::key(
    S::Database,
    "database.container",
    "LIFEBOAT_DB_CONTAINER",
    K::Text,
    "database container by name or id, instead of the compose service",
);
pub const LIFEBOAT_DB_NAME: Setting = Setting::key(
    S::Database,
    "database.name",
    "LIFEBOAT_DB_NAME",
    K::Text,
    "the database lifeboat-backup dumps and lifeboat-restore restores into",
)
.computed("the container's POSTGRES_DB, or the URL's");
pub const PGSSLMODE: Setting = Setting::var(S::Database, "PGSSLMODE", K::Choice, "libpq's variable: the `sslmode` of a `DATABASE_URL` (and of lifeboat-healthcheck's `postgres://` target) that has none").computed("prefer");
pub const PGSSLROOTCERT: Setting = Setting::var(
    S::Database,
    "PGSSLROOTCERT",
    K::Path,
    "libpq's variable: the root certificate when the URL has no `sslrootcert`",
)
.computed("~/.postgresql/root.crt when present");

// Redis.
pub const REDIS_URL: Setting = Setting::key(
    S::Redis,
    "redis.url",
    "REDIS_URL",
    K::Url,
    "Redis URL (`redis://` or `rediss://`)",
)
.secret();

// S3.
pub const S3_ENDPOINT: Setting = Setting::key(S::S3, "s3.endpoint", "S3_ENDPOINT", K::Url, "S3-compatible endpoint URL: MinIO (`http://minio:9000`), Spaces (`https://fra1.digitaloceanspaces.com`)").computed("AWS");
pub const S3_REGION: Setting =
    Setting::key(S::S3, "s3.region", "S3_REGION", K::Text, "region").default("us-east-1");
pub const S3_ACCESS_KEY_ID: Setting = Setting::key(
    S::S3,
    "s3.access-key-id",
    "S3_ACCESS_KEY_ID",
    K::Text,
    "access key id",
);
pub const S3_SECRET_ACCESS_KEY: Setting = Setting::key(
    S::S3,
    "s3.secret-access-key",
    "S3_SECRET_ACCESS_KEY",
    K::Text,
    "secret access key (never printed)",
)
.secret();
pub const S3_BUCKET: Setting = Setting::key(S::S3, "s3.bucket", "S3_BUCKET", K::Text, "bucket");
pub const LIFEBOAT_S3_PREFIX: Setting = Setting::key(
    S::S3,
    "s3.prefix",
    "LIFEBOAT_S3_PREFIX",
    K::Text,
    "every object lifeboat writes lives under this prefix, and it touches no other",
)
.default("lifeboat/");
pub const LIFEBOAT_S3_PATH_STYLE: Setting = Setting::key(
    S::S3,
    "s3.path-style",
    "LIFEBOAT_S3_PATH_STYLE",
    K::Bool,
    "path-style addressing (MinIO needs it; Spaces and AWS accept it)",
)
.default("true");

// SMTP.
pub const SMTP_HOST: Setting =
    Setting::key(S::Smtp, "smtp.host", "SMTP_HOST", K::Text, "SMTP server");
pub const SMTP_PORT: Setting =
    Setting::key(S::Smtp, "smtp.port", "SMTP_PORT", K::Port, "SMTP port")
        .computed("by TLS mode: 465 `tls`, 587 `starttls`, else 25");
pub const SMTP_USER: Setting =
    Setting::key(S::Smtp, "smtp.user", "SMTP_USER", K::Text, "SMTP user");
pub const SMTP_PASSWORD: Setting = Setting::key(
    S::Smtp,
    "smtp.password",
    "SMTP_PASSWORD",
    K::Text,
    "SMTP password (never printed)",
)
.secret();
pub const SMTP_FROM: Setting =
    Setting::key(S::Smtp, "smtp.from", "SMTP_FROM", K::Text, "sender address");
pub const LIFEBOAT_SMTP_TLS: Setting = Setting::key(S::Smtp, "smtp.tls", "LIFEBOAT_SMTP_TLS", K::Choice, "`none`, `starttls` (required, not opportunistic) or `tls`. With `smtp.user` set and no TLS by port or setting, the run is refused (exit 2): a login goes in clear only with `none` written explicitly").computed("by port: 465 `tls`, 587 `starttls`, else `none`");
pub const LIFEBOAT_SMTP_CA_FILE: Setting = Setting::key(
    S::Smtp,
    "smtp.ca-file",
    "LIFEBOAT_SMTP_CA_FILE",
    K::Path,
    "PEM file of extra CA certificates trusted for SMTP (an internal relay's own CA)",
);

// Mail.
pub const LIFEBOAT_MAIL_TO: Setting = Setting::key(
    S::Mail,
    "mail.to",
    "LIFEBOAT_MAIL_TO",
    K::List,
    "recipients of lifeboat's mails, comma-separated (a list in lifeboat.toml)",
);

// Compose and Docker.
pub const COMPOSE_PROJECT_NAME: Setting = Setting::key(
    S::Compose,
    "compose.project",
    "COMPOSE_PROJECT_NAME",
    K::Text,
    "compose project whose containers lifeboat finds by their `com.docker.compose.*` labels",
)
.computed("the current directory's name, as compose does");
pub const COMPOSE_FILE: Setting = Setting::key(
    S::Compose,
    "compose.file",
    "COMPOSE_FILE",
    K::Path,
    "compose file(s), separated by `:`",
);
pub const LIFEBOAT_ENGINE: Setting = Setting::key(S::Docker, "docker.engine", "LIFEBOAT_ENGINE", K::Choice, "what lifeboat drives: `compose` (the containers of a compose project), `swarm` (the services of a `docker stack`), or `auto`: compose when the project has containers, else the Swarm stack of that name when this engine is in a swarm").default("auto");
pub const LIFEBOAT_STACK: Setting = Setting::key(
    S::Docker,
    "docker.stack",
    "LIFEBOAT_STACK",
    K::Text,
    "Swarm stack whose services lifeboat finds by their `com.docker.stack.namespace` label",
)
.computed("the compose project's name");
pub const LIFEBOAT_SWARM_ONEOFF: Setting = Setting::key(S::Docker, "docker.swarm-oneoff", "LIFEBOAT_SWARM_ONEOFF", K::Bool, "on Swarm, run pg_dump and psql in a one-off container of the database service's image on the stack's network, as for a database task on another node, even when its task runs on this node").default("false");
pub const DOCKER_HOST: Setting = Setting::key(
    S::Docker,
    "docker.host",
    "DOCKER_HOST",
    K::Url,
    "Docker engine: `unix:///var/run/docker.sock` or `tcp://host:2375`",
)
.computed("the local socket");

// Backup.
pub const LIFEBOAT_BACKUP_DIR: Setting = Setting::key(
    S::Backup,
    "backup.dir",
    "LIFEBOAT_BACKUP_DIR",
    K::Path,
    "directory of local backups (created 0700; backups are 0600); flag `--dir`",
)
.default("./backups");
pub const LIFEBOAT_BACKUP_COMPRESS: Setting = Setting::key(S::Backup, "backup.compress", "LIFEBOAT_BACKUP_COMPRESS", K::Choice, "`gzip` (`.sql.gz`, read by plain `gunzip`) or `zstd` (`.sql.zst`, several times faster); flag `--compress`").default("gzip");
pub const LIFEBOAT_BACKUP_COMPRESSION_LEVEL: Setting = Setting::key(
    S::Backup,
    "backup.compression-level",
    "LIFEBOAT_BACKUP_COMPRESSION_LEVEL",
    K::Number,
    "gzip 1 (fast) to 9 (small); zstd 1 to 19",
)
.computed("`6` for gzip, `3` for zstd");
pub const LIFEBOAT_BACKUP_THREADS: Setting = Setting::key(
    S::Backup,
    "backup.threads",
    "LIFEBOAT_BACKUP_THREADS",
    K::Number,
    "threads that compress",
)
.computed("the machine's cores");
pub const LIFEBOAT_BACKUP_NAME: Setting = Setting::key(S::Backup, "backup.name", "LIFEBOAT_BACKUP_NAME", K::Text, "the archive's name before its extension, a strftime pattern in UTC; it must change every second").default(DEFAULT_BACKUP_NAME);
pub const LIFEBOAT_BACKUP_ALL: Setting = Setting::key(
    S::Backup,
    "backup.all",
    "LIFEBOAT_BACKUP_ALL",
    K::Bool,
    "every database and the roles, with `pg_dumpall`, in one archive; flag `--all`",
)
.default("false");
pub const LIFEBOAT_BACKUP_KEEP_DAYS: Setting = Setting::key(
    S::Backup,
    "backup.keep-days",
    "LIFEBOAT_BACKUP_KEEP_DAYS",
    K::Days,
    "retention: keep backups younger than this many days (`backup-db.sh`'s 7)",
)
.default("7");
pub const LIFEBOAT_BACKUP_KEEP_DAILY: Setting = Setting::key(
    S::Backup,
    "backup.keep-daily",
    "LIFEBOAT_BACKUP_KEEP_DAILY",
    K::Number,
    "retention (GFS): also keep the newest backup of each of the last this-many days that have one",
)
.default("0");
pub const LIFEBOAT_BACKUP_KEEP_WEEKLY: Setting = Setting::key(
    S::Backup,
    "backup.keep-weekly",
    "LIFEBOAT_BACKUP_KEEP_WEEKLY",
    K::Number,
    "retention (GFS): the same per ISO week",
)
.default("0");
pub const LIFEBOAT_BACKUP_KEEP_MONTHLY: Setting = Setting::key(
    S::Backup,
    "backup.keep-monthly",
    "LIFEBOAT_BACKUP_KEEP_MONTHLY",
    K::Number,
    "retention (GFS): the same per month",
)
.default("0");
pub const LIFEBOAT_BACKUP_KEEP_MIN: Setting = Setting::key(
    S::Backup,
    "backup.keep-min",
    "LIFEBOAT_BACKUP_KEEP_MIN",
    K::Number,
    "retention: never fewer backups than this, however old; the newest is always kept",
)
.default("3");
pub const LIFEBOAT_BACKUP_MAIL: Setting = Setting::key(S::Backup, "backup.mail", "LIFEBOAT_BACKUP_MAIL", K::Choice, "when lifeboat-backup mails `LIFEBOAT_MAIL_TO`: `failure`, `always` (every run), `weekly` (failures, and a digest of the backups once a week) or `never`; nothing is sent unless `SMTP_HOST` and `LIFEBOAT_MAIL_TO` are both set").default("failure");
pub const LIFEBOAT_BACKUP_PING_URL: Setting = Setting::key(S::Backup, "backup.ping-url", "LIFEBOAT_BACKUP_PING_URL", K::Url, "dead-man switch (healthchecks.io's convention): `GET <url>/start` when a run starts, `POST <url>` on success, `POST <url>/fail` on failure; shown only as its scheme and host (the path is the check's token)").secret();
pub const LIFEBOAT_BACKUP_KEY: Setting = Setting::key(S::Backup, "backup.key", "LIFEBOAT_BACKUP_KEY", K::Text, "the key (16 characters at least) whose HMAC-SHA256 signs every manifest; lifeboat-restore trusts a backup in the bucket only when signed with it").computed("the file `<backup dir>/.lifeboat-signing-key`, made at first use (0600)").secret();
pub const LIFEBOAT_BACKUP_RECIPIENTS: Setting = Setting::key(S::Backup, "backup.recipients", "LIFEBOAT_BACKUP_RECIPIENTS", K::List, "encrypt every new archive with age to these public keys (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`), comma-separated, or the path of a file of them, one per line; the backup host needs no secret key, and nothing unencrypted is ever written");
pub const LIFEBOAT_BACKUP_PASSPHRASE: Setting = Setting::key(S::Backup, "backup.passphrase", "LIFEBOAT_BACKUP_PASSPHRASE", K::Text, "encrypt every new archive with age to this passphrase instead of public keys (not both); the same passphrase decrypts them").secret();
pub const LIFEBOAT_BACKUP_IDENTITY: Setting = Setting::key(S::Backup, "backup.identity", "LIFEBOAT_BACKUP_IDENTITY", K::Path, "the file of age identities (`age-keygen`'s output, or an OpenSSH private key without a passphrase) that decrypts encrypted backups; read only by restore, verify and rekey, never needed to take a backup");
pub const LIFEBOAT_BACKUP_MIN_RATIO: Setting = Setting::key(S::Backup, "backup.min-ratio", "LIFEBOAT_BACKUP_MIN_RATIO", K::Ratio, "retention deletes nothing while the newest backup's SQL is smaller than this fraction of the one before it (a dump that lost tables); `0` turns the check off").default("0.5");
pub const LIFEBOAT_BACKUP_SCHEDULE: Setting = Setting::key(S::Backup, "backup.schedule", "LIFEBOAT_BACKUP_SCHEDULE", K::Cron, "when `lifeboat-backup schedule` takes a backup: a cron expression (five fields, in the time zone of `TZ`)").default("0 2 * * *");
pub const LIFEBOAT_BACKUP_DRILL_SCHEDULE: Setting = Setting::key(S::Backup, "backup.drill-schedule", "LIFEBOAT_BACKUP_DRILL_SCHEDULE", K::Cron, "when `lifeboat-backup schedule` runs a restore drill (`verify latest --restore-test`): a cron expression; none when unset");
pub const LIFEBOAT_BACKUP_METRICS_FILE: Setting = Setting::key(S::Backup, "backup.metrics-file", "LIFEBOAT_BACKUP_METRICS_FILE", K::Path, "Prometheus textfile written after each run (for node_exporter's textfile collector): last success time, last run and its outcome, duration, size, failures");

// Locks.
pub const LIFEBOAT_LOCK_DIR: Setting = Setting::key(S::Lock, "lock.dir", "LIFEBOAT_LOCK_DIR", K::Path, "where job locks live: two runs of the same job never overlap, and the second says who holds the lock and since when. Must be ours and writable by no one else (exit 2 otherwise)").computed("`/run/lock/lifeboat` (root), `$XDG_RUNTIME_DIR/lifeboat`, else `<backup dir>/.lifeboat-locks`");

// Restore.
pub const LIFEBOAT_RESTORE_APP_SERVICES: Setting = Setting::key(S::Restore, "restore.app-services", "LIFEBOAT_RESTORE_APP_SERVICES", K::List, "compose services lifeboat-restore stops during the swap and starts after it, comma-separated, or `none`").computed("the services whose environment names the database");
pub const LIFEBOAT_RESTORE_HEALTH_TIMEOUT: Setting = Setting::key(
    S::Restore,
    "restore.health-timeout",
    "LIFEBOAT_RESTORE_HEALTH_TIMEOUT",
    K::Seconds,
    "seconds the app has to become healthy after the swap before the restore is undone",
)
.default("120");
pub const LIFEBOAT_RESTORE_MAINTENANCE: Setting = Setting::key(S::Restore, "restore.maintenance", "LIFEBOAT_RESTORE_MAINTENANCE", K::Bool, "while the app is down for the swap, the proxy in front (nginx or Caddy) answers `503` with `Retry-After: 10` from a stand-in lifeboat starts, rather than `502`").default("false");
pub const LIFEBOAT_RESTORE_JOBS: Setting = Setting::key(
    S::Restore,
    "restore.jobs",
    "LIFEBOAT_RESTORE_JOBS",
    K::Number,
    "sessions a PostgreSQL restore (and `verify --restore-test`) loads on at once: the schema on one (psql), then each table's rows (over lifeboat's own connections where the server is reachable, else psql) (the largest first, waiting in a temporary file in the backup directory while every session is busy), then indexes and keys spread over them, the largest table's first; `1` loads in order on one session; flag `--jobs`",
)
.computed("the database container's cores (at most 16), else 2; one for an archive under 64 MiB of SQL");
pub const LIFEBOAT_RESTORE_KEEP_DAYS: Setting = Setting::key(S::Restore, "restore.keep-days", "LIFEBOAT_RESTORE_KEEP_DAYS", K::Days, "days lifeboat-restore keeps a pre-restore database (`<db>__pre_restore_<time>`) before dropping it; its safety backup goes once it is this old and the database is gone").default("7");

// Deploy and rollback.
pub const LIFEBOAT_DEPLOY_SERVICES: Setting = Setting::key(
    S::Deploy,
    "deploy.services",
    "LIFEBOAT_DEPLOY_SERVICES",
    K::List,
    "compose services that serve the app, comma-separated: switched first, each health-gated",
)
.computed("– (lifeboat-deploy and lifeboat-rollback need it)");
pub const LIFEBOAT_DEPLOY_WORKERS: Setting = Setting::key(
    S::Deploy,
    "deploy.workers",
    "LIFEBOAT_DEPLOY_WORKERS",
    K::List,
    "compose services of the app's workers, comma-separated: switched after the services",
)
.computed("none");
pub const LIFEBOAT_DEPLOY_IMAGE: Setting = Setting::key(
    S::Deploy,
    "deploy.image",
    "LIFEBOAT_DEPLOY_IMAGE",
    K::Text,
    "image repository of the releases; VERSION is the tag",
)
.computed("the repository of the image the first service runs");
pub const LIFEBOAT_DEPLOY_REGISTRY: Setting = Setting::key(S::Deploy, "deploy.registry", "LIFEBOAT_DEPLOY_REGISTRY", K::Text, "on Swarm, the registry (`host:port`) every node pulls releases from: a built image is pushed there as `<registry>/<repository>:lifeboat-<version>` before any service is updated; not needed on a single-node swarm");
pub const LIFEBOAT_DEPLOY_GIT_REPO: Setting = Setting::key(
    S::Deploy,
    "deploy.git-repo",
    "LIFEBOAT_DEPLOY_GIT_REPO",
    K::Path,
    "the app's git repository: VERSION is a tag or commit, built from a clean `git archive` of it",
);
pub const LIFEBOAT_DEPLOY_DOCKERFILE: Setting = Setting::key(
    S::Deploy,
    "deploy.dockerfile",
    "LIFEBOAT_DEPLOY_DOCKERFILE",
    K::Path,
    "the Dockerfile's path inside the repository",
)
.default("Dockerfile");
pub const LIFEBOAT_DEPLOY_MIGRATE: Setting = Setting::key(
    S::Deploy,
    "deploy.migrate",
    "LIFEBOAT_DEPLOY_MIGRATE",
    K::Text,
    "migration command run in a one-off container of the new image (words separated by spaces)",
);
pub const LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT: Setting = Setting::key(
    S::Deploy,
    "deploy.migrate-timeout",
    "LIFEBOAT_DEPLOY_MIGRATE_TIMEOUT",
    K::Seconds,
    "seconds the migration may take",
)
.default("600");
pub const LIFEBOAT_DEPLOY_HEALTH_TIMEOUT: Setting = Setting::key(
    S::Deploy,
    "deploy.health-timeout",
    "LIFEBOAT_DEPLOY_HEALTH_TIMEOUT",
    K::Seconds,
    "seconds each new container has to become healthy",
)
.default("60");
pub const LIFEBOAT_DEPLOY_HEALTH_URL: Setting = Setting::key(S::Deploy, "deploy.health-url", "LIFEBOAT_DEPLOY_HEALTH_URL", K::Url, "the app's URL where users reach it, through the proxy (e.g. `https://example.com/api/health`): checked (lifeboat-healthcheck's probe, 2xx) after each service's switch, after a rollback before \"serves again\" is said, and after a restore");
pub const LIFEBOAT_DEPLOY_PROXIES: Setting = Setting::key(S::Deploy, "deploy.proxies", "LIFEBOAT_DEPLOY_PROXIES", K::List, "compose services of the reverse proxies in front of the app, comma-separated, or `none`").computed("discovered: the project's running nginx, Caddy, HAProxy or Traefik containers on an app service's network");
pub const LIFEBOAT_DEPLOY_DRAIN: Setting = Setting::key(S::Deploy, "deploy.drain", "LIFEBOAT_DEPLOY_DRAIN", K::Seconds, "the most seconds an old container behind a proxy gets to finish its requests once the proxy no longer sends it any; it is stopped as soon as it receives nothing for a second").default("10");
pub const LIFEBOAT_DEPLOY_SMOKE_SPEC: Setting = Setting::key(
    S::Deploy,
    "deploy.smoke-spec",
    "LIFEBOAT_DEPLOY_SMOKE_SPEC",
    K::Path,
    "the lifeboat-smoke spec run after the switch",
)
.computed("`./smoke.toml` when present");
pub const LIFEBOAT_DEPLOY_BACKUP: Setting = Setting::key(
    S::Deploy,
    "deploy.backup",
    "LIFEBOAT_DEPLOY_BACKUP",
    K::Bool,
    "a backup before each deploy (`--no-backup` for one deploy)",
)
.default("true");
pub const LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE: Setting = Setting::key(
    S::Deploy,
    "deploy.restore-on-failure",
    "LIFEBOAT_DEPLOY_RESTORE_ON_FAILURE",
    K::Bool,
    "when a deploy whose migrations ran fails, also restore its pre-deploy backup",
)
.default("false");
pub const LIFEBOAT_DEPLOY_KEEP_RELEASES: Setting = Setting::key(
    S::Deploy,
    "deploy.keep-releases",
    "LIFEBOAT_DEPLOY_KEEP_RELEASES",
    K::Number,
    "releases whose images keep lifeboat's tag, for rollbacks",
)
.default("5");
pub const LIFEBOAT_DEPLOY_DIR: Setting = Setting::key(
    S::Deploy,
    "deploy.dir",
    "LIFEBOAT_DEPLOY_DIR",
    K::Path,
    "the history (`history.jsonl`) and the journal of a deploy in progress",
)
.default("./.lifeboat");
pub const LIFEBOAT_DEPLOY_WEBHOOK_URL: Setting = Setting::key(S::Deploy, "deploy.webhook-url", "LIFEBOAT_DEPLOY_WEBHOOK_URL", K::Url, "receives each deploy's and rollback's history entry as a JSON `POST`; shown only as its scheme and host").secret();

// lifeboat-healthcheck: read by the probe itself (it links no lifeboat library, to stay small).
pub const HEALTHCHECK_URL: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_URL",
    K::Url,
    "the target when none is given on the command line",
)
.computed("`http://127.0.0.1:${PORT:-3000}/api/health`");
pub const PORT: Setting = Setting::var(
    S::Healthcheck,
    "PORT",
    K::Port,
    "the app's port in the default target, when `HEALTHCHECK_URL` is not set",
)
.default("3000");
pub const HEALTHCHECK_TIMEOUT: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_TIMEOUT",
    K::Duration,
    "give up after this, e.g. `5s`, `500ms` (`--timeout`)",
)
.default("5s");
pub const HEALTHCHECK_EXPECT_STATUS: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_EXPECT_STATUS",
    K::Text,
    "the statuses that count as healthy: `2xx`, `200`, `200-399` or `200,204` (`--expect-status`)",
)
.default("2xx");
pub const HEALTHCHECK_EXPECT_BODY: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_EXPECT_BODY",
    K::Text,
    "the body contains this text (`--expect-body`)",
);
pub const HEALTHCHECK_EXPECT_JSON: Setting = Setting::var(S::Healthcheck, "HEALTHCHECK_EXPECT_JSON", K::Text, "the JSON value at a pointer is this value, `PTR=VALUE`, e.g. `/status=healthy` (`--expect-json`)");
pub const HEALTHCHECK_HEADER: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_HEADER",
    K::Text,
    "a header sent with the request, `NAME: VALUE` (`--header`)",
);
pub const HEALTHCHECK_CERT_MIN_DAYS: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_CERT_MIN_DAYS",
    K::Days,
    "https: the certificate is valid this many more days (`--cert-min-days`)",
);
pub const HEALTHCHECK_INSECURE: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_INSECURE",
    K::Bool,
    "`1`: https without verifying the certificate, said in the report (`--insecure`)",
);
pub const HEALTHCHECK_FOLLOW_REDIRECTS: Setting = Setting::var(S::Healthcheck, "HEALTHCHECK_FOLLOW_REDIRECTS", K::Bool, "`1`: follow up to 5 redirects; headers never go to another host, port or scheme (`--follow-redirects`)");
pub const HEALTHCHECK_HEAD: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_HEAD",
    K::Bool,
    "`1`: send HEAD, the status alone decides (`--head`)",
);
pub const HEALTHCHECK_LISTEN: Setting = Setting::var(
    S::Healthcheck,
    "HEALTHCHECK_LISTEN",
    K::Text,
    "`serve`: where to listen; `0.0.0.0:8080` for other containers (`--listen`)",
)
.default("127.0.0.1:8080");

// The command line and output: read before any file, so never from `.env`.
pub const LIFEBOAT_CONFIG: Setting = Setting::var(
    S::CommandLine,
    "LIFEBOAT_CONFIG",
    K::Path,
    "configuration file (optional; when given, it must exist); flag `--config`",
)
.default(DEFAULT_CONFIG_FILE);
pub const LIFEBOAT_ENV_FILE: Setting = Setting::var(
    S::CommandLine,
    "LIFEBOAT_ENV_FILE",
    K::Path,
    "the stack's environment file (optional; when given, it must exist); flag `--env-file`",
)
.default(DEFAULT_ENV_FILE);
pub const LIFEBOAT_ENV: Setting = Setting::var(S::CommandLine, "LIFEBOAT_ENV", K::Text, "profile: applies `[profile.NAME]` of lifeboat.toml (`staging`, `production`); may also be set in `.env`; flag `--env`");
pub const LIFEBOAT_LOG_FORMAT: Setting = Setting::var(S::CommandLine, "LIFEBOAT_LOG_FORMAT", K::Choice, "logs on stderr for a person (`human`), or one JSON object per line for a log collector (`json`); flag `--log-format`").default(DEFAULT_LOG_FORMAT);
pub const LIFEBOAT_LOG: Setting = Setting::var(
    S::CommandLine,
    "LIFEBOAT_LOG",
    K::Text,
    "a tracing filter for stderr (`debug`, `lifeboat=trace`), overriding `-v`/`-q`",
);
pub const NO_COLOR: Setting = Setting::var(
    S::CommandLine,
    "NO_COLOR",
    K::Bool,
    "set and not empty: no colour, whatever the terminal (<https://no-color.org>)",
);

/// Every setting and variable, in the reference's order within each section.
pub const SETTINGS: &[Setting] = &TABLE;

const TABLE: [Setting; 91] = [
    DATABASE_URL,
    LIFEBOAT_DB_SERVICE,
    LIFEBOAT_DB_CONTAINER,
    LIFEBOAT_DB_NAME,
    PGSSLMODE,
    PGSSLROOTCERT,
    REDIS_URL,
    S3_ENDPOINT,
    S3_REGION,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    S3_BUCKET,
    LIFEBOAT_S3_PREFIX,
    LIFEBOAT_S3_PATH_STYLE,
    SMTP_HOST,
    SMTP_PORT,
    SMTP_USER,
    SMTP_PASSWORD,
    SMTP_FROM,
    LIFEBOAT_SMTP_TLS,
    LIFEBOAT_SMTP_CA_FILE,
    LIFEBOAT_MAIL_TO,
    COMPOSE_PROJECT_NAME,
    COMPOSE_FILE,
    DOCKER_HOST,
    LIFEBOAT_ENGINE,
    LIFEBOAT_STACK,
    LIFEBOAT_SWARM_ONEOFF,
    LIFEBOAT_BACKUP_DIR,
    LIFEBOAT_BACKUP_COMPRESS,
    LIFEBOAT_BACKUP_COMPRESSION_LEVEL,
    LIFEBOAT_BACKUP_THREADS,
    LIFEBOAT_BACKUP_NAME,
    LIFEBOAT_BACKUP_ALL,
    LIFEBOAT_BACKUP_KEEP_DAYS,
    LIFEBOAT_BACKUP_KEEP_DAILY,
    LIFEBOAT_BACKUP_KEEP_WEEKLY,
    LIFEBOAT_BACKUP_KEEP_MONTHLY,
    LIFEBOAT_BACKUP_KEEP_MIN,
    LIFEBOAT_BACKUP_METRICS_FILE,
    LIFEBOAT_BACKUP_RECIPIENTS,
    LIFEBOAT_BACKUP_PASSPHRASE,
    LIFEBOAT_BACKUP_IDENTITY,
    LIFEBOAT_BACKUP_MIN_RATIO,
    LIFEBOAT_BACKUP_SCHEDULE,
    LIFEBOAT_BACKUP_DRILL_SCHEDULE,
    LIFEBOAT_BACKUP_MAIL,
    LIFEBOAT_BACKUP_KEY,
    LIFEBOAT_BACKUP_PING_URL,
    LIFEBOAT_LOCK_DIR,
    LIFEBOAT_RESTORE_APP_SERVICES,
    LIFEBOAT_RESTORE_HEALTH_TIMEOUT,
    LIFEBOAT_RESTORE_JOBS,
    LIFEBOAT_RESTORE_KEEP_DAYS,
    LIFEBOAT_RESTORE_MAINTENANCE,
    LIFEBOAT_DEPLOY_SERVICES,
    LIFEBOAT_DEPLOY_WORKERS,
    LIFEBOAT_DEPLOY_IMAGE,
    LIFEBOAT_DEPLOY_REGISTRY,
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
    HEALTHCHECK_URL,
    PORT,
    HEALTHCHECK_TIMEOUT,
    HEALTHCHECK_EXPECT_STATUS,
    HEALTHCHECK_EXPECT_BODY,
    HEALTHCHECK_EXPECT_JSON,
    HEALTHCHECK_HEADER,
    HEALTHCHECK_CERT_MIN_DAYS,
    HEALTHCHECK_INSECURE,
    HEALTHCHECK_FOLLOW_REDIRECTS,
    HEALTHCHECK_HEAD,
    HEALTHCHECK_LISTEN,
    LIFEBOAT_CONFIG,
    LIFEBOAT_ENV_FILE,
    LIFEBOAT_ENV,
    LIFEBOAT_LOG_FORMAT,
    LIFEBOAT_LOG,
    NO_COLOR,
];

/// Every variable of the table, in its order.
pub const VARIABLES: &[&str] = &variables(&TABLE);

const fn variables<const N: usize>(table: &[Setting; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].var;
        i += 1;
    }
    out
}

/// The setting of a `lifeboat.toml` key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == Some(key))
}

/// The setting (with a key) a variable sets.
pub fn by_var(var: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key.is_some() && s.var == var)
}
