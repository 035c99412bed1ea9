//! The swap of a restore on a MySQL-protocol server (MySQL, MariaDB); what every engine does
//! (create, drop, end sessions) is behind lifeboat's engine seam.
//!
//! MySQL cannot rename a database, so "`a` becomes `b`" is done as MySQL allows: every table
//! moves in one `RENAME TABLE a.t1 TO b.t1, …` (atomic: all of them or none, and the only
//! statement that touches data), and the objects that cannot move with their tables (triggers,
//! which `RENAME TABLE` refuses across databases; views, routines and events, which belong to a
//! database) are read first (`SHOW CREATE …`), dropped, and created again in the new place after
//! the move, in their own `sql_mode` and time zone. A database is dropped only when no table is
//! left in it.
//!
//! Grants need nothing: database-level grants name the database, table-level ones the database
//! and table, and both names are the same after the swap (`RENAME TABLE` moves no privilege).
//! What is lost, as with any `DROP PROCEDURE`: a grant on one routine (`GRANT EXECUTE ON
//! PROCEDURE`), which MySQL revokes when the routine is dropped (`automatic_sp_privileges`).

use std::fmt::Write as _;

use anyhow::{bail, Context};
use lifeboat_backup::engine::mysql::terminate;
use lifeboat_backup::mysql::server::{ident, literal, rows, script};
use lifeboat_backup::source::Source;
use tracing::warn;

use crate::server::DbInfo;

/// What ends every statement of a script that creates objects: their bodies hold `;`.
const DELIMITER: &str = "$$lifeboat$$";

/// How long the swap waits for a table lock a session still holds before it gives up (and is
/// undone) rather than MySQL's default of a year.
const LOCK_WAIT_SECONDS: u32 = 30;

/// An object of a database that does not move with its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// `TRIGGER`, `VIEW`, `PROCEDURE`, `FUNCTION` or `EVENT`.
    pub kind: String,
    pub name: String,
    pub sql_mode: Option<String>,
    pub time_zone: Option<String>,
    /// Its `CREATE` statement as `SHOW CREATE` gives it, names unqualified.
    pub create: String,
}

/// The tables and objects of one database.
#[derive(Debug, Default)]
struct Contents {
    tables: Vec<String>,
    objects: Vec<Object>,
}

/// A name made of the characters a character set or collation has (checked before it is pasted).
fn plain(name: &str) -> anyhow::Result<&str> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name)
    } else {
        bail!("the server answered an unexpected name {name:?}")
    }
}

/// A database's character set and collation (`encoding` and `collate`), if it exists.
pub async fn info(source: &Source, db: &str) -> anyhow::Result<Option<DbInfo>> {
    let answer = rows(
        source,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(db)
        ),
    )
    .await?;
    Ok(answer.into_iter().next().map(|row| DbInfo {
        owner: String::new(),
        encoding: row.first().cloned().unwrap_or_default(),
        collate: row.get(1).cloned().unwrap_or_default(),
        ctype: String::new(),
        connection_limit: String::new(),
        locale_provider: String::new(),
        locale: None,
        icu_rules: None,
    }))
}

/// `CREATE DATABASE` with the character set and collation of `like` (else the server's).
pub async fn create(source: &Source, db: &str, like: Option<&DbInfo>) -> anyhow::Result<()> {
    let mut sql = format!("CREATE DATABASE {}", ident(db));
    if let Some(like) = like.filter(|l| !l.encoding.is_empty() && !l.collate.is_empty()) {
        let _ = write!(
            sql,
            " CHARACTER SET {} COLLATE {}",
            plain(&like.encoding)?,
            plain(&like.collate)?
        );
    }
    rows(source, &sql).await.map(drop)
}

/// Drop `db`, which must hold no table (what restore drops is empty, or a database it made and
/// was restoring into: `allow_tables`).
pub async fn drop_database(source: &Source, db: &str, allow_tables: bool) -> anyhow::Result<()> {
    if !allow_tables {
        let left = tables(source, db).await?;
        if !left.is_empty() {
            bail!(
                "{db} still holds {} table(s) ({}): not dropped",
                left.len(),
                left.join(", ")
            );
        }
    }
    rows(source, &format!("DROP DATABASE IF EXISTS {}", ident(db)))
        .await
        .map(drop)
}

/// The base tables (and sequences) of `db`.
pub async fn tables(source: &Source, db: &str) -> anyhow::Result<Vec<String>> {
    Ok(rows(
        source,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
            literal(db)
        ),
    )
    .await?
    .into_iter()
    .filter_map(|r| r.into_iter().next())
    .collect())
}

/// Every trigger, view, routine and event of `db`, with its `CREATE` statement.
pub async fn objects(source: &Source, db: &str) -> anyhow::Result<Vec<Object>> {
    let schema = literal(db);
    let names = rows(
        source,
        &format!(
            "SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema} \
             UNION ALL SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema} \
             UNION ALL SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {schema} \
             UNION ALL SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {schema}"
        ),
    )
    .await?;
    let mut listed = Vec::new();
    for row in names {
        let [kind, name] = <[String; 2]>::try_from(row)
            .map_err(|row| anyhow::anyhow!("the server listed {row:?} as an object of {db}"))?;
        if !matches!(
            kind.as_str(),
            "TRIGGER" | "VIEW" | "PROCEDURE" | "FUNCTION" | "EVENT"
        ) {
            bail!("the server listed an object of an unknown kind {kind:?} in {db}");
        }
        listed.push((kind, name));
    }
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    // One client for all of them (the swap runs while the app is down), in `db`, so that the
    // names in the statements come back unqualified; each answers one row.
    let mut statements = String::new();
    for (kind, name) in &listed {
        let _ = writeln!(statements, "SHOW CREATE {kind} {};", ident(name));
    }
    let answers = script(source, Some(db), &statements).await?;
    if answers.len() != listed.len() {
        bail!(
            "SHOW CREATE answered {} rows for the {} objects of {db}",
            answers.len(),
            listed.len()
        );
    }
    let mut found = Vec::new();
    for ((kind, name), row) in listed.into_iter().zip(answers) {
        let field = |i: usize| row.get(i).cloned();
        let (sql_mode, time_zone, create) = match kind.as_str() {
            "VIEW" => (None, None, field(1)),
            "EVENT" => (field(1), field(2), field(3)),
            _ => (field(1), None, field(2)),
        };
        let create = create
            .filter(|c| !c.is_empty() && c != "NULL")
            .with_context(|| {
                format!("the server does not show the definition of {kind} {name} in {db} to this user (it needs the privileges of its owner, or root)")
            })?;
        if create.contains(DELIMITER) {
            // It would end the statement early in the script that creates it again.
            bail!("the definition of {kind} {name} in {db} holds `{DELIMITER}`, which lifeboat uses to separate statements: refused");
        }
        found.push(Object {
            kind,
            name,
            sql_mode,
            time_zone,
            create,
        });
    }
    Ok(order(found))
}

/// Routines first (views and triggers may call them), then views, each after the views its
/// definition names, then triggers and events.
fn order(mut objects: Vec<Object>) -> Vec<Object> {
    let rank = |o: &Object| match o.kind.as_str() {
        "FUNCTION" | "PROCEDURE" => 0,
        "VIEW" => 1,
        _ => 2,
    };
    objects.sort_by_key(rank);
    let mut waiting: Vec<Object> = objects
        .iter()
        .filter(|o| o.kind == "VIEW")
        .cloned()
        .collect();
    let mut placed = Vec::new();
    while !waiting.is_empty() {
        // Ready: no other view still waiting is named in its definition.
        let (ready, rest): (Vec<Object>, Vec<Object>) = waiting.iter().cloned().partition(|v| {
            !waiting
                .iter()
                .any(|o| o.name != v.name && v.create.contains(&ident(&o.name)))
        });
        if ready.is_empty() {
            // A name in a string, not a dependency: the rest as they come.
            placed.extend(rest);
            break;
        }
        placed.extend(ready);
        waiting = rest;
    }
    let mut out: Vec<Object> = objects.iter().filter(|o| rank(o) == 0).cloned().collect();
    out.extend(placed);
    out.extend(objects.into_iter().filter(|o| rank(o) == 2));
    out
}

/// The script that drops `objects` of `db`.
fn drop_script(db: &str, objects: &[Object]) -> String {
    let mut s = String::new();
    for o in objects.iter().rev() {
        let _ = writeln!(
            s,
            "DROP {} IF EXISTS {}.{};",
            o.kind,
            ident(db),
            ident(&o.name)
        );
    }
    s
}

/// The script that creates `objects` in the session's database, each in its own `sql_mode`.
fn create_script(objects: &[Object]) -> String {
    let mut s = format!("DELIMITER {DELIMITER}\n");
    for o in objects {
        if let Some(mode) = &o.sql_mode {
            let _ = writeln!(s, "SET SESSION sql_mode = {}{DELIMITER}", literal(mode));
        }
        if let Some(zone) = &o.time_zone {
            let _ = writeln!(s, "SET SESSION time_zone = {}{DELIMITER}", literal(zone));
        }
        s.push_str(&o.create);
        s.push_str(DELIMITER);
        s.push('\n');
    }
    s.push_str("DELIMITER ;\n");
    s
}

/// Move every table and object of each `from` into its `to` (created when missing, with
/// `from`'s character set), all the tables in one atomic `RENAME TABLE`, in the order given
/// (`[(live, pre), (restored, live)]`: the live tables leave before the restored ones arrive).
/// A `from` that is no pair's `to` is dropped once empty. Sessions on `close` are ended first.
/// Returns how many sessions were ended.
pub async fn move_databases(
    source: &Source,
    close: &[&str],
    pairs: &[(&str, &str)],
) -> anyhow::Result<u64> {
    let mut contents = Vec::new();
    for (from, _) in pairs {
        contents.push(Contents {
            tables: tables(source, from).await?,
            objects: objects(source, from).await?,
        });
    }
    let mut created = Vec::new();
    for (from, to) in pairs {
        if info(source, to).await?.is_none() {
            create(source, to, info(source, from).await?.as_ref()).await?;
            created.push(*to);
        }
    }
    let ended = terminate(source, close).await?;

    // The objects leave their databases, then every table moves at once.
    let mut sql = format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS};\n");
    for ((from, _), c) in pairs.iter().zip(&contents) {
        sql.push_str(&drop_script(from, &c.objects));
    }
    let renames: Vec<String> = pairs
        .iter()
        .zip(&contents)
        .flat_map(|((from, to), c)| {
            c.tables
                .iter()
                .map(move |t| format!("{}.{} TO {}.{}", ident(from), ident(t), ident(to), ident(t)))
        })
        .collect();
    if !renames.is_empty() {
        let _ = writeln!(sql, "RENAME TABLE {};", renames.join(", "));
    }
    if let Err(e) = script(source, None, &sql).await {
        // Nothing moved: the objects go back where they were, the new databases away.
        for ((from, _), c) in pairs.iter().zip(&contents) {
            if let Err(again) = script(source, Some(from), &create_script(&c.objects)).await {
                warn!("cannot create the objects of {from} again: {again:#}");
            }
        }
        for db in created {
            if let Err(again) = drop_database(source, db, false).await {
                warn!("cannot drop {db}: {again:#}");
            }
        }
        return Err(e.context("moving the tables (RENAME TABLE); nothing was moved"));
    }

    for ((from, to), c) in pairs.iter().zip(&contents) {
        script(source, Some(to), &create_script(&c.objects))
            .await
            .with_context(|| {
                format!("the tables of {from} are in {to}, but its views, routines, triggers or events could not be created there")
            })?;
    }
    for (from, _) in pairs {
        if !pairs.iter().any(|(_, to)| to == from) {
            drop_database(source, from, false).await?;
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, create: &str) -> Object {
        Object {
            kind: kind.into(),
            name: name.into(),
            sql_mode: None,
            time_zone: None,
            create: create.into(),
        }
    }

    #[test]
    fn routines_come_first_and_a_view_after_the_views_it_reads() {
        let ordered = order(vec![
            object("TRIGGER", "t", "CREATE TRIGGER `t` …"),
            object("VIEW", "top", "CREATE VIEW `top` AS select * from `mid`"),
            object("VIEW", "mid", "CREATE VIEW `mid` AS select * from `base`"),
            object("PROCEDURE", "p", "CREATE PROCEDURE `p`() …"),
            object("VIEW", "base", "CREATE VIEW `base` AS select 1"),
        ]);
        let names: Vec<&str> = ordered.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["p", "base", "mid", "top", "t"]);
    }

    #[test]
    fn scripts_quote_every_name_and_keep_each_statement_s_mode() {
        let mut o = object("TRIGGER", "a`b", "CREATE TRIGGER x BEGIN SET @a = 1; END");
        o.sql_mode = Some("STRICT_TRANS_TABLES".into());
        assert_eq!(
            drop_script("d`b", std::slice::from_ref(&o)),
            "DROP TRIGGER IF EXISTS `d``b`.`a``b`;\n"
        );
        let s = create_script(&[o]);
        assert!(s.starts_with("DELIMITER $$lifeboat$$\n"));
        assert!(s.contains("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'$$lifeboat$$\n"));
        assert!(s.contains("BEGIN SET @a = 1; END$$lifeboat$$\n"));
        assert!(s.ends_with("DELIMITER ;\n"));
        assert!(plain("utf8mb4_unicode_ci").is_ok());
        assert!(plain("x; DROP").is_err());
    }
}
