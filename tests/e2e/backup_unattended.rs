//! Backups that keep themselves honest unattended, against the real stack: retention that
//! deletes nothing after a shrunken or broken newest backup; restore drills that leave evidence
//! (drills.jsonl, the metrics, the weekly digest); and `lifeboat-backup schedule`, the sidecar
//! that runs jobs at their times, catches up a missed run once, and stops cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_testkit::{lifeboat, patch_manifest, stack_var, wait_for, Ran};

mod support;
use support::{archive_of, archives, damage, drop_database, file_name, stack_psql as psql};

/// A database of `rows` notes of some length.
fn notes_database(rows: u32) -> String {
    support::notes_database("lbtest_guard_", rows, "repeat(md5(g::text), 4)")
}

fn backup(work: &Path, args: &[&str], env: &[(&str, String)]) -> Ran {
    lifeboat("lifeboat-backup")
        .dir(work)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .run()
}

/// Take a backup; its path.
fn take(work: &Path, env: &[(&str, String)]) -> PathBuf {
    let out = backup(work, &[], env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    archive_of(work, &out)
}

fn smtp_env() -> Vec<(&'static str, String)> {
    let smtp = lifeboat_testkit::smtp();
    vec![
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp.plain_port.to_string()),
        ("SMTP_FROM", "lifeboat@example.test".to_owned()),
        ("LIFEBOAT_MAIL_TO", "ops@example.test".to_owned()),
    ]
}

/// The settings of a backup of `db` on the test server, with its metrics in `metrics`, under
/// names no other test's mail can hold.
fn settings(db: &str, metrics: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "LIFEBOAT_DB_CONTAINER",
            stack_var("LBTEST_POSTGRES_CONTAINER"),
        ),
        ("LIFEBOAT_DB_NAME", db.to_owned()),
        ("LIFEBOAT_BACKUP_NAME", format!("{db}_%Y%m%d_%H%M%S")),
        (
            "LIFEBOAT_BACKUP_METRICS_FILE",
            metrics.display().to_string(),
        ),
    ]
}

/// Make a backup look `days` old to retention.
fn age_by(archive: &Path, days: i64) {
    let at = chrono::Utc::now() - chrono::Duration::days(days);
    patch_manifest(archive, |m| {
        m["started"] = serde_json::json!(at.to_rfc3339());
    });
}

#[test]
fn retention_deletes_nothing_after_a_shrunken_or_broken_newest_backup() {
    let db = notes_database(3000);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    let metrics = work.path().join("backup.prom");
    let mut env = settings(&db, &metrics);
    env.extend(smtp_env());
    let oldest = take(work.path(), &env);
    age_by(&oldest, 30);
    let older = take(work.path(), &env);
    age_by(&older, 20);
    // From here, retention would delete both: older than a day, one backup kept at least.
    env.push(("LIFEBOAT_BACKUP_KEEP_DAYS", "1".into()));
    env.push(("LIFEBOAT_BACKUP_KEEP_MIN", "1".into()));
    // The table emptied by mistake: the next dump is a fraction of the one before.
    psql(&db, "DELETE FROM notes WHERE id > 10");
    let out = backup(work.path(), &[], &env);
    assert_eq!(out.code, 0, "the backup itself worked: {}", out.stderr);
    let shrunk = archive_of(work.path(), &out);
    assert!(
        out.stderr.contains("LIFEBOAT_BACKUP_MIN_RATIO"),
        "{}",
        out.stderr
    );
    assert_eq!(
        archives(&dir).len(),
        3,
        "everything kept: {:?}",
        archives(&dir)
    );
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("lifeboat_backup_retention_held{reason=\"shrunk\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lifeboat_backup_retention_held{reason=\"unverified\"} 0"),
        "{text}"
    );
    let mail = lifeboat_testkit::smtp().wait_for_message(&file_name(&shrunk));
    assert!(mail.contains("retention HELD"), "{mail}");
    // `prune` says so too, and exits 1 having deleted nothing.
    let out = backup(work.path(), &["prune"], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("retention held (shrunk)"),
        "{}",
        out.stdout
    );
    assert_eq!(archives(&dir).len(), 3);

    // With the ratio check off, a damaged newest backup holds retention all the same.
    env.push(("LIFEBOAT_BACKUP_MIN_RATIO", "0".into()));
    let good = damage(&shrunk);
    let out = backup(work.path(), &["prune"], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not verified good"), "{}", out.stderr);
    assert_eq!(archives(&dir).len(), 3);

    // A whole newest backup lifts it: the old ones go.
    std::fs::write(&shrunk, &good).expect("repair");
    let out = backup(work.path(), &["prune"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(archives(&dir), vec![file_name(&shrunk)]);
    drop_database(&db);
}

#[test]
fn restore_drills_leave_evidence_in_drills_jsonl_the_metrics_and_the_digest() {
    let db = notes_database(300);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    let metrics = work.path().join("backup.prom");
    let mut env = settings(&db, &metrics);
    let archive = take(work.path(), &env);
    let out = backup(work.path(), &["verify", "--restore-test"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = std::fs::read_to_string(dir.join("drills.jsonl")).expect("drills.jsonl");
    let drill: serde_json::Value = serde_json::from_str(lines.trim()).expect("one JSON line");
    assert_eq!(drill["outcome"], "passed");
    assert_eq!(drill["rows"], 300);
    assert_eq!(drill["backup"], file_name(&archive).as_str());
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("lifeboat_backup_last_drill_success 1"),
        "{text}"
    );
    let verified_at = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("lifeboat_backup_last_verified_timestamp_seconds "))
            .and_then(|v| v.parse().ok())
            .expect("the last verified time")
    };
    let passed_at = verified_at(&text);
    assert!(passed_at > 1.0e9, "{text}");

    // A drill that fails is recorded as such; the last success stays what it was.
    let good = damage(&archive);
    let out = backup(work.path(), &["verify", "--restore-test"], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = std::fs::read_to_string(dir.join("drills.jsonl")).expect("drills.jsonl");
    let last: serde_json::Value =
        serde_json::from_str(lines.lines().last().expect("a line")).expect("JSON");
    assert_eq!(lines.lines().count(), 2);
    assert_eq!(last["outcome"], "failed");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("checksum")),
        "{last}"
    );
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("lifeboat_backup_last_drill_success 0"),
        "{text}"
    );
    assert!(
        (verified_at(&text) - passed_at).abs() < f64::EPSILON,
        "{text}"
    );

    // The weekly digest names the last drill.
    std::fs::write(&archive, &good).expect("repair");
    env.extend(smtp_env());
    env.push(("LIFEBOAT_BACKUP_MAIL", "weekly".into()));
    take(work.path(), &env);
    let mail = lifeboat_testkit::smtp().wait_for_message(&format!("{db}_"));
    assert!(mail.contains("Last restore drill:"), "{mail}");
    assert!(mail.contains("FAILED"), "the last drill failed: {mail}");
    drop_database(&db);
}

/// A running `lifeboat-backup schedule` in `work` with `env`.
fn scheduler(work: &Path, env: &[(&str, String)]) -> lifeboat_testkit::Running {
    lifeboat("lifeboat-backup")
        .dir(work)
        .args(["schedule"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
}

/// The scheduler's state file saying each job last ran two days ago.
fn ran_two_days_ago(dir: &Path, jobs: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let at = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    let state: serde_json::Map<String, serde_json::Value> = jobs
        .iter()
        .map(|j| ((*j).to_owned(), serde_json::json!(at)))
        .collect();
    std::fs::write(
        dir.join(".lifeboat-schedule"),
        serde_json::to_string(&state).expect("JSON"),
    )
    .expect("write");
}

#[test]
fn the_scheduler_runs_jobs_at_their_times_catches_up_once_and_stops_on_sigterm() {
    let db = notes_database(100);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    let base: Vec<(&str, String)> = vec![
        (
            "LIFEBOAT_DB_CONTAINER",
            stack_var("LBTEST_POSTGRES_CONTAINER"),
        ),
        ("LIFEBOAT_DB_NAME", db.clone()),
    ];

    // A bad expression: exit 2 naming the variable, nothing run.
    let mut env = base.clone();
    env.push(("LIFEBOAT_BACKUP_SCHEDULE", "every night".into()));
    let out = backup(work.path(), &["schedule"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("LIFEBOAT_BACKUP_SCHEDULE"),
        "{}",
        out.stderr
    );

    // Missed while down (two days ago): caught up once at start, then the next time is 02:00.
    ran_two_days_ago(&dir, &["backup"]);
    let mut env = base.clone();
    env.push(("LIFEBOAT_BACKUP_SCHEDULE", "0 2 * * *".into()));
    let mut running = scheduler(work.path(), &env);
    wait_for("the caught-up backup", Duration::from_mins(1), || {
        (archives(&dir).len() == 1).then_some(())
    });
    running.signal("TERM");
    let out = running.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("catching up the backup missed at"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("next backup at"), "{}", out.stderr);
    assert_eq!(
        archives(&dir).len(),
        1,
        "caught up once, not once per missed day"
    );

    // Two jobs at their times (every few seconds, a seconds field first), one after the other.
    let mut env = base.clone();
    env.push(("LIFEBOAT_BACKUP_SCHEDULE", "*/4 * * * * *".into()));
    env.push(("LIFEBOAT_BACKUP_DRILL_SCHEDULE", "*/6 * * * * *".into()));
    let mut running = scheduler(work.path(), &env);
    wait_for(
        "two more backups and a drill",
        Duration::from_secs(90),
        || {
            let drills = std::fs::read_to_string(dir.join("drills.jsonl")).unwrap_or_default();
            (archives(&dir).len() >= 3 && drills.lines().count() >= 1).then_some(())
        },
    );
    running.signal("TERM");
    let out = running.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("next drill at"), "{}", out.stderr);
    // Every drill passed, but one our SIGTERM may have stopped midway (recorded as such).
    let drills = std::fs::read_to_string(dir.join("drills.jsonl")).expect("drills");
    assert!(
        drills
            .lines()
            .all(|l| l.contains("\"passed\"") || l.contains("stopped by SIGTERM")),
        "{drills}"
    );
    assert!(drills.lines().any(|l| l.contains("\"passed\"")), "{drills}");

    // SIGTERM while a backup is dumping: the job stops as by hand, nothing left behind.
    let before = archives(&dir);
    ran_two_days_ago(&dir, &["backup"]);
    let mut env = base.clone();
    env.push(("LIFEBOAT_BACKUP_SCHEDULE", "0 2 * * *".into()));
    env.push((lifeboat_backup::PAUSE_VAR, "dumping".into()));
    let mut running = scheduler(work.path(), &env);
    let partial = || {
        std::fs::read_dir(&dir).is_ok_and(|r| {
            r.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.contains(".sql.") && name.ends_with(".partial")
            })
        })
    };
    wait_for("the job dumping", Duration::from_mins(1), || {
        partial().then_some(())
    });
    running.signal("TERM");
    let out = running.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("stopping the running backup"),
        "{}",
        out.stderr
    );
    assert!(!partial(), "the partial file was removed");
    assert_eq!(
        archives(&dir),
        before,
        "earlier backups untouched, nothing new"
    );
    drop_database(&db);
}
