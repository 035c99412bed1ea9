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
pub async fn execute(
    plan: Plan,
    ctx: Arc<Ctx>,
    printer: &Printer,
    stop: &lifeboat::signal::Stop,
) -> RunReport {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let mut s = Scheduler::new(plan, ctx, printer);
    // The scheduler's loop: start what is ready, wait for one, record it.
    loop {
        s.start_ready();
        s.start_cleanups();
        let joined = tokio::select! {
            joined = s.tasks.join_next_with_id() => joined,
            signal = stop.wait(), if s.stopped.is_none() => {
                s.stopped = Some(signal);
                for handle in s.running.values() {
                    handle.abort();
                }
                continue;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        s.record(joined);
    }
    s.last_cleanups().await;

    RunReport {
        run_id: s.ctx.run_id.clone(),
        environment: s.environment,
        spec: s.spec,
        started_at,
        duration: started.elapsed(),
        results: s.results.into_iter().flatten().collect(),
        cleanups: s.cleanups,
        stopped: s.stopped,
        read_only: s.read_only,
    }
}

/// The scheduler's state while the run goes on.
struct Scheduler<'p> {
    checks: Vec<Arc<Check>>,
    index: HashMap<String, usize>,
    scope: Scope,
    env: Arc<HashMap<String, String>>,
    results: Vec<Option<CheckResult>>,
    launched: Vec<bool>,
    /// Which checks depend on each one.
    dependents: Vec<Vec<usize>>,
    /// The order ready checks start in.
    order: Vec<usize>,
    /// Whether a check's cleanups were started, and ended.
    cleaning: Vec<bool>,
    cleaned: Vec<bool>,
    cleanups: Vec<CleanupResult>,
    tasks: JoinSet<Done>,
    task_of: HashMap<tokio::task::Id, usize>,
    /// The check tasks under way, to abort on a signal (cleanup tasks are left to finish).
    running: HashMap<tokio::task::Id, tokio::task::AbortHandle>,
    stopped: Option<&'static str>,
    ctx: Arc<Ctx>,
    printer: &'p Printer,
    read_only: bool,
    environment: Option<String>,
    spec: PathBuf,
}

impl<'p> Scheduler<'p> {
    fn new(plan: Plan, ctx: Arc<Ctx>, printer: &'p Printer) -> Self {
        let checks: Vec<Arc<Check>> = plan.checks.into_iter().map(Arc::new).collect();
        let index: HashMap<String, usize> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut scope = Scope { values: plan.vars };
        scope.values.insert("run_id".into(), ctx.run_id.clone());
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
        let n = checks.len();
        Self {
            checks,
            index,
            scope,
            env: Arc::new(plan.env),
            results: vec![None; n],
            launched: vec![false; n],
            dependents,
            order,
            cleaning: vec![false; n],
            cleaned: vec![false; n],
            cleanups: Vec::new(),
            tasks: JoinSet::new(),
            task_of: HashMap::new(),
            running: HashMap::new(),
            stopped: None,
            ctx,
            printer,
            read_only: plan.read_only,
            environment: plan.environment,
            spec: plan.spec,
        }
    }

    /// The `i`th check's result, its message scrubbed.
    fn finish(
        &self,
        i: usize,
        status: Status,
        duration: Duration,
        attempts: u32,
        message: &str,
    ) -> CheckResult {
        let c = &self.checks[i];
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
            message: self.ctx.redactor.scrub(message),
        }
    }

    /// Record and show the `i`th check's result.
    fn record_result(&mut self, i: usize, r: CheckResult) {
        self.printer.check(&r);
        self.results[i] = Some(r);
    }

    /// Start (or skip) every check whose dependencies are done; a skip can free others.
    fn start_ready(&mut self) {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for k in 0..self.order.len() {
                let i = self.order[k];
                if self.launched[i] {
                    continue;
                }
                let deps: Vec<usize> = self.checks[i]
                    .depends_on
                    .iter()
                    .filter_map(|d| self.index.get(d.as_str()).copied())
                    .collect();
                if deps.iter().any(|d| self.results[*d].is_none()) {
                    continue;
                }
                self.launched[i] = true;
                progressed = true;
                if let Some(message) = self.skip_reason(i, &deps) {
                    let r = self.finish(i, Status::Skipped, Duration::ZERO, 0, &message);
                    self.record_result(i, r);
                    continue;
                }
                self.launch(i);
            }
        }
    }

    /// Why the `i`th check (its dependencies `deps` done) does not run, if it does not.
    fn skip_reason(&self, i: usize, deps: &[usize]) -> Option<String> {
        let blocked = deps
            .iter()
            .map(|d| self.results[*d].as_ref().expect("finished"))
            .find(|r| r.status != Status::Passed);
        if let Some(signal) = self.stopped {
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
        } else if self.read_only && !self.checks[i].read_only {
            Some(format!(
                "skipped: it writes, and environment `{}` is read-only (--allow-writes runs it)",
                self.environment.as_deref().unwrap_or("-")
            ))
        } else {
            None
        }
    }

    /// Start the `i`th check's attempts, or fail it if its values cannot be filled in.
    fn launch(&mut self, i: usize) {
        let c = &self.checks[i];
        match prepare(c, &self.scope, &self.env, &self.ctx.redactor) {
            Ok((spec, cleanup)) => {
                let cleanup = cleanup.map(|template| CleanupTemplate {
                    template,
                    values: self.scope.values.clone(),
                    env: Arc::clone(&self.env),
                    ca_file: spec.ca_file.clone(),
                });
                let attempts = attempts(Arc::clone(c), spec, cleanup, Arc::clone(&self.ctx));
                let handle = self.tasks.spawn(async move {
                    let (outcome, n, took) = attempts.await;
                    Done::Check(outcome, n, took)
                });
                self.task_of.insert(handle.id(), i);
                self.running.insert(handle.id(), handle);
            }
            Err(e) => {
                let r = self.finish(i, Status::Failed, Duration::ZERO, 0, &e);
                self.record_result(i, r);
            }
        }
    }

    /// Start the cleanups nothing can need any more; one with none is done at once, which may
    /// free the cleanups of what it depends on.
    fn start_cleanups(&mut self) {
        let mut freed = true;
        while freed {
            freed = false;
            for i in 0..self.checks.len() {
                if self.cleaning[i]
                    || self.results[i].is_none()
                    || self.dependents[i].iter().any(|j| !self.cleaned[*j])
                {
                    continue;
                }
                self.cleaning[i] = true;
                let pending = self.ctx.cleanups.take_for(&self.checks[i].name);
                if pending.is_empty() {
                    self.cleaned[i] = true;
                    freed = true;
                    continue;
                }
                let ctx = Arc::clone(&self.ctx);
                let handle = self.tasks.spawn(async move {
                    let mut done = Vec::new();
                    for cleanup in pending {
                        done.push(run_cleanup(&cleanup, &ctx).await);
                    }
                    Done::Cleaned(done)
                });
                self.task_of.insert(handle.id(), i);
            }
        }
    }

    /// Record what a task ended with: a check's result, or its cleanups'.
    fn record(&mut self, joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>) {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        self.running.remove(&id);
        let (i, done) = match joined {
            Ok((id, done)) => (self.task_of[&id], done),
            Err(e) if self.cleaning[self.task_of[&e.id()]] => {
                (self.task_of[&e.id()], Done::Cleaned(Vec::new()))
            }
            Err(e) if e.is_cancelled() => (
                self.task_of[&e.id()],
                Done::Check(
                    Outcome::fail(format!(
                        "stopped by {}; what it sent before, if anything, is cleaned up only when the check had captured what its cleanup needs",
                        self.stopped.unwrap_or("a signal")
                    )),
                    1,
                    Duration::ZERO,
                ),
            ),
            Err(e) => (
                self.task_of[&e.id()],
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
                    self.printer.cleanup(&result);
                    self.cleanups.push(result);
                }
                self.cleaned[i] = true;
                return;
            }
        };
        for cap in &outcome.captures {
            self.scope
                .values
                .insert(cap.name.clone(), cap.value.clone());
        }
        let status = if outcome.ok {
            Status::Passed
        } else {
            Status::Failed
        };
        let r = self.finish(i, status, took, n, &outcome.message);
        self.record_result(i, r);
    }

    /// After the loop: the cleanups that could not be sent, said, and those no check's turn
    /// took (none, unless a cleanup registered late) run now, newest first.
    async fn last_cleanups(&mut self) {
        let ctx = Arc::clone(&self.ctx);
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
            self.printer.cleanup(&result);
            self.cleanups.push(result);
        }
        for cleanup in ctx.cleanups.take_all() {
            let result = run_cleanup(&cleanup, &ctx).await;
            self.printer.cleanup(&result);
            self.cleanups.push(result);
        }
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
