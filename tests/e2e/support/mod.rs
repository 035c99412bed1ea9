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
