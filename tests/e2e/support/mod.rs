//! What the lifeboat-backup test files share: a database to back up on the test server, the
//! real binary run through the testkit's `lifeboat()` (a clean environment; no panic and no
//! known secret in its output), and the backup it leaves.
//!
//! Each test file that needs it says `mod support;`; not every file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lifeboat::secret::SecretUrl;
use lifeboat_testkit::{lifeboat, unique, Lifeboat, Ran};

/// Create a database named `<prefix><random>` on the server at `url` and run `sql` in it;
/// returns its name.
pub async fn create_database_at(url: &str, prefix: &str, sql: &str) -> String {
    let name = unique(prefix);
    let target = lifeboat::db::DbTarget::from_url(&SecretUrl::new(url.to_owned())).expect("url");
    let admin = target.connect().await.expect("connect");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let db = target
        .with_database(&name)
        .connect()
        .await
        .expect("connect to the new database");
    db.batch_execute(sql).await.expect("fill");
    name
}

/// The same on the test stack's server.
pub async fn create_database(prefix: &str, sql: &str) -> String {
    create_database_at(&lifeboat_testkit::database_url(), prefix, sql).await
}

/// A database with a table `items` of `rows` rows on the server at `url`.
pub async fn database_with_rows(url: &str, rows: i64) -> String {
    create_database_at(
        url,
        "lbtest_",
        &format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL);
             INSERT INTO items SELECT g, 'ítem ' || md5(g::text) FROM generate_series(1, {rows}) g;
             ANALYZE items;"
        ),
    )
    .await
}

/// The real lifeboat-backup in `dir`, with only PATH and `env` in its environment.
pub fn backup_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Lifeboat {
    lifeboat("lifeboat-backup")
        .dir(dir)
        .args(args)
        .envs(env.iter().copied())
}

/// Run it to the end.
pub fn backup(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    backup_command(dir, args, env).run()
}

/// The new backup's path, from stdout, which must be that one line and nothing else.
pub fn archive_of(dir: &Path, out: &Ran) -> PathBuf {
    assert_eq!(out.stdout.lines().count(), 1, "stdout: {:?}", out.stdout);
    dir.join(out.stdout.trim())
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned()
}

/// psql on the test stack's server (LBTEST_POSTGRES_CONTAINER) as its superuser: one value, or
/// rows, unaligned.
pub fn stack_psql(db: &str, sql: &str) -> String {
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let user = lifeboat_testkit::docker_ok(&["exec", &container, "printenv", "POSTGRES_USER"]);
    lifeboat_testkit::docker_ok(&[
        "exec",
        &container,
        "psql",
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        &user,
        "-d",
        db,
        "-c",
        sql,
    ])
}

/// A database `<prefix><random>` on the test stack's server with a table `notes` of `rows`
/// rows, `body` made by the SQL expression `body` of `g` (the row's number).
pub fn notes_database(prefix: &str, rows: u32, body: &str) -> String {
    let db = unique(prefix);
    stack_psql("postgres", &format!("CREATE DATABASE {db}"));
    stack_psql(
        &db,
        &format!(
            "CREATE TABLE notes (id int PRIMARY KEY, body text); \
             INSERT INTO notes SELECT g, {body} FROM generate_series(1, {rows}) g"
        ),
    );
    db
}

/// Drop a test's database, whoever is connected.
pub fn drop_database(db: &str) {
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let user = lifeboat_testkit::docker_ok(&["exec", &container, "printenv", "POSTGRES_USER"]);
    let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
    let _ = lifeboat_testkit::docker(&[
        "exec", &container, "psql", "-X", "-q", "-U", &user, "-d", "postgres", "-c", &sql,
    ]);
}

/// The backups' archive names in `dir` (encrypted or not; no manifests, no partial files),
/// sorted.
pub fn archives(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    lifeboat_backup::manifest::EXTENSIONS
                        .iter()
                        .any(|ext| n.ends_with(ext))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Flip a byte in the middle of `archive` (its size unchanged); the bytes it had.
pub fn damage(archive: &Path) -> Vec<u8> {
    let good = std::fs::read(archive).expect("read");
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(archive, &damaged).expect("damage");
    good
}
