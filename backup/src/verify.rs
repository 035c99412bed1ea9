//! `lifeboat-backup verify`: is a backup what its manifest says, and does it restore?
//!
//! A backup nobody ever read back is a hope, not a backup: seed 001's script wrote archives for
//! months without anyone checking that one would restore. verify checks, in this order, and says
//! each on stderr: the archive's size and SHA-256 against its manifest; a decompression to the
//! very end, with the bytes of SQL and every table's rows (its `COPY` lines, counted exactly as
//! the backup counted them) against the manifest; and with `--restore-test`, a restore into a
//! scratch database on the same server and a `count(*)` of every table there.
//!
//! Exit 0 only when everything matched; otherwise exit 1 with the first check that failed (all
//! of its differences). The scratch database is always dropped: after success, after a failure,
//! and on SIGTERM or Ctrl-C.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use lifeboat::config::Config;
use lifeboat::db::{self, DbTarget};
use lifeboat::docker::DockerError;
use lifeboat::exit::UsageError;
use lifeboat::output::{hex, human_bytes};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{error, info, warn};

use crate::archive;
use crate::manifest::{self, Entry, TableEstimate, EXTENSIONS};
use crate::source::{local_client, psql, Source};
use crate::sqlscan::RowCounter;

/// Bytes read and handed on at a time (file → decompressor → psql).
const CHUNK: usize = 64 * 1024;

/// The most of psql's stderr kept for an error message.
const STDERR_KEPT: usize = 16 * 1024;

/// Verify the backup `name` (`latest` when `None`); on success print one line on stdout.
pub fn run(config: &Config, name: Option<&str>, restore_test: bool) -> anyhow::Result<()> {
    let entry = find(&config.backup.dir, name.unwrap_or("latest"))?;
    let file = &entry.manifest.file;
    if restore_test && entry.manifest.all {
        return Err(UsageError::new(format!(
            "{file} is a backup of every database and the roles (pg_dumpall, --all); \
             --restore-test restores single-database backups only. Verify it without \
             --restore-test"
        ))
        .into());
    }
    check_size(&entry)?;
    check_sha256(&entry)?;
    let scan = if restore_test {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(restore_test_run(config, &entry))?
    } else {
        let scan = decompress(&entry)?;
        check_scan(&entry, &scan)?;
        scan
    };
    let rows: i64 = scan.tables.iter().map(|t| t.rows).sum();
    println!(
        "verified {file}: sha256 ok, {} bytes of SQL, {} tables, {rows} rows{}",
        scan.raw_size,
        scan.tables.len(),
        if restore_test {
            ", restore test ok"
        } else {
            ""
        }
    );
    Ok(())
}

/// The backup called `name` (its file name, the name without the extension, or a path), or the
/// newest one for `latest`. An unknown name is the user's mistake (exit 2).
pub fn find(dir: &Path, name: &str) -> anyhow::Result<Entry> {
    if name == "latest" {
        return manifests(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .pop()
            .ok_or_else(|| {
                anyhow!(
                    "there are no backups in {} (an archive with its manifest); nothing to verify",
                    dir.display()
                )
            });
    }
    // A path (`backups/backup_….sql.gz`, as a shell completes it) names its own directory.
    let given = Path::new(name);
    let (dir, name) = match (given.parent(), given.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(file)) if !parent.as_os_str().is_empty() => (parent, file),
        _ => (dir, name),
    };
    let name = name.strip_suffix(".json").unwrap_or(name);
    let candidates =
        std::iter::once(name.to_owned()).chain(EXTENSIONS.iter().map(|ext| format!("{name}{ext}")));
    for candidate in candidates {
        let archive = dir.join(&candidate);
        let path = manifest::path_for(&archive);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let manifest = serde_json::from_str(&text).with_context(|| {
                    format!("the manifest {} cannot be read as one", path.display())
                })?;
                return Ok(Entry { archive, manifest });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if archive.is_file() {
                    bail!(
                        "{} has no manifest: it is what is left of a run that did not finish, \
                         not a backup",
                        archive.display()
                    );
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
    }
    Err(UsageError::new(format!(
        "there is no backup named `{name}` in {}; `lifeboat-backup list` shows the backups there",
        dir.display()
    ))
    .into())
}

/// Every manifest in `dir` whose archive name it carries, oldest first, whatever state its
/// archive is in. Not `manifest::list`: that hides a backup whose archive lost bytes, and
/// showing that backup is the whole point of verify (the newest backup must not be skipped for
/// an older, intact one).
pub fn manifests(dir: &Path) -> io::Result<Vec<Entry>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    for item in read.flatten() {
        let path = item.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if !EXTENSIONS.iter().any(|ext| stem.ends_with(ext)) {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<manifest::Manifest>(&text).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(manifest) if manifest.file == stem => entries.push(Entry {
                archive: dir.join(stem),
                manifest,
            }),
            Ok(_) => warn!("{} names another archive; skipped", path.display()),
            Err(e) => warn!("{} is not a manifest ({e}); skipped", path.display()),
        }
    }
    entries.sort_by_key(|e| e.manifest.started);
    Ok(entries)
}

pub fn check_size(entry: &Entry) -> anyhow::Result<()> {
    let m = &entry.manifest;
    let size = match std::fs::metadata(&entry.archive) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "the archive {} is missing: only its manifest is there",
            entry.archive.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", entry.archive.display()))
        }
    };
    if size != m.size {
        bail!(
            "{} is {size} bytes, its manifest says {}: the archive was truncated or replaced",
            m.file,
            m.size
        );
    }
    info!(
        "{}: {size} bytes ({}), as its manifest says",
        m.file,
        human_bytes(size)
    );
    Ok(())
}

pub fn check_sha256(entry: &Entry) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(&entry.archive)
        .with_context(|| format!("cannot open {}", entry.archive.display()))?;
    check_sha256_of(entry, &mut file)
}

/// The SHA-256 of the archive's bytes, read through `file` (which may count them for a
/// progress line, or stop on a signal), against the manifest's.
pub fn check_sha256_of(entry: &Entry, file: &mut dyn Read) -> anyhow::Result<()> {
    let m = &entry.manifest;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 4 * CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", entry.archive.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(&m.sha256) {
        bail!(
            "checksum mismatch: the SHA-256 of {} is {actual}, its manifest says {}; the archive \
             is damaged (or was changed after the backup)",
            m.file,
            m.sha256
        );
    }
    info!("{}: sha256 {actual} matches its manifest", m.file);
    Ok(())
}

/// What the decompressed stream held.
pub struct Scan {
    pub raw_size: u64,
    pub tables: Vec<TableEstimate>,
}

/// The archive read back as SQL, its rows counted on the way. It is a `Read` (the plain check)
/// and a tokio `AsyncRead` (the restore test streams it into psql); either way a decompression
/// error is kept, so that it is reported as what it is rather than as psql's broken input.
pub struct SqlStream {
    reader: Box<dyn Read + Send>,
    rows: RowCounter,
    raw_size: u64,
    failure: Option<io::Error>,
    /// Bytes of SQL read so far, for a progress display (lifeboat-restore).
    progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl SqlStream {
    pub fn open(archive: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            reader: archive::open_reader(archive)
                .with_context(|| format!("cannot open {}", archive.display()))?,
            rows: RowCounter::default(),
            raw_size: 0,
            failure: None,
            progress: None,
        })
    }

    /// Count the bytes of SQL read into `counter` as they go by.
    #[must_use]
    pub fn with_progress(mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.progress = Some(counter);
        self
    }

    /// The reason the decompression stopped, if it did: truncated or corrupt.
    pub fn failure(&mut self, file: &str) -> Option<anyhow::Error> {
        let e = self.failure.take()?;
        let at = self.raw_size;
        Some(if e.kind() == io::ErrorKind::UnexpectedEof {
            anyhow!(
                "{file} is truncated: its compressed stream ends early, after {at} bytes of SQL \
                 ({e})"
            )
        } else {
            anyhow!("{file} is corrupt: decompressing it failed after {at} bytes of SQL: {e}")
        })
    }

    pub fn finish(self) -> Scan {
        Scan {
            raw_size: self.raw_size,
            tables: self.rows.finish(),
        }
    }
}

impl Read for SqlStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf) {
            Ok(n) => {
                self.rows.feed(&buf[..n]);
                self.raw_size += n as u64;
                if let Some(p) = &self.progress {
                    p.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let shown = e.to_string();
                self.failure = Some(e);
                Err(io::Error::new(kind, shown))
            }
        }
    }
}

impl tokio::io::AsyncRead for SqlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A file read and the inflating of one chunk: short, bounded work, done in place (as
        // ArchiveWriter compresses in place).
        let n = Read::read(self.get_mut(), buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Decompress the whole archive, counting its rows.
pub fn decompress(entry: &Entry) -> anyhow::Result<Scan> {
    let mut stream = SqlStream::open(&entry.archive)?;
    if let Err(e) = io::copy(&mut stream, &mut io::sink()) {
        return Err(stream
            .failure(&entry.manifest.file)
            .unwrap_or_else(|| anyhow!(e)));
    }
    Ok(stream.finish())
}

/// The decompressed stream against the manifest: its length, then every table's rows.
pub fn check_scan(entry: &Entry, scan: &Scan) -> anyhow::Result<()> {
    let m = &entry.manifest;
    if scan.raw_size != m.raw_size {
        bail!(
            "{} decompresses to {} bytes of SQL, its manifest says {}: the archive is truncated \
             or damaged",
            m.file,
            scan.raw_size,
            m.raw_size
        );
    }
    info!(
        "{}: decompressed to the end, {} bytes of SQL ({}), as its manifest says",
        m.file,
        scan.raw_size,
        human_bytes(scan.raw_size)
    );
    if !m.exact_rows() {
        warn!(
            "{}: its manifest (format {}) holds estimated row counts; rows are not compared",
            m.file, m.format
        );
        return Ok(());
    }
    let differences = differences(&m.tables, &scan.tables, "the archive");
    if !differences.is_empty() {
        bail!(
            "row counts in {} differ from its manifest: {}",
            m.file,
            differences.join("; ")
        );
    }
    info!(
        "{}: {} tables, {} rows in the archive, each as its manifest says",
        m.file,
        scan.tables.len(),
        scan.tables.iter().map(|t| t.rows).sum::<i64>()
    );
    Ok(())
}

/// Every table whose rows in `found` are not the manifest's, one description each.
pub fn differences(
    expected: &[TableEstimate],
    found: &[TableEstimate],
    place: &str,
) -> Vec<String> {
    let mut counted: HashMap<&str, i64> = HashMap::new();
    for t in found {
        *counted.entry(t.name.as_str()).or_default() += t.rows;
    }
    let mut out = Vec::new();
    for t in expected {
        match counted.remove(t.name.as_str()) {
            Some(n) if n == t.rows => {}
            Some(n) => out.push(format!(
                "table {}: {n} rows in {place}, the manifest says {}",
                t.name, t.rows
            )),
            None => out.push(format!(
                "table {}: not in {place}, the manifest says {} rows",
                t.name, t.rows
            )),
        }
    }
    for t in found {
        if let Some(n) = counted.remove(t.name.as_str()) {
            out.push(format!(
                "table {}: {n} rows in {place}, not in the manifest",
                t.name
            ));
        }
    }
    out
}

/// `lifeboat_verify_<yyyymmddhhmmss>_<random>`: no database of the app's, and no other verify's.
fn scratch_name() -> String {
    let now = Utc::now();
    let random = std::collections::hash_map::RandomState::new()
        .hash_one((std::process::id(), now.timestamp_nanos_opt()));
    format!(
        "lifeboat_verify_{}_{:06x}",
        now.format("%Y%m%d%H%M%S"),
        random & 0xff_ffff
    )
}

/// Restore into a scratch database on the backup source's server, count, compare; the scratch
/// database is dropped whatever happened, a signal included.
async fn restore_test_run(config: &Config, entry: &Entry) -> anyhow::Result<Scan> {
    let m = &entry.manifest;
    if !m.exact_rows() {
        return Err(UsageError::new(format!(
            "{} was written by an earlier lifeboat-backup whose manifest (format {}) holds              estimated row counts: --restore-test cannot compare them; run verify without it",
            m.file, m.format
        ))
        .into());
    }
    if let Some(bad) = m.tables.iter().find(|t| !is_table_name(&t.name)) {
        bail!(
            "the manifest of {} names a table `{}`, which is not schema.table as pg_dump writes \
             it; it cannot be counted",
            m.file,
            bad.name
        );
    }
    let source = Source::resolve(config).await?;
    let scratch = scratch_name();
    let tested = tokio::select! {
        tested = restore_and_count(&source, &scratch, entry) => tested,
        signal = crate::shutdown_signal() => Err(anyhow!("stopped by {signal}")),
    };
    // Signals stay caught from here on (tokio keeps its handler): a second Ctrl-C cannot stop
    // the clean-up halfway.
    let dropped = drop_scratch(&source, &scratch).await;
    match (tested, dropped) {
        (Ok(scan), Ok(())) => {
            info!("dropped the scratch database {scratch}");
            Ok(scan)
        }
        (Ok(_), Err(e)) => Err(e.context(format!(
            "the restore test passed, but the scratch database {scratch} could not be dropped; \
             drop it by hand (DROP DATABASE {scratch})"
        ))),
        (Err(e), Ok(())) => {
            info!("dropped the scratch database {scratch}");
            Err(e)
        }
        (Err(e), Err(drop_error)) => {
            error!(
                "the scratch database {scratch} could not be dropped; drop it by hand \
                 (DROP DATABASE {scratch}): {drop_error:#}"
            );
            Err(e)
        }
    }
}

async fn restore_and_count(source: &Source, scratch: &str, entry: &Entry) -> anyhow::Result<Scan> {
    let m = &entry.manifest;
    create_scratch(source, scratch).await.with_context(|| {
        format!(
            "cannot create the scratch database {scratch} ({})",
            source.describe()
        )
    })?;
    info!(
        "restoring {} into the scratch database {scratch} ({})",
        m.file,
        source.describe()
    );
    let mut stream = SqlStream::open(&entry.archive)?;
    let restored = restore(source, scratch, &mut stream).await;
    // A decompression error is the archive's fault, whatever psql made of its cut input.
    if let Some(e) = stream.failure(&m.file) {
        return Err(e);
    }
    let copied = restored?;
    let scan = stream.finish();
    check_scan(entry, &scan)?;
    check_copied(&m.file, &scan, &copied)?;
    info!("{scratch}: {} restored without an error", m.file);

    let counted = count_rows(source, scratch, &m.tables)
        .await
        .with_context(|| format!("cannot count the rows in the scratch database {scratch}"))?;
    let differences = differences(&m.tables, &counted, "the restored database");
    if !differences.is_empty() {
        bail!(
            "row counts after restoring {} differ from its manifest: {}",
            m.file,
            differences.join("; ")
        );
    }
    info!(
        "{scratch}: {} tables, {} rows counted after the restore, each as the manifest says",
        counted.len(),
        counted.iter().map(|t| t.rows).sum::<i64>()
    );
    Ok(scan)
}

async fn create_scratch(source: &Source, scratch: &str) -> anyhow::Result<()> {
    match source {
        Source::Container {
            docker,
            container,
            credentials,
            ..
        } => {
            docker
                .exec(
                    container,
                    &["createdb", "--no-password", "--template=template0", scratch],
                    &credentials.client_env(),
                    &mut tokio::io::sink(),
                )
                .await?;
        }
        Source::Url { target, .. } => {
            target
                .connect()
                .await?
                .batch_execute(&format!("CREATE DATABASE {scratch} TEMPLATE template0"))
                .await
                .map_err(|e| db::query_error(target, &e))?;
        }
    }
    Ok(())
}

/// Drop the scratch database, its sessions first (a psql stopped by a signal may linger).
async fn drop_scratch(source: &Source, scratch: &str) -> anyhow::Result<()> {
    match source {
        Source::Container {
            docker,
            container,
            credentials,
            ..
        } => {
            let env = &credentials.client_env();
            let dropdb = |force: bool| {
                let mut command = vec!["dropdb", "--no-password", "--if-exists"];
                if force {
                    command.push("--force");
                }
                command.push(scratch);
                async move {
                    docker
                        .exec(container, &command, env, &mut tokio::io::sink())
                        .await
                }
            };
            match dropdb(true).await {
                // dropdb before PostgreSQL 13 has no --force.
                Err(DockerError::ExecFailed { stderr, .. }) if stderr.contains("force") => {
                    dropdb(false).await?;
                }
                other => {
                    other?;
                }
            }
        }
        Source::Url { target, .. } => {
            let admin = target.connect().await?;
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&scratch],
                )
                .await
                .map_err(|e| db::query_error(target, &e))?;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {scratch}"))
                .await
                .map_err(|e| db::query_error(target, &e))?;
        }
    }
    Ok(())
}

/// Stream the SQL into `psql -X -v ON_ERROR_STOP=1` on the scratch database: the first error
/// stops it, and is the reason given. Returns the rows the server took in, one number per
/// `COPY … FROM stdin` block in the order of the script (psql's `COPY n` command tags).
pub async fn restore(
    source: &Source,
    scratch: &str,
    stream: &mut SqlStream,
) -> anyhow::Result<Vec<u64>> {
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
    };
    // psql reads to the end of its input; one that stopped early restored only a part.
    if fed != stream.raw_size {
        bail!(
            "psql stopped reading after {fed} of {} bytes of SQL without an error",
            stream.raw_size
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

/// `SELECT count(*)` of every manifest table in the scratch database.
pub async fn count_rows(
    source: &Source,
    scratch: &str,
    tables: &[TableEstimate],
) -> anyhow::Result<Vec<TableEstimate>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    // ONLY: pg_dump's COPY of a table holds its own rows, not those of tables inheriting it.
    let sql = tables
        .iter()
        .enumerate()
        .map(|(i, t)| format!("SELECT {i}, count(*) FROM ONLY {}", t.name))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut counts = vec![None; tables.len()];
    match source {
        Source::Container {
            docker,
            container,
            credentials,
            ..
        } => {
            let out = psql(docker, container, credentials, scratch, &sql).await?;
            for line in out.lines() {
                let parsed = line
                    .split_once('|')
                    .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<i64>().ok()?)));
                let (i, n) = parsed.with_context(|| format!("psql answered `{line}`"))?;
                if let Some(slot) = counts.get_mut(i) {
                    *slot = Some(n);
                }
            }
        }
        Source::Url { target, .. } => {
            let target = target.with_database(scratch);
            let client = target.connect().await?;
            for row in client
                .query(&sql, &[])
                .await
                .map_err(|e| db::query_error(&target, &e))?
            {
                let i: i32 = row.get(0);
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                    *slot = Some(row.get::<_, i64>(1));
                }
            }
        }
    }
    tables
        .iter()
        .zip(counts)
        .map(|(t, n)| {
            Ok(TableEstimate {
                name: t.name.clone(),
                rows: n.with_context(|| format!("no count came back for {}", t.name))?,
            })
        })
        .collect()
}

/// `schema.table` as pg_dump writes it: each part bare (`[a-z_][a-z0-9_]*`) or double-quoted
/// with `""` for a quote. Anything else in a manifest is not pasted into SQL.
pub fn is_table_name(name: &str) -> bool {
    let mut parts = 0;
    let mut rest = name;
    loop {
        let len = if let Some(quoted) = rest.strip_prefix('"') {
            let bytes = quoted.as_bytes();
            let mut i = 0;
            loop {
                match bytes.get(i) {
                    None => return false,
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            if i == 0 {
                return false;
            }
            i + 2
        } else {
            let n = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            if n == 0 || rest.as_bytes()[0].is_ascii_digit() {
                return false;
            }
            n
        };
        parts += 1;
        rest = &rest[len..];
        match rest.strip_prefix('.') {
            Some(next) if parts < 2 => rest = next,
            _ => return rest.is_empty() && parts == 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An archive of `sql` (gzip) and its manifest, as `backup` writes them, started `at`.
    fn backup(dir: &Path, name: &str, sql: &str, at: &str) -> Entry {
        let archive = dir.join(name);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(sql.as_bytes()).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        std::fs::write(&archive, &bytes).expect("archive");
        let mut rows = RowCounter::default();
        rows.feed(sql.as_bytes());
        let manifest: manifest::Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "file": name, "database": "app", "server_version": "15.4",
            "source": "test", "size": bytes.len(), "raw_size": sql.len(),
            "sha256": hex(&Sha256::digest(&bytes)), "compression": "gzip level 6",
            "started": at, "finished": at, "duration_ms": 1, "tool": "test",
            "tables": rows.finish(),
        }))
        .expect("manifest");
        manifest.write(&archive).expect("write manifest");
        Entry { archive, manifest }
    }

    const SQL: &str = "CREATE TABLE public.items (id int);\n\
        COPY public.items (id) FROM stdin;\n1\n2\n3\n\\.\n\
        COPY shop.\"Order Lines\" (id) FROM stdin;\n1\n\\.\n\
        -- PostgreSQL database dump complete\n";

    #[test]
    fn an_intact_archive_passes_every_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = backup(dir.path(), "backup_1.sql.gz", SQL, "2026-11-23T02:00:00Z");
        check_size(&entry).expect("size");
        check_sha256(&entry).expect("sha256");
        let scan = decompress(&entry).expect("decompress");
        check_scan(&entry, &scan).expect("rows");
        assert_eq!(scan.raw_size, SQL.len() as u64);
        assert_eq!(scan.tables.len(), 2);
    }

    #[test]
    fn a_truncated_archive_with_a_matching_checksum_fails_to_decompress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sql = SQL.repeat(200);
        let entry = backup(dir.path(), "backup_1.sql.gz", &sql, "2026-11-23T02:00:00Z");
        let bytes = std::fs::read(&entry.archive).expect("read");
        std::fs::write(&entry.archive, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = decompress(&entry)
            .map(|_| ())
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn latest_is_the_newest_manifest_even_when_its_archive_lost_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        backup(dir.path(), "backup_1.sql.gz", SQL, "2026-11-22T02:00:00Z");
        let newest = backup(dir.path(), "backup_2.sql.gz", SQL, "2026-11-23T02:00:00Z");
        std::fs::write(&newest.archive, b"cut").expect("damage");
        let found = find(dir.path(), "latest").expect("latest");
        assert_eq!(found.manifest.file, "backup_2.sql.gz");
        let err = check_size(&found).expect_err("must fail").to_string();
        assert!(err.contains("truncated or replaced"), "{err}");
        // By its name, or without the extension; a path names its own directory.
        for name in ["backup_1.sql.gz", "backup_1", "backup_1.sql.gz.json"] {
            assert_eq!(
                find(dir.path(), name).expect(name).manifest.file,
                "backup_1.sql.gz"
            );
        }
        let path = dir.path().join("backup_1.sql.gz").display().to_string();
        let found = find(Path::new("/nonexistent"), &path).expect("by path");
        assert_eq!(found.archive, dir.path().join("backup_1.sql.gz"));
    }

    #[test]
    fn an_unknown_name_is_the_users_mistake_and_an_archive_without_manifest_no_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = find(dir.path(), "backup_9.sql.gz").expect_err("unknown");
        assert_eq!(lifeboat::exit::code_for(&err), lifeboat::exit::USAGE);
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().display().to_string())
                && text.contains("lifeboat-backup list"),
            "{text}"
        );
        std::fs::write(dir.path().join("backup_3.sql.gz"), b"partial").expect("orphan");
        let err = find(dir.path(), "backup_3.sql.gz").expect_err("no manifest");
        assert_eq!(lifeboat::exit::code_for(&err), lifeboat::exit::FAILED);
        assert!(err.to_string().contains("has no manifest"), "{err}");
        let err = find(dir.path(), "latest").expect_err("no backups");
        assert!(err.to_string().contains("no backups"), "{err}");
    }

    #[test]
    fn differences_name_every_table_that_differs() {
        let t = |name: &str, rows| TableEstimate {
            name: name.into(),
            rows,
        };
        let expected = [t("public.a", 3), t("public.b", 2), t("public.c", 1)];
        let found = [t("public.a", 3), t("public.b", 5), t("public.d", 7)];
        assert_eq!(
            differences(&expected, &found, "the archive"),
            [
                "table public.b: 5 rows in the archive, the manifest says 2",
                "table public.c: not in the archive, the manifest says 1 rows",
                "table public.d: 7 rows in the archive, not in the manifest",
            ]
        );
        assert!(differences(&expected, &expected, "x").is_empty());
    }

    #[test]
    fn only_table_names_as_pg_dump_writes_them_are_counted() {
        for good in [
            "public.items",
            "shop.\"Order Lines\"",
            "\"we\"\"ird\".t_1",
            "_s.x9",
        ] {
            assert!(is_table_name(good), "{good}");
        }
        for bad in [
            "items",
            "public.items; DROP DATABASE app",
            "public.\"open",
            "a.b.c",
            "public.Items",
            "1s.t",
            "\"\".t",
            "app/public.items",
        ] {
            assert!(!is_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn scratch_names_are_unique_and_need_no_quoting() {
        let a = scratch_name();
        let b = scratch_name();
        assert_ne!(a, b);
        assert!(a.starts_with("lifeboat_verify_") && a.len() < 63, "{a}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
    }
}
