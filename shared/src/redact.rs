//! The one redaction of credential-shaped text, applied to every line a lifeboat binary prints.
//!
//! It works on text, not on parsed URLs: a secret must be hidden even where what surrounds it
//! does not parse (`redis//:hunter2@cache:6379`, a DSN in an error chain, a JSON log line).
//! Two shapes are masked with `***`:
//! - the password of userinfo, `user:PASSWORD@host`, with or without a `scheme://` before it
//!   (the password ends at the token's last `@`: unencoded passwords may hold `/`, `?`, `#`, `@`);
//! - the value of a parameter whose name says it is a secret (`password=`, `token=`,
//!   `access_token=`, `api_key=`, `X-Amz-Signature=`, `PGPASSWORD=`, a JSON `"token":"…"`), and
//!   the credentials after `Bearer ` or `Basic `.
//!
//! Text with neither comes back unchanged. This file is std-only: lifeboat-healthcheck, which
//! links no shared library, compiles it in with `#[path]`, so there is one redaction, not two.

/// `text` with every credential-shaped part replaced by `***`.
pub fn redact(text: &str) -> String {
    let text = redact_userinfo(text);
    let text = redact_params(&text);
    redact_schemes(&text)
}

/// A token ends at whitespace or a quote: what a password is least likely to hold, and what
/// surrounds a value in a message or a JSON line.
fn is_boundary(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

/// `user:PASSWORD@host` in every token, with or without a scheme.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !is_boundary(c)) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..]
            .find(is_boundary)
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        out.push_str(&mask_userinfo(token));
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

fn mask_userinfo(token: &str) -> std::borrow::Cow<'_, str> {
    let Some(at) = token.rfind('@') else {
        return token.into();
    };
    if is_digest(&token[at + 1..]) {
        // An image pinned by digest, `app:v2@sha256:…`: a tag, not a password.
        return token.into();
    }
    // The authority starts after `//` (`scheme://` or a scheme missing its colon), else at
    // the token's start (`user:pass@host`, `KEY=user:pass@host`).
    let from = match token[..at].find("//") {
        Some(p) => p + 2,
        // `KEY=user:pass@host`: the name is not the user (a base64 password may end in `=`).
        None => match (token[..at].find('='), token[..at].find(':')) {
            (Some(eq), Some(colon)) if eq < colon => eq + 1,
            _ => 0,
        },
    };
    match token[from..at].find(':') {
        Some(colon) => {
            let colon = from + colon;
            format!("{}:***{}", &token[..colon], &token[at..]).into()
        }
        None => token.into(),
    }
}

/// `sha256:<hex>`: an image digest after `@`.
fn is_digest(text: &str) -> bool {
    let Some((algo, hex)) = text.split_once(':') else {
        return false;
    };
    matches!(algo, "sha256" | "sha384" | "sha512")
        && hex.len() >= 32
        && hex
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .all(|b| b.is_ascii_hexdigit())
}

/// Whether a parameter or variable of this name holds a secret.
fn is_secret_name(name: &str) -> bool {
    const EXACT: [&str; 5] = ["key", "sig", "auth", "pass", "pwd"];
    const ENDINGS: [&str; 12] = [
        "password",
        "passwd",
        "passphrase",
        "token",
        "secret",
        "apikey",
        "api_key",
        "api-key",
        "access_key",
        "secret_key",
        "signature",
        "credential",
    ];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || ENDINGS.iter().any(|e| name.ends_with(e))
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The values of `NAME=value` and JSON `"NAME":"value"` whose name says it is a secret.
fn redact_params(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let value_start = match bytes[i] {
            b'=' => Some(i + 1),
            b'"' if bytes[i + 1..].starts_with(b":\"") => Some(i + 3),
            _ => None,
        };
        let name_end = i;
        let Some(value_start) = value_start else {
            i += 1;
            continue;
        };
        let name_start = bytes[..name_end]
            .iter()
            .rposition(|b| !is_name_char(*b))
            .map_or(0, |p| p + 1);
        let name = &text[name_start..name_end];
        if name.is_empty() || !is_secret_name(name) {
            i += 1;
            continue;
        }
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | '"' | '\'' | ';' | '`'))
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[copied..value_start]);
        if value_len > 0 {
            out.push_str("***");
        }
        copied = value_start + value_len;
        i = copied.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// The credentials of an `Authorization: SCHEME CREDENTIALS` header (Bearer, Basic, any).
fn redact_schemes(text: &str) -> String {
    const HEADER: &str = "authorization:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find(HEADER) {
        let after = pos + HEADER.len();
        let scheme_start = after + (rest[after..].len() - rest[after..].trim_start().len());
        let scheme_len = rest[scheme_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len() - scheme_start);
        let spaced = rest[scheme_start + scheme_len..].starts_with(' ');
        // `Authorization: SECRET` without a scheme word: the whole value.
        let value_start = if spaced {
            scheme_start + scheme_len + 1
        } else {
            scheme_start
        };
        let value_len = rest[value_start..]
            .find(is_boundary)
            .unwrap_or(rest.len() - value_start);
        out.push_str(&rest[..value_start]);
        if value_len > 0 {
            out.push_str("***");
        }
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn userinfo_passwords_are_masked_with_or_without_a_scheme() {
        for (text, want) in [
            (
                "postgres://app:s3cr%40t@db:5432/app?sslmode=require",
                "postgres://app:***@db:5432/app?sslmode=require",
            ),
            ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
            ("redis//:hunter2@cache:6379", "redis//:***@cache:6379"),
            (
                "bad target postgres//u:pw@h/db: no scheme",
                "bad target postgres//u:***@h/db: no scheme",
            ),
            ("u:pw@host", "u:***@host"),
            ("DATABASE_URL=u:pw@host/db", "DATABASE_URL=u:***@host/db"),
            ("postgres://u:p@ss@h/d", "postgres://u:***@h/d"),
            ("postgres://u:ab/c?d#e@h/d?x=1", "postgres://u:***@h/d?x=1"),
            (
                "{\"url\":\"redis://u:pw@h\"}",
                "{\"url\":\"redis://u:***@h\"}",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "no url here",
            "postgres://app@db/app",
            "mail to ops@example.com failed",
            "image lifeboat-demo/app:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "http://127.0.0.1:8080/api/health answered 200 in 3 ms",
            "keep-days=7 dir=/srv/backups",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn secret_parameters_and_headers_are_masked() {
        for (text, want) in [
            (
                "host=db user=app password=hunter2 dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "postgres://h/d?password=pw&x=1",
                "postgres://h/d?password=***&x=1",
            ),
            (
                "https://h/hook?token=abc123#top",
                "https://h/hook?token=***#top",
            ),
            (
                "GET /x?access_token=t1&api_key=k2&sig=s3",
                "GET /x?access_token=***&api_key=***&sig=***",
            ),
            (
                "X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok",
                "X-Amz-Signature=***&X-Amz-Security-Token=***",
            ),
            ("PGPASSWORD=hunter2 pg_dump", "PGPASSWORD=*** pg_dump"),
            (
                "{\"token\":\"hunter2\",\"n\":1}",
                "{\"token\":\"***\",\"n\":1}",
            ),
            (
                "Authorization: Bearer eyJhbGci.x.y",
                "Authorization: Bearer ***",
            ),
            (
                "-H 'authorization: basic dTpwdw=='",
                "-H 'authorization: basic ***'",
            ),
            ("the basic checks passed", "the basic checks passed"),
            ("authorization:hunter2", "authorization:***"),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }
}
