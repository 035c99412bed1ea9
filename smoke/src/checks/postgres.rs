//! `kind = "postgres"`: connect, run a query, compare its first value (seed 000: "PostgreSQL
//! accepting connections", "27 tables migrated").
//!
//! A read-only check (the default) runs its query in a `READ ONLY` transaction that is rolled
//! back, so a smoke test in production cannot change data even with a careless query.

use std::time::Instant;

use lifeboat::db::DbTarget;
use lifeboat::secret::SecretUrl;

use super::{Ctx, Outcome};
use crate::spec::{Check, CheckSpec};

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
    let query = match super::sql::statement(check, spec) {
        Ok(q) => q,
        Err(o) => return o,
    };
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
    super::sql::judge(target.database(), query, value.as_deref(), spec, took)
}
