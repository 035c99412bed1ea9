//! The library every lifeboat binary shares.
//!
//! One module per concern, each with its own error type. The light core (configuration, secrets,
//! exit codes, locking, output) needs no async runtime; the service clients sit behind cargo
//! features so that `lifeboat-healthcheck` never compiles bollard or the AWS SDK:
//!
//! | module | feature | what it promises |
//! |---|---|---|
//! | [`config`] | – | flags > environment > `.env` > `lifeboat.toml` > defaults; errors name the key and its source; every setting written once, in [`config::settings`] |
//! | [`env_vars`] | – | every environment variable lifeboat reads, as a constant of that table |
//! | [`secret`] | – | secrets print `***`; URLs print without their password |
//! | [`exit`] | – | the exit codes cron, Docker and CI rely on |
//! | [`files`] | – | small files replaced atomically (manifests, journals, state) |
//! | [`lock`] | – | two runs of the same job never overlap |
//! | [`output`] | – | story on stderr (human or JSON), data on stdout, colour only on a TTY |
//! | [`redact`] | – | the one redaction of credential-shaped text, on every printed line (healthcheck includes it) |
//! | [`cli`] | – | the options every binary shares |
//! | `docker` | `docker` | compose containers by label, exec, stop/start, wait healthy, build |
//! | `swarm` | `docker` | a Swarm stack's services: found, scaled, updated and put back, their tasks |
//! | `proxy` | `docker` | nginx, Caddy, HAProxy, Traefik in front of the app: found, steered at a switch, drained |
//! | `db` | `db` | PostgreSQL from a URL (`sslmode=require` works) or a container's `POSTGRES_*` |
//! | `engine` | `db` | the database engine seam: one `DatabaseServer` trait for PostgreSQL and MySQL alike |
//! | `redis` | `redis` | PING and latency |
//! | `s3` | `s3` | MinIO, Spaces and AWS alike (custom endpoint, path-style) |
//! | `mail` | `mail` | SMTP plain, STARTTLS and TLS |
//! | `http` | `http` | outgoing HTTP(S) with deadlines and lifeboat's user agent; errors without the URL |
//! | `signal` | `runtime` | SIGTERM and Ctrl-C ask a job to stop at a safe point, never kill it halfway |
//! | `progress` | `progress` | progress bars with rate and time left, on a terminal only |

pub mod cli;
pub mod config;
pub mod env_vars;
pub mod exit;
pub mod files;
pub mod lock;
pub mod output;
pub mod redact;
pub mod secret;

#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "db")]
pub mod engine;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "mail")]
pub mod mail;
#[cfg(feature = "progress")]
pub mod progress;
#[cfg(feature = "docker")]
pub mod proxy;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "runtime")]
pub mod signal;
#[cfg(feature = "docker")]
pub mod swarm;
