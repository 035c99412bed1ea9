//! `lifeboat-backup rekey`: the local backups re-encrypted to the current recipients (or
//! passphrase), one file at a time, after a key was rotated or lost, or to encrypt backups taken
//! before encryption was set up.
//!
//! Only the age layer changes: the compressed stream inside is copied as it is (never
//! decompressed, never written in clear), so the SQL, its size and its rows stay what the
//! manifest says. Each file is replaced atomically, and a run killed at any point leaves every
//! backup readable:
//!
//! 1. the new archive is written as `NAME.partial` and fsynced (a killed run's is removed by the
//!    next backup, as any partial file);
//! 2. its manifest is written as `NAME.json.rekey`, the record that a swap is under way;
//! 3. `NAME.partial` is renamed over the archive, then `NAME.json.rekey` over its manifest.
//!
//! A record left by a killed run is finished or dropped by the next rekey or backup
//! ([`finish_interrupted`]): kept when the archive is already the new one (its SHA-256 is the
//! record's), removed otherwise. A backup that was unencrypted gets `.age` added to its name,
//! and its clear copy is deleted only once the encrypted one is in place.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lifeboat::config::{settings, Config};
use lifeboat::exit::UsageError;
use lifeboat::lock::JobLock;
use lifeboat::output::hex;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::archive;
use crate::crypt::{self, Keys, Sealing};
use crate::manifest::{self, Entry, Manifest};
use crate::sign;

/// What a pending swap's manifest is called beside the archive.
const PENDING: &str = ".rekey";

/// Re-encrypt every local backup that is not encrypted to the current recipients yet; prints
/// one line per backup on stdout. Exit 1 when one could not be re-encrypted (the others are).
pub fn run(config: &Config) -> anyhow::Result<()> {
    let Some(sealing) = Sealing::from_config(config)? else {
        return Err(UsageError::new(format!(
            "rekey encrypts to {} (or {}), and neither is set",
            settings::LIFEBOAT_BACKUP_RECIPIENTS.var,
            settings::LIFEBOAT_BACKUP_PASSPHRASE.var
        ))
        .into());
    };
    let keys = Keys::from_config(config)?;
    sealing.check_round_trip(&keys)?;
    let dir = &config.backup.dir;
    let key = sign::Key::for_backup(config)?;
    finish_interrupted(dir);
    let (entries, _) =
        manifest::list(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut failed = 0;
    for entry in entries {
        let m = &entry.manifest;
        // With a passphrase, which one it was is not recorded: such a backup is left alone.
        if m.encryption.as_ref() == Some(&sealing.encryption) {
            lifeboat::outln!("{}\talready encrypted to the current recipients", m.file);
            continue;
        }
        // The backup's own lock: no backup, prune or rekey of that database meanwhile.
        let _lock = JobLock::acquire(&config.lock_dir, &format!("backup-{}", m.database))?;
        match rekey_one(&entry, &sealing, &keys, &key) {
            Ok(new) => lifeboat::outln!("{}\tre-encrypted as {new}", m.file),
            Err(e) => {
                failed += 1;
                lifeboat::errln!("{}: not re-encrypted, left as it was: {e:#}", m.file);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} backup(s) could not be re-encrypted; each is left as it was");
    }
    Ok(())
}

/// Re-encrypt one backup; its new file name.
fn rekey_one(
    entry: &Entry,
    sealing: &Sealing,
    keys: &Keys,
    key: &sign::Key,
) -> anyhow::Result<String> {
    let m = &entry.manifest;
    archive::check_size(entry)?;
    archive::check_sha256(entry)?;
    let dir = entry
        .archive
        .parent()
        .context("the archive has no directory")?;
    let name = if crypt::is_encrypted(&m.file) {
        m.file.clone()
    } else {
        format!("{}{}", m.file, crypt::EXTENSION)
    };
    let target = dir.join(&name);
    if name != m.file && (target.exists() || manifest::path_for(&target).exists()) {
        bail!("{name} already exists beside it; remove one of the two before rekeying");
    }
    let partial = dir.join(format!("{name}.partial"));
    let (size, sha256) = {
        let file = File::open(&entry.archive)
            .with_context(|| format!("cannot open {}", entry.archive.display()))?;
        let compressed: Box<dyn Read + Send> = if crypt::is_encrypted(&m.file) {
            keys.open(file, &m.file)?
        } else {
            Box::new(file)
        };
        write_sealed(&partial, compressed, sealing)
            .with_context(|| format!("cannot write {}", partial.display()))?
    };
    let mut new = Manifest {
        file: name.clone(),
        size,
        sha256,
        encryption: Some(sealing.encryption.clone()),
        signature: None,
        ..m.clone()
    };
    new.signature = Some(key.sign(&new));
    let record = pending_path(&target);
    let swapped = (|| {
        let mut text = serde_json::to_string_pretty(&new).map_err(io::Error::other)?;
        text.push('\n');
        lifeboat::files::write_atomic(&record, text.as_bytes())?;
        std::fs::rename(&partial, &target)?;
        std::fs::rename(&record, manifest::path_for(&target))?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = swapped {
        let _ = std::fs::remove_file(&partial);
        // The record stays only if the archive was already swapped: the next run finishes it.
        finish_interrupted(dir);
        return Err(e).context("cannot put the re-encrypted archive in place");
    }
    if name != m.file {
        // The clear copy goes once the encrypted one is a backup; the manifest first.
        std::fs::remove_file(manifest::path_for(&entry.archive))
            .and_then(|()| std::fs::remove_file(&entry.archive))
            .with_context(|| {
                format!(
                    "{name} is in place, but the unencrypted {} could not be deleted; delete it",
                    m.file
                )
            })?;
    }
    info!(
        recipients = ?sealing.encryption.recipients,
        "{}: re-encrypted as {name}",
        m.file
    );
    Ok(name)
}

/// Copy `input` (a compressed stream) into a new file at `partial`, encrypted; its size and
/// SHA-256. The file is removed on any error.
fn write_sealed(
    partial: &Path,
    mut input: Box<dyn Read + Send + '_>,
    sealing: &Sealing,
) -> io::Result<(u64, String)> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)?;
    // Held while written, as a backup's own partial file: a backup of another database
    // removing what killed runs left does not take it for one.
    let written = (|| {
        file.try_lock()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut out = sealing.wrap(Digesting {
            inner: BufWriter::with_capacity(256 * 1024, file.try_clone()?),
            hasher: Sha256::new(),
            size: 0,
        })?;
        io::copy(&mut input, &mut out)?;
        let digesting = out.finish()?;
        digesting
            .inner
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        Ok((digesting.size, hex(&digesting.hasher.finalize())))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(partial);
    }
    written
}

/// Counts and hashes what goes through to the file.
struct Digesting<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pending_path(archive: &Path) -> PathBuf {
    let mut p = manifest::path_for(archive).into_os_string();
    p.push(PENDING);
    PathBuf::from(p)
}

/// Finish or drop the swaps a killed rekey left in `dir`: a record whose archive already has
/// its SHA-256 becomes the manifest; any other record is removed (the archive is still the old
/// one, its manifest still right).
pub fn finish_interrupted(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(manifest_name) = name.strip_suffix(PENDING) else {
            continue;
        };
        let Some(archive_name) = manifest_name.strip_suffix(".json") else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let record = entry.path();
        let parsed = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
            .filter(|m| manifest::plain_file_name(&m.file) && m.file == archive_name);
        let done = parsed.as_ref().is_some_and(|m| {
            let archive = dir.join(&m.file);
            File::open(&archive)
                .and_then(|mut f| archive::sha256(&mut f))
                .is_ok_and(|sha| sha.eq_ignore_ascii_case(&m.sha256))
        });
        if done {
            if std::fs::rename(&record, dir.join(manifest_name)).is_ok() {
                warn!(
                    "finished the re-encryption of {} that a killed rekey left",
                    &manifest_name[..manifest_name.len() - 5]
                );
            }
        } else if std::fs::remove_file(&record).is_ok() {
            warn!("removed {name}: a re-encryption that a killed rekey did not finish (the backup is as it was)");
        }
    }
}
