//! A database's own properties, which live outside it in the cluster's catalogs and which a
//! plain `pg_dump` (without `--create`) leaves out: owner, encoding, locale, connection limit,
//! `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET` settings, grants and the
//! comment. lifeboat-backup records them in the manifest at backup time, and lifeboat-restore
//! applies the backup's, not the live database's: a setting changed during an incident does not
//! survive the restore, and a restore onto a new server (seed 003's move to managed PostgreSQL)
//! gets them all.
//!
//! Both read them with the one query of [`query`], which answers a single JSON text.

use serde::{Deserialize, Serialize};

/// A setting as the catalog holds it, for every session of the database or of one role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// The role, for `ALTER ROLE … IN DATABASE`; none for `ALTER DATABASE`.
    pub role: Option<String>,
    /// `name=value`, as `pg_db_role_setting` holds it.
    pub setting: String,
}

/// One privilege of one grantee on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// None for PUBLIC.
    pub grantee: Option<String>,
    pub privilege: String,
    pub grantable: bool,
}

/// What [`query`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProperties {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub connection_limit: i32,
    /// `c` libc, `i` ICU, `b` builtin (PostgreSQL 17+); `c` before 15.
    pub locale_provider: String,
    /// The ICU or builtin locale.
    pub locale: Option<String>,
    /// ICU tailoring rules (16+).
    pub icu_rules: Option<String>,
    pub settings: Vec<Setting>,
    /// None: the default privileges (no ACL); else the ACL item by item.
    pub grants: Option<Vec<Grant>>,
    pub comment: Option<String>,
}

/// `'text'`, with any `'` doubled (and `E''` when it holds a backslash): a literal for any text.
fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// The query of database `db`'s properties on a server of version `version_num`
/// (`server_version_num`), one row, one column of JSON text; no row when `db` does not exist.
pub fn query(db: &str, version_num: u32) -> String {
    // The locale provider's columns by version: none before 15 (libc only), ICU's locale from
    // 15, its rules from 16, one column for ICU and builtin from 17.
    let (provider, locale, rules) = match version_num {
        0..=149_999 => ("'c'", "NULL", "NULL"),
        150_000..=159_999 => ("d.datlocprovider", "d.daticulocale", "NULL"),
        160_000..=169_999 => ("d.datlocprovider", "d.daticulocale", "d.daticurules"),
        _ => ("d.datlocprovider", "d.datlocale", "d.daticurules"),
    };
    format!(
        "SELECT json_build_object(\
         'owner', pg_get_userbyid(d.datdba), \
         'encoding', pg_encoding_to_char(d.encoding), \
         'collate', d.datcollate, 'ctype', d.datctype, \
         'connection_limit', d.datconnlimit, \
         'locale_provider', {provider}::text, 'locale', NULLIF({locale}, ''), \
         'icu_rules', NULLIF({rules}, ''), \
         'settings', COALESCE((SELECT json_agg(json_build_object('role', r.rolname, 'setting', c.setting) \
             ORDER BY r.rolname NULLS FIRST, c.n) \
             FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole \
             CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(setting, n) \
             WHERE s.setdatabase = d.oid), '[]'::json), \
         'grants', CASE WHEN d.datacl IS NULL THEN NULL ELSE COALESCE((SELECT json_agg(json_build_object(\
             'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, \
             'privilege', a.privilege_type, 'grantable', a.is_grantable)) \
             FROM aclexplode(d.datacl) a), '[]'::json) END, \
         'comment', shobj_description(d.oid, 'pg_database'))::text \
         FROM pg_database d WHERE d.datname = {}",
        literal(db)
    )
}

/// Parse [`query`]'s answer (bounded: it is what the server said).
pub fn parse(json: &str) -> anyhow::Result<DatabaseProperties> {
    anyhow::ensure!(
        json.len() <= 16 * 1024 * 1024,
        "the database's properties are larger than 16 MiB"
    );
    serde_json::from_str(json.trim())
        .map_err(|e| anyhow::anyhow!("cannot read the database's properties: {e}"))
}

impl DatabaseProperties {
    /// What differs from `other` (the live database's), one line each, for a person to read.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |name: &str, mine: String, theirs: String| {
            if mine != theirs {
                out.push(format!("{name}: {theirs} now, {mine} in the backup"));
            }
        };
        field("owner", self.owner.clone(), other.owner.clone());
        field("encoding", self.encoding.clone(), other.encoding.clone());
        field("collation", self.collate.clone(), other.collate.clone());
        field("ctype", self.ctype.clone(), other.ctype.clone());
        field(
            "connection limit",
            self.connection_limit.to_string(),
            other.connection_limit.to_string(),
        );
        field(
            "locale",
            format!("{} {:?}", self.locale_provider, self.locale),
            format!("{} {:?}", other.locale_provider, other.locale),
        );
        let setting = |s: &Setting| match &s.role {
            Some(r) => format!("role {r}: {}", s.setting),
            None => s.setting.clone(),
        };
        for s in &other.settings {
            if !self.settings.contains(s) {
                out.push(format!("setting {} only now: not restored", setting(s)));
            }
        }
        for s in &self.settings {
            if !other.settings.contains(s) {
                out.push(format!(
                    "setting {} only in the backup: restored",
                    setting(s)
                ));
            }
        }
        if self.grants != other.grants {
            out.push("grants differ: the backup's are restored".into());
        }
        if self.comment != other.comment {
            out.push("comment differs: the backup's is restored".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_quotes_the_name_and_the_answer_parses() {
        let q = query("it's \\ odd", 170_000);
        assert!(q.contains("d.datname = E'it''s \\\\ odd'"), "{q}");
        assert!(q.contains("d.datlocale"), "{q}");
        assert!(query("a", 140_000).contains("'c'::text"));
        let p = parse(
            r#"{"owner":"app","encoding":"UTF8","collate":"C.UTF-8","ctype":"C.UTF-8","connection_limit":-1,"locale_provider":"c","locale":null,"icu_rules":null,"settings":[{"role":null,"setting":"work_mem=8MB"},{"role":"app","setting":"search_path=public, extra"}],"grants":[{"grantee":null,"privilege":"CONNECT","grantable":false}],"comment":"the app"}"#,
        )
        .expect("parse");
        assert_eq!(p.settings.len(), 2);
        assert_eq!(p.grants.as_ref().map(Vec::len), Some(1));
        let mut now = p.clone();
        now.settings[0].setting = "work_mem=64MB".into();
        let diff = p.differences(&now);
        assert!(
            diff.iter().any(|d| d.contains("work_mem=64MB only now")),
            "{diff:?}"
        );
    }
}
