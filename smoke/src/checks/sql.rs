//! What the `postgres` and `mysql` kinds share: the one statement a read-only check may run, and
//! the judgement of its first value against `expect`.

use std::time::Duration;

use super::{ms, Outcome};
use crate::spec::{Check, CheckSpec};

/// The query when the spec gives none: the server answers, the database exists.
const DEFAULT_QUERY: &str = "SELECT 1";

/// The check's query. A read-only check runs inside a read-only transaction; a second statement
/// after a `;` could end that transaction (`COMMIT; DELETE …`), so it gets one statement only.
pub fn statement<'a>(check: &Check, spec: &'a CheckSpec) -> Result<&'a str, Outcome> {
    let query = spec.query.as_deref().unwrap_or(DEFAULT_QUERY);
    let single = query.trim().trim_end_matches(';');
    if check.read_only && single.contains(';') {
        return Err(Outcome::fail(format!(
            "{query:?} holds several statements; a read-only check runs exactly one (no `;` inside)"
        )));
    }
    Ok(if check.read_only { single } else { query })
}

/// Compare the first value of the answer (`None`: no row, or SQL NULL) with `expect`.
pub fn judge(
    database: &str,
    query: &str,
    value: Option<&str>,
    spec: &CheckSpec,
    took: Duration,
) -> Outcome {
    let expect = spec
        .expect
        .as_ref()
        .map(|e| e.get_ref().clone())
        .unwrap_or_default();
    let shown = value.unwrap_or("no value");
    let mut failures = Vec::new();
    if let Some(want) = &expect.equals {
        if value != Some(want.as_str()) {
            failures.push(format!("expected {want:?}"));
        }
    }
    if expect.at_least.is_some() || expect.at_most.is_some() {
        match value.and_then(|v| v.trim().parse::<f64>().ok()) {
            None => failures.push("expected a number".into()),
            Some(n) => {
                if let Some(min) = expect.at_least {
                    if n < min {
                        failures.push(format!("expected at least {min}"));
                    }
                }
                if let Some(max) = expect.at_most {
                    if n > max {
                        failures.push(format!("expected at most {max}"));
                    }
                }
            }
        }
    }
    if let Some(max) = expect.max_ms {
        if took.as_millis() > u128::from(max) {
            failures.push(format!("took {}, more than {max} ms", ms(took)));
        }
    }
    let what = format!("{database} {}: {shown}", first_line(query));
    if failures.is_empty() {
        Outcome::pass(format!("{what} in {}", ms(took)))
    } else {
        Outcome::fail(format!("{what}, {}", failures.join("; ")))
    }
}

/// The query on one line, cut short, for messages.
fn first_line(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 60 {
        format!("{}…", flat.chars().take(60).collect::<String>())
    } else {
        flat
    }
}
