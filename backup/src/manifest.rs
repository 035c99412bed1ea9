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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEstimate {
    pub name: String,
    pub rows: i64,
    /// Where its `COPY … FROM stdin;` block starts in the SQL (bytes from the start), and how
    /// long it is, its `COPY` and `\.` lines included: what a parallel restore plans with
    /// (largest first). Absent in manifests written before it, and for MySQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl TableEstimate {
    pub fn new(name: impl Into<String>, rows: i64) -> Self {
        Self {
            name: name.into(),
            rows,
            ..Self::default()
        }
    }
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
    /// Who can decrypt the archive (age), when it is encrypted: fingerprints, never a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypt::Encryption>,
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

/// What an archive's name ends with, by compression, and encryption ([`crate::crypt`]).
pub const EXTENSIONS: &[&str] = &[".sql.gz", ".sql.zst", ".sql.gz.age", ".sql.zst.age"];

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

/// What a backup directory holds, read once: every manifest that names its own archive,
/// whatever state that archive is in (oldest first), the manifests that could not be read, and
/// the archives' names.
struct Listing {
    entries: Vec<Entry>,
    unreadable: Vec<String>,
    archives: usize,
}

fn read_listing(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing {
        entries: Vec::new(),
        unreadable: Vec::new(),
        archives: 0,
    };
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(e),
    };
    let is_archive = |name: &str| EXTENSIONS.iter().any(|ext| name.ends_with(ext));
    for item in read.flatten() {
        let path = item.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if is_archive(name) {
            listing.archives += 1;
            continue;
        }
        let Some(stem) = name.strip_suffix(".json").filter(|stem| is_archive(stem)) else {
            continue;
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Manifest>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(manifest) if manifest.file == stem => listing.entries.push(Entry {
                archive: dir.join(stem),
                manifest,
            }),
            Ok(_) => listing
                .unreadable
                .push(format!("{} names another archive; skipped", path.display())),
            Err(e) => listing.unreadable.push(format!(
                "{} is not a manifest ({e}); skipped",
                path.display()
            )),
        }
    }
    listing.entries.sort_by_key(|e| e.manifest.started);
    Ok(listing)
}

/// The backups in `dir`, oldest first, and how many archives there are without a manifest:
/// only those whose archive is there with the size its manifest claims.
pub fn list(dir: &Path) -> std::io::Result<(Vec<Entry>, usize)> {
    let listing = read_listing(dir)?;
    let entries: Vec<Entry> = listing
        .entries
        .into_iter()
        .filter(|e| {
            plain_file_name(&e.manifest.file)
                && std::fs::metadata(&e.archive).is_ok_and(|meta| meta.len() == e.manifest.size)
        })
        .collect();
    let orphans = listing.archives.saturating_sub(entries.len());
    Ok((entries, orphans))
}

/// Every manifest in `dir` whose archive name it carries, oldest first, whatever state its
/// archive is in; a manifest that cannot be read is named in a warning. Not [`list`]: that
/// hides a backup whose archive lost bytes, and showing that backup is the whole point of
/// verify (the newest backup must not be skipped for an older, intact one).
pub fn all(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let listing = read_listing(dir)?;
    for message in &listing.unreadable {
        tracing::warn!("{message}");
    }
    Ok(listing.entries)
}

/// The backup called `name` (its file name, the name without the extension, or a path), or the
/// newest one for `latest`. An unknown name is the user's mistake (exit 2).
pub fn find(dir: &Path, name: &str) -> anyhow::Result<Entry> {
    use anyhow::Context;
    if name == "latest" {
        return all(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .pop()
            .ok_or_else(|| {
                anyhow::anyhow!(
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
        let path = path_for(&archive);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let manifest = serde_json::from_str(&text).with_context(|| {
                    format!("the manifest {} cannot be read as one", path.display())
                })?;
                return Ok(Entry { archive, manifest });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if archive.is_file() {
                    anyhow::bail!(
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
    Err(lifeboat::exit::UsageError::new(format!(
        "there is no backup named `{name}` in {}; `lifeboat-backup list` shows the backups there",
        dir.display()
    ))
    .into())
}

/// Every table whose rows in `found` are not the manifest's (`expected`), one description
/// each; `place` says where they were counted.
pub fn differences(
    expected: &[TableEstimate],
    found: &[TableEstimate],
    place: &str,
) -> Vec<String> {
    let mut counted: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
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

impl Manifest {
    /// Whether `tables` holds exact counts that a read-back or a restore must match.
    pub fn exact_rows(&self) -> bool {
        self.format >= 2
    }
}

impl Entry {
    /// The SHA-256 of the archive as it is on disk now, hex.
    pub fn sha256_now(&self) -> std::io::Result<String> {
        crate::archive::sha256(&mut std::fs::File::open(&self.archive)?)
    }

    /// Whether the archive still is what its manifest says (its SHA-256).
    pub fn intact(&self) -> std::io::Result<bool> {
        Ok(self
            .sha256_now()?
            .eq_ignore_ascii_case(&self.manifest.sha256))
    }
}

/// Backups as `lifeboat-backup` writes them, for the tests of this crate.
#[cfg(test)]
pub(crate) mod fixture {
    use std::io::Write;
    use std::path::Path;

    use sha2::Digest;

    use super::{Entry, Manifest};
    use crate::sqlscan::RowCounter;

    /// A dump with two tables, one of them in a schema whose name needs quoting.
    pub const SQL: &str = "CREATE TABLE public.items (id int);\n\
        COPY public.items (id) FROM stdin;\n1\n2\n3\n\\.\n\
        COPY shop.\"Order Lines\" (id) FROM stdin;\n1\n\\.\n\
        -- PostgreSQL database dump complete\n";

    /// An archive of `sql` (gzip) and its manifest, as `backup` writes them, started `at`.
    pub fn backup(dir: &Path, name: &str, sql: &str, at: &str) -> Entry {
        let archive = dir.join(name);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(sql.as_bytes()).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        std::fs::write(&archive, &bytes).expect("archive");
        let mut rows = RowCounter::default();
        rows.feed(sql.as_bytes());
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "file": name, "database": "app", "server_version": "15.4",
            "source": "test", "size": bytes.len(), "raw_size": sql.len(),
            "sha256": lifeboat::output::hex(&sha2::Sha256::digest(&bytes)),
            "compression": "gzip level 6", "started": at, "finished": at, "duration_ms": 1,
            "tool": "test", "tables": rows.finish(),
        }))
        .expect("manifest");
        manifest.write(&archive).expect("write manifest");
        Entry { archive, manifest }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{backup, SQL};
    use super::*;

    #[test]
    fn latest_is_the_newest_manifest_even_when_its_archive_lost_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        backup(dir.path(), "backup_1.sql.gz", SQL, "2026-11-22T02:00:00Z");
        let newest = backup(dir.path(), "backup_2.sql.gz", SQL, "2026-11-23T02:00:00Z");
        std::fs::write(&newest.archive, b"cut").expect("damage");
        let found = find(dir.path(), "latest").expect("latest");
        assert_eq!(found.manifest.file, "backup_2.sql.gz");
        let err = crate::archive::check_size(&found)
            .expect_err("must fail")
            .to_string();
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
        let t = |name: &str, rows| TableEstimate::new(name, rows);
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
    fn list_shows_only_intact_backups_and_counts_archives_without_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        backup(dir.path(), "backup_1.sql.gz", SQL, "2026-11-22T02:00:00Z");
        let cut = backup(dir.path(), "backup_2.sql.gz", SQL, "2026-11-23T02:00:00Z");
        backup(dir.path(), "backup_3.sql.zst", SQL, "2026-11-21T02:00:00Z");
        std::fs::write(&cut.archive, b"cut").expect("damage");
        std::fs::write(dir.path().join("backup_4.sql.gz"), b"partial").expect("orphan");
        std::fs::write(dir.path().join("backup_5.sql.gz.json"), b"{").expect("bad manifest");
        std::fs::write(dir.path().join("notes.txt"), b"x").expect("other");
        let (entries, orphans) = list(dir.path()).expect("list");
        let names: Vec<&str> = entries.iter().map(|e| e.manifest.file.as_str()).collect();
        assert_eq!(names, ["backup_3.sql.zst", "backup_1.sql.gz"]);
        assert_eq!(orphans, 2);
        let names: Vec<String> = all(dir.path())
            .expect("all")
            .into_iter()
            .map(|e| e.manifest.file)
            .collect();
        assert_eq!(
            names,
            ["backup_3.sql.zst", "backup_1.sql.gz", "backup_2.sql.gz"]
        );
        assert_eq!(list(&dir.path().join("none")).expect("missing dir").1, 0);
    }
}
