//! A minimal HTTP/1.1 server over tokio's `TcpListener`.
//!
//! The demo app exists to be backed up, restored and deployed, not to show off a web framework,
//! so this is just enough HTTP for JSON APIs and probes: a request line, headers, a
//! `Content-Length` body of at most 1 MiB, keep-alive with `Connection: close` honoured, and a
//! graceful stop that finishes in-flight requests. No chunked request bodies, no pipelining
//! guarantees beyond "requests are answered in order".

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest accepted request line plus headers.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// How long an idle keep-alive connection (or a slow client) may take to send its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight connections get to finish once a stop was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    /// Header names are lowercased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after this request.
    pub keep_alive: bool,
    pub peer: SocketAddr,
}

impl Request {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One response; `Content-Length` and `Connection` are added when it is written.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        out.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Why a request could not be read. All but `Io` are answered before the connection closes.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    BadRequest(&'static str),
    HeadTooLarge,
    BodyTooLarge,
    Unsupported(&'static str),
    Io(std::io::ErrorKind),
}

impl ParseError {
    fn response(&self) -> Option<Response> {
        let (status, message) = match self {
            Self::BadRequest(m) => (400, *m),
            Self::HeadTooLarge => (431, "request head too large"),
            Self::BodyTooLarge => (413, "request body larger than 1 MiB"),
            Self::Unsupported(m) => (501, *m),
            Self::Io(_) => return None,
        };
        Some(Response::json(
            status,
            &serde_json::json!({ "error": message }),
        ))
    }
}

impl From<std::io::Error> for ParseError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.kind())
    }
}

/// Reads one line ending in `\n` into `buf`, counting it against the `budget` of head bytes.
/// Returns the line without its `\r\n`, or `None` at end of input before any byte.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    budget: &mut usize,
) -> Result<Option<String>, ParseError> {
    if *budget == 0 {
        return Err(ParseError::HeadTooLarge);
    }
    let mut buf = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n >= *budget {
            ParseError::HeadTooLarge
        } else {
            ParseError::BadRequest("unexpected end of request")
        });
    }
    *budget -= n;
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ParseError::BadRequest("request head is not UTF-8"))
}

/// Reads one request. `Ok(None)` means the client closed the connection between requests.
/// `writer` only receives `100 Continue` when the client asked for it.
pub async fn read_request<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: SocketAddr,
) -> Result<Option<Request>, ParseError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut budget = MAX_HEAD;
    // Tolerate empty lines before a request line (RFC 9112 section 2.2).
    let line = loop {
        match read_line(reader, &mut budget).await? {
            None => return Ok(None),
            Some(line) if line.is_empty() => {}
            Some(line) => break line,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::BadRequest("malformed method"));
    }
    if !target.starts_with('/') {
        return Err(ParseError::BadRequest("malformed request target"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ParseError::BadRequest("unsupported HTTP version")),
    };

    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(reader, &mut budget).await? else {
            return Err(ParseError::BadRequest("unexpected end of request"));
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::HeadTooLarge);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::BadRequest("malformed header"));
        };
        if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
            return Err(ParseError::BadRequest("malformed header"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }

    let mut content_length: Option<usize> = None;
    let mut connection_close = http10;
    let mut expect_continue = false;
    for (name, value) in &headers {
        match name.as_str() {
            "transfer-encoding" => {
                return Err(ParseError::Unsupported(
                    "chunked request bodies are not supported",
                ));
            }
            "content-length" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| ParseError::BadRequest("malformed Content-Length"))?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(ParseError::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            "connection" => {
                for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                    match token.as_str() {
                        "close" => connection_close = true,
                        "keep-alive" => connection_close = false,
                        _ => {}
                    }
                }
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    let length = content_length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(ParseError::BodyTooLarge);
    }
    if expect_continue && length > 0 && !http10 {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        writer.flush().await?;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;

    let path = target.split('?').next().unwrap_or(target).to_owned();
    Ok(Some(Request {
        method: method.to_owned(),
        path,
        headers,
        body,
        keep_alive: !connection_close,
        peer,
    }))
}

/// Accepts connections until `shutdown` turns true, then waits (a bounded time) for the
/// requests in flight. Every request is logged to stderr.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: watch::Receiver<bool>)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send,
{
    let handler = Arc::new(handler);
    // Each connection task holds a sender; `recv` returns `None` once they have all ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                let shutdown = shutdown.clone();
                let alive = alive_tx.clone();
                tokio::spawn(async move {
                    connection(stream, peer, &*handler, shutdown).await;
                    drop(alive);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    drop(alive_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv())
        .await
        .is_err()
    {
        eprintln!("stopping with connections still open");
    }
}

async fn connection<H, F>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let (read_half, mut writer) = stream.split();
    let mut reader = BufReader::new(read_half);
    loop {
        let next = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            next = tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut reader, &mut writer, peer)) => next,
        };
        let request = match next {
            Err(_) | Ok(Ok(None) | Err(ParseError::Io(_))) => return,
            Ok(Err(e)) => {
                if let Some(response) = e.response() {
                    eprintln!("{} - - {} bad request ({e:?})", peer.ip(), response.status);
                    let _ = writer.write_all(&response.to_bytes(false)).await;
                }
                return;
            }
            Ok(Ok(Some(request))) => request,
        };
        let started = Instant::now();
        let (method, path) = (request.method.clone(), request.path.clone());
        let keep_alive = request.keep_alive;
        let response = handler(request).await;
        let keep_alive = keep_alive && !*shutdown.borrow();
        eprintln!(
            "{} {method} {path} {} {}ms",
            peer.ip(),
            response.status,
            started.elapsed().as_millis()
        );
        if writer
            .write_all(&response.to_bytes(keep_alive))
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Result<Option<Request>, ParseError> {
        let mut reader = BufReader::new(raw);
        let peer: SocketAddr = "127.0.0.1:1234".parse().expect("valid address");
        read_request(&mut reader, &mut tokio::io::sink(), peer).await
    }

    #[tokio::test]
    async fn parses_a_post_with_body() {
        let raw = b"POST /api/auth/login?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let req = parse(raw).await.expect("parses").expect("a request");
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/api/auth/login");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.body, b"{\"a\":1}");
        assert!(req.keep_alive);
    }

    #[tokio::test]
    async fn keep_alive_rules() {
        let close = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(!close.expect("parses").expect("a request").keep_alive);
        let old = parse(b"GET / HTTP/1.0\r\n\r\n").await;
        assert!(!old.expect("parses").expect("a request").keep_alive);
        let old_ka = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").await;
        assert!(old_ka.expect("parses").expect("a request").keep_alive);
    }

    #[tokio::test]
    async fn two_requests_on_one_connection() {
        let raw = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("valid address");
        let mut sink = tokio::io::sink();
        let a = read_request(&mut reader, &mut sink, peer).await;
        let b = read_request(&mut reader, &mut sink, peer).await;
        let end = read_request(&mut reader, &mut sink, peer).await;
        assert_eq!(a.expect("parses").expect("first").path, "/a");
        assert_eq!(b.expect("parses").expect("second").path, "/b");
        assert!(matches!(end, Ok(None)));
    }

    #[tokio::test]
    async fn rejects_bad_input() {
        assert!(matches!(parse(b"").await, Ok(None)));
        assert!(matches!(
            parse(b"GARBAGE\r\n\r\n").await,
            Err(ParseError::BadRequest(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/2\r\n\r\n").await,
            Err(ParseError::BadRequest(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n").await,
            Err(ParseError::BadRequest(_))
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n").await,
            Err(ParseError::BadRequest(_))
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").await,
            Err(ParseError::Io(_))
        ));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
                .await
                .err(),
            Some(ParseError::BodyTooLarge)
        );
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").await,
            Err(ParseError::Unsupported(_))
        ));
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        huge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&huge).await.err(), Some(ParseError::HeadTooLarge));
    }

    #[test]
    fn response_bytes() {
        let r =
            Response::json(200, &serde_json::json!({"ok": true})).with_header("Retry-After", "3");
        let text = String::from_utf8(r.to_bytes(false)).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Retry-After: 3\r\n"));
        assert!(text.contains("Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}"));
    }
}
