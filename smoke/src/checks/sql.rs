//! `kind = "postgres"` and `kind = "mysql"`: connect, run a query, compare its first value
//! (seed 000: "PostgreSQL accepting connections", "27 tables migrated"; seed 004: "TiDB
//! connected"), with the same `expect`.
//!
//! A read-only check (the default) runs its query in a read-only transaction that is rolled
//! back, so a smoke test in production cannot change data even with a careless query. The
//! engine's protocol is lifeboat's engine seam's (`lifeboat::engine::ask`: tokio-postgres, or
//! lifeboat-healthcheck's MySQL client on a blocking thread bounded by the check's timeout).

use std::time::Duration;

use lifeboat::engine::Engine;
use lifeboat::secret::SecretUrl;

use super::{ms, Ctx, Outcome};
use crate::spec::{Check, CheckSpec};

/// Run a `postgres` (`engine` PostgreSQL) or `mysql` check.
pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx, engine: Engine) -> Outcome {
    let url = match spec.url.as_ref().map(|u| u.get_ref().clone()) {
        Some(u) => SecretUrl::new(u),
        None => match &ctx.config.database.url {
            Some(u) => u.clone(),
            None => return Outcome::fail("no url and DATABASE_URL is not set"),
        },
    };
    let at = Engine::of_url(url.expose());
    if at != engine {
        return Outcome::fail(format!(
            "{} is a {} URL, and this check is kind = \"{}\"; use kind = \"{}\"",
            url.redacted(),
            at.name(),
            kind_of(engine),
            kind_of(at)
        ));
    }
    let query = match statement(check, spec) {
        Ok(q) => q,
        Err(o) => return o,
    };
    let answer = lifeboat::engine::ask(
        &url,
        spec.ca_file.as_deref(),
        query,
        check.read_only,
        check.timeout,
    )
    .await;
    match answer {
        Ok(a) => judge(&a.database, query, a.value.as_deref(), spec, a.took),
        Err(e) => Outcome::fail(e),
    }
}

fn kind_of(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
    }
}

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
