//! lifeboat-backup against the real PostgreSQL: a complete, verifiable archive with its
//! manifest, and every failure (pg_dump error, SIGTERM, the container killed) leaving nothing
//! new behind and earlier backups untouched.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lifeboat::secret::SecretUrl;
use lifeboat_testkit::{
    docker_ok, gunzip, manifest_of, run, unique, wait_for, SmallDisk, TestContainer,
};

mod support;
use support::{archive_of, backup, database_with_rows, file_name};

/// How many archives are in `dir`.
fn archives(dir: &Path) -> usize {
    files(dir).iter().filter(|f| f.ends_with(".sql.gz")).count()
}

/// The files in `dir`, but for hidden ones (the signing key, a lock directory): not backups.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_container_backup_is_complete_gzip_matching_its_manifest() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 1000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let out = backup(
        work.path(),
        &["--database", &db],
        &[("LIFEBOAT_DB_CONTAINER", &container)],
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let archive = archive_of(work.path(), &out);
    let name = file_name(&archive);
    assert!(
        name.starts_with("backup_") && name.ends_with(".sql.gz"),
        "{name}"
    );

    let sql = gunzip(&archive);
    assert!(
        sql.contains("CREATE TABLE public.items"),
        "the schema is in the dump"
    );
    assert!(
        sql.contains(&format!(
            "1000\títem {}",
            "a9b7ba70783b617e9998dc4dd82eb3c5"
        )),
        "the last row is in the dump"
    );

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.json", archive.display())).expect("manifest"),
    )
    .expect("JSON");
    let bytes = std::fs::read(&archive).expect("read");
    let sha = lifeboat::output::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert_eq!(manifest["sha256"], sha);
    assert_eq!(manifest["size"], bytes.len());
    assert_eq!(manifest["database"], db.as_str());
    assert!(manifest["server_version"]
        .as_str()
        .is_some_and(|v| v.starts_with("15.")));
    // Exact counts, read off the dump as it streamed by.
    assert_eq!(manifest["tables"][0]["name"], "public.items");
    assert_eq!(manifest["tables"][0]["rows"], 1000);

    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions())
            & 0o777
    };
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(&work.path().join("backups")), 0o700);

    let list = backup(work.path(), &["list"], &[]);
    assert_eq!(list.status.code(), Some(0));
    let listed = list.stdout.as_str();
    let fields: Vec<&str> = listed.trim_end().split('\t').collect();
    assert_eq!(fields[0], "local", "{listed}");
    assert_eq!(fields[1], name);
    assert_eq!(fields[4], bytes.len().to_string());
    assert_eq!(fields[5], db);
    assert_eq!(fields[6], "sha256 ok");

    // A damaged archive (same size, one byte changed) is named by `list`, which exits 1.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&archive, &damaged).expect("damage");
    let list = backup(work.path(), &["list"], &[]);
    let listed = list.stdout.as_str();
    assert_eq!(list.status.code(), Some(1));
    assert!(listed.contains("DAMAGED"), "{listed}");
}

#[tokio::test]
async fn a_url_backup_uses_the_local_pg_dump_over_tls_without_showing_the_password() {
    let url = lifeboat_testkit::database_url();
    let db = database_with_rows(&url, 10).await;
    let password = lifeboat_testkit::database_password();
    let work = tempfile::tempdir().expect("tempdir");
    let out = backup(
        work.path(),
        &["--log-format", "json", "--database", &db],
        &[
            ("DATABASE_URL", &format!("{url}?sslmode=require")),
            // No Docker engine at all: the URL mode must not need one.
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(password.as_str()), "{stderr}");
    let archive = archive_of(work.path(), &out);
    assert!(gunzip(&archive).contains("COPY public.items"));
    let manifest =
        std::fs::read_to_string(format!("{}.json", archive.display())).expect("manifest");
    assert!(
        manifest.contains("\"source\": \"url postgres://lifeboat:***@")
            && !manifest.contains(password.as_str()),
        "{manifest}"
    );
}

#[tokio::test]
async fn a_failed_dump_exits_1_and_leaves_earlier_backups_untouched() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 10).await;
    let work = tempfile::tempdir().expect("tempdir");
    let metrics = work.path().join("backup.prom");
    let env = [
        (
            "LIFEBOAT_DB_CONTAINER",
            lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER"),
        ),
        (
            "LIFEBOAT_BACKUP_METRICS_FILE",
            metrics.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        backup(work.path(), &["--database", &db], &env)
            .status
            .code(),
        Some(0)
    );
    let metric = |name: &str| -> f64 {
        let text = std::fs::read_to_string(&metrics).expect("metrics file");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
    };
    assert!((metric("lifeboat_backup_last_run_success") - 1.0).abs() < f64::EPSILON);
    assert!(metric("lifeboat_backup_failures_total").abs() < f64::EPSILON);
    let last_success = metric("lifeboat_backup_last_success_timestamp_seconds");
    let before = files(&work.path().join("backups"));
    assert_eq!(before.len(), 2, "an archive and its manifest: {before:?}");

    std::thread::sleep(Duration::from_millis(1100));
    let out = backup(work.path(), &["--database", "no_such_database"], &env);
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no_such_database") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert_eq!(
        files(&work.path().join("backups")),
        before,
        "nothing new, nothing removed"
    );
    // The failure is counted for the BackupFailed alert; the last success stays what it was.
    assert!(metric("lifeboat_backup_last_run_success").abs() < f64::EPSILON);
    assert!((metric("lifeboat_backup_failures_total") - 1.0).abs() < f64::EPSILON);
    assert!(
        (metric("lifeboat_backup_last_success_timestamp_seconds") - last_success).abs()
            < f64::EPSILON
    );
}

/// A dedicated server with enough data that a dump takes seconds, to interrupt it.
async fn big_server() -> (TestContainer, String, String) {
    let pg = TestContainer::run(
        "lbtest-big-",
        &[
            "-e",
            "POSTGRES_PASSWORD=big",
            "-p",
            "127.0.0.1::5432",
            "lifeboat-test/postgres:15",
        ],
    );
    let url = format!(
        "postgres://postgres:big@127.0.0.1:{}/postgres",
        pg.host_port("5432")
    );
    wait_for("postgres ready", Duration::from_mins(1), || {
        let ready = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &pg.name]);
        (ready == "healthy").then_some(())
    });
    let db = database_with_rows(&url, 1_500_000).await;
    (pg, url, db)
}

fn wait_for_partial(dir: &Path) {
    wait_for("the dump to be under way", Duration::from_secs(30), || {
        files(dir)
            .iter()
            .any(|f| f.ends_with(".partial"))
            .then_some(())
    });
}

/// A backup directory with an earlier backup in it, which no failure may touch, and the run
/// that each step starts against the big server.
struct MidDump {
    work: tempfile::TempDir,
    dir: std::path::PathBuf,
    container: String,
    db: String,
    earlier: Vec<String>,
    earlier_bytes: Vec<Vec<u8>>,
}

impl MidDump {
    fn new(container: &str, db: &str) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path().join("backups");
        std::fs::create_dir(&dir).expect("mkdir");
        fake_backup(&dir, 1);
        let earlier = files(&dir);
        let earlier_bytes = earlier
            .iter()
            .map(|f| std::fs::read(dir.join(f)).expect("read"))
            .collect();
        Self {
            work,
            dir,
            container: container.to_owned(),
            db: db.to_owned(),
            earlier,
            earlier_bytes,
        }
    }

    fn command(&self) -> lifeboat_testkit::Lifeboat {
        support::backup_command(
            self.work.path(),
            &["--database", &self.db],
            &[
                ("LIFEBOAT_DB_CONTAINER", &self.container),
                ("LIFEBOAT_BACKUP_COMPRESSION_LEVEL", "9"),
            ],
        )
    }

    /// A run, once its partial file is there.
    fn started(&self) -> lifeboat_testkit::Running {
        let child = self.command().spawn();
        wait_for_partial(&self.dir);
        child
    }

    fn new_files(&self) -> Vec<String> {
        files(&self.dir)
            .into_iter()
            .filter(|f| !self.earlier.contains(f))
            .collect()
    }

    /// SIGTERM, as from cron's timeout or `docker stop`.
    fn sigterm(&self) {
        let mut child = self.started();
        child.signal("TERM");
        let out = child.wait();
        let stderr = &out.stderr;
        assert_eq!(out.code, 1, "{stderr}");
        assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
        assert_eq!(
            self.new_files(),
            Vec::<String>::new(),
            "the partial file is gone"
        );
    }

    /// SIGINT (Ctrl-C) the same; and a second run meanwhile is refused by the lock, touching
    /// nothing of the first's.
    fn sigint_and_a_second_run(&self) {
        let mut child = self.started();
        let second = self.command().run();
        let said = &second.stderr;
        assert_eq!(second.code, 1, "{said}");
        assert!(said.contains("already running"), "{said}");
        assert_eq!(
            self.new_files().len(),
            1,
            "only the first run's partial file"
        );
        child.signal("INT");
        let out = child.wait();
        let stderr = &out.stderr;
        assert_eq!(out.code, 1, "{stderr}");
        assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
        assert_eq!(self.new_files(), Vec::<String>::new(), "{stderr}");
    }

    /// SIGKILL (the OOM killer) leaves the partial file; the next run removes it, under its
    /// lock, and says so.
    fn sigkill_then_the_next_run(&self) {
        let mut child = self.started();
        child.signal("KILL");
        child.wait();
        let left = self.new_files();
        assert!(
            left.len() == 1 && left[0].ends_with(".sql.gz.partial"),
            "{left:?}"
        );
        // The next run may start within the same second and reuse the name: another file.
        let id = |m: &std::fs::Metadata| (m.ino(), m.ctime(), m.ctime_nsec());
        let stale = id(&std::fs::metadata(self.dir.join(&left[0])).expect("stale"));
        let mut child = self.command().spawn();
        wait_for(
            "the next run's own partial file",
            Duration::from_secs(30),
            || {
                let fresh = |f: &String| {
                    f.ends_with(".partial")
                        && std::fs::metadata(self.dir.join(f)).is_ok_and(|m| id(&m) != stale)
                };
                self.new_files().iter().any(fresh).then_some(())
            },
        );
        child.signal("TERM");
        let out = child.wait();
        let stderr = &out.stderr;
        assert!(
            stderr.contains(&format!("removed {}", left[0]))
                && stderr.contains("by a backup that was killed"),
            "{stderr}"
        );
        assert_eq!(self.new_files(), Vec::<String>::new(), "{stderr}");
    }

    /// The database container dies mid-dump.
    fn container_killed(&self) {
        let mut child = self.started();
        docker_ok(&["kill", &self.container]);
        let out = child.wait();
        let stderr = &out.stderr;
        assert_eq!(out.code, 1, "{stderr}");
        assert_eq!(
            self.new_files(),
            Vec::<String>::new(),
            "no partial file, no manifest: {stderr}"
        );
    }

    /// The earlier backup, through it all: there, byte for byte.
    fn earlier_untouched(&self) {
        for (f, bytes) in self.earlier.iter().zip(&self.earlier_bytes) {
            assert_eq!(
                &std::fs::read(self.dir.join(f)).expect("still there"),
                bytes,
                "{f}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_or_a_killed_container_mid_dump_leaves_nothing_behind() {
    let (pg, _url, db) = big_server().await;
    let run = MidDump::new(&pg.name, &db);
    run.sigterm();
    run.sigint_and_a_second_run();
    run.sigkill_then_the_next_run();
    run.container_killed();
    run.earlier_untouched();
}

/// A backup as lifeboat-backup leaves it, dated `days_ago`: an archive and its manifest.
fn fake_backup(dir: &Path, days_ago: i64) -> String {
    fake_backup_at(dir, chrono::Utc::now() - chrono::Duration::days(days_ago))
}

/// The same, started at `started`.
fn fake_backup_at(dir: &Path, started: chrono::DateTime<chrono::Utc>) -> String {
    let name = format!("backup_{}.sql.gz", started.format("%Y%m%d_%H%M%S"));
    // Whole, as retention's guard checks the newest: gzip of the SQL, its SHA-256 and size.
    let sql = format!("-- started {started}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, sql.as_bytes()).expect("gzip");
    let body = gz.finish().expect("gzip");
    std::fs::write(dir.join(&name), &body).expect("archive");
    let manifest = serde_json::json!({
        "format": 2, "file": name, "database": "app", "server_version": "15.18", "source": "test",
        "size": body.len(), "raw_size": sql.len(), "sha256": lifeboat_testkit::sha256_hex(&body),
        "compression": "gzip level 6",
        "started": started, "finished": started, "duration_ms": 1, "tool": "test", "tables": [],
    });
    std::fs::write(dir.join(format!("{name}.json")), manifest.to_string()).expect("manifest");
    name
}

#[test]
fn prune_plans_and_applies_retention_touching_only_backups() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    std::fs::create_dir(&dir).expect("mkdir");
    let names: Vec<String> = [0, 2, 10, 20, 30]
        .iter()
        .map(|d| fake_backup(&dir, *d))
        .collect();
    // Not ours: an archive without a manifest, and someone else's file.
    std::fs::write(dir.join("backup_19990101_000000.sql.gz"), "orphan").expect("orphan");
    std::fs::write(dir.join("notes.txt"), "keep me").expect("notes");
    let before = files(&dir);

    let env = [
        ("LIFEBOAT_BACKUP_KEEP_DAYS", "7"),
        ("LIFEBOAT_BACKUP_KEEP_MIN", "3"),
    ];
    let plan = backup(work.path(), &["prune", "--dry-run"], &env);
    let stdout = plan.stdout.clone();
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr.as_str());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("keep\t{}\tthe newest", names[0])),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("keep\t{}\tyounger than 7 days", names[1])),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!("keep\t{}\tone of the 3", names[2])),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with(&format!("delete\t{}", names[3]))
            && lines[4].starts_with(&format!("delete\t{}", names[4])),
        "{stdout}"
    );
    assert_eq!(files(&dir), before, "--dry-run deletes nothing");

    let applied = backup(work.path(), &["prune"], &env);
    assert_eq!(applied.status.code(), Some(0));
    assert_eq!(
        applied.stdout.as_str(),
        stdout,
        "the run applies the plan it printed"
    );
    let after = files(&dir);
    for gone in &names[3..] {
        assert!(
            !after.contains(gone) && !after.contains(&format!("{gone}.json")),
            "{after:?}"
        );
    }
    for kept in names[..3]
        .iter()
        .map(String::as_str)
        .chain(["backup_19990101_000000.sql.gz", "notes.txt"])
    {
        assert!(
            after.iter().any(|f| f == kept),
            "{kept} must stay: {after:?}"
        );
    }
}

/// lifeboat-backup in `work` with these settings.
fn run_with(work: &Path, env: &[(&'static str, String)], args: &[&str]) -> lifeboat_testkit::Ran {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    backup(work, args, &pairs)
}

#[tokio::test]
async fn the_off_site_copy_lands_in_the_bucket_and_a_failed_upload_keeps_the_local_copy() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 100).await;
    let work = tempfile::tempdir().expect("tempdir");
    let s3 = lifeboat_testkit::s3();
    let prefix = unique("lbtest-offsite-");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    // LIFEBOAT_DB_CONTAINER, then S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY.
    let mut env = vec![("LIFEBOAT_DB_CONTAINER", container.clone())];
    env.extend(s3.env());
    env.push(("LIFEBOAT_S3_PREFIX", prefix.clone()));
    the_copy_lands_in_the_bucket(work.path(), &db, &s3, &prefix, &env).await;
    a_failed_upload_keeps_the_local_copy(work.path(), &db, &s3, env);
}

/// The archive and its manifest land in the bucket, the same bytes; list shows both copies.
async fn the_copy_lands_in_the_bucket(
    work: &Path,
    db: &str,
    s3: &lifeboat_testkit::S3Stack,
    prefix: &str,
    env: &[(&'static str, String)],
) {
    let out = run_with(work, env, &["--database", db]);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let archive = archive_of(work, &out);
    let file = file_name(&archive);
    let bucket = s3.bucket(&format!("{prefix}/"));
    let remote = bucket
        .get(&format!("backups/{file}"), 1 << 30)
        .await
        .expect("the archive is in the bucket");
    assert_eq!(
        remote,
        std::fs::read(&archive).expect("local"),
        "the same bytes"
    );
    let manifest = bucket
        .get(&format!("backups/{file}.json"), 1 << 20)
        .await
        .expect("and its manifest");
    assert!(String::from_utf8_lossy(&manifest).contains(&file));
    assert!(!stderr.contains(&s3.secret_access_key), "{stderr}");
    let list = run_with(work, env, &["list"]);
    let listed = list.stdout.as_str();
    assert_eq!(list.status.code(), Some(0), "{listed}");
    assert!(listed.contains(&format!("local\t{file}\t")), "{listed}");
    assert!(listed.contains(&format!("s3\t{file}\t")), "{listed}");
}

/// An outage, a wrong bucket and missing keys: each keeps what is local.
fn a_failed_upload_keeps_the_local_copy(
    work: &Path,
    db: &str,
    s3: &lifeboat_testkit::S3Stack,
    mut env: Vec<(&'static str, String)>,
) {
    // The storage is unreachable: exit 1, and the new local backup stays.
    std::thread::sleep(Duration::from_millis(1100));
    let refused = lifeboat_testkit::refused_port();
    env[1].1 = format!("http://127.0.0.1:{}", refused.port);
    let out = run_with(work, &env, &["--database", db]);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("off-site copy failed; the local copy is kept")
            && stderr.contains("cannot be reached now"),
        "{stderr}"
    );
    assert_eq!(archives(&work.join("backups")), 2);

    // A bucket the storage says does not exist: refused before the dump (HEAD of the bucket),
    // nothing dumped.
    let mut wrong = env.clone();
    wrong[1].1.clone_from(&s3.endpoint);
    wrong[2].1 = unique("lbtest-no-such-bucket-");
    let out = run_with(work, &wrong, &["--database", db]);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the bucket refuses these settings")
            && stderr.contains("nothing was dumped"),
        "{stderr}"
    );
    assert_eq!(archives(&work.join("backups")), 2, "no dump was taken");

    // A bucket without credentials is refused before anything is done.
    let incomplete: Vec<(&'static str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "S3_ACCESS_KEY_ID")
        .cloned()
        .collect();
    let out = run_with(work, &incomplete, &["--database", db]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("S3_ACCESS_KEY_ID"));
    assert_eq!(archives(&work.join("backups")), 2, "no new backup");
}

#[tokio::test]
async fn a_failure_is_mailed_and_a_success_only_when_asked() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 5).await;
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = lifeboat_testkit::smtp();
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let missing = unique("lbtest_missing_");
    let port = smtp.plain_port.to_string();
    let env = [
        ("LIFEBOAT_DB_CONTAINER", container.as_str()),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_FROM", "lifeboat@demo.test"),
        ("LIFEBOAT_MAIL_TO", "ops@demo.test"),
    ];
    let out = backup(work.path(), &["--database", &missing], &env);
    assert_eq!(out.status.code(), Some(1));
    let mail = smtp.wait_for_message(&missing);
    assert!(
        mail.contains("Subject: lifeboat-backup FAILED on "),
        "{mail}"
    );
    assert!(mail.contains("earlier backups are untouched"), "{mail}");

    // Success is silent by default, and mailed with LIFEBOAT_BACKUP_MAIL=always.
    let mut always = env.to_vec();
    always.push(("LIFEBOAT_BACKUP_MAIL", "always"));
    let out = backup(work.path(), &["--database", &db], &always);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr.as_str());
    let file = out
        .stdout
        .as_str()
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mail = smtp.wait_for_message(&file);
    assert!(
        mail.contains(&format!("Subject: lifeboat-backup OK: {db} on ")),
        "{mail}"
    );
}

#[tokio::test]
async fn a_full_disk_fails_the_backup_and_keeps_the_earlier_ones() {
    let url = lifeboat_testkit::database_url();
    let small = database_with_rows(&url, 10).await;
    let big = database_with_rows(&url, 300_000).await;
    let disk = SmallDisk::mount("2m");
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let dir = disk.path().to_string_lossy().into_owned();
    let env = [
        ("LIFEBOAT_DB_CONTAINER", container.as_str()),
        ("LIFEBOAT_BACKUP_DIR", dir.as_str()),
    ];

    let out = backup(work.path(), &["--database", &small], &env);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr.as_str());
    let before = files(disk.path());
    assert_eq!(before.len(), 2, "an archive and its manifest: {before:?}");
    let kept = std::fs::read(disk.path().join(&before[0])).expect("the earlier archive");

    // The big database does not fit in what is left.
    std::thread::sleep(Duration::from_millis(1100));
    let out = backup(work.path(), &["--database", &big], &env);
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        files(disk.path()),
        before,
        "no partial file left, nothing else touched"
    );
    assert_eq!(
        std::fs::read(disk.path().join(&before[0])).expect("read"),
        kept
    );

    let list = backup(work.path(), &["list"], &env);
    assert_eq!(list.status.code(), Some(0));
    assert!(list.stdout.as_str().contains(&small));
}

#[tokio::test]
async fn all_databases_and_roles_in_one_archive_with_their_rows() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 25).await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let out = backup(
        work.path(),
        &["--all"],
        &[("LIFEBOAT_DB_CONTAINER", &container)],
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let archive = archive_of(work.path(), &out);
    let sql = gunzip(&archive);
    assert!(sql.contains("\nCREATE ROLE "), "the roles are in it");
    assert!(
        sql.contains(&format!("CREATE DATABASE {db} ")),
        "and each database"
    );
    let manifest = manifest_of(&archive);
    assert_eq!(manifest["all"], true);
    assert_eq!(manifest["database"], "(all databases)");
    let tables = manifest["tables"].as_array().expect("tables");
    let ours = tables
        .iter()
        .find(|t| t["name"] == format!("{db}/public.items"))
        .unwrap_or_else(|| panic!("{db}/public.items in {tables:?}"));
    assert_eq!(ours["rows"], 25);
}

#[tokio::test]
async fn zstd_and_a_custom_name_pattern() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 50).await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let env = [
        ("LIFEBOAT_DB_CONTAINER", container.as_str()),
        ("LIFEBOAT_BACKUP_NAME", "nightly-%Y-%m-%dT%H%M%SZ"),
    ];
    let out = backup(
        work.path(),
        &["--database", &db, "--compress", "zstd"],
        &env,
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let archive = archive_of(work.path(), &out);
    let name = file_name(&archive);
    assert!(
        name.starts_with("nightly-") && name.ends_with("Z.sql.zst"),
        "{name}"
    );
    let sql = zstd::decode_all(std::fs::File::open(&archive).expect("open")).expect("zstd");
    assert!(String::from_utf8_lossy(&sql).contains("CREATE TABLE public.items"));
    let manifest = manifest_of(&archive);
    assert_eq!(manifest["tables"][0]["rows"], 50);
    assert!(manifest["compression"]
        .as_str()
        .is_some_and(|c| c.starts_with("zstd")));
    let list = backup(work.path(), &["list"], &[]);
    assert!(list.stdout.as_str().contains(&name));

    // A pattern that names a whole day with one file is refused before anything is done.
    let out = backup(
        work.path(),
        &["--database", &db],
        &[
            ("LIFEBOAT_DB_CONTAINER", &container),
            ("LIFEBOAT_BACKUP_NAME", "daily_%Y%m%d"),
        ],
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("LIFEBOAT_BACKUP_NAME"), "{stderr}");
}

/// `pg_dump` of `db` in `container`, without the per-run `\restrict` key lines.
fn pg_dump_text(container: &str, user: &str, db: &str) -> String {
    let out =
        run(Command::new("docker").args(["exec", container, "pg_dump", "-U", user, "-d", db]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn round_trip_gunzip_into_psql_gives_the_same_dump() {
    let url = lifeboat_testkit::database_url();
    let db = database_with_rows(&url, 3000).await;
    let target = lifeboat::db::DbTarget::from_url(&SecretUrl::new(url.clone())).expect("url");
    let user = target.user().to_owned();
    target
        .with_database(&db)
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE TABLE docs (id serial PRIMARY KEY, body jsonb, raw bytea, note text);
             INSERT INTO docs (body, raw, note)
               SELECT jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)),
                      decode(md5(g::text), 'hex'), E'two\\nlines\\tand a tab'
               FROM generate_series(1, 500) g;
             CREATE INDEX ON docs ((body->>'n'));
             CREATE VIEW recent AS SELECT * FROM docs WHERE id > 400;",
        )
        .await
        .expect("more tables");
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let out = backup(
        work.path(),
        &["--database", &db],
        &[("LIFEBOAT_DB_CONTAINER", &container)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr.as_str());
    let archive = archive_of(work.path(), &out);

    // Plain gunzip (the system's), piped into psql in a fresh database.
    let copy = format!("{db}_copy");
    docker_ok(&["exec", &container, "createdb", "-U", &user, &copy]);
    let restore = run(Command::new("sh").arg("-c").arg(format!(
        "gunzip -c '{}' | docker exec -i {container} psql -X -q -v ON_ERROR_STOP=1 -U {user} -d {copy}",
        archive.display()
    )));
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_eq!(
        pg_dump_text(&container, &user, &copy),
        pg_dump_text(&container, &user, &db),
        "the restored database dumps the same"
    );
}

#[tokio::test]
async fn a_storage_answering_503_is_retried_with_backoff_and_the_local_copy_kept() {
    let db = database_with_rows(&lifeboat_testkit::database_url(), 10).await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let flaky = lifeboat_testkit::HttpFixture::start(lifeboat_testkit::Reply::Raw(
        lifeboat_testkit::http_response("503 Service Unavailable", "", "SlowDown"),
    ));
    let endpoint = flaky.url("");
    let out = backup(
        work.path(),
        &["--database", &db],
        &[
            ("LIFEBOAT_DB_CONTAINER", &container),
            ("S3_ENDPOINT", &endpoint),
            ("S3_BUCKET", "backups"),
            ("S3_ACCESS_KEY_ID", "key"),
            ("S3_SECRET_ACCESS_KEY", "secret-never-shown"),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("off-site copy failed; the local copy is kept"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-never-shown"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} tries", lifeboat::s3::ATTEMPTS)),
        "the error says how often it tried: {stderr}"
    );
    // The bucket is tried before the dump (HEAD), the upload after; each request as often.
    let requests = flaky.requests();
    let heads = requests.iter().filter(|r| r.starts_with("HEAD ")).count();
    assert_eq!(heads, lifeboat::s3::ATTEMPTS as usize, "{requests:?}");
    assert_eq!(
        requests.len() - heads,
        lifeboat::s3::ATTEMPTS as usize,
        "every attempt of the upload reached the storage"
    );
    assert!(
        stderr.contains("cannot be reached now"),
        "a storage that answers 503 does not stop the local backup: {stderr}"
    );
    let local = files(&work.path().join("backups"));
    assert_eq!(
        local.len(),
        2,
        "the archive and its manifest stay: {local:?}"
    );
}

#[test]
fn gfs_retention_keeps_exactly_the_newest_of_each_kept_day_week_and_month() {
    use chrono::Datelike;
    use std::collections::{BTreeMap, BTreeSet};
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    std::fs::create_dir(&dir).expect("mkdir");
    // A backup a day for 100 days.
    let now = chrono::Utc::now();
    let backups: Vec<(i64, String)> = (0..100)
        .map(|d| (d, fake_backup_at(&dir, now - chrono::Duration::days(d))))
        .collect();
    // The oracle: for each calendar key, the newest backup; the newest `n` keys.
    let newest_per = |n: usize, key: &dyn Fn(chrono::DateTime<chrono::Utc>) -> (i32, u32)| {
        let mut by_key: BTreeMap<(i32, u32), (i64, String)> = BTreeMap::new();
        for (d, name) in &backups {
            let at = now - chrono::Duration::days(*d);
            let e = by_key.entry(key(at)).or_insert((*d, name.clone()));
            if *d < e.0 {
                *e = (*d, name.clone());
            }
        }
        by_key
            .into_values()
            .rev()
            .take(n)
            .map(|(_, name)| name)
            .collect::<Vec<_>>()
    };
    let mut expected: BTreeSet<String> = BTreeSet::new();
    expected.extend(newest_per(3, &|t| (t.year(), t.ordinal())));
    expected.extend(newest_per(2, &|t| {
        (t.iso_week().year(), t.iso_week().week())
    }));
    expected.extend(newest_per(2, &|t| (t.year(), t.month())));
    expected.insert(backups[0].1.clone());

    let env = [
        ("LIFEBOAT_BACKUP_KEEP_DAYS", "1"),
        ("LIFEBOAT_BACKUP_KEEP_DAILY", "3"),
        ("LIFEBOAT_BACKUP_KEEP_WEEKLY", "2"),
        ("LIFEBOAT_BACKUP_KEEP_MONTHLY", "2"),
        ("LIFEBOAT_BACKUP_KEEP_MIN", "1"),
    ];
    let plan = backup(work.path(), &["prune", "--dry-run"], &env);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr.as_str());
    let planned: BTreeSet<String> = plan
        .stdout
        .as_str()
        .lines()
        .filter_map(|l| l.strip_prefix("keep\t"))
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        planned, expected,
        "the plan keeps the newest of each kept period"
    );

    let applied = backup(work.path(), &["prune"], &env);
    assert_eq!(applied.status.code(), Some(0));
    let left: BTreeSet<String> = files(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".sql.gz"))
        .collect();
    assert_eq!(left, expected, "and the run keeps exactly those");
}

#[test]
fn a_job_that_never_succeeded_exports_a_zero_success_time_anyone_may_read_and_locks_stay_private() {
    let work = tempfile::tempdir().expect("tempdir");
    let metrics = work.path().join("backup.prom");
    let refused = lifeboat_testkit::refused_port();
    let dead = format!("postgres://app:secret-pw@127.0.0.1:{}/app", refused.port);
    // Under cron's umask 077, as root's nightly job often runs.
    let run_with_umask = |extra: &[(&str, &str)]| {
        support::backup_command(work.path(), &[], extra)
            .env("DATABASE_URL", &dead)
            .env("LIFEBOAT_BACKUP_METRICS_FILE", &metrics)
            .secret("secret-pw")
            .wrapped(&["sh", "-c", "umask 077 && exec \"$0\" \"$@\""])
            .run()
    };
    let out = run_with_umask(&[]);
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("\nlifeboat_backup_last_success_timestamp_seconds 0\n"),
        "the 'stopped running' alert fires for a job that never worked: {text}"
    );
    let mode = std::fs::metadata(&metrics)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter must read it");

    // A lock directory anyone can write (/tmp itself) is refused before anything is done.
    let shared = work.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let out = run_with_umask(&[("LIFEBOAT_LOCK_DIR", shared.to_str().expect("utf-8"))]);
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("LIFEBOAT_LOCK_DIR") && stderr.contains("writable by other users"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).expect("ls").count(),
        0,
        "no lock file made there"
    );
}

/// lifeboat-backup against a PostgreSQL with a certificate of the test CA, with a HOME of its
/// own (for ~/.postgresql/root.crt) and no Docker: the local pg_dump.
struct TlsAttempts {
    work: tempfile::TempDir,
    home: std::path::PathBuf,
    port: u16,
    db: String,
}

impl TlsAttempts {
    /// Exit code and stderr of a backup of `host` with these URL parameters.
    fn attempt(&self, host: &str, query: &str) -> (i32, String) {
        let (port, db) = (self.port, &self.db);
        let full = format!("postgres://postgres:tls-test-pw@{host}:{port}/{db}?{query}");
        let out = support::backup_command(
            self.work.path(),
            &["--url", &full],
            &[
                ("HOME", self.home.to_str().expect("utf-8")),
                ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ],
        )
        .secret("tls-test-pw")
        .run();
        let stderr = out.stderr.clone();
        assert!(!stderr.contains("tls-test-pw"), "{stderr}");
        (out.status.code().expect("exited"), stderr)
    }

    fn ok(&self, host: &str, query: &str) {
        let (code, stderr) = self.attempt(host, query);
        assert_eq!(code, 0, "{host} {query}: {stderr}");
    }

    fn refused(&self, host: &str, query: &str, why: &str) {
        let (code, stderr) = self.attempt(host, query);
        assert_ne!(code, 0, "{host} {query} must be refused: {stderr}");
        assert!(stderr.contains(why), "{host} {query}: {stderr}");
    }
}

#[tokio::test]
async fn sslmode_follows_libpq_for_lifeboat_and_the_local_pg_dump() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = work.path().join("certs");
    std::fs::create_dir(&certs).expect("mkdir");
    lifeboat_testkit::test_certificates(&certs);
    let pg = lifeboat_testkit::tls_postgres(&certs, "tls-test-pw");
    let port = pg.host_port("5432");
    let url = format!("postgres://postgres:tls-test-pw@127.0.0.1:{port}/postgres?sslmode=require");
    let db = database_with_rows(&url, 10).await;
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join(".postgresql")).expect("home");
    let ca = certs.join("ca.pem").display().to_string();
    let wrong = certs.join("wrong-ca.pem").display().to_string();
    let server = TlsAttempts {
        work,
        home: home.clone(),
        port,
        db,
    };
    let ok = |host: &str, query: &str| server.ok(host, query);
    let refused = |host: &str, query: &str, why: &str| server.refused(host, query, why);

    // verify-ca: the chain, not the name (the certificate does not name 127.0.0.1); pg_dump
    // gets the root certificate too (it would fail without it).
    ok("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    refused(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={wrong}"),
        "certificate",
    );
    // verify-full: the chain and the name.
    ok(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    refused(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
        "not valid for name",
    );
    // require: no check without a root certificate, the chain with one.
    ok("127.0.0.1", "sslmode=require");
    refused(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={wrong}"),
        "certificate",
    );
    // No sslrootcert: ~/.postgresql/root.crt, as libpq.
    refused("127.0.0.1", "sslmode=verify-ca", "sslrootcert=system");
    std::fs::copy(&ca, home.join(".postgresql/root.crt")).expect("root.crt");
    ok("127.0.0.1", "sslmode=verify-ca");
    std::fs::copy(&wrong, home.join(".postgresql/root.crt")).expect("root.crt");
    refused("127.0.0.1", "sslmode=verify-ca", "certificate");
    refused("127.0.0.1", "sslmode=require", "certificate");
}

#[test]
fn a_pg_dump_that_exits_0_but_says_error_is_a_failure_and_leaves_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    // A pg_dump that writes a dump, complains on stderr and exits 0 (as a dump cut short by a
    // lost connection has been seen to).
    let bin_dir = work.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir");
    let fake = bin_dir.join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'CREATE TABLE t (id int);'\necho 'pg_dump: error: query failed: server closed the connection unexpectedly' >&2\nexit 0\n",
    )
    .expect("fake");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = backup(
        work.path(),
        &[],
        &[
            ("PATH", &path),
            ("DATABASE_URL", &lifeboat_testkit::database_url()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    );
    let stderr = out.stderr.as_str();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server closed the connection"), "{stderr}");
    assert_eq!(
        files(&work.path().join("backups")),
        Vec::<String>::new(),
        "no archive, no manifest, no partial file"
    );
}

#[test]
fn an_smtp_login_works_over_starttls_and_no_password_is_ever_shown() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = lifeboat_testkit::smtp();
    let smtp_password = lifeboat_testkit::stack_var("LBTEST_SMTP_PASSWORD");
    let db_url = lifeboat_testkit::database_url();
    let db_password = lifeboat_testkit::database_password();
    let missing = unique("lbtest_nologin_");
    let starttls = smtp.starttls_port.to_string();
    let ca = smtp.ca_file.display().to_string();
    let url = format!("{}/{missing}", db_url.rsplit_once('/').expect("db").0);
    let run_with = |port: &str, password: &str, extra: &[(&str, &str)]| {
        let mut env = vec![
            ("DATABASE_URL", url.as_str()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("SMTP_HOST", "localhost"),
            ("SMTP_PORT", port),
            ("SMTP_USER", "lifeboat"),
            ("SMTP_PASSWORD", password),
            ("SMTP_FROM", "lifeboat@demo.test"),
            ("LIFEBOAT_MAIL_TO", "ops@demo.test"),
            ("LIFEBOAT_SMTP_CA_FILE", ca.as_str()),
        ];
        env.extend_from_slice(extra);
        let out = backup(work.path(), &["--log-format", "json"], &env);
        let said = format!("{}{}", out.stdout.as_str(), out.stderr.as_str());
        for secret in [smtp_password.as_str(), db_password.as_str()] {
            assert!(!said.contains(secret), "a password was shown: {said}");
        }
        (out.status.code(), said)
    };

    // The database does not exist: the failure is mailed with a real login over STARTTLS.
    let tls = [("LIFEBOAT_SMTP_TLS", "starttls")];
    let (code, said) = run_with(&starttls, &smtp_password, &tls);
    assert_eq!(code, Some(1), "{said}");
    let mail = smtp.wait_for_message(&missing);
    assert!(mail.contains("lifeboat-backup FAILED"), "{mail}");
    for secret in [smtp_password.as_str(), db_password.as_str()] {
        assert!(!mail.contains(secret), "a password in the mail: {mail}");
    }

    // A wrong password: the server refuses the login, said without either password.
    let (code, said) = run_with(&starttls, "not-the-password-123", &tls);
    assert_eq!(code, Some(1), "{said}");
    assert!(!said.contains("not-the-password-123"), "{said}");
    assert!(
        said.to_lowercase().contains("mail"),
        "the failed mail is said: {said}"
    );

    // A login over a plain connection is refused before anything is done (exit 2).
    let plain = smtp.plain_port.to_string();
    let (code, said) = run_with(&plain, &smtp_password, &[]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("LIFEBOAT_SMTP_TLS"), "{said}");
}
