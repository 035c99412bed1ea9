//! The database server as restore needs it: create, rename, drop, end sessions, copy what a
//! plain dump does not carry (the database's owner, settings, grants, comment), and the room
//! left on its disk. The same SQL goes over a connection (`--url`, managed PostgreSQL; or the
//! container's address on its Docker network, when this machine reaches it) or through the
//! container's psql (as lifeboat-backup dumps), so every mode behaves alike.
//!
//! Renames and drops run from a maintenance database (`postgres`, else `template1`): never
//! from one of the databases they rename.

use anyhow::{anyhow, bail, Context};
use lifeboat::config::Config;
use lifeboat::db;
use lifeboat::docker::DockerError;
use lifeboat_backup::properties::{self, DatabaseProperties};
use lifeboat_backup::source::Source;
use tracing::debug;

/// Settings whose stored value is already a list in SQL syntax (`"$user", public`): pasted as
/// they are, as pg_dumpall does (its `variable_is_guc_list_quote`). Every other value is quoted.
const LIST_SETTINGS: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// A database's properties that live outside it, in `pg_database`.
#[derive(Debug, Clone)]
pub struct DbInfo {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub connection_limit: String,
    /// `datlocprovider` (PostgreSQL 15+): `c` libc, `i` ICU, `b` builtin (17+); `c` before 15.
    pub locale_provider: String,
    /// The ICU or builtin locale (`daticulocale` in 15 and 16, `datlocale` from 17).
    pub locale: Option<String>,
    /// ICU tailoring rules (`daticurules`, 16+).
    pub icu_rules: Option<String>,
}

/// A test hook: set, the restore's SQL goes through psql in the container even where the
/// container's address is reachable, so that the tests cover both ways.
pub const VIA_EXEC_VAR: &str = "LBTEST_RESTORE_VIA_EXEC";

pub struct Server {
    pub source: Source,
    maintenance: String,
    /// The container's server over its Docker network, when reachable (see [`direct_target`]).
    direct: Option<db::DbTarget>,
}

/// `"name"`, with any `"` doubled: safe for any database or role name.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The elements of a list setting's value as the server stores it (`"$user", public`), split
/// as PostgreSQL's `SplitGUCList` does: separated by commas, each bare (up to a space or comma)
/// or double-quoted (`""` for a quote). `None` when it is not such a list.
pub fn split_guc_list(raw: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut chars = raw.trim_start().chars().peekable();
    if chars.peek().is_none() {
        return Some(items);
    }
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        item.push('"');
                    }
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                item.push(c);
                chars.next();
            }
            if item.is_empty() {
                return None;
            }
        }
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(_) => return None,
        }
    }
}

/// `'text'`, with any `'` doubled (standard_conforming_strings is on since PostgreSQL 9.1).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Server {
    /// The backup source's server: the container (compose service, or by name) or `--url`.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let mut config = config.clone();
        config.backup.all = false;
        let source = Source::resolve(&config).await?;
        if source.engine() == lifeboat::db::Engine::Mysql {
            crate::mysql::ping(&source)
                .await
                .with_context(|| format!("cannot reach the server ({})", source.describe()))?;
            return Ok(Self {
                source,
                maintenance: String::new(),
                direct: None,
            });
        }
        let direct = match &source {
            Source::Container {
                docker,
                container,
                credentials,
                ..
            } => direct_target(docker, container, credentials).await,
            Source::Url { .. } | Source::MysqlUrl { .. } => None,
        };
        let mut server = Self {
            source,
            maintenance: "postgres".into(),
            direct,
        };
        if let Err(e) = server.query("SELECT 1").await {
            debug!("no `postgres` database ({e:#}); using template1 for maintenance");
            server.maintenance = "template1".into();
            server
                .query("SELECT 1")
                .await
                .with_context(|| format!("cannot reach the server ({})", server.describe()))?;
        }
        Ok(server)
    }

    /// The database restored into: the container's POSTGRES_DB, the URL's, or --database.
    pub fn database(&self) -> &str {
        self.source.database()
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Whether the server speaks MySQL's protocol (its operations: [`crate::mysql`]).
    pub fn is_mysql(&self) -> bool {
        self.source.engine() == lifeboat::db::Engine::Mysql
    }

    /// Run `sql` in the maintenance database.
    pub async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        self.query_on(&self.maintenance.clone(), sql).await
    }

    /// Run `sql` (one statement, or several as one transaction) in `db`; the rows, as text.
    pub async fn query_on(&self, db: &str, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        self.batch_on(db, &[sql]).await
    }

    /// Run `statements` one after the other, each its own transaction, in one session of `db`,
    /// stopping at the first error (a psql started once instead of once per statement: the
    /// swap runs while the app is down); the rows of all of them, as text.
    pub async fn batch_on(
        &self,
        db: &str,
        statements: &[&str],
    ) -> anyhow::Result<Vec<Vec<String>>> {
        for sql in statements {
            debug!(database = db, "SQL: {sql}");
        }
        let (docker, container, credentials) = match (&self.direct, &self.source) {
            (Some(target), _) | (None, Source::Url { target, .. }) => {
                return over_tcp(target, db, statements).await
            }
            (None, Source::MysqlUrl { .. }) => bail!("a MySQL server reached psql's path"),
            (
                None,
                Source::Container {
                    docker,
                    container,
                    credentials,
                    ..
                },
            ) => (docker, container, credentials),
        };
        let dbname = format!("--dbname={db}");
        let mut out = Vec::new();
        let mut command = vec![
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-F",
            "\x1f",
            "-R",
            "\x1e",
            "-v",
            "ON_ERROR_STOP=1",
            "--no-password",
            dbname.as_str(),
        ];
        for sql in statements {
            command.extend(["-c", sql]);
        }
        match docker
            .exec(container, &command, &credentials.client_env(), &mut out)
            .await
        {
            Ok(_) => {}
            Err(DockerError::ExecFailed { stderr, .. }) => {
                bail!("{}", stderr.trim())
            }
            Err(e) => return Err(e.into()),
        }
        let text = String::from_utf8_lossy(&out);
        Ok(text
            .split('\x1e')
            .map(|r| r.trim_end_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\x1f').map(str::to_owned).collect())
            .collect())
    }

    /// Every database's name.
    pub async fn databases(&self) -> anyhow::Result<Vec<String>> {
        if self.is_mysql() {
            return crate::mysql::databases(&self.source).await;
        }
        Ok(self
            .query("SELECT datname FROM pg_database")
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    pub async fn exists(&self, db: &str) -> anyhow::Result<bool> {
        if self.is_mysql() {
            return Ok(crate::mysql::info(&self.source, db).await?.is_some());
        }
        let rows = self
            .query(&format!(
                "SELECT 1 FROM pg_database WHERE datname = {}",
                literal(db)
            ))
            .await?;
        Ok(!rows.is_empty())
    }

    /// The server's `server_version_num` (`150004` for 15.4).
    pub async fn version_num(&self) -> anyhow::Result<u32> {
        let rows = self.query("SHOW server_version_num").await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("the server did not give its version number"))
    }

    /// Owner, encoding, locale (provider included) and connection limit of `db`, or `None` if
    /// it does not exist.
    pub async fn info(&self, db: &str) -> anyhow::Result<Option<DbInfo>> {
        if self.is_mysql() {
            return crate::mysql::info(&self.source, db).await;
        }
        // The locale provider's columns by version: none before 15 (libc only), ICU's locale
        // from 15, its rules from 16, one column for ICU and builtin from 17.
        let version = self.version_num().await?;
        let provider = match version {
            0..=149_999 => "'c', NULL, NULL",
            150_000..=159_999 => "datlocprovider, daticulocale, NULL",
            160_000..=169_999 => "datlocprovider, daticulocale, daticurules",
            _ => "datlocprovider, datlocale, daticurules",
        };
        // NULL and '' both arrive as '' through psql's unaligned output; either means none.
        let rows = self
            .query(&format!(
                "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, \
                 datctype, datconnlimit, {provider} FROM pg_database WHERE datname = {}",
                literal(db)
            ))
            .await?;
        let some = |v: String| (!v.is_empty()).then_some(v);
        Ok(rows.into_iter().next().and_then(|r| {
            let mut r = r.into_iter();
            Some(DbInfo {
                owner: r.next()?,
                encoding: r.next()?,
                collate: r.next()?,
                ctype: r.next()?,
                connection_limit: r.next()?,
                locale_provider: r.next()?,
                locale: r.next().and_then(some),
                icu_rules: r.next().and_then(some),
            })
        }))
    }

    /// Bytes `db` takes on disk.
    pub async fn size(&self, db: &str) -> anyhow::Result<u64> {
        if self.is_mysql() {
            return crate::mysql::size(&self.source, db).await;
        }
        let rows = self
            .query(&format!("SELECT pg_database_size({})", literal(db)))
            .await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no size for database {db}"))
    }

    /// Bytes free where the server keeps its data, when it can be known (the container's
    /// file system; a managed server does not say).
    pub async fn free_space(&self) -> anyhow::Result<Option<u64>> {
        if self.is_mysql() {
            // MySQL names its data directory too (`datadir`), but whether the container's
            // df sees it is not sure enough to refuse a restore on.
            return Ok(None);
        }
        // A one-off container beside a Swarm task does not hold the data.
        let Source::Container {
            docker,
            container,
            oneoff: None,
            ..
        } = &self.source
        else {
            return Ok(None);
        };
        let dir = self.query("SHOW data_directory").await?;
        let dir = dir
            .first()
            .and_then(|r| r.first())
            .context("the server did not give its data directory")?;
        let df = docker
            .exec_output(container, &["df", "-P", "-k", dir.as_str()])
            .await
            .context("asking the database container for its free space (df)")?;
        let available = df
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|kb| kb.parse::<u64>().ok())
            .with_context(|| format!("cannot read df's answer: {df}"))?;
        Ok(Some(available * 1024))
    }

    /// Create `db` as a sibling of the live database: same owner, encoding, locale (and
    /// locale provider: an ICU database stays ICU, with its ICU locale and rules) and
    /// connection limit, or the server's defaults when there is no live database.
    pub async fn create(&self, db: &str, like: Option<&DbInfo>) -> anyhow::Result<()> {
        if self.is_mysql() {
            return crate::mysql::create(&self.source, db, like).await;
        }
        let like = like.map_or_else(String::new, create_options);
        self.query(&format!(
            "CREATE DATABASE {} TEMPLATE template0{like}",
            ident(db)
        ))
        .await
        .map(drop)
    }

    /// `db`'s own properties (owner, locale, settings, grants, comment), as a backup records
    /// them; `None` if it does not exist.
    pub async fn properties(&self, db: &str) -> anyhow::Result<Option<DatabaseProperties>> {
        if self.is_mysql() {
            // Its grants stay with its name, its character set is copied by `create`.
            return Ok(None);
        }
        let version = self.version_num().await?;
        let rows = self.query(&properties::query(db, version)).await?;
        match rows.first().and_then(|r| r.first()) {
            Some(json) if !json.is_empty() => properties::parse(json).map(Some),
            _ => Ok(None),
        }
    }

    /// What a dump without `--create` loses, from the live `from` onto `to`: for a backup that
    /// did not record them (see [`Self::apply_properties`]).
    pub async fn copy_database_properties(&self, from: &str, to: &str) -> anyhow::Result<usize> {
        match self.properties(from).await? {
            Some(p) => self.apply_properties(to, &p).await,
            None => Ok(0),
        }
    }

    /// `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET` settings, the grants and the
    /// comment of `props` onto `to`. They belong to the database object, so a rename would leave
    /// them on the old one. Every value arrives quoted, never pasted.
    pub async fn apply_properties(
        &self,
        to: &str,
        props: &DatabaseProperties,
    ) -> anyhow::Result<usize> {
        let owner = self
            .query(&format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {}",
                literal(to)
            ))
            .await?;
        let statements = property_statements(to, props, owner.first().and_then(|r| r.first()));
        let count = statements.len();
        for statement in statements {
            self.query(&statement)
                .await
                .with_context(|| format!("applying a database property: {statement}"))?;
        }
        Ok(count)
    }

    /// Whether new sessions may connect to `db`.
    pub async fn allow_connections(&self, db: &str, allow: bool) -> anyhow::Result<()> {
        if self.is_mysql() {
            // MySQL has no such switch; the swap ends the sessions on the databases it moves.
            return Ok(());
        }
        self.query(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
            ident(db)
        ))
        .await
        .map(drop)
    }

    /// End every session on `db` but ours; returns how many there were.
    pub async fn terminate(&self, db: &str) -> anyhow::Result<u64> {
        if self.is_mysql() {
            return crate::mysql::terminate(&self.source, &[db]).await;
        }
        Ok(first_count(&self.query(&terminate_sql(&[db])).await?))
    }

    /// The swap in one session: new sessions on `closed` refused, the sessions on `closed` and
    /// on `ended` ended, then `renames` in one transaction (all or none; PostgreSQL waits a
    /// few seconds for the ended sessions to go). Returns how many sessions were ended.
    pub async fn close_and_rename(
        &self,
        closed: Option<&str>,
        ended: &[&str],
        renames: &[(&str, &str)],
    ) -> anyhow::Result<u64> {
        if self.is_mysql() {
            let close: Vec<&str> = closed
                .iter()
                .copied()
                .chain(ended.iter().copied())
                .collect();
            return crate::mysql::move_databases(&self.source, &close, renames).await;
        }
        let close =
            closed.map(|db| format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", ident(db)));
        let dbs: Vec<&str> = closed
            .iter()
            .copied()
            .chain(ended.iter().copied())
            .collect();
        let end = terminate_sql(&dbs);
        let rename = renames_sql(renames);
        let statements: Vec<&str> = close
            .iter()
            .map(String::as_str)
            .chain([end.as_str(), rename.as_str()])
            .collect();
        Ok(first_count(
            &self
                .batch_on(&self.maintenance.clone(), &statements)
                .await?,
        ))
    }

    /// Drop `db` if it exists, its sessions first.
    pub async fn drop_database(&self, db: &str) -> anyhow::Result<()> {
        if !self.exists(db).await? {
            return Ok(());
        }
        self.terminate(db).await?;
        if self.is_mysql() {
            return crate::mysql::drop_database(&self.source, db, true).await;
        }
        self.query(&format!("DROP DATABASE IF EXISTS {}", ident(db)))
            .await
            .map(drop)
    }
}

/// `statements` in one session of `db` on `target`; the rows of all of them, as text.
async fn over_tcp(
    target: &db::DbTarget,
    db: &str,
    statements: &[&str],
) -> anyhow::Result<Vec<Vec<String>>> {
    let target = target.with_database(db);
    let client = target.connect().await?;
    let mut rows = Vec::new();
    for sql in statements {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| db::query_error(&target, &e))?;
        rows.extend(messages.into_iter().filter_map(|m| {
            match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or_default().to_owned())
                        .collect(),
                ),
                _ => None,
            }
        }));
    }
    Ok(rows)
}

/// The container's PostgreSQL over a Docker network it is on, when this machine reaches it (the
/// engine is local, on Linux) and the container's own credentials (`POSTGRES_*`) let us in.
/// Then the restore's own SQL (checks, create, the swap, drops) costs a connection instead of
/// a `docker exec` of psql, a tenth of a second each, some of them while the app is down.
/// Otherwise `None`, and psql in the container as before; the restore's data always goes
/// through psql in the container, as the backup came from pg_dump there.
async fn direct_target(
    docker: &lifeboat::docker::Docker,
    container: &str,
    credentials: &db::ContainerCredentials,
) -> Option<db::DbTarget> {
    if std::env::var_os(VIA_EXEC_VAR).is_some() {
        debug!("{VIA_EXEC_VAR} is set: SQL goes through psql in the container");
        return None;
    }
    let info = docker.inspect(container).await.ok()?;
    let addresses: Vec<String> = info
        .network_settings?
        .networks?
        .into_values()
        .filter_map(|n| n.ip_address)
        .filter(|ip| !ip.is_empty())
        .collect();
    let password = credentials
        .password
        .clone()
        .unwrap_or_else(|| lifeboat::secret::Secret::new(""));
    for ip in addresses {
        let wait = std::time::Duration::from_millis(500);
        let open =
            tokio::time::timeout(wait, tokio::net::TcpStream::connect((ip.as_str(), 5432))).await;
        if !matches!(open, Ok(Ok(_))) {
            debug!("{container}'s PostgreSQL is not reachable at {ip}:5432; SQL goes through psql in the container");
            continue;
        }
        let target = db::DbTarget::from_parts(&ip, 5432, &credentials.user, &password, "postgres");
        match tokio::time::timeout(wait * 4, target.connect()).await {
            Ok(Ok(_)) => {
                debug!("{container}'s PostgreSQL answers at {ip}:5432: SQL goes there directly");
                return Some(target);
            }
            Ok(Err(e)) => debug!("{container}'s PostgreSQL at {ip}:5432 refused us ({e}); SQL goes through psql in the container"),
            Err(_) => debug!("{container}'s PostgreSQL at {ip}:5432 did not answer in time; SQL goes through psql in the container"),
        }
    }
    None
}

/// Ends every session on `dbs` but ours, and counts them.
fn terminate_sql(dbs: &[&str]) -> String {
    let names: Vec<String> = dbs.iter().map(|db| literal(db)).collect();
    format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname IN ({}) AND pid <> pg_backend_pid()",
        names.join(", ")
    )
}

/// The number in the first row's first column; 0 without one.
fn first_count(rows: &[Vec<String>]) -> u64 {
    rows.first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `BEGIN; ALTER DATABASE a RENAME TO b; …; COMMIT;`
fn renames_sql(renames: &[(&str, &str)]) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from("BEGIN;");
    for (from, to) in renames {
        let _ = write!(
            sql,
            " ALTER DATABASE {} RENAME TO {};",
            ident(from),
            ident(to)
        );
    }
    sql.push_str(" COMMIT;");
    sql
}

/// The statements that give database `to` (owned by `owner`) the settings, grants and comment
/// of `props`.
fn property_statements(
    to: &str,
    props: &DatabaseProperties,
    owner: Option<&String>,
) -> Vec<String> {
    let mut statements = Vec::new();
    for s in &props.settings {
        let Some((name, value)) = s.setting.split_once('=') else {
            continue;
        };
        // A list setting's elements each a literal (as pg_dump writes them), the name's parts
        // each an identifier.
        let value = match LIST_SETTINGS
            .contains(&name)
            .then(|| split_guc_list(value))
            .flatten()
        {
            Some(items) if !items.is_empty() => items
                .iter()
                .map(|i| literal(i))
                .collect::<Vec<_>>()
                .join(", "),
            _ => literal(value),
        };
        let name = name.split('.').map(ident).collect::<Vec<_>>().join(".");
        statements.push(match &s.role {
            None => format!("ALTER DATABASE {} SET {name} = {value}", ident(to)),
            Some(role) => format!(
                "ALTER ROLE {} IN DATABASE {} SET {name} = {value}",
                ident(role),
                ident(to)
            ),
        });
    }
    if let Some(grants) = &props.grants {
        // An explicit ACL replaces the default one (PUBLIC may connect and use TEMP). From an
        // empty one, grants in the ACL's order rebuild it item for item.
        statements.push(format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", ident(to)));
        if let Some(owner) = owner {
            statements.push(format!(
                "REVOKE ALL ON DATABASE {} FROM {}",
                ident(to),
                ident(owner)
            ));
        }
        for g in grants {
            let grantee = g
                .grantee
                .as_deref()
                .map_or_else(|| "PUBLIC".to_owned(), ident);
            let with = if g.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            };
            // The privilege is one of PostgreSQL's keywords; anything else is not pasted.
            if !g
                .privilege
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ')
            {
                continue;
            }
            statements.push(format!(
                "GRANT {} ON DATABASE {} TO {grantee}{with}",
                g.privilege,
                ident(to)
            ));
        }
    }
    if let Some(text) = &props.comment {
        statements.push(format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(to),
            literal(text)
        ));
    }
    statements
}

impl From<&DatabaseProperties> for DbInfo {
    fn from(p: &DatabaseProperties) -> Self {
        Self {
            owner: p.owner.clone(),
            encoding: p.encoding.clone(),
            collate: p.collate.clone(),
            ctype: p.ctype.clone(),
            connection_limit: p.connection_limit.to_string(),
            locale_provider: p.locale_provider.clone(),
            locale: p.locale.clone(),
            icu_rules: p.icu_rules.clone(),
        }
    }
}

/// `CREATE DATABASE`'s options that make a database like `i`.
fn create_options(i: &DbInfo) -> String {
    use std::fmt::Write as _;
    let mut options = format!(
        " OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        ident(&i.owner),
        literal(&i.encoding),
        literal(&i.collate),
        literal(&i.ctype),
    );
    match (i.locale_provider.as_str(), &i.locale) {
        ("i", Some(locale)) => {
            let _ = write!(
                options,
                " LOCALE_PROVIDER icu ICU_LOCALE {}",
                literal(locale)
            );
            if let Some(rules) = &i.icu_rules {
                let _ = write!(options, " ICU_RULES {}", literal(rules));
            }
        }
        ("b", Some(locale)) => {
            let _ = write!(
                options,
                " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                literal(locale)
            );
        }
        _ => {}
    }
    let _ = write!(
        options,
        " CONNECTION LIMIT {}",
        i.connection_limit.parse::<i32>().unwrap_or(-1)
    );
    options
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_settings_are_split_as_postgresql_splits_them() {
        use super::split_guc_list as split;
        assert_eq!(
            split(r#""$user", public,extra"#),
            Some(vec!["$user".into(), "public".into(), "extra".into()])
        );
        assert_eq!(
            split("public;ALTER/**/ROLE/**/app/**/SUPERUSER"),
            Some(vec!["public;ALTER/**/ROLE/**/app/**/SUPERUSER".into()])
        );
        assert_eq!(
            split(r#""a""b", c"#),
            Some(vec![r#"a"b"#.into(), "c".into()])
        );
        assert_eq!(split(""), Some(vec![]));
        assert_eq!(split(r#""open"#), None);
        assert_eq!(split("a b"), None);
        assert_eq!(split("a,,b"), None);
    }

    use super::*;

    #[test]
    fn an_icu_database_is_created_with_its_provider_locale_and_rules() {
        let mut info = DbInfo {
            owner: "app".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            connection_limit: "-1".into(),
            locale_provider: "c".into(),
            locale: None,
            icu_rules: None,
        };
        assert!(!create_options(&info).contains("LOCALE_PROVIDER"));
        info.locale_provider = "i".into();
        info.locale = Some("de-DE".into());
        info.icu_rules = Some("&a < b".into());
        let options = create_options(&info);
        assert!(
            options.contains(" LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' ICU_RULES '&a < b'"),
            "{options}"
        );
        info.locale_provider = "b".into();
        info.locale = Some("C.UTF-8".into());
        assert!(create_options(&info).contains(" LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"));
    }

    #[test]
    fn names_and_texts_are_quoted_whatever_they_hold() {
        assert_eq!(ident("app"), "\"app\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
