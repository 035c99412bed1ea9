//! MySQL-protocol servers (MySQL, MariaDB, TiDB): the dump and the few queries a backup needs.
//!
//! The dump is `mariadb-dump` or `mysqldump`, inside the database container (its client matches
//! the server) or the local one against a `mysql://` URL, with the options a consistent, complete,
//! restorable dump needs:
//! - `--single-transaction` (one consistent snapshot, no `FLUSH TABLES WITH READ LOCK`, which
//!   TiDB does not have), `--quick` (rows stream, never buffered whole);
//! - `--routines --triggers --events` (not on TiDB, which has none of them);
//! - `--hex-blob` (binary columns as hex, safe through any client), `utf8mb4`, and
//!   `--no-tablespaces` (MySQL 8 asks for the PROCESS privilege otherwise).
//!
//! The password goes in `MYSQL_PWD`, never on a command line. MariaDB's dump since 10.11.8 starts
//! with a "sandbox mode" comment that MySQL's clients and older MariaDB ones reject; it is left out
//! of the archive ([`SkipSandbox`]), so that `gunzip | mysql` works with any client.

pub mod server;

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{bail, Context};
use lifeboat::db::ContainerCredentials;
use lifeboat::docker::Docker;
use lifeboat_healthcheck::mysql::{Options, SslMode};
use tokio::io::AsyncWrite;

/// The first line of a dump by MariaDB's client since 10.11.8 / 11.4.
pub const SANDBOX_LINE: &[u8] = b"/*M!999999\\- enable the sandbox mode */";

/// The client programs, MariaDB's name first: a shell in the container picks the one it has.
const PICK: &str = r#"p=$(command -v "$0" || command -v "$1") || { echo "error: neither $0 nor $1 is in the container" >&2; exit 127; }; shift; exec "$p" "$@""#;

/// Whether the server is TiDB (its `VERSION()` says so: `8.0.11-TiDB-v7.5.0`).
pub fn is_tidb(version: &str) -> bool {
    version.contains("-TiDB-")
}

/// The dump's options (without the user, the connection and the database).
pub fn dump_options(tidb: bool) -> Vec<&'static str> {
    let mut options = vec![
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
    ];
    if tidb {
        // No routines, triggers or events on TiDB; and its snapshot is the transaction's.
        options.extend([
            "--skip-routines",
            "--skip-triggers",
            "--skip-events",
            "--skip-lock-tables",
        ]);
    } else {
        options.extend(["--routines", "--triggers", "--events"]);
    }
    options
}

/// A database name that cannot be taken for an option by the client.
pub fn checked_database(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() {
        bail!("no database to dump: set LIFEBOAT_DB_NAME (or MARIADB_DATABASE/MYSQL_DATABASE in the container)");
    }
    if name.starts_with('-') {
        bail!("the database name {name:?} starts with `-`: refused, as a client would read it as an option");
    }
    Ok(name)
}

/// One query through the container's own client (`mariadb`, else `mysql`): its answer, tab
/// separated, without column names, trimmed.
pub async fn query(
    docker: &Docker,
    container: &str,
    credentials: &ContainerCredentials,
    sql: &str,
) -> anyhow::Result<String> {
    let user = format!("--user={}", credentials.user);
    let mut command = vec![
        "sh",
        "-c",
        PICK,
        "mariadb",
        "mysql",
        &user,
        "--batch",
        "--default-character-set=utf8mb4",
        "--skip-column-names",
    ];
    if !credentials.database.is_empty() {
        command.push("--database");
        command.push(&credentials.database);
    }
    command.extend(["--execute", sql]);
    let mut out = Vec::new();
    docker
        .exec(container, &command, &credentials.client_env(), &mut out)
        .await?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// The dump inside the container, into `sink` (without MariaDB's sandbox line): stderr.
pub async fn dump_in_container<W: AsyncWrite + Unpin>(
    docker: &Docker,
    container: &str,
    credentials: &ContainerCredentials,
    tidb: bool,
    sink: &mut W,
) -> anyhow::Result<String> {
    let database = checked_database(&credentials.database)?;
    let user = format!("--user={}", credentials.user);
    let mut command = vec!["sh", "-c", PICK, "mariadb-dump", "mysqldump", &user];
    command.extend(dump_options(tidb));
    command.push(database);
    let mut skip = SkipSandbox::new(sink);
    let output = docker
        .exec(container, &command, &credentials.client_env(), &mut skip)
        .await
        .context("the dump in the database container failed")?;
    skip.finish().await?;
    Ok(output.stderr)
}

/// The local client `program` (`mariadb-dump`, `mysqldump`, `mariadb`, `mysql`) for `options`:
/// host, port, user and TLS as flags, the password in `MYSQL_PWD`.
pub async fn local_client(
    program: &str,
    options: &Options,
) -> anyhow::Result<tokio::process::Command> {
    let mariadb = local_flavour_is_mariadb(program).await?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(format!("--host={}", options.host))
        .arg(format!("--port={}", options.port))
        .arg(format!("--user={}", options.user))
        .env("MYSQL_PWD", &options.password)
        .kill_on_drop(true);
    if !program.ends_with("dump") {
        // The dump programs have no such option (they wait for the OS's connect timeout).
        cmd.arg("--connect-timeout=10");
    }
    let ca = options
        .ssl_ca
        .as_ref()
        .map(|p| format!("--ssl-ca={}", p.display()));
    if mariadb {
        match options.ssl {
            SslMode::Disabled => {
                cmd.arg("--skip-ssl");
            }
            SslMode::Preferred | SslMode::Required => {
                cmd.arg("--ssl");
            }
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                cmd.arg("--ssl").arg("--ssl-verify-server-cert");
            }
        }
    } else {
        cmd.arg(match options.ssl {
            SslMode::Disabled => "--ssl-mode=DISABLED",
            SslMode::Preferred => "--ssl-mode=PREFERRED",
            SslMode::Required => "--ssl-mode=REQUIRED",
            SslMode::VerifyCa => "--ssl-mode=VERIFY_CA",
            SslMode::VerifyIdentity => "--ssl-mode=VERIFY_IDENTITY",
        });
    }
    if let Some(ca) = ca {
        cmd.arg(ca);
    }
    Ok(cmd)
}

/// The first of `names` on `PATH` (MariaDB's name first: its `mysqldump` warns that the name
/// is deprecated), else the last, for the error that says to install it.
pub fn local_program<'a>(names: &[&'a str]) -> &'a str {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .copied()
        .find(|name| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .or_else(|| names.last().copied())
        .unwrap_or_default()
}

/// Whether the local `program` is MariaDB's (its TLS flags differ from MySQL's).
async fn local_flavour_is_mariadb(program: &str) -> anyhow::Result<bool> {
    let out = tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run the local {program} (install mariadb-client or mysql-client, or back up through the container)"))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("MariaDB"))
}

/// The local dump against a URL, into `sink`: stderr.
pub async fn dump_local<W: AsyncWrite + Unpin>(
    options: &Options,
    tidb: bool,
    sink: &mut W,
) -> anyhow::Result<String> {
    let database = checked_database(options.database.as_deref().unwrap_or_default())?;
    let program = local_program(&["mariadb-dump", "mysqldump"]);
    let mut cmd = local_client(program, options).await?;
    cmd.args(dump_options(tidb)).arg(database);
    let mut skip = SkipSandbox::new(sink);
    let stderr = crate::engine::dump_process(
        cmd,
        program,
        "install mariadb-client or mysql-client, or back up through the container",
        &mut skip,
    )
    .await?;
    skip.finish().await?;
    Ok(stderr)
}

/// The first value of `sql`'s answer on the URL's server, through lifeboat's own client.
pub async fn query_url(options: &Options, sql: &str) -> anyhow::Result<String> {
    let server = format!("{}:{}", options.host, options.port);
    let options = options.clone();
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        let deadline = lifeboat_healthcheck::Deadline::after(std::time::Duration::from_secs(30));
        let mut conn = lifeboat_healthcheck::mysql::Conn::connect(&options, deadline)?;
        let answer = conn.query(&sql, 1, 64 * 1024)?;
        conn.close();
        Ok::<_, String>(
            answer
                .rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .flatten()
                .unwrap_or_default(),
        )
    })
    .await
    .context("the query stopped")?
    .map_err(|e| anyhow::anyhow!("{server}: {e}"))
}

/// A writer that leaves out MariaDB's sandbox line when the stream starts with it, and passes
/// everything else through unchanged.
pub struct SkipSandbox<'a, W: AsyncWrite + Unpin> {
    inner: &'a mut W,
    /// The start of the stream, until it is known whether it is the sandbox line.
    head: Vec<u8>,
    /// Bytes of `head` still to be written to `inner` once decided.
    pending: std::ops::Range<usize>,
    decided: bool,
}

impl<'a, W: AsyncWrite + Unpin> SkipSandbox<'a, W> {
    pub fn new(inner: &'a mut W) -> Self {
        Self {
            inner,
            head: Vec::new(),
            pending: 0..0,
            decided: false,
        }
    }

    /// Decide on what the head holds: the sandbox line and its newline are dropped.
    fn decide(&mut self) {
        self.decided = true;
        let mut start = 0;
        if self.head.starts_with(SANDBOX_LINE) {
            start = SANDBOX_LINE.len();
            // Its rest of line: spaces, then the newline.
            while start < self.head.len() && self.head[start] == b' ' {
                start += 1;
            }
            if self.head.get(start) == Some(&b'\n') {
                start += 1;
            }
        }
        self.pending = start..self.head.len();
    }

    fn poll_pending(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        while !self.pending.is_empty() {
            let chunk = &self.head[self.pending.clone()];
            let n = std::task::ready!(Pin::new(&mut *self.inner).poll_write(cx, chunk))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.pending.start += n;
        }
        Poll::Ready(Ok(()))
    }

    /// At the end of the stream: what is still held goes out.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        if !self.decided {
            self.decide();
        }
        std::future::poll_fn(|cx| self.poll_pending(cx)).await?;
        self.inner.flush().await
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SkipSandbox<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if !this.decided {
            // The line is short: its length and a newline are enough to decide.
            let room = (SANDBOX_LINE.len() + 8).saturating_sub(this.head.len());
            let take = buf.len().min(room.max(1));
            this.head.extend_from_slice(&buf[..take]);
            if this.head.len() > SANDBOX_LINE.len() + 4 || this.head.contains(&b'\n') {
                this.decide();
            }
            return Poll::Ready(Ok(take));
        }
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut *this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.decided {
            std::task::ready!(this.poll_pending(cx))?;
        }
        Pin::new(&mut *this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.decided {
            this.decide();
        }
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut *this.inner).poll_shutdown(cx)
    }
}

/// Read all of `reader` through [`SkipSandbox`] (for tests and small inputs).
#[cfg(test)]
async fn filtered(mut reader: impl tokio::io::AsyncRead + Unpin, chunk: usize) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = Vec::new();
    {
        let mut skip = SkipSandbox::new(&mut out);
        let mut buf = vec![0u8; chunk];
        loop {
            let n = reader.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            skip.write_all(&buf[..n]).await.expect("write");
        }
        skip.finish().await.expect("finish");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sandbox_line_is_left_out_and_nothing_else() {
        let body = b"/*!40101 SET NAMES utf8mb4 */;\nINSERT INTO `t` VALUES (1);\n";
        let mut with = SANDBOX_LINE.to_vec();
        with.extend_from_slice(b" \n");
        with.extend_from_slice(body);
        for chunk in [1, 3, 16, 4096] {
            assert_eq!(filtered(&with[..], chunk).await, body, "chunks of {chunk}");
            assert_eq!(filtered(&body[..], chunk).await, body, "chunks of {chunk}");
            assert_eq!(filtered(&b"short"[..], chunk).await, b"short");
            assert!(filtered(&b""[..], chunk).await.is_empty());
        }
    }

    #[test]
    fn tidb_is_told_by_its_version_and_dumped_without_what_it_lacks() {
        assert!(is_tidb("8.0.11-TiDB-v7.5.0"));
        assert!(!is_tidb("10.11.6-MariaDB-0+deb12u1"));
        assert!(dump_options(true).contains(&"--skip-routines"));
        assert!(dump_options(false).contains(&"--routines"));
        assert!(dump_options(true).contains(&"--single-transaction"));
        assert!(checked_database("-x").is_err());
        assert!(checked_database("").is_err());
    }
}
