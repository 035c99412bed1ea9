//! `lifeboat-demo-app`: the small SaaS whose deployment lifeboat backs up, restores and
//! deploys in its tests and demo.
//!
//! One binary, configured by environment variables only, with one subcommand per process the
//! deployment runs: `serve` (the HTTP API), `worker`, `migrate`, `seed`, and `probe` (the
//! image's HEALTHCHECK, which has no curl). `DEMO_VERSION` picks v1, v2 (one more migration)
//! or broken (never healthy), so that deploys and rollbacks have something to do.

// The demo app is the app lifeboat looks after, not lifeboat: it logs as such an app does,
// with the bare macros that lifeboat's own code may not use (clippy.toml).
#![allow(clippy::disallowed_macros)]

mod http;
mod migrations;
mod routes;
mod store;
mod worker;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::routes::App;
use crate::store::{redact_url, Cache, Db};

const USAGE: &str = "\
usage: lifeboat-demo-app <command>

commands:
  serve     run the HTTP API (needs DATABASE_URL, REDIS_URL)
  worker    move jobs from the Redis list `jobs` into PostgreSQL (needs DATABASE_URL, REDIS_URL)
  migrate   apply the schema migrations this version knows (needs DATABASE_URL)
  seed      create the demo admin user and its businesses, if missing (needs DATABASE_URL)
  probe     exit 0 if http://127.0.0.1:$PORT/api/health answers 200 within 2 s

environment:
  DATABASE_URL         postgres://user:pass@host:port/db
  REDIS_URL            redis://host:port
  PORT                 listening port (default 3000)
  LISTEN_ADDR          listening address (default 0.0.0.0)
  DEMO_VERSION         v1 | v2 | broken (default v1)
  APP_ENV              reported by /api/health (default development)
  WEBHOOK_SECRET       HMAC key of /api/webhooks/payment (default demo-webhook-secret)
  LOGIN_RATE_LIMIT     login attempts per IP per minute (default 5)
  DEMO_ADMIN_EMAIL     seeded admin (default admin@demo.test)
  DEMO_ADMIN_PASSWORD  seeded admin's password (default demo-password)
";

/// Exit status for configuration and usage errors.
const EXIT_CONFIG: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoVersion {
    V1,
    V2,
    Broken,
}

impl DemoVersion {
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::Broken => "broken",
        }
    }

    /// The highest migration this build applies.
    pub fn known_migrations(self) -> i32 {
        match self {
            Self::V1 => 3,
            Self::V2 | Self::Broken => 4,
        }
    }

    /// Whether businesses have a `plan` (migration 4).
    pub fn has_plan(self) -> bool {
        self != Self::V1
    }
}

/// The settings the routes need; the connection URLs are read where they are used.
pub struct Config {
    pub version: DemoVersion,
    pub environment: String,
    pub webhook_secret: String,
    pub login_rate_limit: i64,
}

/// A configuration problem: printed as `error: ...`, exit status 2.
struct ConfigError(String);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| ConfigError(format!("{name} is not set")))
}

fn parsed<T: std::str::FromStr>(name: &str, default: T, what: &str) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be {what}, not {v:?}"))),
    }
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        let version = match var("DEMO_VERSION").as_deref() {
            None | Some("v1") => DemoVersion::V1,
            Some("v2") => DemoVersion::V2,
            Some("broken") => DemoVersion::Broken,
            Some(other) => {
                return Err(ConfigError(format!(
                    "DEMO_VERSION must be v1, v2 or broken, not {other:?}"
                )));
            }
        };
        Ok(Self {
            version,
            environment: var("APP_ENV").unwrap_or_else(|| "development".into()),
            webhook_secret: var("WEBHOOK_SECRET").unwrap_or_else(|| "demo-webhook-secret".into()),
            login_rate_limit: i64::from(parsed::<u32>(
                "LOGIN_RATE_LIMIT",
                5,
                "a non-negative integer",
            )?),
        })
    }
}

fn port() -> Result<u16, ConfigError> {
    parsed("PORT", 3000, "a port number")
}

fn database_config() -> Result<(tokio_postgres::Config, String), ConfigError> {
    let url = required("DATABASE_URL")?;
    let shown = redact_url(&url);
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ConfigError(format!("DATABASE_URL {shown} is invalid: {e}")))?;
    config.connect_timeout(store::CONNECT_TIMEOUT);
    Ok((config, shown))
}

fn redis_client() -> Result<(redis::Client, String), ConfigError> {
    let url = required("REDIS_URL")?;
    let shown = redact_url(&url);
    let client = redis::Client::open(url.as_str())
        .map_err(|e| ConfigError(format!("REDIS_URL {shown} is invalid: {e}")))?;
    Ok((client, shown))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Serve,
    Worker,
    Migrate,
    Seed,
    Probe,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--help" | "-h" | "help"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["serve"] => Command::Serve,
        ["worker"] => Command::Worker,
        ["migrate"] => Command::Migrate,
        ["seed"] => Command::Seed,
        ["probe"] => Command::Probe,
        [other] => {
            eprintln!("error: unknown command {other:?}\n");
            eprint!("{USAGE}");
            return ExitCode::from(EXIT_CONFIG);
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = if command == Command::Probe {
        // The image's HEALTHCHECK: Docker reserves 2, so even a bad PORT is 1 (unhealthy).
        return probe().unwrap_or_else(|ConfigError(message)| {
            println!("unhealthy: {message}");
            ExitCode::FAILURE
        });
    } else {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(run(command)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    result.unwrap_or_else(|ConfigError(message)| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn run(command: Command) -> Result<ExitCode, ConfigError> {
    match command {
        Command::Serve => serve().await,
        Command::Probe => probe(),
        Command::Worker => {
            let (pg, pg_shown) = database_config()?;
            let (redis, redis_shown) = redis_client()?;
            eprintln!("worker: database {pg_shown}, redis {redis_shown}");
            let shutdown = shutdown_signal();
            // BLPOP blocks for up to a second: commands may take longer than that to answer.
            worker::run(
                &Db::new(pg),
                &Cache::new(redis, Duration::from_secs(10)),
                shutdown,
            )
            .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate | Command::Seed => {
            let config = Config::from_env()?;
            let (pg, _) = database_config()?;
            let mut client = match store::connect(&pg).await {
                Ok(client) => client,
                Err(reason) => {
                    eprintln!("error: cannot connect to the database: {reason}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let (name, done) = if command == Command::Migrate {
                (
                    "migrate",
                    migrations::migrate(&mut client, config.version.known_migrations()).await,
                )
            } else {
                let email = var("DEMO_ADMIN_EMAIL").unwrap_or_else(|| "admin@demo.test".into());
                let password = var("DEMO_ADMIN_PASSWORD").unwrap_or_else(|| "demo-password".into());
                (
                    "seed",
                    migrations::seed(&mut client, &email, &password).await,
                )
            };
            match done {
                Ok(lines) => {
                    for line in &lines {
                        println!("{line}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(message) => {
                    eprintln!("error: {name} failed: {message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

async fn serve() -> Result<ExitCode, ConfigError> {
    let config = Config::from_env()?;
    let (pg, pg_shown) = database_config()?;
    let (redis, redis_shown) = redis_client()?;
    let address: IpAddr = parsed("LISTEN_ADDR", IpAddr::from([0, 0, 0, 0]), "an IP address")?;
    let address = SocketAddr::new(address, port()?);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {address}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    eprintln!(
        "lifeboat-demo-app {} ({}) listening on {address}; database {pg_shown}, redis {redis_shown}",
        config.version.name(),
        config.environment,
    );
    let app = Arc::new(App {
        config,
        db: Db::new(pg),
        cache: Cache::new(redis, Duration::from_secs(2)),
    });
    let shutdown = shutdown_signal();
    http::serve(
        listener,
        move |request| {
            let app = Arc::clone(&app);
            async move { routes::handle(&app, request).await }
        },
        shutdown,
    )
    .await;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Turns true on SIGTERM (docker stop) or SIGINT (Ctrl-C).
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => eprintln!("SIGTERM received, stopping"),
                        _ = tokio::signal::ctrl_c() => eprintln!("SIGINT received, stopping"),
                    }
                }
                Err(e) => {
                    eprintln!("cannot listen for SIGTERM ({e}); only SIGINT stops");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        // Keep the sender alive: a dropped sender would read as a stop request to waiters.
        std::future::pending::<()>().await;
    });
    rx
}

/// The HEALTHCHECK: one GET of /api/health over a plain socket, all within 2 s.
fn probe() -> Result<ExitCode, ConfigError> {
    let port = port()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let result = (|| -> std::io::Result<String> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&address, remaining())?;
        stream.set_write_timeout(Some(remaining()))?;
        stream.write_all(
            b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )?;
        let mut head = Vec::new();
        let mut buf = [0; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            stream.set_read_timeout(Some(remaining()))?;
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head);
        Ok(text.lines().next().unwrap_or_default().trim().to_owned())
    })();
    match result {
        Ok(status_line) if status_line.split(' ').nth(1) == Some("200") => {
            println!("healthy: {status_line}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(status_line) => {
            println!("unhealthy: {status_line:?}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
