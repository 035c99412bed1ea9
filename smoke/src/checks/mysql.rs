//! `kind = "mysql"`: connect to MySQL, MariaDB or TiDB, run a query, compare its first value
//! (seed 004: "TiDB connected"), with the same `expect` as `postgres`.
//!
//! A read-only check (the default) runs its query in `START TRANSACTION READ ONLY` and rolls it
//! back. The protocol is lifeboat-healthcheck's (no client library); it runs on a blocking
//! thread, bounded by the check's timeout, and reads at most a few rows of answer.

use std::time::Instant;

use lifeboat::secret::SecretUrl;
use lifeboat_healthcheck::mysql::{Conn, Options};
use lifeboat_healthcheck::Deadline;

use super::{Ctx, Outcome};
use crate::spec::{Check, CheckSpec};

/// A check compares one value; a query answering more rows than this is cut short with an error.
const MAX_ROWS: usize = 100;
const MAX_BYTES: usize = 1024 * 1024;

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let url = match spec.url.as_ref().map(|u| u.get_ref().clone()) {
        Some(u) => SecretUrl::new(u),
        None => match &ctx.config.database.url {
            Some(u) => u.clone(),
            None => return Outcome::fail("no url and DATABASE_URL is not set"),
        },
    };
    let mut options = match Options::from_url(url.expose()) {
        Ok(o) => o,
        Err(e) => return Outcome::fail(e),
    };
    if let Some(ca) = &spec.ca_file {
        options.ssl_ca = Some(ca.into());
    }
    let query = match super::sql::statement(check, spec) {
        Ok(q) => q.to_owned(),
        Err(o) => return o,
    };
    let read_only = check.read_only;
    let deadline = Deadline::after(check.timeout);
    let database = options.database.clone().unwrap_or_default();
    let shown = url.redacted();
    let sql = query.clone();
    let result = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut conn = Conn::connect(&options, deadline)?;
        if read_only {
            conn.query("START TRANSACTION READ ONLY", 0, 4096)?;
        }
        let answer = conn.query(&sql, MAX_ROWS, MAX_BYTES);
        if read_only && answer.is_ok() {
            // The transaction only guarded the query; nothing in it is kept.
            let _ = conn.query("ROLLBACK", 0, 4096);
        }
        let took = started.elapsed();
        conn.close();
        answer.map(|a| (a, took))
    })
    .await;
    let (answer, took) = match result {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Outcome::fail(format!("{shown}: {query:?} failed: {e}")),
        Err(e) => return Outcome::fail(format!("{shown}: the check stopped: {e}")),
    };
    let value = answer
        .rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten();
    super::sql::judge(&database, &query, value.as_deref(), spec, took)
}
