//! The spec, `smoke.toml`: parsed and checked whole before the first request is sent.
//!
//! A spec that is wrong is exit 2 and names its line: an unknown key (a typo such as
//! `expect.staus` must not turn an assertion off), a field that does not apply to the check's
//! kind, a dependency that does not exist or loops, a variable nobody defines, a regex that does
//! not compile. toml's parser gives every error a byte span; [`line_of`] turns it into a line.
//!
//! [`model`] holds what a checked spec is; [`parse`] checks it, in phases.

mod model;
mod parse;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use model::*;

/// A mistake in the spec, with the line it is on when known.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct SpecError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
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

/// The smallest spec, for the error that says there is none.
const MINIMAL_SPEC: &str = concat!(
    "    [environments.staging]\n",
    "    base-url = \"https://staging.example.com\"\n",
    "\n",
    "    [[check]]\n",
    "    name = \"health\"\n",
    "    url = \"/api/health\"\n",
    "    expect.status = 200",
);

/// The longest a check may wait.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl Spec {
    /// Read and check a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            path: path.to_path_buf(),
            line: None,
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot read the spec: there is no such file; give the spec with --spec FILE (default ./{}), a TOML file such as\n\n{MINIMAL_SPEC}\n\n(every field: docs/lifeboat-smoke.md; lifeboat-smoke --help has more)", lifeboat::config::settings::DEFAULT_SMOKE_SPEC)
            } else {
                format!("cannot read the spec: {e}")
            },
        })?;
        Self::parse(path, &text)
    }

    /// Parse and check a spec's text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SpecError> {
        parse::spec(path, text)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("smoke.toml"), text)
    }

    #[test]
    fn the_demo_spec_parses_and_read_only_is_inferred_or_declared() {
        let spec = parse(include_str!("../../../tests/fixtures/smoke.toml")).expect("parses");
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
