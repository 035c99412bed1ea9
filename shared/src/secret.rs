//! Secrets that cannot leak by accident.
//!
//! Backup scripts echo `DATABASE_URL` into cron mail and CI logs. Here a password is a
//! [`Secret`], whose `Debug` and `Display` print `***`, and a URL is shown through
//! [`redact_url`], which keeps everything but the password.

use std::fmt;

/// A value that is never printed. Read it with [`Secret::expose`] where it is really needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: for a connection, never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL that may carry a password (`postgres://user:pass@host/db`). Displays redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Secret);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The full URL, password included: for a connection, never for a message.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Every credential-shaped part of `text` replaced by `***`: [`crate::redact::redact`].
pub fn redact_url(text: &str) -> String {
    crate::redact::redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn url_password_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/app?sslmode=require"),
            "postgres://app:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact_url("no url here"), "no url here");
    }

    #[test]
    fn urls_inside_messages_and_password_params_are_redacted() {
        assert_eq!(
            redact_url("cannot connect to postgres://u:p@h/d: refused"),
            "cannot connect to postgres://u:***@h/d: refused"
        );
        assert_eq!(
            redact_url("host=db user=app password=hunter2 dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact_url("postgres://h/d?password=pw&x=1"),
            "postgres://h/d?password=***&x=1"
        );
    }

    #[test]
    fn a_password_containing_at_signs_is_fully_redacted() {
        assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
        assert_eq!(
            redact_url("postgres://u:ab/c?d#e@h/d?x=1"),
            "postgres://u:***@h/d?x=1"
        );
        let url = SecretUrl::new("redis://u:topsecret@h");
        assert!(!format!("{url} {url:?}").contains("topsecret"));
    }
}
