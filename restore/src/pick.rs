//! Which backup: `latest` (the newest backup of the database, here or in the bucket), a name
//! (as `list` prints it, with or without its extension), a path, or `s3://bucket/…/name`; or,
//! with none given on a terminal, a numbered list to choose from. A backup is an archive with
//! its manifest (lifeboat-backup's format): anything else is refused.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use lifeboat::output::human_bytes;
use lifeboat::s3::Bucket;
use lifeboat_backup::manifest::{self, Entry};
use lifeboat_backup::offsite;
use lifeboat_backup::sign::{self, Signed};
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Local,
    S3,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::Local => "local",
            Place::S3 => "s3",
        }
    }
}

/// A backup that can be chosen.
#[derive(Clone)]
pub struct Candidate {
    pub place: Place,
    pub entry: Entry,
    /// For a backup in the bucket, whether this host signed it (see [`sign`]).
    pub signed: Option<Signed>,
}

/// The backups here and in the bucket (when one is configured), oldest first.
pub struct Catalog {
    pub candidates: Vec<Candidate>,
    bucket: Option<Bucket>,
    /// Backups in the bucket not offered: not signed with this host's key.
    refused: Vec<(String, Signed)>,
}

impl Catalog {
    /// The backups; one in the bucket only when signed with this host's key, or with
    /// `trust_unsigned` (`--trust-unsigned`).
    pub async fn load(config: &Config, trust_unsigned: bool) -> anyhow::Result<Self> {
        let dir = &config.backup.dir;
        let mut candidates: Vec<Candidate> = manifest::all(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .into_iter()
            .map(|entry| Candidate {
                place: Place::Local,
                entry,
                signed: None,
            })
            .collect();
        let mut bucket = None;
        let mut refused = Vec::new();
        if config.s3.bucket.is_some() {
            let settings = config.require_s3("to list the off-site backups")?;
            // A bucket out of reach must not stand between a person and a local backup.
            match offsite::entries(&settings).await {
                Ok((b, remote)) => {
                    // A key that cannot be read must not stand between a person and a local
                    // backup: the bucket's are then unchecked, and refused as such.
                    let key = sign::Key::for_restore(config).unwrap_or_else(|e| {
                        warn!("{e:#}; the backups in the bucket cannot be checked");
                        None
                    });
                    for entry in remote {
                        let signed = key
                            .as_ref()
                            .map_or(Signed::NoKey, |k| k.check(&entry.manifest));
                        if signed == Signed::Yes || trust_unsigned {
                            candidates.push(Candidate {
                                place: Place::S3,
                                entry,
                                signed: Some(signed),
                            });
                        } else {
                            refused.push((entry.manifest.file, signed));
                        }
                    }
                    bucket = Some(b);
                    if !refused.is_empty() {
                        warn!(
                            "{} backup(s) in the bucket are not offered: {}. {}",
                            refused.len(),
                            refused
                                .iter()
                                .map(|(f, s)| format!("{f} ({})", s.describe()))
                                .collect::<Vec<_>>()
                                .join(", "),
                            untrusted_hint(config, key.is_some())
                        );
                    }
                }
                Err(e) => {
                    warn!("cannot list the off-site backups ({e:#}); only local ones are shown");
                }
            }
        }
        candidates.sort_by_key(|c| (c.entry.manifest.started, c.place == Place::S3));
        Ok(Self {
            candidates,
            bucket,
            refused,
        })
    }

    /// One line per backup, numbered from 1: number, where, name, start, age, size in bytes,
    /// database and whether it matches its manifest (local: its SHA-256; s3: its size).
    pub fn lines(&self) -> Vec<String> {
        let now = Utc::now();
        self.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let m = &c.entry.manifest;
                let verified = match c.place {
                    Place::S3 => format!(
                        "size ok, {}",
                        c.signed.map_or("signature not checked", Signed::describe)
                    ),
                    Place::Local => match c.entry.intact() {
                        Ok(true) => "sha256 ok".to_owned(),
                        Ok(false) => "DAMAGED: sha256 differs from the manifest".to_owned(),
                        Err(e) => format!("UNREADABLE: {e}"),
                    },
                };
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{verified}",
                    i + 1,
                    c.place.name(),
                    m.file,
                    m.started.format("%Y-%m-%d %H:%M:%S UTC"),
                    age(now - m.started),
                    m.size,
                    m.database,
                )
            })
            .collect()
    }

    /// The backup `wanted` names, for database `db`.
    pub fn pick(&self, config: &Config, wanted: &str, db: &str) -> anyhow::Result<Candidate> {
        if wanted == "latest" {
            return self
                .candidates
                .iter()
                .rev()
                .find(|c| c.entry.manifest.database == db && !c.entry.manifest.all)
                .cloned()
                .ok_or_else(|| {
                    anyhow!(UsageError::new(format!(
                        "there is no backup of database {db} in {}{}; name one (`lifeboat-restore list` shows them all)",
                        config.backup.dir.display(),
                        if self.bucket.is_some() { " or in the bucket" } else { "" }
                    )))
                });
        }
        if let Some(rest) = wanted.strip_prefix("s3://") {
            let (bucket_name, key) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(bucket) = &self.bucket else {
                bail!(UsageError::new(format!(
                    "{wanted}: no bucket is configured (set S3_BUCKET and its keys), or it could not be listed (see above)"
                )));
            };
            if bucket_name != bucket.bucket() {
                bail!(UsageError::new(format!(
                    "{wanted} is not in the configured bucket {} (S3_BUCKET)",
                    bucket.bucket()
                )));
            }
            let file = key.rsplit('/').next().unwrap_or_default();
            self.refuse_untrusted(config, file)?;
            return self.find_remote(file).ok_or_else(|| {
                anyhow!(UsageError::new(format!(
                    "there is no backup {file} (with its manifest) under s3://{}/{}",
                    bucket.bucket(),
                    bucket.key("backups/")
                )))
            });
        }
        match manifest::find(&config.backup.dir, wanted) {
            Ok(entry) => Ok(Candidate {
                place: Place::Local,
                entry,
                signed: None,
            }),
            Err(e) if lifeboat::exit::code_for(&e) == lifeboat::exit::USAGE => {
                let file = wanted.rsplit('/').next().unwrap_or(wanted);
                self.refuse_untrusted(config, file)?;
                self.find_remote(file).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    fn find_remote(&self, file: &str) -> Option<Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.place == Place::S3)
            .find(|c| names(&c.entry.manifest.file, file))
            .cloned()
    }

    /// A backup named by hand that is in the bucket but not signed by this host: said so.
    fn refuse_untrusted(&self, config: &Config, file: &str) -> anyhow::Result<()> {
        match self.refused.iter().find(|(f, _)| names(f, file)) {
            Some((f, signed)) => bail!(UsageError::new(format!(
                "{f} in the bucket is {}: {}",
                signed.describe(),
                untrusted_hint(config, *signed != Signed::NoKey)
            ))),
            None => Ok(()),
        }
    }

    /// Show the list on stderr and ask for a number (Enter: the newest of `db`).
    pub fn choose(&self, config: &Config, db: &str) -> anyhow::Result<Candidate> {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            bail!(UsageError::new(
                "which backup? Name one (latest, a name from `lifeboat-restore list`, a path or s3://…), or run on a terminal to choose from the list"
            ));
        }
        if self.candidates.is_empty() {
            bail!(
                "there are no backups in {}{}",
                config.backup.dir.display(),
                if self.bucket.is_some() {
                    " or in the bucket"
                } else {
                    ""
                }
            );
        }
        let mut err = std::io::stderr().lock();
        writeln!(err, "Backups (oldest first):")?;
        writeln!(
            err,
            "  #  where  name  taken  age  size  database  verified"
        )?;
        for (line, c) in self.lines().iter().zip(&self.candidates) {
            let mut fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
            if let Some(size) = fields.get_mut(5) {
                *size = human_bytes(c.entry.manifest.size);
            }
            writeln!(err, "  {}", fields.join("  "))?;
        }
        write!(
            err,
            "Which backup? [1-{}, Enter: latest] ",
            self.candidates.len()
        )?;
        err.flush()?;
        drop(err);
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.trim();
        if answer.is_empty() {
            return self.pick(config, "latest", db);
        }
        let n: usize = answer
            .parse()
            .ok()
            .filter(|n| (1..=self.candidates.len()).contains(n))
            .ok_or_else(|| {
                UsageError::new(format!(
                    "{answer:?} is not a number from the list; nothing was done"
                ))
            })?;
        Ok(self.candidates[n - 1].clone())
    }

    /// A local copy of the chosen backup: itself, or downloaded from the bucket into `into`.
    pub async fn fetch(&self, chosen: &Candidate, into: &Path) -> anyhow::Result<Entry> {
        if chosen.place == Place::Local {
            return Ok(chosen.entry.clone());
        }
        let bucket = self.bucket.as_ref().context("no bucket")?;
        let name = chosen.entry.archive.to_string_lossy().into_owned();
        let key = bucket.key(&name);
        let file = &chosen.entry.manifest.file;
        let file_name = file.clone();
        anyhow::ensure!(
            manifest::plain_file_name(file),
            "the manifest names {:?}, not a plain file name; not downloaded",
            file.escape_debug().to_string()
        );
        let local: PathBuf = into.join(file);
        let limit = chosen.entry.manifest.size;
        let mut written: u64 = 0;
        info!(
            "downloading s3://{}/{key} ({})",
            bucket.bucket(),
            human_bytes(chosen.entry.manifest.size)
        );
        let mut object = bucket
            .client()
            .get_object()
            .bucket(bucket.bucket())
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow!("cannot download s3://{}/{key}: {e}", bucket.bucket()))?;
        let mut file = tokio::fs::File::create(&local)
            .await
            .with_context(|| format!("cannot create {}", local.display()))?;
        let bar = lifeboat::progress::Bar::bytes(&format!("downloading {file_name}"), Some(limit));
        while let Some(chunk) = object.body.next().await {
            let chunk =
                chunk.map_err(|e| anyhow!("downloading s3://{}/{key}: {e}", bucket.bucket()))?;
            written += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
            anyhow::ensure!(
                written <= limit,
                "s3://{}/{key} is larger than the {limit} bytes its manifest says; not restored",
                bucket.bucket()
            );
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .with_context(|| format!("writing {}", local.display()))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        Ok(Entry {
            archive: local,
            manifest: chosen.entry.manifest.clone(),
        })
    }
}

/// Whether `file`, as a person names it (with or without its extension or `.json`), is `name`.
fn names(name: &str, file: &str) -> bool {
    let file = file.strip_suffix(".json").unwrap_or(file);
    name == file
        || manifest::EXTENSIONS
            .iter()
            .any(|ext| name == format!("{file}{ext}"))
}

/// What to do about a backup in the bucket this host did not sign.
fn untrusted_hint(config: &Config, have_key: bool) -> String {
    if have_key {
        "Whoever can write the bucket could have put it there, and a restore runs it as the database superuser. If you know where it comes from (an older lifeboat, another host), check it (`age`, `database`, size) and pass --trust-unsigned".to_owned()
    } else {
        format!(
            "This host has no signing key to check them with (LIFEBOAT_BACKUP_KEY, or {} from the host that made the backups); copy it here, or check the backup and pass --trust-unsigned",
            sign::key_path(config).display()
        )
    }
}

/// `3 min`, `7 h`, `2 d`: how long ago.
pub fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
