//! An archive read back: its size and SHA-256 against its manifest, and its SQL decompressed to
//! the very end with every table's rows counted on the way, exactly as the backup counted them.
//!
//! verify, lifeboat-restore and `list` read archives only through here, so that "intact" means
//! the same to all of them.

use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use lifeboat::output::{hex, human_bytes};
use lifeboat::progress::Bar;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::crypt::{self, Keys};
use crate::manifest::{self, Entry, TableEstimate};
use crate::sqlscan::RowCounter;

/// Bytes read and hashed at a time.
const HASH_CHUNK: usize = 1 << 20;

/// Read an archive back as SQL, by its extension: `.sql.gz` (one or many gzip members) or
/// `.sql.zst`, either with `.age` after it when it is encrypted (decrypted with `keys`).
pub fn open_reader(path: &Path, keys: &Keys) -> anyhow::Result<Box<dyn Read + Send>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let name = path.to_string_lossy();
    let (name, bytes): (&str, Box<dyn Read + Send>) = match name.strip_suffix(crypt::EXTENSION) {
        Some(inner) => (inner, keys.open(file, &path.display().to_string())?),
        None => (&name, Box::new(file)),
    };
    let bytes = io::BufReader::with_capacity(256 * 1024, bytes);
    if name.ends_with(".sql.zst") {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(bytes)?))
    } else if name.ends_with(".sql.gz") {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(bytes)))
    } else {
        bail!(
            "{} is none of .sql.gz, .sql.zst and the same with .age",
            path.display()
        )
    }
}

/// The SHA-256 of everything `reader` gives, hex.
pub fn sha256(reader: &mut dyn Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// The archive's size on disk against its manifest's.
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

/// The archive's SHA-256 against its manifest's, with a progress bar on a terminal.
pub fn check_sha256(entry: &Entry) -> anyhow::Result<()> {
    let file = std::fs::File::open(&entry.archive)
        .with_context(|| format!("cannot open {}", entry.archive.display()))?;
    let bar = Bar::bytes(
        &format!("checking {}", entry.manifest.file),
        Some(entry.manifest.size),
    );
    check_sha256_of(
        entry,
        &mut Counted {
            inner: file,
            bar: &bar,
        },
    )
}

/// `inner`, its bytes shown on a progress bar as they are read.
struct Counted<'a, R> {
    inner: R,
    bar: &'a Bar,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// The SHA-256 of the archive's bytes, read through `file` (which may count them for a
/// progress bar, or stop on a signal), against the manifest's.
pub fn check_sha256_of(entry: &Entry, file: &mut dyn Read) -> anyhow::Result<()> {
    let m = &entry.manifest;
    let actual =
        sha256(file).with_context(|| format!("cannot read {}", entry.archive.display()))?;
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
/// and a tokio `AsyncRead` (the loader streams it into psql); either way a decompression error
/// is kept, so that it is reported as what it is rather than as psql's broken input.
pub struct SqlStream {
    reader: Box<dyn Read + Send>,
    rows: RowCounter,
    raw_size: u64,
    failure: Option<io::Error>,
    /// Bytes of SQL read so far, for a progress bar.
    progress: Option<Arc<AtomicU64>>,
}

impl SqlStream {
    pub fn open(archive: &Path, keys: &Keys) -> anyhow::Result<Self> {
        Ok(Self {
            reader: open_reader(archive, keys)?,
            rows: RowCounter::default(),
            raw_size: 0,
            failure: None,
            progress: None,
        })
    }

    /// Count the bytes of SQL read into `counter` as they go by.
    #[must_use]
    pub fn with_progress(mut self, counter: Arc<AtomicU64>) -> Self {
        self.progress = Some(counter);
        self
    }

    /// Bytes of SQL read so far.
    pub fn raw_size(&self) -> u64 {
        self.raw_size
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
                    p.fetch_add(n as u64, Ordering::Relaxed);
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

/// Decompress the whole archive, counting its rows; `progress` counts the bytes of SQL.
pub fn decompress(
    entry: &Entry,
    keys: &Keys,
    progress: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Scan> {
    let mut stream = SqlStream::open(&entry.archive, keys)?;
    if let Some(counter) = progress {
        stream = stream.with_progress(counter);
    }
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
    let differences = manifest::differences(&m.tables, &scan.tables, "the archive");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::fixture::SQL;

    /// An archive of `sql` and its manifest.
    fn backup(dir: &Path, name: &str, sql: &str) -> Entry {
        manifest::fixture::backup(dir, name, sql, "2026-11-23T02:00:00Z")
    }

    #[test]
    fn an_intact_archive_passes_every_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = backup(dir.path(), "backup_1.sql.gz", SQL);
        check_size(&entry).expect("size");
        check_sha256(&entry).expect("sha256");
        assert!(entry.intact().expect("intact"));
        let counter = Arc::new(AtomicU64::new(0));
        let scan =
            decompress(&entry, &Keys::none(), Some(Arc::clone(&counter))).expect("decompress");
        check_scan(&entry, &scan).expect("rows");
        assert_eq!(scan.raw_size, SQL.len() as u64);
        assert_eq!(counter.load(Ordering::Relaxed), SQL.len() as u64);
        assert_eq!(scan.tables.len(), 2);
    }

    #[test]
    fn a_truncated_archive_with_a_matching_checksum_fails_to_decompress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sql = SQL.repeat(200);
        let entry = backup(dir.path(), "backup_1.sql.gz", &sql);
        let bytes = std::fs::read(&entry.archive).expect("read");
        std::fs::write(&entry.archive, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = decompress(&entry, &Keys::none(), None)
            .map(|_| ())
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn a_changed_archive_fails_its_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = backup(dir.path(), "backup_1.sql.gz", SQL);
        let mut bytes = std::fs::read(&entry.archive).expect("read");
        bytes[20] ^= 1;
        std::fs::write(&entry.archive, &bytes).expect("change");
        let err = check_sha256(&entry).expect_err("must fail").to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(!entry.intact().expect("intact"));
    }
}
