//! `lifeboat-backup verify` against the real PostgreSQL and Docker: an intact backup passes every
//! check, each kind of damage (a flipped byte, an archive cut short behind a forged checksum, a
//! wrong row count, a restore that fails) is exit 1 naming what is wrong, a name that is not a
//! backup is exit 2, and `--restore-test` never leaves its scratch database behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat::secret::SecretUrl;
use lifeboat_testkit::{manifest_of, patch_manifest, rewrite_sql, sha256_hex, Ran};

mod support;
use support::file_name;

/// A database with four tables (one empty, one in another schema with a name that needs quotes)
/// and `items` rows in `public.items`; returns its name. Rows: items + 17 + 0 + 5.
async fn database_with_tables(items: i64) -> String {
    support::create_database(
        "lbtest_verify_",
        &format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL);
         INSERT INTO items SELECT g, 'ítem ' || md5(g::text) FROM generate_series(1, {items}) g;
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO notes SELECT g, E'line one\\nline two\\ttab ' || g FROM generate_series(1, 17) g;
         CREATE TABLE empty (id int);
         CREATE SCHEMA shop;
         CREATE TABLE shop.\"Order Lines\" (id int, item bigint REFERENCES items(id));
         INSERT INTO shop.\"Order Lines\" SELECT g, g FROM generate_series(1, 5) g;"
        ),
    )
    .await
}

/// Whether a database of that name exists on the test server.
async fn database_exists(name: &str) -> bool {
    let target =
        lifeboat::db::DbTarget::from_url(&SecretUrl::new(lifeboat_testkit::database_url()))
            .expect("url");
    let client = target.connect().await.expect("connect");
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("query");
    row.get::<_, i64>(0) == 1
}

fn container_env() -> Vec<(&'static str, String)> {
    vec![(
        "LIFEBOAT_DB_CONTAINER",
        lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER"),
    )]
}

fn backup(dir: &Path, args: &[&str], env: &[(&'static str, String)]) -> Ran {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    support::backup(dir, args, &env)
}

/// Take a backup of `db` through the container; returns the archive's path.
fn take(work: &Path, db: &str) -> PathBuf {
    let out = backup(work, &["--database", db], &container_env());
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    work.join(out.stdout.trim())
}

/// The scratch database a run named on stderr.
fn scratch_in(stderr: &str) -> String {
    let at = stderr
        .find("lifeboat_verify_")
        .unwrap_or_else(|| panic!("no scratch database named in: {stderr}"));
    stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[tokio::test]
async fn verify_checks_the_latest_backup_by_default_and_any_backup_by_name() {
    let db = database_with_tables(1000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let first = take(work.path(), &db);
    std::thread::sleep(Duration::from_millis(1100));
    let second = take(work.path(), &db);
    let raw = manifest_of(&second)["raw_size"].as_u64().expect("raw_size");

    let out = backup(work.path(), &["verify"], &[]);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        out.stdout.clone(),
        format!(
            "verified {}: sha256 ok, {raw} bytes of SQL, 4 tables, 1022 rows\n",
            file_name(&second)
        ),
        "the newest backup, with exact counts"
    );
    for check in [
        "as its manifest says",
        "matches its manifest",
        "decompressed to the end",
        "4 tables, 1022 rows in the archive",
    ] {
        assert!(stderr.contains(check), "{check}: {stderr}");
    }

    let out = backup(work.path(), &["verify", &file_name(&first)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .clone()
            .starts_with(&format!("verified {}: sha256 ok", file_name(&first))),
        "{}",
        out.stdout.clone()
    );
}

#[tokio::test]
async fn a_flipped_byte_fails_the_checksum_before_anything_is_restored() {
    let db = database_with_tables(1000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);
    let mut bytes = std::fs::read(&archive).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&archive, &bytes).expect("write");

    for args in [&["verify"][..], &["verify", "latest", "--restore-test"][..]] {
        let out = backup(work.path(), args, &container_env());
        let stderr = out.stderr.clone();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("checksum mismatch") && stderr.contains(&file_name(&archive)),
            "{stderr}"
        );
        assert!(out.stdout.clone().is_empty(), "nothing verified on stdout");
        assert!(
            !stderr.contains("lifeboat_verify_"),
            "no scratch database for a damaged archive: {stderr}"
        );
    }
}

#[tokio::test]
async fn an_archive_cut_short_behind_a_forged_checksum_fails_to_decompress() {
    let db = database_with_tables(20_000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);
    let bytes = std::fs::read(&archive).expect("read");
    let cut = &bytes[..bytes.len() / 2];
    std::fs::write(&archive, cut).expect("truncate");
    patch_manifest(&archive, |m| {
        m["size"] = cut.len().into();
        m["sha256"] = sha256_hex(cut).into();
    });

    let out = backup(work.path(), &["verify"], &[]);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sha256") && stderr.contains("matches its manifest"),
        "the forged checksum passes: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{} is truncated", file_name(&archive))),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_restore_test_restores_counts_and_drops_its_scratch_database() {
    let db = database_with_tables(1000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);

    // Through the container (the default).
    let out = backup(
        work.path(),
        &["verify", "--restore-test", &file_name(&archive)],
        &container_env(),
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        out.stdout
            .clone()
            .ends_with("4 tables, 1022 rows, restore test ok\n"),
        "{}",
        out.stdout.clone()
    );
    assert!(
        stderr.contains("restored without an error")
            && stderr.contains("4 tables, 1022 rows counted after the restore"),
        "{stderr}"
    );
    let scratch = scratch_in(&stderr);
    assert!(
        stderr.contains(&format!("dropped the scratch database {scratch}")),
        "{stderr}"
    );
    assert!(!database_exists(&scratch).await, "{scratch} is gone");

    // With a URL over TLS, on two sessions (a small archive is one by default): the local
    // psql for the schema, the rows on two connections of lifeboat's own (sslmode=require),
    // the password never shown.
    let url = lifeboat_testkit::database_url();
    let password = lifeboat_testkit::database_password();
    let out = backup(
        work.path(),
        &["verify", "--restore-test", "--database", &db],
        &[
            ("DATABASE_URL", format!("{url}?sslmode=require")),
            ("LIFEBOAT_RESTORE_JOBS", "2".into()),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    assert!(
        stderr.contains("loading the data on 2 sessions over direct connections")
            && stderr.contains("4 tables, 1022 rows counted after the restore"),
        "{stderr}"
    );
    let scratch = scratch_in(&stderr);
    assert!(!database_exists(&scratch).await, "{scratch} is gone");
}

#[tokio::test]
async fn a_row_count_that_differs_from_the_manifest_names_the_table() {
    let db = database_with_tables(1000).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);

    // The manifest was edited: the archive's own count disagrees, with or without a restore.
    patch_manifest(&archive, |m| {
        let tables = m["tables"].as_array_mut().expect("tables");
        let notes = tables
            .iter_mut()
            .find(|t| t["name"] == "public.notes")
            .expect("public.notes in the manifest");
        notes["rows"] = 18.into();
    });
    for args in [&["verify"][..], &["verify", "--restore-test"][..]] {
        let out = backup(work.path(), args, &container_env());
        let stderr = out.stderr.clone();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("table public.notes: 17 rows in the archive, the manifest says 18"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("table public.items"),
            "only the table that differs: {stderr}"
        );
        if args.contains(&"--restore-test") {
            let scratch = scratch_in(&stderr);
            assert!(!database_exists(&scratch).await, "{scratch} is gone");
        }
    }

    // The archive's COPY rows match, but its SQL deletes one after: only the restore sees it.
    patch_manifest(&archive, |m| {
        for t in m["tables"].as_array_mut().expect("tables") {
            if t["name"] == "public.notes" {
                t["rows"] = 17.into();
            }
        }
    });
    rewrite_sql(&archive, |sql| {
        format!("{sql}DELETE FROM public.notes WHERE id = 1;\n")
    });
    let out = backup(work.path(), &["verify"], &container_env());
    assert_eq!(
        out.status.code(),
        Some(0),
        "the archive itself is consistent: {}",
        out.stderr.clone()
    );
    let out = backup(work.path(), &["verify", "--restore-test"], &container_env());
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("table public.notes: 16 rows in the restored database, the manifest says 17"),
        "{stderr}"
    );
    let scratch = scratch_in(&stderr);
    assert!(!database_exists(&scratch).await, "{scratch} is gone");
}

#[tokio::test]
async fn a_restore_that_fails_with_an_sql_error_says_so_and_drops_the_scratch_database() {
    let db = database_with_tables(100).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);
    rewrite_sql(&archive, |sql| {
        sql.replacen(
            "CREATE TABLE public.notes",
            "SELECT * FROM lbtest_no_such_table;\nCREATE TABLE public.notes",
            1,
        )
    });
    let out = backup(work.path(), &["verify", "--restore-test"], &container_env());
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SQL error")
            && stderr.contains("relation \"lbtest_no_such_table\" does not exist"),
        "{stderr}"
    );
    let scratch = scratch_in(&stderr);
    assert!(!database_exists(&scratch).await, "{scratch} is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_restore_test_drops_the_scratch_database() {
    let db = database_with_tables(600_000).await;
    let work = tempfile::tempdir().expect("tempdir");
    take(work.path(), &db);
    let mut child = support::backup_command(work.path(), &["verify", "--restore-test"], &[])
        .envs(container_env())
        .spawn();
    // Wait until the restore is under way, then stop it as cron's timeout or `docker stop` would.
    let mut stderr = child.stderr_lines();
    let mut seen = String::new();
    while !seen.contains("restoring ") {
        let line = stderr
            .next()
            .unwrap_or_else(|| panic!("the run ended before the restore: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
    }
    // Under way means its scratch database exists: the event, not a guess of time.
    let scratch = scratch_in(&seen);
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while !database_exists(&scratch).await {
        assert!(
            std::time::Instant::now() < deadline,
            "{scratch} never appeared: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.signal("TERM");
    let ran = child.wait();
    let seen = ran.stderr;
    assert_eq!(ran.code, 1, "{seen}");
    assert!(seen.contains("stopped by SIGTERM"), "{seen}");
    assert!(
        seen.contains(&format!("dropped the scratch database {scratch}")),
        "{seen}"
    );
    assert!(!database_exists(&scratch).await, "{scratch} is gone");
}

#[test]
fn a_name_that_is_no_backup_is_exit_2_naming_the_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = backup(
        work.path(),
        &["verify", "backup_19990101_000000.sql.gz"],
        &[],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("backup_19990101_000000.sql.gz")
            && stderr.contains("backups")
            && stderr.contains("`lifeboat-backup list`"),
        "{stderr}"
    );
    assert!(out.stdout.clone().is_empty());
}

#[tokio::test]
async fn a_restore_test_of_a_backup_of_every_database_is_refused_with_exit_2() {
    let db = database_with_tables(10).await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = take(work.path(), &db);
    patch_manifest(&archive, |m| m["all"] = true.into());
    let out = backup(work.path(), &["verify", "--restore-test"], &container_env());
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("single-database backups only"), "{stderr}");
    assert!(
        !stderr.contains("lifeboat_verify_"),
        "nothing was done: {stderr}"
    );
}
