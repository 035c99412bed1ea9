//! The schema, as numbered migrations, and the demo data.
//!
//! Versions matter to the toolkit: v1 knows migrations 1..=3 and v2 adds a fourth, so a
//! deploy of v2 moves the schema forward and a rollback to v1 must cope with (or restore
//! from before) the newer schema. A build refuses to touch a database newer than itself.

use tokio_postgres::Client;

use crate::store::password_sha256;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    sql: &'static str,
}

pub const MIGRATIONS: [Migration; 4] = [
    Migration {
        version: 1,
        name: "create users",
        sql: "CREATE TABLE users (
                id bigserial PRIMARY KEY,
                email text UNIQUE NOT NULL,
                password_sha256 text NOT NULL,
                created_at timestamptz DEFAULT now()
              )",
    },
    Migration {
        version: 2,
        name: "create businesses",
        sql: "CREATE TABLE businesses (
                id bigserial PRIMARY KEY,
                owner_id bigint REFERENCES users,
                name text NOT NULL,
                created_at timestamptz DEFAULT now()
              )",
    },
    Migration {
        version: 3,
        name: "create payments and jobs_done",
        sql: "CREATE TABLE payments (
                id bigserial,
                event_id text UNIQUE,
                amount_cents bigint,
                payload jsonb,
                received_at timestamptz DEFAULT now()
              );
              CREATE TABLE jobs_done (
                id bigserial,
                job text,
                done_at timestamptz DEFAULT now()
              )",
    },
    Migration {
        version: 4,
        name: "add businesses.plan",
        sql: "ALTER TABLE businesses ADD COLUMN plan text NOT NULL DEFAULT 'free'",
    },
];

/// An arbitrary key for `pg_advisory_lock`, so that two `migrate` (or `seed`) runs do not
/// interleave.
const MIGRATE_LOCK: i64 = 0x6c69_6665_626f_6174; // "lifeboat"

/// The highest applied migration, `None` if there is none or no `schema_migrations` table.
pub async fn current_version(client: &Client) -> Result<Option<i32>, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?;
    if !row.try_get::<_, bool>(0)? {
        return Ok(None);
    }
    client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .try_get(0)
}

/// Applies the migrations up to `known` that are missing, one transaction each, and returns
/// the lines to print.
pub async fn migrate(client: &mut Client, known: i32) -> Result<Vec<String>, String> {
    let sql_error =
        |what: &str, e: &tokio_postgres::Error| format!("{what}: {}", crate::store::pg_reason(e));
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(|e| sql_error("cannot take the migration lock", &e))?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version int PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(|e| sql_error("cannot create schema_migrations", &e))?;
    let applied: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
        .map_err(|e| sql_error("cannot read schema_migrations", &e))?;
    if let Some(&newest) = applied.last().filter(|&&v| v > known) {
        return Err(format!(
            "the database is at schema version {newest}, newer than this build knows \
             (up to {known}); refusing to migrate. Deploy a newer version or restore a backup."
        ));
    }

    let mut lines = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version <= known && !applied.contains(&m.version))
    {
        let tx = client
            .transaction()
            .await
            .map_err(|e| sql_error("cannot begin a transaction", &e))?;
        let failed = |e: &tokio_postgres::Error| {
            sql_error(&format!("migration {} ({}) failed", m.version, m.name), e)
        };
        tx.batch_execute(m.sql).await.map_err(|e| failed(&e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
            &[&m.version],
        )
        .await
        .map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))?;
        lines.push(format!("applied migration {}: {}", m.version, m.name));
    }
    if lines.is_empty() {
        let version = applied.last().copied().unwrap_or(0);
        lines.push(format!("database is up to date (version {version})"));
    }
    Ok(lines)
}

const DEMO_BUSINESSES: [&str; 3] = ["Harbor Coffee", "Northwind Plumbing", "Blue Door Bakery"];

/// Creates the admin user and its three businesses unless they exist; returns what it did.
pub async fn seed(client: &mut Client, email: &str, password: &str) -> Result<Vec<String>, String> {
    let hint = |e: tokio_postgres::Error| {
        let reason = crate::store::pg_reason(&e);
        if reason.contains("does not exist") {
            format!("{reason} (run `lifeboat-demo-app migrate` first)")
        } else {
            reason
        }
    };
    let tx = client.transaction().await.map_err(hint)?;
    // Two seeds at once would both find a business missing.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(hint)?;
    let mut lines = Vec::new();
    let inserted = tx
        .query_opt(
            "INSERT INTO users (email, password_sha256) VALUES ($1, $2)
             ON CONFLICT (email) DO NOTHING RETURNING id",
            &[&email, &password_sha256(password)],
        )
        .await
        .map_err(hint)?;
    let owner_id: i64 = if let Some(row) = inserted {
        lines.push(format!("created user {email}"));
        row.try_get(0).map_err(hint)?
    } else {
        lines.push(format!("user {email} already exists"));
        tx.query_one("SELECT id FROM users WHERE email = $1", &[&email])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(hint)?
    };
    for name in DEMO_BUSINESSES {
        let created = tx
            .execute(
                "INSERT INTO businesses (owner_id, name) SELECT $1, $2
                 WHERE NOT EXISTS (SELECT 1 FROM businesses WHERE owner_id = $1 AND name = $2)",
                &[&owner_id, &name],
            )
            .await
            .map_err(hint)?;
        lines.push(if created == 1 {
            format!("created business {name:?}")
        } else {
            format!("business {name:?} already exists")
        });
    }
    tx.commit().await.map_err(hint)?;
    Ok(lines)
}
