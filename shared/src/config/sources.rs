//! The sources of values: the command line's overrides, the environment, the stack's `.env`
//! and `lifeboat.toml` (its `[profile.NAME]` table over its top level), laid over the table's
//! defaults. Every value remembers where it came from, for the errors that name it.
//!
//! A typo must not silently fall back to a default: an unknown key in `lifeboat.toml` or an
//! unknown `LIFEBOAT_*` variable is an error. Nothing here quotes a value back: a line of
//! `.env` or `lifeboat.toml` may hold a secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{missing, nearest, ConfigError};
use super::settings::{self as s, Setting, DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, SETTINGS};
use crate::env_vars as ev;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// `lifeboat.toml`, and the line of the key when it could be found.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    DotEnv {
        path: PathBuf,
        line: usize,
        var: String,
    },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{} line {line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::DotEnv { path, line, var } => {
                write!(f, "{var} in {} line {line}", path.display())
            }
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// What the binary knows before reading any file: from its flags and their `env =` fallbacks.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`: must exist when given. Default `./lifeboat.toml`, optional.
    pub config_file: Option<PathBuf>,
    /// `--env-file`: must exist when given. Default `./.env`, optional.
    pub env_file: Option<PathBuf>,
    /// `--env`: the profile. When unset, `LIFEBOAT_ENV` from `.env` applies.
    pub profile: Option<String>,
    /// Where `profile` came from (flag `--env` or variable `LIFEBOAT_ENV`), for errors.
    pub profile_origin: Option<Origin>,
    /// Values given by flags, the highest layer.
    pub overrides: Vec<Override>,
}

/// A value given on the command line for a setting.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: &'static str,
    pub flag: &'static str,
    pub value: String,
}

/// The raw values of every layer, later layers replacing earlier ones. A setting no layer gives
/// (or gives empty) reads as its default from the table.
#[derive(Default)]
pub(super) struct Layers {
    values: HashMap<&'static str, (String, Origin)>,
    /// Every problem found so far: reading goes on after one, so that all are said at once.
    errors: std::cell::RefCell<Vec<ConfigError>>,
}

impl Layers {
    fn set(&mut self, key: &'static str, value: String, origin: Origin) {
        self.values.insert(key, (value, origin));
    }

    /// A problem to report with the others once everything has been read.
    pub(super) fn report(&self, error: ConfigError) {
        self.errors.borrow_mut().push(error);
    }

    /// The problems found, emptied.
    pub(super) fn take_errors(&self) -> Vec<ConfigError> {
        std::mem::take(&mut self.errors.borrow_mut())
    }

    /// The value given for `setting`, when one was given and is not empty.
    pub(super) fn given(&self, setting: &Setting) -> Option<&(String, Origin)> {
        self.values
            .get(setting.name())
            .filter(|(v, _)| !v.is_empty())
    }

    /// The value given, else the table's default.
    pub(super) fn string(&self, setting: &Setting) -> Option<String> {
        self.given(setting)
            .map(|(v, _)| v.clone())
            .or_else(|| setting.default.map(str::to_owned))
    }

    /// The value given (else the default) through `f`; a bad value names the setting and its origin.
    pub(super) fn parse<T>(
        &self,
        setting: &Setting,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let value = match self.given(setting) {
            Some((value, origin)) => Some((value.as_str(), origin.clone())),
            None => setting.default.map(|d| (d, Origin::Default)),
        };
        let Some((value, origin)) = value else {
            return Ok(None);
        };
        match f(value) {
            Ok(v) => Ok(Some(v)),
            Err(reason) => {
                let error = ConfigError::Invalid {
                    key: setting.name(),
                    origin,
                    reason,
                };
                // Said with every other problem at the end; reading goes on with the default.
                match setting.default.map(&f) {
                    Some(Ok(default)) if self.given(setting).is_some() => {
                        self.report(error);
                        Ok(Some(default))
                    }
                    None if self.given(setting).is_some() => {
                        self.report(error);
                        Ok(None)
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// The value of a setting that has a default in the table, so is never absent.
    pub(super) fn with_default<T>(
        &self,
        setting: &Setting,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.parse(setting, f)?
            .ok_or_else(|| missing(setting, "it has no default"))
    }
}

/// What every source gave: the layers, the profile chosen and the files read.
pub(super) struct Collected {
    pub layers: Layers,
    pub profile: Option<String>,
    pub sources: Vec<PathBuf>,
}

/// Read every source, lowest first: `lifeboat.toml`, `.env`, the environment, the flags.
pub(super) fn collect(
    opts: &LoadOptions,
    env: &HashMap<String, String>,
) -> Result<Collected, ConfigError> {
    let mut layers = Layers::default();
    // `.env` is read first (its LIFEBOAT_ENV may choose the profile) but applied later.
    let dotenv = read_optional(
        opts.env_file.as_deref(),
        DEFAULT_ENV_FILE,
        "given by --env-file or LIFEBOAT_ENV_FILE",
    )?
    .map(|(path, text)| parse_dotenv(&path, &text).map(|vars| (path, vars)))
    .transpose()?;
    let (profile, profile_origin) = profile(opts, dotenv.as_ref())?;

    let mut sources = Vec::new();
    if let Some((path, text)) = read_optional(
        opts.config_file.as_deref(),
        DEFAULT_CONFIG_FILE,
        "given by --config or LIFEBOAT_CONFIG",
    )? {
        tracing::debug!("configuration file: {}", path.display());
        apply_toml(
            &mut layers,
            &path,
            &text,
            profile.as_deref().map(|p| (p, &profile_origin)),
        )?;
        sources.push(path);
    }
    if let Some((path, vars)) = dotenv {
        for var in vars {
            let origin = Origin::DotEnv {
                path: path.clone(),
                line: var.line,
                var: var.name.clone(),
            };
            if let Err(e) = apply_variable(&mut layers, &var.name, var.value, origin) {
                layers.report(e);
            }
        }
        tracing::debug!("environment file: {}", path.display());
        sources.push(path);
    }
    let mut names: Vec<&String> = env.keys().collect();
    names.sort();
    for name in names {
        if let Err(e) = apply_variable(
            &mut layers,
            name,
            env[name].clone(),
            Origin::Env(name.clone()),
        ) {
            layers.report(e);
        }
    }
    if let Some(p) = &profile {
        tracing::debug!("profile: {p} (from {profile_origin})");
    }
    for o in &opts.overrides {
        layers.set(o.key, o.value.clone(), Origin::Flag(o.flag.to_owned()));
    }
    Ok(Collected {
        layers,
        profile,
        sources,
    })
}

/// The profile: `--env` (or `LIFEBOAT_ENV` in the environment), else `LIFEBOAT_ENV` in `.env`;
/// and where it came from.
fn profile(
    opts: &LoadOptions,
    dotenv: Option<&(PathBuf, Vec<DotEnvVar>)>,
) -> Result<(Option<String>, Origin), ConfigError> {
    let profile_origin = opts
        .profile_origin
        .clone()
        .unwrap_or_else(|| Origin::Flag("--env".into()));
    let from_dotenv = || {
        let (path, vars) = dotenv?;
        let v = vars.iter().find(|v| v.name == ev::LIFEBOAT_ENV)?;
        let origin = Origin::DotEnv {
            path: path.clone(),
            line: v.line,
            var: v.name.clone(),
        };
        Some((v.value.clone(), origin))
    };
    let (profile, profile_origin) = match (opts.profile.clone(), from_dotenv()) {
        (Some(p), _) => (Some(p), profile_origin),
        (None, Some((p, origin))) => (Some(p), origin),
        (None, None) => (None, profile_origin),
    };
    if let Some(p) = &profile {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid {
                key: "profile",
                origin: profile_origin,
                reason: format!("{p:?} is not a profile name (letters, digits, '-' and '_')"),
            });
        }
    }
    Ok((profile, profile_origin))
}

/// Read `explicit` (which must exist) or `default` (which may be absent).
fn read_optional(
    explicit: Option<&Path>,
    default: &str,
    given: &'static str,
) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(default), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) if required => Err(ConfigError::ReadGiven {
            path,
            given,
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => e.to_string(),
            },
        }),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Variables read by the command line before any file: in `.env` they would be silently ignored.
const CLI_ONLY: &[&str] = &[
    s::LIFEBOAT_CONFIG.var,
    s::LIFEBOAT_ENV_FILE.var,
    s::LIFEBOAT_LOG_FORMAT.var,
    s::LIFEBOAT_LOG.var,
];

/// A variable from the environment or `.env`: a setting's variable is applied; an unknown
/// `LIFEBOAT_*` is a typo; anything else belongs to the stack and is none of our business.
fn apply_variable(
    layers: &mut Layers,
    name: &str,
    value: String,
    origin: Origin,
) -> Result<(), ConfigError> {
    if let Some(setting) = s::by_var(name) {
        layers.set(setting.name(), value, origin);
    } else if matches!(origin, Origin::DotEnv { .. }) && CLI_ONLY.contains(&name) {
        return Err(ConfigError::Invalid {
            key: "environment",
            origin,
            reason: format!(
                "{name} is read before .env: set it in the environment or use its flag"
            ),
        });
    } else if name.starts_with(ev::PREFIX) && !ev::ALL.contains(&name) {
        return Err(ConfigError::UnknownVariable {
            var: name.to_owned(),
            origin,
            suggestion: nearest(name, ev::ALL.iter().copied()),
        });
    }
    Ok(())
}

fn apply_toml(
    layers: &mut Layers,
    path: &Path,
    text: &str,
    profile: Option<(&str, &Origin)>,
) -> Result<(), ConfigError> {
    // The parser's own message quotes the offending line, which may hold a secret: keep only
    // what it says and where.
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        ConfigError::Toml {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            },
        }
    })?;
    let file = TomlFile { path, text };
    let mut flat = BTreeMap::new();
    let mut profiles = BTreeMap::new();
    for (name, value) in &table {
        if name == "profile" {
            let Some(ps) = value.as_table() else {
                layers.report(file.unknown_key(
                    "profile",
                    "; profiles are tables: [profile.production]".into(),
                ));
                continue;
            };
            for (pname, pvalue) in ps {
                let mut pflat = BTreeMap::new();
                file.flatten(layers, &format!("profile.{pname}."), "", pvalue, &mut pflat);
                profiles.insert(pname.clone(), pflat);
            }
        } else {
            file.flatten(layers, "", name, value, &mut flat);
        }
    }
    // A typo in --env must not silently fall back to the top level (production settings for
    // a staging run, or the reverse). A profile with nothing to override is an empty table.
    let chosen = match profile {
        Some((p, origin)) if !profiles.is_empty() => {
            let known: Vec<String> = profiles.keys().cloned().collect();
            profiles.remove(p).ok_or_else(|| ConfigError::Invalid {
                key: "profile",
                origin: origin.clone(),
                reason: format!(
                    "{} has no [profile.{p}] (its profiles: {}); add an empty [profile.{p}] if it needs no overrides",
                    path.display(),
                    known.join(", ")
                ),
            })?
        }
        _ => BTreeMap::new(),
    };
    for (key, (value, shown)) in flat.into_iter().chain(chosen) {
        // flatten only yields known keys
        if let Some(setting) = s::by_key(&key) {
            let origin = Origin::File {
                path: path.to_path_buf(),
                line: file.line_of(&shown),
            };
            layers.set(setting.name(), value, origin);
        }
    }
    Ok(())
}

/// A `lifeboat.toml` being read: its keys' lines, and the errors that name them.
struct TomlFile<'a> {
    path: &'a Path,
    text: &'a str,
}

impl TomlFile<'_> {
    /// The line that sets `key` (`backup.keep-days`, `profile.staging.backup.dir`), under its
    /// `[table]` header or as a dotted key. Not found (an inline table): none.
    fn line_of(&self, key: &str) -> Option<usize> {
        let unquote = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_owned();
        let mut table = String::new();
        for (n, line) in self.text.lines().enumerate() {
            let line = line.trim();
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                table = header.split('.').map(unquote).collect::<Vec<_>>().join(".");
            } else if let Some((name, _)) = line.split_once('=') {
                let name: Vec<String> = name.split('.').map(unquote).collect();
                let full = if table.is_empty() {
                    name.join(".")
                } else {
                    format!("{table}.{}", name.join("."))
                };
                if full == key {
                    return Some(n + 1);
                }
            }
        }
        None
    }

    /// `file line N` for a key, or the file alone.
    fn place(&self, key: &str) -> String {
        match self.line_of(key) {
            Some(line) => format!("{} line {line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn unknown_key(&self, key: &str, hint: String) -> ConfigError {
        ConfigError::UnknownKey {
            key: key.to_owned(),
            path: PathBuf::from(self.place(key)),
            hint,
        }
    }

    fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        ConfigError::Toml {
            path: PathBuf::from(self.place(key)),
            message: format!("`{key}`: {reason}"),
        }
    }

    /// Flatten `[section] key = value` into `section.key` → (value, the key as written),
    /// reporting unknown keys and non-scalars and going on.
    fn flatten(
        &self,
        layers: &Layers,
        shown_prefix: &str,
        name: &str,
        value: &toml::Value,
        out: &mut BTreeMap<String, (String, String)>,
    ) {
        match value {
            toml::Value::Table(t) if name.is_empty() => {
                for (section, v) in t {
                    self.flatten(layers, shown_prefix, section, v, out);
                }
            }
            toml::Value::Table(t) if !name.contains('.') => {
                for (k, v) in t {
                    self.flatten(layers, shown_prefix, &format!("{name}.{k}"), v, out);
                }
            }
            _ => {
                let shown = format!("{shown_prefix}{name}");
                if s::by_key(name).is_none() {
                    layers.report(self.unknown_key(&shown, unknown_key_hint(name)));
                    return;
                }
                let text = match value {
                    toml::Value::String(s) => Some(s.clone()),
                    toml::Value::Integer(i) => Some(i.to_string()),
                    toml::Value::Boolean(b) => Some(b.to_string()),
                    toml::Value::Array(items) => {
                        let list = items
                            .iter()
                            .map(|i| i.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .map(|v| v.join(","));
                        if list.is_none() {
                            layers.report(self.invalid(&shown, "expected a list of strings"));
                        }
                        list
                    }
                    _ => {
                        layers.report(self.invalid(&shown, "expected a string, number or boolean"));
                        None
                    }
                };
                if let Some(text) = text {
                    out.insert(name.to_owned(), (text, shown));
                }
            }
        }
    }
}

/// What to say after an unknown key: the key meant, if one is near, and the keys of its section
/// (or the sections).
fn unknown_key_hint(name: &str) -> String {
    let (section, key) = name.split_once('.').unwrap_or((name, ""));
    let keys = SETTINGS.iter().filter_map(|s| s.key);
    let known: Vec<&str> = keys
        .clone()
        .filter_map(|k| k.strip_prefix(section)?.strip_prefix('.'))
        .collect();
    if known.is_empty() {
        let sections: std::collections::BTreeSet<&str> =
            keys.filter_map(|k| k.split('.').next()).collect();
        let meant = nearest(section, sections.iter().copied())
            .map_or_else(String::new, |m| format!(": did you mean [{m}]?"));
        return format!(
            "{meant}; known sections: {}",
            sections.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let meant = nearest(key, known.iter().copied())
        .map_or_else(String::new, |m| format!(": did you mean `{section}.{m}`?"));
    format!("{meant}; known keys in [{section}]: {}", known.join(", "))
}

/// One `NAME=value` of a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotEnvVar {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Parse a `.env` file as docker compose reads it: `NAME=value`, optional `export `, `#`
/// comments, single quotes literal, double quotes with `\n`, `\"` and `\\` escapes.
pub fn parse_dotenv(path: &Path, text: &str) -> Result<Vec<DotEnvVar>, ConfigError> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let Some((name, value)) = body.split_once('=') else {
            // The line is not echoed: it may be a secret pasted on its own line.
            return Err(syntax("expected NAME=value".into()));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax(format!("{name:?} is not a variable name")));
        }
        let value = unquote(value.trim()).map_err(|m| syntax(format!("{name}: {m}")))?;
        vars.push(DotEnvVar {
            name: name.to_owned(),
            value,
            line,
        });
    }
    Ok(vars)
}

fn unquote(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single quote")?;
        return Ok(rest[..end].to_owned());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    // Unquoted: an inline comment starts at " #".
    Ok(v.split(" #").next().unwrap_or(v).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{env, opts_in};
    use super::super::{Config, LoadOptions, Override};
    use super::*;

    #[test]
    fn precedence_is_flags_then_environment_then_dotenv_then_file_then_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[backup]\ndir = \"/from/file\"\n[s3]\nbucket = \"file-bucket\"\nregion = \"eu-file\"\n[smtp]\nhost = \"file-host\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join(".env"),
            "S3_BUCKET=dotenv-bucket\nSMTP_HOST=dotenv-host\n",
        )
        .expect("write");
        let mut opts = opts_in(dir.path());
        opts.overrides.push(Override {
            key: "backup.dir",
            flag: "--dir",
            value: "/from/flag".into(),
        });
        let cfg = Config::load_with_env(
            &opts,
            &env(&[
                ("SMTP_HOST", "env-host"),
                ("LIFEBOAT_BACKUP_DIR", "/from/env"),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.backup.dir, PathBuf::from("/from/flag"));
        assert_eq!(cfg.smtp.host.as_deref(), Some("env-host"));
        assert_eq!(cfg.s3.bucket.as_deref(), Some("dotenv-bucket"));
        assert_eq!(cfg.s3.region, "eu-file");
        assert_eq!(cfg.database.service, "postgres");
    }

    #[test]
    fn the_profile_table_overrides_the_top_level_and_can_come_from_dotenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[s3]\nbucket = \"base-bucket\"\n[profile.production.s3]\nbucket = \"prod-bucket\"\n[profile.staging.s3]\nbucket = \"staging-bucket\"\n",
        )
        .expect("write");
        std::fs::write(dir.path().join(".env"), "LIFEBOAT_ENV=staging\n").expect("write");
        let mut opts = opts_in(dir.path());
        assert_eq!(
            Config::load_with_env(&opts, &env(&[]))
                .expect("load")
                .s3
                .bucket
                .as_deref(),
            Some("staging-bucket")
        );
        opts.profile = Some("production".into());
        let cfg = Config::load_with_env(&opts, &env(&[])).expect("load");
        assert_eq!(cfg.s3.bucket.as_deref(), Some("prod-bucket"));
        assert_eq!(cfg.profile.as_deref(), Some("production"));
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[database]\nuri = \"x\"\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("`database.uri`"), "{err}");
        assert!(err.contains("lifeboat.toml"), "{err}");
        assert!(err.contains("url"), "the hint lists the known keys: {err}");

        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[profile.production.smtp]\nhots = \"x\"\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("`profile.production.smtp.hots`"), "{err}");
    }

    #[test]
    fn an_unknown_lifeboat_variable_is_a_typo_but_other_variables_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err =
            Config::load_with_env(&opts_in(dir.path()), &env(&[("LIFEBOAT_BAKUP_DIR", "/x")]))
                .expect_err("must fail")
                .to_string();
        assert!(err.contains("LIFEBOAT_BAKUP_DIR"), "{err}");
        std::fs::write(
            dir.path().join(".env"),
            "NODE_ENV=production\nLIFEBOAT_MAIL_TOO=a@b.c\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("LIFEBOAT_MAIL_TOO in") && err.contains(".env line 2"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_file_must_exist_but_the_defaults_are_optional() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = LoadOptions {
            env_file: Some(dir.path().join("nope.env")),
            ..LoadOptions::default()
        };
        let err = Config::load_with_env(&opts, &env(&[]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("nope.env"), "{err}");
    }

    #[test]
    fn dotenv_follows_compose_quoting() {
        let vars = parse_dotenv(
            Path::new(".env"),
            "export A=1\nB='x # y'\nC=\"a\\nb\"\nD=plain # comment\nE=\n",
        )
        .expect("parse");
        let got: Vec<(&str, &str)> = vars
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", "x # y"),
                ("C", "a\nb"),
                ("D", "plain"),
                ("E", "")
            ]
        );
        let err = parse_dotenv(Path::new(".env"), "OK=1\nnot a line\n")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(".env line 2"), "{err}");
    }

    #[test]
    fn a_profile_missing_from_the_file_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[profile.production.s3]\nbucket = \"prod\"\n[profile.staging]\n",
        )
        .expect("write");
        let mut opts = opts_in(dir.path());
        opts.profile = Some("prodution".into());
        let err = Config::load_with_env(&opts, &env(&[]))
            .expect_err("a typo")
            .to_string();
        assert!(
            err.contains("no [profile.prodution]") && err.contains("production, staging"),
            "{err}"
        );
        opts.profile = Some("staging".into());
        assert_eq!(
            Config::load_with_env(&opts, &env(&[]))
                .expect("an empty profile")
                .s3
                .bucket,
            None
        );
    }

    #[test]
    fn toml_errors_name_the_line_without_quoting_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            "[smtp]\nhost = \"mail\"\npassword = \"hunter2\n",
        )
        .expect("write");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("unterminated")
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::write(dir.path().join(".env"), "OK=1\nhunter2\n").expect("write");
        std::fs::remove_file(dir.path().join("lifeboat.toml")).expect("rm");
        let err = Config::load_with_env(&opts_in(dir.path()), &env(&[]))
            .expect_err("bad line")
            .to_string();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
    }
}
