//! The MySQL client/server protocol, as much as a probe and a smoke check need: the handshake
//! (TLS when asked or offered), login with `mysql_native_password` or `caching_sha2_password`
//! (MySQL 8's and TiDB's default), and text queries whose answers are bounded.
//!
//! Spoken by `mysql://` targets of lifeboat-healthcheck and by lifeboat-smoke's `mysql` checks, for
//! MySQL, MariaDB and TiDB. No client library: each would outweigh this binary.
//!
//! TLS follows the URL, in the spellings users already have in their `DATABASE_URL`:
//! - `ssl-mode` (the `mysql` client's names, any case): `DISABLED`, `PREFERRED` (the default: TLS
//!   when the server offers it, the certificate not checked), `REQUIRED` (encrypted, not checked),
//!   `VERIFY_CA` (the chain), `VERIFY_IDENTITY` (the chain and the host name);
//! - `ssl={"rejectUnauthorized":true}` (seed 004's, from Node's mysql2) is `VERIFY_IDENTITY`,
//!   `{"rejectUnauthorized":false}` or `ssl=true` is `REQUIRED`, `ssl=false` is `DISABLED`;
//! - `sslaccept=strict` (Prisma's) is `VERIFY_IDENTITY`, `accept_invalid_certs` is `REQUIRED`;
//! - the roots: `ssl-ca=FILE` (or `sslca`, `sslrootcert`); without one, the public roots.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::net::{self, Deadline, Stream};
use crate::target::Target;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// utf8mb4_general_ci: every server since MySQL 5.5.3 and MariaDB 5.5 knows it.
const UTF8MB4: u8 = 45;
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// The largest packet believed during the login (a handshake, an error): a server announcing more
/// is not a MySQL server, nor one to allocate for.
const MAX_LOGIN_PACKET: usize = 64 * 1024;

/// How TLS is used, after the `mysql` client's `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// What to connect to, read from a `mysql://user:password@host:port/database?…` target.
#[derive(Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: Option<String>,
    pub ssl: SslMode,
    /// A PEM file of roots (none: the public roots).
    pub ssl_ca: Option<PathBuf>,
}

impl Options {
    /// Read a `mysql://` (or `mariadb://`) URL; errors show it without its password.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let target = Target::parse(url)?;
        if target.scheme != crate::target::Scheme::Mysql {
            return Err(format!("{target}: expected a mysql:// URL"));
        }
        Self::from_target(&target)
    }

    /// Read a parsed `mysql://` target; an unknown TLS setting is an error naming it.
    pub fn from_target(target: &Target) -> Result<Self, String> {
        let ssl = ssl_mode(target)?;
        let ssl_ca = ["ssl-ca", "sslca", "sslrootcert"]
            .iter()
            .find_map(|k| target.param(k))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(Self {
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone().unwrap_or_else(|| "root".into()),
            password: target.password.clone().unwrap_or_default(),
            database: Some(target.path.clone()).filter(|d| !d.is_empty()),
            ssl,
            ssl_ca,
        })
    }
}

fn ssl_mode(target: &Target) -> Result<SslMode, String> {
    if let Some(mode) = target.param("ssl-mode").or(target.param("sslmode")) {
        return match mode.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" | "DISABLE" => Ok(SslMode::Disabled),
            "PREFERRED" | "PREFER" => Ok(SslMode::Preferred),
            "REQUIRED" | "REQUIRE" => Ok(SslMode::Required),
            "VERIFY_CA" => Ok(SslMode::VerifyCa),
            "VERIFY_IDENTITY" | "VERIFY_FULL" => Ok(SslMode::VerifyIdentity),
            _ => Err(format!(
                "unknown ssl-mode `{mode}` (DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY)"
            )),
        };
    }
    if let Some(ssl) = target.param("ssl") {
        let compact: String = ssl.chars().filter(|c| !c.is_whitespace()).collect();
        return match compact.to_ascii_lowercase().as_str() {
            "false" | "0" => Ok(SslMode::Disabled),
            "true" | "1" | "{}" | r#"{"rejectunauthorized":false}"# => Ok(SslMode::Required),
            r#"{"rejectunauthorized":true}"# => Ok(SslMode::VerifyIdentity),
            _ => Err(format!(
                "unknown ssl `{ssl}` (true, false, {{\"rejectUnauthorized\":true}} or {{\"rejectUnauthorized\":false}})"
            )),
        };
    }
    match target.param("sslaccept") {
        None => Ok(SslMode::Preferred),
        Some("strict") => Ok(SslMode::VerifyIdentity),
        Some("accept_invalid_certs") => Ok(SslMode::Required),
        Some(other) => Err(format!(
            "unknown sslaccept `{other}` (strict or accept_invalid_certs)"
        )),
    }
}

/// An open, logged-in session.
pub struct Conn {
    stream: Io,
    seq: u8,
    /// The server's version string (`10.11.6-MariaDB-0+deb12u1`, `8.0.11-TiDB-v7.5.0`).
    pub server_version: String,
    /// Whether the session is encrypted.
    pub tls: bool,
}

/// A text result: column names and rows (`None` is SQL NULL).
#[derive(Debug, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows affected, for a statement without a result set.
    pub affected: u64,
}

impl Conn {
    /// Connect, negotiate TLS and log in, within the deadline.
    pub fn connect(options: &Options, deadline: Deadline) -> Result<Self, String> {
        let tcp = net::connect(&options.host, options.port, deadline)?;
        let mut conn = Self {
            stream: Io::Plain(tcp),
            seq: 0,
            server_version: String::new(),
            tls: false,
        };
        let hello = conn.read_packet(MAX_LOGIN_PACKET)?;
        let hello = Handshake::parse(&hello)?;
        // MariaDB puts `5.5.5-` before its version for old replication clients.
        hello
            .version
            .strip_prefix("5.5.5-")
            .unwrap_or(&hello.version)
            .clone_into(&mut conn.server_version);
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH;
        if options.database.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        let offers_tls = hello.caps & CLIENT_SSL != 0;
        match (options.ssl, offers_tls) {
            (SslMode::Disabled, _) | (SslMode::Preferred, false) => {}
            (_, false) => {
                return Err(format!(
                    "ssl-mode {:?} but the server does not offer TLS",
                    options.ssl
                ))
            }
            (_, true) => {
                caps |= CLIENT_SSL;
                let mut request = Vec::with_capacity(32);
                request.extend_from_slice(&caps.to_le_bytes());
                request.extend_from_slice(&MAX_PACKET.to_le_bytes());
                request.push(UTF8MB4);
                request.extend_from_slice(&[0; 23]);
                conn.write_packet(&request)?;
                conn.start_tls(options)?;
            }
        }
        let plugin = match hello.plugin.as_str() {
            p @ ("mysql_native_password" | "caching_sha2_password") => p.to_owned(),
            _ => "mysql_native_password".to_owned(),
        };
        let auth = scramble(&plugin, options.password.as_bytes(), &hello.scramble);
        let mut response = Vec::with_capacity(128);
        response.extend_from_slice(&caps.to_le_bytes());
        response.extend_from_slice(&MAX_PACKET.to_le_bytes());
        response.push(UTF8MB4);
        response.extend_from_slice(&[0; 23]);
        response.extend_from_slice(options.user.as_bytes());
        response.push(0);
        response.push(u8::try_from(auth.len()).unwrap_or(0));
        response.extend_from_slice(&auth);
        if let Some(db) = &options.database {
            response.extend_from_slice(db.as_bytes());
            response.push(0);
        }
        response.extend_from_slice(plugin.as_bytes());
        response.push(0);
        conn.write_packet(&response)?;
        conn.authenticate(options, plugin)?;
        Ok(conn)
    }

    #[cfg(feature = "tls")]
    fn start_tls(&mut self, options: &Options) -> Result<(), String> {
        use crate::tls::Verify;
        let verify = match options.ssl {
            SslMode::VerifyCa | SslMode::VerifyIdentity => Verify::Chain {
                roots: options.ssl_ca.clone(),
                host_name: options.ssl == SslMode::VerifyIdentity,
            },
            _ => Verify::None,
        };
        let Io::Plain(tcp) = std::mem::replace(&mut self.stream, Io::Closed) else {
            return Err("TLS is already on".into());
        };
        let (stream, _) = crate::tls::connect(tcp, &options.host, verify)?;
        self.stream = Io::Tls(stream);
        self.tls = true;
        Ok(())
    }

    #[cfg(not(feature = "tls"))]
    fn start_tls(&mut self, _: &Options) -> Result<(), String> {
        Err("this build has no TLS; use ssl-mode=DISABLED".into())
    }

    /// The exchange after our login packet: an OK, an error, a switch to another plugin, or
    /// caching_sha2_password's fast (cached) or full authentication.
    fn authenticate(&mut self, options: &Options, mut plugin: String) -> Result<(), String> {
        loop {
            let packet = self.read_packet(MAX_LOGIN_PACKET)?;
            match packet.first() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(server_error(&packet)),
                Some(0xfe) => {
                    let body = &packet[1..];
                    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    plugin = String::from_utf8_lossy(&body[..end]).into_owned();
                    let mut nonce = body.get(end + 1..).unwrap_or_default().to_vec();
                    if nonce.last() == Some(&0) {
                        nonce.pop();
                    }
                    let reply = match plugin.as_str() {
                        "mysql_native_password" | "caching_sha2_password" => {
                            scramble(&plugin, options.password.as_bytes(), &nonce)
                        }
                        "mysql_clear_password" if self.tls => cleartext(&options.password),
                        "mysql_clear_password" => {
                            return Err("the server asks for the password in clear text (mysql_clear_password); use TLS (ssl-mode=REQUIRED)".into())
                        }
                        other => {
                            return Err(format!(
                                "the server wants the authentication plugin `{other}`; this client speaks mysql_native_password and caching_sha2_password"
                            ))
                        }
                    };
                    self.write_packet(&reply)?;
                }
                Some(0x01) if plugin == "caching_sha2_password" => match packet.get(1) {
                    // The server had the password cached: an OK follows.
                    Some(3) => {}
                    // Full authentication: the password itself, only ever over TLS.
                    Some(4) if self.tls => self.write_packet(&cleartext(&options.password))?,
                    Some(4) => {
                        return Err("caching_sha2_password wants a full authentication, which this client does only over TLS: use ssl-mode=REQUIRED (or log in once with the mysql client, which caches the password on the server)".into())
                    }
                    _ => return Err("unexpected caching_sha2_password data from the server".into()),
                },
                _ => return Err("unexpected packet during login: not a MySQL server?".into()),
            }
        }
    }

    /// Run one statement with the text protocol; at most `max_rows` rows and `max_bytes` bytes
    /// of answer are read, more is an error (a check never needs a table dump).
    pub fn query(
        &mut self,
        sql: &str,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Answer, String> {
        self.seq = 0;
        let mut command = Vec::with_capacity(sql.len() + 1);
        command.push(0x03);
        command.extend_from_slice(sql.as_bytes());
        self.write_packet(&command)?;
        let mut budget = max_bytes;
        let first = self.read_budgeted(&mut budget)?;
        match first.first() {
            Some(0xff) => return Err(server_error(&first)),
            Some(0x00) => {
                let mut at = 1;
                let affected = lenenc_int(&first, &mut at).unwrap_or(0);
                return Ok(Answer {
                    affected,
                    ..Answer::default()
                });
            }
            _ => {}
        }
        let mut at = 0;
        let count = lenenc_int(&first, &mut at).ok_or("a malformed result set")?;
        let mut answer = Answer::default();
        for _ in 0..count {
            let def = self.read_budgeted(&mut budget)?;
            let mut at = 0;
            // catalog, schema, table, org_table, then the name.
            for _ in 0..4 {
                lenenc_bytes(&def, &mut at).ok_or("a malformed column definition")?;
            }
            let name = lenenc_bytes(&def, &mut at).ok_or("a malformed column definition")?;
            answer
                .columns
                .push(String::from_utf8_lossy(name).into_owned());
        }
        let eof = self.read_budgeted(&mut budget)?;
        if !is_eof(&eof) {
            return Err("a malformed result set (no end of the columns)".into());
        }
        loop {
            let row = self.read_budgeted(&mut budget)?;
            if is_eof(&row) {
                return Ok(answer);
            }
            if row.first() == Some(&0xff) {
                return Err(server_error(&row));
            }
            if answer.rows.len() == max_rows {
                return Err(format!("the answer has more than {max_rows} rows"));
            }
            let mut at = 0;
            let mut values = Vec::with_capacity(answer.columns.len());
            for _ in 0..answer.columns.len() {
                if row.get(at) == Some(&0xfb) {
                    at += 1;
                    values.push(None);
                } else {
                    let v = lenenc_bytes(&row, &mut at).ok_or("a malformed row")?;
                    values.push(Some(String::from_utf8_lossy(v).into_owned()));
                }
            }
            answer.rows.push(values);
        }
    }

    /// Say goodbye (COM_QUIT); errors do not matter any more.
    pub fn close(mut self) {
        self.seq = 0;
        let _ = self.write_packet(&[0x01]);
    }

    fn read_budgeted(&mut self, budget: &mut usize) -> Result<Vec<u8>, String> {
        let packet = self.read_packet(*budget)?;
        *budget = budget.saturating_sub(packet.len() + 4);
        Ok(packet)
    }

    fn read_packet(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the server closed the connection".to_owned()
            } else {
                net::describe(&e)
            }
        })?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if len > max {
            return Err(format!(
                "the server announced a packet of {len} bytes (at most {max} expected)"
            ));
        }
        self.seq = header[3].wrapping_add(1);
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| net::describe(&e))?;
        Ok(payload)
    }

    fn write_packet(&mut self, payload: &[u8]) -> Result<(), String> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l < 0xff_ffff)
            .ok_or("a statement of 16 MiB or more")?;
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(self.seq);
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
            .map_err(|e| net::describe(&e))
    }
}

/// The session's bytes: plain TCP until TLS starts over it (rustls takes the TCP stream by value).
enum Io {
    Plain(net::Timed),
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(Box<dyn Stream>),
    Closed,
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
            Self::Closed => Ok(0),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
            Self::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
            Self::Closed => Ok(()),
        }
    }
}

/// The server's first packet (Protocol::HandshakeV10).
struct Handshake {
    version: String,
    caps: u32,
    scramble: Vec<u8>,
    plugin: String,
}

impl Handshake {
    fn parse(p: &[u8]) -> Result<Self, String> {
        match p.first() {
            Some(10) => {}
            Some(0xff) => return Err(server_error(p)),
            _ => return Err("not a MySQL server (no protocol 10 handshake)".into()),
        }
        let bad = || "not a MySQL server (a malformed handshake)".to_owned();
        let end = p[1..].iter().position(|&b| b == 0).ok_or_else(bad)? + 1;
        let version = String::from_utf8_lossy(&p[1..end]).into_owned();
        let mut at = end + 1 + 4; // NUL, connection id
        let part1 = p.get(at..at + 8).ok_or_else(bad)?.to_vec();
        at += 9; // and a filler
        let low = p.get(at..at + 2).ok_or_else(bad)?;
        let mut caps = u32::from(u16::from_le_bytes([low[0], low[1]]));
        at += 2;
        let mut scramble = part1;
        let mut plugin = String::new();
        if let Some(rest) = p.get(at + 3..) {
            // charset (1), status (2), then the high capabilities.
            let high = rest.get(..2).ok_or_else(bad)?;
            caps |= u32::from(u16::from_le_bytes([high[0], high[1]])) << 16;
            let data_len = usize::from(*rest.get(2).ok_or_else(bad)?);
            let mut at = 3 + 10;
            if caps & CLIENT_SECURE_CONNECTION != 0 {
                let n = data_len.saturating_sub(8).max(13);
                let part2 = rest.get(at..at + n).ok_or_else(bad)?;
                at += n;
                scramble.extend_from_slice(part2);
                if scramble.last() == Some(&0) {
                    scramble.pop();
                }
            }
            if caps & CLIENT_PLUGIN_AUTH != 0 {
                let tail = rest.get(at..).unwrap_or_default();
                let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                plugin = String::from_utf8_lossy(&tail[..end]).into_owned();
            }
        }
        if caps & CLIENT_PROTOCOL_41 == 0 {
            return Err(format!(
                "the server ({version}) predates the MySQL 4.1 protocol"
            ));
        }
        Ok(Self {
            version,
            caps,
            scramble,
            plugin,
        })
    }
}

/// The login answer of `plugin` for `password` and the server's `nonce` (none for no password).
fn scramble(plugin: &str, password: &[u8], nonce: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    if password.is_empty() {
        return Vec::new();
    }
    if plugin == "caching_sha2_password" {
        // SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)
        let p1 = sha2::Sha256::digest(password);
        let p2 = sha2::Sha256::digest(p1);
        let mut h = sha2::Sha256::new();
        h.update(p2);
        h.update(nonce);
        let p3 = h.finalize();
        p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
    } else {
        // SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))
        let p1 = sha1::Sha1::digest(password);
        let p2 = sha1::Sha1::digest(p1);
        let mut h = sha1::Sha1::new();
        h.update(nonce);
        h.update(p2);
        let p3 = h.finalize();
        p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
    }
}

fn cleartext(password: &str) -> Vec<u8> {
    let mut v = password.as_bytes().to_vec();
    v.push(0);
    v
}

/// An EOF packet (0xfe and short): the end of the columns or of the rows.
fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// `ERROR 1045 (28000): Access denied for user …`, from an ERR packet.
fn server_error(p: &[u8]) -> String {
    let code = p.get(1..3).map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    let rest = p.get(3..).unwrap_or_default();
    let (state, message) = match rest.strip_prefix(b"#") {
        Some(r) if r.len() >= 5 => (String::from_utf8_lossy(&r[..5]).into_owned(), &r[5..]),
        _ => (String::new(), rest),
    };
    let message: String = String::from_utf8_lossy(message).chars().take(300).collect();
    if state.is_empty() {
        format!("ERROR {code}: {message}")
    } else {
        format!("ERROR {code} ({state}): {message}")
    }
}

fn lenenc_int(p: &[u8], at: &mut usize) -> Option<u64> {
    let first = *p.get(*at)?;
    let (n, width) = match first {
        0..=0xfa => (u64::from(first), 0),
        0xfc => (0, 2),
        0xfd => (0, 3),
        0xfe => (0, 8),
        _ => return None,
    };
    *at += 1;
    if width == 0 {
        return Some(n);
    }
    let bytes = p.get(*at..*at + width)?;
    *at += width;
    let mut full = [0u8; 8];
    full[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(full))
}

fn lenenc_bytes<'a>(p: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(lenenc_int(p, at)?).ok()?;
    let v = p.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(v)
}

/// `mysql://user:password@host:port/db[?ssl-mode=…]`: the server accepts our login and answers
/// `SELECT 1`.
pub fn check(target: &Target, deadline: Deadline) -> Result<String, String> {
    let options = Options::from_target(target)?;
    let mut conn = Conn::connect(&options, deadline)?;
    let answer = conn.query("SELECT 1", 1, 4096)?;
    let one = answer
        .rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten();
    let version = conn.server_version.clone();
    let tls = conn.tls;
    conn.close();
    if one.as_deref() != Some("1") {
        return Err(format!("SELECT 1 answered {one:?}"));
    }
    Ok(format!(
        "ready ({}{})",
        version.chars().take(60).collect::<String>(),
        if tls { ", TLS" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).expect("a test URL")
    }

    #[test]
    fn tls_settings_read_in_every_spelling_users_have() {
        let mode = |q: &str| ssl_mode(&target(&format!("mysql://u:p@h/db{q}")));
        assert_eq!(mode(""), Ok(SslMode::Preferred));
        assert_eq!(mode("?ssl-mode=required"), Ok(SslMode::Required));
        assert_eq!(
            mode("?ssl-mode=VERIFY_IDENTITY"),
            Ok(SslMode::VerifyIdentity)
        );
        assert_eq!(mode("?sslmode=disable"), Ok(SslMode::Disabled));
        assert_eq!(
            mode(r#"?ssl={"rejectUnauthorized":true}"#),
            Ok(SslMode::VerifyIdentity)
        );
        assert_eq!(
            mode("?ssl=%7B%22rejectUnauthorized%22%3Afalse%7D"),
            Ok(SslMode::Required)
        );
        assert_eq!(mode("?ssl=true"), Ok(SslMode::Required));
        assert_eq!(mode("?sslaccept=strict"), Ok(SslMode::VerifyIdentity));
        assert!(mode("?ssl-mode=sometimes")
            .expect_err("an unknown mode")
            .contains("ssl-mode"));
        assert!(mode("?ssl=maybe")
            .expect_err("an unknown ssl")
            .contains("ssl"));
    }

    #[test]
    fn native_password_scramble_matches_the_protocols_example() {
        // SHA1("secret") XOR SHA1(nonce + SHA1(SHA1("secret"))), checked against its definition.
        use sha1::Digest as _;
        let nonce = b"abcdefghijklmnopqrst";
        let got = scramble("mysql_native_password", b"secret", nonce);
        assert_eq!(got.len(), 20);
        let p1 = sha1::Sha1::digest(b"secret");
        let back: Vec<u8> = got.iter().zip(p1.iter()).map(|(a, b)| a ^ b).collect();
        let mut h = sha1::Sha1::new();
        h.update(nonce);
        h.update(sha1::Sha1::digest(p1));
        assert_eq!(back, h.finalize().to_vec());
        assert!(scramble("mysql_native_password", b"", nonce).is_empty());
        assert_eq!(
            scramble("caching_sha2_password", b"secret", nonce).len(),
            32
        );
    }

    #[test]
    fn a_hostile_handshake_is_an_error_not_a_panic() {
        for p in [
            &b""[..],
            &[10][..],
            &[10, b'8', 0][..],
            &[10, b'8', 0, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0][..],
            &[
                0xff, 0x15, 0x04, b'#', b'2', b'8', b'0', b'0', b'0', b'n', b'o',
            ][..],
        ] {
            assert!(Handshake::parse(p).is_err(), "{p:?}");
        }
        assert_eq!(
            server_error(&[0xff, 0x15, 0x04, b'#', b'2', b'8', b'0', b'0', b'0', b'n', b'o']),
            "ERROR 1045 (28000): no"
        );
    }

    #[test]
    fn length_encoded_values_are_bounded_by_the_packet() {
        let mut at = 0;
        assert_eq!(lenenc_int(&[0xfc, 0x10, 0x27], &mut at), Some(10_000));
        let mut at = 0;
        assert_eq!(lenenc_bytes(&[0x05, b'a'], &mut at), None);
        let mut at = 0;
        assert_eq!(
            lenenc_bytes(
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                &mut at
            ),
            None
        );
    }
}
