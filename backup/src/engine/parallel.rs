//! A plain `pg_dump` script loaded on several sessions at once (issue 21), streaming, in
//! bounded memory.
//!
//! The script is cut by [`crate::pgscript`]. Then:
//! 1. the pre-data part (schema) runs in order on session 0; the statements before its first
//!    entry (`SET`s, `\restrict`) are the preamble every session runs first;
//! 2. once the schema is in (a barrier), each table's `COPY` block goes to a session with
//!    nothing left to do; while every session is busy, blocks wait in a temporary file in the
//!    backup directory ([`Spill`]) and the archive is read on, the largest (by the manifest)
//!    given first to the next session done; the other data statements (sequence values, large
//!    objects) go to session 0 in order;
//! 3. once every row is in (a barrier), the post-data part: indexes, primary keys, unique,
//!    check and exclusion constraints kept until the archive is read, then given out the
//!    largest table's first, each to a session done with the one before ([`Pending`]: a
//!    marker after each tells when), never beside one it would wait for on its table's lock;
//!    everything else (foreign keys,
//!    triggers, `ALTER … OWNER`, grants, comments, index attachments) kept back, then run in
//!    the archive's order on session 0 after a last barrier. `SET`s of an entry travel with
//!    its next statement.
//!
//! Session 0 is always psql. The sessions that load rows and build indexes are, where the
//! server can be reached from here (a URL, or the container's address), connections of our
//! own ([`run_direct`]: `jobs` of them besides session 0, the rows going over the protocol's
//! `COPY` with no `docker exec` stream and no psql in their way); else psql too, session 0
//! among them.
//!
//! A barrier is a `SELECT` of a marker with a random nonce that each session echoes back when
//! all it was given before it is done. psql's `COPY n` tags (or a direct session's counts)
//! come back per session; each block's count is put back in the archive's order, so the row
//! checks are the serial load's.
//!
//! psql runs with `ON_ERROR_STOP` (a direct session stops at its first error too): the first
//! error ends its session, and the load stops at once (every other session's input is
//! closed). A part of the script the splitter cannot read goes, after a barrier, serially on
//! session 0 from there on, with a warning.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use lifeboat::db::DbTarget;
use lifeboat::docker::{Docker, DockerError};
use lifeboat::engine::{LoadPlan, Loaded, Script};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::postgres::{copy_tag, LineHead, Lines};
use crate::pgscript::{Piece, Section, Splitter, META};

/// Bytes read from the archive at a time.
const READ: usize = 256 * 1024;

/// Bytes queued in memory for one session before the dispatcher waits for it (or spills).
const MEMORY: u64 = 2 * 1024 * 1024;

/// The most bytes of post-data statements kept back for the end; beyond, they go after a
/// barrier.
const DEFERRED_MAX: u64 = 64 * 1024 * 1024;

/// How to start one psql session on the restore database.
#[derive(Clone)]
pub enum Client {
    /// psql in the database container.
    Exec {
        docker: Docker,
        container: String,
        env: Vec<String>,
    },
    /// The local psql against a URL.
    Local { target: DbTarget },
}

/// What a session's psql said on stdout so far.
#[derive(Default)]
struct Said {
    /// `COPY n` tags, in the order of its blocks.
    tags: Vec<u64>,
    /// The last barrier it reached.
    synced: u64,
    /// It ended (its input closed, or an error).
    ended: bool,
}

struct Progress {
    said: Mutex<Said>,
    changed: Notify,
    /// The dispatcher's: told of every change too.
    wake: Arc<Notify>,
}

/// psql's stdout, read for `COPY n` tags and barrier markers.
type Output = Lines<Heard>;

struct Heard {
    progress: Arc<Progress>,
    marker: String,
}

impl LineHead for Heard {
    const HEAD: usize = 96;

    fn line(&mut self, head: &[u8]) {
        let head = head.trim_ascii();
        if let Some(n) = copy_tag(head) {
            self.progress.said(|said| said.tags.push(n));
        } else {
            self.marker(head);
        }
    }
}

impl Heard {
    /// A barrier's marker, when `text` is one.
    fn marker(&self, text: &[u8]) {
        if let Some(id) = text
            .strip_prefix(self.marker.as_bytes())
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse().ok())
        {
            self.progress.said(|said| said.synced = id);
        }
    }
}

impl Progress {
    /// Change what the session said, and wake whoever waits on it.
    fn said(&self, change: impl FnOnce(&mut Said)) {
        change(&mut self.said.lock().expect("progress"));
        self.changed.notify_waiters();
        self.wake.notify_one();
    }
}

/// What a session is given, in the archive's order: the pieces the dispatcher cut, so that a
/// session of our own runs them as they are, with no second cut, and psql gets their bytes.
#[derive(Clone)]
enum Work {
    /// One statement, with the comments before it (or a barrier's marker).
    Sql(Vec<u8>),
    /// A psql meta-command line (`\restrict`…).
    Meta(Vec<u8>),
    /// A table's rows begin: its `COPY … FROM stdin;`.
    CopyStart(Vec<u8>),
    /// Rows of the current `COPY`.
    Rows(Vec<u8>),
    /// Rows of the current `COPY` in the spill file, read as they are written.
    Spilled(Arc<Segment>),
    /// The current `COPY`'s end (`\.`).
    CopyEnd,
    /// After the splitter gave up: the rest of the archive as it is (psql only).
    Serial(Vec<u8>),
}

impl Work {
    /// The bytes it carries, as the archive has them (none for a spilled block or an end).
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Work::Sql(b) | Work::Meta(b) | Work::CopyStart(b) | Work::Rows(b) | Work::Serial(b) => {
                Some(b)
            }
            Work::Spilled(_) | Work::CopyEnd => None,
        }
    }

    /// Its bytes held in memory.
    fn held(&self) -> u64 {
        self.bytes().map_or(0, |b| b.len() as u64)
    }
}

/// How much a session has been given and not yet passed on to its psql.
#[derive(Default)]
struct Load {
    /// Bytes queued in memory ([`Work::held`]): what the dispatcher waits on.
    memory: AtomicU64,
    /// Every byte given and not yet passed on, spilled ones included: 0 is an idle session.
    outstanding: AtomicU64,
}

struct Session {
    tx: Option<mpsc::UnboundedSender<Work>>,
    progress: Arc<Progress>,
    load: Arc<Load>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The archive's COPY blocks (their index) this session was given, in order.
    blocks: Vec<usize>,
    /// The last barrier (or statement's marker) it was sent.
    barrier: u64,
    /// The index or key it was last given.
    running: Option<Pending>,
}

impl Session {
    /// Session `index`: psql through `client`, or a connection to `direct`.
    fn start(
        client: &Client,
        direct: Option<&DbTarget>,
        database: &str,
        marker: &str,
        index: usize,
        wake: &Arc<Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<Work>();
        let progress = Arc::new(Progress {
            said: Mutex::new(Said::default()),
            changed: Notify::new(),
            wake: Arc::clone(wake),
        });
        let heard = Heard {
            progress: Arc::clone(&progress),
            marker: marker.to_owned(),
        };
        let load = Arc::new(Load::default());
        let feeder = Feeder {
            rx,
            load: Arc::clone(&load),
            wake: Arc::clone(wake),
        };
        let client = client.clone();
        let direct = direct.cloned();
        let database = database.to_owned();
        let ended = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let result = match direct {
                Some(target) => run_direct(&target, &database, feeder, heard).await,
                None => run_session(client, &database, feeder, Lines::new(heard)).await,
            };
            ended.said(|said| said.ended = true);
            result.with_context(|| format!("session {index} of the parallel load"))
        });
        Self {
            tx: Some(tx),
            progress,
            load,
            task,
            blocks: Vec::new(),
            barrier: 0,
            running: None,
        }
    }

    /// Queue `work` at once, whatever is queued; an error when the session ended.
    fn push(&self, work: Work) -> anyhow::Result<()> {
        let held = work.held();
        self.load.memory.fetch_add(held, Ordering::SeqCst);
        let len = match &work {
            Work::Spilled(segment) => segment.written(),
            _ => held,
        };
        self.load.outstanding.fetch_add(len, Ordering::SeqCst);
        let tx = self.tx.as_ref().context("the session was closed")?;
        tx.send(work)
            .map_err(|_| anyhow!("a session of the parallel load ended early"))
    }

    fn full(&self) -> bool {
        self.load.memory.load(Ordering::SeqCst) >= MEMORY
    }

    fn idle(&self) -> bool {
        self.load.outstanding.load(Ordering::SeqCst) == 0
    }

    fn ended(&self) -> bool {
        self.progress.said.lock().expect("progress").ended
    }

    /// It ran everything it was given up to its last marker: done with the server too, not
    /// only with its queue.
    fn done(&self) -> bool {
        self.progress.said.lock().expect("progress").synced >= self.barrier
    }
}

/// An index or key (a post-data statement that depends on its table's rows only) waiting for
/// a session. They are given out once the archive is read, the largest table's first, each to
/// a session done with all it had, so that the longest builds start first and none waits
/// behind another in a session's queue.
struct Pending {
    /// Its table, as pg_dump names it.
    table: Option<String>,
    /// `ALTER TABLE … ADD CONSTRAINT`: its lock on the table stops every other statement on it.
    locks: bool,
    /// The statement, after the `SET`s before it.
    work: Vec<Work>,
}

impl Pending {
    /// Both on one table, one of them locking it: the second would only wait.
    fn conflicts(&self, other: &Pending) -> bool {
        (self.locks || other.locks) && self.table.is_some() && self.table == other.table
    }
}

/// Where a session's work goes: psql's stdin ([`Psql`]), or a connection of our own
/// ([`Direct`]).
trait Sink {
    /// Run one piece; an error ends the session.
    async fn take(&mut self, work: Work) -> anyhow::Result<()>;
}

/// A session's side of its queue: what it is given, passed on to its sink.
struct Feeder {
    rx: mpsc::UnboundedReceiver<Work>,
    load: Arc<Load>,
    wake: Arc<Notify>,
}

impl Feeder {
    /// Pass everything given on to `sink` until the queue closes, or the first error (psql
    /// ended, a statement failed, the spill file could not be read). False when the load
    /// stopped meanwhile (another session's error, a signal): that error is the one to tell.
    async fn run<S: Sink>(mut self, sink: &mut S) -> anyhow::Result<bool> {
        while let Some(work) = self.rx.recv().await {
            if let Work::Spilled(segment) = work {
                if !self.spilled(&segment, sink).await? {
                    return Ok(false);
                }
                continue;
            }
            let held = work.held();
            let result = sink.take(work).await;
            self.load.memory.fetch_sub(held, Ordering::SeqCst);
            self.done(held);
            result?;
        }
        Ok(true)
    }

    fn done(&self, len: u64) {
        self.load.outstanding.fetch_sub(len, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Rows from the spill file, read as they are written, until their segment is closed; false
    /// when the load stopped first.
    async fn spilled<S: Sink>(&self, segment: &Segment, sink: &mut S) -> anyhow::Result<bool> {
        let mut at = 0;
        loop {
            let grown = segment.grown.notified();
            let (len, closed, failed) = {
                let state = segment.state.lock().expect("segment");
                (state.len, state.closed, state.failed)
            };
            if failed {
                return Ok(false);
            }
            if at < len {
                let want = (len - at).min(READ as u64);
                let rows = segment
                    .read(at, want)
                    .await
                    .context("cannot read the spill file back")?;
                at += want;
                let result = sink.take(Work::Rows(rows)).await;
                self.done(want);
                result?;
            } else if closed {
                return Ok(true);
            } else {
                grown.await;
            }
        }
    }
}

/// psql's stdin: every piece's bytes, as the archive has them.
struct Psql<W>(W);

impl<W: AsyncWrite + Unpin> Sink for Psql<W> {
    async fn take(&mut self, work: Work) -> anyhow::Result<()> {
        let bytes = match &work {
            Work::CopyEnd => b"\\.\n".as_slice(),
            Work::Spilled(_) => bail!("a spilled block reached psql unread"),
            _ => work.bytes().unwrap_or_default(),
        };
        self.0.write_all(bytes).await.context("psql's input")
    }
}

/// The temporary file in the backup directory where `COPY` blocks wait while every session is
/// busy, so that reading the archive goes on. Unnamed (`O_TMPFILE`; where the filesystem has
/// none, a new random name made exclusively and removed at once): nothing is left behind,
/// whatever stops the restore, and no name in the directory is ever followed.
struct Spill {
    file: Arc<std::fs::File>,
    dir: std::path::PathBuf,
    /// Bytes written so far: the next segment's start.
    end: u64,
    /// The most it may hold: half the directory's free space when it was made.
    budget: u64,
    /// Every segment, closed (as failed) if the load stops midway so that no session waits on
    /// one.
    segments: Vec<Arc<Segment>>,
}

impl Spill {
    fn create(dir: &std::path::Path) -> anyhow::Result<Self> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("cannot make a temporary file in {}", dir.display()))?;
        let stat = rustix::fs::fstatvfs(&file)
            .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        Ok(Self {
            file: Arc::new(file),
            dir: dir.to_owned(),
            end: 0,
            budget: free / 2,
            segments: Vec::new(),
        })
    }

    fn segment(&mut self) -> Arc<Segment> {
        let segment = Arc::new(Segment {
            file: Arc::clone(&self.file),
            start: self.end,
            state: Mutex::new(SegmentState::default()),
            grown: Notify::new(),
        });
        self.segments.push(Arc::clone(&segment));
        segment
    }

    fn room(&self, len: usize) -> bool {
        self.end + len as u64 <= self.budget
    }

    /// Write `bytes` at the end of `segment` (the last one made).
    async fn append(&mut self, segment: &Segment, bytes: Vec<u8>) -> anyhow::Result<()> {
        let file = Arc::clone(&self.file);
        let at = self.end;
        let len = bytes.len() as u64;
        tokio::task::spawn_blocking(move || {
            std::os::unix::fs::FileExt::write_all_at(file.as_ref(), &bytes, at)
        })
        .await
        .context("the spill file's writer")?
        .with_context(|| {
            format!(
                "cannot write the restore's temporary file in {}",
                self.dir.display()
            )
        })?;
        self.end += len;
        segment.state.lock().expect("segment").len += len;
        segment.grown.notify_one();
        Ok(())
    }

    /// The load stopped: no session waits on a segment any more.
    fn abort(&self) {
        for segment in &self.segments {
            segment.state.lock().expect("segment").failed = true;
            segment.grown.notify_one();
        }
    }
}

impl Drop for Spill {
    /// The load dropped midway (a signal): a session waiting on a segment ends too.
    fn drop(&mut self) {
        self.abort();
    }
}

#[derive(Default)]
struct SegmentState {
    /// Bytes written so far.
    len: u64,
    /// Every byte of it is written.
    closed: bool,
    failed: bool,
}

/// One `COPY` block (or the rest of one) in the spill file, readable while it is written.
struct Segment {
    file: Arc<std::fs::File>,
    start: u64,
    state: Mutex<SegmentState>,
    grown: Notify,
}

impl Segment {
    fn written(&self) -> u64 {
        self.state.lock().expect("segment").len
    }

    fn close(&self) {
        self.state.lock().expect("segment").closed = true;
        self.grown.notify_one();
    }

    async fn read(&self, at: u64, len: u64) -> anyhow::Result<Vec<u8>> {
        let file = Arc::clone(&self.file);
        let from = self.start + at;
        let len = usize::try_from(len).context("a read of the spill file")?;
        let bytes = tokio::task::spawn_blocking(move || {
            let mut bytes = vec![0; len];
            std::os::unix::fs::FileExt::read_exact_at(file.as_ref(), &mut bytes, from)
                .map(|()| bytes)
        })
        .await
        .context("the spill file's reader")??;
        Ok(bytes)
    }
}

/// One psql, fed by `feeder` until its queue closes.
async fn run_session(
    client: Client,
    database: &str,
    feeder: Feeder,
    mut output: Output,
) -> anyhow::Result<()> {
    let db = format!("--dbname={database}");
    match client {
        Client::Exec {
            docker,
            container,
            env,
        } => {
            let (mut writer, reader) = tokio::io::duplex(READ);
            let psql = super::postgres::psql_load(&db);
            let exec = async {
                // Dropped as soon as psql ends, so that a write to it fails rather than waits.
                let mut reader = reader;
                let result = docker
                    .exec_with_input(&container, &psql, &env, &mut reader, &mut output)
                    .await;
                drop(reader);
                result
            };
            // The writer dropped at the feed's end: psql reads the end of its input.
            let feed = async move { feeder.run(&mut Psql(&mut writer)).await.map(drop) };
            // psql's end ends the session at once (its queue dropped, so that the dispatcher
            // learns it), whether or not its input was all given: its own error says more.
            tokio::pin!(exec, feed);
            let (result, given) = tokio::select! {
                result = &mut exec => (result, Ok(())),
                given = &mut feed => (exec.await, given),
            };
            match result {
                Ok(_) => given,
                Err(DockerError::ExecFailed { code, stderr, .. }) => Err(
                    super::postgres::sql_error(database, &stderr, &format!("exit code {code}")),
                ),
                Err(e) => Err(e).context("restoring through docker exec"),
            }
        }
        Client::Local { target } => {
            let mut cmd = crate::source::local_client("psql", &target.with_database(database));
            cmd.arg(&db)
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().context("cannot run the local psql")?;
            let mut stdin = child.stdin.take().context("psql's stdin")?;
            let mut stdout = child.stdout.take().context("psql's stdout")?;
            let mut stderr = child.stderr.take().context("psql's stderr")?;
            let feed = async move { feeder.run(&mut Psql(&mut stdin)).await.map(drop) };
            let read = async {
                let mut buf = vec![0; 8 * 1024];
                while let Ok(n) = stdout.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let _ = output.write_all(&buf[..n]).await;
                }
            };
            let ended = async {
                let ((), stderr) = tokio::join!(read, super::stderr_tail(&mut stderr));
                stderr
            };
            tokio::pin!(ended, feed);
            let (stderr, given) = tokio::select! {
                stderr = &mut ended => (stderr, Ok(())),
                given = &mut feed => (ended.await, given),
            };
            let status = child.wait().await.context("waiting for psql")?;
            if status.success() {
                given
            } else {
                Err(super::postgres::sql_error(
                    database,
                    &stderr,
                    &status.to_string(),
                ))
            }
        }
    }
}

/// One session over its own connection to `target` (no psql, no `docker exec`: the rows go
/// straight from this process to the server), fed by `feeder` until its queue closes: each
/// statement on its own (`\restrict` and `\unrestrict` dropped, as no psql reads
/// meta-commands here), each `COPY` block over the protocol's copy, its row count as the
/// server saw it.
async fn run_direct(
    target: &DbTarget,
    database: &str,
    feeder: Feeder,
    heard: Heard,
) -> anyhow::Result<()> {
    let target = target.with_database(database);
    let client = target.connect().await?;
    let mut session = Direct {
        client: &client,
        database,
        heard: &heard,
        copy: None,
    };
    if feeder.run(&mut session).await? && session.copy.is_some() {
        bail!("the archive ends inside a COPY block");
    }
    Ok(())
}

/// A direct session's state: its connection, and the `COPY` under way.
struct Direct<'a> {
    client: &'a tokio_postgres::Client,
    database: &'a str,
    heard: &'a Heard,
    copy: Option<std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>>,
}

impl Sink for Direct<'_> {
    async fn take(&mut self, work: Work) -> anyhow::Result<()> {
        match work {
            Work::Meta(text) => {
                let body = crate::pgscript::body(&text);
                if body.starts_with(b"\\restrict") || body.starts_with(b"\\unrestrict") {
                    return Ok(());
                }
                bail!("a psql meta-command reached a session without psql");
            }
            Work::Sql(text) => {
                // Without the comments before it, as psql sends it (and monitoring shows it).
                let messages = self
                    .client
                    .simple_query(utf8(crate::pgscript::body(&text))?)
                    .await
                    .map_err(|e| self.failed(&e))?;
                for message in messages {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                        if let Some(value) = row.get(0) {
                            self.heard.marker(value.as_bytes());
                        }
                    }
                }
            }
            Work::CopyStart(text) => {
                let sink = self
                    .client
                    .copy_in(utf8(crate::pgscript::body(&text))?)
                    .await
                    .map_err(|e| self.failed(&e))?;
                self.copy = Some(Box::pin(sink));
            }
            Work::Rows(rows) => {
                let sink = self.copy.as_mut().context("rows outside a COPY block")?;
                futures_util::SinkExt::send(sink, bytes::Bytes::from(rows))
                    .await
                    .map_err(|e| self.failed(&e))?;
            }
            Work::CopyEnd => {
                let mut sink = self
                    .copy
                    .take()
                    .context("a COPY end outside a COPY block")?;
                let n = sink.as_mut().finish().await.map_err(|e| self.failed(&e))?;
                self.heard.progress.said(|said| said.tags.push(n));
            }
            Work::Serial(_) => {
                bail!("part of the archive cannot be cut into statements; restore it with --jobs 1")
            }
            Work::Spilled(_) => bail!("a spilled block reached the session unread"),
        }
        Ok(())
    }
}

impl Direct<'_> {
    fn failed(&self, e: &tokio_postgres::Error) -> anyhow::Error {
        let what = if e.as_db_error().is_some() {
            "with an SQL error"
        } else {
            "on its connection"
        };
        anyhow!(
            "the restore into the scratch database {} failed {what}: {}",
            self.database,
            lifeboat::db::describe(e)
        )
    }
}

/// A statement as text: a direct session sends UTF-8 only (see [`utf8_client`]).
fn utf8(text: &[u8]) -> anyhow::Result<&str> {
    std::str::from_utf8(text).context("a statement of the archive is not UTF-8")
}

/// The script's `SET client_encoding` says UTF-8: its rows may go over a direct connection,
/// which speaks UTF-8 only. Any other (or none), they go through psql, which passes bytes on.
fn utf8_client(preamble: &[u8]) -> bool {
    const SET: &[u8] = b"client_encoding = '";
    let Some(at) = memchr::memmem::find(preamble, SET) else {
        return false;
    };
    let value = &preamble[at + SET.len()..];
    let Some(end) = memchr::memchr(b'\'', value) else {
        return false;
    };
    let value = &value[..end];
    value.eq_ignore_ascii_case(b"UTF8") || value.eq_ignore_ascii_case(b"UTF-8")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Schema,
    Data,
    PostData,
    /// The splitter gave up: everything on session 0, in order.
    Serial,
}

struct Loader<'a> {
    client: &'a Client,
    /// The restore database's server over a connection, for the sessions that load rows and
    /// build indexes; none, psql for every session.
    direct: Option<&'a DbTarget>,
    /// The first session that loads rows and builds indexes: 1 when they are direct (session
    /// 0, psql, keeps the schema and everything in order), else 0.
    first: usize,
    database: &'a str,
    jobs: usize,
    marker: String,
    sessions: Vec<Session>,
    /// Notified by every session when it passed something on or ended.
    wake: Arc<Notify>,
    phase: Phase,
    /// The statements before the script's first entry, which every session runs first.
    preamble: Vec<Work>,
    entries_seen: bool,
    /// Where the current COPY block goes.
    copying: Option<Copying>,
    /// The archive's COPY blocks so far.
    blocks: usize,
    /// Each block's size from the manifest, in the archive's order.
    sizes: Option<Vec<u64>>,
    /// Where blocks may wait, and the file once made.
    spill_dir: Option<std::path::PathBuf>,
    spill: Option<Spill>,
    spill_tried: bool,
    spill_full_said: bool,
    /// Blocks in the spill file that no session was given yet.
    pool: Vec<Pooled>,
    /// `SET`s waiting for the statement they set up.
    sets: Vec<Work>,
    /// The last `SET` of each setting after the preamble, by name: what an index or key given
    /// out of order runs with (`default_tablespace` above all), whichever session it lands on.
    set_state: Vec<(String, Work)>,
    /// Post-data statements kept for the end, in the archive's order.
    deferred: VecDeque<Work>,
    /// Bytes kept back: `deferred`'s and `pending`'s.
    deferred_bytes: u64,
    /// Indexes and keys waiting for a session.
    pending: Vec<Pending>,
    /// The bytes of each table's rows, as read: the weight of its indexes and keys.
    table_bytes: std::collections::HashMap<String, u64>,
    /// The table whose rows are being read.
    copy_table: Option<String>,
    /// Bytes of SQL read from the archive.
    fed: u64,
    /// The session everything goes to once the load is serial.
    serial: usize,
}

/// Where the current COPY block goes.
#[derive(Clone)]
enum Copying {
    /// Straight to a session's queue.
    Direct(usize),
    /// Into the spill file: a block waiting in the pool (`owner` none), or the rest of a block
    /// whose session had a full queue while another had nothing to do.
    Spilling {
        segment: Arc<Segment>,
        owner: Option<usize>,
    },
}

/// A COPY block in the spill file, waiting for a session.
struct Pooled {
    block: usize,
    /// Its `COPY … FROM stdin;`.
    start: Vec<u8>,
    /// Its rows.
    segment: Arc<Segment>,
    /// Its end was read: it goes with it.
    ended: bool,
}

/// Load `script` into `database` on `jobs` sessions: psql through `client`, or, once the
/// schema is in, `direct` connections for the rows and the indexes (then psql keeps the schema
/// and everything in order on one more session).
pub async fn load(
    client: &Client,
    direct: Option<&DbTarget>,
    database: &str,
    script: Script<'_>,
    jobs: usize,
    plan: &LoadPlan,
) -> anyhow::Result<Loaded> {
    let nonce = std::collections::hash_map::RandomState::new();
    let nonce = std::hash::BuildHasher::hash_one(&nonce, std::process::id());
    let marker = format!("lifeboat-sync-{nonce:016x}-");
    let wake = Arc::new(Notify::new());
    let mut loader = Loader {
        client,
        direct,
        first: 0,
        database,
        jobs,
        sessions: vec![Session::start(client, None, database, &marker, 0, &wake)],
        wake,
        marker,
        phase: Phase::Schema,
        preamble: Vec::new(),
        entries_seen: false,
        copying: None,
        blocks: 0,
        sizes: plan.blocks.clone(),
        spill_dir: plan.spill_dir.clone(),
        spill: None,
        spill_tried: false,
        spill_full_said: false,
        pool: Vec::new(),
        sets: Vec::new(),
        set_state: Vec::new(),
        deferred: VecDeque::new(),
        deferred_bytes: 0,
        pending: Vec::new(),
        table_bytes: std::collections::HashMap::new(),
        copy_table: None,
        fed: 0,
        serial: 0,
    };
    let result = loader.run(script).await;
    if let Some(spill) = &loader.spill {
        if result.is_err() {
            spill.abort();
        } else if spill.end > 0 {
            info!(
                "{:.1} MiB of rows waited for a free session in a temporary file in {}",
                spill.end as f64 / 1_048_576.0,
                spill.dir.display()
            );
        }
    }
    // Every session's input closed: on success they finish, on an error they stop.
    for s in &mut loader.sessions {
        s.tx = None;
    }
    // A session's own error (psql's) says more than the dispatcher's "ended early".
    let mut first_error = None;
    let mut copied = vec![None; loader.blocks];
    for s in loader.sessions {
        match s.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow!("a session of the parallel load stopped: {e}"));
            }
        }
        let said = s.progress.said.lock().expect("progress");
        for (block, n) in s.blocks.iter().zip(&said.tags) {
            if let Some(slot) = copied.get_mut(*block) {
                *slot = Some(*n);
            }
        }
    }
    if let Some(e) = first_error.or(result.err()) {
        return Err(e);
    }
    let counts: Option<Vec<u64>> = copied.iter().copied().collect();
    let counts = counts.ok_or_else(|| {
        anyhow!(
            "psql reported {} of {} COPY blocks: the restore is incomplete",
            copied.iter().flatten().count(),
            copied.len()
        )
    })?;
    Ok(Loaded {
        fed: loader.fed,
        copied: Some(counts),
    })
}

impl Loader<'_> {
    async fn run(&mut self, script: Script<'_>) -> anyhow::Result<()> {
        let mut splitter = Splitter::new();
        let mut buf = vec![0; READ];
        let mut pieces = Vec::new();
        loop {
            let n = script.read(&mut buf).await.context("reading the archive")?;
            if n == 0 {
                break;
            }
            self.fed += n as u64;
            splitter.feed(&buf[..n], &mut pieces);
            for piece in pieces.drain(..) {
                self.piece(piece).await?;
            }
            if let Some(why) = splitter.confused() {
                if self.phase != Phase::Serial {
                    warn!("the parallel load reads the rest of the archive in order, on one session: {why}");
                }
            }
        }
        if let Some(why) = splitter.finish(&mut pieces) {
            debug!("the splitter at the end: {why}");
        }
        for piece in pieces {
            self.piece(piece).await?;
        }
        if let Some(Copying::Spilling { .. }) = self.copying {
            // A cut archive: what there is of the block goes to its session.
            self.settle()?;
        }
        self.drain_pool()?;
        if self.phase != Phase::Serial {
            // The statements kept back, after everything else.
            self.barrier_all().await?;
            self.flush_deferred().await?;
        }
        Ok(())
    }

    async fn piece(&mut self, piece: Piece) -> anyhow::Result<()> {
        // A session that ended stopped on an error: no point in loading the rest.
        self.alive()?;
        match piece {
            Piece::Serial(bytes) => {
                if self.phase != Phase::Serial {
                    // Inside a COPY (a cut archive), the rest is that session's, as it would be
                    // the one psql's; else after everything given so far, on session 0.
                    match self.copying.clone() {
                        Some(Copying::Direct(k)) => self.serial = k,
                        Some(Copying::Spilling { .. }) => self.serial = self.settle()?,
                        None => {
                            self.barrier_all().await?;
                            self.flush_deferred().await?;
                        }
                    }
                    self.drain_pool()?;
                    self.phase = Phase::Serial;
                }
                self.send(self.serial, Work::Serial(bytes)).await
            }
            Piece::CopyStart { table, text } => {
                self.enter(Phase::Data).await?;
                self.table_bytes.entry(table.clone()).or_default();
                self.copy_table = Some(table);
                let block = self.blocks;
                self.blocks += 1;
                if self.phase == Phase::Serial {
                    return self.direct(self.serial, block, text).await;
                }
                self.dispatch_pool()?;
                if let Some(k) = self.idle_worker() {
                    return self.direct(k, block, text).await;
                }
                // Every session busy: the block waits in the spill file while the archive is
                // read on, and goes to the first session done.
                if let Some(segment) = self.spill_segment(text.len()) {
                    self.pool.push(Pooled {
                        block,
                        start: text,
                        segment: Arc::clone(&segment),
                        ended: false,
                    });
                    self.copying = Some(Copying::Spilling {
                        segment,
                        owner: None,
                    });
                    return Ok(());
                }
                self.direct(self.least_busy(), block, text).await
            }
            Piece::CopyData(rows) => self.rows(rows).await,
            Piece::CopyEnd => self.copy_end(),
            Piece::Sql {
                section,
                kind,
                independent,
                text,
            } => {
                let work = if kind.as_deref() == Some(META) {
                    Work::Meta(text)
                } else {
                    Work::Sql(text)
                };
                if self.phase == Phase::Serial {
                    return self.send(self.serial, work).await;
                }
                // `\connect` moves one session to another database: from there on, everything
                // goes where it went, in order (pg_dump writes none without --create).
                if let Work::Meta(text) = &work {
                    if crate::pgscript::body(text).starts_with(b"\\c") {
                        warn!("the archive switches database (\\connect): the rest goes in order, on one session");
                        self.barrier_all().await?;
                        self.flush_deferred().await?;
                        self.phase = Phase::Serial;
                        return self.send(self.serial, work).await;
                    }
                }
                if !self.entries_seen && (kind.is_none() || kind.as_deref() == Some(META)) {
                    self.preamble.push(work.clone());
                    return self.send(0, work).await;
                }
                self.entries_seen = true;
                if let Work::Sql(text) = &work {
                    if let Some(name) = crate::pgscript::set_variable(text) {
                        self.set_state.retain(|(n, _)| *n != name);
                        self.set_state.push((name, work.clone()));
                    }
                }
                match section {
                    Section::PreData => self.send(0, work).await,
                    Section::Data => {
                        self.enter(Phase::Data).await?;
                        self.send(0, work).await
                    }
                    Section::PostData => {
                        self.enter(Phase::PostData).await?;
                        self.post_data(independent, work).await
                    }
                }
            }
        }
    }

    /// The current COPY block's end, to the session that has it (or with it, if it waits).
    fn copy_end(&mut self) -> anyhow::Result<()> {
        match self.copying.take() {
            Some(Copying::Direct(k)) => self.sessions[k].push(Work::CopyEnd)?,
            Some(Copying::Spilling { segment, owner }) => {
                segment.close();
                if let Some(k) = owner {
                    self.sessions[k].push(Work::CopyEnd)?;
                } else {
                    (self.pool.iter_mut())
                        .find(|p| Arc::ptr_eq(&p.segment, &segment))
                        .context("a waiting COPY block left the pool unended")?
                        .ended = true;
                }
            }
            None => bail!("a COPY end outside a COPY block"),
        }
        self.dispatch_pool()
    }

    /// Block `block` goes straight to session `k`, starting with `text`.
    async fn direct(&mut self, k: usize, block: usize, text: Vec<u8>) -> anyhow::Result<()> {
        self.sessions[k].blocks.push(block);
        self.copying = Some(Copying::Direct(k));
        self.send(k, Work::CopyStart(text)).await
    }

    /// The current COPY block's next bytes, where it goes (and counted to its table).
    async fn rows(&mut self, rows: Vec<u8>) -> anyhow::Result<()> {
        if let Some(n) = (self.copy_table.as_ref()).and_then(|t| self.table_bytes.get_mut(t)) {
            *n += rows.len() as u64;
        }
        loop {
            match self.copying.clone() {
                Some(Copying::Direct(k)) => {
                    self.alive()?;
                    if !self.sessions[k].full() {
                        return self.sessions[k].push(Work::Rows(rows));
                    }
                    // Its queue is full. While another session has nothing to do, the rest
                    // of this block waits in the spill file (the session reads it after what
                    // it has queued) and the archive is read on.
                    if self.phase != Phase::Serial {
                        self.dispatch_pool()?;
                        let other_idle = self
                            .sessions
                            .iter()
                            .enumerate()
                            .skip(self.first)
                            .any(|(i, s)| i != k && s.idle());
                        if other_idle {
                            if let Some(segment) = self.spill_segment(rows.len()) {
                                self.sessions[k].push(Work::Spilled(Arc::clone(&segment)))?;
                                self.copying = Some(Copying::Spilling {
                                    segment,
                                    owner: Some(k),
                                });
                                continue;
                            }
                        }
                    }
                    self.wake.notified().await;
                }
                Some(Copying::Spilling { segment, owner, .. }) => {
                    let spill = self
                        .spill
                        .as_mut()
                        .context("a spilled block without its file")?;
                    if !spill.room(rows.len()) {
                        // The spill file is as large as it may be: the rest goes in memory.
                        self.settle()?;
                        continue;
                    }
                    // Counted before the session can read it.
                    if let Some(k) = owner {
                        let load = &self.sessions[k].load;
                        load.outstanding
                            .fetch_add(rows.len() as u64, Ordering::SeqCst);
                    }
                    spill.append(&segment, rows).await?;
                    return self.dispatch_pool();
                }
                None => bail!("rows outside a COPY block"),
            }
        }
    }

    /// A new segment of the spill file, if there is one and it has room for `len` more bytes.
    fn spill_segment(&mut self, len: usize) -> Option<Arc<Segment>> {
        if !self.spill_tried {
            self.spill_tried = true;
            if let Some(dir) = &self.spill_dir {
                match Spill::create(dir) {
                    Ok(spill) => self.spill = Some(spill),
                    Err(e) => warn!("{e:#}: COPY blocks wait for a free session instead"),
                }
            }
        }
        let spill = self.spill.as_mut()?;
        if !spill.room(len) {
            if !self.spill_full_said {
                self.spill_full_said = true;
                warn!(
                    "the restore's temporary file in {} reached half of the free space there: \
                     COPY blocks wait for a free session instead",
                    spill.dir.display()
                );
            }
            return None;
        }
        Some(spill.segment())
    }

    /// The block being spilled stops there: the session it is given (now, if it waited in
    /// the pool) reads what was spilled, then what follows from memory. Returns that session.
    fn settle(&mut self) -> anyhow::Result<usize> {
        let Some(Copying::Spilling { segment, owner }) = self.copying.take() else {
            bail!("no block is being spilled");
        };
        segment.close();
        let k = if let Some(k) = owner {
            k
        } else {
            let at = (self.pool.iter())
                .position(|p| Arc::ptr_eq(&p.segment, &segment))
                .context("a waiting COPY block left the pool")?;
            let pooled = self.pool.remove(at);
            let k = self.least_busy();
            self.give(k, pooled)?;
            k
        };
        self.copying = Some(Copying::Direct(k));
        Ok(k)
    }

    /// Give waiting blocks to the sessions with nothing to do: the largest by the manifest
    /// first, else the archive's order.
    fn dispatch_pool(&mut self) -> anyhow::Result<()> {
        while !self.pool.is_empty() {
            let Some(k) = self.idle_worker() else {
                break;
            };
            let i = match &self.sizes {
                Some(sizes) => (0..self.pool.len())
                    .max_by_key(|&i| sizes.get(self.pool[i].block).copied().unwrap_or(0))
                    .unwrap_or(0),
                None => 0,
            };
            let pooled = self.pool.remove(i);
            self.give(k, pooled)?;
        }
        Ok(())
    }

    /// Give every waiting block to a session now, the largest first, each to the session
    /// with the least to do: the end of the rows is near.
    fn drain_pool(&mut self) -> anyhow::Result<()> {
        let mut pool = std::mem::take(&mut self.pool);
        let size = |p: &Pooled| match &self.sizes {
            Some(sizes) => sizes.get(p.block).copied().unwrap_or(0),
            None => p.segment.written(),
        };
        pool.sort_by_key(|p| std::cmp::Reverse(size(p)));
        for pooled in pool {
            let k = self.least_busy();
            self.give(k, pooled)?;
        }
        Ok(())
    }

    /// A waiting block to session `k`: its `COPY`, its rows from the spill file, and its end
    /// once read (else it goes to `k` when it is).
    fn give(&mut self, k: usize, pooled: Pooled) -> anyhow::Result<()> {
        let session = &mut self.sessions[k];
        session.blocks.push(pooled.block);
        session.push(Work::CopyStart(pooled.start))?;
        session.push(Work::Spilled(Arc::clone(&pooled.segment)))?;
        if pooled.ended {
            session.push(Work::CopyEnd)?;
        }
        if let Some(Copying::Spilling { segment, owner, .. }) = &mut self.copying {
            if Arc::ptr_eq(segment, &pooled.segment) {
                *owner = Some(k);
            }
        }
        Ok(())
    }

    /// An error when a session ended: its psql stopped on an error, and the load with it.
    fn alive(&self) -> anyhow::Result<()> {
        if self.sessions.iter().any(Session::ended) {
            bail!("a session of the parallel load ended early");
        }
        Ok(())
    }

    /// Queue `bytes` for session `k`, waiting while its queue is full; an error when a
    /// session ended (its psql stopped on an error).
    async fn send(&self, k: usize, work: Work) -> anyhow::Result<()> {
        loop {
            self.alive()?;
            if !self.sessions[k].full() {
                return self.sessions[k].push(work);
            }
            self.wake.notified().await;
        }
    }

    async fn post_data(&mut self, independent: bool, work: Work) -> anyhow::Result<()> {
        self.deferred_bytes += work.held();
        let Work::Sql(text) = &work else {
            self.deferred.push_back(work);
            return Ok(());
        };
        if crate::pgscript::is_set(text) {
            self.sets.push(work);
            return Ok(());
        }
        if independent {
            let body = crate::pgscript::body(text);
            let table = crate::pgscript::statement_table(body);
            let locks = (body.get(..5)).is_some_and(|w| w.eq_ignore_ascii_case(b"ALTER"));
            // pg_dump writes a `SET default_tablespace` only where it changes: an index run on
            // another session than the one before it needs every setting so far, not only the
            // `SET`s just before it.
            self.sets.clear();
            let mut statement: Vec<Work> = self.set_state.iter().map(|(_, w)| w.clone()).collect();
            self.deferred_bytes += statement.iter().map(Work::held).sum::<u64>();
            statement.push(work);
            self.pending.push(Pending {
                table,
                locks,
                work: statement,
            });
        } else {
            self.deferred.extend(self.sets.drain(..));
            self.deferred.push_back(work);
        }
        if self.deferred_bytes > DEFERRED_MAX {
            self.barrier_all().await?;
            self.flush_deferred().await?;
        }
        Ok(())
    }

    async fn flush_deferred(&mut self) -> anyhow::Result<()> {
        while let Some(work) = self.deferred.pop_front() {
            self.send(0, work).await?;
        }
        self.deferred_bytes = 0;
        Ok(())
    }

    /// Move on to `phase`: the schema in before any data (and the other sessions started),
    /// every row in before any index.
    async fn enter(&mut self, phase: Phase) -> anyhow::Result<()> {
        if self.phase == phase || self.phase == Phase::Serial {
            return Ok(());
        }
        if self.phase == Phase::PostData && phase == Phase::Data {
            // Rows after indexes: pg_dump does not write that; keep the order, on session 0.
            warn!("the archive has data after its indexes: the rest goes in order, on one session");
            self.barrier_all().await?;
            self.flush_deferred().await?;
            self.phase = Phase::Serial;
            return Ok(());
        }
        self.barrier_all().await?;
        if self.phase == Phase::Schema {
            let preamble: Vec<u8> = (self.preamble.iter())
                .filter_map(|w| match w {
                    Work::Sql(text) => Some(text.as_slice()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .concat();
            let direct = self.direct.filter(|_| utf8_client(&preamble));
            if self.direct.is_some() && direct.is_none() {
                warn!("the archive's client_encoding is not UTF-8: its rows go through psql");
            }
            // Direct, `jobs` sessions besides session 0; else session 0 is one of them.
            self.first = usize::from(direct.is_some());
            for index in 1..self.jobs + self.first {
                let session = Session::start(
                    self.client,
                    direct,
                    self.database,
                    &self.marker,
                    index,
                    &self.wake,
                );
                for work in &self.preamble {
                    session.push(work.clone())?;
                }
                self.sessions.push(session);
            }
            info!(
                "the schema is in; loading the data on {} sessions{}",
                self.jobs,
                if direct.is_some() {
                    " over direct connections"
                } else {
                    ""
                }
            );
        }
        if phase == Phase::PostData {
            info!(
                "every row is in; building indexes and keys on {} sessions",
                self.jobs
            );
        }
        self.phase = phase;
        Ok(())
    }

    /// Give every index and key waiting out (see [`Pending`]): the largest table's first, to a
    /// session done with all it had, never beside a statement it would wait for; returns when
    /// the last is given.
    async fn run_pending(&mut self) -> anyhow::Result<()> {
        let mut pending: Vec<(u64, Pending)> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| {
                let rows = p.table.as_ref().and_then(|t| self.table_bytes.get(t));
                (rows.copied().unwrap_or(0), p)
            })
            .collect();
        pending.sort_by_key(|(rows, _)| std::cmp::Reverse(*rows));
        self.deferred_bytes = self.deferred.iter().map(Work::held).sum();
        while !pending.is_empty() {
            self.alive()?;
            let pick = {
                let running: Vec<&Pending> = (self.sessions.iter())
                    .filter(|s| !s.done())
                    .filter_map(|s| s.running.as_ref())
                    .collect();
                (self.first..self.sessions.len())
                    .find(|&k| self.sessions[k].done())
                    .zip(
                        (pending.iter()).position(|(_, p)| !running.iter().any(|r| p.conflicts(r))),
                    )
            };
            let Some((k, i)) = pick else {
                self.wake.notified().await;
                continue;
            };
            let (rows, mut next) = pending.remove(i);
            debug!(
                "session {k} builds an index or key on {} ({rows} bytes of rows)",
                next.table.as_deref().unwrap_or("?").escape_debug()
            );
            let statement = std::mem::take(&mut next.work);
            self.sessions[k].running = Some(next);
            for work in statement {
                self.send(k, work).await?;
            }
            let marker = self.mark(k);
            self.send(k, marker).await?;
        }
        Ok(())
    }

    /// The next marker of session `k`, as a statement: it echoes it once all it was given
    /// before is done.
    fn mark(&mut self, k: usize) -> Work {
        self.sessions[k].barrier += 1;
        Work::Sql(format!("SELECT '{}{}';\n", self.marker, self.sessions[k].barrier).into_bytes())
    }

    /// The first session that loads rows with nothing left to do.
    fn idle_worker(&self) -> Option<usize> {
        (self.first..self.sessions.len()).find(|&k| self.sessions[k].idle())
    }

    /// The session that loads rows with the least given and not yet passed on (the first of
    /// them).
    fn least_busy(&self) -> usize {
        let mut best = self.first.min(self.sessions.len() - 1);
        for (k, s) in self.sessions.iter().enumerate().skip(best) {
            let left = s.load.outstanding.load(Ordering::SeqCst);
            if left < self.sessions[best].load.outstanding.load(Ordering::SeqCst) {
                best = k;
            }
        }
        best
    }

    /// Wait until every session has done all it was given (the blocks waiting in the spill
    /// file given out first); an error if one ended.
    async fn barrier_all(&mut self) -> anyhow::Result<()> {
        self.drain_pool()?;
        self.run_pending().await?;
        for k in 0..self.sessions.len() {
            let sql = self.mark(k);
            self.send(k, sql).await?;
        }
        for s in &self.sessions {
            loop {
                let waiting = s.progress.changed.notified();
                {
                    let said = s.progress.said.lock().expect("progress");
                    if said.synced >= s.barrier {
                        break;
                    }
                    if said.ended {
                        bail!("a session of the parallel load ended early");
                    }
                }
                waiting.await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::utf8_client;

    #[test]
    fn only_a_utf8_script_goes_over_direct_connections() {
        let head = "SET statement_timeout = 0;\nSET client_encoding = '{}';\nSET standard_conforming_strings = on;\n";
        for (encoding, direct) in [
            ("UTF8", true),
            ("utf8", true),
            ("UTF-8", true),
            ("LATIN1", false),
            ("SQL_ASCII", false),
            ("EUC_JP", false),
        ] {
            let preamble = head.replace("{}", encoding);
            assert_eq!(utf8_client(preamble.as_bytes()), direct, "{encoding}");
        }
        // No encoding said: psql, which passes the bytes on as they are.
        assert!(!utf8_client(b"SET statement_timeout = 0;\n"));
        assert!(!utf8_client(b"SET client_encoding = 'UTF8"));
    }
}
