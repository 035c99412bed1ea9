//! Exact row counts, read off pg_dump's plain SQL as it streams by.
//!
//! pg_dump writes each table's rows as a `COPY name (columns) FROM stdin;` line, one line per
//! row (newlines inside values are escaped), and a `\.` line. Counting those lines costs one
//! pass of `memchr` over data that is being compressed anyway, and gives the manifest the exact
//! number of rows each table had in the dump: what `verify` and a restore test compare against.
//! pg_dumpall's output switches database with `\connect`; tables are then named `db/schema.table`.
//!
//! mysqldump (and mariadb-dump) writes each table as a ``CREATE TABLE `name` (`` line and its rows
//! as ``INSERT INTO `name` VALUES (…),(…);`` statements, many rows to a line, a line up to the
//! client's buffer (1 MiB by default) or more; MariaDB's dump (10.11 and later) puts each row on
//! a line of its own after ``VALUES``. Those statements are scanned as they stream, never kept,
//! up to their `;`: a row is a `(` outside any string at depth 0 (strings are `'…'` with `\`
//! escapes, and both dumps escape newlines, so a row never spans a line).

use crate::manifest::TableEstimate;

/// The first bytes of a line are all that is ever looked at; longer lines are cut here.
const HEAD: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct RowCounter {
    /// The start of the current line (up to [`HEAD`] bytes), when it did not end yet.
    line: Vec<u8>,
    /// Bytes of the current line seen so far (the line may be longer than `line`).
    line_len: usize,
    /// Bytes of the script read so far, and where the current line starts in it: each COPY
    /// block's offset and size go in the manifest.
    seen: u64,
    line_start: u64,
    /// The table whose rows are being read, when inside a COPY block.
    copying: Option<usize>,
    /// The database of a pg_dumpall script (`\connect`), if any.
    database: Option<String>,
    tables: Vec<TableEstimate>,
    /// Inside a mysqldump `INSERT INTO … VALUES` statement: where its rows are counted.
    inserting: Option<Values>,
}

/// The scan of an `INSERT … VALUES (…),(…);` line's rows.
#[derive(Debug)]
struct Values {
    table: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The statement's `;` was read: what follows on its line is not rows.
    done: bool,
}

impl Values {
    fn scan(&mut self, bytes: &[u8], tables: &mut [TableEstimate]) {
        for &b in bytes {
            if self.done {
                return;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'\'' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'\'' => self.in_string = true,
                b'(' => {
                    if self.depth == 0 {
                        tables[self.table].rows += 1;
                    }
                    self.depth += 1;
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                b';' if self.depth == 0 => self.done = true,
                _ => {}
            }
        }
    }
}

impl RowCounter {
    /// Read the next bytes of the script.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.take_head(&bytes[..i]);
            self.seen += i as u64 + 1;
            self.end_line();
            self.line_start = self.seen;
            bytes = &bytes[i + 1..];
        }
        if !bytes.is_empty() {
            self.take_head(bytes);
            self.seen += bytes.len() as u64;
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
        self.line_len += part.len();
        if let Some(values) = &mut self.inserting {
            values.scan(part, &mut self.tables);
            return;
        }
        // Inside a COPY block only `\.` matters: two bytes are enough.
        let head = if self.copying.is_some() { 3 } else { HEAD };
        let room = head.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        if self.copying.is_none() {
            self.start_values(part.len() > room);
        }
    }

    /// At ``INSERT INTO `name` VALUES `` (once the head holds it), start counting that line's rows
    /// with what came after it. `cut`: the head did not take the whole of the last part (a name
    /// longer than the head is not a table of this dump).
    fn start_values(&mut self, cut: bool) {
        const INSERT: &[u8] = b"INSERT INTO `";
        // mysqldump writes the rows on the same line, MariaDB's (10.11+) one per line after it.
        const VALUES: &[u8] = b"` VALUES";
        if cut || !self.line.starts_with(INSERT) {
            return;
        }
        let Some(at) = memchr::memmem::find(&self.line[INSERT.len()..], VALUES) else {
            return;
        };
        let name = backquoted(&self.line[INSERT.len()..INSERT.len() + at]);
        let table = if let Some(i) = self.tables.iter().rposition(|t| t.name == name) {
            i
        } else {
            self.tables.push(TableEstimate::new(name, 0));
            self.tables.len() - 1
        };
        let mut values = Values {
            table,
            depth: 0,
            in_string: false,
            escaped: false,
            done: false,
        };
        values.scan(
            &self.line[INSERT.len() + at + VALUES.len()..],
            &mut self.tables,
        );
        self.inserting = Some(values);
        self.line.clear();
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let len = std::mem::take(&mut self.line_len);
        if let Some(values) = &self.inserting {
            // An INSERT goes on over the next lines until its `;`.
            if values.done {
                self.inserting = None;
            }
            self.line = line;
            return;
        }
        if let Some(table) = self.copying {
            if len == 2 && line == b"\\." {
                self.copying = None;
                let t = &mut self.tables[table];
                t.bytes = t.offset.map(|start| self.seen - start);
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
                self.tables.push(TableEstimate {
                    offset: Some(self.line_start),
                    ..TableEstimate::new(name, 0)
                });
                self.copying = Some(self.tables.len() - 1);
            }
        } else if let Some(rest) = line.strip_prefix(b"\\connect ") {
            self.database = Some(connect_target(&String::from_utf8_lossy(rest)));
        } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE `") {
            // mysqldump: a table, listed even when it has no rows (no INSERT follows).
            if let Some(end) = rest.windows(3).position(|w| w == b"` (") {
                let name = backquoted(&rest[..end]);
                self.tables.push(TableEstimate::new(name, 0));
            }
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

/// A MySQL identifier between backquotes, whose own backquotes are doubled.
fn backquoted(inner: &[u8]) -> String {
    String::from_utf8_lossy(inner).replace("``", "`")
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
    fn each_copy_block_s_offset_and_size_are_its_bytes_whatever_the_chunks() {
        for chunk in [1, 2, 5, 64, DUMP.len()] {
            let mut c = RowCounter::default();
            for part in DUMP.as_bytes().chunks(chunk) {
                c.feed(part);
            }
            let blocks: Vec<&str> = c
                .finish()
                .iter()
                .map(|t| {
                    let start = usize::try_from(t.offset.expect("offset")).expect("usize");
                    let len = usize::try_from(t.bytes.expect("bytes")).expect("usize");
                    &DUMP[start..start + len]
                })
                .collect();
            assert_eq!(
                blocks,
                [
                    "COPY public.items (id, name) FROM stdin;\n1\ta\n2\tb\\nstill b\n3\t\\\\.\n\\.\n",
                    "COPY public.\"odd name\" (id) FROM stdin;\n\\.\n",
                    "COPY public.notes (id, body) FROM stdin;\n1\tx\n\\.\n",
                ],
                "chunks of {chunk}"
            );
        }
    }

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

    const MYSQLDUMP: &str = "/*!40101 SET NAMES utf8mb4 */;\n\
        DROP TABLE IF EXISTS `items`;\n\
        CREATE TABLE `items` (\n  `id` int NOT NULL,\n  `name` text\n) ENGINE=InnoDB;\n\
        INSERT INTO `items` VALUES (1,'a (b'),(2,'it\\'s \\\\'),(3,NULL);\n\
        INSERT INTO `items` VALUES (4,'),(');\n\
        CREATE TABLE `empty` (\n  `id` int\n);\n\
        CREATE TABLE `odd``name` (\n  `v` blob\n);\n\
        INSERT INTO `odd``name` VALUES (0x28),(_binary 'x');\n\
        /*!50001 CREATE VIEW `v` AS select 1 */;\n";

    #[test]
    fn mysqldump_rows_are_counted_exactly_whatever_the_chunks() {
        let expected = vec![
            ("items".to_owned(), 4),
            ("empty".to_owned(), 0),
            ("odd`name".to_owned(), 2),
        ];
        for chunk in [1, 2, 3, 7, 64, MYSQLDUMP.len()] {
            assert_eq!(count(MYSQLDUMP, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn mariadb_dump_rows_one_per_line_are_counted_to_the_statement_s_end() {
        let dump = "CREATE TABLE `t` (\n  `id` int\n);\n\
            INSERT INTO `t` VALUES\n(1,'a;b'),\n(2,'(x'),\n(3,NULL);\n\
            CREATE TABLE `u` (\n  `id` int\n);\n\
            INSERT INTO `u` VALUES\n(7);\n\
            /*!50001 CREATE VIEW `v` AS select (1) */;\n";
        for chunk in [1, 5, dump.len()] {
            assert_eq!(
                count(dump, chunk),
                vec![("t".to_owned(), 3), ("u".to_owned(), 1)],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_long_mysqldump_line_is_scanned_not_kept() {
        let rows: Vec<String> = (0..50_000)
            .map(|i| format!("({i},'{}')", "y".repeat(20)))
            .collect();
        let script = format!(
            "CREATE TABLE `t` (\n`id` int);\nINSERT INTO `t` VALUES {};\n",
            rows.join(",")
        );
        let mut c = RowCounter::default();
        for part in script.as_bytes().chunks(8192) {
            c.feed(part);
            assert!(c.line.capacity() <= HEAD + 8192, "{}", c.line.capacity());
        }
        assert_eq!(c.finish(), vec![TableEstimate::new("t", 50_000)]);
    }

    #[test]
    fn a_long_row_is_one_row() {
        let row = "x".repeat(100_000);
        let script = format!("COPY public.big (v) FROM stdin;\n{row}\n{row}\n\\.\n");
        assert_eq!(count(&script, 4096), vec![("public.big".to_owned(), 2)]);
    }
}
