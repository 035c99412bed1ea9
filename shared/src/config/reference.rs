//! The configuration reference, `docs/configuration.md`, generated from the settings table so
//! that it cannot disagree with the code (`scripts/config-reference` writes it; a test fails
//! when the committed file is stale).

use std::fmt::Write as _;

use super::settings::{Section, Setting, SETTINGS};

const INTRO: &str = "\
# Configuration reference

<!-- Generated from shared/src/config/settings.rs by scripts/config-reference: do not edit by hand. -->

lifeboat works beside an existing stack with no file of its own: it reads the variables the
stack's `.env` already has. Values come from five layers, highest first:

1. command-line flags (`--dir`, `--url`, …)
2. the environment
3. the stack's `.env` file (`./.env`, or `--env-file`)
4. `lifeboat.toml` (`./lifeboat.toml`, or `--config`): its `[profile.NAME]` table over its top level
5. defaults

A typo never falls back silently to a default: an unknown key in `lifeboat.toml` or an unknown
`LIFEBOAT_*` variable is an error, and every error names the key and the file, line, variable or
flag the value came from, e.g. `invalid value for `smtp.port` (from SMTP_PORT in .env line 3):
expected a port number 1-65535, got \"twenty-five\"`. Variables that are not lifeboat's (the
stack's `NODE_ENV`, `POSTGRES_PASSWORD`, …) are ignored.

A variable with a key can be set in the environment, in `.env` or, as its key, in
`lifeboat.toml`: `[section]` then `name = value`; a list is a comma-separated variable or a TOML
list of strings. A variable without a key (the command line's own, lifeboat-healthcheck's,
libpq's) is read from the environment only (`LIFEBOAT_ENV` may also be set in `.env`). Secrets (`S3_SECRET_ACCESS_KEY`, `SMTP_PASSWORD`,
passwords inside `DATABASE_URL`) are never printed, and are best left in `.env` or the
environment, where the stack already keeps them.
";

const EXAMPLE: &str = "\
## Example lifeboat.toml

```toml
# Beside docker-compose.yml. Everything here can also come from .env or the environment.
[database]
service = \"postgres\"

[backup]
dir = \"/srv/backups\"

[s3]
endpoint = \"http://127.0.0.1:9000\"   # MinIO
bucket = \"backups\"
prefix = \"myapp/\"

[smtp]
host = \"mail.example.com\"
port = 587
from = \"lifeboat@example.com\"

[mail]
to = [\"ops@example.com\"]

# `--env production` or LIFEBOAT_ENV=production applies this table over the one above.
[profile.production.s3]
endpoint = \"https://fra1.digitaloceanspaces.com\"
region = \"fra1\"
bucket = \"myapp-backups\"

[profile.staging.s3]
bucket = \"myapp-staging-backups\"
```
";

/// `docs/configuration.md`: the precedence, then one table per section, then an example.
pub fn reference_markdown() -> String {
    let mut out = String::from(INTRO);
    for &section in Section::ALL {
        let rows: Vec<&Setting> = SETTINGS.iter().filter(|s| s.section == section).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n## {}\n\n| variable | key in lifeboat.toml | default | kind | meaning |\n|---|---|---|---|---|\n",
            section.title()
        );
        for s in rows {
            let _ = writeln!(out, "{}", row(s));
        }
    }
    out.push('\n');
    out.push_str(EXAMPLE);
    out
}

/// One row of a section's table.
fn row(s: &Setting) -> String {
    let key = s.key.map_or_else(|| "–".to_owned(), |k| format!("`{k}`"));
    let default = match (s.default, s.default_doc) {
        (Some(value), _) => format!("`{value}`"),
        (None, Some(doc)) => doc.to_owned(),
        (None, None) => "–".to_owned(),
    };
    let kind = if s.secret {
        format!("{}, secret", s.kind.name())
    } else {
        s.kind.name().to_owned()
    };
    format!(
        "| `{}` | {key} | {} | {kind} | {} |",
        s.var,
        cell(&default),
        cell(s.doc)
    )
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_names_every_variable_and_key_once() {
        let text = reference_markdown();
        for s in SETTINGS {
            let row = format!("| `{}` |", s.var);
            assert_eq!(text.matches(&row).count(), 1, "{}", s.var);
            if let Some(key) = s.key {
                assert!(text.contains(&format!("`{key}`")), "{key}");
            }
        }
    }
}
