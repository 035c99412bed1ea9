//! The manifest: a JSON file beside each archive, written last, that makes it a backup.
//!
//! A backup without its manifest does not exist for `list`, restore or retention: it is what is
//! left of a run that did not finish, and nothing may trust it or count it as "the newest".

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of this file's shape. 2: `tables` holds exact row counts, read off the dump
/// (format 1 held PostgreSQL's estimates) and `all` says whether it is a pg_dumpall.
pub const FORMAT: u32 = 2;

/// A table and its rows in the dump.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEstimate {
    pub name: String,
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// The archive's file name, in the same directory.
    pub file: String,
    pub database: String,
    pub server_version: String,
    /// Where it came from: `container NAME` or `url postgres://user:***@host/db`.
    pub source: String,
    /// Bytes of the archive.
    pub size: u64,
    /// Bytes pg_dump produced before compression.
    pub raw_size: u64,
    pub sha256: String,
    pub compression: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub duration_ms: u64,
    pub tool: String,
    /// Each table in the dump and its rows, counted exactly as they streamed by
    /// (`db/schema.table` in a backup of every database).
    pub tables: Vec<TableEstimate>,
    /// A backup of every database and the roles (`pg_dumpall`), restored into `postgres`.
    #[serde(default)]
    pub all: bool,
    /// The database's own properties at backup time ([`crate::properties`]), which the restore
    /// applies; absent in a backup of every database, and before 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<crate::properties::DatabaseProperties>,
    /// HMAC-SHA256 of the rest under this host's key ([`crate::sign`]); absent before 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Fields of a newer lifeboat this one does not know: kept as they are, so that they are
    /// written back unchanged and its signature still checks.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Whether `name` is a plain file name, as a manifest's `file` must be: not empty, no `/`, not
/// `.` or `..`, no control characters, at most 255 bytes. A bucket writer's key with `..` or a
/// leading `/` must never become a path outside the backup or download directory.
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// What an archive's name ends with, by compression.
pub const EXTENSIONS: &[&str] = &[".sql.gz", ".sql.zst"];

/// The manifest's path for an archive: `backup_….sql.gz` → `backup_….sql.gz.json`.
pub fn path_for(archive: &Path) -> PathBuf {
    let mut p = archive.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

impl Manifest {
    /// Write the manifest next to its archive (0600, fsynced, renamed into place).
    pub fn write(&self, archive: &Path) -> std::io::Result<PathBuf> {
        let path = path_for(archive);
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        lifeboat::files::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// A backup as `list` shows it: a manifest whose archive is there with the size it claims.
#[derive(Debug, Clone)]
pub struct Entry {
    pub archive: PathBuf,
    pub manifest: Manifest,
}

/// The backups in `dir`, oldest first, and how many archives there are without a manifest.
pub fn list(dir: &Path) -> std::io::Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut orphans = 0;
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((entries, 0)),
        Err(e) => return Err(e),
    };
    for item in read.flatten() {
        let path = item.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            continue;
        }
        let manifest = std::fs::read_to_string(path_for(&path))
            .ok()
            .and_then(|text| serde_json::from_str::<Manifest>(&text).ok())
            .filter(|m| {
                m.file == name
                    && plain_file_name(&m.file)
                    && std::fs::metadata(&path).is_ok_and(|meta| meta.len() == m.size)
            });
        match manifest {
            Some(manifest) => entries.push(Entry {
                archive: path,
                manifest,
            }),
            None => orphans += 1,
        }
    }
    entries.sort_by_key(|e| e.manifest.started);
    Ok((entries, orphans))
}

impl Manifest {
    /// Whether `tables` holds exact counts that a read-back or a restore must match.
    pub fn exact_rows(&self) -> bool {
        self.format >= 2
    }
}

impl Entry {
    /// The SHA-256 of the archive as it is on disk now, hex: read whole, in 1 MiB pieces.
    pub fn sha256_now(&self) -> std::io::Result<String> {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(&self.archive)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lifeboat::output::hex(&hasher.finalize()))
    }

    /// Whether the archive still is what its manifest says (its SHA-256).
    pub fn intact(&self) -> std::io::Result<bool> {
        Ok(self
            .sha256_now()?
            .eq_ignore_ascii_case(&self.manifest.sha256))
    }
}
