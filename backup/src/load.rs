//! The SQL loader: an archive streamed into the engine's client (psql, mysql) on a database of
//! the backup source's server, and what arrived checked against the archive and its manifest.
//!
//! `lifeboat-backup verify --restore-test` loads into a scratch database, lifeboat-restore
//! into the database it will swap in; both call [`archive`], so that a restore is checked
//! exactly as a verify is. PostgreSQL's load runs on several sessions (`restore.jobs`), planned
//! with the manifest's `COPY` block sizes, spilling to the backup directory.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::bail;
use lifeboat::engine::{DatabaseServer, LoadPlan};

use crate::archive::{self, Scan, SqlStream};
use crate::manifest::Entry;
use crate::source::Source;

/// Bytes of SQL under which the default (`restore.jobs` unset) is one session.
const SMALL_ARCHIVE: u64 = 64 * 1024 * 1024;

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
    jobs: Option<u32>,
) -> anyhow::Result<Loaded> {
    let m = &entry.manifest;
    // Unless asked, a small archive loads on one session: starting more costs more than they
    // save (scripts/bench restore: 27 MB took 1.35 s on one, 1.78 s on four).
    let jobs = match jobs {
        None if m.raw_size < SMALL_ARCHIVE => Some(1),
        jobs => jobs,
    };
    let plan = LoadPlan {
        jobs,
        // Blocks waiting for a session wait beside the archive: the backup directory.
        spill_dir: entry.archive.parent().map(Path::to_path_buf),
        blocks: block_sizes(m),
    };
    let mut stream = SqlStream::open(&entry.archive, keys)?;
    if let Some(counter) = progress {
        stream = stream.with_progress(counter);
    }
    let server = source.server();
    let loaded = sql(server.as_ref(), database, &mut stream, &plan).await;
    // A decompression error is the archive's fault, whatever psql made of its cut input.
    if let Some(e) = stream.failure(&m.file) {
        return Err(e);
    }
    let copied = loaded?;
    let scan = stream.finish();
    archive::check_scan(entry, &scan)?;
    let copied = if let Some(copied) = copied {
        copied
    } else {
        // The client says nothing of rows: each table of the dump is counted where it landed.
        let names: Vec<&str> = scan.tables.iter().map(|t| t.name.as_str()).collect();
        server
            .count_rows(database, &names)
            .await?
            .into_iter()
            .map(|n| u64::try_from(n).unwrap_or_default())
            .collect()
    };
    check_copied(&m.file, &scan, &copied)?;
    Ok(Loaded { scan, copied })
}

/// Each `COPY` block's size, in the archive's order, when the manifest has them all (a backup of
/// one PostgreSQL database by this version or later).
fn block_sizes(m: &crate::manifest::Manifest) -> Option<Vec<u64>> {
    if m.all || m.tables.is_empty() {
        return None;
    }
    m.tables.iter().map(|t| t.bytes).collect()
}

/// Stream the SQL into the engine's client on the database `scratch` (psql with
/// `ON_ERROR_STOP`, or mysql): the first error stops it, and is the reason given. Returns the
/// rows the server took in, one number per `COPY` block in the order of the script (psql's
/// `COPY n` tags), or `None` when the client does not tell them.
pub async fn sql(
    server: &dyn DatabaseServer,
    scratch: &str,
    stream: &mut SqlStream,
    plan: &LoadPlan,
) -> anyhow::Result<Option<Vec<u64>>> {
    let loaded = server.load(scratch, stream, plan).await?;
    // The client reads to the end of its input; one that stopped early restored only a part.
    if loaded.fed != stream.raw_size() {
        bail!(
            "the {} client stopped reading after {} of {} bytes of SQL without an error",
            server.engine().name(),
            loaded.fed,
            stream.raw_size()
        );
    }
    Ok(loaded.copied)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::TableEstimate;

    #[test]
    fn rows_the_server_took_in_must_be_the_archives() {
        let scan = Scan {
            raw_size: 1,
            tables: vec![
                TableEstimate::new("public.a", 3),
                TableEstimate::new("public.b", 2),
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
