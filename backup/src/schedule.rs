//! `lifeboat-backup schedule`: a sidecar that schedules itself, for hosts without cron (seed
//! 001's `0 2 * * *` line, in a container beside the database).
//!
//! It runs in the foreground, and at each time of `LIFEBOAT_BACKUP_SCHEDULE` (a cron expression,
//! default `0 2 * * *`, in the time zone of `TZ`) takes a backup; at each time of
//! `LIFEBOAT_BACKUP_DRILL_SCHEDULE`, if set, a restore drill (`verify latest --restore-test`).
//! Each job is this same binary run as a child (`run`, or `verify`), with the same options and
//! environment: its own exit code, metrics, ping and mail, exactly as from cron.
//!
//! - Never two at once: jobs run one after the other; one due while another runs starts after it.
//! - A missed run is caught up once: the time of each job's last run is kept in
//!   `<backup dir>/.lifeboat-schedule`; when a scheduled time passed since (the host or the
//!   container was down), the job runs once at start, however many times were missed.
//! - SIGTERM or SIGINT (`docker stop`): a running job gets the same signal and stops as a backup
//!   stopped by hand does (its partial file removed, earlier backups untouched), then the
//!   scheduler exits 0. Between jobs it exits at once.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Local, Utc};
use croner::Cron;
use lifeboat::config::settings::{self, Setting};
use lifeboat::config::Config;
use lifeboat::exit::UsageError;
use lifeboat::lock::JobLock;
use lifeboat::signal::Stop;
use tracing::{error, info, warn};

/// The scheduler's record of each job's last run, in the backup directory.
pub const STATE_FILE: &str = ".lifeboat-schedule";

/// One scheduled job.
struct Job {
    /// `backup` or `drill`.
    name: &'static str,
    cron: Cron,
    /// What follows the shared options on the child's command line.
    args: &'static [&'static str],
}

/// Parse a cron expression of `setting`; a usage error naming it otherwise.
fn parse(setting: &Setting, expression: &str) -> anyhow::Result<Cron> {
    expression.parse::<Cron>().map_err(|e| {
        UsageError::new(format!(
            "{} = {expression:?} is not a cron expression ({e}); five fields, minute hour \
             day-of-month month day-of-week, as `0 2 * * *` (02:00 every day)",
            setting.var
        ))
        .into()
    })
}

/// The jobs the settings ask for.
fn jobs(config: &Config) -> anyhow::Result<Vec<Job>> {
    let mut jobs = vec![Job {
        name: "backup",
        cron: parse(&settings::LIFEBOAT_BACKUP_SCHEDULE, &config.backup.schedule)?,
        args: &["run"],
    }];
    if let Some(drill) = &config.backup.drill_schedule {
        jobs.push(Job {
            name: "drill",
            cron: parse(&settings::LIFEBOAT_BACKUP_DRILL_SCHEDULE, drill)?,
            args: &["verify", "latest", "--restore-test"],
        });
    }
    Ok(jobs)
}

/// Run the scheduler until SIGTERM or SIGINT. `args` is this process's command line.
pub fn run(config: &Config, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let jobs = jobs(config)?;
    let prefix = child_prefix(args)?;
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    crate::archive::ensure_dir(&config.backup.dir).with_context(|| {
        format!(
            "cannot create the backup directory {}",
            config.backup.dir.display()
        )
    })?;
    // One scheduler per directory: a second sidecar would run every job twice.
    let _lock = JobLock::acquire(&config.lock_dir, "schedule")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(schedule(config, &jobs, &exe, &prefix))
}

/// The options before `schedule` on our command line, which every job gets too.
fn child_prefix(args: &[OsString]) -> anyhow::Result<Vec<OsString>> {
    let at = args
        .iter()
        .rposition(|a| a == "schedule")
        .context("`schedule` is not on the command line")?;
    Ok(args[1..at].to_vec())
}

async fn schedule(
    config: &Config,
    jobs: &[Job],
    exe: &Path,
    prefix: &[OsString],
) -> anyhow::Result<ExitCode> {
    let stop = Stop::install("the scheduler", "no partial backup behind")?;
    let state_path = config.backup.dir.join(STATE_FILE);
    let mut state = read_state(&state_path);
    // Catch up once: a scheduled time that passed since the last run (the host was down).
    let now = Local::now();
    let mut due: Vec<&Job> = Vec::new();
    for job in jobs {
        match state.get(job.name) {
            Some(last) => {
                let last = last.with_timezone(&Local);
                if let Ok(missed) = job.cron.find_next_occurrence(&last, false) {
                    if missed <= now {
                        info!(
                            job = job.name,
                            "catching up the {} missed at {} (last run {})",
                            job.name,
                            missed.format("%Y-%m-%d %H:%M %Z"),
                            last.format("%Y-%m-%d %H:%M %Z")
                        );
                        due.push(job);
                    }
                }
            }
            None => {
                // The first start: nothing was missed yet; from now on it is recorded.
                state.insert(job.name.to_owned(), Utc::now());
            }
        }
    }
    write_state(&state_path, &state);
    loop {
        for job in due.drain(..) {
            state.insert(job.name.to_owned(), Utc::now());
            write_state(&state_path, &state);
            if !run_job(job, exe, prefix, &stop).await? {
                info!("stopped: the scheduler exits");
                return Ok(ExitCode::SUCCESS);
            }
        }
        // The next time of each job, from now: a run that took past a time skips it.
        let now = Local::now();
        let mut times = Vec::new();
        for job in jobs {
            let at = job
                .cron
                .find_next_occurrence(&now, false)
                .with_context(|| format!("the {} schedule has no next time", job.name))?;
            info!(job = job.name, next = %at.to_rfc3339(), "next {} at {}", job.name, at.format("%Y-%m-%d %H:%M:%S %Z"));
            times.push((at, job));
        }
        let Some(at) = times.iter().map(|(t, _)| *t).min() else {
            return Ok(ExitCode::SUCCESS);
        };
        let wait = (at - Local::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            signal = stop.wait() => {
                info!("stopped by {signal}, between jobs: the scheduler exits");
                return Ok(ExitCode::SUCCESS);
            }
        }
        // Every job due at that time, backup first.
        due = times
            .into_iter()
            .filter(|(t, _)| *t == at)
            .map(|(_, j)| j)
            .collect();
    }
}

/// Run one job as a child; false when a signal stopped it (or came while it ran).
async fn run_job(job: &Job, exe: &Path, prefix: &[OsString], stop: &Stop) -> anyhow::Result<bool> {
    info!(job = job.name, "starting the {}", job.name);
    let mut child = tokio::process::Command::new(exe)
        .args(prefix)
        .args(job.args)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let pid = child.id();
    let status = tokio::select! {
        status = child.wait() => status?,
        signal = stop.wait() => {
            info!("{signal}: stopping the running {} as a backup stopped by hand", job.name);
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let status = child.wait().await?;
            info!(job = job.name, code = status.code(), "the {} stopped", job.name);
            return Ok(false);
        }
    };
    if status.success() {
        info!(job = job.name, "the {} succeeded", job.name);
    } else {
        // Its own output said why, and its mail and ping went out; the scheduler goes on.
        error!(
            job = job.name,
            code = status.code(),
            "the {} failed (exit {})",
            job.name,
            status.code().unwrap_or(-1)
        );
    }
    Ok(true)
}

fn read_state(path: &Path) -> BTreeMap<String, DateTime<Utc>> {
    match lifeboat::files::read_own(path, 64 * 1024) {
        Ok(Some((text, _))) => serde_json::from_str(&text).unwrap_or_else(|e| {
            warn!(
                "{} cannot be read ({e}); no run is caught up",
                path.display()
            );
            BTreeMap::new()
        }),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            warn!("cannot read {}: {e}; no run is caught up", path.display());
            BTreeMap::new()
        }
    }
}

fn write_state(path: &Path, state: &BTreeMap<String, DateTime<Utc>>) {
    let text = serde_json::to_string_pretty(state).unwrap_or_default() + "\n";
    if let Err(e) = lifeboat::files::write_atomic(path, text.as_bytes()) {
        warn!(
            "cannot record the runs in {}: {e}; a missed run may not be caught up",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_gets_the_options_before_schedule() {
        let args: Vec<OsString> = ["lifeboat-backup", "--dir", "schedule", "-q", "schedule"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(child_prefix(&args).expect("prefix"), args[1..4].to_vec());
    }

    #[test]
    fn a_bad_expression_names_its_variable() {
        let e = parse(&settings::LIFEBOAT_BACKUP_SCHEDULE, "every night").expect_err("bad");
        assert!(e.to_string().contains("LIFEBOAT_BACKUP_SCHEDULE"), "{e}");
        assert!(parse(&settings::LIFEBOAT_BACKUP_SCHEDULE, "0 2 * * *").is_ok());
    }
}
