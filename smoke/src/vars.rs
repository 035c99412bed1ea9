//! Variables in a spec's strings, and the one place secrets are scrubbed from output.
//!
//! `${name}` is a spec variable (`[vars]`, `[environments.NAME.vars]`), a value captured by an
//! earlier check, or `run_id`; `${env:NAME}` reads the environment and may be shown;
//! `${secret:NAME}` reads the environment and is never shown: every line, message and report
//! passes through [`Redactor::scrub`], which replaces each secret's value with `***`, wherever it
//! turns up (an echoed request, an error body). `${env:NAME:-default}` gives a default;
//! `$${` is a literal `${`.
//!
//! seed 002's smoke_tests.sh echoed its token and passwords into CI logs; here a secret is
//! declared once where it is read, and scrubbed everywhere after.

use std::sync::{Arc, RwLock};

/// A reference inside `${…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `${name}`: a spec variable, a capture or `run_id`.
    Plain(String),
    /// `${env:NAME}` or `${secret:NAME}`, with an optional `:-default`.
    Env {
        name: String,
        default: Option<String>,
        secret: bool,
    },
}

/// The pieces of a string: literal text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref(Ref),
}

fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("`${{` without its closing `}}` in {text:?}"))?;
            let inner = &tail[..end];
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Ref(parse_ref(inner)?));
            rest = &tail[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let (scope, rest) = match inner.split_once(':') {
        Some((s @ ("env" | "secret"), rest)) => (Some(s), rest),
        _ => (None, inner),
    };
    match scope {
        None => {
            if valid_name(inner) {
                Ok(Ref::Plain(inner.to_owned()))
            } else {
                Err(format!(
                    "`${{{inner}}}` is not a variable (use `${{name}}`, `${{env:NAME}}` or `${{secret:NAME}}`)"
                ))
            }
        }
        Some(scope) => {
            let (name, default) = match rest.split_once(":-") {
                Some((n, d)) => (n, Some(d.to_owned())),
                None => (rest, None),
            };
            if !valid_name(name) {
                return Err(format!("`${{{inner}}}` does not name a variable"));
            }
            Ok(Ref::Env {
                name: name.to_owned(),
                default,
                secret: scope == "secret",
            })
        }
    }
}

/// Every reference in `text`, or why the text is malformed.
pub fn references(text: &str) -> Result<Vec<Ref>, String> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect())
}

/// `text` with each reference replaced by what `lookup` says.
pub fn interpolate(
    text: &str,
    lookup: &mut dyn FnMut(&Ref) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in parse(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => out.push_str(&lookup(&r)?),
        }
    }
    Ok(out)
}

/// The secret values of a run, scrubbed from everything shown. Cloning shares the list, so a
/// token captured by one check is scrubbed from every later line.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Never show `value` again. Values shorter than 3 characters are not scrubbed: replacing
    /// every `1` in the output would hide everything and protect nothing.
    pub fn add(&self, value: &str) {
        if value.chars().count() < 3 {
            return;
        }
        let mut secrets = self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_owned());
            // Longest first, so that a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret, and every password in a URL, replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = lifeboat::secret::redact_url(text);
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_each_scope_are_parsed() {
        assert_eq!(
            references("Bearer ${token} for ${env:USER:-nobody} and ${secret:PW}").expect("ok"),
            vec![
                Ref::Plain("token".into()),
                Ref::Env {
                    name: "USER".into(),
                    default: Some("nobody".into()),
                    secret: false
                },
                Ref::Env {
                    name: "PW".into(),
                    default: None,
                    secret: true
                },
            ]
        );
        assert!(references("${unclosed").is_err());
        assert!(references("${a b}").is_err());
        assert!(references("cost $5 and $${literal}")
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn interpolation_replaces_and_keeps_literals() {
        let out = interpolate("$${x} ${a}-${env:B} $9", &mut |r| match r {
            Ref::Plain(n) => Ok(format!("<{n}>")),
            Ref::Env { name, .. } => Ok(name.to_lowercase()),
        })
        .expect("ok");
        assert_eq!(out, "${x} <a>-b $9");
    }

    #[test]
    fn secrets_are_scrubbed_longest_first_and_urls_redacted() {
        let r = Redactor::default();
        r.add("hunter2");
        r.add("hunter2-long");
        r.add("ab");
        assert_eq!(
            r.scrub("pw hunter2-long, hunter2, ab, postgres://u:p@h/d"),
            "pw ***, ***, ab, postgres://u:***@h/d"
        );
    }
}
