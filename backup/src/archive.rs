//! One streaming pass from pg_dump's output to a file on disk: compression spread over the
//! cores, exact row counts, SHA-256 of what is written, a `.partial` file that becomes the backup
//! only once everything went right.
//!
//! A backup that did not finish must not look like one: the partial file is removed when the
//! writer is dropped without [`ArchiveWriter::finish`] (an error, a signal, a panic), and the
//! final name appears only after the data and the directory entry are on disk (fsync).
//!
//! gzip is written as pigz does it in spirit: the stream is cut into blocks of [`BLOCK`] bytes,
//! each compressed on its own thread into a gzip member, and the members are written in order.
//! A file of several members is plain gzip (RFC 1952 §2.2): `gunzip`, `zcat`, Python and
//! flate2's `MultiGzDecoder` read it whole. At most two blocks per thread are in flight, so
//! memory stays bounded whatever the database's size.
//!
//! Reading an archive back (size, SHA-256, decompression with row counts) is [`read`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use flate2::write::GzEncoder;
use flate2::Compression;
use lifeboat::config::Compress;
use lifeboat::output::hex;
use sha2::{Digest, Sha256};

use crate::manifest::TableEstimate;
use crate::sqlscan::RowCounter;

pub mod read;

pub use read::{
    check_scan, check_sha256, check_sha256_of, check_size, decompress, open_reader, sha256, Scan,
    SqlStream,
};

/// Bytes of SQL per gzip member: large enough that starting each with an empty dictionary
/// costs well under 1% of size, small enough to keep every core busy.
const BLOCK: usize = 1024 * 1024;

/// Bytes written between two background flushes to disk.
const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// Counts and hashes the bytes on their way to the file, and has them flushed to disk as they
/// go, on a thread of its own: the final fsync then has little left to do, instead of the
/// whole archive waiting in the page cache.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    synced: u64,
    syncer: Option<Syncer>,
}

/// A thread that flushes the file's data to disk when asked.
struct Syncer {
    ask: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Syncer {
    fn start(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    // An error here shows again, and fails the backup, at the final fsync.
                    let _ = file.sync_data();
                }
            })?;
        Ok(Self { ask, thread })
    }

    fn stop(self) {
        drop(self.ask);
        let _ = self.thread.join();
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if self.written - self.synced >= SYNC_EVERY {
            self.synced = self.written;
            self.inner.flush()?;
            if let Some(syncer) = &self.syncer {
                // Busy flushing the previous piece: this one goes with the next.
                let _ = syncer.ask.try_send(());
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Disk = Hashing<BufWriter<File>>;

/// Where compressed bytes go: the file, or an age encryptor in front of it
/// ([`crate::crypt`]). Either way the SHA-256 is of what reaches the disk.
enum Out {
    Plain(Disk),
    Sealed(age::stream::StreamWriter<Disk>),
}

impl Out {
    /// End the stream (the encryption's last chunk) and give the file back.
    fn finish(self) -> io::Result<Disk> {
        match self {
            Self::Plain(f) => Ok(f),
            Self::Sealed(w) => w.finish(),
        }
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(f) => f.write(buf),
            Self::Sealed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(f) => f.flush(),
            Self::Sealed(w) => w.flush(),
        }
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
    /// Each table in the dump and its rows, counted exactly.
    pub tables: Vec<TableEstimate>,
}

/// A compression job: a block of SQL and where its gzip member goes.
type Job = (Vec<u8>, SyncSender<io::Result<Vec<u8>>>);

/// The compression threads; dropping the pool stops them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // A closed queue ends each thread's loop.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// gzip over `threads` threads, one member per block, written in order.
struct ParallelGzip {
    out: Out,
    block: Vec<u8>,
    pool: Pool,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    members: u64,
}

impl ParallelGzip {
    fn new(out: Out, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let level = Compression::new(level);
        let workers = (0..threads)
            .map(|i| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("gzip-{i}"))
                    .spawn(move || loop {
                        let job = queue.lock().map(|q| q.recv());
                        let Ok(Ok((block, reply))) = job else { return };
                        let _ = reply.send(gzip_member(&block, level));
                    })
            })
            .collect::<io::Result<_>>()?;
        Ok(Self {
            out,
            block: Vec::with_capacity(BLOCK),
            pool: Pool {
                jobs: Some(jobs),
                workers,
            },
            pending: VecDeque::new(),
            max_pending: 2 * threads,
            members: 0,
        })
    }

    /// Hand the current block to a thread; write finished members while too many are waiting.
    fn send_block(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let (reply, member) = mpsc::sync_channel(1);
        self.pool
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the archive is already finished"))?
            .send((block, reply))
            .map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.pending.push_back(member);
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(member) = self.pending.pop_front() {
            let bytes = member
                .recv()
                .map_err(|_| io::Error::other("a compression thread stopped"))??;
            self.out.write_all(&bytes)?;
            self.members += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Out> {
        // An empty dump is still one valid (empty) gzip member.
        if !self.block.is_empty() || self.members == 0 && self.pending.is_empty() {
            self.send_block()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        Ok(self.out)
    }
}

impl Write for ParallelGzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gzip_member(block: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(block.len() / 3), level);
    gz.write_all(block)?;
    gz.finish()
}

enum Encoder {
    Gzip(ParallelGzip),
    Zstd(zstd::stream::write::Encoder<'static, Out>),
}

impl Encoder {
    fn finish(self) -> io::Result<Out> {
        match self {
            Self::Gzip(gz) => gz.finish(),
            Self::Zstd(z) => z.finish(),
        }
    }
}

/// The archive being written. Also a tokio `AsyncWrite`, so Docker's exec stream or a child
/// process's stdout can be copied straight into it.
pub struct ArchiveWriter {
    encoder: Option<Encoder>,
    rows: RowCounter,
    partial: PathBuf,
    path: PathBuf,
    raw_size: u64,
    /// Bytes of SQL taken in, shown on a terminal ([`ArchiveWriter::with_progress`]).
    progress: Option<lifeboat::progress::Bar>,
}

/// Create the backup directory (0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Remove what killed runs left in `dir` (SIGKILL, the OOM killer, a power cut): `.partial`
/// archives and manifests that no running backup holds, and manifests whose archive never got
/// its name. Called under the backup lock; files of a backup of another database that is
/// running are held by it and stay, and nothing else (a file of the user's) is touched. The
/// names removed.
pub fn remove_stale(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let is_archive = |n: &str| crate::manifest::EXTENSIONS.iter().any(|e| n.ends_with(e));
    let mut removed = Vec::new();
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // Only regular files, never through a link.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // A running backup holds its archive's `.partial` from start to rename.
        let held = |partial: &Path| File::open(partial).is_ok_and(|f| f.try_lock().is_err());
        let stale = if let Some(base) = name.strip_suffix(".partial") {
            if is_archive(base) {
                !held(&path)
            } else if let Some(archive) = base.strip_suffix(".json").filter(|a| is_archive(a)) {
                // A manifest being written: its archive's `.partial` is still held.
                !held(&dir.join(format!("{archive}.partial")))
            } else {
                false
            }
        } else if let Some(archive) = name.strip_suffix(".json").filter(|a| is_archive(a)) {
            let archive_path = dir.join(archive);
            let mut partial = archive_path.as_os_str().to_owned();
            partial.push(".partial");
            // Written before its archive is renamed: stale only when neither is there, and
            // only a manifest of ours for that very archive.
            !archive_path.exists()
                && !Path::new(&partial).exists()
                && std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<crate::manifest::Manifest>(&b).ok())
                    .is_some_and(|m| m.file == archive)
        } else {
            false
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

impl ArchiveWriter {
    /// Start `path` (written as `path.partial`, mode 0600), compressed with `compress` at
    /// `level` over `threads` threads.
    /// With `sealing`, the compressed stream is encrypted with age before it reaches the
    /// file: nothing unencrypted is ever written.
    pub fn create(
        path: &Path,
        compress: Compress,
        level: u32,
        threads: usize,
        sealing: Option<&crate::crypt::Sealing>,
    ) -> io::Result<Self> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        // Held while the file is written: a partial file nobody holds is what a killed run
        // left ([`remove_stale`]); one a run of another database is writing is not.
        if let Err(e) = file.try_lock() {
            let _ = std::fs::remove_file(&partial);
            return Err(io::Error::other(e.to_string()));
        }
        let syncer = match Syncer::start(&file) {
            Ok(syncer) => syncer,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let file = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            written: 0,
            synced: 0,
            syncer: Some(syncer),
        };
        let out = match sealing {
            None => Ok(Out::Plain(file)),
            Some(sealing) => sealing.wrap(file).map(Out::Sealed),
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let encoder = match compress {
            Compress::Gzip => ParallelGzip::new(out, level, threads).map(Encoder::Gzip),
            Compress::Zstd => zstd_encoder(out, level, threads).map(Encoder::Zstd),
        };
        let encoder = match encoder {
            Ok(e) => e,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        Ok(Self {
            encoder: Some(encoder),
            rows: RowCounter::default(),
            partial,
            path: path.to_path_buf(),
            raw_size: 0,
            progress: None,
        })
    }

    /// Show the bytes of SQL taken in on `bar`; it is cleared when the archive is finished or
    /// dropped.
    #[must_use]
    pub fn with_progress(mut self, bar: lifeboat::progress::Bar) -> Self {
        self.progress = Some(bar);
        self
    }

    /// End the stream, fsync the file, give it its final name and fsync the directory.
    pub fn finish(self) -> io::Result<Finished> {
        self.finish_with(|_| Ok(())).map(|(finished, ())| finished)
    }

    /// End the stream and fsync the file; then `before_rename` (which writes the manifest), and
    /// only then the final name: a run killed at any point leaves a `.partial` file (removed by
    /// the next run, [`remove_stale`]), never an archive without its manifest.
    pub fn finish_with<T>(
        mut self,
        before_rename: impl FnOnce(&Finished) -> io::Result<T>,
    ) -> io::Result<(Finished, T)> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| io::Error::other("the archive is already finished"))?;
        // The SQL is all in: the bar goes before the final flush and fsync.
        drop(self.progress.take());
        let result = (|| {
            let Hashing {
                inner,
                hasher,
                written,
                syncer,
                ..
            } = encoder.finish()?.finish()?;
            if let Some(syncer) = syncer {
                syncer.stop();
            }
            let file = inner.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            Ok((written, hex(&hasher.finalize()), file))
        })();
        let (size, sha256, file) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&self.partial);
                return Err(e);
            }
        };
        let finished = Finished {
            size,
            raw_size: self.raw_size,
            sha256,
            tables: std::mem::take(&mut self.rows).finish(),
        };
        let extra = match before_rename(&finished) {
            Ok(extra) => extra,
            Err(e) => {
                let _ = std::fs::remove_file(&self.partial);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&self.partial, &self.path) {
            let _ = std::fs::remove_file(&self.partial);
            let _ = std::fs::remove_file(crate::manifest::path_for(&self.path));
            return Err(e);
        }
        // The lock goes with the handle, once the file has its name.
        drop(file);
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok((finished, extra))
    }
}

fn zstd_encoder(
    out: Out,
    level: u32,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, Out>> {
    let mut z = zstd::stream::write::Encoder::new(out, i32::try_from(level).unwrap_or(3))?;
    if threads > 1 {
        z.multithread(u32::try_from(threads).unwrap_or(1))?;
        // Jobs of 2 MiB rather than zstd's default of four windows (8 MiB at level 3): the same
        // speed, and memory stays well under the 64 MB a backup may take.
        z.set_parameter(zstd::zstd_safe::CParameter::JobSize(2 * 1024 * 1024))?;
    }
    z.include_checksum(true)?;
    Ok(z)
}

impl Write for ArchiveWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.encoder.as_mut() {
            Some(Encoder::Gzip(gz)) => gz.write(buf)?,
            Some(Encoder::Zstd(z)) => z.write(buf)?,
            None => return Err(io::Error::other("the archive is already finished")),
        };
        self.rows.feed(&buf[..n]);
        self.raw_size += n as u64;
        if let Some(bar) = &self.progress {
            bar.inc(n as u64);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for ArchiveWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Hand-off to the compression threads and a buffered file write: short, bounded work,
        // done in place.
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

    fn mode(path: &Path) -> u32 {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).expect("meta").permissions(),
        ) & 0o777
    }

    /// Several blocks of text that is not trivially compressible, with a COPY block.
    fn sql() -> Vec<u8> {
        let mut s = b"COPY public.t (id, v) FROM stdin;\n".to_vec();
        let mut x: u64 = 7;
        for i in 0..150_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s.extend_from_slice(format!("{i}\t{x:x}{}\n", x % 977).as_bytes());
        }
        s.extend_from_slice(b"\\.\n");
        s
    }

    #[test]
    fn a_finished_archive_reads_back_with_its_sha256_and_rows() {
        let input = sql();
        assert!(
            input.len() > 2 * BLOCK,
            "the test needs several gzip members"
        );
        for (compress, threads) in [
            (Compress::Gzip, 1),
            (Compress::Gzip, 3),
            (Compress::Zstd, 2),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join(format!("backup.{}", compress.extension()));
            let mut w =
                ArchiveWriter::create(&path, compress, compress.default_level(), threads, None)
                    .expect("create");
            for chunk in input.chunks(100_000) {
                w.write_all(chunk).expect("write");
            }
            let done = w.finish().expect("finish");
            let bytes = std::fs::read(&path).expect("read");
            assert_eq!(done.size, bytes.len() as u64);
            assert_eq!(done.raw_size, input.len() as u64);
            assert_eq!(done.sha256, hex(&Sha256::digest(&bytes)));
            assert_eq!(
                done.tables,
                vec![TableEstimate {
                    offset: Some(0),
                    bytes: Some(input.len() as u64),
                    ..TableEstimate::new("public.t", 150_000)
                }]
            );
            let mut back = Vec::new();
            open_reader(&path, &crate::crypt::Keys::none())
                .expect("open")
                .read_to_end(&mut back)
                .expect("decompress");
            assert!(
                back == input,
                "{compress} with {threads} threads reads back the same"
            );
            assert_eq!(mode(&path), 0o600);
        }
    }

    #[test]
    fn an_empty_dump_is_still_valid_gzip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.sql.gz");
        let w = ArchiveWriter::create(&path, Compress::Gzip, 6, 2, None).expect("create");
        w.finish().expect("finish");
        let mut back = Vec::new();
        open_reader(&path, &crate::crypt::Keys::none())
            .expect("open")
            .read_to_end(&mut back)
            .expect("gunzip");
        assert!(back.is_empty());
    }

    #[test]
    fn an_unfinished_archive_leaves_nothing_behind() {
        for compress in [Compress::Gzip, Compress::Zstd] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join(format!("backup.{}", compress.extension()));
            let mut w = ArchiveWriter::create(&path, compress, 1, 2, None).expect("create");
            w.write_all(&sql()).expect("write");
            drop(w);
            assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        }
    }
}
