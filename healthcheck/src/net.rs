//! Connections that never outlive the deadline.
//!
//! Docker kills a health check that runs past its `--timeout` and logs nothing useful, so every
//! connect, read and write here gets only the time that is left.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The moment every check of this run must have ended by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Self {
        Self(Instant::now() + d)
    }

    /// The time left, or a timeout error when there is none.
    pub fn remaining(self) -> io::Result<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        } else {
            Ok(left)
        }
    }

    pub fn instant(self) -> Instant {
        self.0
    }
}

/// A byte stream: plain TCP or TLS over it.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A TCP stream whose every read and write is bounded by the deadline.
pub struct Timed {
    tcp: TcpStream,
    deadline: Deadline,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp
            .set_read_timeout(Some(self.deadline.remaining()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp
            .set_write_timeout(Some(self.deadline.remaining()?))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Resolve and connect to `host:port` within the deadline.
pub fn connect(host: &str, port: u16, deadline: Deadline) -> Result<Timed, String> {
    let addrs = resolve(host, port)?;
    let mut last = String::from("no address");
    for addr in addrs {
        let left = deadline
            .remaining()
            .map_err(|_| format!("connect to {host}:{port}: timed out"))?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(Timed { tcp, deadline });
            }
            Err(e) => last = describe(&e),
        }
    }
    Err(format!("connect to {host}:{port}: {last}"))
}

/// Addresses for `host`: IP literals and `localhost` without a resolver (a static binary in a
/// `FROM scratch` image has no NSS to ask), anything else through the system's resolver.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {}", describe(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}"));
    }
    Ok(addrs)
}

/// A short, lowercase description of an I/O error.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::UnexpectedEof => "connection closed early".into(),
        _ => {
            let text = e.to_string();
            // "Connection refused (os error 111)" → "connection refused"
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            let mut chars = text.chars();
            chars.next().map_or(text.clone(), |c| {
                c.to_lowercase().collect::<String>() + chars.as_str()
            })
        }
    }
}

/// Read one `\r\n`-terminated line (without it), at most `max` bytes.
pub fn read_line(stream: &mut dyn Stream, max: usize) -> Result<String, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Err("connection closed early".into()),
            Ok(_) => {}
            Err(e) => return Err(describe(&e)),
        }
        if byte[0] == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
        if line.len() > max {
            return Err("reply line too long".into());
        }
    }
}

/// Milliseconds, for one-line reports.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

pub fn timed_out_after(d: Duration) -> String {
    format!("timed out after {} ms", ms(d))
}
