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

use std::fmt::Write as _;
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

/// The shortest secret lifeboat-smoke accepts. A shorter one is refused where it is read (exit 2
/// naming its variable, or a failed check for a captured one): scrubbing every `1` or `ab` from
/// the output would hide everything and protect nothing, and not scrubbing it would show it.
pub const MIN_SECRET_CHARS: usize = 3;

/// Whether `value` is a secret too short to scrub (an empty value has nothing to hide).
pub fn too_short(value: &str) -> bool {
    let n = value.chars().count();
    n > 0 && n < MIN_SECRET_CHARS
}

/// One secret and the ways each of its characters may be written in output: as itself,
/// percent-encoded (a URL's query, a form), or escaped in a JSON string. An app echoing a
/// request shows the secret in one of those forms, or a mix of them (`a%20b` and `a b` both).
#[derive(Debug)]
struct Secret {
    value: String,
    /// Per character: (form, compared ignoring ASCII case).
    forms: Vec<Vec<(String, bool)>>,
    /// Whole forms replaced as they are: the base64 of the secret at each of the three byte
    /// alignments it may have inside a longer encoded value (an echoed `Authorization: Basic`
    /// header holds `user:password`), standard and URL-safe, without the edges that depend on
    /// the neighbouring bytes.
    encoded: Vec<String>,
}

/// `%XX` escapes decoded (a URL's password as the server sees it); anything else kept.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The base64 forms of `value` that appear in the encoding of any text containing it.
fn base64_forms(value: &[u8]) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for skip in 0..3 {
        let Some(rest) = value.get(skip..) else { break };
        let whole = &rest[..rest.len() - rest.len() % 3];
        // Six bytes at least: shorter forms would hide innocent text.
        if whole.len() < 6 {
            continue;
        }
        let mut s = String::with_capacity(whole.len() / 3 * 4);
        for g in whole.chunks(3) {
            let n = (u32::from(g[0]) << 16) | (u32::from(g[1]) << 8) | u32::from(g[2]);
            for shift in [18, 12, 6, 0] {
                s.push(char::from(STD[((n >> shift) & 63) as usize]));
            }
        }
        let url_safe = s.replace('+', "-").replace('/', "_");
        if url_safe != s {
            out.push(url_safe);
        }
        out.push(s);
    }
    out
}

impl Secret {
    fn new(value: &str) -> Self {
        let forms = value
            .chars()
            .map(|c| {
                let mut forms = vec![(c.to_string(), false)];
                let mut buf = [0u8; 4];
                let mut percent = String::new();
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(percent, "%{b:02X}");
                }
                forms.push((percent, true));
                // A JSON string's escapes, and a form's space.
                let escaped = match c {
                    '"' => Some("\\\"".to_owned()),
                    '\\' => Some("\\\\".to_owned()),
                    '/' => Some("\\/".to_owned()),
                    '\n' => Some("\\n".to_owned()),
                    '\r' => Some("\\r".to_owned()),
                    '\t' => Some("\\t".to_owned()),
                    '\u{8}' => Some("\\b".to_owned()),
                    '\u{c}' => Some("\\f".to_owned()),
                    ' ' => Some("+".to_owned()),
                    _ => None,
                };
                forms.extend(escaped.map(|e| (e, false)));
                let mut units = [0u16; 2];
                let mut unicode = String::new();
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(unicode, "\\u{u:04X}");
                }
                forms.push((unicode, true));
                forms
            })
            .collect();
        Self {
            value: value.to_owned(),
            forms,
            encoded: base64_forms(value.as_bytes()),
        }
    }

    /// The length in bytes of the secret, in any of its forms, at the start of `text`.
    fn match_at(&self, text: &str) -> Option<usize> {
        let mut pos = 0;
        for forms in &self.forms {
            let rest = &text[pos..];
            let len = forms.iter().find_map(|(form, fold)| {
                let head = rest.get(..form.len())?;
                let same = if *fold {
                    head.eq_ignore_ascii_case(form)
                } else {
                    head == form
                };
                same.then_some(form.len())
            })?;
            pos += len;
        }
        Some(pos)
    }

    /// `text` with every occurrence replaced by `***`.
    fn scrub(&self, text: &str) -> String {
        let mut text = std::borrow::Cow::Borrowed(text);
        for form in &self.encoded {
            if text.contains(form.as_str()) {
                text = std::borrow::Cow::Owned(text.replace(form.as_str(), "***"));
            }
        }
        let text = text.as_ref();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(len) = self.match_at(rest) {
                out.push_str("***");
                rest = &rest[len..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }
}

/// The secret values of a run, scrubbed from everything shown. Cloning shares the list, so a
/// token captured by one check is scrubbed from every later line.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<Secret>>>,
}

impl Redactor {
    /// Never show `value` again, in any of its forms. A value shorter than
    /// [`MIN_SECRET_CHARS`] is refused where it is read, before it gets here; it is ignored.
    pub fn add(&self, value: &str) {
        if value.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let mut secrets = self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !secrets.iter().any(|s| s.value == value) {
            secrets.push(Secret::new(value));
            // Longest first, so that a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        }
    }

    /// `text` with every secret (as written, percent-encoded or JSON-escaped), and every
    /// password in a URL, replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = lifeboat::secret::redact_url(text);
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in secrets.iter() {
            out = s.scrub(&out);
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
        assert_eq!(
            r.scrub("pw hunter2-long, hunter2, ab, postgres://u:p@h/d"),
            "pw ***, ***, ab, postgres://u:***@h/d"
        );
    }

    #[test]
    fn percent_encoded_and_json_escaped_secrets_are_scrubbed() {
        let r = Redactor::default();
        r.add("s\u{e9}c\"r/t x&y");
        for shown in [
            "s\u{e9}c\"r/t x&y",
            "s%C3%A9c%22r%2Ft%20x%26y",
            "s%c3%a9c%22r/t%20x%26y",
            "s\u{e9}c%22r/t+x%26y",
            "s\u{e9}c\\\"r\\/t x&y",
            "s\\u00e9c\\u0022r/t x\\u0026y",
        ] {
            assert_eq!(r.scrub(&format!("<{shown}>")), "<***>", "{shown}");
        }
        assert_eq!(
            r.scrub("s\u{e9}c\"r/t x"),
            "s\u{e9}c\"r/t x",
            "a part is no secret"
        );
    }

    #[test]
    fn a_secret_inside_a_base64_value_is_scrubbed_at_any_alignment() {
        let r = Redactor::default();
        r.add("correct-horse-battery");
        for user in ["u", "us", "usr", "admin"] {
            let basic = base64_std(format!("{user}:correct-horse-battery").as_bytes());
            let shown = r.scrub(&format!("Authorization: Basic {basic}"));
            assert!(shown.contains("***"), "{user}: {shown}");
            // What is left around the mask is the user and at most two bytes at each edge.
            let left = shown.replace("***", "");
            assert!(left.len() <= "Authorization: Basic ".len() + 16, "{shown}");
        }
        assert_eq!(r.scrub("Basic dXNlcjpvdGhlcg=="), "Basic dXNlcjpvdGhlcg==");
    }

    #[test]
    fn a_url_password_is_known_decoded_too() {
        assert_eq!(percent_decode("p%40ss%2Fw%ZZ"), "p@ss/w%ZZ");
    }

    fn base64_std(bytes: &[u8]) -> String {
        let mut forms = base64_forms(&[bytes, b"\0\0\0"].concat());
        forms.retain(|f| !f.contains('-') && !f.contains('_'));
        forms.remove(0)
    }

    #[test]
    fn one_or_two_characters_are_too_short_to_scrub() {
        assert!(too_short("ab") && too_short("1"));
        assert!(!too_short("") && !too_short("abc"));
    }
}
