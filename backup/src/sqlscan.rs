//! Exact row counts, read off pg_dump's plain SQL as it streams by.
//!
//! pg_dump writes each table's rows as a `COPY name (columns) FROM stdin;` line, one line per
//! row (newlines inside values are escaped), and a `\.` line. Counting those lines costs one
//! pass of `memchr` over data that is being compressed anyway, and gives the manifest the exact
//! number of rows each table had in the dump: what `verify` and a restore test compare against.
//! pg_dumpall's output switches database with `\connect`; tables are then named `db/schema.table`.

use crate::manifest::TableEstimate;

/// The first bytes of a line are all that is ever looked at; longer lines are cut here.
const HEAD: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct RowCounter {
    /// The start of the current line (up to [`HEAD`] bytes), when it did not end yet.
    line: Vec<u8>,
    /// Bytes of the current line seen so far (the line may be longer than `line`).
    line_len: usize,
    /// The table whose rows are being read, when inside a COPY block.
    copying: Option<usize>,
    /// The database of a pg_dumpall script (`\connect`), if any.
    database: Option<String>,
    tables: Vec<TableEstimate>,
}

impl RowCounter {
    /// Read the next bytes of the script.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.take_head(&bytes[..i]);
            self.end_line();
            bytes = &bytes[i + 1..];
        }
        if !bytes.is_empty() {
            self.take_head(bytes);
        }
    }

    /// The tables seen, in the order of the dump, with their rows.
    pub fn finish(mut self) -> Vec<TableEstimate> {
        if self.line_len > 0 {
            self.end_line();
        }
        self.tables
    }

    fn take_head(&mut self, part: &[u8]) {
        // Inside a COPY block only `\.` matters: two bytes are enough.
        let head = if self.copying.is_some() { 3 } else { HEAD };
        let room = head.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let len = std::mem::take(&mut self.line_len);
        if let Some(table) = self.copying {
            if len == 2 && line == b"\\." {
                self.copying = None;
            } else {
                self.tables[table].rows += 1;
            }
        } else if let Some(rest) = line.strip_prefix(b"COPY ") {
            if line.ends_with(b"FROM stdin;") {
                let name = table_name(rest);
                let name = match &self.database {
                    Some(db) => format!("{db}/{name}"),
                    None => name,
                };
                self.tables.push(TableEstimate { name, rows: 0 });
                self.copying = Some(self.tables.len() - 1);
            }
        } else if let Some(rest) = line.strip_prefix(b"\\connect ") {
            self.database = Some(connect_target(&String::from_utf8_lossy(rest)));
        }
        self.line = line;
        self.line.clear();
    }
}

/// `public."my table" (id, name) FROM stdin;` → `public."my table"`: up to the first space
/// outside double quotes.
fn table_name(rest: &[u8]) -> String {
    let mut quoted = false;
    let end = rest
        .iter()
        .position(|&b| {
            if b == b'"' {
                quoted = !quoted;
            }
            b == b' ' && !quoted
        })
        .unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// The database of a `\connect` line: `app`, `"my db"`, or
/// `-reuse-previous=on "dbname='app'"` as pg_dumpall writes it.
fn connect_target(rest: &str) -> String {
    let rest = rest.trim();
    if let Some(i) = rest.find("dbname=") {
        let value = rest[i + "dbname=".len()..].trim_end_matches('"');
        return value.trim_matches('\'').replace("''", "'");
    }
    let word = rest.rsplit(' ').next().unwrap_or(rest);
    word.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(script: &str, chunk: usize) -> Vec<(String, i64)> {
        let mut c = RowCounter::default();
        for part in script.as_bytes().chunks(chunk) {
            c.feed(part);
        }
        c.finish().into_iter().map(|t| (t.name, t.rows)).collect()
    }

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.items (id int);\n\
        COPY public.items (id, name) FROM stdin;\n1\ta\n2\tb\\nstill b\n3\t\\\\.\n\\.\n\
        COPY public.\"odd name\" (id) FROM stdin;\n\\.\n\
        COPY public.notes (id, body) FROM stdin;\n1\tx\n\\.\n\
        SELECT pg_catalog.setval('public.items_id_seq', 3, true);\n";

    #[test]
    fn rows_are_counted_exactly_whatever_the_chunks() {
        let expected = vec![
            ("public.items".to_owned(), 3),
            ("public.\"odd name\"".to_owned(), 0),
            ("public.notes".to_owned(), 1),
        ];
        for chunk in [1, 2, 3, 7, 64, DUMP.len()] {
            assert_eq!(count(DUMP, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_pg_dumpall_script_names_tables_by_database() {
        let script = "CREATE ROLE app;\n\\connect template1\n\
            \\connect -reuse-previous=on \"dbname='shop'\"\n\
            COPY public.orders (id) FROM stdin;\n1\n2\n\\.\n\
            \\connect postgres\nCOPY public.t (id) FROM stdin;\n9\n\\.\n";
        assert_eq!(
            count(script, 5),
            vec![
                ("shop/public.orders".to_owned(), 2),
                ("postgres/public.t".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_long_row_is_one_row() {
        let row = "x".repeat(100_000);
        let script = format!("COPY public.big (v) FROM stdin;\n{row}\n{row}\n\\.\n");
        assert_eq!(count(&script, 4096), vec![("public.big".to_owned(), 2)]);
    }
}
