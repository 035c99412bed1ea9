//! A plain `pg_dump` script loaded on several psql sessions at once (issue 21), streaming, in
//! bounded memory.
//!
//! The script is cut by [`crate::pgscript`]. Then:
//! 1. the pre-data part (schema) runs in order on session 0; the statements before its first
//!    entry (`SET`s, `\restrict`) are the preamble every session runs first;
//! 2. once the schema is in (a barrier), each table's `COPY` block goes whole to the session
//!    with the least queued, the other data statements (sequence values, large objects) to
//!    session 0 in order;
//! 3. once every row is in (a barrier), the post-data part: indexes, primary keys, unique,
//!    check and exclusion constraints spread over the sessions; everything else (foreign keys,
//!    triggers, `ALTER … OWNER`, grants, comments, index attachments) kept back, then run in
//!    the archive's order on session 0 after a last barrier. `SET`s of an entry travel with
//!    its next statement.
//!
//! A barrier is a `SELECT` of a marker with a random nonce that each session echoes back when
//! all it was given before it is done. psql's `COPY n` tags come back per session; each block's
//! count is put back in the archive's order, so the row checks are the serial load's.
//!
//! psql runs with `ON_ERROR_STOP`: the first error ends its session, and the load stops at
//! once (every other session's input is closed). A part of the script the splitter cannot read
//! goes, after a barrier, serially on session 0 from there on, with a warning.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use lifeboat::db::DbTarget;
use lifeboat::docker::{Docker, DockerError};
use lifeboat::engine::{Loaded, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::pgscript::{Piece, Section, Splitter, META};

/// Bytes read from the archive at a time.
const READ: usize = 256 * 1024;

/// Pieces queued for one session before the dispatcher waits for it: with rows in chunks of
/// about 256 KiB, a few MiB per session.
const QUEUE: usize = 8;

/// The most bytes of post-data statements kept back for the end; beyond, they go after a
/// barrier.
const DEFERRED_MAX: usize = 64 * 1024 * 1024;

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
}

/// psql's stdout, read for `COPY n` tags and barrier markers.
struct Output {
    progress: Arc<Progress>,
    marker: String,
    line: Vec<u8>,
}

impl Output {
    /// The longest line start looked at.
    const HEAD: usize = 96;

    fn line_done(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        let line = line.trim();
        let mut said = self.progress.said.lock().expect("progress");
        if let Some(n) = line.strip_prefix("COPY ").and_then(|n| n.parse().ok()) {
            said.tags.push(n);
        } else if let Some(id) = line
            .strip_prefix(self.marker.as_str())
            .and_then(|n| n.parse().ok())
        {
            said.synced = id;
        } else {
            return;
        }
        drop(said);
        self.progress.changed.notify_waiters();
    }
}

impl tokio::io::AsyncWrite for Output {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let mut rest = buf;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let room = Self::HEAD.saturating_sub(this.line.len());
            this.line.extend_from_slice(&rest[..i.min(room)]);
            this.line_done();
            this.line.clear();
            rest = &rest[i + 1..];
        }
        let room = Self::HEAD.saturating_sub(this.line.len());
        this.line.extend_from_slice(&rest[..rest.len().min(room)]);
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

struct Session {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    progress: Arc<Progress>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The archive's COPY blocks (their index) this session was given, in order.
    blocks: Vec<usize>,
    /// The last barrier it was sent.
    barrier: u64,
}

impl Session {
    fn start(client: &Client, database: &str, marker: &str, index: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let progress = Arc::new(Progress {
            said: Mutex::new(Said::default()),
            changed: Notify::new(),
        });
        let output = Output {
            progress: Arc::clone(&progress),
            marker: marker.to_owned(),
            line: Vec::new(),
        };
        let client = client.clone();
        let database = database.to_owned();
        let ended = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let result = run_session(client, &database, rx, output).await;
            ended.said.lock().expect("progress").ended = true;
            ended.changed.notify_waiters();
            result.with_context(|| format!("session {index} of the parallel load"))
        });
        Self {
            tx: Some(tx),
            progress,
            task,
            blocks: Vec::new(),
            barrier: 0,
        }
    }

    /// Queue `bytes`; an error when the session ended (its psql stopped on an error).
    async fn send(&self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let tx = self.tx.as_ref().context("the session was closed")?;
        tx.send(bytes)
            .await
            .map_err(|_| anyhow!("a session of the parallel load ended early"))
    }

    /// Free places in its queue: the most is idle.
    fn room(&self) -> usize {
        self.tx.as_ref().map_or(0, mpsc::Sender::capacity)
    }
}

/// One psql, fed from `rx` until it closes.
async fn run_session(
    client: Client,
    database: &str,
    mut rx: mpsc::Receiver<Vec<u8>>,
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
            let feed = async move {
                while let Some(bytes) = rx.recv().await {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                // The writer dropped here: psql reads the end of its input.
            };
            // psql's end ends the session at once (its queue dropped, so that the dispatcher
            // learns it), whether or not its input was all given.
            tokio::pin!(exec, feed);
            let result = tokio::select! {
                result = &mut exec => result,
                () = &mut feed => exec.await,
            };
            match result {
                Ok(_) => Ok(()),
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
            let feed = async move {
                while let Some(bytes) = rx.recv().await {
                    if stdin.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            };
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
            let stderr = tokio::select! {
                stderr = &mut ended => stderr,
                () = &mut feed => ended.await,
            };
            let status = child.wait().await.context("waiting for psql")?;
            if status.success() {
                Ok(())
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
    database: &'a str,
    jobs: usize,
    marker: String,
    sessions: Vec<Session>,
    phase: Phase,
    /// The statements before the script's first entry, which every session runs first.
    preamble: Vec<u8>,
    entries_seen: bool,
    /// The session the current COPY block goes to.
    copying: Option<usize>,
    /// The archive's COPY blocks so far.
    blocks: usize,
    /// `SET`s waiting for the statement they set up.
    sets: Vec<u8>,
    /// Post-data statements kept for the end, in the archive's order.
    deferred: VecDeque<Vec<u8>>,
    deferred_bytes: usize,
    /// Bytes of SQL read from the archive.
    fed: u64,
    /// The session everything goes to once the load is serial.
    serial: usize,
}

/// Load `script` into `database` on `jobs` psql sessions.
pub async fn load(
    client: &Client,
    database: &str,
    script: Script<'_>,
    jobs: usize,
) -> anyhow::Result<Loaded> {
    let nonce = std::collections::hash_map::RandomState::new();
    let nonce = std::hash::BuildHasher::hash_one(&nonce, std::process::id());
    let marker = format!("lifeboat-sync-{nonce:016x}-");
    let mut loader = Loader {
        client,
        database,
        jobs,
        sessions: vec![Session::start(client, database, &marker, 0)],
        marker,
        phase: Phase::Schema,
        preamble: Vec::new(),
        entries_seen: false,
        copying: None,
        blocks: 0,
        sets: Vec::new(),
        deferred: VecDeque::new(),
        deferred_bytes: 0,
        fed: 0,
        serial: 0,
    };
    let result = loader.run(script).await;
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
        if self.phase != Phase::Serial {
            // The statements kept back, after everything else.
            self.barrier_all().await?;
            self.flush_deferred().await?;
        }
        Ok(())
    }

    async fn piece(&mut self, piece: Piece) -> anyhow::Result<()> {
        // A session that ended stopped on an error: no point in loading the rest.
        if self
            .sessions
            .iter()
            .any(|s| s.progress.said.lock().expect("progress").ended)
        {
            bail!("a session of the parallel load ended early");
        }
        match piece {
            Piece::Serial(bytes) => {
                if self.phase != Phase::Serial {
                    // Inside a COPY (a cut archive), the rest is that session's, as it would be
                    // the one psql's; else after everything given so far, on session 0.
                    if let Some(k) = self.copying {
                        self.serial = k;
                    } else {
                        self.barrier_all().await?;
                        self.flush_deferred().await?;
                    }
                    self.phase = Phase::Serial;
                }
                self.sessions[self.serial].send(bytes).await
            }
            Piece::CopyStart { text, .. } => {
                self.enter(Phase::Data).await?;
                let k = if self.phase == Phase::Serial {
                    self.serial
                } else {
                    self.least_busy()
                };
                self.copying = Some(k);
                self.sessions[k].blocks.push(self.blocks);
                self.blocks += 1;
                self.sessions[k].send(text).await
            }
            Piece::CopyData(rows) => {
                let k = self.copying.context("rows outside a COPY")?;
                self.sessions[k].send(rows).await
            }
            Piece::CopyEnd => {
                let k = self.copying.take().context("a COPY's end outside one")?;
                self.sessions[k].send(b"\\.\n".to_vec()).await
            }
            Piece::Sql {
                section,
                kind,
                independent,
                text,
            } => {
                if self.phase == Phase::Serial {
                    return self.sessions[self.serial].send(text).await;
                }
                // `\connect` moves one session to another database: from there on, everything
                // goes where it went, in order (pg_dump writes none without --create).
                if kind.as_deref() == Some(META) && crate::pgscript::body(&text).starts_with(b"\\c")
                {
                    warn!("the archive switches database (\\connect): the rest goes in order, on one session");
                    self.barrier_all().await?;
                    self.flush_deferred().await?;
                    self.phase = Phase::Serial;
                    return self.sessions[self.serial].send(text).await;
                }
                if !self.entries_seen && (kind.is_none() || kind.as_deref() == Some(META)) {
                    self.preamble.extend_from_slice(&text);
                    return self.sessions[0].send(text).await;
                }
                self.entries_seen = true;
                match section {
                    Section::PreData => self.sessions[0].send(text).await,
                    Section::Data => {
                        self.enter(Phase::Data).await?;
                        self.sessions[0].send(text).await
                    }
                    Section::PostData => {
                        self.enter(Phase::PostData).await?;
                        self.post_data(independent, text).await
                    }
                }
            }
        }
    }

    async fn post_data(&mut self, independent: bool, text: Vec<u8>) -> anyhow::Result<()> {
        if crate::pgscript::is_set(&text) {
            self.sets.extend_from_slice(&text);
            return Ok(());
        }
        let mut statement = std::mem::take(&mut self.sets);
        statement.extend_from_slice(&text);
        if independent {
            let k = self.least_busy();
            return self.sessions[k].send(statement).await;
        }
        self.deferred_bytes += statement.len();
        self.deferred.push_back(statement);
        if self.deferred_bytes > DEFERRED_MAX {
            self.barrier_all().await?;
            self.flush_deferred().await?;
        }
        Ok(())
    }

    async fn flush_deferred(&mut self) -> anyhow::Result<()> {
        while let Some(statement) = self.deferred.pop_front() {
            self.sessions[0].send(statement).await?;
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
            for index in 1..self.jobs {
                let session = Session::start(self.client, self.database, &self.marker, index);
                if !self.preamble.is_empty() {
                    session.send(self.preamble.clone()).await?;
                }
                self.sessions.push(session);
            }
            info!(
                "the schema is in; loading the data on {} sessions",
                self.sessions.len()
            );
        }
        if phase == Phase::PostData {
            info!(
                "every row is in; building indexes and keys on {} sessions",
                self.sessions.len()
            );
        }
        self.phase = phase;
        Ok(())
    }

    /// The session with the most room in its queue (the first of them).
    fn least_busy(&self) -> usize {
        let mut best = 0;
        for (k, s) in self.sessions.iter().enumerate() {
            if s.room() > self.sessions[best].room() {
                best = k;
            }
        }
        best
    }

    /// Wait until every session has done all it was given; an error if one ended.
    async fn barrier_all(&mut self) -> anyhow::Result<()> {
        for s in &mut self.sessions {
            s.barrier += 1;
            let sql = format!("SELECT '{}{}';\n", self.marker, s.barrier);
            s.send(sql.into_bytes()).await?;
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
