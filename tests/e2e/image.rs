//! The lifeboat image (scripts/image, built by scripts/test as LBTEST_LIFEBOAT_IMAGE) running
//! against the demo stack as the compose service README shows: `lifeboat-backup` through the
//! Docker socket, and `lifeboat-backup schedule` as the container's only process, catching up
//! a missed run and stopping cleanly on `docker stop`.

use std::path::Path;
use std::time::Duration;

use lifeboat_testkit::{docker, docker_ok, gunzip, stack_var, unique, wait_for, DemoStack};

mod support;
use support::archives;

/// The engine's socket, to mount into the container.
fn socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

/// `docker run` arguments of the service: the socket, the backup directory, the project.
fn service_args(dir: &Path, project: &str) -> Vec<String> {
    vec![
        // scripts/test removes what a failed test left by this label.
        "--label".into(),
        "lifeboat-test=1".into(),
        "-v".into(),
        format!("{}:/var/run/docker.sock", socket()),
        "-v".into(),
        format!("{}:/backups", dir.display()),
        "-e".into(),
        format!("COMPOSE_PROJECT_NAME={project}"),
        "-e".into(),
        "LIFEBOAT_BACKUP_DIR=/backups".into(),
    ]
}

#[test]
fn the_image_backs_up_the_demo_stack_and_schedules_itself_without_a_shell() {
    let image = stack_var("LBTEST_LIFEBOAT_IMAGE");
    let stack = DemoStack::up("v1");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();

    // No shell in it: nothing but the binaries.
    let out = docker(&["run", "--rm", &image, "sh", "-c", "true"]);
    assert!(!out.status.success(), "the image has no shell");

    // The backup, as from cron on the host.
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(service_args(dir, &stack.project.name));
    args.extend([image.clone(), "lifeboat-backup".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = docker_ok(&args);
    let name = printed
        .trim()
        .strip_prefix("/backups/")
        .unwrap_or_else(|| panic!("the new backup's path on stdout: {printed}"))
        .to_owned();
    let sql = gunzip(&dir.join(&name));
    assert!(sql.contains("CREATE TABLE"), "a dump of the demo database");
    assert_eq!(archives(dir), vec![name]);

    // The sidecar: a missed run (two days ago) caught up at start, then `docker stop`.
    let at = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    std::fs::write(
        dir.join(".lifeboat-schedule"),
        serde_json::json!({ "backup": at }).to_string(),
    )
    .expect("state");
    let container = unique("lbtest-lifeboat-schedule-");
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        container.clone(),
    ];
    args.extend(service_args(dir, &stack.project.name));
    args.extend([image, "lifeboat-backup".into(), "schedule".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
    wait_for("the caught-up backup", Duration::from_mins(1), || {
        (archives(dir).len() == 2).then_some(())
    });
    docker_ok(&["stop", "-t", "20", &container]);
    let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &container]);
    let logs = docker(&["logs", &container]);
    let logs = String::from_utf8_lossy(&logs.stderr).into_owned();
    let _ = docker(&["rm", "-f", &container]);
    assert_eq!(code.trim(), "0", "{logs}");
    assert!(logs.contains("catching up the backup"), "{logs}");
    assert!(logs.contains("next backup at"), "{logs}");
    assert_eq!(archives(dir).len(), 2);
}
