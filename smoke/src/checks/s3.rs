//! `kind = "s3"`: put a probe object, read it back, delete it (seed 000: "an upload to MinIO
//! works"). The bucket and keys are lifeboat's S3 settings (`S3_*`, profile included); the probe
//! lives under the prefix at `smoke/<run id>/<check>.txt`, so it is never another tool's object,
//! and it is removed at the end of the run even when the check timed out half-way.

use std::time::Instant;

use super::{ms, Cleanup, Ctx, Outcome};
use crate::spec::Check;

pub async fn run(check: &Check, ctx: &Ctx) -> Outcome {
    let settings = match ctx.config.require_s3("the s3 check") {
        Ok(s) => s,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let bucket = lifeboat::s3::Bucket::new(&settings);
    let name = format!("smoke/{}/{}.txt", ctx.run_id, check.name);
    let shown = format!("s3://{}/{}", settings.bucket, bucket.key(&name));
    let body = format!(
        "lifeboat-smoke probe, run {}, check {}\n",
        ctx.run_id, check.name
    );
    let started = Instant::now();
    let pending = ctx.cleanups.add(Cleanup::S3 {
        check: check.name.clone(),
        settings: settings.clone(),
        name: name.clone(),
    });
    if let Err(e) = bucket.put(&name, body.clone().into_bytes()).await {
        ctx.cleanups.remove(pending);
        return Outcome::fail(e.to_string());
    }
    // Twice what was written: more is a wrong answer, not something to hold in memory.
    let read = bucket.get(&name, body.len() * 2 + 1024).await;
    let deleted = bucket.delete(&name).await;
    if deleted.is_ok() {
        ctx.cleanups.remove(pending);
    }
    let took = started.elapsed();
    match (read, deleted) {
        (Err(e), _) => Outcome::fail(format!("put {shown}, then {e}")),
        (Ok(got), _) if got != body.as_bytes() => Outcome::fail(format!(
            "{shown} read back {} bytes that differ from the {} written",
            got.len(),
            body.len()
        )),
        (Ok(_), Err(e)) => Outcome::fail(format!("put and read back {shown}, then {e}")),
        (Ok(_), Ok(())) => {
            let mut outcome = Outcome::pass(format!(
                "put, read back and deleted {shown} in {}",
                ms(took)
            ));
            if let Some(max) = check.spec.expect.as_ref().and_then(|e| e.get_ref().max_ms) {
                if took.as_millis() > u128::from(max) {
                    outcome =
                        Outcome::fail(format!("{shown}: took {}, more than {max} ms", ms(took)));
                }
            }
            outcome
        }
    }
}
