//! What to check: a URL parsed by hand.
//!
//! The `url` crate would pull in IDNA tables several times the size of this whole binary, and a
//! health check only needs scheme, credentials, host, port, path and a few query parameters.

use std::fmt;

/// The kinds of target this probe understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Tcp,
    Postgres,
    Mysql,
    Redis,
    Rediss,
}

/// A parsed target. `Display` redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/` (HTTP); the database name (PostgreSQL); the db index (Redis).
    pub path: String,
    /// Query parameters (`sslmode=require`).
    pub params: Vec<(String, String)>,
    raw: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme_text, rest) = text.split_once("://").ok_or_else(|| {
            format!(
                "{}: expected http://, https://, tcp://, postgres://, mysql://, redis:// or rediss://",
                redact(text)
            )
        })?;
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "tcp" => Scheme::Tcp,
            "postgres" | "postgresql" => Scheme::Postgres,
            "mysql" | "mariadb" => Scheme::Mysql,
            "redis" => Scheme::Redis,
            "rediss" => Scheme::Rediss,
            other => return Err(format!("unknown scheme `{other}://` in {}", redact(text))),
        };
        let bad = |why: &str| format!("{}: {why}", redact(text));
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (non_empty(percent_decode(u)), Some(percent_decode(p))),
                None => (non_empty(percent_decode(info)), None),
            },
            None => (None, None),
        };
        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (v6[..end].to_owned(), v6[end + 1..].strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let default_port = match scheme {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Postgres => Some(5432),
            Scheme::Mysql => Some(3306),
            Scheme::Redis | Scheme::Rediss => Some(6379),
            Scheme::Tcp => None,
        };
        let port = match port_text {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port is not a number 1-65535"))?,
            None => default_port.ok_or_else(|| bad("tcp:// needs a port"))?,
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let (path, query) = tail.split_once('?').map_or((tail, ""), |(p, q)| (p, q));
        let params = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let path = match scheme {
            Scheme::Http | Scheme::Https if tail.is_empty() => "/".to_owned(),
            Scheme::Http | Scheme::Https if tail.starts_with('?') => format!("/{tail}"),
            Scheme::Http | Scheme::Https => tail.to_owned(),
            _ => percent_decode(path.trim_start_matches('/')),
        };
        Ok(Self {
            scheme,
            user,
            password,
            host,
            port,
            path,
            params,
            raw: text.to_owned(),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `%XX` decoding; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The target text with the password of its userinfo replaced by `***`.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = redact_password_param(tail);
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}{tail}", &authority[at..]),
            None => format!("{scheme}://{authority}{tail}"),
        },
        None => format!("{scheme}://{authority}{tail}"),
    }
}

fn redact_password_param(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets_keep_path_and_query() {
        let t = Target::parse("http://127.0.0.1:3000/api/health?full=1").expect("parse");
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port, t.path.as_str()),
            (Scheme::Http, "127.0.0.1", 3000, "/api/health?full=1")
        );
        let t = Target::parse("https://example.com").expect("parse");
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        let t = Target::parse("http://[::1]:8080/x").expect("parse");
        assert_eq!(
            (t.host.as_str(), t.authority()),
            ("::1", "[::1]:8080".to_owned())
        );
    }

    #[test]
    fn database_targets_decode_credentials_and_params() {
        let t = Target::parse("postgres://app:p%40ss@db:6543/shop?sslmode=require").expect("parse");
        assert_eq!(t.user.as_deref(), Some("app"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(
            (t.port, t.path.as_str(), t.param("sslmode")),
            (6543, "shop", Some("require"))
        );
        let t = Target::parse("redis://:secret@cache").expect("parse");
        assert_eq!(
            (t.user.as_deref(), t.password.as_deref(), t.port),
            (None, Some("secret"), 6379)
        );
    }

    #[test]
    fn bad_targets_are_refused_with_the_password_hidden() {
        for bad in [
            "ftp://h",
            "tcp://host",
            "http://:80",
            "postgres://u:hunter2@h:99999/d",
            "nothing",
        ] {
            let err = Target::parse(bad).expect_err(bad);
            assert!(!err.contains("hunter2"), "{err}");
        }
        let t = Target::parse("postgres://u:hunter2@h/d").expect("parse");
        assert_eq!(t.to_string(), "postgres://u:***@h/d");
        assert_eq!(
            redact("http://h/x?password=pw&a=1"),
            "http://h/x?password=***&a=1"
        );
    }
}
