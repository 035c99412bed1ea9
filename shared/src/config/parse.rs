//! Parsers of one value each: what a setting's text must look like, and the message when it
//! does not. Messages never repeat a value that may be a secret (URLs are not echoed).

use std::path::Path;

use super::settings::DEFAULT_BACKUP_NAME;
use super::values::{Compress, EngineChoice, MailWhen, SmtpTls};

pub(super) fn parse_mail_when(v: &str) -> Result<MailWhen, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "never" | "off" => Ok(MailWhen::Never),
        "failure" | "failures" => Ok(MailWhen::Failure),
        "always" => Ok(MailWhen::Always),
        "weekly" => Ok(MailWhen::Weekly),
        _ => Err(format!(
            "expected failure, always, weekly or never, got {v:?}"
        )),
    }
}

pub(super) fn parse_url(v: &str, schemes: &[&str]) -> Result<String, String> {
    let parsed = url::Url::parse(v).map_err(|e| format!("not a URL ({e})"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "scheme `{}` is not one of {}",
            parsed.scheme(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(v.to_owned())
}

pub(super) fn parse_port(v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("expected a port number 1-65535, got {v:?}")),
    }
}

/// `true/false`, `yes/no`, `1/0`, `on/off`, as people write them in `.env` files.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

pub(super) fn parse_smtp_tls(v: &str) -> Result<SmtpTls, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "none" | "plain" | "off" => Ok(SmtpTls::None),
        "starttls" => Ok(SmtpTls::StartTls),
        "tls" | "ssl" | "smtps" => Ok(SmtpTls::Tls),
        _ => Err(format!("expected none, starttls or tls, got {v:?}")),
    }
}

pub(super) fn parse_bucket(v: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{v:?} is not a bucket name (3-63 lowercase letters, digits, '-' or '.')"
        ))
    }
}

/// `a, b,,c` → `["a", "b", "c"]`: a comma-separated list, blanks dropped.
pub(super) fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn parse_count(v: &str, min: u32) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least {min}, got {v:?}"
        )),
    }
}

/// A fraction from 0 to 1, such as `0.5`.
pub(super) fn parse_ratio(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "expected a fraction from 0 to 1, such as 0.5, got {v:?}"
        )),
    }
}

/// The most days a day count may say: about 270 years, "keep forever" in practice, and far inside
/// the dates chrono can hold (99999999 days would not be).
pub const MAX_DAYS: u32 = 100_000;

pub(super) fn parse_days(v: &str, min: u32) -> Result<u32, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if n >= u64::from(min) && n <= u64::from(MAX_DAYS) => {
            Ok(u32::try_from(n).unwrap_or(MAX_DAYS))
        }
        _ => Err(format!(
            "expected a number of days from {min} to {MAX_DAYS} (about 270 years: keep forever), got {v:?}"
        )),
    }
}

/// `days` days before `now`, or the earliest date there is: never a panic, whatever the count.
pub fn days_before(now: chrono::DateTime<chrono::Utc>, days: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::TimeDelta::try_days(i64::from(days))
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

pub(super) fn parse_level(v: &str, compress: Compress) -> Result<u32, String> {
    let max = compress.max_level();
    match v.trim().parse::<u32>() {
        Ok(l) if (1..=max).contains(&l) => Ok(l),
        _ => Err(format!("expected a {compress} level 1-{max}, got {v:?}")),
    }
}

pub(super) fn parse_compress(v: &str) -> Result<Compress, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "gzip" | "gz" => Ok(Compress::Gzip),
        "zstd" | "zst" => Ok(Compress::Zstd),
        _ => Err(format!("expected gzip or zstd, got {v:?}")),
    }
}

pub(super) fn parse_engine(v: &str) -> Result<EngineChoice, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(EngineChoice::Auto),
        "compose" => Ok(EngineChoice::Compose),
        "swarm" => Ok(EngineChoice::Swarm),
        _ => Err(format!("expected auto, compose or swarm, got {v:?}")),
    }
}

/// A strftime pattern that names one file: no `/`, and it must change every second, or two
/// backups of the same day would fight over one name.
pub(super) fn parse_backup_name(v: &str) -> Result<String, String> {
    use chrono::format::{Item, StrftimeItems};
    let v = v.trim();
    if v.is_empty() || v.contains('/') || v.starts_with('.') {
        return Err(format!(
            "expected a file name pattern such as {DEFAULT_BACKUP_NAME}, got {v:?}"
        ));
    }
    let items: Vec<Item> = StrftimeItems::new(v).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(format!("{v:?} is not a valid strftime pattern"));
    }
    let probe = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    // What it makes must be a plain file name too: `%D` writes `11/14/23`, `%n` a newline.
    let made = probe.format(v).to_string();
    if made.contains('/') || made.starts_with('.') || made.chars().any(char::is_control) {
        return Err(format!(
            "{v:?} makes names like {made:?}, not a plain file name (no '/', no leading '.', no control characters; `%D` has slashes: use %Y%m%d)"
        ));
    }
    if made.len() > 200 {
        return Err(format!("{v:?} makes names longer than 200 bytes"));
    }
    let later = probe + chrono::Duration::seconds(1);
    if probe.format(v).to_string() == later.format(v).to_string() {
        return Err(format!(
            "{v:?} must name each second apart (use %S, or %s): backups of the same day would share a name"
        ));
    }
    Ok(v.to_owned())
}

/// An object prefix, never empty (that would be the whole bucket), always ending in `/`.
pub(super) fn parse_prefix(v: &str) -> Result<String, String> {
    let v = v.trim().trim_start_matches('/');
    if v.is_empty() {
        return Err(
            "an empty prefix would be the whole bucket; give one such as `lifeboat/`".into(),
        );
    }
    Ok(if v.ends_with('/') {
        v.to_owned()
    } else {
        format!("{v}/")
    })
}

pub(super) fn parse_mailbox(v: &str) -> Result<String, String> {
    if v.contains('@') {
        Ok(v.to_owned())
    } else {
        Err(format!("{v:?} is not a mail address"))
    }
}

pub(super) fn tls_for_port(port: u16) -> SmtpTls {
    match port {
        465 => SmtpTls::Tls,
        587 => SmtpTls::StartTls,
        _ => SmtpTls::None,
    }
}

pub(super) fn default_smtp_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::Tls => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    }
}

/// Compose's default project name: the current directory's name, lowercased, keeping
/// letters, digits, `-` and `_`.
pub fn default_compose_project() -> String {
    let dir = std::env::current_dir().ok();
    let name = dir
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("default");
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_name_must_make_a_plain_file_name() {
        for bad in ["backup_%D_%S", "b%n%S", ".hidden_%s", "a/b_%S"] {
            let err = parse_backup_name(bad).expect_err(bad);
            assert!(err.contains(bad) || err.contains("file name"), "{err}");
        }
        assert!(parse_backup_name("backup_%Y%m%d_%H%M%S").is_ok());
        assert!(parse_backup_name("app-%s").is_ok());
    }
}
