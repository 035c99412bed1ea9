//! Signed manifests: a backup in the bucket is trusted only when this host made it.
//!
//! Whoever can write the bucket (a leaked S3 key, a shared bucket) could otherwise plant a
//! future-dated "backup" that `lifeboat-restore latest`, `deploy.restore-on-failure` and
//! `rollback --with-data` would run as the database superuser. Every manifest carries an
//! HMAC-SHA256 of its own content under a key that never leaves the host: `LIFEBOAT_BACKUP_KEY`,
//! or the file `<backup dir>/.lifeboat-signing-key` that lifeboat-backup makes at first use
//! (0600). lifeboat-restore refuses a remote backup that is unsigned or signed with another key
//! unless told `--trust-unsigned`.
//!
//! What it does not protect against: someone who can read the key (root on this host, a copy of
//! the backup directory), and a bucket writer deleting or withholding backups. The archive
//! itself is covered through the manifest's SHA-256, which restore checks after downloading.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hmac::{Hmac, Mac};
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use sha2::Sha256;

use crate::manifest::Manifest;

/// The key file's name in the backup directory.
pub const KEY_FILE: &str = ".lifeboat-signing-key";

/// A signing key: never printed.
pub struct Key {
    bytes: Vec<u8>,
}

/// Whether a manifest is signed with our key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Yes,
    Unsigned,
    /// Signed, but not with this host's key (or its content changed since).
    Wrong,
    /// This host has no key to check it with.
    NoKey,
}

impl Signed {
    pub fn describe(self) -> &'static str {
        match self {
            Signed::Yes => "signed",
            Signed::Unsigned => "NOT SIGNED",
            Signed::Wrong => "WRONG SIGNATURE",
            Signed::NoKey => "signature not checked (no key here)",
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

/// The key file's path for a configuration.
pub fn key_path(config: &Config) -> PathBuf {
    config.backup.dir.join(KEY_FILE)
}

impl Key {
    /// The key lifeboat-backup signs with: the setting, or the key file, made at first use.
    pub fn for_backup(config: &Config) -> anyhow::Result<Self> {
        if let Some(k) = Self::from_setting(config)? {
            return Ok(k);
        }
        let path = key_path(config);
        if let Some(k) = read_file(&path)? {
            return Ok(k);
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let text = lifeboat::output::hex(&bytes);
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.backup.dir)
            .and_then(|()| {
                // Written whole under a name of this process, then linked into place (which
                // fails if another run made it first): never a half-written key to read.
                let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                let linked = f
                    .write_all(format!("{text}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .and_then(|()| std::fs::hard_link(&tmp, &path));
                let _ = std::fs::remove_file(&tmp);
                linked
            });
        match made {
            Ok(()) => {
                tracing::info!(
                    "made the signing key {} (0600): manifests are signed with it, and lifeboat-restore trusts off-site backups only with it. Keep a copy where you keep your passwords: a new host needs it (or LIFEBOAT_BACKUP_KEY)",
                    path.display()
                );
                Ok(Self {
                    bytes: text.into_bytes(),
                })
            }
            // Another run made it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                read_file(&path)?.with_context(|| format!("cannot read {}", path.display()))
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot make the signing key {}", path.display()))
            }
        }
    }

    /// The key to check signatures with, if this host has one; never made here.
    pub fn for_restore(config: &Config) -> anyhow::Result<Option<Self>> {
        if let Some(k) = Self::from_setting(config)? {
            return Ok(Some(k));
        }
        read_file(&key_path(config))
    }

    fn from_setting(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(secret) = &config.backup.key else {
            return Ok(None);
        };
        let value = secret.expose().trim();
        if value.len() < 16 {
            bail!(UsageError::new(
                "LIFEBOAT_BACKUP_KEY (backup.key) is shorter than 16 characters; use a long random value, e.g. `openssl rand -hex 32`"
            ));
        }
        Ok(Some(Self {
            bytes: value.as_bytes().to_vec(),
        }))
    }

    /// The signature of `manifest` (its content, the signature itself left out), hex.
    pub fn sign(&self, manifest: &Manifest) -> String {
        let mut mac = self.mac();
        mac.update(&canonical(manifest));
        lifeboat::output::hex(&mac.finalize().into_bytes())
    }

    /// Whether `manifest` carries our signature of its content.
    pub fn check(&self, manifest: &Manifest) -> Signed {
        let Some(sig) = &manifest.signature else {
            return Signed::Unsigned;
        };
        let Some(bytes) = unhex(sig) else {
            return Signed::Wrong;
        };
        let mut mac = self.mac();
        mac.update(&canonical(manifest));
        // Constant-time comparison.
        if mac.verify_slice(&bytes).is_ok() {
            Signed::Yes
        } else {
            Signed::Wrong
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.bytes).unwrap_or_else(|_| unreachable!())
    }
}

/// What is signed: the manifest as JSON without its signature, every object's keys sorted, so
/// that neither the order of a file's fields nor fields a newer version added (kept in
/// [`Manifest::extra`]) change it.
fn canonical(manifest: &Manifest) -> Vec<u8> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let ordered: std::collections::BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::Value::Object(ordered.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let mut value = serde_json::to_value(manifest).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("signature");
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The key file, when there: a regular file of ours that others cannot read, not a link.
fn read_file(path: &Path) -> anyhow::Result<Option<Key>> {
    let (text, meta) = match lifeboat::files::read_own(path, 4096) {
        Ok(Some(read)) => read,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => bail!(UsageError::new(format!(
            "the signing key {} is not a regular file of this user's ({e}); remove it (a new one is made) or set LIFEBOAT_BACKUP_KEY",
            path.display()
        ))),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the signing key {}", path.display()))
        }
    };
    if meta.mode() & 0o077 != 0 {
        bail!(UsageError::new(format!(
            "the signing key {} can be read by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        )));
    }
    let text = text.trim();
    if text.len() < 16 {
        bail!(UsageError::new(format!(
            "the signing key {} is shorter than 16 characters; remove it and a new one is made at the next backup",
            path.display()
        )));
    }
    Ok(Some(Key {
        bytes: text.as_bytes().to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_str(
            r#"{"format":2,"file":"b.sql.gz","database":"app","server_version":"16","source":"container pg","size":10,"raw_size":20,"sha256":"ab","compression":"gzip level 6","started":"2026-01-01T00:00:00Z","finished":"2026-01-01T00:00:01Z","duration_ms":1000,"tool":"t","tables":[]}"#,
        )
        .expect("manifest")
    }

    #[test]
    fn a_signature_covers_every_field_and_only_our_key_makes_it() {
        let ours = Key {
            bytes: b"0123456789abcdef0123".to_vec(),
        };
        let theirs = Key {
            bytes: b"fedcba9876543210fedc".to_vec(),
        };
        let mut m = manifest();
        assert_eq!(ours.check(&m), Signed::Unsigned);
        m.signature = Some(ours.sign(&m));
        assert_eq!(ours.check(&m), Signed::Yes);
        assert_eq!(theirs.check(&m), Signed::Wrong);
        // A planted "newest" backup: the date changed, the signature kept.
        let mut moved = m.clone();
        moved.started = chrono::Utc::now();
        assert_eq!(ours.check(&moved), Signed::Wrong);
        let mut garbage = m.clone();
        garbage.signature = Some("zz".into());
        assert_eq!(ours.check(&garbage), Signed::Wrong);
        assert_eq!(format!("{ours:?}"), "Key(***)");
    }

    #[test]
    fn a_newer_version_s_fields_and_another_field_order_keep_the_signature() {
        let key = Key {
            bytes: b"0123456789abcdef0123".to_vec(),
        };
        // As a newer lifeboat might write it: a field this one does not know.
        let mut newer: serde_json::Value = serde_json::to_value(manifest()).expect("json");
        newer["compression_threads"] = 8.into();
        let mut m: Manifest = serde_json::from_value(newer).expect("parse");
        m.signature = Some(key.sign(&m));
        let written = serde_json::to_string(&m).expect("write");
        let read: Manifest = serde_json::from_str(&written).expect("read");
        assert_eq!(key.check(&read), Signed::Yes, "{written}");
        assert!(written.contains("compression_threads"), "{written}");
        // The same fields in another order: the same signature.
        let value: serde_json::Value = serde_json::from_str(&written).expect("value");
        let mut pairs: Vec<(String, serde_json::Value)> = value
            .as_object()
            .expect("object")
            .clone()
            .into_iter()
            .collect();
        pairs.reverse();
        let reordered = format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                .collect::<Vec<_>>()
                .join(",")
        );
        let read: Manifest = serde_json::from_str(&reordered).expect("read");
        assert_eq!(key.check(&read), Signed::Yes);
        // A changed unknown field breaks it.
        let mut changed = read.clone();
        changed.extra.insert("compression_threads".into(), 9.into());
        assert_eq!(key.check(&changed), Signed::Wrong);
    }
}
