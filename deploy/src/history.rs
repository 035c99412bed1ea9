//! What was deployed: the history, one JSON line per deploy or rollback, and the journal of the
//! one in progress.
//!
//! Both live in `deploy.dir` (default `./.lifeboat`): `history.jsonl` is only ever appended to;
//! `journal.json` is written before anything on the stack changes and removed once the outcome
//! is in the history, so a journal found by the next run means a run that died (SIGKILL, a
//! crash, the machine) and says what to bring the stack back to.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::release::Release;

/// `user@host` of this run: the same lookup as a lock holder's.
pub use lifeboat::lock::who;

/// One deploy or rollback, as it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// `deploy` or `rollback`.
    pub action: String,
    pub version: String,
    pub image: String,
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The release that was live before.
    pub previous: Option<Release>,
    /// A hash of the app's configuration (its containers' environment), to tell a
    /// configuration change from a code change.
    pub env_hash: Option<String>,
    /// The pre-deploy backup.
    pub backup: Option<String>,
    /// Whether the migration command ran.
    #[serde(default)]
    pub migrated: bool,
    /// Whether the data was restored too (`--with-data`, or a rollback that restored).
    #[serde(default)]
    pub restored: bool,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// `deployed` (a deploy) or `done` (a rollback), `rolled-back` (the deploy failed and the
    /// previous release serves again),
    /// `failed` (nothing was switched, or putting things back failed too: see `error`),
    /// `interrupted` (a run that died, finished or undone by the next run).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who ran it: `user@host`.
    pub by: String,
}

impl Entry {
    /// The release that serves after this entry, if it changed what serves.
    pub fn live_after(&self) -> Option<Release> {
        let live = matches!(
            (self.action.as_str(), self.outcome.as_str()),
            ("deploy", "deployed") | ("rollback", "done")
        );
        live.then(|| Release {
            version: self.version.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            revision: self.revision.clone(),
        })
    }
}

pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("history.jsonl")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    fn ensure_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create the deploy directory {}", self.dir.display()))
    }

    /// Every entry, oldest first. A line that does not parse is an error naming it.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{}:{}: not a history entry", path.display(), i + 1))
            })
            .collect()
    }

    /// Append one entry, flushed to disk before this returns.
    pub fn append(&self, entry: &Entry) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        self.ensure_dir()?;
        let path = self.path();
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The release serving now, as the history knows it.
    pub fn current(&self) -> anyhow::Result<Option<Release>> {
        Ok(self.entries()?.iter().rev().find_map(Entry::live_after))
    }

    pub fn read_journal(&self) -> anyhow::Result<Option<Journal>> {
        let path = self.journal_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "{} is not a deploy journal; look at it, then remove it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn write_journal(&self, journal: &Journal) -> anyhow::Result<()> {
        self.ensure_dir()?;
        let path = self.journal_path();
        lifeboat::files::write_atomic(&path, &serde_json::to_vec_pretty(journal)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn remove_journal(&self) -> anyhow::Result<()> {
        let path = self.journal_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// The deploy or rollback in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub action: String,
    pub to: Release,
    /// What served before: what an interrupted run is brought back to.
    pub from: Release,
    /// The step it was at: `migrating`, `switching`, `smoke`, `rolling-back`.
    pub step: String,
    pub backup: Option<String>,
    #[serde(default)]
    pub migrated: bool,
    pub started: DateTime<Utc>,
    pub pid: u32,
    pub by: String,
}
