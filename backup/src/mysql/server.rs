//! What a restore test (and a restore) needs of a MySQL-protocol server besides the dump: SQL
//! with rows back, a script streamed into the client, and every table's rows counted. The same
//! two ways as the dump: the container's own client (`mariadb`, else `mysql`), or against a
//! `mysql://` URL lifeboat's own client for queries and the local client for scripts.
//!
//! Every name that reaches SQL is backquoted with its backquotes doubled ([`ident`]), every
//! value single-quoted with `\` and `'` escaped ([`literal`]): table names come from the dump,
//! which is as trustworthy as whoever could write to the database.

use anyhow::{anyhow, bail, Context};
use lifeboat::docker::DockerError;
use lifeboat_healthcheck::mysql::Options;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{local_client, local_program, PICK};
use crate::source::Source;

/// The most rows and bytes one answer may bring back (lists of tables, counts).
const MAX_ROWS: usize = 1_000_000;
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// `` `name` ``, with any backquote doubled: safe for any database, table or user name.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'text'` with `\` and `'` escaped, as MySQL reads it whatever `sql_mode` says of backslashes
/// (`NO_BACKSLASH_ESCAPES` off, the default; with it on, `''` still reads as a quote).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A field of the client's `--batch` output with its escapes undone (`\t`, `\n`, `\\`, `\0`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The rows of `sql` (names in it qualified: the session's default database is the source's).
pub async fn rows(source: &Source, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    match source {
        Source::Container { .. } => script(source, None, sql).await,
        Source::MysqlUrl { options, .. } => url_rows(options, sql).await,
        Source::Url { .. } => bail!("not a MySQL-protocol server"),
    }
}

async fn url_rows(options: &Options, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let server = format!("{}:{}", options.host, options.port);
    let mut options = options.clone();
    // No default database: the statements name theirs (which may not exist yet, or any more).
    options.database = None;
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        // Counting a large table reads it: minutes, not the seconds a login takes.
        let deadline =
            lifeboat_healthcheck::Deadline::after(std::time::Duration::from_secs(30 * 60));
        let mut conn = lifeboat_healthcheck::mysql::Conn::connect(&options, deadline)?;
        let answer = conn.query(&sql, MAX_ROWS, MAX_BYTES)?;
        conn.close();
        Ok::<_, String>(
            answer
                .rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .collect()
                })
                .collect(),
        )
    })
    .await
    .context("the query stopped")?
    .map_err(|e| anyhow!("{server}: {e}"))
}

/// Run `script` (statements, `DELIMITER` lines allowed) through the client, on `database` as the
/// default one when given; the first error stops it. Its output's rows, tab separated and
/// unescaped. The client is the container's, or the local one for a URL.
pub async fn script(
    source: &Source,
    database: Option<&str>,
    script: &str,
) -> anyhow::Result<Vec<Vec<String>>> {
    tracing::debug!(database, "SQL script: {script}");
    let db = database.map(|d| format!("--database={d}"));
    let mut flags = vec![
        "--batch",
        "--skip-column-names",
        "--default-character-set=utf8mb4",
    ];
    flags.extend(db.as_deref());
    let mut out = Capped::default();
    client(
        source,
        &flags,
        &mut script.as_bytes(),
        &mut out,
        "the client",
    )
    .await?;
    Ok(String::from_utf8_lossy(&out.bytes)
        .lines()
        .map(|line| line.split('\t').map(unescape).collect())
        .collect())
}

/// The client's output, refused past [`MAX_BYTES`]: what a server answers is bounded.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() + buf.len() > MAX_BYTES {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "the server answered more than {MAX_BYTES} bytes"
            ))));
        }
        this.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The client (`mariadb`, else `mysql`) with `flags`: `input` on its stdin, its stdout into
/// `output`; the bytes it read. A failure is `what` failed, with the client's first errors.
async fn client<R, W>(
    source: &Source,
    flags: &[&str],
    input: &mut R,
    output: &mut W,
    what: &str,
) -> anyhow::Result<u64>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    match source {
        Source::Container {
            docker,
            container,
            credentials,
            ..
        } => {
            let user = format!("--user={}", credentials.user);
            let mut command = vec!["sh", "-c", PICK, "mariadb", "mysql", &user];
            command.extend(flags);
            match docker
                .exec_with_input(
                    container,
                    &command,
                    &credentials.client_env(),
                    input,
                    output,
                )
                .await
            {
                Ok(out) => Ok(out.stdin_bytes),
                Err(DockerError::ExecFailed { code, stderr, .. }) => {
                    Err(client_error(what, &stderr, code))
                }
                Err(e) => Err(e).with_context(|| format!("{what} through docker exec")),
            }
        }
        Source::MysqlUrl { options, .. } => local(options, flags, input, output, what).await,
        Source::Url { .. } => bail!("not a MySQL-protocol server"),
    }
}

/// [`client`] on this machine, against a URL.
async fn local<R, W>(
    options: &Options,
    flags: &[&str],
    input: &mut R,
    output: &mut W,
    what: &str,
) -> anyhow::Result<u64>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let program = local_program(&["mariadb", "mysql"]);
    let mut cmd = local_client(program, options).await?;
    cmd.args(flags)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run the local {program}"))?;
    let mut stdin = child.stdin.take().context("the client's stdin")?;
    let mut stdout = child.stdout.take().context("the client's stdout")?;
    let mut stderr_pipe = child.stderr.take().context("the client's stderr")?;
    let feeding = async move {
        let mut buf = vec![0; 64 * 1024];
        let mut fed = 0u64;
        loop {
            let n = input.read(&mut buf).await?;
            // A failed write: the client stopped reading (it exited); its status says why.
            if n == 0 || stdin.write_all(&buf[..n]).await.is_err() {
                return Ok::<u64, std::io::Error>(fed);
            }
            fed += n as u64;
        }
        // stdin is dropped here, closed: the client sees the end of its input.
    };
    // Read to its end (a pipe left unread would stop the client), its end kept.
    let (fed, copied, stderr) = tokio::join!(
        feeding,
        tokio::io::copy(&mut stdout, output),
        crate::engine::stderr_tail(&mut stderr_pipe)
    );
    let status = child.wait().await.context("waiting for the client")?;
    if !status.success() {
        return Err(client_error(
            what,
            &stderr,
            i64::from(status.code().unwrap_or(-1)),
        ));
    }
    copied.context("reading the client's output")?;
    fed.context("reading the input")
}

/// `what` failed: the first `ERROR` lines of its stderr (else all of it), credentials hidden.
fn client_error(what: &str, stderr: &str, code: i64) -> anyhow::Error {
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .take(3)
        .collect();
    let reason = if reason.is_empty() {
        stderr.trim().to_owned()
    } else {
        reason.join(" | ")
    };
    anyhow!(
        "{what} failed with an SQL error (exit code {code}): {}",
        lifeboat::secret::redact_url(&reason)
    )
}

/// `CREATE DATABASE` in utf8mb4, as the dump's `SET NAMES` expects.
pub async fn create_database(source: &Source, name: &str) -> anyhow::Result<()> {
    rows(
        source,
        &format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            ident(name)
        ),
    )
    .await
    .map(drop)
}

pub async fn drop_database(source: &Source, name: &str) -> anyhow::Result<()> {
    rows(source, &format!("DROP DATABASE IF EXISTS {}", ident(name)))
        .await
        .map(drop)
}

/// `SELECT COUNT(*)` of each of `tables` in `database`, in their order.
pub async fn count(source: &Source, database: &str, tables: &[&str]) -> anyhow::Result<Vec<i64>> {
    let mut counted = Vec::with_capacity(tables.len());
    // A few hundred tables to a statement: one client started per batch, not per table.
    for batch in tables.chunks(200) {
        let sql = batch
            .iter()
            .map(|t| format!("SELECT COUNT(*) FROM {}.{}", ident(database), ident(t)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let answer = rows(source, &sql).await?;
        if answer.len() != batch.len() {
            bail!(
                "{} counts came back for {} tables",
                answer.len(),
                batch.len()
            );
        }
        for (t, row) in batch.iter().zip(answer) {
            let n = row
                .first()
                .and_then(|n| n.trim().parse::<i64>().ok())
                .with_context(|| format!("no count came back for {t}"))?;
            counted.push(n);
        }
    }
    Ok(counted)
}

/// Stream `script` into the client on `database`; the first error stops it and is the reason
/// given. Returns the bytes the client read.
pub async fn load<R: AsyncRead + Unpin + Send>(
    source: &Source,
    database: &str,
    script: &mut R,
) -> anyhow::Result<u64> {
    let db = format!("--database={database}");
    let flags = ["--default-character-set=utf8mb4", db.as_str()];
    client(
        source,
        &flags,
        script,
        &mut tokio::io::sink(),
        &format!("loading into {database}"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_cannot_leave_their_quotes() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(ident("plain"), "`plain`");
        assert_eq!(literal(r"it's \ "), r"'it''s \\ '");
    }

    #[test]
    fn the_client_s_batch_escapes_are_undone() {
        assert_eq!(unescape(r"a\tb\nc\\d"), "a\tb\nc\\d");
        assert_eq!(unescape(r"end\"), "end\\");
    }
}
