//! [`Spec::parse`] in phases, in the order a reader finds the mistakes: syntax, defaults,
//! variables and environments, each check's fields, then the graph of dependencies and
//! captures. The first mistake found is the one told, at its line.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ancestors, line_of, parse_duration, Check, CheckSpec, Environment, Kind, Located, Spec,
    SpecError, StatusExpect, WRITABLE_BY_NAME,
};
use crate::vars::{self, Ref};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
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

/// The spec's text and name, to turn a byte span into an error at its line.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    /// The same text as a tree of spanned keys, so that an error about a field names the line
    /// of the field, not of its check.
    doc: Option<&'a toml::de::DeTable<'a>>,
}

impl Source<'_> {
    fn err(&self, span: Option<Range<usize>>, message: String) -> SpecError {
        SpecError {
            path: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            message,
        }
    }

    fn duration(&self, d: &Spanned<String>) -> Result<Duration, SpecError> {
        parse_duration(d.get_ref()).map_err(|m| self.err(Some(d.span()), m))
    }

    /// The duration `d` says, or `default` when it is not there.
    fn duration_or(
        &self,
        d: Option<&Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, SpecError> {
        Ok(d.map(|d| self.duration(d)).transpose()?.unwrap_or(default))
    }
}

/// `[defaults]`, read.
struct Defaults {
    timeout: Duration,
    retries: Option<u32>,
    retry_delay: Duration,
}

/// Parse and check a spec's text (`path` names it in errors).
pub(super) fn spec(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let bare = Source {
        path,
        text,
        doc: None,
    };
    // The parser's own Display quotes the line; its message and span are enough.
    let raw: RawSpec =
        toml::from_str(text).map_err(|e| bare.err(e.span(), e.message().trim().to_owned()))?;
    // It parsed once; it parses again, as a tree of spanned keys.
    let doc = toml::de::DeTable::parse(text).ok();
    let src = Source {
        path,
        text,
        doc: doc.as_ref().map(Spanned::get_ref),
    };

    let defaults = defaults(&src, &raw.defaults.unwrap_or_default())?;
    let top_vars = variables(&src, raw.vars)?;
    let environments = environments(&src, raw.environments)?;

    // Names, kinds and their fields, durations, regexes.
    let mut checks: Vec<Check> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, spec) in raw.check.into_iter().enumerate() {
        let at = CheckAt {
            src: &src,
            i,
            name: spec.name.get_ref().clone(),
            name_span: spec.name.span(),
        };
        at.name_is_new(&index)?;
        index.insert(at.name.clone(), checks.len());
        checks.push(check(&at, spec, &defaults)?);
        // Plain references are checked below, once every capture is known.
    }

    dependencies(&src, &checks, &index)?;
    captures(&src, &checks, &top_vars, &environments)?;
    references(path, &checks, &top_vars, &environments)?;
    Ok(Spec {
        path: path.to_path_buf(),
        vars: top_vars,
        environments,
        checks,
    })
}

/// `[defaults]`: the durations checked, the defaults' defaults filled in.
fn defaults(src: &Source<'_>, raw: &RawDefaults) -> Result<Defaults, SpecError> {
    let timeout = src.duration_or(raw.timeout.as_ref(), DEFAULT_TIMEOUT)?;
    let retry_delay = src.duration_or(raw.retry_delay.as_ref(), DEFAULT_RETRY_DELAY)?;
    Ok(Defaults {
        timeout,
        retries: raw.retries,
        retry_delay,
    })
}

/// `[vars]` (or an environment's): each with its line; a variable reads the environment, it
/// does not chain other variables.
fn variables(
    src: &Source<'_>,
    vars: BTreeMap<String, Spanned<String>>,
) -> Result<BTreeMap<String, Located>, SpecError> {
    let mut out = BTreeMap::new();
    for (name, v) in vars {
        let span = v.span();
        let refs = vars::references(v.get_ref()).map_err(|m| src.err(Some(span.clone()), m))?;
        if refs.iter().any(|r| matches!(r, Ref::Plain(_))) {
            return Err(src.err(
                Some(span),
                format!("variable `{name}` may read the environment (`${{env:NAME}}`, `${{secret:NAME}}`), not other variables"),
            ));
        }
        out.insert(
            name,
            Located {
                value: v.into_inner(),
                line: line_of(src.text, span.start),
            },
        );
    }
    Ok(out)
}

/// Whether an environment's checks are read-only: as it says, else by its name.
fn read_only_by_name(name: &str, declared: Option<bool>) -> bool {
    declared.unwrap_or(!WRITABLE_BY_NAME.contains(&name))
}

/// `[environments.*]`, once no two share a base-url with different `read-only`.
fn environments(
    src: &Source<'_>,
    raw: BTreeMap<String, RawEnvironment>,
) -> Result<BTreeMap<String, Environment>, SpecError> {
    same_base_url(src, &raw)?;
    let mut environments = BTreeMap::new();
    for (name, env) in raw {
        let base_url = env.base_url.map(|b| Located {
            line: line_of(src.text, b.span().start),
            value: b.into_inner(),
        });
        environments.insert(
            name.clone(),
            Environment {
                read_only: read_only_by_name(&name, env.read_only),
                name,
                base_url,
                vars: variables(src, env.vars)?,
            },
        );
    }
    Ok(environments)
}

/// Two environments at the same base-url, one read-only and one not: which is it? A `staging`
/// that points at production's URL would write to production.
fn same_base_url(
    src: &Source<'_>,
    raw: &BTreeMap<String, RawEnvironment>,
) -> Result<(), SpecError> {
    let mut seen: Vec<(String, String, bool)> = Vec::new();
    for (name, env) in raw {
        let Some(b) = &env.base_url else { continue };
        let url = b.get_ref().trim().trim_end_matches('/').to_owned();
        let read_only = read_only_by_name(name, env.read_only);
        if let Some((other, _, _)) = seen.iter().find(|(_, u, ro)| *u == url && *ro != read_only) {
            let (ro, rw) = if read_only {
                (name, other)
            } else {
                (other, name)
            };
            return Err(src.err(
                Some(b.span()),
                format!(
                    "environments `{ro}` (read-only) and `{rw}` (writes allowed) have the same base-url, so a run could write to the read-only one under the other's name: give each its own base-url, or set `read-only` alike"
                ),
            ));
        }
        seen.push((name.clone(), url, read_only));
    }
    Ok(())
}

/// The `i`th `[[check]]`, to say where a mistake in it is.
struct CheckAt<'a> {
    src: &'a Source<'a>,
    i: usize,
    name: String,
    name_span: Range<usize>,
}

impl CheckAt<'_> {
    /// At the line of the check's name.
    fn at(&self, m: &str) -> SpecError {
        self.src.err(
            Some(self.name_span.clone()),
            format!("check `{}`: {m}", self.name),
        )
    }

    /// At the line of a key of this check (`["expect", "status"]`), or of its name.
    fn at_key(&self, path: &[&str], m: &str) -> SpecError {
        let span = key_span(self.src.doc, self.i, path).unwrap_or_else(|| self.name_span.clone());
        self.src
            .err(Some(span), format!("check `{}`: {m}", self.name))
    }

    /// At `span` (a capture, `read-only`).
    fn at_span(&self, span: Option<Range<usize>>, m: &str) -> SpecError {
        self.src.err(span, format!("check `{}`: {m}", self.name))
    }

    /// A valid name that no earlier check has.
    fn name_is_new(&self, index: &HashMap<String, usize>) -> Result<(), SpecError> {
        if !valid_name(&self.name) {
            return Err(self.at("a check's name is letters, digits, '-', '_' and '.'"));
        }
        if index.contains_key(&self.name) {
            return Err(self.at("two checks have this name"));
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One check's fields, checked against its kind, and its durations and references read.
fn check(at: &CheckAt<'_>, spec: CheckSpec, defaults: &Defaults) -> Result<Check, SpecError> {
    let kind = spec.kind;
    fields_apply(at, &spec)?;
    expect_fields(at, &spec)?;
    let regex = body_regex(at, &spec)?;
    needed_fields(at, &spec)?;
    for (cname, c) in &spec.capture {
        let t = c.get_ref().table();
        if t.pointer.is_some() == t.header.is_some() {
            return Err(at.at_span(
                Some(c.span()),
                &format!("capture `{cname}` needs one of pointer or header"),
            ));
        }
    }
    let read_only = read_only(at, &spec)?;
    let src = at.src;
    let timeout = src.duration_or(spec.timeout.as_ref(), defaults.timeout)?;
    let retry_delay = src.duration_or(spec.retry_delay.as_ref(), defaults.retry_delay)?;
    let wait = spec.wait.as_ref().map(|d| src.duration(d)).transpose()?;
    let mut probe = spec.clone();
    let mut refs = Vec::new();
    probe
        .for_each_string(&mut |s| {
            refs.extend(vars::references(s)?);
            Ok(())
        })
        .map_err(|m| at.at(&m))?;
    Ok(Check {
        name: at.name.clone(),
        line: line_of(src.text, at.name_span.start),
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
    })
}

/// Every field set is one the check's kind reads.
fn fields_apply(at: &CheckAt<'_>, spec: &CheckSpec) -> Result<(), SpecError> {
    let kind = spec.kind;
    for field in spec.fields_set() {
        if !kind.fields().contains(&field) {
            return Err(at.at_key(
                &[field],
                &format!(
                    "`{field}` does not apply to a {} check (it reads: {})",
                    kind.name(),
                    kind.fields().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `expect`: every assertion one the kind reads, each well-formed.
fn expect_fields(at: &CheckAt<'_>, spec: &CheckSpec) -> Result<(), SpecError> {
    let Some(expect) = &spec.expect else {
        return Ok(());
    };
    let kind = spec.kind;
    let e = expect.get_ref();
    let eat = |field: &str, m: &str| at.at_key(&["expect", field], m);
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
                &format!(
                    "`expect.{field}` does not apply to a {} check (it reads: {})",
                    kind.name(),
                    kind.expect_fields().join(", ")
                ),
            ));
        }
    }
    if let Some(StatusExpect::Class(c)) = &e.status {
        let ok =
            c.len() == 3 && c.ends_with("xx") && c.starts_with(|d: char| ('1'..='5').contains(&d));
        if !ok {
            return Err(eat(
                "status",
                &format!("`expect.status` {c:?} is not a status class (\"2xx\" … \"5xx\")"),
            ));
        }
    }
    for j in &e.json {
        if !j.pointer.is_empty() && !j.pointer.starts_with('/') {
            return Err(eat(
                "json",
                &format!(
                    "`expect.json` pointer {:?} must start with '/' (RFC 6901)",
                    j.pointer
                ),
            ));
        }
        if j.equals.is_none() && j.exists.is_none() && j.type_.is_none() {
            return Err(eat(
                "json",
                &format!(
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
        return Err(eat("tls-days", "`expect.tls-days` needs an https:// URL"));
    }
    Ok(())
}

/// `expect.body-regex`, compiled.
fn body_regex(at: &CheckAt<'_>, spec: &CheckSpec) -> Result<Option<regex_lite::Regex>, SpecError> {
    spec.expect
        .as_ref()
        .and_then(|e| {
            e.get_ref().body_regex.as_ref().map(|r| {
                regex_lite::Regex::new(r).map_err(|x| {
                    at.at_key(
                        &["expect", "body-regex"],
                        &format!("`expect.body-regex` {r:?}: {x}"),
                    )
                })
            })
        })
        .transpose()
}

/// What the kind cannot do without, and fields that exclude each other.
fn needed_fields(at: &CheckAt<'_>, spec: &CheckSpec) -> Result<(), SpecError> {
    let kind = spec.kind;
    match kind {
        Kind::Http | Kind::RateLimit | Kind::Webhook if spec.url.is_none() => {
            return Err(at.at(&format!("a {} check needs `url`", kind.name())));
        }
        Kind::Webhook if spec.secret.is_none() => {
            return Err(at.at(
                "a webhook check needs `secret` (the HMAC key, e.g. \"${secret:WEBHOOK_SECRET}\")",
            ));
        }
        Kind::RateLimit if spec.requests == Some(0) => {
            return Err(at.at_key(&["requests"], "`requests` must be at least 1"));
        }
        _ => {}
    }
    if spec.body.is_some() && spec.json.is_some() {
        return Err(at.at_key(&["json"], "give `body` or `json`, not both"));
    }
    Ok(())
}

/// Declared (and possible), or inferred: a GET, a query in a read-only transaction, a PING.
fn read_only(at: &CheckAt<'_>, spec: &CheckSpec) -> Result<bool, SpecError> {
    let kind = spec.kind;
    let declared = spec.read_only.as_ref().map(|r| *r.get_ref());
    if declared == Some(true) && (kind.always_writes() || spec.cleanup.is_some()) {
        let span = spec.read_only.as_ref().map(Spanned::span);
        return Err(at.at_span(
            span,
            &format!(
                "a {} check {} and cannot be read-only",
                kind.name(),
                if spec.cleanup.is_some() {
                    "creates what its cleanup removes"
                } else {
                    "writes (a probe object, a mail, an event)"
                }
            ),
        ));
    }
    Ok(declared.unwrap_or_else(|| match kind {
        Kind::Postgres | Kind::Mysql | Kind::Redis => true,
        Kind::Http => {
            spec.cleanup.is_none()
                && spec.method.as_deref().is_none_or(|m| {
                    matches!(m.to_ascii_uppercase().as_str(), "GET" | "HEAD" | "OPTIONS")
                })
        }
        Kind::S3 | Kind::Smtp | Kind::Webhook | Kind::RateLimit => false,
    }))
}

/// Dependencies exist and do not loop.
fn dependencies(
    src: &Source<'_>,
    checks: &[Check],
    index: &HashMap<String, usize>,
) -> Result<(), SpecError> {
    for c in checks {
        for d in &c.spec.depends_on {
            if !index.contains_key(d.get_ref()) {
                return Err(src.err(
                    Some(d.span()),
                    format!(
                        "check `{}` depends on `{}`, which is not a check",
                        c.name,
                        d.get_ref()
                    ),
                ));
            }
            if d.get_ref() == &c.name {
                return Err(src.err(
                    Some(d.span()),
                    format!("check `{}` depends on itself", c.name),
                ));
            }
        }
    }
    if let Some((name, dep)) = find_cycle(checks, index) {
        let c = &checks[index[&name]];
        let span = c
            .spec
            .depends_on
            .iter()
            .find(|d| d.get_ref() == &dep)
            .map(Spanned::span);
        return Err(src.err(
            span,
            format!("check `{name}` depends on `{dep}`, which depends on it in turn"),
        ));
    }
    Ok(())
}

/// Whether `name` is a variable of the spec or of an environment, or `run_id`.
fn is_variable(
    name: &str,
    top_vars: &BTreeMap<String, Located>,
    environments: &BTreeMap<String, Environment>,
) -> bool {
    name == "run_id"
        || top_vars.contains_key(name)
        || environments.values().any(|e| e.vars.contains_key(name))
}

/// Captures: one name, one check, no variable's name.
fn captures(
    src: &Source<'_>,
    checks: &[Check],
    top_vars: &BTreeMap<String, Located>,
    environments: &BTreeMap<String, Environment>,
) -> Result<(), SpecError> {
    let mut captured_by: HashMap<&str, &str> = HashMap::new();
    for c in checks {
        for (cname, cap) in &c.spec.capture {
            let clash = is_variable(cname, top_vars, environments);
            if clash || captured_by.insert(cname, &c.name).is_some() {
                return Err(src.err(
                    Some(cap.span()),
                    format!(
                        "check `{}`: capture `{cname}` has the name of another variable or capture",
                        c.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `${name}`: a variable, or a capture of a check this one runs after.
fn references(
    path: &Path,
    checks: &[Check],
    top_vars: &BTreeMap<String, Located>,
    environments: &BTreeMap<String, Environment>,
) -> Result<(), SpecError> {
    // Each capture has one check (checked above).
    let captured_by: HashMap<&str, &str> = checks
        .iter()
        .flat_map(|c| c.spec.capture.keys().map(|n| (n.as_str(), c.name.as_str())))
        .collect();
    let graph: HashMap<String, Vec<String>> = checks
        .iter()
        .map(|c| (c.name.clone(), c.depends_on.clone()))
        .collect();
    for c in checks {
        let mut probe = c.spec.clone();
        let mut refs = Vec::new();
        // Already parsed once above; this cannot fail now.
        let _ = probe.for_each_string(&mut |s| {
            refs.extend(vars::references(s)?);
            Ok(())
        });
        let deps = ancestors(&c.name, &graph);
        for r in refs {
            let Ref::Plain(n) = r else { continue };
            if is_variable(&n, top_vars, environments) {
                continue;
            }
            let message = match captured_by.get(n.as_str()) {
                Some(by) if deps.contains(*by) => continue,
                Some(by) if *by == c.name => continue,
                Some(by) => format!(
                    "check `{}` uses `${{{n}}}`, captured by check `{by}`: add `{by}` to its depends-on",
                    c.name
                ),
                None => format!(
                    "check `{}` uses `${{{n}}}`, which is no variable, capture or run_id",
                    c.name
                ),
            };
            return Err(SpecError {
                path: path.to_path_buf(),
                line: Some(c.line),
                message,
            });
        }
    }
    Ok(())
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
