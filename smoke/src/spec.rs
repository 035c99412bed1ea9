//! The spec, `smoke.toml`: parsed and checked whole before the first request is sent.
//!
//! A spec that is wrong is exit 2 and names its line: an unknown key (a typo such as
//! `expect.staus` must not turn an assertion off), a field that does not apply to the check's
//! kind, a dependency that does not exist or loops, a variable nobody defines, a regex that does
//! not compile. toml's parser gives every error a byte span; [`line_of`] turns it into a line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::vars::{self, Ref};

/// A mistake in the spec, with the line it is on when known.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct SpecError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// The kind of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Http,
    Postgres,
    Redis,
    S3,
    Smtp,
    RateLimit,
    Webhook,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::S3 => "s3",
            Kind::Smtp => "smtp",
            Kind::RateLimit => "rate-limit",
            Kind::Webhook => "webhook",
        }
    }

    /// The check fields (beyond the common ones) this kind reads.
    fn fields(self) -> &'static [&'static str] {
        const HTTP: &[&str] = &[
            "method", "url", "headers", "body", "json", "ca-file", "expect", "capture", "cleanup",
        ];
        match self {
            Kind::Http => HTTP,
            Kind::Webhook => &[
                "method",
                "url",
                "headers",
                "body",
                "json",
                "ca-file",
                "expect",
                "capture",
                "cleanup",
                "secret",
                "signature-header",
                "signature-prefix",
                "reject-forged",
            ],
            Kind::RateLimit => &[
                "method", "url", "headers", "body", "json", "ca-file", "expect", "requests",
            ],
            Kind::Postgres => &["url", "query", "expect"],
            Kind::Redis => &["url", "ca-file", "expect"],
            Kind::S3 => &["expect"],
            Kind::Smtp => &["to", "from", "mail-api", "mail-api-kind", "expect"],
        }
    }

    /// The `expect` fields this kind reads.
    fn expect_fields(self) -> &'static [&'static str] {
        const HTTP: &[&str] = &[
            "status",
            "headers",
            "json",
            "body-contains",
            "body-regex",
            "max-ms",
            "tls-days",
        ];
        match self {
            Kind::Http | Kind::Webhook => HTTP,
            Kind::RateLimit => &["status", "retry-after", "max-ms"],
            Kind::Postgres => &["equals", "at-least", "at-most", "max-ms"],
            Kind::Redis | Kind::S3 | Kind::Smtp => &["max-ms"],
        }
    }

    /// Whether this kind always writes (a probe object, a mail, a payment event).
    fn always_writes(self) -> bool {
        matches!(self, Kind::S3 | Kind::Smtp | Kind::Webhook)
    }
}

/// A Mailhog- or Mailpit-style HTTP API that shows received mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailApiKind {
    #[default]
    Mailpit,
    Mailhog,
}

/// Expected status: `200`, `[200, 201]` or `"2xx"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusExpect {
    Code(u16),
    Codes(Vec<u16>),
    Class(String),
}

impl StatusExpect {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusExpect::Code(c) => *c == status,
            StatusExpect::Codes(cs) => cs.contains(&status),
            StatusExpect::Class(class) => class
                .chars()
                .next()
                .and_then(|c| c.to_digit(10))
                .is_some_and(|d| u32::from(status / 100) == d),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StatusExpect::Code(c) => c.to_string(),
            StatusExpect::Codes(cs) => cs
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            StatusExpect::Class(c) => c.clone(),
        }
    }
}

/// A header must contain a string, or (`true`/`false`) be present or absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeaderExpect {
    Present(bool),
    Contains(String),
}

/// One string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items_mut(&mut self) -> Vec<&mut String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter_mut().collect(),
        }
    }

    pub fn items(&self) -> Vec<&String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

/// The JSON types `expect.json[].type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}

impl JsonType {
    pub fn of(self, v: &serde_json::Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            JsonType::Number => v.is_number(),
            JsonType::Integer => v.is_i64() || v.is_u64(),
            JsonType::Boolean => v.is_boolean(),
            JsonType::Array => v.is_array(),
            JsonType::Object => v.is_object(),
            JsonType::Null => v.is_null(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Array => "array",
            JsonType::Object => "object",
            JsonType::Null => "null",
        }
    }
}

/// An assertion on a JSON pointer (RFC 6901) of the response body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonExpect {
    pub pointer: String,
    pub equals: Option<toml::Value>,
    pub exists: Option<bool>,
    #[serde(rename = "type")]
    pub type_: Option<JsonType>,
}

/// What a check's result must satisfy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    pub status: Option<StatusExpect>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderExpect>,
    #[serde(default)]
    pub json: Vec<JsonExpect>,
    pub body_contains: Option<OneOrMany>,
    pub body_regex: Option<String>,
    pub max_ms: Option<u64>,
    pub tls_days: Option<u32>,
    pub retry_after: Option<bool>,
    pub equals: Option<String>,
    pub at_least: Option<f64>,
    pub at_most: Option<f64>,
}

/// A value taken from a response for later checks: a JSON pointer or a header.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CaptureSpec {
    Pointer(String),
    Full(CaptureTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaptureTable {
    pub pointer: Option<String>,
    pub header: Option<String>,
    /// Scrubbed from every output from then on (a session token).
    #[serde(default)]
    pub secret: bool,
}

impl CaptureSpec {
    pub fn table(&self) -> CaptureTable {
        match self {
            CaptureSpec::Pointer(p) => CaptureTable {
                pointer: Some(p.clone()),
                header: None,
                secret: false,
            },
            CaptureSpec::Full(t) => t.clone(),
        }
    }
}

/// A request sent at the end of the run to remove what a check created.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CleanupSpec {
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One `[[check]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<u32>,
    pub retry_delay: Option<Spanned<String>>,
    pub wait: Option<Spanned<String>>,
    pub read_only: Option<Spanned<bool>>,

    pub method: Option<String>,
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub json: Option<toml::Value>,
    pub ca_file: Option<String>,
    pub expect: Option<Spanned<Expect>>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<CaptureSpec>>,
    pub cleanup: Option<Spanned<CleanupSpec>>,

    pub requests: Option<u32>,

    pub secret: Option<String>,
    pub signature_header: Option<String>,
    pub signature_prefix: Option<String>,
    pub reject_forged: Option<bool>,

    pub query: Option<String>,

    pub to: Option<String>,
    pub from: Option<String>,
    pub mail_api: Option<String>,
    pub mail_api_kind: Option<MailApiKind>,
}

impl CheckSpec {
    /// The optional fields that are set, by their names in the spec.
    fn fields_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut add = |on: bool, name: &'static str| {
            if on {
                set.push(name);
            }
        };
        add(self.method.is_some(), "method");
        add(self.url.is_some(), "url");
        add(!self.headers.is_empty(), "headers");
        add(self.body.is_some(), "body");
        add(self.json.is_some(), "json");
        add(self.ca_file.is_some(), "ca-file");
        add(self.expect.is_some(), "expect");
        add(!self.capture.is_empty(), "capture");
        add(self.cleanup.is_some(), "cleanup");
        add(self.requests.is_some(), "requests");
        add(self.secret.is_some(), "secret");
        add(self.signature_header.is_some(), "signature-header");
        add(self.signature_prefix.is_some(), "signature-prefix");
        add(self.reject_forged.is_some(), "reject-forged");
        add(self.query.is_some(), "query");
        add(self.to.is_some(), "to");
        add(self.from.is_some(), "from");
        add(self.mail_api.is_some(), "mail-api");
        add(self.mail_api_kind.is_some(), "mail-api-kind");
        set
    }

    /// Every string that may hold `${…}`, for checking references and for interpolation.
    /// (`expect.body-regex` is taken literally: `$` is a regex anchor.)
    pub fn for_each_string(
        &mut self,
        f: &mut dyn FnMut(&mut String) -> Result<(), String>,
    ) -> Result<(), String> {
        if let Some(m) = &mut self.method {
            f(m)?;
        }
        if let Some(u) = &mut self.url {
            f(u.get_mut())?;
        }
        for v in self.headers.values_mut() {
            f(v)?;
        }
        if let Some(b) = &mut self.body {
            f(b)?;
        }
        if let Some(j) = &mut self.json {
            toml_strings(j, f)?;
        }
        if let Some(c) = &mut self.ca_file {
            f(c)?;
        }
        if let Some(e) = &mut self.expect {
            let e = e.get_mut();
            for h in e.headers.values_mut() {
                if let HeaderExpect::Contains(s) = h {
                    f(s)?;
                }
            }
            for j in &mut e.json {
                if let Some(v) = &mut j.equals {
                    toml_strings(v, f)?;
                }
            }
            if let Some(b) = &mut e.body_contains {
                for s in b.items_mut() {
                    f(s)?;
                }
            }
            if let Some(s) = &mut e.equals {
                f(s)?;
            }
        }
        if let Some(c) = &mut self.cleanup {
            let c = c.get_mut();
            f(&mut c.url)?;
            for v in c.headers.values_mut() {
                f(v)?;
            }
        }
        for s in [
            &mut self.secret,
            &mut self.signature_header,
            &mut self.signature_prefix,
            &mut self.query,
            &mut self.to,
            &mut self.from,
            &mut self.mail_api,
        ]
        .into_iter()
        .flatten()
        {
            f(s)?;
        }
        Ok(())
    }
}

fn toml_strings(
    v: &mut toml::Value,
    f: &mut dyn FnMut(&mut String) -> Result<(), String>,
) -> Result<(), String> {
    match v {
        toml::Value::String(s) => f(s),
        toml::Value::Array(a) => a.iter_mut().try_for_each(|v| toml_strings(v, f)),
        toml::Value::Table(t) => t.iter_mut().try_for_each(|(_, v)| toml_strings(v, f)),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDefaults {
    timeout: Option<Spanned<String>>,
    retries: Option<u32>,
    retry_delay: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEnvironment {
    base_url: Option<Spanned<String>>,
    read_only: Option<bool>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSpec {
    defaults: Option<RawDefaults>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
    #[serde(default)]
    check: Vec<CheckSpec>,
}

/// A value and the line it was written on.
#[derive(Debug, Clone)]
pub struct Located {
    pub value: String,
    pub line: usize,
}

/// The environments whose checks may write unless the spec says otherwise: every other name
/// (`production`, `prod`, `live`, `main`, a customer's name) is read-only by default, so that a
/// production named any other way is never written to by accident.
pub const WRITABLE_BY_NAME: &[&str] = &["dev", "development", "local", "test", "staging", "ci"];

/// An environment (`staging`, `production`): where the app is, its variables, and whether
/// writes are allowed.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub base_url: Option<Located>,
    /// Only read-only checks run, unless `--allow-writes` (default: true for every environment
    /// not named as one that may be written to, [`WRITABLE_BY_NAME`]).
    pub read_only: bool,
    pub vars: BTreeMap<String, Located>,
}

/// A check, checked.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub line: usize,
    pub kind: Kind,
    pub depends_on: Vec<String>,
    pub tags: Vec<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_delay: Duration,
    /// Wait until ready: retry until the check passes or this much time has gone.
    pub wait: Option<Duration>,
    /// Declared, or inferred: a GET, a query in a read-only transaction, a PING.
    pub read_only: bool,
    pub spec: CheckSpec,
    pub regex: Option<regex_lite::Regex>,
    /// Environment variables the check reads (`${env:…}`, `${secret:…}`).
    pub env_refs: Vec<Ref>,
}

/// A whole spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub vars: BTreeMap<String, Located>,
    pub environments: BTreeMap<String, Environment>,
    pub checks: Vec<Check>,
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. \"500ms\", \"5s\", \"2m\")"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{text:?} is not a duration (a number and ms, s, m or h, e.g. \"5s\")"
            ))
        }
    };
    // A smoke test waits seconds, not days; a limit also keeps deadlines from overflowing.
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?} is longer than a day, the most a check may wait"
        ));
    }
    Ok(duration)
}

const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Spec {
    /// Read and check a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the spec: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parse and check a spec's text (`path` names it in errors).
    // The checks in the order a reader finds the mistakes: syntax, each check, then the graph
    // of dependencies and captures.
    #[allow(clippy::too_many_lines)]
    pub fn parse(path: &Path, text: &str) -> Result<Self, SpecError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| SpecError {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        // The parser's own Display quotes the line; its message and span are enough.
        let raw: RawSpec =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_owned()))?;
        // The same text as a tree of spanned keys, so that an error about a field names the
        // line of the field, not of its check. It parsed once; it parses again.
        let doc = toml::de::DeTable::parse(text).ok();
        let doc = doc.as_ref().map(Spanned::get_ref);

        let defaults = raw.defaults.unwrap_or(RawDefaults {
            timeout: None,
            retries: None,
            retry_delay: None,
        });
        let duration =
            |d: &Spanned<String>| parse_duration(d.get_ref()).map_err(|m| err(Some(d.span()), m));
        let default_timeout = defaults
            .timeout
            .as_ref()
            .map(duration)
            .transpose()?
            .unwrap_or(DEFAULT_TIMEOUT);
        let default_delay = defaults
            .retry_delay
            .as_ref()
            .map(duration)
            .transpose()?
            .unwrap_or(DEFAULT_RETRY_DELAY);

        let located = |vars: BTreeMap<String, Spanned<String>>| -> Result<_, SpecError> {
            let mut out = BTreeMap::new();
            for (name, v) in vars {
                let span = v.span();
                // A variable reads the environment; it does not chain other variables.
                let refs = vars::references(v.get_ref()).map_err(|m| err(Some(span.clone()), m))?;
                if refs.iter().any(|r| matches!(r, Ref::Plain(_))) {
                    return Err(err(
                        Some(span),
                        format!("variable `{name}` may read the environment (`${{env:NAME}}`, `${{secret:NAME}}`), not other variables"),
                    ));
                }
                out.insert(
                    name,
                    Located {
                        value: v.into_inner(),
                        line: line_of(text, span.start),
                    },
                );
            }
            Ok(out)
        };
        let top_vars = located(raw.vars)?;
        let mut environments = BTreeMap::new();
        // Two environments at the same base-url, one read-only and one not: which is it? A
        // `staging` that points at production's URL would write to production.
        let mut seen: Vec<(String, String, bool, std::ops::Range<usize>)> = Vec::new();
        for (name, env) in &raw.environments {
            let Some(b) = &env.base_url else { continue };
            let url = b.get_ref().trim().trim_end_matches('/').to_owned();
            let read_only = env
                .read_only
                .unwrap_or(!WRITABLE_BY_NAME.contains(&name.as_str()));
            if let Some((other, _, _, _)) = seen
                .iter()
                .find(|(_, u, ro, _)| *u == url && *ro != read_only)
            {
                let (ro, rw) = if read_only {
                    (name, other)
                } else {
                    (other, name)
                };
                return Err(err(
                    Some(b.span()),
                    format!(
                        "environments `{ro}` (read-only) and `{rw}` (writes allowed) have the same base-url, so a run could write to the read-only one under the other's name: give each its own base-url, or set `read-only` alike"
                    ),
                ));
            }
            seen.push((name.clone(), url, read_only, b.span()));
        }
        for (name, env) in raw.environments {
            let base_url = env.base_url.map(|b| Located {
                line: line_of(text, b.span().start),
                value: b.into_inner(),
            });
            environments.insert(
                name.clone(),
                Environment {
                    read_only: env
                        .read_only
                        .unwrap_or(!WRITABLE_BY_NAME.contains(&name.as_str())),
                    name,
                    base_url,
                    vars: located(env.vars)?,
                },
            );
        }

        // Names, kinds and their fields, durations, regexes.
        let mut checks: Vec<Check> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, spec) in raw.check.into_iter().enumerate() {
            let name = spec.name.get_ref().clone();
            let name_span = spec.name.span();
            let line = line_of(text, name_span.start);
            let at = |m: String| err(Some(name_span.clone()), format!("check `{name}`: {m}"));
            // At the line of a key of this check (`["expect", "status"]`), or of its name.
            let at_key = |path: &[&str], m: String| {
                let span = key_span(doc, i, path).unwrap_or_else(|| name_span.clone());
                err(Some(span), format!("check `{name}`: {m}"))
            };
            if !valid_name(&name) {
                return Err(at(
                    "a check's name is letters, digits, '-', '_' and '.'".into()
                ));
            }
            if index.insert(name.clone(), checks.len()).is_some() {
                return Err(at("two checks have this name".into()));
            }
            let kind = spec.kind;
            for field in spec.fields_set() {
                if !kind.fields().contains(&field) {
                    return Err(at_key(
                        &[field],
                        format!(
                            "`{field}` does not apply to a {} check (it reads: {})",
                            kind.name(),
                            kind.fields().join(", ")
                        ),
                    ));
                }
            }
            if let Some(expect) = &spec.expect {
                let e = expect.get_ref();
                let eat = |field: &str, m: String| at_key(&["expect", field], m);
                for (field, on) in [
                    ("status", e.status.is_some()),
                    ("headers", !e.headers.is_empty()),
                    ("json", !e.json.is_empty()),
                    ("body-contains", e.body_contains.is_some()),
                    ("body-regex", e.body_regex.is_some()),
                    ("max-ms", e.max_ms.is_some()),
                    ("tls-days", e.tls_days.is_some()),
                    ("retry-after", e.retry_after.is_some()),
                    ("equals", e.equals.is_some()),
                    ("at-least", e.at_least.is_some()),
                    ("at-most", e.at_most.is_some()),
                ] {
                    if on && !kind.expect_fields().contains(&field) {
                        return Err(eat(
                            field,
                            format!(
                                "`expect.{field}` does not apply to a {} check (it reads: {})",
                                kind.name(),
                                kind.expect_fields().join(", ")
                            ),
                        ));
                    }
                }
                if let Some(StatusExpect::Class(c)) = &e.status {
                    let ok = c.len() == 3
                        && c.ends_with("xx")
                        && c.starts_with(|d: char| ('1'..='5').contains(&d));
                    if !ok {
                        return Err(eat(
                            "status",
                            format!(
                                "`expect.status` {c:?} is not a status class (\"2xx\" … \"5xx\")"
                            ),
                        ));
                    }
                }
                for j in &e.json {
                    if !j.pointer.is_empty() && !j.pointer.starts_with('/') {
                        return Err(eat(
                            "json",
                            format!(
                                "`expect.json` pointer {:?} must start with '/' (RFC 6901)",
                                j.pointer
                            ),
                        ));
                    }
                    if j.equals.is_none() && j.exists.is_none() && j.type_.is_none() {
                        return Err(eat(
                            "json",
                            format!(
                                "`expect.json` for {:?} says nothing: give equals, exists or type",
                                j.pointer
                            ),
                        ));
                    }
                }
                if e.tls_days.is_some()
                    && spec
                        .url
                        .as_ref()
                        .is_some_and(|u| u.get_ref().starts_with("http://"))
                {
                    return Err(eat(
                        "tls-days",
                        "`expect.tls-days` needs an https:// URL".into(),
                    ));
                }
            }
            let regex = spec
                .expect
                .as_ref()
                .and_then(|e| {
                    e.get_ref().body_regex.as_ref().map(|r| {
                        regex_lite::Regex::new(r).map_err(|x| {
                            at_key(
                                &["expect", "body-regex"],
                                format!("`expect.body-regex` {r:?}: {x}"),
                            )
                        })
                    })
                })
                .transpose()?;
            match kind {
                Kind::Http | Kind::RateLimit | Kind::Webhook if spec.url.is_none() => {
                    return Err(at(format!("a {} check needs `url`", kind.name())));
                }
                Kind::Webhook if spec.secret.is_none() => {
                    return Err(at(
                        "a webhook check needs `secret` (the HMAC key, e.g. \"${secret:WEBHOOK_SECRET}\")"
                            .into(),
                    ));
                }
                Kind::RateLimit if spec.requests == Some(0) => {
                    return Err(at_key(
                        &["requests"],
                        "`requests` must be at least 1".into(),
                    ));
                }
                _ => {}
            }
            if spec.body.is_some() && spec.json.is_some() {
                return Err(at_key(&["json"], "give `body` or `json`, not both".into()));
            }
            for (cname, c) in &spec.capture {
                let t = c.get_ref().table();
                if t.pointer.is_some() == t.header.is_some() {
                    return Err(err(
                        Some(c.span()),
                        format!("check `{name}`: capture `{cname}` needs one of pointer or header"),
                    ));
                }
            }
            let declared = spec.read_only.as_ref().map(|r| *r.get_ref());
            if declared == Some(true) && (kind.always_writes() || spec.cleanup.is_some()) {
                let span = spec.read_only.as_ref().map(Spanned::span);
                return Err(err(
                    span,
                    format!(
                        "check `{name}`: a {} check {} and cannot be read-only",
                        kind.name(),
                        if spec.cleanup.is_some() {
                            "creates what its cleanup removes"
                        } else {
                            "writes (a probe object, a mail, an event)"
                        }
                    ),
                ));
            }
            let read_only = declared.unwrap_or_else(|| match kind {
                Kind::Postgres | Kind::Redis => true,
                Kind::Http => {
                    spec.cleanup.is_none()
                        && spec.method.as_deref().is_none_or(|m| {
                            matches!(m.to_ascii_uppercase().as_str(), "GET" | "HEAD" | "OPTIONS")
                        })
                }
                Kind::S3 | Kind::Smtp | Kind::Webhook | Kind::RateLimit => false,
            });
            let timeout = spec
                .timeout
                .as_ref()
                .map(duration)
                .transpose()?
                .unwrap_or(default_timeout);
            let retry_delay = spec
                .retry_delay
                .as_ref()
                .map(duration)
                .transpose()?
                .unwrap_or(default_delay);
            let wait = spec.wait.as_ref().map(duration).transpose()?;
            let mut probe = spec.clone();
            let mut refs = Vec::new();
            probe
                .for_each_string(&mut |s| {
                    refs.extend(vars::references(s)?);
                    Ok(())
                })
                .map_err(&at)?;
            checks.push(Check {
                name,
                line,
                kind,
                depends_on: spec
                    .depends_on
                    .iter()
                    .map(|d| d.get_ref().clone())
                    .collect(),
                tags: spec.tags.clone(),
                timeout,
                retries: spec.retries.or(defaults.retries).unwrap_or(0),
                retry_delay,
                wait,
                read_only,
                regex,
                env_refs: refs
                    .iter()
                    .filter(|r| matches!(r, Ref::Env { .. }))
                    .cloned()
                    .collect(),
                spec,
            });
            // Plain references are checked below, once every capture is known.
        }

        // Dependencies exist and do not loop.
        for c in &checks {
            for d in &c.spec.depends_on {
                if !index.contains_key(d.get_ref()) {
                    return Err(err(
                        Some(d.span()),
                        format!(
                            "check `{}` depends on `{}`, which is not a check",
                            c.name,
                            d.get_ref()
                        ),
                    ));
                }
                if d.get_ref() == &c.name {
                    return Err(err(
                        Some(d.span()),
                        format!("check `{}` depends on itself", c.name),
                    ));
                }
            }
        }
        if let Some((name, dep)) = find_cycle(&checks, &index) {
            let c = &checks[index[&name]];
            let span = c
                .spec
                .depends_on
                .iter()
                .find(|d| d.get_ref() == &dep)
                .map(Spanned::span);
            return Err(err(
                span,
                format!("check `{name}` depends on `{dep}`, which depends on it in turn"),
            ));
        }

        // Captures: one name, one check; `${name}` only after the check that captures it.
        let mut captured_by: HashMap<String, String> = HashMap::new();
        for c in &checks {
            for (cname, cap) in &c.spec.capture {
                let clash = top_vars.contains_key(cname)
                    || environments.values().any(|e| e.vars.contains_key(cname))
                    || cname == "run_id";
                if clash || captured_by.insert(cname.clone(), c.name.clone()).is_some() {
                    return Err(err(
                        Some(cap.span()),
                        format!(
                            "check `{}`: capture `{cname}` has the name of another variable or capture",
                            c.name
                        ),
                    ));
                }
            }
        }
        let graph: HashMap<String, Vec<String>> = checks
            .iter()
            .map(|c| (c.name.clone(), c.depends_on.clone()))
            .collect();
        let mut problems = Vec::new();
        let mut probes = Vec::new();
        for c in &checks {
            let mut probe = c.spec.clone();
            let mut refs = Vec::new();
            // Already parsed once above; this cannot fail now.
            let _ = probe.for_each_string(&mut |s| {
                refs.extend(vars::references(s)?);
                Ok(())
            });
            probes.push(refs);
        }
        for (c, refs) in checks.iter().zip(probes) {
            let deps = ancestors(&c.name, &graph);
            for r in refs {
                let Ref::Plain(n) = r else { continue };
                let known = n == "run_id"
                    || top_vars.contains_key(&n)
                    || environments.values().any(|e| e.vars.contains_key(&n));
                if known {
                    continue;
                }
                match captured_by.get(&n) {
                    Some(by) if deps.contains(by) => {}
                    Some(by) if by == &c.name => {}
                    Some(by) => problems.push((
                        c.line,
                        format!(
                            "check `{}` uses `${{{n}}}`, captured by check `{by}`: add `{by}` to its depends-on",
                            c.name
                        ),
                    )),
                    None => problems.push((
                        c.line,
                        format!(
                            "check `{}` uses `${{{n}}}`, which is no variable, capture or run_id",
                            c.name
                        ),
                    )),
                }
            }
        }
        if let Some((line, message)) = problems.into_iter().next() {
            return Err(SpecError {
                path: path.to_path_buf(),
                line: Some(line),
                message,
            });
        }

        Ok(Spec {
            path: path.to_path_buf(),
            vars: top_vars,
            environments,
            checks,
        })
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Where the key at `path` (`["expect", "status"]`) of the `check`th `[[check]]` is written.
fn key_span(
    doc: Option<&toml::de::DeTable<'_>>,
    check: usize,
    path: &[&str],
) -> Option<std::ops::Range<usize>> {
    use toml::de::DeValue;
    let (_, checks) = doc?.iter().find(|(k, _)| k.get_ref() == "check")?;
    let DeValue::Array(checks) = checks.get_ref() else {
        return None;
    };
    let DeValue::Table(table) = checks.get(check)?.get_ref() else {
        return None;
    };
    let mut table = table;
    let (last, parents) = path.split_last()?;
    for key in parents {
        let (_, value) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        let DeValue::Table(inner) = value.get_ref() else {
            return None;
        };
        table = inner;
    }
    let (k, _) = table.iter().find(|(k, _)| k.get_ref() == last)?;
    Some(k.span())
}

/// Every check `name` depends on, directly or not.
pub fn ancestors<S: std::hash::BuildHasher>(
    name: &str,
    graph: &HashMap<String, Vec<String>, S>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = graph
        .get(name)
        .map_or(Vec::new(), |d| d.iter().map(String::as_str).collect());
    while let Some(n) = stack.pop() {
        if seen.insert(n.to_owned()) {
            if let Some(ds) = graph.get(n) {
                stack.extend(ds.iter().map(String::as_str));
            }
        }
    }
    seen
}

/// A dependency that closes a loop, as (check, dependency).
fn find_cycle(checks: &[Check], index: &HashMap<String, usize>) -> Option<(String, String)> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(
        i: usize,
        checks: &[Check],
        index: &HashMap<String, usize>,
        state: &mut [u8],
    ) -> Option<(String, String)> {
        state[i] = 1;
        for d in &checks[i].depends_on {
            let j = index[d];
            if state[j] == 1 {
                return Some((checks[i].name.clone(), d.clone()));
            }
            if state[j] == 0 {
                if let Some(found) = visit(j, checks, index, state) {
                    return Some(found);
                }
            }
        }
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; checks.len()];
    (0..checks.len()).find_map(|i| {
        if state[i] == 0 {
            visit(i, checks, index, &mut state)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("smoke.toml"), text)
    }

    #[test]
    fn the_demo_spec_parses_and_read_only_is_inferred_or_declared() {
        let spec = parse(include_str!("../../tests/fixtures/smoke.toml")).expect("parses");
        assert_eq!(spec.checks.len(), 14);
        let ro = |n: &str| spec.check(n).expect(n).read_only;
        assert!(
            ro("health") && ro("postgres") && ro("redis"),
            "a GET, a query, a PING"
        );
        assert!(ro("login"), "declared");
        assert!(!ro("create-business") && !ro("upload") && !ro("mail") && !ro("webhook"));
        assert!(spec.environments["production"].read_only);
        assert!(!spec.environments["staging"].read_only);
        assert_eq!(
            spec.check("read-business").expect("check").depends_on,
            ["create-business"]
        );
    }

    #[test]
    fn only_environments_named_for_it_are_written_to_by_default() {
        let spec = parse(
            "[environments.prod]\nbase-url = \"https://app.example\"\n\
             [environments.live]\nbase-url = \"https://live.example\"\n\
             [environments.staging]\nbase-url = \"https://staging.example\"\n\
             [environments.dev]\nbase-url = \"http://127.0.0.1:3000\"\n\
             [environments.customer-a]\nbase-url = \"https://a.example\"\nread-only = false\n\
             [[check]]\nname = \"h\"\nurl = \"/\"\n",
        )
        .expect("parses");
        let ro = |n: &str| spec.environments[n].read_only;
        assert!(ro("prod") && ro("live"), "not named writable: read-only");
        assert!(!ro("staging") && !ro("dev"));
        assert!(!ro("customer-a"), "declared");
        // A writable name at a read-only environment's URL is refused, on its line.
        let e = parse(
            "[environments.production]\nbase-url = \"https://app.example/\"\n\
             [environments.staging]\nbase-url = \"https://app.example\"\n\
             [[check]]\nname = \"h\"\nurl = \"/\"\n",
        )
        .expect_err("ambiguous")
        .to_string();
        assert!(
            e.contains(
                "`production` (read-only) and `staging` (writes allowed) have the same base-url"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_on_its_line() {
        let e =
            parse("[[check]]\nname = \"a\"\nurl = \"/\"\nexpect.staus = 200\n").expect_err("typo");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("staus"), "{e}");
    }

    #[test]
    fn a_mistake_in_a_field_names_the_field_s_line() {
        let line = |text: &str| parse(text).expect_err(text).line;
        let check = "[[check]]\nname = \"a\"\n";
        assert_eq!(
            line(&format!("{check}url = \"/\"\n\nquery = \"SELECT 1\"\n")),
            Some(5)
        );
        assert_eq!(
            line(&format!(
                "{check}kind = \"redis\"\nexpect.max-ms = 5\nexpect.tls-days = 3\n"
            )),
            Some(5)
        );
        assert_eq!(
            line(&format!(
                "{check}url = \"/\"\n[check.expect]\nstatus = 200\nbody-regex = \"(\"\n"
            )),
            Some(6)
        );
        assert_eq!(
            line(&format!(
                "{check}url = \"/\"\nexpect = {{ status = \"2xy\" }}\n"
            )),
            Some(4)
        );
        assert_eq!(
            line(&format!(
                "{check}kind = \"rate-limit\"\nurl = \"/\"\nrequests = 0\n"
            )),
            Some(5)
        );
    }

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("18446744073709551615s").is_err());
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
