//! The SQL loader: an archive streamed into psql on a database of the backup source's server,
//! and what arrived checked against the archive and its manifest.
//!
//! `lifeboat-backup verify --restore-test` loads into a scratch database, lifeboat-restore
//! into the database it will swap in; both call [`archive`], so that a restore is checked
//! exactly as a verify is. One psql reads the whole script today; a parallel load (issue 21)
//! replaces [`sql`] behind [`archive`] without either caller changing.

use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use lifeboat::db::{DbTarget, Engine};
use lifeboat::docker::DockerError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::archive::{self, Scan, SqlStream};
use crate::manifest::Entry;
use crate::source::{local_client, Source};

/// Bytes read and handed on to psql at a time.
const CHUNK: usize = 64 * 1024;

/// The most of psql's stderr kept for an error message.
const STDERR_KEPT: usize = 16 * 1024;

/// What a load read and what the server took in.
pub struct Loaded {
    /// The archive's SQL as it streamed by: its length and every table's rows.
    pub scan: Scan,
    /// The rows the server took in, one number per `COPY` block, in the order of the script.
    pub copied: Vec<u64>,
}

/// Load `entry`'s archive into `database` (which exists, and is empty), decompressing it once,
/// then check what arrived: the archive read to its end and as long as its manifest says, every
/// table's rows in the archive as the manifest says, and as many taken in by the server (psql's
/// `COPY n` tags: exact, and free, where a `count(*)` of every table would read the database
/// again). `progress` counts the bytes of SQL as they go.
pub async fn archive(
    source: &Source,
    database: &str,
    entry: &Entry,
    keys: &crate::crypt::Keys,
    progress: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Loaded> {
    let m = &entry.manifest;
    let mut stream = SqlStream::open(&entry.archive, keys)?;
    if let Some(counter) = progress {
        stream = stream.with_progress(counter);
    }
    let loaded = sql(source, database, &mut stream).await;
    // A decompression error is the archive's fault, whatever psql made of its cut input.
    if let Some(e) = stream.failure(&m.file) {
        return Err(e);
    }
    let mut copied = loaded?;
    let scan = stream.finish();
    archive::check_scan(entry, &scan)?;
    if source.engine() == Engine::Mysql {
        // The client says nothing of rows: each table of the dump is counted where it landed.
        copied = crate::mysql::server::count(source, database, &scan.tables)
            .await?
            .iter()
            .map(|t| u64::try_from(t.rows).unwrap_or_default())
            .collect();
    }
    check_copied(&m.file, &scan, &copied)?;
    Ok(Loaded { scan, copied })
}

/// Stream the SQL into `psql -X -v ON_ERROR_STOP=1` on the database `scratch`: the first error
/// stops it, and is the reason given. Returns the rows the server took in, one number per
/// `COPY … FROM stdin` block in the order of the script (psql's `COPY n` command tags).
pub async fn sql(
    source: &Source,
    scratch: &str,
    stream: &mut SqlStream,
) -> anyhow::Result<Vec<u64>> {
    if source.engine() == Engine::Mysql {
        let fed = crate::mysql::server::load(source, scratch, stream).await?;
        if fed != stream.raw_size() {
            bail!(
                "the client stopped reading after {fed} of {} bytes of SQL without an error",
                stream.raw_size()
            );
        }
        return Ok(Vec::new());
    }
    let db = format!("--dbname={scratch}");
    // Not -q: the command tags on stdout carry each COPY's row count, as the server saw it.
    let psql = [
        "psql",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        db.as_str(),
    ];
    let mut tags = CopyTags::default();
    let fed = match source {
        Source::Container {
            docker,
            container,
            credentials,
            ..
        } => {
            match docker
                .exec_with_input(
                    container,
                    &psql,
                    &credentials.client_env(),
                    stream,
                    &mut tags,
                )
                .await
            {
                Ok(out) => out.stdin_bytes,
                Err(DockerError::ExecFailed { code, stderr, .. }) => {
                    return Err(sql_error(scratch, &stderr, &format!("exit code {code}")));
                }
                Err(e) => return Err(e).context("restoring through docker exec"),
            }
        }
        Source::Url { target, .. } => {
            restore_local(&target.with_database(scratch), scratch, stream, &mut tags).await?
        }
        Source::MysqlUrl { .. } => bail!("a MySQL server reached the PostgreSQL loader"),
    };
    // psql reads to the end of its input; one that stopped early restored only a part.
    if fed != stream.raw_size() {
        bail!(
            "psql stopped reading after {fed} of {} bytes of SQL without an error",
            stream.raw_size()
        );
    }
    Ok(tags.finish())
}

/// psql's stdout read for its `COPY n` command tags; everything else (other tags, the result
/// of `setval`) is dropped as it comes. Only the start of each line is kept.
#[derive(Default)]
pub struct CopyTags {
    line: Vec<u8>,
    counts: Vec<u64>,
}

impl CopyTags {
    /// The longest line looked at: `COPY ` and a 64-bit count.
    const HEAD: usize = 32;

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.take(&bytes[..i]);
            let line = std::mem::take(&mut self.line);
            if let Some(n) = line
                .strip_prefix(b"COPY ")
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok())
            {
                self.counts.push(n);
            }
            self.line = line;
            self.line.clear();
            bytes = &bytes[i + 1..];
        }
        self.take(bytes);
    }

    fn take(&mut self, part: &[u8]) {
        // One byte over the head marks a longer line, which is no tag.
        let room = (Self::HEAD + 1).saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    pub fn finish(self) -> Vec<u64> {
        self.counts
    }
}

impl tokio::io::AsyncWrite for CopyTags {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().feed(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The rows each COPY block of the archive held (`scan`) against those the server took in
/// (`tags`, in the same order): a difference means the restored database is not the backup.
pub fn check_copied(file: &str, scan: &Scan, tags: &[u64]) -> anyhow::Result<()> {
    if scan.tables.len() != tags.len() {
        bail!(
            "{file} holds {} COPY blocks, and psql reported {}: the restore is incomplete",
            scan.tables.len(),
            tags.len()
        );
    }
    let differences: Vec<String> = scan
        .tables
        .iter()
        .zip(tags)
        .filter(|(t, n)| u64::try_from(t.rows).ok() != Some(**n))
        .map(|(t, n)| {
            format!(
                "table {}: {} rows in the archive, the server took {n}",
                t.name, t.rows
            )
        })
        .collect();
    if !differences.is_empty() {
        bail!(
            "the rows restored from {file} differ from the archive's: {}",
            differences.join("; ")
        );
    }
    Ok(())
}

/// The local psql, fed on its stdin, its stdout read into `tags`; returns the bytes it was
/// given.
async fn restore_local(
    target: &DbTarget,
    scratch: &str,
    stream: &mut SqlStream,
    tags: &mut CopyTags,
) -> anyhow::Result<u64> {
    let mut cmd = local_client("psql", target);
    cmd.arg(format!("--dbname={}", target.database()))
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().context(
        "cannot run the local psql (install postgresql-client, or verify through the container)",
    )?;
    let mut stdin = child.stdin.take().context("psql's stdin")?;
    let mut stdout_pipe = child.stdout.take().context("psql's stdout")?;
    let mut stderr_pipe = child.stderr.take().context("psql's stderr")?;
    let feeding = async move {
        let mut buf = vec![0; CHUNK];
        let mut fed = 0;
        loop {
            let n = AsyncReadExt::read(stream, &mut buf).await?;
            // A failed write: psql stopped reading (it exited); its status says why.
            if n == 0 || stdin.write_all(&buf[..n]).await.is_err() {
                return Ok::<u64, io::Error>(fed);
            }
            fed += n as u64;
        }
        // stdin is dropped here, closed: psql sees the end of its input.
    };
    let read_stdout = async {
        let mut buf = vec![0; 8 * 1024];
        while let Ok(n) = stdout_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tags.feed(&buf[..n]);
        }
    };
    let read_stderr = async move {
        let mut kept = Vec::new();
        let mut buf = vec![0; 8 * 1024];
        while let Ok(n) = stderr_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * STDERR_KEPT {
                kept.drain(..kept.len() - STDERR_KEPT);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    };
    let (fed, (), stderr) = tokio::join!(feeding, read_stdout, read_stderr);
    let status = child.wait().await.context("waiting for psql")?;
    let fed = fed.context("reading the archive")?;
    if !status.success() {
        return Err(sql_error(scratch, &stderr, &status.to_string()));
    }
    Ok(fed)
}

/// psql's failure, by its error lines (`psql:<stdin>:42: ERROR:  …`).
fn sql_error(scratch: &str, stderr: &str, exit: &str) -> anyhow::Error {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:") || l.contains("error:"))
        .take(3)
        .collect();
    let reason = if errors.is_empty() {
        stderr.trim()
    } else {
        &errors.join(" | ")
    };
    anyhow!(
        "the restore into the scratch database {scratch} failed with an SQL error ({exit}): {}",
        lifeboat::secret::redact_url(reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::TableEstimate;

    #[test]
    fn copy_tags_are_read_across_chunks_and_other_lines_dropped() {
        let mut tags = CopyTags::default();
        for chunk in [
            "SET\nCOPY 1",
            "2\nsetval\n-------\n 5\nCO",
            "PY 0\nCOPY x\n",
        ] {
            tags.feed(chunk.as_bytes());
        }
        assert_eq!(tags.finish(), [12, 0]);
    }

    #[test]
    fn rows_the_server_took_in_must_be_the_archives() {
        let scan = Scan {
            raw_size: 1,
            tables: vec![
                TableEstimate {
                    name: "public.a".into(),
                    rows: 3,
                },
                TableEstimate {
                    name: "public.b".into(),
                    rows: 2,
                },
            ],
        };
        check_copied("f", &scan, &[3, 2]).expect("same");
        let err = check_copied("f", &scan, &[3, 1])
            .expect_err("differs")
            .to_string();
        assert!(
            err.contains("table public.b: 2 rows in the archive, the server took 1"),
            "{err}"
        );
        let err = check_copied("f", &scan, &[3])
            .expect_err("short")
            .to_string();
        assert!(err.contains("the restore is incomplete"), "{err}");
    }
}
