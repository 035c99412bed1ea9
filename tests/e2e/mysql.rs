//! MySQL-protocol servers (seed 004 runs TiDB): lifeboat-backup, verify and lifeboat-smoke
//! against a real MariaDB (Debian's mariadb-server in `lifeboat-test/mariadb`), through its
//! container and through a `mysql://` URL with the local client over TLS.
//!
//! TiDB itself cannot run here: its detection and options are unit-tested in backup/src/mysql/mod.rs.

use std::path::Path;
use std::process::Command;

use lifeboat_testkit::{docker_ok, gunzip, lifeboat, manifest_of, unique};

mod support;
use support::{archive_of, backup, file_name};

/// SQL as root in the test MariaDB (the password in the environment, never on the command line).
fn mariadb(database: Option<&str>, sql: &str) -> String {
    let container = lifeboat_testkit::mysql_container();
    let mut args = vec![
        "exec".to_owned(),
        "-e".to_owned(),
        format!("MYSQL_PWD={}", lifeboat_testkit::mysql_root_password()),
        container,
        "mariadb".to_owned(),
        "-uroot".to_owned(),
        "--batch".to_owned(),
        "--default-character-set=utf8mb4".to_owned(),
        "--skip-column-names".to_owned(),
    ];
    if let Some(db) = database {
        args.push(db.to_owned());
    }
    args.push("-e".to_owned());
    args.push(sql.to_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&refs)
}

/// A database with every kind of object a restore must bring back: tables with rows (utf8mb4
/// text, binary, NULL, quotes and parentheses in values), a view, a procedure, a function, a
/// trigger, an event, and a grant to a second user.
fn shop_database() -> String {
    let db = unique("lbtest_my_");
    mariadb(
        None,
        &format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
    );
    mariadb(
        Some(&db),
        "CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, note TEXT, photo BLOB);
         INSERT INTO customers (name, note, photo) VALUES
           ('Zoë 🎹 Ñandú', 'it''s (tricky), \\\\ and ''quoted''', 0x00FF28),
           ('Ana', NULL, NULL),
           ('line\nbreak', '),(', '');
         CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL,
           total DECIMAL(10,2) NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers(id));
         INSERT INTO orders (customer_id, total) SELECT c.id, seq FROM customers c, seq_1_to_500 s WHERE c.id <= 2;
         CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(200));
         CREATE TABLE empty_table (id INT);
         CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 250;
         CREATE PROCEDURE add_customer(IN n VARCHAR(100)) INSERT INTO customers (name) VALUES (n);
         CREATE FUNCTION order_count() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM orders);
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
         CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit;",
    );
    let reader = format!("{db}_reader");
    mariadb(
        None,
        &format!(
            "CREATE USER IF NOT EXISTS '{reader}'@'%' IDENTIFIED BY 'reader-pw';
             GRANT SELECT ON `{db}`.* TO '{reader}'@'%';"
        ),
    );
    db
}

/// The shop database (see [`shop_database`]) backed up through the container into `dir`:
/// the database, the container, and the backup's run.
fn backed_up_shop(dir: &Path) -> (String, String, lifeboat_testkit::Ran) {
    let db = shop_database();
    let container = lifeboat_testkit::mysql_container();
    let out = backup(
        dir,
        &["--database", &db],
        &[("LIFEBOAT_DB_CONTAINER", &container)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    (db, container, out)
}

fn drop_database(db: &str) {
    mariadb(
        None,
        &format!("DROP DATABASE IF EXISTS `{db}`; DROP USER IF EXISTS '{db}_reader'@'%';"),
    );
}

/// The restore tests' scratch databases left on the server (none, ever).
fn scratch_databases() -> String {
    mariadb(
        None,
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'lifeboat\\_verify\\_%'",
    )
}

/// Files in `dir` that are not hidden.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn a_mariadb_container_backup_holds_every_object_verifies_and_restores_with_the_plain_client() {
    let work = tempfile::tempdir().expect("tempdir");
    let (db, container, out) = backed_up_shop(work.path());
    let archive = archive_of(work.path(), &out);
    assert!(file_name(&archive).ends_with(".sql.gz"));

    let sql = gunzip(&archive);
    assert!(
        !sql.starts_with("/*M!999999"),
        "MariaDB's sandbox line is left out: {}",
        &sql[..80.min(sql.len())]
    );
    for object in [
        "CREATE TABLE `customers`",
        "VIEW `big_orders`",
        "PROCEDURE `add_customer`",
        "FUNCTION `order_count`",
        "TRIGGER orders_audit",
        "EVENT `nightly`",
    ] {
        assert!(sql.contains(object), "{object} is in the dump");
    }

    let manifest = manifest_of(&archive);
    assert_eq!(manifest["database"], db.as_str());
    assert!(
        manifest["server_version"]
            .as_str()
            .is_some_and(|v| v.contains("MariaDB")),
        "{}",
        manifest["server_version"]
    );
    let rows = |table: &str| {
        manifest["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == table)
            .map(|t| t["rows"].as_i64().expect("rows"))
    };
    assert_eq!(rows("customers"), Some(3), "{}", manifest["tables"]);
    assert_eq!(rows("orders"), Some(1000));
    assert_eq!(rows("empty_table"), Some(0));
    assert_eq!(rows("big_orders"), None, "a view holds no rows of its own");

    let verify = lifeboat("lifeboat-backup")
        .dir(work.path())
        .args(["verify", "latest"])
        .run();
    assert_eq!(verify.code, 0, "{}", verify.stderr);

    // The archive is plain SQL: `gunzip | mariadb` restores it into another database, whole.
    let copy = unique("lbtest_mycopy_");
    mariadb(
        None,
        &format!("CREATE DATABASE `{copy}` CHARACTER SET utf8mb4"),
    );
    let loaded = Command::new("docker")
        .args([
            "exec",
            "-i",
            "-e",
            &format!("MYSQL_PWD={}", lifeboat_testkit::mysql_root_password()),
            &container,
            "mariadb",
            "-uroot",
            &copy,
        ])
        .stdin(std::fs::File::open(decompressed(&archive, work.path())).expect("sql"))
        .output()
        .expect("docker exec");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let snapshot = |d: &str| {
        mariadb(
            Some(d),
            "SELECT CONCAT_WS('|', id, name, IFNULL(note, 'NULL'), IFNULL(HEX(photo), 'NULL')) FROM customers ORDER BY id;
             SELECT COUNT(*), SUM(total) FROM orders; SELECT COUNT(*) FROM big_orders; SELECT order_count();",
        )
    };
    assert_eq!(snapshot(&copy), snapshot(&db));
    assert!(
        snapshot(&copy).contains("Zoë 🎹 Ñandú"),
        "{}",
        snapshot(&copy)
    );
    drop_database(&copy);
    drop_database(&db);
}

/// The archive decompressed into a file beside it, for a client's stdin.
fn decompressed(archive: &Path, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("restore.sql");
    std::fs::write(&path, gunzip(archive)).expect("write");
    path
}

#[test]
fn a_url_backup_verify_and_restore_use_the_local_client_over_verified_tls() {
    let db = shop_database();
    let work = tempfile::tempdir().expect("tempdir");
    let base = lifeboat_testkit::mysql_url();
    let root = base.replacen(
        &format!("lifeboat:{}", lifeboat_testkit::mysql_password()),
        &format!("root:{}", lifeboat_testkit::mysql_root_password()),
        1,
    );
    let url = format!(
        "{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        root.rsplit_once('/').expect("a path").0.to_owned() + "/" + &db,
        lifeboat_testkit::mysql_ca_file()
    );
    let out = backup(work.path(), &[], &[("DATABASE_URL", &url)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let archive = archive_of(work.path(), &out);
    let manifest = manifest_of(&archive);
    assert!(
        manifest["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("url mysql://root:***@")),
        "{}",
        manifest["source"]
    );
    assert_eq!(manifest["tables"].as_array().map(Vec::len), Some(4));
    assert!(gunzip(&archive).contains("TRIGGER orders_audit"));

    // The restore test over the URL: the local client loads, lifeboat's own client counts.
    let verify = lifeboat("lifeboat-backup")
        .dir(work.path())
        .args(["verify", "latest", "--restore-test"])
        .env("DATABASE_URL", &url)
        .run();
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stdout.contains("restore test ok"),
        "{}",
        verify.stdout
    );
    assert_eq!(scratch_databases(), "", "the scratch database is dropped");

    // A restore over the URL: the local client loads, the swap runs through it too.
    let before = objects(&db);
    mariadb(
        Some(&db),
        "DELETE FROM orders WHERE id > 10; DROP VIEW big_orders;",
    );
    let out = lifeboat("lifeboat-restore")
        .dir(work.path())
        .args(["--yes", "--no-progress", "--no-safety-backup", "latest"])
        .env("DATABASE_URL", &url)
        .env("LIFEBOAT_LOCK_DIR", work.path().join("locks"))
        .secret(lifeboat_testkit::mysql_root_password())
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(objects(&db), before);
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM orders"), "1000");
    for pre in databases_like(&format!("{db}__pre_restore_")) {
        drop_database(&pre);
    }

    // The app's own user may not create databases: the restore test says so, and leaves nothing.
    let app_user = format!(
        "{}/{db}?ssl-mode=REQUIRED",
        base.rsplit_once('/').expect("a path").0
    );
    mariadb(
        None,
        &format!(
            "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON `{db}`.* TO 'lifeboat'@'%'"
        ),
    );
    let verify = lifeboat("lifeboat-backup")
        .dir(work.path())
        .args(["verify", "latest", "--restore-test"])
        .env("DATABASE_URL", &app_user)
        .secret(lifeboat_testkit::mysql_password())
        .run();
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    assert!(
        verify.stderr.contains("cannot create the scratch database"),
        "{}",
        verify.stderr
    );
    assert_eq!(scratch_databases(), "");

    // A server certificate the CA did not sign is refused before anything is written.
    let wrong = url.replace("ssl-ca=", "ssl-ca=/etc/ssl/certs/ca-certificates.crt&x=");
    let before = files(work.path());
    let out = backup(work.path(), &[], &[("DATABASE_URL", &wrong)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(files(work.path()), before, "nothing new is left");
    drop_database(&db);
}

#[test]
fn a_failed_mysql_dump_leaves_nothing_and_a_restore_test_passes() {
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::mysql_container();
    let env = [("LIFEBOAT_DB_CONTAINER", container.as_str())];
    let out = backup(work.path(), &["--database", "lbtest_no_such_db"], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("lbtest_no_such_db"), "{}", out.stderr);
    let dir = work.path().join("backups");
    assert!(
        !dir.exists() || files(&dir).is_empty(),
        "no archive, no partial file: {:?}",
        files(&dir)
    );

    let out = backup(work.path(), &["--all"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);

    let db = shop_database();
    let out = backup(work.path(), &["--database", &db], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let verify = lifeboat("lifeboat-backup")
        .dir(work.path())
        .args(["verify", "latest", "--restore-test", "--database", &db])
        .envs(env)
        .run();
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify
            .stdout
            .contains("4 tables, 1003 rows, restore test ok"),
        "{}",
        verify.stdout
    );
    assert_eq!(scratch_databases(), "", "the scratch database is dropped");
    drop_database(&db);
}

/// Every object of `db` as `kind name`, sorted: what a restore must bring back.
fn objects(db: &str) -> String {
    mariadb(
        None,
        &format!(
            "SELECT CONCAT(t, ' ', n) FROM (
               SELECT 'table' t, TABLE_NAME n FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'
               UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'
               UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'
               UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}') o
             ORDER BY 1"
        ),
    )
}

/// The databases whose name starts with `prefix` (`_` taken literally).
fn databases_like(prefix: &str) -> Vec<String> {
    let pattern = prefix.replace('_', "\\_");
    let out = mariadb(
        None,
        &format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{pattern}%' ORDER BY 1"),
    );
    out.lines().map(str::to_owned).collect()
}

fn restore(dir: &Path, db: &str, backup: &str) -> lifeboat_testkit::Ran {
    let container = lifeboat_testkit::mysql_container();
    lifeboat("lifeboat-restore")
        .dir(dir)
        .args(["--yes", "--no-progress", "--database", db, backup])
        .env("LIFEBOAT_DB_CONTAINER", &container)
        .env("LIFEBOAT_LOCK_DIR", dir.join("locks"))
        .secret(lifeboat_testkit::mysql_root_password())
        .run()
}

#[test]
fn a_mysql_restore_swaps_tables_views_routines_triggers_and_events_and_keeps_grants() {
    let db = shop_database();
    let reader = format!("{db}_reader");
    mariadb(
        None,
        &format!("GRANT INSERT ON `{db}`.`audit` TO '{reader}'@'%'"),
    );
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::mysql_container();
    let out = backup(
        work.path(),
        &["--database", &db],
        &[("LIFEBOAT_DB_CONTAINER", &container)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let backed_up = objects(&db);
    let customers = mariadb(
        Some(&db),
        "SELECT GROUP_CONCAT(name ORDER BY id) FROM customers",
    );

    // The incident: rows changed, a view dropped, a table added.
    mariadb(
        Some(&db),
        "INSERT INTO orders (customer_id, total) VALUES (1, 5);
         UPDATE customers SET name = 'overwritten';
         DROP VIEW big_orders;
         CREATE TABLE junk (id INT);",
    );
    let incident = objects(&db);

    let out = restore(work.path(), &db, "latest");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        objects(&db),
        backed_up,
        "every object is back, nothing more"
    );
    assert_eq!(
        mariadb(
            Some(&db),
            "SELECT GROUP_CONCAT(name ORDER BY id) FROM customers"
        ),
        customers,
        "utf8mb4 text as it was"
    );
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM orders"), "1000");
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM audit"), "0");
    // Each object works on the restored tables: the view, the trigger, the routines.
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM big_orders"), "500");
    mariadb(
        Some(&db),
        "INSERT INTO orders (customer_id, total) VALUES (2, 7); CALL add_customer('new');",
    );
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM audit"), "1");
    assert_eq!(mariadb(Some(&db), "SELECT order_count()"), "1001");
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM customers"), "4");
    // The grants name the database and the table, and so hold on the restored ones.
    let grants = mariadb(None, &format!("SHOW GRANTS FOR '{reader}'@'%'"));
    assert!(
        grants.contains(&format!("GRANT SELECT ON `{db}`.*")),
        "{grants}"
    );
    assert!(
        grants.contains(&format!("GRANT INSERT ON `{db}`.`audit`")),
        "{grants}"
    );
    let as_reader = docker_ok(&[
        "exec",
        "-e",
        "MYSQL_PWD=reader-pw",
        &container,
        "mariadb",
        &format!("-u{reader}"),
        "--batch",
        "--skip-column-names",
        &db,
        "-e",
        "SELECT COUNT(*) FROM big_orders",
    ]);
    assert_eq!(as_reader, "500");

    // The database from before is kept beside it, whole, and its safety backup taken.
    let pre = databases_like(&format!("{db}__pre_restore_"));
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(objects(&pre[0]), incident);
    assert_eq!(
        mariadb(Some(&pre[0]), "SELECT COUNT(*) FROM orders"),
        "1001"
    );
    assert!(databases_like(&format!("{db}__restore_")).is_empty());
    let backups = files(&work.path().join("backups"));
    assert!(
        backups
            .iter()
            .any(|f| f.starts_with("safety_before_restore_") && f.ends_with(".sql.gz")),
        "{backups:?}"
    );
    assert!(out.stderr.contains("swapped"), "{}", out.stderr);
    drop_database(&pre[0]);
    drop_database(&db);
}

/// A restore of the latest backup paused at `step` (the test hook), then sent `signal`.
fn stopped_at(dir: &Path, db: &str, step: &str, signal: &str) -> lifeboat_testkit::Ran {
    let mut child = lifeboat("lifeboat-restore")
        .dir(dir)
        .args([
            "--yes",
            "--no-progress",
            "--no-safety-backup",
            "--database",
            db,
            "latest",
        ])
        .env("LIFEBOAT_DB_CONTAINER", lifeboat_testkit::mysql_container())
        .env("LIFEBOAT_LOCK_DIR", dir.join("locks"))
        .env("LBTEST_RESTORE_PAUSE_AT", step)
        .spawn();
    let marker = format!("paused at step {step}");
    let mut seen = String::new();
    for line in child.stderr_lines() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(&marker) {
            break;
        }
    }
    assert!(seen.contains(&marker), "{seen}");
    child.signal(signal);
    child.wait()
}

#[test]
fn a_mysql_restore_that_fails_or_is_stopped_leaves_the_live_database_as_it_was() {
    let work = tempfile::tempdir().expect("tempdir");
    let (db, _, _) = backed_up_shop(work.path());
    mariadb(
        Some(&db),
        "INSERT INTO orders (customer_id, total) VALUES (1, 5)",
    );
    let live = objects(&db);
    let untouched = |what: &str| {
        assert_eq!(objects(&db), live, "{what}");
        assert_eq!(
            mariadb(Some(&db), "SELECT COUNT(*) FROM orders"),
            "1001",
            "{what}"
        );
        assert!(
            databases_like(&format!("{db}__restore_")).is_empty(),
            "{what}"
        );
        assert!(
            databases_like(&format!("{db}__pre_restore_")).is_empty(),
            "{what}"
        );
    };

    // SIGTERM at each step, the swap and the start included: the run undoes itself.
    for step in ["restoring", "stopping", "swapping", "starting"] {
        let ran = stopped_at(work.path(), &db, step, "TERM");
        assert_eq!(
            ran.status.code(),
            Some(1),
            "SIGTERM at {step}: {}",
            ran.stderr
        );
        untouched(&format!("after SIGTERM at {step}"));
    }

    // A load that fails (a table's rows the server refuses: a duplicate key in the dump).
    let dir = work.path().join("backups");
    let archive = dir.join(
        files(&dir)
            .into_iter()
            .find(|f| f.ends_with(".sql.gz"))
            .expect("the archive"),
    );
    let bad = lifeboat_testkit::edited_copy(&archive, "backup_29990101_000000.sql.gz", |sql| {
        assert!(
            sql.contains("INSERT INTO `customers` VALUES\n(1,"),
            "the first customer row"
        );
        sql.replacen(
            "INSERT INTO `customers` VALUES\n(1,",
            "INSERT INTO `customers` VALUES\n(2,",
            1,
        )
    });
    let out = restore(work.path(), &db, "backup_29990101_000000.sql.gz");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("failed with an SQL error") && out.stderr.contains("was not touched"),
        "{}",
        out.stderr
    );
    untouched("after a failed load");
    std::fs::remove_file(&bad).expect("rm");
    std::fs::remove_file(lifeboat_testkit::manifest_path(&bad)).expect("rm");

    // A corrupt archive is refused before anything is touched.
    let mut bytes = std::fs::read(&archive).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&archive, bytes).expect("write");
    let out = restore(work.path(), &db, "latest");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("SHA-256"), "{}", out.stderr);
    untouched("after a corrupt archive");
    drop_database(&db);
}

#[test]
fn a_mysql_restore_killed_outright_is_undone_before_the_swap_and_finished_after_it() {
    let db = shop_database();
    let work = tempfile::tempdir().expect("tempdir");
    let container = lifeboat_testkit::mysql_container();
    let env = [("LIFEBOAT_DB_CONTAINER", container.as_str())];
    let out = backup(work.path(), &["--database", &db], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    mariadb(
        Some(&db),
        "INSERT INTO orders (customer_id, total) VALUES (1, 5)",
    );
    let live = objects(&db);
    let rerun = || {
        lifeboat("lifeboat-restore")
            .dir(work.path())
            .args(["--yes", "--no-progress", "--database", &db])
            .env("LIFEBOAT_DB_CONTAINER", &container)
            .env("LIFEBOAT_LOCK_DIR", work.path().join("locks"))
            .run()
    };

    // Killed before the swap: the next run undoes it.
    let killed = stopped_at(work.path(), &db, "swapping", "KILL");
    assert_eq!(killed.status.code(), None, "killed");
    let out = rerun();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("undid the interrupted restore"),
        "{}",
        out.stderr
    );
    assert_eq!(objects(&db), live);
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM orders"), "1001");
    assert!(databases_like(&format!("{db}__restore_")).is_empty());
    assert!(databases_like(&format!("{db}__pre_restore_")).is_empty());

    // Killed after the swap, while the app starts: the next run finishes it.
    let killed = stopped_at(work.path(), &db, "starting", "KILL");
    assert_eq!(killed.status.code(), None, "killed");
    let out = rerun();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("finished the interrupted restore"),
        "{}",
        out.stderr
    );
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM orders"), "1000");
    assert_eq!(mariadb(Some(&db), "SELECT COUNT(*) FROM big_orders"), "500");
    let pre = databases_like(&format!("{db}__pre_restore_"));
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(objects(&pre[0]), live, "the database from before, whole");
    assert!(databases_like(&format!("{db}__restore_")).is_empty());
    drop_database(&pre[0]);
    drop_database(&db);
}

#[test]
fn smoke_s_mysql_kind_reads_in_a_read_only_transaction_and_judges_the_value() {
    let db = shop_database();
    let work = tempfile::tempdir().expect("tempdir");
    let url = lifeboat_testkit::mysql_url();
    let root = url.replacen(
        &format!("lifeboat:{}", lifeboat_testkit::mysql_password()),
        &format!("root:{}", lifeboat_testkit::mysql_root_password()),
        1,
    );
    let db_url = format!("{}/{db}", root.rsplit_once('/').expect("a path").0);
    let spec = work.path().join("smoke.toml");
    std::fs::write(
        &spec,
        format!(
            r#"
[[check]]
name = "tidb-connected"
kind = "mysql"

[[check]]
name = "orders"
kind = "mysql"
query = "SELECT COUNT(*) FROM orders"
expect = {{ at-least = 1000, max-ms = 5000 }}

[[check]]
name = "tls"
kind = "mysql"
url = "{db_url}?ssl-mode=VERIFY_IDENTITY"
ca-file = "{ca}"
query = "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'"
expect = {{ equals = "1" }}

[[check]]
name = "no-writes"
kind = "mysql"
query = "DELETE FROM orders"
retries = 0
"#,
            ca = lifeboat_testkit::mysql_ca_file()
        ),
    )
    .expect("spec");
    let out = lifeboat("lifeboat-smoke")
        .dir(work.path())
        .args(["--spec", &spec.display().to_string()])
        .env("DATABASE_URL", &db_url)
        .run();
    assert_eq!(out.code, 1, "only no-writes fails: {}", out.stderr);
    let line = |name: &str| {
        out.stderr
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name}: {}", out.stderr))
            .to_owned()
    };
    for passed in ["tidb-connected", "orders", "tls"] {
        assert!(line(passed).starts_with('✓'), "{}", out.stderr);
    }
    assert!(line("orders").contains(": 1000 in"), "{}", line("orders"));
    let refused = line("no-writes");
    assert!(refused.starts_with('✗'), "{refused}");
    assert!(refused.contains("READ ONLY"), "{refused}");
    assert_eq!(
        mariadb(Some(&db), "SELECT COUNT(*) FROM orders"),
        "1000",
        "the read-only check deleted nothing"
    );
    drop_database(&db);
}

/// docs/mysql.md's smoke.toml for seed 004, as written there.
fn seed_004_spec() -> String {
    let doc = std::fs::read_to_string(lifeboat_testkit::workspace_root().join("docs/mysql.md"))
        .expect("docs/mysql.md");
    let start = doc
        .find("```toml smoke.toml\n")
        .expect("a smoke.toml block")
        + "```toml smoke.toml\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    doc[start..end].to_owned()
}

#[test]
fn seed_004_s_checks_pass_against_mariadb_tls_redis_and_a_rest_endpoint() {
    use lifeboat_testkit::{http_response, HttpFixture, Reply};
    let db = shop_database();
    let work = tempfile::tempdir().expect("tempdir");
    let token = "upstash-token-5b1c7e";
    let rest = HttpFixture::start(Reply::Raw(http_response(
        "200 OK",
        "Content-Type: application/json\r\n",
        r#"{"result":"PONG"}"#,
    )));
    // The test Redis speaks only TLS, with a certificate of the test CA: the documented spec,
    // with that CA for the redis check.
    let spec = seed_004_spec().replace(
        "kind = \"redis\"",
        &format!(
            "kind = \"redis\"\nca-file = \"{}\"",
            lifeboat_testkit::mysql_ca_file()
        ),
    );
    let path = work.path().join("smoke.toml");
    std::fs::write(&path, spec).expect("spec");
    let url = lifeboat_testkit::mysql_url();
    let db_url = format!("{}/{db}", url.rsplit_once('/').expect("a path").0);
    mariadb(None, &format!("GRANT SELECT ON `{db}`.* TO 'lifeboat'@'%'"));
    let out = lifeboat("lifeboat-smoke")
        .dir(work.path())
        .args(["--spec", &path.display().to_string(), "--env", "production"])
        .env("DATABASE_URL", &db_url)
        .env(
            "REDIS_URL",
            lifeboat_testkit::stack_var("LBTEST_REDISS_URL"),
        )
        .env("UPSTASH_REDIS_REST_URL", rest.url("").trim_end_matches('/'))
        .env("UPSTASH_REDIS_REST_TOKEN", token)
        .secret(token)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    for check in ["tidb", "redis-latency", "redis"] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with('✓') && l.contains(check)),
            "{check}: {}",
            out.stderr
        );
    }
    let requests = rest.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /ping ") && r.contains(&format!("Bearer {token}"))),
        "{requests:?}"
    );
    drop_database(&db);
}
