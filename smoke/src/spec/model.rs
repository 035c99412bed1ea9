//! What a spec says, once checked: the checks, their kinds and assertions, the environments.
//!
//! The types here are what the rest of lifeboat-smoke reads; [`super::parse`] makes them from
//! the text and is the only place that can refuse one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::vars::Ref;

/// The kind of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Http,
    Postgres,
    Mysql,
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
            Kind::Mysql => "mysql",
            Kind::Redis => "redis",
            Kind::S3 => "s3",
            Kind::Smtp => "smtp",
            Kind::RateLimit => "rate-limit",
            Kind::Webhook => "webhook",
        }
    }

    /// The check fields (beyond the common ones) this kind reads.
    pub(super) fn fields(self) -> &'static [&'static str] {
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
            Kind::Mysql => &["url", "query", "ca-file", "expect"],
            Kind::Redis => &["url", "ca-file", "expect"],
            Kind::S3 => &["expect"],
            Kind::Smtp => &["to", "from", "mail-api", "mail-api-kind", "expect"],
        }
    }

    /// The `expect` fields this kind reads.
    pub(super) fn expect_fields(self) -> &'static [&'static str] {
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
            Kind::Postgres | Kind::Mysql => &["equals", "at-least", "at-most", "max-ms"],
            Kind::Redis | Kind::S3 | Kind::Smtp => &["max-ms"],
        }
    }

    /// Whether this kind always writes (a probe object, a mail, a payment event).
    pub(super) fn always_writes(self) -> bool {
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
    pub(super) fn fields_set(&self) -> Vec<&'static str> {
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
