//! The off-site copy: the archive as a multipart upload to S3-compatible storage (MinIO,
//! Spaces, AWS), then its manifest, last, as in the directory. Retention applies to the bucket
//! with the same plan, and there too only to backups with a manifest of ours.

use anyhow::Context;
use lifeboat::config::{Config, S3Settings};
use lifeboat::s3::Bucket;
use tracing::info;

use crate::manifest::{self, Entry, Manifest};
use crate::{retention, Done};

/// Parts of 16 MiB: memory stays bounded whatever the backup's size.
const PART_SIZE: usize = 16 * 1024 * 1024;
const FOLDER: &str = "backups/";

/// Upload `done` and apply retention in the bucket.
pub async fn copy(settings: &S3Settings, config: &Config, done: &Done) -> anyhow::Result<()> {
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
    prune(&bucket, config).await
}

/// The backups in the bucket (a manifest of ours, and its archive there with the size the
/// manifest claims), and the bucket they are in.
pub async fn entries(settings: &S3Settings) -> anyhow::Result<(Bucket, Vec<Entry>)> {
    let bucket = Bucket::new(settings);
    let entries = remote_entries(&bucket).await?;
    Ok((bucket, entries))
}

async fn remote_entries(bucket: &Bucket) -> anyhow::Result<Vec<Entry>> {
    let objects = bucket.list(FOLDER).await?;
    let mut entries = Vec::new();
    let manifests = objects.iter().filter(|o| {
        manifest::EXTENSIONS
            .iter()
            .any(|ext| o.name.ends_with(&format!("{ext}.json")))
    });
    for manifest_object in manifests {
        let archive = manifest_object.name.trim_end_matches(".json");
        let Ok(parsed) =
            serde_json::from_slice::<Manifest>(&bucket.get(&manifest_object.name).await?)
        else {
            continue;
        };
        let complete = objects
            .iter()
            .any(|o| o.name == archive && o.size == parsed.size);
        if complete && format!("{FOLDER}{}", parsed.file) == archive {
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
