//! Backups as the tests handle them: the test bucket through lifeboat's own S3 module, and an
//! archive rewritten on disk (its SQL edited, its manifest patched) as someone who meant it
//! would, so that only a restore or a verify can tell.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::S3Stack;

impl S3Stack {
    /// The test bucket under `prefix` (e.g. `"lifeboat/"`), through lifeboat's S3 module.
    pub fn bucket(&self, prefix: &str) -> lifeboat::s3::Bucket {
        lifeboat::s3::Bucket::new(&lifeboat::config::S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: lifeboat::secret::Secret::new(self.secret_access_key.clone()),
            bucket: self.bucket.clone(),
            prefix: prefix.to_owned(),
            path_style: true,
        })
    }

    /// The variables that point a lifeboat binary at this bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("S3_ENDPOINT", self.endpoint.clone()),
            ("S3_BUCKET", self.bucket.clone()),
            ("S3_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("S3_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ]
    }
}

/// Run one future to its end on a runtime of its own, from a test that is not async.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// The manifest beside an archive (`ARCHIVE.json`), as JSON.
pub fn manifest_of(archive: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(manifest_path(archive)).expect("manifest");
    serde_json::from_str(&text).expect("JSON")
}

/// Change the manifest beside `archive` with `patch` and write it back.
pub fn patch_manifest(archive: &Path, patch: impl FnOnce(&mut serde_json::Value)) {
    let mut manifest = manifest_of(archive);
    patch(&mut manifest);
    std::fs::write(
        manifest_path(archive),
        serde_json::to_string_pretty(&manifest).expect("JSON"),
    )
    .expect("write manifest");
}

pub fn manifest_path(archive: &Path) -> String {
    format!("{}.json", archive.display())
}

/// SHA-256 of `bytes`, lowercase hex, as manifests write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    lifeboat::output::hex(&sha2::Sha256::digest(bytes))
}

/// The SQL of a gzip archive (every member of the stream).
pub fn gunzip(archive: &Path) -> String {
    let mut sql = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(archive).expect("open"))
        .read_to_string(&mut sql)
        .expect("a complete gzip stream");
    sql
}

/// Rewrite the archive's SQL with `edit` and make its manifest match the new archive exactly
/// (size, SHA-256, bytes of SQL).
pub fn rewrite_sql(archive: &Path, edit: impl FnOnce(String) -> String) {
    rewrite_as(archive, archive, edit);
}

/// A copy of `archive` named `name` whose SQL `edit` changed, with a manifest that matches it
/// exactly (its `file` too).
pub fn edited_copy(archive: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let copy = archive.with_file_name(name);
    std::fs::copy(manifest_path(archive), manifest_path(&copy)).expect("manifest");
    rewrite_as(archive, &copy, edit);
    patch_manifest(&copy, |m| m["file"] = name.into());
    copy
}

fn rewrite_as(archive: &Path, target: &Path, edit: impl FnOnce(String) -> String) {
    let sql = edit(gunzip(archive));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(sql.as_bytes()).expect("gzip");
    let bytes = gz.finish().expect("gzip");
    std::fs::write(target, &bytes).expect("write");
    patch_manifest(target, |m| {
        m["size"] = bytes.len().into();
        m["sha256"] = sha256_hex(&bytes).into();
        m["raw_size"] = sql.len().into();
    });
}
