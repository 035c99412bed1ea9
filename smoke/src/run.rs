//! The scheduler: every check starts as soon as the checks it depends on have passed, so
//! independent checks run at the same time and the whole run takes about as long as its
//! longest chain, not the sum of its checks (seed 002's smoke_tests.sh ran them one by one).
//! Of the checks ready at once, those with the longest chain waiting on them go first.
//!
//! A check whose dependency failed or was skipped is skipped, and says which. In a read-only
//! environment (production, unless `--allow-writes`) a check that writes is skipped before it
//! sends anything. Values a check captured are there for the checks that depend on it (and only
//! for them: the spec refuses any other use). So a check's cleanups run, newest first, as soon
//! as it and every check that depends on it have ended, and their cleanups too, whatever
//! happened: probe data is gone as soon as nothing can need it, never left behind silently, and
//! the run does not wait for the slowest chain before it cleans up.
//!
//! SIGTERM or Ctrl-C (a cancelled CI job, `timeout`) stops the checks under way, starts no more,
//! and runs every cleanup registered so far (each bounded by [`CLEANUP_LIMIT`]) before the run
//! ends failed: probe data is not left in production because a job was cancelled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::checks::{self, http, Cleanup, Ctx, Outcome};
use crate::report::Printer;
use crate::spec::{Check, CheckSpec, CleanupSpec, Kind};
use crate::vars::{self, Ref};

/// The longest a cleanup may take.
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's result, its message already scrubbed of secrets.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub kind: Kind,
    pub line: usize,
    pub tags: Vec<String>,
    pub depends_on: Vec<String>,
    pub read_only: bool,
    pub status: Status,
    pub duration: Duration,
    pub attempts: u32,
    pub message: String,
}

/// A cleanup's result.
#[derive(Debug, Clone)]
pub struct CleanupResult {
    pub check: String,
    pub what: String,
    /// Sent, and it failed: why.
    pub error: Option<String>,
    /// Never sent, because an attempt of the check failed before capturing what the cleanup
    /// needs: why, and that what the attempt created (if anything) is left behind. A warning,
    /// not a failure of the run: the check itself failed.
    pub not_sent: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    pub environment: Option<String>,
    pub spec: PathBuf,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    /// In the spec's order.
    pub results: Vec<CheckResult>,
    pub cleanups: Vec<CleanupResult>,
    /// The signal that stopped the run, if one did.
    pub stopped: Option<&'static str>,
    /// Whether checks that write were skipped (a read-only environment).
    pub read_only: bool,
}

impl RunReport {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// Every check passed or was skipped by choice, every cleanup worked, and no signal
    /// stopped the run.
    pub fn success(&self) -> bool {
        self.stopped.is_none()
            && self.count(Status::Failed) == 0
            && self.cleanups.iter().all(|c| c.error.is_none())
    }
}

/// What to run, where, with which values.
pub struct Plan {
    /// The selected checks, in the spec's order, with what they depend on.
    pub checks: Vec<Check>,
    pub environment: Option<String>,
    /// Writes are skipped (a read-only environment without `--allow-writes`).
    pub read_only: bool,
    /// Spec variables, resolved.
    pub vars: HashMap<String, String>,
    /// The environment (process over `.env`), read once.
    pub env: HashMap<String, String>,
    pub spec: PathBuf,
}

/// The values `${…}` resolves to while the run goes on.
struct Scope {
    values: HashMap<String, String>,
}

fn lookup<'a>(
    scope: &'a Scope,
    env: &'a HashMap<String, String>,
    redactor: &'a vars::Redactor,
) -> impl FnMut(&Ref) -> Result<String, String> + 'a {
    move |r| match r {
        Ref::Plain(name) => scope
            .values
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`${{{name}}}` has no value")),
        Ref::Env {
            name,
            default,
            secret,
        } => {
            let value = env
                .get(name)
                .cloned()
                .or_else(|| default.clone())
                .ok_or_else(|| format!("{name} is not set in the environment"))?;
            if *secret {
                redactor.add(&value);
            }
            Ok(value)
        }
    }
}

/// A check's spec with its values filled in, and its cleanup template held back until the
/// check has captured what the cleanup needs.
fn prepare(
    check: &Check,
    scope: &Scope,
    env: &HashMap<String, String>,
    redactor: &vars::Redactor,
) -> Result<(CheckSpec, Option<CleanupSpec>), String> {
    let mut spec = check.spec.clone();
    let cleanup = spec.cleanup.take().map(toml::Spanned::into_inner);
    let mut resolve = lookup(scope, env, redactor);
    spec.for_each_string(&mut |s| {
        *s = vars::interpolate(s, &mut resolve)?;
        Ok(())
    })?;
    Ok((spec, cleanup))
}

/// A check's `cleanup` as written, and the values it may use: those of the checks before it
/// and, for each attempt, what that attempt captured.
struct CleanupTemplate {
    template: CleanupSpec,
    values: HashMap<String, String>,
    env: Arc<HashMap<String, String>>,
    ca_file: Option<String>,
}

/// Attempts until the check passes, its retries are spent and its wait (until ready) is over.
/// Each attempt may create something (a retried POST creates again), so each one registers its
/// own cleanup, filled in with what it captured.
async fn attempts(
    check: Arc<Check>,
    spec: CheckSpec,
    cleanup: Option<CleanupTemplate>,
    ctx: Arc<Ctx>,
) -> (Outcome, u32, Duration) {
    let started = Instant::now();
    let deadline = check.wait.map(|w| started + w);
    let mut n = 0;
    loop {
        n += 1;
        let (outcome, timed_out) =
            match tokio::time::timeout(check.timeout, checks::run(&check, &spec, &ctx)).await {
                Ok(o) => (o, false),
                Err(_) => (
                    Outcome::fail(format!(
                        "no result within its timeout of {}",
                        checks::ms(check.timeout)
                    )),
                    true,
                ),
            };
        if let Some(cleanup) = &cleanup {
            register_cleanup(&check, cleanup, &outcome, timed_out, &ctx);
        }
        let more =
            n <= check.retries || deadline.is_some_and(|d| Instant::now() + check.retry_delay < d);
        if outcome.ok || !more {
            return (outcome, n, started.elapsed());
        }
        tracing::debug!(check = %check.name, attempt = n, "retrying");
        tokio::time::sleep(check.retry_delay).await;
    }
}

/// Run the plan; never fails (every failure is a check's result).
// The scheduler's loop reads best whole: start what is ready, wait for one, record it.
#[allow(clippy::too_many_lines)]
pub async fn execute(
    plan: Plan,
    ctx: Arc<Ctx>,
    printer: &Printer,
    stop: &lifeboat::signal::Stop,
) -> RunReport {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let checks: Vec<Arc<Check>> = plan.checks.into_iter().map(Arc::new).collect();
    let index: HashMap<&str, usize> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut scope = Scope { values: plan.vars };
    scope.values.insert("run_id".into(), ctx.run_id.clone());
    let env = Arc::new(plan.env);
    let mut results: Vec<Option<CheckResult>> = vec![None; checks.len()];
    let mut launched = vec![false; checks.len()];
    // Which checks depend on each one, and whether a check's cleanups were started and ended.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); checks.len()];
    for (j, c) in checks.iter().enumerate() {
        for d in &c.depends_on {
            if let Some(&i) = index.get(d.as_str()) {
                dependents[i].push(j);
            }
        }
    }
    // Ready checks start longest chain first: what others wait for reaches the app before
    // what nothing waits for (as a build tool starts its critical path first).
    let order = chain_first(&dependents);
    let mut cleaning = vec![false; checks.len()];
    let mut cleaned = vec![false; checks.len()];
    let mut cleanups = Vec::new();
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut task_of = HashMap::new();
    // The check tasks under way, to abort on a signal (cleanup tasks are left to finish).
    let mut running = HashMap::new();
    let mut stopped: Option<&'static str> = None;

    let finish = |i: usize, status: Status, duration: Duration, attempts: u32, message: &str| {
        let c = &checks[i];
        CheckResult {
            name: c.name.clone(),
            kind: c.kind,
            line: c.line,
            tags: c.tags.clone(),
            depends_on: c.depends_on.clone(),
            read_only: c.read_only,
            status,
            duration,
            attempts,
            message: ctx.redactor.scrub(message),
        }
    };

    loop {
        // Start (or skip) every check whose dependencies are done; a skip can free others.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for &i in &order {
                let c = &checks[i];
                if launched[i] {
                    continue;
                }
                let deps: Vec<usize> = c
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect();
                if deps.iter().any(|d| results[*d].is_none()) {
                    continue;
                }
                launched[i] = true;
                progressed = true;
                let blocked = deps
                    .iter()
                    .map(|d| results[*d].as_ref().expect("finished"))
                    .find(|r| r.status != Status::Passed);
                let skip = if let Some(signal) = stopped {
                    Some(format!("not run: the run was stopped by {signal}"))
                } else if let Some(dep) = blocked {
                    Some(format!(
                        "skipped: it depends on `{}`, which {}",
                        dep.name,
                        if dep.status == Status::Failed {
                            "failed"
                        } else {
                            "was skipped"
                        }
                    ))
                } else if plan.read_only && !c.read_only {
                    Some(format!(
                        "skipped: it writes, and environment `{}` is read-only (--allow-writes runs it)",
                        plan.environment.as_deref().unwrap_or("-")
                    ))
                } else {
                    None
                };
                if let Some(message) = skip {
                    let r = finish(i, Status::Skipped, Duration::ZERO, 0, &message);
                    printer.check(&r);
                    results[i] = Some(r);
                    continue;
                }
                match prepare(c, &scope, &env, &ctx.redactor) {
                    Ok((spec, cleanup)) => {
                        let cleanup = cleanup.map(|template| CleanupTemplate {
                            template,
                            values: scope.values.clone(),
                            env: Arc::clone(&env),
                            ca_file: spec.ca_file.clone(),
                        });
                        let attempts = attempts(Arc::clone(c), spec, cleanup, Arc::clone(&ctx));
                        let handle = tasks.spawn(async move {
                            let (outcome, n, took) = attempts.await;
                            Done::Check(outcome, n, took)
                        });
                        task_of.insert(handle.id(), i);
                        running.insert(handle.id(), handle);
                    }
                    Err(e) => {
                        let r = finish(i, Status::Failed, Duration::ZERO, 0, &e);
                        printer.check(&r);
                        results[i] = Some(r);
                    }
                }
            }
        }
        // Start the cleanups nothing can need any more; one with none is done at once, which
        // may free the cleanups of what it depends on.
        let mut freed = true;
        while freed {
            freed = false;
            for i in 0..checks.len() {
                if cleaning[i] || results[i].is_none() || dependents[i].iter().any(|j| !cleaned[*j])
                {
                    continue;
                }
                cleaning[i] = true;
                let pending = ctx.cleanups.take_for(&checks[i].name);
                if pending.is_empty() {
                    cleaned[i] = true;
                    freed = true;
                    continue;
                }
                let ctx = Arc::clone(&ctx);
                let handle = tasks.spawn(async move {
                    let mut done = Vec::new();
                    for cleanup in pending {
                        done.push(run_cleanup(&cleanup, &ctx).await);
                    }
                    Done::Cleaned(done)
                });
                task_of.insert(handle.id(), i);
            }
        }
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            signal = stop.wait(), if stopped.is_none() => {
                stopped = Some(signal);
                for handle in running.values() {
                    handle.abort();
                }
                continue;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        running.remove(&id);
        let (i, done) = match joined {
            Ok((id, done)) => (task_of[&id], done),
            Err(e) if cleaning[task_of[&e.id()]] => (task_of[&e.id()], Done::Cleaned(Vec::new())),
            Err(e) if e.is_cancelled() => (
                task_of[&e.id()],
                Done::Check(
                    Outcome::fail(format!(
                        "stopped by {}; what it sent before, if anything, is cleaned up only when the check had captured what its cleanup needs",
                        stopped.unwrap_or("a signal")
                    )),
                    1,
                    Duration::ZERO,
                ),
            ),
            Err(e) => (
                task_of[&e.id()],
                Done::Check(
                    Outcome::fail(
                        "the check stopped unexpectedly (a bug in lifeboat-smoke; please report it)",
                    ),
                    1,
                    Duration::ZERO,
                ),
            ),
        };
        let (outcome, n, took) = match done {
            Done::Check(outcome, n, took) => (outcome, n, took),
            Done::Cleaned(done) => {
                for result in done {
                    printer.cleanup(&result);
                    cleanups.push(result);
                }
                cleaned[i] = true;
                continue;
            }
        };
        for cap in &outcome.captures {
            scope.values.insert(cap.name.clone(), cap.value.clone());
        }
        let status = if outcome.ok {
            Status::Passed
        } else {
            Status::Failed
        };
        let r = finish(i, status, took, n, &outcome.message);
        printer.check(&r);
        results[i] = Some(r);
    }

    for n in ctx.cleanups.take_not_sent() {
        let attempts = if n.attempts > 1 {
            format!(" ({} attempts)", n.attempts)
        } else {
            String::new()
        };
        let result = CleanupResult {
            check: n.check,
            what: ctx.redactor.scrub(&n.what),
            error: None,
            not_sent: Some(ctx.redactor.scrub(&format!(
                "{}{attempts}; what it created, if anything, is left behind",
                n.why
            ))),
        };
        printer.cleanup(&result);
        cleanups.push(result);
    }
    // What no check's turn took (none, unless a cleanup registered late): now, newest first.
    for cleanup in ctx.cleanups.take_all() {
        let result = run_cleanup(&cleanup, &ctx).await;
        printer.cleanup(&result);
        cleanups.push(result);
    }

    RunReport {
        run_id: ctx.run_id.clone(),
        environment: plan.environment,
        spec: plan.spec,
        started_at,
        duration: started.elapsed(),
        results: results.into_iter().flatten().collect(),
        cleanups,
        stopped,
        read_only: plan.read_only,
    }
}

/// Every check's index, those with the longest chain of checks waiting on them first (then in
/// the spec's order).
fn chain_first(dependents: &[Vec<usize>]) -> Vec<usize> {
    fn height(i: usize, dependents: &[Vec<usize>], memo: &mut [Option<usize>]) -> usize {
        if let Some(h) = memo[i] {
            return h;
        }
        // The spec refuses dependency loops; the memo is set first so one could not recurse.
        memo[i] = Some(1);
        let h = 1 + dependents[i]
            .iter()
            .map(|&j| height(j, dependents, memo))
            .max()
            .unwrap_or(0);
        memo[i] = Some(h);
        h
    }
    let mut memo = vec![None; dependents.len()];
    let heights: Vec<usize> = (0..dependents.len())
        .map(|i| height(i, dependents, &mut memo))
        .collect();
    let mut order: Vec<usize> = (0..dependents.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(heights[i]));
    order
}

/// What a task of the scheduler ended with: a check's attempts, or a check's cleanups.
enum Done {
    Check(Outcome, u32, Duration),
    Cleaned(Vec<CleanupResult>),
}

/// Send one cleanup; its result, scrubbed of secrets.
async fn run_cleanup(cleanup: &Cleanup, ctx: &Ctx) -> CleanupResult {
    CleanupResult {
        check: cleanup.check().to_owned(),
        what: ctx.redactor.scrub(&cleanup.describe()),
        error: match tokio::time::timeout(CLEANUP_LIMIT, cleanup.run(ctx)).await {
            Ok(ran) => ran.err().map(|e| ctx.redactor.scrub(&e)),
            Err(_) => Some(format!(
                "it did not end within {} s; what it should remove may be left",
                CLEANUP_LIMIT.as_secs()
            )),
        },
        not_sent: None,
    }
}

/// Fill in a check's cleanup with what one attempt captured, and register it. One that cannot
/// be filled in means the attempt failed before its capture: when the app answered (or the
/// attempt timed out, answered or not) it may have created something, and that is said; when
/// the app never answered (the connection failed) it created nothing.
fn register_cleanup(
    check: &Check,
    cleanup: &CleanupTemplate,
    outcome: &Outcome,
    timed_out: bool,
    ctx: &Ctx,
) {
    let template = &cleanup.template;
    let method = template
        .method
        .clone()
        .unwrap_or_else(|| "DELETE".into())
        .to_ascii_uppercase();
    let mut scope = Scope {
        values: cleanup.values.clone(),
    };
    for cap in &outcome.captures {
        scope.values.insert(cap.name.clone(), cap.value.clone());
    }
    let mut resolve = lookup(&scope, &cleanup.env, &ctx.redactor);
    let filled = vars::interpolate(&template.url, &mut resolve)
        .and_then(|url| http::resolve_url(ctx, &url))
        .and_then(|url| {
            let headers = template
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), vars::interpolate(v, &mut resolve)?)))
                .collect::<Result<std::collections::BTreeMap<_, _>, String>>()?;
            Ok((url, headers))
        });
    match filled {
        Ok((url, headers)) => {
            ctx.cleanups.add(Cleanup::Http {
                check: check.name.clone(),
                method,
                url,
                headers,
                ca_file: cleanup.ca_file.clone(),
            });
        }
        Err(e) if outcome.answered || timed_out => ctx.cleanups.not_sent(
            &check.name,
            format!("{method} {}", template.url),
            format!(
                "not sent: {e}, as the attempt {} before its capture",
                if timed_out { "timed out" } else { "failed" }
            ),
        ),
        Err(e) => tracing::debug!(
            check = %check.name,
            "no cleanup: {e}; the app did not answer, so it created nothing"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::chain_first;

    #[test]
    fn checks_that_others_wait_for_start_first_then_in_the_spec_s_order() {
        // 0 alone; 1 <- 2 <- 3 (a chain of three); 4 <- 5.
        let dependents = vec![vec![], vec![2], vec![3], vec![], vec![5], vec![]];
        assert_eq!(chain_first(&dependents), vec![1, 2, 4, 0, 3, 5]);
    }
}
