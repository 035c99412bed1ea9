//! One streaming pass from pg_dump's output to a file on disk: gzip, SHA-256 of what is
//! written, a `.partial` file that becomes the backup only once everything went right.
//!
//! A backup that did not finish must not look like one: the partial file is removed when the
//! writer is dropped without [`ArchiveWriter::finish`] (an error, a signal, a panic), and the
//! final name appears only after the data and the directory entry are on disk (fsync).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use flate2::write::GzEncoder;
use flate2::Compression;
use lifeboat::output::hex;
use sha2::{Digest, Sha256};

/// Counts and hashes the bytes on their way to the file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a finished archive is.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Bytes on disk (compressed).
    pub size: u64,
    /// Bytes pg_dump produced (uncompressed).
    pub raw_size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// The archive being written. Also a tokio `AsyncWrite`, so Docker's exec stream or a child
/// process's stdout can be copied straight into it.
pub struct ArchiveWriter {
    encoder: Option<GzEncoder<Hashing<BufWriter<File>>>>,
    partial: PathBuf,
    path: PathBuf,
    raw_size: u64,
}

/// Create the backup directory (0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

impl ArchiveWriter {
    /// Start `path` (written as `path.partial`, mode 0600) with gzip at `level`.
    pub fn create(path: &Path, level: u32) -> io::Result<Self> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        let hashing = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            written: 0,
        };
        Ok(Self {
            encoder: Some(GzEncoder::new(hashing, Compression::new(level))),
            partial,
            path: path.to_path_buf(),
            raw_size: 0,
        })
    }

    fn encoder(&mut self) -> io::Result<&mut GzEncoder<Hashing<BufWriter<File>>>> {
        self.encoder
            .as_mut()
            .ok_or_else(|| io::Error::other("the archive is already finished"))
    }

    /// End the gzip stream, fsync the file, give it its final name and fsync the directory.
    pub fn finish(mut self) -> io::Result<Finished> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| io::Error::other("the archive is already finished"))?;
        let hashing = encoder.finish()?;
        let Hashing {
            inner,
            hasher,
            written,
        } = hashing;
        let file = inner.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.partial, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let sha256 = hex(&hasher.finalize());
        Ok(Finished {
            size: written,
            raw_size: self.raw_size,
            sha256,
        })
    }
}

impl Write for ArchiveWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder()?.write(buf)?;
        self.raw_size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.encoder()?.flush()
    }
}

impl tokio::io::AsyncWrite for ArchiveWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Compression and a buffered file write: short, bounded work, done in place.
        let this = self.get_mut();
        Poll::Ready(this.write_all(buf).map(|()| buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if self.encoder.is_some() {
            // Not finished: whatever is there is not a backup.
            self.encoder = None;
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_archive_is_plain_gzip_with_its_sha256() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.sql.gz");
        let mut w = ArchiveWriter::create(&path, 6).expect("create");
        w.write_all(b"CREATE TABLE t (id int);\n").expect("write");
        let done = w.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(done.size, bytes.len() as u64);
        assert_eq!(done.raw_size, 25);
        let expected = hex(&Sha256::digest(&bytes));
        assert_eq!(done.sha256, expected);
        let mut text = String::new();
        io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(bytes.as_slice()),
            &mut text,
        )
        .expect("gunzip");
        assert_eq!(text, "CREATE TABLE t (id int);\n");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_unfinished_archive_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.sql.gz");
        let mut w = ArchiveWriter::create(&path, 1).expect("create");
        w.write_all(&vec![b'x'; 100_000]).expect("write");
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
