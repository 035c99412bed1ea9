//! The database server as restore needs it: what every engine does behind lifeboat's engine
//! seam (create, drop, end sessions, the room left on its disk: `lifeboat::engine`,
//! implemented by lifeboat-backup's `engine` module, so that a restore reaches the server
//! exactly as the backup did), and what only a restore does, per engine: create a sibling of
//! the live database, copy what a plain dump does not carry (PostgreSQL's owner, settings,
//! grants, comment) and the swap (PostgreSQL renames databases; MySQL moves tables:
//! [`crate::mysql`]).

use anyhow::{anyhow, Context};
use lifeboat::config::Config;
use lifeboat::engine::{DatabaseServer, Engine, Rows};
use lifeboat_backup::engine::postgres::{first_count, terminate_sql};
use lifeboat_backup::properties::{self, DatabaseProperties};
use lifeboat_backup::source::Source;

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

pub struct Server {
    pub source: Source,
    /// The server behind the engine seam.
    engine: Box<dyn DatabaseServer>,
}

pub use lifeboat_backup::engine::postgres::{ident, literal};

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

impl Server {
    /// The backup source's server: the container (compose service, or by name) or `--url`.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let mut config = config.clone();
        config.backup.all = false;
        let source = Source::resolve(&config).await?;
        let engine = source.server();
        engine
            .rows(None, "SELECT 1")
            .await
            .with_context(|| format!("cannot reach the server ({})", source.describe()))?;
        Ok(Self { source, engine })
    }

    /// The database restored into: the container's POSTGRES_DB, the URL's, or --database.
    pub fn database(&self) -> &str {
        self.source.database()
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The server behind the engine seam.
    pub fn engine(&self) -> &dyn DatabaseServer {
        self.engine.as_ref()
    }

    /// Whether the server speaks MySQL's protocol (its swap: [`crate::mysql`]).
    pub fn is_mysql(&self) -> bool {
        self.engine.engine() == Engine::Mysql
    }

    /// Run `sql` where the engine runs maintenance statements.
    pub async fn query(&self, sql: &str) -> anyhow::Result<Rows> {
        self.engine.rows(None, sql).await
    }

    /// Every database's name.
    pub async fn databases(&self) -> anyhow::Result<Vec<String>> {
        self.engine.databases().await
    }

    pub async fn exists(&self, db: &str) -> anyhow::Result<bool> {
        self.engine.exists(db).await
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
        self.engine.size(db).await
    }

    /// Bytes free where the server keeps its data, when it can be known (the container's
    /// file system; a managed server does not say).
    pub async fn free_space(&self) -> anyhow::Result<Option<u64>> {
        self.engine.free_space().await
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
        self.engine.terminate(&[db]).await
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
        Ok(first_count(&self.engine.batch(None, &statements).await?))
    }

    /// Drop `db` if it exists, its sessions first.
    pub async fn drop_database(&self, db: &str) -> anyhow::Result<()> {
        self.engine.drop_database(db).await
    }
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
