//! Encryption of archives with age (<https://age-encryption.org>): what makes an off-site backup
//! unreadable to the bucket's owner, and to a thief of the backup host itself.
//!
//! With public keys (`LIFEBOAT_BACKUP_RECIPIENTS`: age X25519 `age1…`, `ssh-ed25519`, `ssh-rsa`)
//! the backup host holds nothing that decrypts: a compromised server cannot read its own old
//! backups. The identity (`LIFEBOAT_BACKUP_IDENTITY`) is read only by what must read an archive
//! back (restore, verify, rekey). A passphrase (`LIFEBOAT_BACKUP_PASSPHRASE`) is the other mode.
//!
//! The archive is compressed, then encrypted, in the same single pass ([`crate::archive`]): an
//! `.sql.gz.age` file is exactly what `age -e` makes of the `.sql.gz` one, so `age -d -i key.txt
//! backup.sql.gz.age | gunzip` reads it without lifeboat. Everything here is checked before the
//! dump starts: a recipient that does not parse is exit 2, naming it, with nothing written.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use anyhow::Context;
use lifeboat::config::settings;
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use lifeboat::output::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an encrypted archive's name ends with, after the compression's extension.
pub const EXTENSION: &str = ".age";

/// The most a recipients or identity file may hold: a few hundred keys.
const KEY_FILE_LIMIT: u64 = 256 * 1024;

/// What the manifest says of an encrypted archive: who can read it, never a key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Encryption {
    /// `age`.
    pub scheme: String,
    /// Each recipient's fingerprint ([`fingerprint`]), or `passphrase`.
    pub recipients: Vec<String>,
}

/// A recipient's fingerprint: its kind and the first 16 hex digits of the SHA-256 of its
/// canonical text (`x25519:1f2e…`, `ssh-ed25519:…`), enough to tell which key is which and
/// nothing to encrypt with.
pub fn fingerprint(kind: &str, canonical: &str) -> String {
    let digest = hex(&Sha256::digest(canonical.as_bytes()));
    format!("{kind}:{}", &digest[..16])
}

/// How new archives are encrypted: to recipients, or with a passphrase.
pub struct Sealing {
    recipients: Vec<Box<dyn age::Recipient + Send>>,
    passphrase: Option<SecretString>,
    /// What the manifest records.
    pub encryption: Encryption,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("encryption", &self.encryption)
            .finish_non_exhaustive()
    }
}

impl Sealing {
    /// The encryption the settings ask for, `None` when they ask for none. A recipient that
    /// does not parse, a file that cannot be read, recipients and a passphrase together: a
    /// usage error naming the setting (exit 2), before anything is dumped.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let backup = &config.backup;
        let var = settings::LIFEBOAT_BACKUP_RECIPIENTS.var;
        if backup.recipients.is_empty() {
            return Ok(backup.passphrase.as_ref().map(|p| Self {
                recipients: Vec::new(),
                passphrase: Some(SecretString::from(p.expose().to_owned())),
                encryption: Encryption {
                    scheme: "age".into(),
                    recipients: vec!["passphrase".into()],
                },
            }));
        }
        if backup.passphrase.is_some() {
            return Err(UsageError::new(format!(
                "{var} and {} are both set: age encrypts to public keys or to a passphrase, not \
                 both; unset one",
                settings::LIFEBOAT_BACKUP_PASSPHRASE.var
            ))
            .into());
        }
        let mut recipients: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        let mut fingerprints = Vec::new();
        for entry in &backup.recipients {
            let lines = if looks_like_key(entry) {
                vec![(entry.clone(), None)]
            } else {
                let path = Path::new(entry);
                let text = read_key_file(path).map_err(|e| {
                    UsageError::new(format!(
                        "{var}: cannot read the recipients file {}: {e}",
                        path.display()
                    ))
                })?;
                text.lines()
                    .enumerate()
                    .map(|(n, l)| {
                        let origin = format!("{}, line {}", path.display(), n + 1);
                        (l.trim().to_owned(), Some(origin))
                    })
                    .filter(|(l, _)| !l.is_empty() && !l.starts_with('#'))
                    .collect()
            };
            for (text, origin) in lines {
                let (recipient, fp) = parse_recipient(&text).map_err(|why| {
                    UsageError::new(match &origin {
                        Some(origin) => format!("{var} ({origin}): {why}"),
                        None => format!("{var}: {why}"),
                    })
                })?;
                if !fingerprints.contains(&fp) {
                    recipients.push(recipient);
                    fingerprints.push(fp);
                }
            }
        }
        if recipients.is_empty() {
            return Err(UsageError::new(format!(
                "{var} names no recipient: its files hold only comments or blank lines"
            ))
            .into());
        }
        Ok(Some(Self {
            recipients,
            passphrase: None,
            encryption: Encryption {
                scheme: "age".into(),
                recipients: fingerprints,
            },
        }))
    }

    /// [`Sealing::from_config`], and its [`Sealing::check_round_trip`] with the configured
    /// identity: what a backup does before anything else.
    pub fn checked(config: &Config) -> anyhow::Result<Option<Self>> {
        let sealing = Self::from_config(config)?;
        if let Some(sealing) = &sealing {
            sealing.check_round_trip(&Keys::from_config(config)?)?;
            tracing::debug!(recipients = ?sealing.encryption.recipients, "encrypting with age");
        }
        Ok(sealing)
    }

    /// An age encryptor for one archive (a new file key each time).
    fn encryptor(&self) -> anyhow::Result<age::Encryptor> {
        if let Some(passphrase) = &self.passphrase {
            return Ok(age::Encryptor::with_user_passphrase(passphrase.clone()));
        }
        age::Encryptor::with_recipients(self.recipients.iter().map(|r| r.as_ref() as _)).map_err(
            |e| {
                anyhow::anyhow!(
                    "cannot encrypt to {}: {e}",
                    settings::LIFEBOAT_BACKUP_RECIPIENTS.var
                )
            },
        )
    }

    /// Encrypt what is written to `out`; [`age::stream::StreamWriter::finish`] ends it.
    pub fn wrap<W: Write>(&self, out: W) -> io::Result<age::stream::StreamWriter<W>> {
        self.encryptor()
            .map_err(|e| io::Error::other(format!("{e:#}")))?
            .wrap_output(out)
    }

    /// Before the dump: when an identity is configured too, a few bytes encrypted to the
    /// recipients must decrypt with it, or every backup would be one nobody here can read back.
    pub fn check_round_trip(&self, keys: &Keys) -> anyhow::Result<()> {
        if self.passphrase.is_some() || keys.is_empty() {
            return Ok(());
        }
        let probe = b"lifeboat: the identity reads what the recipients get";
        let mut sealed = Vec::new();
        let mut writer = self.wrap(&mut sealed)?;
        writer.write_all(probe)?;
        writer.finish()?;
        let mut back = Vec::new();
        keys.open(io::Cursor::new(sealed), "a test encryption")
            .and_then(|mut r| r.read_to_end(&mut back).map_err(Into::into))
            .map_err(|e| {
                UsageError::new(format!(
                    "{} cannot decrypt what is encrypted to {}: {e:#}; backups taken so would be \
                     unreadable with it. Add its public key (age-keygen -y FILE) to the \
                     recipients, or fix {}",
                    settings::LIFEBOAT_BACKUP_IDENTITY.var,
                    settings::LIFEBOAT_BACKUP_RECIPIENTS.var,
                    settings::LIFEBOAT_BACKUP_IDENTITY.var
                ))
            })?;
        if back != probe {
            anyhow::bail!("the test encryption did not read back as it was written");
        }
        Ok(())
    }
}

/// Whether a recipients entry is a key rather than a file's path.
fn looks_like_key(entry: &str) -> bool {
    entry.starts_with("age1") || entry.starts_with("ssh-") || entry.starts_with("AGE-SECRET-KEY-")
}

/// One recipient and its fingerprint, or why it is none (never the text itself when that is a
/// secret key).
fn parse_recipient(text: &str) -> Result<(Box<dyn age::Recipient + Send>, String), String> {
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(
            "this is an age identity (a secret key), not a recipient: give its public \
                    key (age-keygen -y FILE) here, and keep the secret key off this host"
                .into(),
        );
    }
    if let Ok(r) = text.parse::<age::x25519::Recipient>() {
        let fp = fingerprint("x25519", &r.to_string());
        return Ok((Box::new(r), fp));
    }
    if text.starts_with("ssh-") {
        return match text.parse::<age::ssh::Recipient>() {
            Ok(r) => {
                let canonical = r.to_string();
                let kind = canonical.split(' ').next().unwrap_or("ssh").to_owned();
                let fp = fingerprint(&kind, &canonical);
                Ok((Box::new(r), fp))
            }
            Err(e) => Err(format!(
                "{} is not an SSH public key age can encrypt to ({})",
                shown(text),
                ssh_reason(&e)
            )),
        };
    }
    Err(format!(
        "{} is not an age recipient (age1…, ssh-ed25519 …, ssh-rsa …) nor a file of them",
        shown(text)
    ))
}

fn ssh_reason(e: &age::ssh::ParseRecipientKeyError) -> String {
    use age::ssh::ParseRecipientKeyError as E;
    match e {
        E::Ignore => "an ignored key".into(),
        E::Invalid(why) => (*why).to_owned(),
        E::RsaModulusTooLarge => "its RSA modulus is too large".into(),
        E::RsaModulusTooSmall => "its RSA modulus is under 2048 bits".into(),
        E::Unsupported(kind) => {
            format!("{kind} keys are not supported; use ssh-ed25519 or ssh-rsa")
        }
        _ => "not a key age reads".into(),
    }
}

/// A recipient as an error shows it: its first characters only.
fn shown(text: &str) -> String {
    let head: String = text.chars().take(16).collect();
    if head.len() < text.len() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

/// A key file's text: a regular file, at most [`KEY_FILE_LIMIT`] bytes.
fn read_key_file(path: &Path) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(KEY_FILE_LIMIT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > KEY_FILE_LIMIT {
        return Err(io::Error::other(format!(
            "larger than {KEY_FILE_LIMIT} bytes: not a key file"
        )));
    }
    Ok(text)
}

/// What decrypts archives: the identities of `LIFEBOAT_BACKUP_IDENTITY`, and the passphrase.
#[derive(Default)]
pub struct Keys {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Where they came from, for messages.
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("identities", &self.identities.len())
            .field("file", &self.file)
            .finish()
    }
}

impl Keys {
    /// No keys: only unencrypted archives can be read.
    pub fn none() -> Self {
        Self::default()
    }

    /// The keys the settings give; an identity file that cannot be read or parsed is a usage
    /// error naming it (exit 2). Its content is never shown.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut keys = Self::default();
        if let Some(path) = &config.backup.identity {
            let var = settings::LIFEBOAT_BACKUP_IDENTITY.var;
            let fail = |why: String| UsageError::new(format!("{var} ({}): {why}", path.display()));
            let text = read_key_file(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
            keys.identities = parse_identities(&text).map_err(fail)?;
            keys.file = Some(path.clone());
        }
        if let Some(passphrase) = &config.backup.passphrase {
            let mut identity =
                age::scrypt::Identity::new(SecretString::from(passphrase.expose().to_owned()));
            // age's own default work factor for a passphrase it did not choose itself.
            identity.set_max_work_factor(22);
            keys.identities.push(Box::new(identity));
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Decrypt `input` (the age file `what`), as a reader of the plaintext.
    pub fn open<'r, R: Read + Send + 'r>(
        &self,
        input: R,
        what: &str,
    ) -> anyhow::Result<Box<dyn Read + Send + 'r>> {
        if self.is_empty() {
            return Err(UsageError::new(format!(
                "{what} is encrypted (age); set {} to the file of its identity (or {} if it was \
                 encrypted with a passphrase)",
                settings::LIFEBOAT_BACKUP_IDENTITY.var,
                settings::LIFEBOAT_BACKUP_PASSPHRASE.var
            ))
            .into());
        }
        let decryptor = age::Decryptor::new_buffered(io::BufReader::new(input))
            .with_context(|| format!("{what} is not a readable age file"))?;
        let reader = decryptor
            .decrypt(
                self.identities
                    .iter()
                    .map(|i| i.as_ref() as &dyn age::Identity),
            )
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                    anyhow::anyhow!(
                        "none of the keys given ({}) decrypts {what}: it was encrypted to other \
                         recipients (its manifest names their fingerprints)",
                        self.describe()
                    )
                }
                other => anyhow::anyhow!("cannot decrypt {what}: {other}"),
            })?;
        Ok(Box::new(reader))
    }

    /// Where the keys come from, for messages.
    fn describe(&self) -> String {
        match &self.file {
            Some(f) => format!("{} {}", settings::LIFEBOAT_BACKUP_IDENTITY.var, f.display()),
            None => settings::LIFEBOAT_BACKUP_PASSPHRASE.var.to_owned(),
        }
    }
}

/// The identities in an identity file: age's own format (`AGE-SECRET-KEY-1…` lines, `#`
/// comments), or one OpenSSH private key without a passphrase.
fn parse_identities(text: &str) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, String> {
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
        || text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        let identity = age::ssh::Identity::from_buffer(io::BufReader::new(text.as_bytes()), None)
            .map_err(|e| format!("not an SSH private key age can use: {e}"))?;
        return match identity {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(identity)]),
            age::ssh::Identity::Encrypted(_) => Err(
                "an SSH key protected by a passphrase, which lifeboat cannot ask for: use an age \
                 identity (age-keygen) or an unprotected copy readable only by this user"
                    .into(),
            ),
            age::ssh::Identity::Unsupported(_) => {
                Err("an SSH key of a kind age does not support: use ssh-ed25519 or ssh-rsa".into())
            }
        };
    }
    let file = age::IdentityFile::from_buffer(io::BufReader::new(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    let identities = file.into_identities().map_err(|e| e.to_string())?;
    if identities.is_empty() {
        return Err("it holds no identity (age-keygen writes one)".into());
    }
    Ok(identities)
}

/// Whether an archive's name says it is encrypted.
pub fn is_encrypted(name: &str) -> bool {
    name.ends_with(EXTENSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_given_as_recipient_is_refused_without_being_shown() {
        let secret = age::x25519::Identity::generate();
        let text = age::secrecy::ExposeSecret::expose_secret(&secret.to_string()).to_owned();
        let Err(why) = parse_recipient(&text) else {
            panic!("a secret key is no recipient")
        };
        assert!(why.contains("identity"), "{why}");
        assert!(!why.contains(&text[16..]), "{why}");
    }

    #[test]
    fn recipients_and_identities_round_trip_and_fingerprints_name_no_key() {
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        let (recipient, fp) = parse_recipient(&public).expect("parses");
        assert!(
            fp.starts_with("x25519:") && fp.len() == "x25519:".len() + 16,
            "{fp}"
        );
        assert!(!public.contains(&fp["x25519:".len()..]));
        let sealing = Sealing {
            recipients: vec![recipient],
            passphrase: None,
            encryption: Encryption {
                scheme: "age".into(),
                recipients: vec![fp],
            },
        };
        let secret = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_owned();
        let keys = Keys {
            identities: parse_identities(&format!("# a comment\n{secret}\n")).expect("identity"),
            file: None,
        };
        sealing.check_round_trip(&keys).expect("round trip");
        let other = Keys {
            identities: parse_identities(age::secrecy::ExposeSecret::expose_secret(
                &age::x25519::Identity::generate().to_string(),
            ))
            .expect("identity"),
            file: None,
        };
        assert!(sealing.check_round_trip(&other).is_err());
    }

    #[test]
    fn an_ssh_public_key_is_a_recipient_named_by_its_fingerprint() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwmoPBRC0D5X+bLyS+vAFwImLK/Q4D3PLjQhcH/sJet ops@laptop";
        let (_, fp) = parse_recipient(key).expect("an ssh-ed25519 recipient");
        assert!(fp.starts_with("ssh-ed25519:"), "{fp}");
        // The comment is not part of the key: the same fingerprint without it.
        let bare = key.rsplit_once(' ').expect("comment").0;
        assert_eq!(parse_recipient(bare).expect("parses").1, fp);
        let Err(why) = parse_recipient("ssh-dss AAAAB3NzaC1kc3MAAACBAP") else {
            panic!("not a key age takes")
        };
        assert!(why.contains("`ssh-dss AAAAB3Nz…`"), "{why}");
    }

    #[test]
    fn a_recipient_that_does_not_parse_is_named_briefly() {
        let Err(why) = parse_recipient("age1notakeyatallbutlongenoughtobecut") else {
            panic!("not a key")
        };
        assert!(why.contains("`age1notakeyatall…`"), "{why}");
    }
}
