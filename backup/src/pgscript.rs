//! pg_dump's plain SQL cut into the pieces a parallel load plans with (issue 21): statements
//! and `COPY … FROM stdin` blocks, each with the section of the dump it belongs to, streamed,
//! in bounded memory.
//!
//! The boundaries come from pg_dump's own structure, never from guessing on `;`:
//! - its TOC comments (`-- Name: t_pkey; Type: CONSTRAINT; Schema: public; Owner: app`, and
//!   `-- Data for Name: t; Type: TABLE DATA; …`) name each entry's type, and so its section:
//!   pg_dump writes every pre-data entry, then every data entry, then every post-data one;
//! - a tokenizer finds where each statement ends: a `;` outside single-quoted strings
//!   (`E'…'` with its backslash escapes), quoted identifiers, dollar-quoted bodies (`$$…$$`,
//!   `$fn$…$fn$`), `--` comments and nested `/* */` comments;
//! - a `COPY … FROM stdin;` statement's rows follow it, a line each, up to a line that is
//!   exactly `\.` (a value holding `\.` is written `\\.` by pg_dump, so no row is that line).
//!
//! Anything it does not understand (a `COPY` whose table it cannot read, a script ending inside
//! a string) makes it [`Splitter::confused`], and every byte after that point comes out as one
//! serial piece: the caller loads the rest in order, on one session, as before.

/// Where in the dump a piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Schema: types, tables, functions… in order, on one session, before any data.
    PreData,
    /// Rows (`COPY`), sequence values, large objects' contents.
    Data,
    /// Indexes, constraints, triggers, grants… after all the data.
    PostData,
}

/// One piece of the script, in the order of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// One statement, with the comments and blank lines before it.
    Sql {
        section: Section,
        /// The TOC entry's type (`INDEX`, `FK CONSTRAINT`, `ACL`…), when a TOC comment named it.
        kind: Option<String>,
        /// Independent of the other post-data statements (an index, a primary key, a unique
        /// or check constraint): may run on any session, in any order, once the data is in.
        independent: bool,
        text: Vec<u8>,
    },
    /// A table's rows begin: its `COPY … FROM stdin;` statement (comments before it included).
    CopyStart { table: String, text: Vec<u8> },
    /// Rows of the current `COPY`, whole lines.
    CopyData(Vec<u8>),
    /// The current `COPY`'s `\.` line.
    CopyEnd,
    /// After [`Splitter::confused`]: bytes to load in order, as they are.
    Serial(Vec<u8>),
}

/// The kind of a psql meta-command line (`\restrict KEY`, `\unrestrict KEY` around a dump of
/// pg_dump 17.6, 16.10, 15.14 and later; `\connect` in pg_dumpall's): the loader gives it to
/// every session that needs it, or none.
pub const META: &str = "psql meta-command";

/// The most bytes of one statement kept before the splitter gives up on it (a function body
/// of this size is not pg_dump's): the rest goes serially.
const MAX_STATEMENT: usize = 64 * 1024 * 1024;

/// Rows are handed on in chunks of about this size, at line ends.
const COPY_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Normal,
    /// `'…'`; `escapes`: an `E'…'` string, where `\` escapes the next character.
    Single {
        escapes: bool,
        escaped: bool,
    },
    /// `"…"`.
    Double,
    /// `$tag$…$tag$` (the tag without its dollars).
    Dollar(Vec<u8>),
    LineComment,
    BlockComment {
        depth: u32,
    },
}

#[derive(Debug, Default)]
pub struct Splitter {
    /// The statement being read (and the comments before it).
    statement: Vec<u8>,
    /// Where the tokenizer is inside `statement`.
    token: Option<Token>,
    /// Bytes of `statement` already tokenized.
    scanned: usize,
    /// Inside a `COPY`'s rows.
    copy: Option<CopyLine>,
    /// Rows waiting to be handed on as one chunk.
    rows: Vec<u8>,
    section: Option<Section>,
    kind: Option<String>,
    /// The statement just ended is a psql meta-command line.
    meta: bool,
    confused: Option<String>,
}

impl Splitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Why the splitter stopped understanding the script, if it did: everything after came
    /// out as [`Piece::Serial`].
    pub fn confused(&self) -> Option<&str> {
        self.confused.as_deref()
    }

    /// The next bytes of the script; the pieces they complete are pushed onto `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Piece>) {
        while !bytes.is_empty() {
            if self.confused.is_some() {
                out.push(Piece::Serial(bytes.to_vec()));
                return;
            }
            let used = if self.copy.is_some() {
                self.feed_copy(bytes, out)
            } else {
                self.feed_sql(bytes, out)
            };
            bytes = &bytes[used..];
        }
    }

    /// The end of the script: what is left must be nothing but comments and blank lines.
    pub fn finish(mut self, out: &mut Vec<Piece>) -> Option<String> {
        if self.confused.is_none() {
            if self.copy.is_some() {
                self.give_up("the script ends inside a COPY's rows", out);
            } else if !is_blank(&self.statement) {
                self.give_up("the script ends inside a statement", out);
            }
        }
        self.confused
    }

    fn give_up(&mut self, why: &str, out: &mut Vec<Piece>) {
        let mut rest = std::mem::take(&mut self.rows);
        if let Some(mut line) = self.copy.take() {
            rest.append(&mut line.start);
        }
        rest.append(&mut self.statement);
        if !rest.is_empty() {
            out.push(Piece::Serial(rest));
        }
        self.confused = Some(why.to_owned());
    }

    /// Tokenize `bytes` onto the statement up to its end; returns the bytes used.
    fn feed_sql(&mut self, bytes: &[u8], out: &mut Vec<Piece>) -> usize {
        let start = self.statement.len();
        self.statement.extend_from_slice(bytes);
        let Some(end) = self.scan() else {
            if self.statement.len() > MAX_STATEMENT {
                self.give_up("a statement of more than 64 MiB", out);
            }
            return bytes.len();
        };
        self.statement.truncate(end);
        let text = std::mem::take(&mut self.statement);
        self.scanned = 0;
        self.token = None;
        self.statement_done(text, out);
        end - start
    }

    /// Tokenize the statement from where the last call stopped; the end of the statement (just
    /// after its `;` and the rest of that line) when it is in.
    fn scan(&mut self) -> Option<usize> {
        let s = &self.statement;
        let mut i = self.scanned;
        let mut token = self.token.take().unwrap_or(Token::Normal);
        let mut tocs = Vec::new();
        let mut end = None;
        while i < s.len() {
            match step(s, i, &mut token, &mut tocs) {
                Step::Next(n) => i = n,
                Step::Wait => break,
                Step::End(e) => {
                    end = Some(e);
                    i = e;
                    break;
                }
                Step::Meta(e) => {
                    end = Some(e);
                    i = e;
                    self.meta = true;
                    break;
                }
            }
        }
        self.scanned = i;
        self.token = Some(token);
        for (from, to) in tocs {
            let line = self.statement[from..to].to_vec();
            self.toc(&line);
        }
        end
    }

    /// A TOC comment line: its `Type:` gives the entry's kind and, in pg_dump's order, the
    /// section from here on.
    fn toc(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let Some(rest) = line
            .strip_prefix("-- Name: ")
            .or_else(|| line.strip_prefix("-- Data for Name: "))
        else {
            return;
        };
        let Some(kind) = rest
            .split("; ")
            .find_map(|part| part.strip_prefix("Type: "))
        else {
            return;
        };
        let section = section_of(kind);
        self.section = Some(match (self.section, section) {
            // Sections only go forward; an entry of no section of its own (a comment, a grant)
            // stays in the one it is written in.
            (Some(now), Some(new)) if rank(new) > rank(now) => new,
            (Some(now), _) => now,
            (None, new) => new.unwrap_or(Section::PreData),
        });
        self.kind = Some(kind.to_owned());
    }

    /// A whole statement: a `COPY … FROM stdin` starts its rows, anything else is handed on.
    fn statement_done(&mut self, text: Vec<u8>, out: &mut Vec<Piece>) {
        let section = self.section.unwrap_or(Section::PreData);
        if std::mem::take(&mut self.meta) {
            out.push(Piece::Sql {
                section,
                kind: Some(META.to_owned()),
                independent: false,
                text,
            });
            return;
        }
        let body = strip_comments(&text);
        if starts_with_word(body, b"COPY") && ends_from_stdin(body) {
            match copy_table(body) {
                Some(table) if section == Section::Data => {
                    out.push(Piece::CopyStart { table, text });
                    self.copy = Some(CopyLine::default());
                }
                _ => {
                    self.statement = text;
                    self.give_up("a COPY statement it cannot read", out);
                }
            }
            return;
        }
        let independent =
            section == Section::PostData && is_independent(self.kind.as_deref(), body);
        out.push(Piece::Sql {
            section,
            kind: self.kind.clone(),
            independent,
            text,
        });
    }

    /// Rows of a `COPY`, line by line, up to `\.`; returns the bytes used.
    fn feed_copy(&mut self, bytes: &[u8], out: &mut Vec<Piece>) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            let line = self.copy.as_mut().expect("inside a COPY");
            if line.row {
                // The rest of a line already known to be a row.
                let Some(n) = memchr::memchr(b'\n', rest) else {
                    self.rows.extend_from_slice(rest);
                    return bytes.len();
                };
                self.rows.extend_from_slice(&rest[..=n]);
                line.row = false;
                used += n + 1;
            } else {
                // A line's first bytes: is it `\.`?
                let b = rest[0];
                line.start.push(b);
                used += 1;
                if b == b'\n' {
                    if line.start.as_slice() == b"\\.\n" {
                        self.copy = None;
                        if !self.rows.is_empty() {
                            out.push(Piece::CopyData(std::mem::take(&mut self.rows)));
                        }
                        out.push(Piece::CopyEnd);
                        return used;
                    }
                    self.rows.append(&mut line.start);
                } else if line.start.len() == 3 || !b"\\.".starts_with(&line.start) {
                    self.rows.append(&mut line.start);
                    line.row = true;
                }
            }
            let line = self.copy.as_ref().expect("inside a COPY");
            if !line.row && line.start.is_empty() && self.rows.len() >= COPY_CHUNK {
                out.push(Piece::CopyData(std::mem::take(&mut self.rows)));
            }
        }
        used
    }
}

/// Inside a `COPY`'s rows: where the current line is.
#[derive(Debug, Default)]
struct CopyLine {
    /// The line's first bytes, until it is known whether it is `\.`.
    start: Vec<u8>,
    /// The line is known to be a row: its bytes go to the rows up to its newline.
    row: bool,
}

/// What the tokenizer does at one byte.
enum Step {
    /// Go on at this index.
    Next(usize),
    /// The bytes end before this byte can be judged: again when more come.
    Wait,
    /// The statement ends here (after its line).
    End(usize),
    /// A psql meta-command line ends here.
    Meta(usize),
}

/// The end of the line holding `i`, just after its newline, if it is in.
fn line_end(s: &[u8], i: usize) -> Option<usize> {
    memchr::memchr(b'\n', &s[i..]).map(|n| i + n + 1)
}

/// One step of the tokenizer at `s[i]` in state `token`; the start and end of each TOC comment
/// line are pushed onto `tocs`.
fn step(s: &[u8], i: usize, token: &mut Token, tocs: &mut Vec<(usize, usize)>) -> Step {
    let b = s[i];
    let next = s.get(i + 1).copied();
    match token {
        Token::Normal => match b {
            b'\'' => {
                let escapes = i > 0
                    && (s[i - 1] == b'E' || s[i - 1] == b'e')
                    && (i < 2 || !is_ident_byte(s[i - 2]));
                *token = Token::Single {
                    escapes,
                    escaped: false,
                };
            }
            b'"' => *token = Token::Double,
            // A psql meta-command (`\restrict`, `\connect`) is its own line.
            b'\\' if line_start(s, i) && is_blank(&s[..i]) => {
                return line_end(s, i).map_or(Step::Wait, Step::Meta);
            }
            b'-' | b'/' if next.is_none() => return Step::Wait, // a comment may start here
            b'-' if next == Some(b'-') => {
                // A TOC comment at the start of a line, outside any statement, names the entry
                // that follows.
                if line_start(s, i) && is_blank(&s[..i]) {
                    let Some(e) = line_end(s, i) else {
                        return Step::Wait; // the whole line first
                    };
                    tocs.push((i, e - 1));
                }
                *token = Token::LineComment;
                return Step::Next(i + 2);
            }
            b'/' if next == Some(b'*') => {
                *token = Token::BlockComment { depth: 1 };
                return Step::Next(i + 2);
            }
            b'$' if i == 0 || !is_ident_byte(s[i - 1]) => match dollar_tag(&s[i..]) {
                Dollar::Opens(tag) => {
                    let n = i + tag.len() + 2;
                    *token = Token::Dollar(tag);
                    return Step::Next(n);
                }
                Dollar::Not => {}
                Dollar::Unknown => return Step::Wait, // the tag is not all here yet
            },
            // The statement ends with its line (pg_dump ends every line there).
            b';' => return line_end(s, i).map_or(Step::Wait, Step::End),
            _ => {}
        },
        Token::Single { escapes, escaped } => {
            if *escaped {
                *escaped = false;
            } else if *escapes && b == b'\\' {
                *escaped = true;
            } else if b == b'\'' {
                *token = Token::Normal;
            }
        }
        Token::Double => {
            if b == b'"' {
                *token = Token::Normal;
            }
        }
        Token::Dollar(tag) => {
            if b == b'$' {
                let close = i + tag.len() + 2;
                if s.len() < close {
                    return Step::Wait; // the closing tag may be cut
                }
                if s[i + 1..close - 1] == tag[..] && s[close - 1] == b'$' {
                    *token = Token::Normal;
                    return Step::Next(close);
                }
            }
        }
        Token::LineComment => {
            if b == b'\n' {
                *token = Token::Normal;
            }
        }
        Token::BlockComment { depth } => match (b, next) {
            (b'*' | b'/', None) => return Step::Wait, // its pair may be in the next bytes
            (b'*', Some(b'/')) => {
                *depth -= 1;
                if *depth == 0 {
                    *token = Token::Normal;
                }
                return Step::Next(i + 2);
            }
            (b'/', Some(b'*')) => {
                *depth += 1;
                return Step::Next(i + 2);
            }
            _ => {}
        },
    }
    Step::Next(i + 1)
}

/// A piece's statement without the comments and blank lines before it.
pub fn body(text: &[u8]) -> &[u8] {
    strip_comments(text)
}

/// A `SET` statement (a session setting an entry's next statement needs, as
/// `default_tablespace`).
pub fn is_set(text: &[u8]) -> bool {
    starts_with_word(strip_comments(text), b"SET")
}

/// The setting a `SET name = value;` changes, lowercase (`None` for any other statement).
pub fn set_variable(text: &[u8]) -> Option<String> {
    let mut words = Words::of(strip_comments(text))?;
    if !words.next()?.eq_ignore_ascii_case("SET") {
        return None;
    }
    let name = words.next()?.split('=').next()?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_blank(text: &[u8]) -> bool {
    strip_comments(text).is_empty()
}

fn line_start(s: &[u8], i: usize) -> bool {
    i == 0 || s[i - 1] == b'\n'
}

/// What a `$` is.
enum Dollar {
    /// A dollar quote's opening `$tag$` (the tag without its dollars, maybe empty).
    Opens(Vec<u8>),
    /// A `$` that opens none (`$1`).
    Not,
    /// The bytes end before it is known.
    Unknown,
}

fn dollar_tag(s: &[u8]) -> Dollar {
    for (j, &c) in s.iter().enumerate().skip(1) {
        if c == b'$' {
            return Dollar::Opens(s[1..j].to_vec());
        }
        let ok = if j == 1 {
            c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
        } else {
            is_ident_byte(c)
        };
        if !ok {
            return Dollar::Not;
        }
    }
    Dollar::Unknown
}

/// The statement without the comments and blank lines before it.
fn strip_comments(text: &[u8]) -> &[u8] {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_ascii_start();
        if let Some(after) = trimmed.strip_prefix(b"--") {
            match memchr::memchr(b'\n', after) {
                Some(n) => rest = &after[n + 1..],
                None => return &[],
            }
        } else {
            return trimmed;
        }
    }
}

fn starts_with_word(body: &[u8], word: &[u8]) -> bool {
    body.len() > word.len()
        && body[..word.len()].eq_ignore_ascii_case(word)
        && body[word.len()].is_ascii_whitespace()
}

fn ends_from_stdin(body: &[u8]) -> bool {
    body.trim_ascii_end()
        .to_ascii_uppercase()
        .ends_with(b"FROM STDIN;")
}

/// The table of `COPY name (columns) FROM stdin;` as pg_dump writes it (`schema.table`, each
/// part bare or double-quoted).
fn copy_table(body: &[u8]) -> Option<String> {
    let mut words = Words::of(body)?;
    words.next()?; // COPY
    words.next().map(str::to_owned)
}

/// The table an index or a table constraint is on, as pg_dump names it (as in its `COPY`):
/// `CREATE [UNIQUE] INDEX name ON [ONLY] table …`, `ALTER TABLE [ONLY] table …`; `None` for
/// any other statement.
pub fn statement_table(body: &[u8]) -> Option<String> {
    let mut words = Words::of(body)?;
    let first = words.next()?;
    let table = if first.eq_ignore_ascii_case("ALTER") {
        if !words.next()?.eq_ignore_ascii_case("TABLE") {
            return None;
        }
        words.next()?
    } else if first.eq_ignore_ascii_case("CREATE") {
        // The index's name comes before `ON` (a quoted "on" is a name, not the word).
        loop {
            if words.next()?.eq_ignore_ascii_case("ON") {
                break words.next()?;
            }
        }
    } else {
        return None;
    };
    let table = if table.eq_ignore_ascii_case("ONLY") {
        words.next()?
    } else {
        table
    };
    Some(table.to_owned())
}

/// The words of a statement's head: cut at blanks, `(` and `;` outside double quotes, a quoted
/// identifier kept with its quotes; a word left inside an open quote ends the words.
struct Words<'a>(&'a str);

impl<'a> Words<'a> {
    fn of(body: &'a [u8]) -> Option<Self> {
        std::str::from_utf8(body).ok().map(Words)
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let text = self.0.trim_start();
        let mut quoted = false;
        let mut end = text.len();
        for (i, c) in text.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if !quoted && (c.is_ascii_whitespace() || c == '(' || c == ';') => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let word = &text[..end];
        self.0 = &text[end..];
        (!word.is_empty() && !quoted).then_some(word)
    }
}

/// pg_dump's section of an entry type; `None` for the types that go where they are written
/// (comments, grants, security labels).
fn section_of(kind: &str) -> Option<Section> {
    match kind {
        "TABLE DATA" | "SEQUENCE SET" | "BLOBS" | "LARGE OBJECTS" | "BLOB DATA" => {
            Some(Section::Data)
        }
        "INDEX"
        | "INDEX ATTACH"
        | "CONSTRAINT"
        | "FK CONSTRAINT"
        | "CHECK CONSTRAINT"
        | "TRIGGER"
        | "EVENT TRIGGER"
        | "RULE"
        | "POLICY"
        | "ROW SECURITY"
        | "MATERIALIZED VIEW DATA"
        | "STATISTICS"
        | "PUBLICATION"
        | "PUBLICATION TABLE"
        | "PUBLICATION TABLES IN SCHEMA"
        | "SUBSCRIPTION"
        | "SUBSCRIPTION TABLE" => Some(Section::PostData),
        "COMMENT" | "ACL" | "SECURITY LABEL" | "DEFAULT ACL" => None,
        _ => Some(Section::PreData),
    }
}

fn rank(s: Section) -> u8 {
    match s {
        Section::PreData => 0,
        Section::Data => 1,
        Section::PostData => 2,
    }
}

/// An index, or a primary key, unique or check constraint: depends only on its table's data.
/// A foreign key needs the key it references, a trigger or a rule the functions and tables it
/// names: those stay in order.
fn is_independent(kind: Option<&str>, body: &[u8]) -> bool {
    match kind {
        Some("INDEX") => starts_with_word(body, b"CREATE"),
        Some("CONSTRAINT") => {
            let upper = body.to_ascii_uppercase();
            let has = |w: &[u8]| upper.windows(w.len()).any(|x| x == w);
            !has(b"FOREIGN KEY")
                && (has(b"PRIMARY KEY") || has(b" UNIQUE") || has(b" CHECK") || has(b"EXCLUDE"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"--
-- PostgreSQL database dump
--

\restrict Abc123

SET statement_timeout = 0;
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: mood; Type: TYPE; Schema: public; Owner: app
--

CREATE TYPE public.mood AS ENUM (
    'sad;',
    'o''k'
);


ALTER TYPE public.mood OWNER TO app;

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: app
--

CREATE FUNCTION public.f() RETURNS text
    LANGUAGE plpgsql
    AS $_$
BEGIN
  -- COPY public.t (id) FROM stdin;
  RETURN E'a\';b' || $x$;$x$ || $1;
END
$_$;

--
-- Name: FUNCTION f(); Type: COMMENT; Schema: public; Owner: app
--

COMMENT ON FUNCTION public.f() IS E'semi\'colon; here\\';
SELECT $q$;$q$, 'it''s;', "x;y", $1 FROM (SELECT 1 AS "x;y") s;

/* a block /* nested; */ comment; */
CREATE TABLE public."we;ird" (
    id integer NOT NULL,
    body text DEFAULT ';'::text
);

--
-- Data for Name: we;ird; Type: TABLE DATA; Schema: public; Owner: app
--

COPY public."we;ird" (id, body) FROM stdin;
1	hello; world
2	\\.
3	\.x
\.


--
-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: app
--

SELECT pg_catalog.setval('public.s', 3, true);


--
-- Name: we;ird we;ird_pkey; Type: CONSTRAINT; Schema: public; Owner: app
--

ALTER TABLE ONLY public."we;ird"
    ADD CONSTRAINT "we;ird_pkey" PRIMARY KEY (id);


--
-- Name: t_body; Type: INDEX; Schema: public; Owner: app
--

CREATE INDEX t_body ON public."we;ird" USING btree (body);


--
-- Name: c c_t_fk; Type: FK CONSTRAINT; Schema: public; Owner: app
--

ALTER TABLE ONLY public.c
    ADD CONSTRAINT c_t_fk FOREIGN KEY (t) REFERENCES public."we;ird"(id);


--
-- Name: TABLE "we;ird"; Type: ACL; Schema: public; Owner: app
--

GRANT SELECT ON TABLE public."we;ird" TO reader;


--
-- PostgreSQL database dump complete
--

\unrestrict Abc123

"#;

    fn split(chunk: usize) -> (Vec<Piece>, Option<String>) {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for part in DUMP.as_bytes().chunks(chunk) {
            s.feed(part, &mut out);
        }
        let confused = s.finish(&mut out);
        // Rows cut into chunks come together again, for comparing.
        let mut merged: Vec<Piece> = Vec::new();
        for p in out {
            match (merged.last_mut(), p) {
                (Some(Piece::CopyData(a)), Piece::CopyData(b)) => a.extend(b),
                (_, p) => merged.push(p),
            }
        }
        (merged, confused)
    }

    fn summary(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Sql {
                    section,
                    kind,
                    independent,
                    text,
                } => format!(
                    "{section:?} {} {independent} {}",
                    kind.as_deref().unwrap_or("-"),
                    String::from_utf8_lossy(strip_comments(text))
                        .lines()
                        .next()
                        .unwrap_or_default()
                ),
                Piece::CopyStart { table, .. } => format!("COPY {table}"),
                Piece::CopyData(rows) => format!("rows {:?}", String::from_utf8_lossy(rows)),
                Piece::CopyEnd => "end".into(),
                Piece::Serial(b) => format!("serial {}", b.len()),
            })
            .collect()
    }

    #[test]
    fn pg_dump_s_script_is_cut_at_its_statements_whatever_they_hold() {
        let (pieces, confused) = split(DUMP.len());
        assert_eq!(confused, None);
        let want = [
            "PreData psql meta-command false \\restrict Abc123",
            "PreData - false SET statement_timeout = 0;",
            "PreData - false SET standard_conforming_strings = on;",
            "PreData - false SELECT pg_catalog.set_config('search_path', '', false);",
            "PreData TYPE false CREATE TYPE public.mood AS ENUM (",
            "PreData TYPE false ALTER TYPE public.mood OWNER TO app;",
            "PreData FUNCTION false CREATE FUNCTION public.f() RETURNS text",
            "PreData COMMENT false COMMENT ON FUNCTION public.f() IS E'semi\\'colon; here\\\\';",
            "PreData COMMENT false SELECT $q$;$q$, 'it''s;', \"x;y\", $1 FROM (SELECT 1 AS \"x;y\") s;",
            "PreData COMMENT false /* a block /* nested; */ comment; */",
            "COPY public.\"we;ird\"",
            "rows \"1\\thello; world\\n2\\t\\\\\\\\.\\n3\\t\\\\.x\\n\"",
            "end",
            "Data SEQUENCE SET false SELECT pg_catalog.setval('public.s', 3, true);",
            "PostData CONSTRAINT true ALTER TABLE ONLY public.\"we;ird\"",
            "PostData INDEX true CREATE INDEX t_body ON public.\"we;ird\" USING btree (body);",
            "PostData FK CONSTRAINT false ALTER TABLE ONLY public.c",
            "PostData ACL false GRANT SELECT ON TABLE public.\"we;ird\" TO reader;",
            "PostData psql meta-command false \\unrestrict Abc123",
        ];
        assert_eq!(summary(&pieces), want);
    }

    #[test]
    fn an_index_or_a_key_names_its_table_as_the_copy_does() {
        let table = |s: &str| statement_table(s.as_bytes());
        for (statement, expected) in [
            (
                "CREATE INDEX t_body ON public.t USING btree (body);",
                Some("public.t"),
            ),
            (
                "CREATE UNIQUE INDEX \"on\" ON ONLY public.\"Big Table\" USING btree (x);",
                Some("public.\"Big Table\""),
            ),
            (
                "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
                Some("public.t"),
            ),
            (
                "ALTER TABLE public.\"a;b\"\n    ADD CONSTRAINT c CHECK (x > 0);",
                Some("public.\"a;b\""),
            ),
            ("ALTER INDEX public.i ATTACH PARTITION public.j;", None),
            ("CREATE INDEX i ON public.\"open", None),
            ("GRANT ALL ON TABLE public.t TO app;", None),
        ] {
            assert_eq!(table(statement).as_deref(), expected, "{statement}");
        }
        assert_eq!(
            copy_table(b"COPY public.\"x y\" (id) FROM stdin;").as_deref(),
            Some("public.\"x y\"")
        );
        let set = |s: &str| set_variable(s.as_bytes());
        assert_eq!(
            set("--\n-- c\n--\n\nSET default_tablespace = 'fast';").as_deref(),
            Some("default_tablespace")
        );
        assert_eq!(
            set("SET Default_Tablespace='';").as_deref(),
            Some("default_tablespace")
        );
        assert_eq!(set("SELECT 1;"), None);
    }

    #[test]
    fn every_chunking_gives_the_same_pieces_and_loses_no_byte() {
        let (whole, _) = split(DUMP.len());
        for chunk in [1, 2, 3, 5, 7, 13, 64, 1000] {
            let (pieces, confused) = split(chunk);
            assert_eq!(confused, None, "chunk {chunk}");
            assert_eq!(pieces, whole, "chunk {chunk}");
        }
        // Every byte but the trailing comments is in a piece, in order.
        let mut again = Vec::new();
        for p in &whole {
            match p {
                Piece::Sql { text, .. } | Piece::CopyStart { text, .. } => {
                    again.extend_from_slice(text);
                }
                Piece::CopyData(rows) => again.extend_from_slice(rows),
                Piece::CopyEnd => again.extend_from_slice(b"\\.\n"),
                Piece::Serial(b) => again.extend_from_slice(b),
            }
        }
        assert!(DUMP.as_bytes().starts_with(&again));
        assert!(is_blank(&DUMP.as_bytes()[again.len()..]));
    }

    #[test]
    fn what_it_cannot_read_goes_serially_from_there() {
        let script = b"CREATE TABLE a (x int);\nCOPY (SELECT 1) FROM stdin;\n1\n\\.\nSELECT 2;\n";
        let mut s = Splitter::new();
        let mut out = Vec::new();
        s.feed(script, &mut out);
        assert!(s.confused().is_some());
        let serial: Vec<u8> = out
            .iter()
            .filter_map(|p| match p {
                Piece::Serial(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(serial, &script[24..]);
        let mut s = Splitter::new();
        let mut out = Vec::new();
        s.feed(b"SELECT 'unterminated;\n", &mut out);
        assert_eq!(
            s.finish(&mut out).as_deref(),
            Some("the script ends inside a statement")
        );
    }
}
