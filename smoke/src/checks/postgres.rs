//! `kind = "postgres"`: connect, run a query, compare its first value (seed 000: "PostgreSQL
//! accepting connections", "27 tables migrated").
//!
//! A read-only check (the default) runs its query in a `READ ONLY` transaction that is rolled
//! back, so a smoke test in production cannot change data even with a careless query.

use std::time::Instant;

use lifeboat::db::DbTarget;
use lifeboat::secret::SecretUrl;

use super::{ms, Ctx, Outcome};
use crate::spec::{Check, CheckSpec};

/// The query when the spec gives none: the server answers, the database exists.
const DEFAULT_QUERY: &str = "SELECT 1";

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let url = match spec.url.as_ref().map(|u| u.get_ref().clone()) {
        Some(u) => SecretUrl::new(u),
        None => match &ctx.config.database.url {
            Some(u) => u.clone(),
            None => return Outcome::fail("no url and DATABASE_URL is not set"),
        },
    };
    let target = match DbTarget::from_url(&url) {
        Ok(t) => t,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let query = spec.query.as_deref().unwrap_or(DEFAULT_QUERY);
    // A read-only check runs inside `BEGIN READ ONLY`; a second statement after a `;` could
    // end that transaction (`COMMIT; DELETE …`), so it gets one statement only.
    let single = query.trim().trim_end_matches(';');
    if check.read_only && single.contains(';') {
        return Outcome::fail(format!(
            "{query:?} holds several statements; a read-only check runs exactly one (no `;` inside)"
        ));
    }
    let query = if check.read_only { single } else { query };
    let started = Instant::now();
    let client = match target.connect().await {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let result = async {
        if check.read_only {
            client.batch_execute("BEGIN READ ONLY").await?;
        }
        let messages = client.simple_query(query).await;
        if check.read_only {
            // The transaction only guarded the query; nothing in it is kept.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        messages
    }
    .await;
    let took = started.elapsed();
    let messages = match result {
        Ok(m) => m,
        Err(e) => {
            return Outcome::fail(format!(
                "{target}: {query:?} failed: {}",
                lifeboat::db::describe(&e)
            ))
        }
    };
    let value: Option<String> = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some(row.try_get(0).ok().flatten().map(str::to_owned))
            }
            _ => None,
        })
        .flatten();
    let expect = spec
        .expect
        .as_ref()
        .map(|e| e.get_ref().clone())
        .unwrap_or_default();
    let shown = value.clone().unwrap_or_else(|| "no value".into());
    let mut failures = Vec::new();
    if let Some(want) = &expect.equals {
        if value.as_deref() != Some(want.as_str()) {
            failures.push(format!("expected {want:?}"));
        }
    }
    if expect.at_least.is_some() || expect.at_most.is_some() {
        match value.as_deref().and_then(|v| v.trim().parse::<f64>().ok()) {
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
    let what = format!("{} {}: {shown}", target.database(), first_line(query));
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
