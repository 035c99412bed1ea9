//! The non-HTTP probes: TCP, Redis (PING in a few bytes of RESP), PostgreSQL (a startup
//! message and authentication: cleartext, md5 and SCRAM-SHA-256; ready means ReadyForQuery) and
//! MySQL (`crate::mysql`: login, then `SELECT 1`).

use crate::net::{self, Deadline, Stream};
use crate::target::{Scheme, Target};

/// `tcp://host:port`: the port accepts a connection.
pub fn tcp(target: &Target, deadline: Deadline) -> Result<String, String> {
    net::connect(&target.host, target.port, deadline).map(|_| "open".to_owned())
}

/// `redis://[user:password@]host:port`: PING answers PONG (a server still LOADING its dataset,
/// or one that wants a password, is unhealthy).
pub fn redis(target: &Target, deadline: Deadline) -> Result<String, String> {
    let tcp = net::connect(&target.host, target.port, deadline)?;
    let mut stream: Box<dyn Stream> = if target.scheme == Scheme::Rediss {
        tls(tcp, &target.host, target.param("insecure").is_some())?
    } else {
        Box::new(tcp)
    };
    if let Some(password) = &target.password {
        let mut args = vec!["AUTH"];
        if let Some(user) = &target.user {
            args.push(user);
        }
        args.push(password);
        command(stream.as_mut(), &args)?;
        let reply = net::read_line(stream.as_mut(), 4096)?;
        if !reply.starts_with('+') {
            return Err(format!("AUTH refused: {}", redis_error(&reply)));
        }
    }
    command(stream.as_mut(), &["PING"])?;
    let reply = net::read_line(stream.as_mut(), 4096)?;
    match reply.as_str() {
        "+PONG" => Ok("PONG".into()),
        r if r.starts_with("-LOADING") => {
            Err("Redis is loading its dataset into memory (LOADING)".into())
        }
        r => Err(format!("PING answered {}", redis_error(r))),
    }
}

fn command(stream: &mut dyn Stream, args: &[&str]) -> Result<(), String> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.extend(["$", &a.len().to_string(), "\r\n", a, "\r\n"]);
    }
    stream
        .write_all(out.as_bytes())
        .map_err(|e| net::describe(&e))
}

fn redis_error(reply: &str) -> String {
    let text: String = reply
        .trim_start_matches(['-', '+'])
        .chars()
        .take(120)
        .collect();
    format!("{text:?}")
}

#[cfg(feature = "tls")]
fn tls(tcp: net::Timed, host: &str, insecure: bool) -> Result<Box<dyn Stream>, String> {
    let verify = if insecure {
        crate::tls::Verify::None
    } else {
        crate::tls::Verify::Full
    };
    crate::tls::connect(tcp, host, verify).map(|(s, _)| s)
}

#[cfg(not(feature = "tls"))]
fn tls(_: net::Timed, _: &str, _: bool) -> Result<Box<dyn Stream>, String> {
    Err("this build has no TLS (built without the `tls` feature)".into())
}

/// `postgres://user:password@host:port/db[?sslmode=…]`: the server accepts our login and is
/// ready for queries (not starting up, not shutting down, not refusing the password).
#[cfg(feature = "postgres")]
pub fn postgres(target: &Target, deadline: Deadline) -> Result<String, String> {
    pg::check(target, deadline)
}

#[cfg(not(feature = "postgres"))]
pub fn postgres(_: &Target, _: Deadline) -> Result<String, String> {
    Err("this build has no PostgreSQL probe (built without the `postgres` feature)".into())
}

/// `mysql://user:password@host:port/db[?ssl-mode=…]`: MySQL, MariaDB or TiDB accepts our login
/// and answers `SELECT 1`.
#[cfg(feature = "mysql")]
pub fn mysql(target: &Target, deadline: Deadline) -> Result<String, String> {
    crate::mysql::check(target, deadline)
}

#[cfg(not(feature = "mysql"))]
pub fn mysql(_: &Target, _: Deadline) -> Result<String, String> {
    Err("this build has no MySQL probe (built without the `mysql` feature)".into())
}

#[cfg(feature = "postgres")]
mod pg {
    use std::io::{Read, Write};

    use bytes::BytesMut;
    use postgres_protocol::authentication::{md5_hash, sasl};
    use postgres_protocol::message::backend::Message;
    use postgres_protocol::message::frontend;

    use crate::net::{self, Deadline, Stream};
    use crate::target::Target;

    pub fn check(target: &Target, deadline: Deadline) -> Result<String, String> {
        let user = target.user.clone().unwrap_or_else(|| "postgres".into());
        let database = if target.path.is_empty() {
            user.clone()
        } else {
            target.path.clone()
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let sslmode = target
            .param("sslmode")
            .map(str::to_owned)
            .or_else(|| env("PGSSLMODE"))
            .unwrap_or_else(|| "prefer".into());
        let root = root_cert(
            target.param("sslrootcert"),
            env("PGSSLROOTCERT"),
            env("HOME"),
        );
        let tcp = net::connect(&target.host, target.port, deadline)?;
        let mut stream = negotiate_tls(tcp, &target.host, &sslmode, root)?;

        let mut buf = BytesMut::new();
        let params = [
            ("user", user.as_str()),
            ("database", database.as_str()),
            ("application_name", "lifeboat-healthcheck"),
        ];
        frontend::startup_message(params.iter().copied(), &mut buf).map_err(|e| e.to_string())?;
        send(stream.as_mut(), &mut buf)?;

        let password = target.password.clone().unwrap_or_default();
        let mut scram: Option<sasl::ScramSha256> = None;
        let mut incoming = BytesMut::new();
        loop {
            match next(stream.as_mut(), &mut incoming)? {
                Message::AuthenticationOk
                | Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password.as_bytes(), &mut buf)
                        .map_err(|e| e.to_string())?;
                    send(stream.as_mut(), &mut buf)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(user.as_bytes(), password.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut buf)
                        .map_err(|e| e.to_string())?;
                    send(stream.as_mut(), &mut buf)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut has_scram = false;
                    while let Ok(Some(m)) =
                        fallible_iterator::FallibleIterator::next(&mut mechanisms)
                    {
                        has_scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !has_scram {
                        return Err("the server offers no SASL mechanism this probe speaks".into());
                    }
                    let s = sasl::ScramSha256::new(
                        password.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut buf)
                        .map_err(|e| e.to_string())?;
                    send(stream.as_mut(), &mut buf)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or("unexpected SASL continue")?;
                    s.update(body.data()).map_err(|e| format!("SCRAM: {e}"))?;
                    frontend::sasl_response(s.message(), &mut buf).map_err(|e| e.to_string())?;
                    send(stream.as_mut(), &mut buf)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or("unexpected SASL final")?;
                    s.finish(body.data())
                        .map_err(|e| format!("SCRAM: the server's proof is wrong ({e})"))?;
                }
                Message::ReadyForQuery(_) => {
                    frontend::terminate(&mut buf);
                    let _ = send(stream.as_mut(), &mut buf);
                    return Ok("ready".into());
                }
                Message::ErrorResponse(body) => return Err(error_text(&body)),
                _ => return Err("unexpected message from the server".into()),
            }
        }
    }

    /// Where a server's chain is checked against.
    pub enum Root {
        /// A PEM file.
        File(std::path::PathBuf),
        /// `sslrootcert=system`: the public roots.
        System,
    }

    /// The root certificate, as libpq finds it: `sslrootcert`, else `PGSSLROOTCERT`, else
    /// `~/.postgresql/root.crt` if it exists.
    pub fn root_cert(
        param: Option<&str>,
        env: Option<String>,
        home: Option<String>,
    ) -> Option<Root> {
        match param.map(str::to_owned).or(env) {
            Some(r) if r == "system" => Some(Root::System),
            Some(r) => Some(Root::File(r.into())),
            None => home
                .map(|h| std::path::Path::new(&h).join(".postgresql/root.crt"))
                .filter(|p| p.is_file())
                .map(Root::File),
        }
    }

    fn negotiate_tls(
        tcp: net::Timed,
        host: &str,
        sslmode: &str,
        root: Option<Root>,
    ) -> Result<Box<dyn Stream>, String> {
        match sslmode {
            "disable" | "allow" => return Ok(Box::new(tcp)),
            "verify-ca" | "verify-full" if root.is_none() => {
                return Err(format!(
                    "sslmode={sslmode} needs a root certificate: sslrootcert=FILE (or PGSSLROOTCERT, or ~/.postgresql/root.crt), or sslrootcert=system"
                ))
            }
            "prefer" | "require" | "verify-ca" | "verify-full" => {}
            other => return Err(format!("unknown sslmode `{other}`")),
        }
        let mut tcp = tcp;
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        tcp.write_all(&buf).map_err(|e| net::describe(&e))?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).map_err(|e| net::describe(&e))?;
        match (answer[0], sslmode) {
            (b'S', _) => start_tls(tcp, host, sslmode, root),
            (_, "prefer") => Ok(Box::new(tcp)),
            _ => Err(format!(
                "sslmode={sslmode} but the server does not offer TLS"
            )),
        }
    }

    /// libpq's rules: `prefer` checks nothing; `require` checks the chain when a root
    /// certificate is there; `verify-ca` the chain; `verify-full` the chain and the host name.
    #[cfg(feature = "tls")]
    fn start_tls(
        tcp: net::Timed,
        host: &str,
        sslmode: &str,
        root: Option<Root>,
    ) -> Result<Box<dyn Stream>, String> {
        use crate::tls::Verify;
        let verify = match root {
            Some(root) if sslmode != "prefer" => Verify::Chain {
                roots: match root {
                    Root::File(path) => Some(path),
                    Root::System => None,
                },
                host_name: sslmode == "verify-full",
            },
            _ => Verify::None,
        };
        crate::tls::connect(tcp, host, verify).map(|(s, _)| s)
    }

    #[cfg(not(feature = "tls"))]
    fn start_tls(
        tcp: net::Timed,
        _: &str,
        sslmode: &str,
        _: Option<Root>,
    ) -> Result<Box<dyn Stream>, String> {
        if sslmode == "prefer" {
            // Cannot speak TLS after asking for it: the server expects a handshake now.
            drop(tcp);
        }
        Err("this build has no TLS; use sslmode=disable".into())
    }

    fn send(stream: &mut dyn Stream, buf: &mut BytesMut) -> Result<(), String> {
        let result = stream
            .write_all(buf)
            .and_then(|()| stream.flush())
            .map_err(|e| net::describe(&e));
        buf.clear();
        result
    }

    /// The largest message the login exchange may bring (an error, a parameter, SCRAM's data):
    /// a server that announces more is not one to believe, nor to allocate for.
    const MAX_MESSAGE: usize = 64 * 1024;

    fn next(stream: &mut dyn Stream, incoming: &mut BytesMut) -> Result<Message, String> {
        loop {
            if let Some(len) = incoming.get(1..5) {
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if len > MAX_MESSAGE {
                    return Err(format!(
                        "the server announced a message of {len} bytes (at most {MAX_MESSAGE} expected): not a PostgreSQL server?"
                    ));
                }
            }
            if let Some(message) =
                Message::parse(incoming).map_err(|e| format!("bad message: {e}"))?
            {
                return Ok(message);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => incoming.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(net::describe(&e)),
            }
        }
    }

    #[cfg(test)]
    #[test]
    fn a_huge_announced_message_is_refused_before_any_allocation() {
        // 'R' (authentication) announcing 4 GiB.
        let mut stream = std::io::Cursor::new(vec![b'R', 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0]);
        let mut incoming = BytesMut::new();
        let Err(err) = next(&mut stream, &mut incoming) else {
            panic!("a 4 GiB message must be refused");
        };
        assert!(err.contains("announced a message of"), "{err}");
        assert!(incoming.capacity() < 1 << 20, "{}", incoming.capacity());
    }

    fn error_text(body: &postgres_protocol::message::backend::ErrorResponseBody) -> String {
        let mut message = String::from("error from the server");
        let mut code = String::new();
        let mut fields = body.fields();
        while let Ok(Some(field)) = fallible_iterator::FallibleIterator::next(&mut fields) {
            match field.type_() {
                b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                _ => {}
            }
        }
        if code.is_empty() {
            message
        } else {
            format!("{message} (SQLSTATE {code})")
        }
    }
}
