//! The off-site copy: the archive as a multipart upload to S3-compatible storage (MinIO,
//! Spaces, AWS), then its manifest, last, as in the directory. Retention applies to the bucket
//! with the same plan, and there too only to backups with a manifest of ours.

use anyhow::Context;
use lifeboat::config::{Config, S3Settings};
use lifeboat::s3::Bucket;
use tracing::{info, warn};

use crate::manifest::{self, Entry, Manifest};
use crate::{retention, Done};

/// Parts of 16 MiB: memory stays bounded whatever the backup's size.
const PART_SIZE: usize = 16 * 1024 * 1024;
const FOLDER: &str = "backups/";

/// Upload `done` and apply retention in the bucket.
/// Upload the backup and its manifest, then apply retention in the bucket (unless
/// `prune_after` is false: retention is held, [`crate::guard`]).
pub async fn copy(
    settings: &S3Settings,
    config: &Config,
    done: &Done,
    prune_after: bool,
) -> anyhow::Result<()> {
    let bucket = Bucket::new(settings);
    let name = format!("{FOLDER}{}", done.manifest.file);
    let sent = bucket.upload_file(&name, &done.archive, PART_SIZE).await?;
    anyhow::ensure!(
        sent == done.manifest.size,
        "uploaded {sent} bytes of {}",
        done.manifest.size
    );
    let manifest =
        std::fs::read(manifest::path_for(&done.archive)).context("reading the manifest")?;
    bucket.put(&format!("{name}.json"), manifest).await?;
    info!(
        "copied {} to s3://{}/{}",
        done.manifest.file,
        bucket.bucket(),
        bucket.key(&name)
    );
    if prune_after {
        prune(&bucket, config).await
    } else {
        info!("retention in the bucket is held too: nothing deleted there");
        Ok(())
    }
}

/// The backups in the bucket (a manifest of ours, and its archive there with the size the
/// manifest claims), and the bucket they are in.
pub async fn entries(settings: &S3Settings) -> anyhow::Result<(Bucket, Vec<Entry>)> {
    let bucket = Bucket::new(settings);
    let entries = remote_entries(&bucket).await?;
    Ok((bucket, entries))
}

/// A manifest is a few KiB, a few MiB with tens of thousands of tables: more is not ours.
const MAX_MANIFEST: usize = 64 * 1024 * 1024;

/// The backups in the bucket. What is there is whoever wrote it's choice: a manifest that does
/// not parse, names another file than its key, or whose key is not a plain name directly under
/// `backups/` (`..`, `//`, a sub-folder) is no backup, and is named in a warning.
async fn remote_entries(bucket: &Bucket) -> anyhow::Result<Vec<Entry>> {
    let objects = bucket.list(FOLDER).await?;
    let mut entries = Vec::new();
    let manifests = objects.iter().filter(|o| {
        manifest::EXTENSIONS
            .iter()
            .any(|ext| o.name.ends_with(&format!("{ext}.json")))
    });
    let refuse = |name: &str, why: &str| {
        warn!(
            "s3://{}/{}: {why}; it is not listed as a backup",
            bucket.bucket(),
            bucket.key(name).escape_debug()
        );
    };
    for manifest_object in manifests {
        let archive = manifest_object.name.trim_end_matches(".json");
        let file = archive.strip_prefix(FOLDER).unwrap_or_default();
        if !manifest::plain_file_name(file) {
            refuse(
                &manifest_object.name,
                "its name is not a plain file name under backups/",
            );
            continue;
        }
        let parsed = match bucket.get(&manifest_object.name, MAX_MANIFEST).await {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let parsed = match parsed {
            Ok(m) => m,
            Err(e) => {
                refuse(
                    &manifest_object.name,
                    &format!("the manifest cannot be read ({e})"),
                );
                continue;
            }
        };
        if parsed.file != file {
            refuse(
                &manifest_object.name,
                "the manifest names another file than its own",
            );
            continue;
        }
        let complete = objects
            .iter()
            .any(|o| o.name == archive && o.size == parsed.size);
        if complete {
            entries.push(Entry {
                archive: archive.into(),
                manifest: parsed,
            });
        }
    }
    entries.sort_by_key(|e| e.manifest.started);
    Ok(entries)
}

async fn prune(bucket: &Bucket, config: &Config) -> anyhow::Result<()> {
    let entries = remote_entries(bucket).await?;
    let rules = &config.backup.keep;
    for decision in retention::plan(entries, chrono::Utc::now(), rules) {
        if decision.keep.is_some() {
            continue;
        }
        let archive = decision.entry.archive.to_string_lossy().into_owned();
        bucket.delete(&format!("{archive}.json")).await?;
        bucket.delete(&archive).await?;
        info!(
            "deleted {} from the bucket ({})",
            decision.entry.manifest.file,
            retention::delete_reason(rules)
        );
    }
    Ok(())
}
