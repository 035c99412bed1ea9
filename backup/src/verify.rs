//! `lifeboat-backup verify`: is a backup what its manifest says, and does it restore?
//!
//! A backup nobody ever read back is a hope, not a backup: seed 001's script wrote archives for
//! months without anyone checking that one would restore. verify checks, in this order, and says
//! each on stderr: the archive's size and SHA-256 against its manifest; a decompression to the
//! very end, with the bytes of SQL and every table's rows (its `COPY` lines, counted exactly as
//! the backup counted them) against the manifest; and with `--restore-test`, a restore into a
//! scratch database on the same server and a `count(*)` of every table there, whatever its
//! engine ([`crate::engine`]).
//!
//! Exit 0 only when everything matched; otherwise exit 1 with the first check that failed (all
//! of its differences). The scratch database is always dropped: after success, after a failure,
//! and on SIGTERM or Ctrl-C.

use std::hash::BuildHasher;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use lifeboat::progress::Bar;
use lifeboat::signal::Stop;
use tracing::{error, info};

use crate::archive::{self, Scan};
use crate::crypt::{self, Keys};
use crate::load;
use crate::manifest::{self, Entry, TableEstimate};
use crate::source::Source;

/// Verify the backup `name` (`latest` when `None`); on success print one line on stdout. A
/// restore test is a drill, recorded ([`crate::drill`]) whether it passed or not, unless the
/// request itself was wrong (exit 2).
pub fn run(config: &Config, name: Option<&str>, restore_test: bool) -> anyhow::Result<()> {
    let entry = manifest::find(&config.backup.dir, name.unwrap_or("latest"))?;
    if !restore_test {
        return check(config, &entry, false).map(|_| ());
    }
    let (at, clock) = (Utc::now(), std::time::Instant::now());
    let result = check(config, &entry, true);
    if let Err(e) = &result {
        if lifeboat::exit::code_for(e) == lifeboat::exit::USAGE {
            return result.map(|_| ());
        }
    }
    let (tables, rows) = result.as_ref().map_or((0, 0), |scan| {
        (scan.tables.len(), scan.tables.iter().map(|t| t.rows).sum())
    });
    crate::drill::record(
        config,
        &crate::drill::Drill {
            at,
            backup: entry.manifest.file.clone(),
            database: entry.manifest.database.clone(),
            outcome: if result.is_ok() { "passed" } else { "failed" }.to_owned(),
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            tables,
            rows,
            error: result
                .as_ref()
                .err()
                .map(|e| lifeboat::redact::redact(&format!("{e:#}"))),
        },
    );
    result.map(|_| ())
}

/// The checks of `verify` on `entry`, and with `restore_test` the restore into a scratch
/// database; on success one line on stdout, and what the archive held.
fn check(config: &Config, entry: &Entry, restore_test: bool) -> anyhow::Result<Scan> {
    let file = &entry.manifest.file;
    if restore_test && entry.manifest.all {
        return Err(UsageError::new(format!(
            "{file} is a backup of every database and the roles (pg_dumpall, --all); \
             --restore-test restores single-database backups only. Verify it without \
             --restore-test"
        ))
        .into());
    }
    // The identity is read (and a bad one refused) before anything else.
    let keys = Keys::from_config(config)?;
    if crypt::is_encrypted(file) && keys.is_empty() {
        // Said now rather than after a checksum of the whole archive.
        keys.open(std::io::empty(), file)?;
    }
    archive::check_size(entry)?;
    archive::check_sha256(entry)?;
    let scan = if restore_test {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(restore_test_run(config, entry, &keys))?
    } else {
        let sql_bytes = Arc::new(AtomicU64::new(0));
        let bar = Bar::start(
            &format!("decompressing {file}"),
            entry.manifest.raw_size,
            Arc::clone(&sql_bytes),
        );
        let scan = archive::decompress(entry, &keys, Some(sql_bytes));
        bar.finish();
        let scan = scan?;
        archive::check_scan(entry, &scan)?;
        scan
    };
    let rows: i64 = scan.tables.iter().map(|t| t.rows).sum();
    lifeboat::outln!(
        "verified {file}: sha256 ok, {} bytes of SQL, {} tables, {rows} rows{}",
        scan.raw_size,
        scan.tables.len(),
        if restore_test {
            ", restore test ok"
        } else {
            ""
        }
    );
    Ok(scan)
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
async fn restore_test_run(config: &Config, entry: &Entry, keys: &Keys) -> anyhow::Result<Scan> {
    let m = &entry.manifest;
    let source = Source::resolve(config).await?;
    let mysql = source.engine() == lifeboat::db::Engine::Mysql;
    if !m.exact_rows() {
        return Err(UsageError::new(format!(
            "{} was written by an earlier lifeboat-backup whose manifest (format {}) holds              estimated row counts: --restore-test cannot compare them; run verify without it",
            m.file, m.format
        ))
        .into());
    }
    // MySQL's names are backquoted wherever they reach SQL (mysql::server::ident).
    if let Some(bad) = m.tables.iter().find(|t| !mysql && !is_table_name(&t.name)) {
        bail!(
            "the manifest of {} names a table `{}`, which is not schema.table as pg_dump writes \
             it; it cannot be counted",
            m.file,
            bad.name
        );
    }
    let scratch = scratch_name();
    // Signals stay caught from here on: a second Ctrl-C cannot stop the clean-up halfway.
    let stop = Stop::install("restore test", "no scratch database behind")?;
    let tested = stop
        .interruptible(restore_and_count(
            &source,
            &scratch,
            entry,
            keys,
            config.restore.jobs,
        ))
        .await;
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

async fn restore_and_count(
    source: &Source,
    scratch: &str,
    entry: &Entry,
    keys: &Keys,
    jobs: Option<u32>,
) -> anyhow::Result<Scan> {
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
    let sql_bytes = Arc::new(AtomicU64::new(0));
    let bar = Bar::start(
        &format!("restoring {}", m.file),
        m.raw_size,
        Arc::clone(&sql_bytes),
    );
    let loaded = load::archive(source, scratch, entry, keys, Some(sql_bytes), jobs).await;
    bar.finish();
    let load::Loaded { scan, .. } = loaded?;
    info!("{scratch}: {} restored without an error", m.file);

    let counted = count_rows(source, scratch, &m.tables)
        .await
        .with_context(|| format!("cannot count the rows in the scratch database {scratch}"))?;
    let differences = manifest::differences(&m.tables, &counted, "the restored database");
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
    source.server().create_database(scratch).await
}

/// Drop the scratch database, its sessions first (a client stopped by a signal may linger).
async fn drop_scratch(source: &Source, scratch: &str) -> anyhow::Result<()> {
    source.server().drop_database(scratch).await
}

/// `SELECT count(*)` of every manifest table in the scratch database.
pub async fn count_rows(
    source: &Source,
    scratch: &str,
    tables: &[TableEstimate],
) -> anyhow::Result<Vec<TableEstimate>> {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let counts = source.server().count_rows(scratch, &names).await?;
    Ok(tables
        .iter()
        .zip(counts)
        .map(|(t, rows)| TableEstimate::new(t.name.clone(), rows))
        .collect())
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
    use super::*;

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
