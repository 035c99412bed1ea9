//! `lifeboat-restore` against the real PostgreSQL, Docker, the demo compose stack and S3 (moto):
//! a restore gives back exactly the database that was backed up (pg_dump before = pg_dump
//! after, with everything a plain restore tends to lose), damaged backups are refused with the
//! live database untouched, a failure before the swap leaves the app running, an app that is
//! unhealthy after the swap is put back on its old data, a signal at any step (or SIGKILL and a
//! rerun) leaves one consistent database live, and a backup in the bucket restores too.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_testkit::{
    block_on, docker, docker_ok, edited_copy, gunzip, manifest_of, patch_manifest, sha256_hex,
    stack_var, unique, wait_for, DemoStack, Lifeboat, Ran, Running,
};

/// A command's output (docker's bytes, or a [`Ran`]'s text) as text.
fn text(bytes: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(bytes.as_ref()).into_owned()
}

/// A lifeboat binary in `dir` through the testkit's runner (a clean environment plus `env`; no
/// panic and no known secret in its output).
fn command(name: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Lifeboat {
    lifeboat_testkit::lifeboat(name)
        .dir(dir)
        .args(args)
        .env("LIFEBOAT_LOCK_DIR", dir.join("locks"))
        .envs(env.iter().map(|(k, v)| (k, v)))
}

/// Run it to the end.
fn lifeboat(name: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Ran {
    command(name, dir, args, env).run()
}

fn ok(out: &Ran, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// psql inside a postgres container, as its superuser; the output, trimmed.
fn psql(container: &str, user: &str, db: &str, sql: &str) -> String {
    let out = docker(&[
        "exec",
        "-e",
        &format!("PGUSER={user}"),
        container,
        "psql",
        "-X",
        "-q",
        "-tA",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        db,
        "-c",
        sql,
    ]);
    assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `pg_dump --create` of `db` (everything, the database's own settings, owner and grants
/// included), without the random `\restrict` key lines of pg_dump 15.14+.
fn dump(container: &str, user: &str, db: &str) -> String {
    let out = docker(&[
        "exec",
        "-e",
        &format!("PGUSER={user}"),
        container,
        "pg_dump",
        "--create",
        "-d",
        db,
    ]);
    assert!(out.status.success(), "pg_dump: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn databases_like(container: &str, user: &str, prefix: &str) -> Vec<String> {
    psql(
        container,
        user,
        "postgres",
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

// ---------------------------------------------------------------------------------------------
// On the shared test server (LBTEST_POSTGRES_CONTAINER), databases and roles of the test's own.

struct Shared {
    container: String,
    user: String,
    db: String,
    roles: Vec<String>,
    /// Tablespaces of the test's own, and their directories in the container.
    spaces: Vec<(String, String)>,
}

impl Shared {
    fn new(prefix: &str) -> Self {
        let container = stack_var("LBTEST_POSTGRES_CONTAINER");
        let user = docker_ok(&["exec", &container, "printenv", "POSTGRES_USER"]);
        Self {
            container,
            user,
            db: unique(prefix),
            roles: Vec::new(),
            spaces: Vec::new(),
        }
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        psql(&self.container, &self.user, db, sql)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("LIFEBOAT_DB_CONTAINER", self.container.clone())]
    }

    /// Create the database with a table of notes numbered 1 to `n`, nothing else in them.
    fn with_numbered_notes(&self, n: u32) {
        self.sql("postgres", &format!("CREATE DATABASE {}", self.db));
        self.sql(
            &self.db,
            &format!(
                "CREATE TABLE notes (id int PRIMARY KEY); \
                 INSERT INTO notes SELECT generate_series(1, {n})"
            ),
        );
    }

    /// Create the database with a table of 300 notes.
    fn with_notes(&self) {
        self.sql("postgres", &format!("CREATE DATABASE {}", self.db));
        self.sql(
            &self.db,
            "CREATE TABLE notes (id int PRIMARY KEY, body text); \
             INSERT INTO notes SELECT g, 'nota ' || g FROM generate_series(1, 300) g",
        );
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for db in databases_like(&self.container, &self.user, &self.db) {
            let _ = docker(&[
                "exec",
                "-e",
                &format!("PGUSER={}", self.user),
                &self.container,
                "dropdb",
                "--force",
                &db,
            ]);
        }
        for role in &self.roles {
            let _ = docker(&[
                "exec",
                "-e",
                &format!("PGUSER={}", self.user),
                &self.container,
                "dropuser",
                role,
            ]);
        }
        for (space, dir) in &self.spaces {
            let sql = format!("DROP TABLESPACE IF EXISTS {space}");
            let _ = docker(&[
                "exec",
                &self.container,
                "psql",
                "-U",
                &self.user,
                "-d",
                "postgres",
                "-c",
                &sql,
            ]);
            let _ = docker(&["exec", &self.container, "rm", "-rf", dir]);
        }
    }
}

/// Take a backup of `db` into `dir` (with `extra` settings); the archive's path.
fn backup(dir: &Path, db: &str, env: &[(&str, String)]) -> PathBuf {
    let out = lifeboat(
        "lifeboat-backup",
        dir,
        &["--dir", "backups", "--database", db],
        env,
    );
    let path = ok(&out, "lifeboat-backup");
    dir.join(path.trim())
}

fn name_of(archive: &Path) -> String {
    archive
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned()
}

const FIDELITY: &str = r#"
CREATE EXTENSION citext;
CREATE SCHEMA extra AUTHORIZATION {owner};
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE people (id serial PRIMARY KEY, name citext NOT NULL, mood mood, tags text[],
                     profile jsonb, born date);
INSERT INTO people (name, mood, tags, profile, born) VALUES
  ('Lucía Ñúñez', 'happy', ARRAY['a', 'b c', 'ü'], '{"k": [1, 2, {"z": null}], "s": "ß"}', '1990-02-03'),
  ('日本語テキスト 🚀', 'sad', '{}', '{}', NULL),
  (E'O''Brien\ttab\nnewline', NULL, NULL, NULL, '2001-12-31');
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, what text)
  PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events (at, what) SELECT DATE '2025-06-01' + g, 'event ' || g FROM generate_series(1, 400) g;
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
SELECT nextval('invoice_no') FROM generate_series(1, 5);
CREATE TABLE extra.audit (id serial PRIMARY KEY, person int, note text);
CREATE FUNCTION extra.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO extra.audit (person, note) VALUES (NEW.id, 'added ' || NEW.name); RETURN NEW; END $$;
CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION extra.touch();
INSERT INTO people (name, mood) VALUES ('after the trigger', 'ok');
CREATE TABLE extra.notes (id serial PRIMARY KEY, person int REFERENCES people (id), body text UNIQUE);
INSERT INTO extra.notes (person, body) VALUES (1, '\.'), (2, E'\\.\nCOPY people FROM stdin;\n\\.');
CREATE FUNCTION extra.copy_text() RETURNS text LANGUAGE sql AS $f$ SELECT 'COPY x FROM stdin;
\.
' $f$;
CREATE VIEW happy_people AS SELECT id, name FROM people WHERE mood = 'happy';
CREATE MATERIALIZED VIEW mood_counts AS SELECT mood, count(*) AS n FROM people GROUP BY mood;
SELECT lo_from_bytea(0, convert_to('a large object, ünïcode', 'UTF8'));
SELECT lo_from_bytea(0, decode(repeat('00ff', 5000), 'hex'));
ALTER TABLE people OWNER TO {owner};
ALTER VIEW happy_people OWNER TO {owner};
GRANT SELECT ON people, happy_people TO {reader};
GRANT USAGE ON SCHEMA extra TO {reader};
GRANT SELECT, INSERT ON extra.audit TO {reader};
"#;

#[test]
fn a_restore_gives_back_the_database_exactly_with_what_a_plain_restore_loses() {
    let mut s = Shared::new("lbtest_restore_fid_");
    let db = s.db.clone();
    let (_owner, reader, before) = fidelity_fixture(&mut s);

    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &db, &s.env());

    // What an incident does: rows gone and changed, objects dropped, a sequence moved on.
    s.sql(
        &db,
        "DELETE FROM events WHERE at > '2025-09-01'; UPDATE people SET mood = 'sad'; \
         INSERT INTO people (name) VALUES ('intruder'); DROP VIEW happy_people; \
         SELECT nextval('invoice_no'); SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata; \
         REFRESH MATERIALIZED VIEW mood_counts",
    );
    assert_ne!(dump(&s.container, &s.user, &db), before);

    // Through psql in the container, as where the container's address cannot be reached (the
    // other tests here reach it, and take the direct way).
    let mut env = s.env();
    env.push(("LBTEST_RESTORE_VIA_EXEC", "1".into()));
    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &[
            "-v",
            "--dir",
            "backups",
            "--database",
            &db,
            "--yes",
            &name_of(&archive),
        ],
        &env,
    );
    let stdout = ok(&out, "lifeboat-restore");
    assert!(
        text(&out.stderr).contains("SQL goes through psql in the container"),
        "{}",
        text(&out.stderr)
    );
    let after = dump(&s.container, &s.user, &db);
    assert!(
        after == before,
        "pg_dump after the restore differs from before:\n{}",
        diff(&before, &after)
    );
    the_hostile_setting_came_back_as_a_setting(&s, &reader);
    let pre = the_database_from_before_is_kept(&s, work.path(), &archive, &stdout);
    cleanup_drops_only_the_pre_restore_database(&s, work.path(), &pre);
}

/// The parallel loader's splitter (issue 21) on pg_dump's real script of the tricky schema:
/// every byte in a piece, in order; a COPY block per table with the manifest's rows, where the
/// manifest says it is and as long; indexes and keys independent, foreign keys not; nothing it
/// does not understand.
#[test]
fn pg_dump_s_script_of_the_tricky_schema_splits_into_the_pieces_a_parallel_load_plans() {
    use lifeboat_backup::pgscript::{Piece, Section, Splitter};
    use std::io::Read as _;

    let mut s = Shared::new("lbtest_restore_split_");
    let db = s.db.clone();
    fidelity_fixture(&mut s);
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &db, &s.env());
    let mut script = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&archive).expect("archive"))
        .read_to_end(&mut script)
        .expect("gunzip");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(archive.with_extension("gz.json")).expect("manifest"),
    )
    .expect("manifest JSON");

    let mut splitter = Splitter::new();
    let mut pieces = Vec::new();
    for chunk in script.chunks(4093) {
        splitter.feed(chunk, &mut pieces);
    }
    let confused = splitter.finish(&mut pieces);
    let serial: Vec<u8> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Serial(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        confused,
        None,
        "the splitter understood all; it gave up at:\n{}",
        String::from_utf8_lossy(&serial[..serial.len().min(2000)])
    );

    let mut again = Vec::new();
    let mut tables: Vec<(String, i64)> = Vec::new();
    // Each block's (offset, bytes) in the script.
    let mut blocks: Vec<(u64, u64)> = Vec::new();
    let (mut independent, mut fk_in_order) = (0, 0);
    for p in &pieces {
        match p {
            Piece::Sql {
                text,
                kind,
                independent: i,
                section,
            } => {
                again.extend_from_slice(text);
                independent += usize::from(*i);
                if kind.as_deref() == Some("FK CONSTRAINT") {
                    assert!(!i && *section == Section::PostData, "{p:?}");
                    fk_in_order += 1;
                }
            }
            Piece::CopyStart { table, text } => {
                // The block starts at its `COPY` line, the piece's last (its entry's comment
                // before it).
                let line = text[..text.len() - 1]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                blocks.push(((again.len() + line) as u64, 0));
                again.extend_from_slice(text);
                tables.push((table.clone(), 0));
            }
            Piece::CopyData(rows) => {
                again.extend_from_slice(rows);
                let last = tables.last_mut().expect("rows after a COPY");
                last.1 += i64::try_from(rows.split(|b| *b == b'\n').count() - 1).expect("n");
            }
            Piece::CopyEnd => {
                again.extend_from_slice(b"\\.\n");
                let last = blocks.last_mut().expect("an end after a COPY");
                last.1 = again.len() as u64 - last.0;
            }
            Piece::Serial(_) => panic!("nothing serial: {p:?}"),
        }
    }
    assert!(
        script.starts_with(&again),
        "the pieces are the script, in order"
    );
    let tail = String::from_utf8_lossy(&script[again.len()..]).into_owned();
    assert!(
        tail.lines()
            .all(|l| l.trim().is_empty() || l.starts_with("--")),
        "only comments after the last piece: {tail}"
    );
    let (want, placed) = manifest_blocks(&manifest);
    assert_eq!(
        tables, want,
        "a COPY block per table, with the manifest's rows"
    );
    assert_eq!(
        placed, blocks,
        "the manifest has each COPY block's offset and size, which a restore plans with"
    );
    assert!(independent >= 2, "indexes and keys may run in parallel");
    assert!(
        fk_in_order >= 1,
        "the schema has a foreign key, kept in order"
    );
}

/// Issue 21: the parallel load gives back the same database as one session does: pg_dump of
/// the tricky schema restored at `--jobs 1` and at `--jobs 4`, each equal to the original. At
/// four, the rows and indexes go over direct connections to the container's server, and again
/// through psql in the container (as where its address cannot be reached).
#[test]
fn at_one_job_and_at_four_the_restore_gives_back_the_same_database() {
    let mut s = Shared::new("lbtest_restore_jobs_");
    let db = s.db.clone();
    let (_owner, _reader, before) = fidelity_fixture(&mut s);
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &db, &s.env());
    for (jobs, via_exec) in [("1", false), ("4", false), ("4", true)] {
        let mut env = s.env();
        if via_exec {
            env.push(("LBTEST_RESTORE_VIA_EXEC", "1".into()));
        }
        s.sql(
            &db,
            "DELETE FROM events WHERE at > '2025-09-01'; UPDATE people SET mood = 'sad'; \
             DELETE FROM extra.notes",
        );
        let out = restore_db(
            work.path(),
            &db,
            &[
                "--yes",
                "--no-safety-backup",
                "--jobs",
                jobs,
                &name_of(&archive),
            ],
            &env,
        );
        ok(&out, "lifeboat-restore");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.contains("loading on 4 sessions"),
            jobs == "4",
            "--jobs {jobs}: {stderr}"
        );
        assert_eq!(
            stderr.contains("loading the data on 4 sessions over direct connections"),
            jobs == "4" && !via_exec,
            "--jobs {jobs}, through psql {via_exec}: {stderr}"
        );
        let after = dump(&s.container, &s.user, &db);
        assert!(
            after == before,
            "--jobs {jobs} (through psql: {via_exec}): pg_dump after the restore differs from before:\n{}",
            diff(&before, &after)
        );
    }
}

/// Issue 21: indexes in a tablespace of their own come back in it on four sessions. pg_dump
/// writes `SET default_tablespace` only where it changes (once before `big_v` and `big_w`), and
/// the indexes go out largest table first, each to any session: each runs with every setting
/// before it, not only the `SET` just above it.
#[test]
fn indexes_in_a_tablespace_of_their_own_come_back_in_it_on_several_sessions() {
    let mut s = Shared::new("lbtest_restore_space_");
    let space = unique("lbtest_space_");
    let dir = format!("/tmp/{space}");
    // A directory the server's own user owns (the one that owns its data directory).
    let data = s.sql("postgres", "SHOW data_directory");
    let owner = docker_ok(&["exec", &s.container, "stat", "-c", "%U", data.trim()]);
    docker_ok(&[
        "exec",
        &s.container,
        "install",
        "-d",
        "-o",
        owner.trim(),
        &dir,
    ]);
    s.spaces.push((space.clone(), dir.clone()));
    s.sql(
        "postgres",
        &format!("CREATE TABLESPACE {space} LOCATION '{dir}'"),
    );
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    s.sql(
        &s.db,
        &format!(
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g; \
             CREATE TABLE small AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g; \
             ALTER TABLE big ADD PRIMARY KEY (id); \
             CREATE INDEX big_v ON big (v) TABLESPACE {space}; \
             CREATE INDEX big_w ON big (v, id) TABLESPACE {space}; \
             CREATE INDEX small_v ON small (v); \
             CREATE INDEX small_w ON small (v, id) TABLESPACE {space}"
        ),
    );
    let places = |db: &str| {
        s.sql(
            db,
            "SELECT string_agg(c.relname || ':' || coalesce(t.spcname, 'default'), ' ' \
             ORDER BY c.relname) FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace \
             WHERE c.relkind = 'i' AND c.relnamespace = 'public'::regnamespace",
        )
    };
    let before = places(&s.db);
    assert_eq!(
        before.trim(),
        format!("big_pkey:default big_v:{space} big_w:{space} small_v:default small_w:{space}")
    );
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    let script = gunzip(&archive);
    assert_eq!(
        script
            .matches(&format!("SET default_tablespace = {space};"))
            .count(),
        2,
        "pg_dump sets it once for big_v and big_w, once for small_w:\n{script}"
    );
    s.sql(&s.db, "DROP INDEX big_w, small_w");
    let out = restore_jobs(work.path(), &s, "4", &archive);
    ok(&out, "lifeboat-restore");
    assert_eq!(places(&s.db), before, "every index where it was");
}

/// Issue 21: a statement that fails on one of the parallel sessions (an index whose name a
/// relation took meanwhile) stops the load: the restore database dropped, the live one as it
/// was, exit 1 with the server's reason. On direct connections, and through psql in the
/// container.
#[test]
fn a_statement_failing_on_a_parallel_session_drops_the_restore_database_and_leaves_the_live_one() {
    for via_exec in [false, true] {
        statement_failing_on_a_parallel_session(via_exec);
    }
}

fn statement_failing_on_a_parallel_session(via_exec: bool) {
    let s = Shared::new("lbtest_restore_pfail_");
    let mut env = s.env();
    if via_exec {
        env.push(("LBTEST_RESTORE_VIA_EXEC", "1".into()));
    }
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    s.sql(
        &s.db,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v \
         FROM generate_series(1, 600000) g; \
         CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 1000) g; \
         ALTER TABLE big ADD PRIMARY KEY (id); CREATE INDEX big_v_idx ON big (v); \
         CREATE INDEX small_id_idx ON small (id)",
    );
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    s.sql(&s.db, "DELETE FROM big WHERE id > 100");
    let mut child = running_until(
        work.path(),
        &[
            "--dir",
            "backups",
            "--database",
            &s.db,
            "--yes",
            "--no-safety-backup",
            "--jobs",
            "4",
            &name_of(&archive),
        ],
        &env,
        "the schema is in",
    );
    // While the rows go in, a relation takes the name of an index the post-data part creates.
    let restoring = databases_like(&s.container, &s.user, &format!("{}__restore_", s.db));
    assert_eq!(restoring.len(), 1, "{restoring:?}");
    s.sql(&restoring[0], "CREATE TABLE big_v_idx (x int)");
    let ran = child.wait();
    let stderr = text(&ran.stderr);
    assert_eq!(
        ran.status.code(),
        Some(1),
        "through psql {via_exec}: {stderr}"
    );
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(
        stderr.contains("over direct connections"),
        !via_exec,
        "{stderr}"
    );
    assert_eq!(
        s.sql(&s.db, "SELECT count(*) FROM big"),
        "100",
        "live, as it was"
    );
    let left = databases_like(&s.container, &s.user, &format!("{}__", s.db));
    assert!(left.is_empty(), "no restore database left: {left:?}");
}

/// A manifest's tables: each name and rows, and each COPY block's offset and size.
#[allow(clippy::type_complexity)]
fn manifest_blocks(manifest: &serde_json::Value) -> (Vec<(String, i64)>, Vec<(u64, u64)>) {
    manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                (
                    t["name"].as_str().expect("name").to_owned(),
                    t["rows"].as_i64().expect("rows"),
                ),
                (
                    t["offset"].as_u64().expect("offset"),
                    t["bytes"].as_u64().expect("bytes"),
                ),
            )
        })
        .unzip()
}

/// A database of one large table first and several smaller ones (`b_1` the smallest, `b_4`
/// the largest, `small_rows` on average): on two sessions, the first fills its session's queue
/// while the other has nothing to do, so the load spills.
fn tables_to_spill(s: &Shared, big_rows: u32, small_rows: u32) {
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    let mut small = String::new();
    for t in 1..=4 {
        let rows = small_rows / 5 * 2 * t;
        let _ = write!(
            small,
            " CREATE TABLE b_{t} AS SELECT g AS id, md5((g * {t})::text) AS v \
             FROM generate_series(1, {rows}) g; CREATE INDEX ON b_{t} (v);"
        );
    }
    s.sql(
        &s.db,
        &format!(
            "CREATE TABLE a_big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v \
             FROM generate_series(1, {big_rows}) g; ALTER TABLE a_big ADD PRIMARY KEY (id);{small}"
        ),
    );
}

/// Every table's rows and a digest of them, in order.
fn digest(s: &Shared, db: &str) -> String {
    s.sql(
        db,
        "SELECT string_agg(t || ':' || n || ':' || d, ' ' ORDER BY t) FROM ( \
         SELECT 'a_big' t, count(*) n, md5(string_agg(v, '' ORDER BY id)) d FROM a_big UNION ALL \
         SELECT 'b_1', count(*), md5(string_agg(v, '' ORDER BY id)) FROM b_1 UNION ALL \
         SELECT 'b_2', count(*), md5(string_agg(v, '' ORDER BY id)) FROM b_2 UNION ALL \
         SELECT 'b_3', count(*), md5(string_agg(v, '' ORDER BY id)) FROM b_3 UNION ALL \
         SELECT 'b_4', count(*), md5(string_agg(v, '' ORDER BY id)) FROM b_4) x",
    )
}

/// Issue 21: while every session is busy, COPY blocks wait in a temporary file in the backup
/// directory and the archive is read on; the restore is the database that was backed up, and
/// the file is gone (nothing new in the directory). The indexes and keys go out the largest
/// table's first, whatever the archive's order.
#[test]
fn blocks_wait_in_a_temporary_file_while_every_session_is_busy_and_nothing_is_left() {
    let s = Shared::new("lbtest_restore_spill_");
    tables_to_spill(&s, 400_000, 60_000);
    let before = digest(&s, &s.db);
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    let files = files_like(work.path(), "");
    s.sql(&s.db, "DELETE FROM a_big WHERE id > 10; TRUNCATE b_2");
    let out = restore_db(
        work.path(),
        &s.db,
        &[
            "--yes",
            "--no-safety-backup",
            "--verbose",
            "--jobs",
            "2",
            &name_of(&archive),
        ],
        &s.env(),
    );
    ok(&out, "lifeboat-restore");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("waited for a free session in a temporary file in"),
        "{stderr}"
    );
    let built: Vec<&str> = (stderr.lines())
        .filter_map(|l| {
            l.split_once("builds an index or key on ")?
                .1
                .split(' ')
                .next()
        })
        .collect();
    assert_eq!(
        built,
        [
            "public.a_big",
            "public.b_4",
            "public.b_3",
            "public.b_2",
            "public.b_1"
        ],
        "the largest table's first (the archive has them by name)\n{stderr}"
    );
    assert_eq!(digest(&s, &s.db), before, "every row back, in every table");
    assert_eq!(
        files_like(work.path(), ""),
        files,
        "nothing left in the backup directory"
    );
    // A manifest from before the blocks' sizes (and before signatures): the blocks go in the
    // archive's order, and the restore is the same.
    lifeboat_testkit::patch_manifest(&archive, |m| {
        let m = m.as_object_mut().expect("object");
        m.remove("signature");
        for t in m["tables"].as_array_mut().expect("tables") {
            let t = t.as_object_mut().expect("table");
            t.remove("offset");
            t.remove("bytes");
        }
    });
    s.sql(&s.db, "DELETE FROM a_big WHERE id > 10; TRUNCATE b_3");
    let out = restore_jobs(work.path(), &s, "2", &archive);
    ok(&out, "lifeboat-restore, an older manifest");
    assert_eq!(
        digest(&s, &s.db),
        before,
        "the same, from an older manifest"
    );
}

/// Issue 21: a backup directory with little free space: the temporary file stops at half of
/// it, the rest of the rows wait in memory, and the restore still completes, exactly.
#[test]
fn a_nearly_full_backup_directory_bounds_the_temporary_file_and_the_restore_completes() {
    let s = Shared::new("lbtest_restore_spillfull_");
    tables_to_spill(&s, 300_000, 40_000);
    let before = digest(&s, &s.db);
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    let size = std::fs::metadata(&archive).expect("archive").len();
    // Room for the archive and its manifest, and about 4 MiB more.
    let disk = lifeboat_testkit::SmallDisk::mount(&format!("{}k", size / 1024 + 4096));
    for f in files_like(work.path(), "") {
        std::fs::copy(work.path().join("backups").join(&f), disk.path().join(&f)).expect("copy");
    }
    s.sql(&s.db, "DELETE FROM a_big WHERE id > 10; TRUNCATE b_2");
    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &[
            "--dir",
            &disk.path().to_string_lossy(),
            "--database",
            &s.db,
            "--yes",
            "--no-safety-backup",
            "--jobs",
            "2",
            &name_of(&archive),
        ],
        &s.env(),
    );
    ok(&out, "lifeboat-restore");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("reached half of the free space there"),
        "{stderr}"
    );
    assert_eq!(digest(&s, &s.db), before, "every row back, in every table");
}

/// Roles, database settings and the FIDELITY schema in `s`'s database, owned by a role of its
/// own: (owner, reader, pg_dump of it).
fn fidelity_fixture(s: &mut Shared) -> (String, String, String) {
    let db = s.db.clone();
    let owner = unique("lbtest_owner_");
    let reader = unique("lbtest_reader_");
    s.roles = vec![owner.clone(), reader.clone()];
    s.sql(
        "postgres",
        &format!("CREATE ROLE {owner} LOGIN; CREATE ROLE {reader} NOLOGIN"),
    );
    s.sql("postgres", &format!("CREATE DATABASE {db} OWNER {owner}"));
    for statement in [
        format!("ALTER DATABASE {db} SET work_mem = '8MB'"),
        format!("ALTER DATABASE {db} SET search_path = \"$user\", public, extra"),
        format!("ALTER ROLE {reader} IN DATABASE {db} SET statement_timeout = '5s'"),
        // A role's own search_path that is SQL if pasted unquoted (issue 15): kept unquoted by
        // the server when taken FROM CURRENT.
        format!(
            "SELECT set_config('search_path', 'public;ALTER/**/ROLE/**/{reader}/**/SUPERUSER', false); \
             ALTER ROLE {reader} IN DATABASE {db} SET search_path FROM CURRENT"
        ),
        format!("COMMENT ON DATABASE {db} IS 'la base de données de l''équipe'"),
        format!("REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE {db} TO {reader}"),
    ] {
        s.sql("postgres", &statement);
    }
    s.sql(
        &db,
        &FIDELITY
            .replace("{owner}", &owner)
            .replace("{reader}", &reader),
    );
    let before = dump(&s.container, &s.user, &db);
    assert!(
        before.contains("lo_create")
            && before.contains("ALTER DATABASE")
            && before.contains("ATTACH PARTITION"),
        "the fixture holds large objects, database settings and partitions:\n{before}"
    );
    (owner, reader, before)
}

fn the_hostile_setting_came_back_as_a_setting(s: &Shared, reader: &str) {
    let db = &s.db;
    // The hostile setting came back as a setting, and ran as nothing.
    assert_eq!(
        s.sql(
            "postgres",
            &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{reader}'")
        ),
        "f",
        "a role's setting was executed by the restore"
    );
    let setting = s.sql(
        "postgres",
        &format!(
            "SELECT array_to_string(setconfig, '|') FROM pg_db_role_setting s \
             JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE r.rolname = '{reader}' AND d.datname = '{db}'"
        ),
    );
    assert!(
        setting.contains("search_path=\"public;ALTER/**/ROLE/**/")
            && setting.contains("statement_timeout=5s"),
        "{setting}"
    );
}

/// The database from before is kept, with the incident's data, and saved to a file too; its
/// name.
fn the_database_from_before_is_kept(
    s: &Shared,
    work: &Path,
    archive: &Path,
    stdout: &str,
) -> String {
    let db = &s.db;
    let fields: Vec<&str> = stdout.trim().split('\t').collect();
    assert_eq!(fields.len(), 5, "{stdout}");
    assert_eq!(fields[0], db.as_str());
    assert_eq!(fields[1], name_of(archive));
    let pre = fields[2].to_owned();
    assert!(pre.starts_with(&format!("{db}__pre_restore_")), "{stdout}");
    assert_eq!(
        s.sql(&pre, "SELECT count(*) FROM people WHERE name = 'intruder'"),
        "1"
    );
    let safety = work.join(fields[3]);
    assert!(
        safety.is_file() && Path::new(&format!("{}.json", safety.display())).is_file(),
        "the safety backup and its manifest: {stdout}"
    );
    assert!(
        name_of(&safety).starts_with("safety_before_restore_"),
        "{stdout}"
    );
    assert!(
        databases_like(&s.container, &s.user, &format!("{db}__restore_")).is_empty(),
        "no restore database is left"
    );

    pre
}

/// cleanup drops the pre-restore database, and only it.
fn cleanup_drops_only_the_pre_restore_database(s: &Shared, work: &Path, pre: &str) {
    let db = &s.db;
    let out = lifeboat(
        "lifeboat-restore",
        work,
        &["--dir", "backups", "--database", db, "cleanup"],
        &s.env(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --yes and no terminal: {}",
        text(&out.stderr)
    );
    let out = lifeboat(
        "lifeboat-restore",
        work,
        &["--dir", "backups", "--database", db, "--yes", "cleanup"],
        &s.env(),
    );
    assert_eq!(ok(&out, "cleanup").trim(), format!("dropped\t{pre}"));
    assert_eq!(
        databases_like(&s.container, &s.user, db),
        std::slice::from_ref(db)
    );
}

/// The lines of `a` and `b` that differ, for a readable failure.
fn diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = a
        .iter()
        .filter(|l| !b.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        b.iter()
            .filter(|l| !a.contains(l))
            .map(|l| format!("+ {l}")),
    );
    if out.is_empty() {
        out.push("(the same lines, in another order)".into());
    }
    out.join("\n")
}

#[test]
fn damaged_backups_are_refused_and_the_live_database_is_not_touched() {
    let s = Shared::new("lbtest_restore_bad_");
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    s.sql(
        &s.db,
        "CREATE TABLE items (id int PRIMARY KEY, label text); \
         INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    );
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    s.sql(&s.db, "DELETE FROM items WHERE id > 10");
    let live = dump(&s.container, &s.user, &s.db);

    damaged_copies(&archive);
    for (name, expected) in [
        ("flipped.sql.gz", "checksum mismatch"),
        ("cut.sql.gz", "truncated"),
        ("orphan.sql.gz", "has no manifest"),
    ] {
        let out = lifeboat(
            "lifeboat-restore",
            work.path(),
            &["--dir", "backups", "--database", &s.db, "--yes", name],
            &s.env(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert_eq!(
            dump(&s.container, &s.user, &s.db),
            live,
            "{name}: the live database"
        );
        assert_eq!(
            databases_like(&s.container, &s.user, &s.db),
            std::slice::from_ref(&s.db),
            "{name}: no database was created"
        );
    }

    // Bad SQL in an archive whose manifest matches it: step 1 fails, the restore database is
    // dropped, the live one untouched.
    let bad = edited_copy(&archive, "bad.sql.gz", |sql| {
        let at = sql.find("COPY public.items").expect("a COPY");
        format!("{}SELECT no_such_function();\n{}", &sql[..at], &sql[at..])
    });
    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &[
            "--dir",
            "backups",
            "--database",
            &s.db,
            "--yes",
            &name_of(&bad),
        ],
        &s.env(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no_such_function") && stderr.contains("was not touched"),
        "{stderr}"
    );
    assert_eq!(dump(&s.container, &s.user, &s.db), live);
    assert_eq!(
        databases_like(&s.container, &s.user, &s.db),
        std::slice::from_ref(&s.db)
    );

    unconfirmed_restores_do_nothing(&s, work.path(), &archive, &live);
    // `list` shows every backup with its state, for scripts.
    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &["--dir", "backups", "list"],
        &[],
    );
    let list = ok(&out, "list");
    assert!(
        list.lines()
            .any(|l| l.contains(&name_of(&archive)) && l.ends_with("sha256 ok")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("flipped.sql.gz") && l.contains("DAMAGED")),
        "{list}"
    );
    assert!(list.lines().all(|l| !l.contains("orphan")), "{list}");
}

/// Beside `archive`: flipped.sql.gz (a flipped byte), cut.sql.gz (cut short behind a manifest
/// forged to match) and orphan.sql.gz (no manifest).
fn damaged_copies(archive: &Path) {
    // A flipped byte: the checksum.
    let bytes = std::fs::read(archive).expect("read");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let flipped_path = archive.with_file_name("flipped.sql.gz");
    std::fs::write(&flipped_path, &flipped).expect("write");
    std::fs::copy(
        format!("{}.json", archive.display()),
        format!("{}.json", flipped_path.display()),
    )
    .expect("manifest");
    patch_manifest(&flipped_path, |m| m["file"] = "flipped.sql.gz".into());

    // Cut short, behind a manifest forged to match its size and checksum: the decompression.
    let cut = &bytes[..bytes.len() / 2];
    let cut_path = archive.with_file_name("cut.sql.gz");
    std::fs::write(&cut_path, cut).expect("write");
    std::fs::copy(
        format!("{}.json", archive.display()),
        format!("{}.json", cut_path.display()),
    )
    .expect("manifest");
    patch_manifest(&cut_path, |m| {
        m["file"] = "cut.sql.gz".into();
        m["size"] = cut.len().into();
        m["sha256"] = sha256_hex(cut).into();
    });

    // No manifest at all: not a backup.
    let orphan = archive.with_file_name("orphan.sql.gz");
    std::fs::write(&orphan, &bytes).expect("write");
}

/// Without a terminal and without --yes, or on a terminal with the wrong name typed: nothing
/// is done, exit 2, the live database as it was.
fn unconfirmed_restores_do_nothing(s: &Shared, work: &Path, archive: &Path, live: &str) {
    // Without a terminal and without --yes: nothing is done, exit 2.
    let out = lifeboat(
        "lifeboat-restore",
        work,
        &["--dir", "backups", "--database", &s.db, &name_of(archive)],
        &s.env(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert_eq!(dump(&s.container, &s.user, &s.db), *live);

    // On a terminal: a progress line while the archive is checked, then the person must type
    // the database's name; anything else does nothing (exit 2).
    let mut typed = command(
        "lifeboat-restore",
        work,
        &["--dir", "backups", "--database", &s.db, &name_of(archive)],
        &[("LIFEBOAT_DB_CONTAINER", s.container.clone())],
    )
    .on_a_terminal()
    .spawn_interactive();
    typed
        .take_stdin()
        .write_all(b"not-the-name\n")
        .expect("type");
    let out = typed.wait();
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    for expected in ["checking: ", "Type the database name", "not confirmed"] {
        assert!(shown.contains(expected), "{expected}: {shown}");
    }
    assert_eq!(dump(&s.container, &s.user, &s.db), *live);
}

#[test]
fn a_backup_in_the_bucket_restores() {
    let s = Shared::new("lbtest_restore_s3_");
    s.with_notes();
    let work = tempfile::tempdir().expect("tempdir");
    let (stack, prefix, env, name) = only_in_the_bucket(&s, work.path());
    s.sql(&s.db, "TRUNCATE notes");

    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &["--dir", "backups", "list"],
        &env,
    );
    let list = ok(&out, "list");
    assert!(
        list.lines()
            .any(|l| l.contains(&name) && l.contains("\ts3\t")),
        "{list}"
    );
    // Restored with --url and the local psql: no Docker at all (managed PostgreSQL, seed 003).
    let url = format!("s3://{}/{prefix}backups/{name}", stack.bucket);
    let mut no_docker: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "LIFEBOAT_DB_CONTAINER")
        .cloned()
        .collect();
    no_docker.push(("DATABASE_URL", lifeboat_testkit::database_url()));
    no_docker.push(("DOCKER_HOST", "unix:///nonexistent/docker.sock".into()));
    let smtp = lifeboat_testkit::smtp();
    no_docker.extend([
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp.plain_port.to_string()),
        ("SMTP_FROM", "lifeboat@example.test".to_owned()),
        ("LIFEBOAT_MAIL_TO", "ops@example.test".to_owned()),
    ]);
    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &[
            "--dir",
            "backups",
            "--database",
            &s.db,
            "--yes",
            "--no-safety-backup",
            "--log-format",
            "json",
            &url,
        ],
        &no_docker,
    );
    ok(&out, "restore from s3 with --url");
    // The database's password is in DATABASE_URL: never in what the restore says, nor its mail.
    let password = lifeboat_testkit::database_password();
    assert!(
        !text(&out.stderr).contains(password.as_str())
            && !text(&out.stdout).contains(password.as_str()),
        "{}",
        text(&out.stderr)
    );
    // One JSON object per event, the steps named.
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let steps: Vec<&str> = events.iter().filter_map(|e| e["step"].as_str()).collect();
    for step in ["restoring", "swapped", "done"] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("no app to stop"))),
        "{events:?}"
    );
    let mail = smtp.wait_for_message(&s.db);
    assert!(
        mail.contains("restored") && mail.contains("The app was down"),
        "{mail}"
    );
    assert!(
        !mail.contains(password.as_str()),
        "no password in the mail: {mail}"
    );
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "300");
    let left: Vec<_> = std::fs::read_dir(work.path().join("backups"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("download"))
        .collect();
    assert!(left.is_empty(), "the download is removed: {left:?}");
}

/// The test bucket under a prefix of its own, and `s`'s settings with it.
fn with_bucket(
    s: &Shared,
    prefix: &str,
) -> (
    lifeboat_testkit::S3Stack,
    String,
    Vec<(&'static str, String)>,
) {
    let stack = lifeboat_testkit::s3();
    let prefix = format!("{}/", unique(prefix));
    let mut env = s.env();
    env.extend(stack.env());
    env.push(("LIFEBOAT_S3_PREFIX", prefix.clone()));
    (stack, prefix, env)
}

/// A backup of `s`'s database in the test bucket (under a prefix of its own) and no longer in
/// `work`: the bucket, the prefix, the settings with it, and the backup's name.
fn only_in_the_bucket(
    s: &Shared,
    work: &Path,
) -> (
    lifeboat_testkit::S3Stack,
    String,
    Vec<(&'static str, String)>,
    String,
) {
    let (stack, prefix, env) = with_bucket(s, "lbtest-restore-");
    let archive = backup(work, &s.db, &env);
    let name = name_of(&archive);
    std::fs::remove_file(&archive).expect("remove");
    std::fs::remove_file(format!("{}.json", archive.display())).expect("remove");
    (stack, prefix, env, name)
}

/// Put `file` (a path here) into the bucket as `key` (under the test's prefix), as a bucket
/// writer would.
fn plant(stack: &lifeboat_testkit::S3Stack, prefix: &str, key: &str, file: &Path) {
    let body = std::fs::read(file).expect("read");
    block_on(stack.bucket(prefix).put(key, body)).expect("put");
}

#[test]
fn a_bucket_writer_can_plant_neither_a_file_outside_the_directory_nor_a_newer_backup() {
    let s = Shared::new("lbtest_restore_plant_");
    s.with_notes();
    let (stack, prefix, env) = with_bucket(&s, "lbtest-plant-");
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &env);
    let good = name_of(&archive);
    let manifest = manifest_of(&archive);
    assert!(
        manifest["signature"]
            .as_str()
            .is_some_and(|s| s.len() == 64),
        "lifeboat-backup signs its manifests: {manifest}"
    );

    let outside = plant_three(&stack, &prefix, work.path(), &archive);
    s.sql(&s.db, "TRUNCATE notes");

    let out = lifeboat(
        "lifeboat-restore",
        work.path(),
        &["--dir", "backups", "list"],
        &env,
    );
    let list = ok(&out, "list");
    let err = text(&out.stderr);
    assert!(list.contains(&good) && list.contains("signed"), "{list}");
    for name in [
        "backup_29991231",
        "backup_29991230",
        "escape",
        "lbtest-outside-",
    ] {
        assert!(!list.contains(name), "{name} is not offered: {list}");
    }
    assert!(
        err.contains("backup_29991231_000000.sql.gz (NOT SIGNED)")
            && err.contains("backup_29991230_000000.sql.gz (WRONG SIGNATURE)")
            && err.contains("not a plain file name")
            && err.contains("garbage.sql.gz.json: the manifest cannot be read")
            && err.contains("--trust-unsigned"),
        "{err}"
    );

    // The 3 a.m. runbook restores the real newest backup.
    let restore = |args: &[&str]| {
        let mut all = vec![
            "--dir",
            "backups",
            "--database",
            &s.db,
            "--yes",
            "--no-safety-backup",
        ];
        all.extend_from_slice(args);
        lifeboat("lifeboat-restore", work.path(), &all, &env)
    };
    let out = restore(&["latest"]);
    let err = ok(&out, "restore latest");
    assert!(
        text(&out.stderr).contains(&good),
        "{err}{}",
        text(&out.stderr)
    );
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "300");
    assert_eq!(s.sql(&s.db, "SELECT to_regclass('planted') IS NULL"), "t");
    assert!(!outside.exists(), "nothing written outside the directory");

    // Named by hand: refused, saying why and what to do.
    let out = restore(&["backup_29991231_000000.sql.gz"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NOT SIGNED") && text(&out.stderr).contains("--trust-unsigned"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(s.sql(&s.db, "SELECT to_regclass('planted') IS NULL"), "t");

    // Trusted by hand, the newest unsigned one restores; the escaping one is never offered.
    let out = restore(&["--trust-unsigned", "latest"]);
    ok(&out, "restore --trust-unsigned latest");
    assert_eq!(s.sql(&s.db, "SELECT to_regclass('planted') IS NULL"), "f");
    assert!(!outside.exists(), "nothing written outside the directory");
}

/// In the bucket only (their local copies removed, with `archive`'s): 1. a newer "backup" that
/// adds a table, unsigned; 2. the same with a forged signature; 3. one whose key and manifest
/// name an absolute path outside the download directory (returned); and a manifest that is
/// not one.
fn plant_three(
    stack: &lifeboat_testkit::S3Stack,
    prefix: &str,
    work: &Path,
    archive: &Path,
) -> PathBuf {
    let planted = |name: &str, started: &str, signature: Option<&str>| {
        let copy = edited_copy(archive, name, |sql| {
            format!("{sql}\nCREATE TABLE public.planted (x int);\n")
        });
        patch_manifest(&copy, |m| {
            m["started"] = started.into();
            m["finished"] = started.into();
            match signature {
                Some(sig) => m["signature"] = sig.into(),
                None => drop(m.as_object_mut().expect("object").remove("signature")),
            }
        });
        copy
    };
    let unsigned = planted(
        "backup_29991231_000000.sql.gz",
        "2999-12-31T00:00:00Z",
        None,
    );
    let forged = planted(
        "backup_29991230_000000.sql.gz",
        "2999-12-30T00:00:00Z",
        Some(&"ab".repeat(32)),
    );
    let outside = std::env::temp_dir().join(format!("{}.sql.gz", unique("lbtest-outside-")));
    let escape = planted("escape.sql.gz", "2999-12-29T00:00:00Z", None);
    patch_manifest(&escape, |m| {
        m["file"] = outside.display().to_string().into();
    });
    for copy in [&unsigned, &forged] {
        let name = name_of(copy);
        plant(stack, prefix, &format!("backups/{name}"), copy);
        plant(
            stack,
            prefix,
            &format!("backups/{name}.json"),
            Path::new(&format!("{}.json", copy.display())),
        );
    }
    // `backups/` + `/tmp/…`: the key's last part after `backups/` is an absolute path.
    let escape_key = format!("backups/{}", outside.display());
    plant(stack, prefix, &escape_key, &escape);
    // And a manifest that is not one: named in a warning, not skipped silently.
    let garbage = work.join("garbage.json");
    std::fs::write(&garbage, "{ not a manifest").expect("garbage");
    plant(stack, prefix, "backups/garbage.sql.gz.json", &garbage);
    plant(
        stack,
        prefix,
        &format!("{escape_key}.json"),
        Path::new(&format!("{}.json", escape.display())),
    );
    // Only the bucket has them now (local backups are this host's own).
    for f in [archive, &unsigned, &forged, &escape] {
        std::fs::remove_file(f).expect("remove");
        std::fs::remove_file(format!("{}.json", f.display())).expect("remove");
    }
    outside
}

// ---------------------------------------------------------------------------------------------
// With the demo compose stack: the app and its worker are stopped and started around the swap.

struct Stack {
    demo: DemoStack,
    postgres: String,
}

/// `stack.project`, `stack.work`: the demo stack's.
impl std::ops::Deref for Stack {
    type Target = DemoStack;
    fn deref(&self) -> &DemoStack {
        &self.demo
    }
}

impl Stack {
    fn up() -> Self {
        // Not migrated: the tests back up the empty database first.
        let demo = DemoStack::build("v1")
            .prefix("lbtest-restore-")
            .unmigrated()
            .up();
        let postgres = demo.id("postgres");
        let stack = Self { demo, postgres };
        stack.wait_app_healthy_or_not();
        stack
    }

    fn wait_app_healthy_or_not(&self) {
        wait_for("postgres healthy", Duration::from_mins(1), || {
            (self.health("postgres") == "healthy").then_some(())
        });
    }

    fn id(&self, service: &str) -> String {
        self.project.ok(&["ps", "-q", service])
    }

    fn health(&self, service: &str) -> String {
        let id = self.id(service);
        docker_ok(&[
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            &id,
        ])
    }

    fn started_at(&self, service: &str) -> String {
        docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", &self.id(service)])
    }

    fn wait_healthy(&self) {
        wait_for("app healthy", Duration::from_mins(1), || {
            (self.health("app") == "healthy").then_some(())
        });
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.postgres, "demo", "demo", sql)
    }

    fn businesses(&self) -> String {
        self.sql("SELECT string_agg(name, ',' ORDER BY id) FROM businesses")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("COMPOSE_PROJECT_NAME", self.project.name.clone()),
            ("LIFEBOAT_RESTORE_HEALTH_TIMEOUT", "20".into()),
        ]
    }

    fn backup(&self) -> String {
        let out = lifeboat(
            "lifeboat-backup",
            self.work.path(),
            &["--dir", "backups"],
            &self.env(),
        );
        name_of(Path::new(ok(&out, "backup").trim()))
    }

    fn restore(&self, args: &[&str]) -> Ran {
        let mut full = vec!["--dir", "backups", "--yes"];
        full.extend_from_slice(args);
        lifeboat("lifeboat-restore", self.work.path(), &full, &self.env())
    }

    /// Start a restore paused at `step`; returns it once it says so.
    fn paused_at(&self, step: &str, backup: &str) -> Running {
        paused_at(
            self.work.path(),
            &["--dir", "backups", "--yes", backup],
            &self.env(),
            step,
        )
    }

    fn journal_left(&self) -> bool {
        std::fs::read_dir(self.work.path().join("backups"))
            .expect("dir")
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".lifeboat-restore-demo")
            })
    }

    fn restore_databases(&self) -> Vec<String> {
        databases_like(&self.postgres, "demo", "demo__restore_")
    }
}

/// Start `lifeboat-restore ARGS` in `dir` paused at `step` (the test hook); returns it once it
/// says so, its stderr drained from then on.
fn paused_at(dir: &Path, args: &[&str], env: &[(&str, String)], step: &str) -> Running {
    let mut env = env.to_vec();
    env.push(("LBTEST_RESTORE_PAUSE_AT", step.into()));
    running_until(dir, args, &env, &format!("paused at step {step}"))
}

/// Start `lifeboat-restore ARGS` in `dir`; returns it once a line of its stderr contains
/// `marker`, its stderr drained from then on.
fn running_until(dir: &Path, args: &[&str], env: &[(&str, String)], marker: &str) -> Running {
    let mut child = command("lifeboat-restore", dir, args, env).spawn();
    let mut lines = child.stderr_lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("lifeboat-restore ended before saying {marker:?}: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            break;
        }
    }
    child
}

/// A restore of `backup` into `db` held in its safety backup by the backup's test hook
/// (`LBTEST_BACKUP_PAUSE_AT=dumping`), with its stderr as `stderr`; returned with the safety
/// backup's partial file once that file is there.
fn held_in_safety_backup(
    dir: &Path,
    db: &str,
    backup: &str,
    env: &[(&'static str, String)],
) -> (Running, String) {
    let mut paused = env.to_vec();
    paused.push(("LBTEST_BACKUP_PAUSE_AT", "dumping".to_owned()));
    let mut child = command(
        "lifeboat-restore",
        dir,
        &["--dir", "backups", "--database", db, "--yes", backup],
        &paused,
    )
    .spawn();
    let partial = wait_for(
        "the safety backup being written",
        Duration::from_mins(2),
        || {
            if let Some(status) = child.try_wait() {
                panic!(
                    "the restore ended ({status}) before its safety backup was seen being written"
                );
            }
            files_like(dir, "safety_before_restore_")
                .into_iter()
                .find(|n| n.ends_with(".partial"))
        },
    );
    (child, partial)
}

#[test]
fn with_the_app_a_failed_step_one_or_an_unhealthy_app_leave_the_old_data_live() {
    let stack = Stack::up();
    // A backup of the database before its migrations: restored, the app cannot be healthy.
    let empty = stack.backup();
    stack.migrate();
    stack.seed();
    stack.wait_healthy();
    stack.sql("INSERT INTO businesses (name) VALUES ('Panadería Lucía'), ('Taller García')");
    let good = stack.backup();
    let good_data = stack.businesses();

    // The incident.
    stack.sql("DELETE FROM businesses; INSERT INTO businesses (name) VALUES ('damaged')");
    assert_eq!(stack.businesses(), "damaged");

    let app_started = stack.started_at("app");
    let worker_started = stack.started_at("worker");
    step_one_fails_and_the_app_keeps_running(&stack, &good, &app_started, &worker_started);
    the_server_stopped_under_step_one_leaves_the_journal(&stack, &good, &app_started);
    an_unhealthy_app_after_the_swap_is_undone(&stack, &empty);
    sigkill_after_the_swap_is_undone_by_the_next_run(&stack, &empty);
    sigterm_during_the_health_wait_is_obeyed_at_once(&stack, &empty);
    the_real_restore_brings_the_data_back(&stack, &good, &good_data, &worker_started);
}

/// Step 1 fails (bad SQL): the app was never stopped, the data is as it was.
fn step_one_fails_and_the_app_keeps_running(
    stack: &Stack,
    good: &str,
    app_started: &str,
    worker_started: &str,
) {
    let good_path = stack.work.path().join("backups").join(good);
    let bad = edited_copy(&good_path, "bad.sql.gz", |sql| {
        let at = sql.find("COPY public.").expect("a COPY");
        format!("{}SELECT 1/0;\n{}", &sql[..at], &sql[at..])
    });
    let out = stack.restore(&[&name_of(&bad)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("division by zero"), "{stderr}");
    assert_eq!(stack.businesses(), "damaged");
    assert_eq!(
        stack.started_at("app").as_str(),
        app_started,
        "the app kept running"
    );
    assert_eq!(
        stack.started_at("worker").as_str(),
        worker_started,
        "the worker kept running"
    );
    assert!(stack.restore_databases().is_empty());
}

/// Step 1 with the server stopped under it (then SIGTERM): the restore database cannot be
/// dropped, so the journal stays; lifeboat never stopped the app; the live data is as it was
/// once the server is back, and the next run first undoes the interrupted restore.
fn the_server_stopped_under_step_one_leaves_the_journal(
    stack: &Stack,
    good: &str,
    app_started: &str,
) {
    let mut child = stack.paused_at("restoring", good);
    docker_ok(&["stop", "-t", "5", &stack.postgres]);
    child.signal("TERM");
    assert_eq!(child.wait().status.code(), Some(1));
    assert!(stack.journal_left(), "the journal stays for the next run");
    docker_ok(&["start", &stack.postgres]);
    stack.wait_app_healthy_or_not();
    stack.wait_healthy();
    assert_eq!(
        stack.started_at("app").as_str(),
        app_started,
        "the app was never stopped"
    );
    assert_eq!(stack.businesses(), "damaged");
}

/// The app unhealthy after the swap: undone, the app healthy again on the old data.
fn an_unhealthy_app_after_the_swap_is_undone(stack: &Stack, empty: &str) {
    let out = stack.restore(&[empty]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("undid the interrupted restore"), "{stderr}");
    assert!(stderr.contains("was undone"), "{stderr}");
    stack.wait_healthy();
    assert_eq!(stack.businesses(), "damaged");
    assert!(stack.restore_databases().is_empty());
    assert!(databases_like(&stack.postgres, "demo", "demo__pre_restore_").is_empty());
    assert!(!stack.journal_left());
}

/// SIGKILL after the swap, with a backup the app cannot be healthy on: the journal stays, and
/// the next run starts the app, sees it unhealthy, and undoes the swap.
fn sigkill_after_the_swap_is_undone_by_the_next_run(stack: &Stack, empty: &str) {
    let mut child = stack.paused_at("starting", empty);
    child.signal("KILL");
    child.wait();
    assert!(stack.journal_left(), "the journal outlives SIGKILL");
    let out = stack.restore(&["cleanup", "--dry-run"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("undid the interrupted restore"), "{stderr}");
    assert!(databases_like(&stack.postgres, "demo", "demo__pre_restore_").is_empty());
    the_data_from_before_is_live_and_nothing_is_left(stack);
}

/// SIGTERM while the restore waits for the app to become healthy (it never will on that
/// backup, and the timeout is ten minutes): obeyed at once, the swap undone.
fn sigterm_during_the_health_wait_is_obeyed_at_once(stack: &Stack, empty: &str) {
    let mut env = stack.env();
    env.push(("LIFEBOAT_RESTORE_HEALTH_TIMEOUT", "600".into()));
    let mut child = running_until(
        stack.work.path(),
        &["--dir", "backups", "--yes", empty],
        &env,
        "step=\"starting\"",
    );
    child.signal("TERM");
    let status = wait_for("the restore to end", Duration::from_mins(2), || {
        child.try_wait()
    });
    assert_eq!(status.code(), Some(1), "SIGTERM during the health wait");
    the_data_from_before_is_live_and_nothing_is_left(stack);
}

/// After an undone restore: the app healthy on the damaged data from before, and no restore
/// database or journal left.
fn the_data_from_before_is_live_and_nothing_is_left(stack: &Stack) {
    stack.wait_healthy();
    assert_eq!(
        stack.businesses(),
        "damaged",
        "the data from before is live again"
    );
    assert!(stack.restore_databases().is_empty());
    assert!(!stack.journal_left());
}

/// The real restore: the data back, app and worker started again, the app healthy.
fn the_real_restore_brings_the_data_back(
    stack: &Stack,
    good: &str,
    good_data: &str,
    worker_started: &str,
) {
    let out = stack.restore(&[good]);
    let stdout = ok(&out, "restore");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("stopped") && stderr.contains("worker"),
        "{stderr}"
    );
    assert_eq!(stack.businesses(), good_data);
    // lifeboat-restore saw the app's HEALTHCHECK pass; Docker's own probe says so too.
    stack.wait_healthy();
    assert_eq!(stack.health("worker"), "running");
    assert_ne!(
        stack.started_at("worker").as_str(),
        worker_started,
        "the worker was restarted"
    );
    let pre = stdout
        .split('\t')
        .nth(2)
        .expect("pre-restore name")
        .to_owned();
    assert_eq!(
        psql(
            &stack.postgres,
            "demo",
            &pre,
            "SELECT string_agg(name, ',') FROM businesses"
        ),
        "damaged"
    );
}

#[test]
fn a_signal_at_any_step_and_a_rerun_leave_one_consistent_database_live() {
    let stack = Stack::up();
    stack.migrate();
    stack.seed();
    stack.wait_healthy();
    stack.sql("INSERT INTO businesses (name) VALUES ('from the backup')");
    let good = stack.backup();
    let good_data = stack.businesses();
    stack.sql("INSERT INTO businesses (name) VALUES ('after the backup')");
    let old_data = stack.businesses();

    // SIGTERM at each step: the run undoes itself; the old data is live, the app healthy.
    for step in ["restoring", "stopping", "swapping", "starting"] {
        let mut child = stack.paused_at(step, &good);
        child.signal("TERM");
        let status = child.wait().status;
        assert_eq!(status.code(), Some(1), "{step}");
        stack.wait_healthy();
        assert_eq!(stack.businesses(), old_data, "after SIGTERM at {step}");
        assert!(stack.restore_databases().is_empty(), "{step}");
        assert!(!stack.journal_left(), "{step}");
    }

    // SIGKILL before the swap: the rerun undoes the interrupted restore, then restores.
    let mut child = stack.paused_at("swapping", &good);
    child.signal("KILL");
    child.wait();
    assert!(stack.journal_left());
    assert_eq!(stack.businesses(), old_data, "the swap had not happened");
    let out = stack.restore(&[&good]);
    ok(&out, "rerun after SIGKILL at swapping");
    assert!(
        text(&out.stderr).contains("undid the interrupted restore"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(stack.businesses(), good_data);
    stack.wait_healthy();

    // SIGKILL after the swap, the app stopped: the rerun finishes it (and says so).
    stack.sql("INSERT INTO businesses (name) VALUES ('again after')");
    let mut child = stack.paused_at("starting", &good);
    child.signal("KILL");
    child.wait();
    let out = stack.restore(&[&good]);
    let stderr = text(&out.stderr);
    ok(&out, "rerun after SIGKILL at starting");
    assert!(
        stderr.contains("finished the interrupted restore"),
        "{stderr}"
    );
    assert!(stderr.contains("not restoring it again"), "{stderr}");
    assert_eq!(stack.businesses(), good_data);
    stack.wait_healthy();
    assert!(stack.restore_databases().is_empty());
    assert!(!stack.journal_left());
}

// ---------------------------------------------------------------------------------------------
// Safety backups, databases that are missing, ICU locales, downloads and --url with the app.

/// `lifeboat-restore --dir backups --database DB ARGS` in `dir`.
fn restore_db(dir: &Path, db: &str, args: &[&str], env: &[(&str, String)]) -> Ran {
    let mut full = vec!["--dir", "backups", "--database", db];
    full.extend_from_slice(args);
    lifeboat("lifeboat-restore", dir, &full, env)
}

/// `lifeboat-restore --yes --no-safety-backup --jobs JOBS` of `archive` into the test's
/// database.
fn restore_jobs(dir: &Path, s: &Shared, jobs: &str, archive: &Path) -> Ran {
    restore_db(
        dir,
        &s.db,
        &[
            "--yes",
            "--no-safety-backup",
            "--jobs",
            jobs,
            &name_of(archive),
        ],
        &s.env(),
    )
}

/// The names in `dir/backups` that start with `prefix`, sorted.
fn files_like(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("backups"))
        .expect("backups dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The safety backups (archives, not their manifests) in `dir/backups`, and what each is of.
fn safety_backups(dir: &Path) -> Vec<(String, String)> {
    files_like(dir, "safety_before_restore_")
        .into_iter()
        .filter(|n| Path::new(n).extension().is_none_or(|e| e != "json"))
        .map(|n| {
            let archive = dir.join("backups").join(&n);
            let of = if n.ends_with(".partial") {
                "-".to_owned()
            } else {
                let manifest: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(format!("{}.json", archive.display()))
                        .unwrap_or_else(|e| panic!("{n} has no manifest: {e}")),
                )
                .expect("manifest JSON");
                manifest["database"].as_str().expect("database").to_owned()
            };
            (n, of)
        })
        .collect()
}

/// The tab-separated fields of a restore's stdout line: database, backup, pre-restore
/// database, safety backup, downtime.
fn restored(out: &Ran, what: &str) -> Vec<String> {
    ok(out, what)
        .trim()
        .split('\t')
        .map(str::to_owned)
        .collect()
}

#[test]
fn safety_backups_stay_while_their_pre_restore_database_does_then_go_after_the_days() {
    let s = Shared::new("lbtest_rs_keep_");
    s.with_numbered_notes(10);
    let work = tempfile::tempdir().expect("tempdir");
    let env = s.env();
    let b1 = name_of(&backup(work.path(), &s.db, &env));

    let first = restored(
        &restore_db(work.path(), &s.db, &["--yes", &b1], &env),
        "restore 1",
    );
    // The paths are as the run printed them, relative to its directory.
    let (pre1, safety1) = (first[2].clone(), work.path().join(&first[3]));
    let safety1 = safety1.display().to_string();
    assert!(Path::new(&safety1).exists(), "{safety1}");
    assert!(
        name_of(Path::new(&safety1)).starts_with(&format!("safety_before_restore_{}_", s.db)),
        "{safety1}"
    );
    assert_eq!(
        safety_backups(work.path()),
        [(name_of(Path::new(&safety1)), pre1.clone())]
    );
    // lifeboat-backup's retention leaves it alone, and says whose it is.
    let out = lifeboat(
        "lifeboat-backup",
        work.path(),
        &["--dir", "backups", "prune", "--dry-run"],
        &[("LIFEBOAT_BACKUP_KEEP_MIN", "1".into())],
    );
    let plan = ok(&out, "prune --dry-run");
    assert!(
        plan.lines()
            .any(|l| l.starts_with("keep\tsafety_before_restore_")
                && l.contains("a safety backup of lifeboat-restore")),
        "{plan}"
    );

    // The names carry the second: the next restore must not share it.
    std::thread::sleep(Duration::from_millis(1100));
    let mut no_days = env.clone();
    no_days.push(("LIFEBOAT_RESTORE_KEEP_DAYS", "0".into()));
    let second = restored(
        &restore_db(work.path(), &s.db, &["--yes", &b1], &no_days),
        "restore 2",
    );
    let (pre2, printed2) = (second[2].clone(), second[3].clone());
    let safety2 = work.path().join(&printed2).display().to_string();
    // restore 1's pre-restore database is older than 0 days: dropped, and its safety backup
    // with it; restore 2's are kept (its database has not been cleaned up).
    assert_eq!(
        databases_like(&s.container, &s.user, &format!("{}__pre_restore_", s.db)),
        std::slice::from_ref(&pre2)
    );
    assert!(!Path::new(&safety1).exists(), "{safety1} deleted");
    assert!(!Path::new(&format!("{safety1}.json")).exists());
    assert_eq!(
        safety_backups(work.path()),
        [(name_of(Path::new(&safety2)), pre2.clone())]
    );

    // cleanup within the days: the database goes, its file copy stays.
    let out = restore_db(work.path(), &s.db, &["cleanup", "--dry-run"], &env);
    assert_eq!(
        ok(&out, "cleanup --dry-run"),
        format!("would drop\t{pre2}\n")
    );
    let out = restore_db(work.path(), &s.db, &["--yes", "cleanup"], &env);
    assert_eq!(ok(&out, "cleanup"), format!("dropped\t{pre2}\n"));
    assert!(Path::new(&safety2).exists());
    // Once older than the days, and its database gone: deleted by cleanup.
    let out = restore_db(work.path(), &s.db, &["cleanup", "--dry-run"], &no_days);
    assert_eq!(
        ok(&out, "cleanup --dry-run"),
        format!("would delete\t{printed2}\n")
    );
    assert!(Path::new(&safety2).exists(), "a dry run deletes nothing");
    let out = restore_db(work.path(), &s.db, &["--yes", "cleanup"], &no_days);
    assert_eq!(ok(&out, "cleanup"), format!("deleted\t{printed2}\n"));
    assert!(safety_backups(work.path()).is_empty());
    assert!(!Path::new(&format!("{safety2}.json")).exists());
    // The ordinary backup is untouched.
    assert!(work.path().join("backups").join(&b1).exists());
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "10");
}

#[test]
fn a_crash_during_the_safety_backup_leaves_exactly_one_after_the_rerun() {
    let s = Shared::new("lbtest_rs_crash_");
    s.with_numbered_notes(10);
    let work = tempfile::tempdir().expect("tempdir");
    let env = s.env();
    let b1 = name_of(&backup(work.path(), &s.db, &env));
    // SIGKILL while the safety backup is being written (held there by the backup's test hook,
    // its partial file made): a .partial file is left.
    let (child, partial) = held_in_safety_backup(work.path(), &s.db, &b1, &env);
    let mut child = child;
    child.signal("KILL");
    child.wait();
    assert_eq!(
        safety_backups(work.path()),
        [(partial.clone(), "-".to_owned())],
        "killed while it was being written"
    );
    let pre1 = databases_like(&s.container, &s.user, &format!("{}__pre_restore_", s.db));
    assert_eq!(pre1.len(), 1, "the swap was done: {pre1:?}");

    // The rerun finishes the restore, removes the partial file and takes it once.
    let out = restore_db(work.path(), &s.db, &["--yes", &b1], &env);
    ok(&out, "rerun after SIGKILL in the safety backup");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("finished the interrupted restore"),
        "{stderr}"
    );
    assert!(
        stderr.contains("an interrupted safety backup"),
        "the partial file is named: {stderr}"
    );
    let after = safety_backups(work.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, pre1[0]);
    assert!(!after[0].0.ends_with(".partial"));

    // SIGKILL once the safety backup is complete, before the run ended: the rerun finds it and
    // does not take another.
    std::thread::sleep(Duration::from_millis(1100));
    let mut child = paused_at(
        work.path(),
        &["--dir", "backups", "--database", &s.db, "--yes", &b1],
        &env,
        "safety-backup-taken",
    );
    child.signal("KILL");
    child.wait();
    assert_eq!(safety_backups(work.path()).len(), 2);
    let out = restore_db(work.path(), &s.db, &["--yes", &b1], &env);
    ok(&out, "rerun after SIGKILL after the safety backup");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("was already taken"), "{stderr}");
    let after = safety_backups(work.path());
    assert_eq!(after.len(), 2, "one per restore: {after:?}");
    assert_ne!(after[0].1, after[1].1, "{after:?}");
    assert!(files_like(work.path(), ".lifeboat-restore-").is_empty());
}

#[test]
fn a_restore_into_a_database_that_does_not_exist_creates_it() {
    let s = Shared::new("lbtest_rs_gone_");
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    s.sql(
        &s.db,
        "CREATE TABLE notes (id int PRIMARY KEY, body text); \
         INSERT INTO notes SELECT g, 'nota ' || g FROM generate_series(1, 50) g",
    );
    let work = tempfile::tempdir().expect("tempdir");
    let env = s.env();
    let before = dump(&s.container, &s.user, &s.db);
    backup(work.path(), &s.db, &env);
    // The incident: the database was dropped.
    s.sql("postgres", &format!("DROP DATABASE {}", s.db));

    let out = restore_db(work.path(), &s.db, &["--yes", "latest"], &env);
    let fields = restored(&out, "restore into a missing database");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the restore creates it"), "{stderr}");
    assert_eq!(fields[2], "-", "no database from before to keep");
    assert_eq!(fields[3], "-", "no safety backup of nothing");
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "50");
    assert_eq!(dump(&s.container, &s.user, &s.db), before);
    assert!(databases_like(&s.container, &s.user, &format!("{}__", s.db)).is_empty());
    assert!(files_like(work.path(), "safety_before_restore_").is_empty());
    assert!(files_like(work.path(), ".lifeboat-restore-").is_empty());
}

#[test]
fn an_icu_database_is_restored_with_its_icu_locale() {
    let s = Shared::new("lbtest_rs_icu_");
    s.sql(
        "postgres",
        &format!(
            "CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'",
            s.db
        ),
    );
    let locale = format!(
        "SELECT datlocprovider::text || ' ' || daticulocale FROM pg_database WHERE datname = '{}'",
        s.db
    );
    assert_eq!(s.sql("postgres", &locale), "i de-DE");
    s.sql(
        &s.db,
        "CREATE TABLE words (w text PRIMARY KEY); \
         INSERT INTO words VALUES ('b'), ('B'), ('a'), ('A'), ('ä'), ('Z'), ('z')",
    );
    let order = "SELECT string_agg(w, ',' ORDER BY w) FROM words";
    let icu_order = s.sql(&s.db, order);
    // Not the byte order a libc C locale would give (A,B,Z,a,b,z,ä).
    assert_eq!(icu_order, "a,A,ä,b,B,z,Z");
    let work = tempfile::tempdir().expect("tempdir");
    let env = s.env();
    let b = name_of(&backup(work.path(), &s.db, &env));
    s.sql(&s.db, "DELETE FROM words");

    let out = restore_db(
        work.path(),
        &s.db,
        &["--yes", "--no-safety-backup", &b],
        &env,
    );
    ok(&out, "restore of an ICU database");
    assert_eq!(s.sql("postgres", &locale), "i de-DE");
    assert_eq!(s.sql(&s.db, order), icu_order);
    // The index on the primary key sorts the ICU way too (an index scan gives its order).
    assert_eq!(
        s.sql(
            &s.db,
            "SET enable_seqscan = off; SELECT string_agg(w, ',') FROM (SELECT w FROM words ORDER BY w) t"
        ),
        icu_order
    );
}

#[test]
fn a_signal_during_the_download_or_at_the_confirmation_removes_the_download() {
    let s = Shared::new("lbtest_rs_dl_");
    s.with_notes();
    let work = tempfile::tempdir().expect("tempdir");
    let (stack, prefix, env, name) = only_in_the_bucket(&s, work.path());
    s.sql(&s.db, "DELETE FROM notes WHERE id > 100");
    let url = format!("s3://{}/{prefix}backups/{name}", stack.bucket);
    let args = [
        "--dir",
        "backups",
        "--database",
        &s.db,
        "--yes",
        "--no-safety-backup",
        &url,
    ];
    let downloads = || files_like(work.path(), ".lifeboat-restore-download-");

    for (step, sig) in [
        ("downloading", "INT"),
        ("confirming", "TERM"),
        ("confirming", "INT"),
    ] {
        let mut child = paused_at(work.path(), &args, &env, step);
        let dir = format!(".lifeboat-restore-download-{}", child.id());
        assert_eq!(downloads(), std::slice::from_ref(&dir), "{step}");
        if step == "confirming" {
            assert!(
                work.path().join("backups").join(&dir).join(&name).exists(),
                "downloaded before the confirmation"
            );
        }
        child.signal(sig);
        assert_eq!(child.wait().status.code(), Some(1), "SIG{sig} at {step}");
        assert!(
            downloads().is_empty(),
            "SIG{sig} at {step}: {:?}",
            downloads()
        );
        assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "100");
        assert!(databases_like(&s.container, &s.user, &format!("{}__", s.db)).is_empty());
    }

    // Killed outright at the confirmation: the directory stays, and the next run removes it,
    // but not the directory of a run that is still alive (this test's pid stands for one).
    let mut child = paused_at(work.path(), &args, &env, "confirming");
    let killed = format!(".lifeboat-restore-download-{}", child.id());
    child.signal("KILL");
    child.wait();
    let alive = format!(".lifeboat-restore-download-{}", std::process::id());
    std::fs::create_dir(work.path().join("backups").join(&alive)).expect("mkdir");
    assert_eq!(downloads(), {
        let mut both = vec![killed.clone(), alive.clone()];
        both.sort();
        both
    });
    let out = lifeboat("lifeboat-restore", work.path(), &args, &env);
    ok(&out, "the run after SIGKILL");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&killed) && stderr.contains("killed"),
        "{stderr}"
    );
    assert_eq!(
        downloads(),
        [alive],
        "the live run's directory is left alone"
    );
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "300");
}

#[test]
fn with_url_the_configured_app_services_are_stopped_and_started_around_the_swap() {
    let stack = Stack::up();
    stack.migrate();
    stack.seed();
    stack.wait_healthy();
    stack.sql("INSERT INTO businesses (name) VALUES ('por URL')");
    let good = stack.backup();
    let good_data = stack.businesses();
    stack.sql("DELETE FROM businesses; INSERT INTO businesses (name) VALUES ('damaged')");
    let app_started = stack.started_at("app");
    let worker_started = stack.started_at("worker");

    // The database by URL (the container's address, as a managed server's would be), no
    // database container configured: only the named services are the app.
    let ip = docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &stack.postgres,
    ]);
    let ip = ip.split_whitespace().next().expect("an address").to_owned();
    let mut env = stack.env();
    env.extend([
        (
            "DATABASE_URL",
            format!("postgres://demo:demo-password@{ip}:5432/demo"),
        ),
        ("LIFEBOAT_RESTORE_APP_SERVICES", "app,worker".into()),
    ]);
    let out = lifeboat(
        "lifeboat-restore",
        stack.work.path(),
        &[
            "--dir",
            "backups",
            "--yes",
            "--no-safety-backup",
            "--log-format",
            "json",
            &good,
        ],
        &env,
    );
    ok(&out, "restore with --url and restore.app-services");
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let steps: Vec<&str> = events.iter().filter_map(|e| e["step"].as_str()).collect();
    let at = |step: &str| {
        steps
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("{step} in {steps:?}"))
    };
    assert!(
        at("stopping") < at("stopped")
            && at("stopped") < at("swapped")
            && at("swapped") < at("starting")
            && at("starting") < at("healthy"),
        "{steps:?}"
    );
    let stopped = events
        .iter()
        .find(|e| e["step"] == "stopped")
        .and_then(|e| e["message"].as_str())
        .expect("the stopped event");
    assert!(
        stopped.contains("app") && stopped.contains("worker"),
        "{stopped}"
    );
    assert_ne!(
        stack.started_at("app"),
        app_started,
        "the app was restarted"
    );
    assert_ne!(
        stack.started_at("worker"),
        worker_started,
        "the worker was restarted"
    );
    // lifeboat-restore saw the app's HEALTHCHECK pass; Docker's own probe says so too.
    stack.wait_healthy();
    assert_eq!(stack.health("worker"), "running");
    assert_eq!(stack.businesses(), good_data);
}

/// The database-level settings of `db` (its own, and its roles' in it), sorted.
fn settings_of(s: &Shared, db: &str) -> String {
    s.sql(
        "postgres",
        &format!(
            "SELECT string_agg(COALESCE(r.rolname, '-') || ' ' || c, '; ' ORDER BY 1) \
             FROM pg_db_role_setting x LEFT JOIN pg_roles r ON r.oid = x.setrole \
             CROSS JOIN LATERAL unnest(x.setconfig) c \
             WHERE x.setdatabase = (SELECT oid FROM pg_database WHERE datname = '{db}')"
        ),
    )
}

#[test]
fn a_restore_gives_back_the_database_s_own_properties_as_they_were_at_backup_time() {
    let mut s = Shared::new("lbtest_restore_props_");
    let db = database_with_properties(&mut s);
    s.sql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &db, &s.env());
    let expected = settings_of(&s, &db);
    assert!(expected.contains("work_mem=8MB"), "{expected}");
    let acl = |s: &Shared| acl_of(s, &db);
    let comment = |s: &Shared| comment_of(s, &db);
    let acl_before = acl(&s);

    // The incident: someone changes the database's settings and comment, then restores.
    for statement in [
        format!("ALTER DATABASE {db} SET work_mem = '64MB'"),
        format!("ALTER DATABASE {db} SET statement_timeout = '1s'"),
        format!("COMMENT ON DATABASE {db} IS 'changed in the incident'"),
        format!("GRANT CONNECT ON DATABASE {db} TO PUBLIC"),
    ] {
        s.sql("postgres", &statement);
    }
    let restore = |what: &str| {
        lifeboat(
            "lifeboat-restore",
            work.path(),
            &[
                "--dir",
                "backups",
                "--database",
                &db,
                "--yes",
                "--no-safety-backup",
                what,
            ],
            &s.env(),
        )
    };
    let out = restore("latest");
    ok(&out, "restore");
    let err = text(&out.stderr);
    assert!(
        err.contains("differs from the backup") && err.contains("statement_timeout=1s only now"),
        "{err}"
    );
    assert_eq!(
        settings_of(&s, &db),
        expected,
        "the backup's settings, not the live ones"
    );
    assert_eq!(comment(&s), "as backed up");
    assert_eq!(acl(&s), acl_before);

    // The database is gone (or the server is new): the restore still gives it all back.
    for name in databases_like(&s.container, &s.user, &db) {
        s.sql(
            "postgres",
            &format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
        );
    }
    let out = restore(&name_of(&archive));
    ok(&out, "restore onto nothing");
    assert_eq!(settings_of(&s, &db), expected);
    assert_eq!(comment(&s), "as backed up");
    assert_eq!(acl(&s), acl_before);
    assert_eq!(s.sql(&db, "SELECT count(*) FROM t"), "1");

    // A backup from before: today's behaviour, said.
    patch_manifest(&archive, |m| {
        m.as_object_mut().expect("object").remove("properties");
    });
    s.sql(
        "postgres",
        &format!("ALTER DATABASE {db} SET work_mem = '64MB'"),
    );
    let out = restore(&name_of(&archive));
    ok(&out, "restore of an older backup");
    assert!(
        text(&out.stderr).contains("does not record the database's own properties"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        settings_of(&s, &db).contains("work_mem=64MB"),
        "copied from the live database"
    );
}

/// `s`'s database, with settings of its own and of a role in it, a comment and grants: its
/// name.
fn database_with_properties(s: &mut Shared) -> String {
    let reader = unique("lbtest_preader_");
    s.roles = vec![reader.clone()];
    let db = s.db.clone();
    s.sql("postgres", &format!("CREATE ROLE {reader} NOLOGIN"));
    s.sql("postgres", &format!("CREATE DATABASE {db}"));
    for statement in [
        format!("ALTER DATABASE {db} SET work_mem = '8MB'"),
        format!("ALTER ROLE {reader} IN DATABASE {db} SET search_path = public, extra"),
        format!("COMMENT ON DATABASE {db} IS 'as backed up'"),
        format!("REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE {db} TO {reader}"),
    ] {
        s.sql("postgres", &statement);
    }
    db
}

/// The database's access privileges.
fn acl_of(s: &Shared, db: &str) -> String {
    s.sql(
        "postgres",
        &format!("SELECT datacl::text FROM pg_database WHERE datname = '{db}'"),
    )
}

/// The database's comment.
fn comment_of(s: &Shared, db: &str) -> String {
    s.sql(
        "postgres",
        &format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{db}'"
        ),
    )
}

#[test]
fn no_room_on_the_server_or_a_restore_under_way_leave_the_live_database_alone() {
    let s = Shared::new("lbtest_restore_room_");
    s.with_numbered_notes(50);
    let work = tempfile::tempdir().expect("tempdir");
    let archive = backup(work.path(), &s.db, &s.env());
    s.sql(&s.db, "DELETE FROM notes WHERE id > 10");
    let restore_args = [
        "--dir",
        "backups",
        "--database",
        &s.db,
        "--yes",
        "--no-safety-backup",
    ];
    let scratch = || databases_like(&s.container, &s.user, &format!("{}__", s.db));

    // A backup whose SQL would not fit on the server's disk (its manifest says a petabyte).
    let big = edited_copy(&archive, "backup_big.sql.gz", |sql| sql);
    patch_manifest(&big, |m| m["raw_size"] = (1u64 << 50).into());
    let mut args = restore_args.to_vec();
    args.push("backup_big.sql.gz");
    let out = lifeboat("lifeboat-restore", work.path(), &args, &s.env());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the restore needs about")
            && text(&out.stderr).contains("nothing was touched"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        s.sql(&s.db, "SELECT count(*) FROM notes"),
        "10",
        "live, as it was"
    );
    assert!(scratch().is_empty(), "no scratch database: {:?}", scratch());

    // A restore paused at its first step holds the lock: a second one is refused.
    let mut args = restore_args.to_vec();
    let name = name_of(&archive);
    args.push(&name);
    let mut first = paused_at(work.path(), &args, &s.env(), "restoring");
    let second = lifeboat("lifeboat-restore", work.path(), &args, &s.env());
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("already running"),
        "{}",
        text(&second.stderr)
    );
    first.signal("TERM");
    let status = first.wait().status;
    assert_eq!(status.code(), Some(1), "the first stops on SIGTERM");
    assert_eq!(
        s.sql(&s.db, "SELECT count(*) FROM notes"),
        "10",
        "live, as it was"
    );
    assert!(scratch().is_empty(), "no scratch database: {:?}", scratch());
}

#[test]
fn sigterm_in_the_middle_of_loading_a_large_archive_leaves_the_live_database_alone() {
    let s = Shared::new("lbtest_restore_load_");
    let work = tempfile::tempdir().expect("tempdir");
    // Issue 21: the rows on four sessions at once.
    let mut child = restoring_at_a_copy(&s, work.path(), "4", |_| true);
    child.signal("TERM");
    let ran = child.wait();
    assert!(
        text(&ran.stderr).contains("stopped by SIGTERM"),
        "{}",
        text(&ran.stderr)
    );
    left_alone(&s, work.path(), &ran);
}

/// Issue 21: one of the parallel load's own connections cut by the server in the middle of a
/// `COPY` (its backend ended, as a crash or an administrator would): the restore stops with
/// the reason, exit 1, the restore database dropped and the live one as it was.
#[test]
fn a_direct_session_cut_in_the_middle_of_a_copy_leaves_the_live_database_alone() {
    let s = Shared::new("lbtest_restore_cut_");
    let work = tempfile::tempdir().expect("tempdir");
    let mut child = restoring_at_a_copy(&s, work.path(), "2", |copying| {
        s.sql(
            "postgres",
            &format!("SELECT count(pg_terminate_backend(pid)) {copying}"),
        ) != "0"
    });
    let ran = child.wait();
    let stderr = text(&ran.stderr);
    assert!(stderr.contains("over direct connections"), "{stderr}");
    assert!(
        stderr.contains("failed on its connection: connection closed")
            || stderr.contains("terminating connection"),
        "the reason: {stderr}"
    );
    left_alone(&s, work.path(), &ran);
}

/// `s.db` with one table of 600,000 rows, backed up, then cut to 100 rows live; a restore of
/// that backup at `--jobs jobs` started and returned once `at_copy` (given the `FROM … WHERE`
/// of the restore database's backends taking in a `COPY`) says so.
fn restoring_at_a_copy(
    s: &Shared,
    dir: &Path,
    jobs: &str,
    at_copy: impl Fn(&str) -> bool,
) -> Running {
    s.sql("postgres", &format!("CREATE DATABASE {}", s.db));
    s.sql(
        &s.db,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v \
         FROM generate_series(1, 600000) g",
    );
    let archive = backup(dir, &s.db, &s.env());
    s.sql(&s.db, "DELETE FROM big WHERE id > 100");
    let mut child = command(
        "lifeboat-restore",
        dir,
        &[
            "--dir",
            "backups",
            "--database",
            &s.db,
            "--yes",
            "--no-safety-backup",
            "--jobs",
            jobs,
            &name_of(&archive),
        ],
        &s.env(),
    )
    .spawn();
    let copying = format!(
        "FROM pg_stat_activity WHERE datname LIKE '{}\\_\\_restore\\_%' AND query ILIKE 'COPY%'",
        s.db
    );
    wait_for("the load under way", Duration::from_mins(2), || {
        if let Some(status) = child.try_wait() {
            panic!("the restore ended ({status}) before its load was seen");
        }
        let under_way = s.sql("postgres", &format!("SELECT count(*) {copying}")) != "0";
        (under_way && at_copy(&copying)).then_some(())
    });
    child
}

/// The restore `ran` failed (exit 1) and left the live database as it was, no restore
/// database and no journal.
fn left_alone(s: &Shared, dir: &Path, ran: &Ran) {
    assert_eq!(ran.status.code(), Some(1), "{}", text(&ran.stderr));
    assert_eq!(
        s.sql(&s.db, "SELECT count(*) FROM big"),
        "100",
        "live, as it was"
    );
    let scratch = databases_like(&s.container, &s.user, &format!("{}__", s.db));
    assert!(scratch.is_empty(), "no restore database left: {scratch:?}");
    assert_eq!(
        files_like(dir, ".lifeboat-restore-"),
        Vec::<String>::new(),
        "no journal left"
    );
}

#[test]
fn a_failed_safety_backup_keeps_the_database_from_before_and_the_rerun_takes_it() {
    let s = Shared::new("lbtest_rs_safefail_");
    s.with_numbered_notes(10);
    let work = tempfile::tempdir().expect("tempdir");
    let env = s.env();
    let b1 = name_of(&backup(work.path(), &s.db, &env));
    s.sql(&s.db, "INSERT INTO notes VALUES (11)");

    // The safety backup is held once its partial file is made, then stopped by SIGTERM: it
    // fails, after the swap.
    let (mut child, _) = held_in_safety_backup(work.path(), &s.db, &b1, &env);
    child.signal("TERM");
    let ran = child.wait();
    let (status, stderr) = (ran.status, ran.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the restore is complete and the app healthy, but the safety backup of")
            && stderr.contains("is kept on the server"),
        "{stderr}"
    );
    // The restore stands; the database from before is kept; no half safety backup is left.
    assert_eq!(s.sql(&s.db, "SELECT count(*) FROM notes"), "10");
    let pre = databases_like(&s.container, &s.user, &format!("{}__pre_restore_", s.db));
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert!(
        safety_backups(work.path()).is_empty(),
        "{:?}",
        safety_backups(work.path())
    );

    // The rerun finishes what was left: the safety backup, once.
    let out = restore_db(work.path(), &s.db, &["--yes", &b1], &env);
    ok(&out, "rerun after the failed safety backup");
    assert!(
        text(&out.stderr).contains("finished the interrupted restore"),
        "{}",
        text(&out.stderr)
    );
    let after = safety_backups(work.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, pre[0]);
}
