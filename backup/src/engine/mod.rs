//! The two sides of lifeboat's engine seam ([`lifeboat::engine::DatabaseServer`]): PostgreSQL
//! ([`postgres`]) and the MySQL-protocol servers ([`mysql`]: MySQL, MariaDB, TiDB). A backup
//! source is opened as one of them by [`server`], chosen by the URL's scheme or the database
//! container's environment; backup, `verify --restore-test` and lifeboat-restore go through it
//! and never ask which engine it is.

pub mod mysql;
pub mod parallel;
pub mod postgres;

use lifeboat::engine::{DatabaseServer, Engine};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::source::Source;

/// The most of a client's stderr kept for a message: its end, where the error is.
const STDERR_KEPT: usize = 16 * 1024;

/// The server behind `source`, as its engine speaks.
pub fn server(source: &Source) -> Box<dyn DatabaseServer> {
    match source.engine() {
        Engine::Postgres => Box::new(postgres::Postgres::new(source.clone())),
        Engine::Mysql => Box::new(mysql::Mysql::new(source.clone())),
    }
}

/// A dump that exited 0 but said `error:` (or `FATAL`) on stderr is not taken for complete.
fn check_stderr(stderr: &str) -> anyhow::Result<()> {
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains("error:") || l.starts_with("FATAL"))
    {
        anyhow::bail!("the dump reported an error although it exited 0: {line}");
    }
    Ok(())
}

/// Read a client's stderr to its end (a pipe left unread would stop the client), keeping the
/// last [`STDERR_KEPT`] bytes of it.
pub(crate) async fn stderr_tail<R: AsyncRead + Unpin>(pipe: &mut R) -> String {
    let mut kept = Vec::new();
    let mut buf = vec![0; 8 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Run a dump program (`pg_dump`, `mariadb-dump`…) already given its arguments, its stdout
/// streamed into `sink`; fails on a non-zero exit with its stderr (URLs redacted). Returns
/// its stderr for [`check_stderr`].
pub(crate) async fn dump_process<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
    mut cmd: tokio::process::Command,
    program: &str,
    install: &str,
    sink: &mut W,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run the local {program} ({install})"))?;
    let mut stdout = child.stdout.take().context("the dump's stdout")?;
    let mut stderr_pipe = child.stderr.take().context("the dump's stderr")?;
    let (copied, stderr) = tokio::join!(
        tokio::io::copy(&mut stdout, sink),
        stderr_tail(&mut stderr_pipe)
    );
    copied.context("writing the dump")?;
    let status = child.wait().await.context("waiting for the dump")?;
    if !status.success() {
        anyhow::bail!(
            "{program} exited with {status}: {}",
            lifeboat::secret::redact_url(stderr.trim())
        );
    }
    Ok(stderr)
}
