//! HTTP/1.1 GET over a plain or TLS socket: status, headers and the whole body, which must arrive
//! before the deadline (or HEAD with `--head`: the status alone). Redirects are not followed
//! unless asked (a 301 from a health route usually means a misconfigured proxy, which is worth
//! knowing), and `--header`s are never sent on to another origin.

use std::io::Write;

use crate::net::{self, Deadline, Stream};
use crate::target::{Scheme, Target};
use crate::Options;

/// The most of a body read for `--expect-body`/`--expect-json`.
const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 16 * 1024;
const MAX_REDIRECTS: usize = 5;

/// A response as far as the checks need it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Check an http(s) target: status, body, JSON and certificate; the detail on success.
pub fn check(target: &Target, opts: &Options, deadline: Deadline) -> Result<String, String> {
    let mut current = target.clone();
    for _ in 0..=MAX_REDIRECTS {
        // `--header`s (a token, `Authorization`) go only where they were meant to: never on to
        // another host, port or scheme a redirect names.
        let same_origin =
            current.scheme == target.scheme && current.authority() == target.authority();
        let (response, cert_note) = fetch(&current, opts, same_origin, deadline)?;
        if opts.follow_redirects && (300..400).contains(&response.status) {
            if let Some(location) = response.header("location") {
                current = redirect(&current, location)?;
                continue;
            }
        }
        if !opts.expect_status.matches(response.status) {
            let location = response
                .header("location")
                .map(|l| format!(", redirect to {l} not followed"))
                .unwrap_or_default();
            return Err(format!(
                "status {} (expected {}){location}",
                response.status, opts.expect_status
            ));
        }
        if let Some(needle) = &opts.expect_body {
            if !String::from_utf8_lossy(&response.body).contains(needle.as_str()) {
                return Err(format!(
                    "status {}, body does not contain {needle:?}",
                    response.status
                ));
            }
        }
        if !opts.expect_json.is_empty() {
            let json: serde_json::Value = serde_json::from_slice(&response.body)
                .map_err(|e| format!("status {}, body is not JSON ({e})", response.status))?;
            for (pointer, expected) in &opts.expect_json {
                let actual = json
                    .pointer(pointer)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                if actual.as_deref() != Some(expected.as_str()) {
                    let shown = actual.map_or_else(|| "missing".into(), |a| format!("{a:?}"));
                    return Err(format!(
                        "status {}, JSON {pointer} is {shown} (expected {expected:?})",
                        response.status
                    ));
                }
            }
        }
        return Ok(format!("{}{cert_note}", response.status));
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

fn redirect(from: &Target, location: &str) -> Result<Target, String> {
    if location.contains("://") {
        return Target::parse(location);
    }
    let scheme = if from.scheme == Scheme::Https {
        "https"
    } else {
        "http"
    };
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base = from.path.rsplit_once('/').map_or("", |(b, _)| b);
        format!("{base}/{location}")
    };
    Target::parse(&format!("{scheme}://{}{path}", from.authority()))
}

fn fetch(
    target: &Target,
    opts: &Options,
    with_headers: bool,
    deadline: Deadline,
) -> Result<(Response, String), String> {
    let tcp = net::connect(&target.host, target.port, deadline)?;
    let (mut stream, cert_note): (Box<dyn Stream>, String) = match target.scheme {
        Scheme::Https => tls_stream(tcp, target, opts)?,
        _ => (Box::new(tcp), String::new()),
    };
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lifeboat-healthcheck/{}\r\nAccept: */*\r\nConnection: close\r\n",
        if opts.head { "HEAD" } else { "GET" },
        target.path,
        host_header(target),
        env!("CARGO_PKG_VERSION")
    );
    if with_headers {
        for (name, value) in &opts.headers {
            request.extend([name.as_str(), ": ", value.as_str(), "\r\n"]);
        }
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {}", net::describe(&e)))?;
    let response = read_response(stream.as_mut(), opts.head)?;
    Ok((response, cert_note))
}

#[cfg(feature = "tls")]
fn tls_stream(
    tcp: net::Timed,
    target: &Target,
    opts: &Options,
) -> Result<(Box<dyn Stream>, String), String> {
    use crate::tls::{connect, Verify};
    let verify = if opts.insecure {
        Verify::None
    } else {
        Verify::Full
    };
    let (stream, cert) = connect(tcp, &target.host, verify)?;
    let mut note = String::new();
    if let Some(days) = cert.days_left {
        if let Some(min) = opts.cert_min_days {
            if days < i64::from(min) {
                return Err(format!(
                    "certificate expires in {days} days (minimum {min})"
                ));
            }
        }
        note = format!(", certificate valid {days} more days");
    } else if opts.cert_min_days.is_some() {
        return Err("cannot read the certificate's expiry".into());
    }
    Ok((stream, note))
}

#[cfg(not(feature = "tls"))]
fn tls_stream(_: net::Timed, _: &Target, _: &Options) -> Result<(Box<dyn Stream>, String), String> {
    Err("this build has no TLS (built without the `tls` feature)".into())
}

fn host_header(target: &Target) -> String {
    let default = matches!(
        (target.scheme, target.port),
        (Scheme::Http, 80) | (Scheme::Https, 443)
    );
    if default {
        target
            .authority()
            .rsplit_once(':')
            .map_or_else(|| target.host.clone(), |(h, _)| h.to_owned())
    } else {
        target.authority()
    }
}

/// Bytes buffered from the stream, read further on demand.
struct Reader<'a> {
    stream: &'a mut dyn Stream,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader<'_> {
    /// Read more; false at the end of the stream.
    fn fill(&mut self, what: &str) -> Result<bool, String> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            // A TLS peer that closes without close_notify: the end.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(format!("{what}: {}", net::describe(&e))),
        }
    }

    /// One line without its CRLF, at most `max` bytes.
    fn line(&mut self, max: usize, what: &str) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = find(&self.buf[self.pos..], b"\r\n") {
                let line = self.buf[self.pos..self.pos + end].to_vec();
                self.pos += end + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > max {
                return Err(format!("{what}: a line longer than {max} bytes"));
            }
            if !self.fill(what)? {
                return Err(format!(
                    "{what}: the server closed the connection mid-response"
                ));
            }
        }
    }

    /// `n` bytes (all of them when `n` is `None`, up to the end), the first into `keep` up to
    /// [`MAX_BODY`], the rest read and dropped.
    fn copy(&mut self, n: Option<usize>, keep: &mut Vec<u8>) -> Result<(), String> {
        let mut left = n;
        loop {
            let have = self.buf.len() - self.pos;
            let take = left.map_or(have, |l| l.min(have));
            let room = MAX_BODY.saturating_sub(keep.len()).min(take);
            keep.extend_from_slice(&self.buf[self.pos..self.pos + room]);
            self.pos += take;
            if let Some(l) = left.as_mut() {
                *l -= take;
                if *l == 0 {
                    return Ok(());
                }
            }
            if !self.fill("reading the body")? {
                return match left {
                    None => Ok(()),
                    Some(_) => Err("the server closed the connection mid-body".into()),
                };
            }
        }
    }
}

/// Read the status line, the headers and, unless the request was a HEAD, the whole body: a
/// response is healthy only when it arrived whole before the deadline (a body that never ends
/// times out). The body is kept up to [`MAX_BODY`] for the assertions.
pub fn read_response(stream: &mut dyn Stream, head_only: bool) -> Result<Response, String> {
    let mut r = Reader {
        stream,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let head_end = loop {
        if let Some(pos) = find(&r.buf, b"\r\n\r\n") {
            break pos;
        }
        if r.buf.len() > MAX_HEADERS {
            return Err("response headers too large".into());
        }
        if !r.fill("waiting for the response")? {
            return Err(if r.buf.is_empty() {
                "the server closed the connection without answering".into()
            } else {
                "the server closed the connection mid-response".into()
            });
        }
    };
    let head = String::from_utf8_lossy(&r.buf[..head_end]).into_owned();
    r.pos = head_end + 4;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(40).collect::<String>()
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || matches!(status, 100..=199 | 204 | 304) {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = match response.header("content-length") {
        Some(v) if !chunked => Some(
            v.parse::<usize>()
                .map_err(|_| format!("status {status}, a Content-Length that is not a number"))?,
        ),
        _ => None,
    };
    let mut body = Vec::new();
    if chunked {
        // Chunk by chunk to the last one (size 0) and its trailers: a `0\r\n\r\n` inside the
        // data ends nothing.
        loop {
            let line = r.line(1024, "reading the body")?;
            let text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("status {status}, a malformed chunked body"))?;
            if size == 0 {
                while !r.line(MAX_HEADERS, "reading the body")?.is_empty() {}
                break;
            }
            r.copy(Some(size), &mut body)?;
            if !r.line(2, "reading the body")?.is_empty() {
                return Err(format!("status {status}, a malformed chunked body"));
            }
        }
    } else {
        r.copy(length, &mut body)?;
    }
    response.body = body;
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, head_only: bool) -> Response {
        let mut stream = std::io::Cursor::new(raw.as_bytes().to_vec());
        read_response(&mut stream, head_only).expect("response")
    }

    #[test]
    fn status_headers_and_a_sized_body() {
        let r = parse(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA",
            false,
        );
        assert_eq!(
            (r.status, r.header("x-a"), r.body.as_slice()),
            (503, Some("b"), &b"hello"[..])
        );
    }

    #[test]
    fn a_chunked_body_is_decoded() {
        let r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n", false);
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn a_chunked_body_ends_at_its_last_chunk_not_at_a_lookalike_in_the_data() {
        // The first chunk's data holds "0\r\n\r\n"; the body goes on after it.
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nx0\r\n\r\ny\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        );
        assert_eq!(r.body, b"x0\r\n\r\nyok");
        // A body cut before its last chunk is not a response.
        let mut cut = std::io::Cursor::new(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nx0\r\n\r\ny\r\n".to_vec(),
        );
        let err = read_response(&mut cut, false).expect_err("cut");
        assert!(err.contains("mid-response"), "{err}");
    }

    #[test]
    fn a_body_shorter_than_its_length_is_not_a_response_and_head_reads_none() {
        let mut short =
            std::io::Cursor::new(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec());
        let err = read_response(&mut short, false).expect_err("short");
        assert!(err.contains("mid-body"), "{err}");
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
        assert_eq!((r.status, r.body.len()), (200, 0));
    }

    #[test]
    fn garbage_is_not_an_http_response() {
        let mut stream = std::io::Cursor::new(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
        let err = read_response(&mut stream, true).expect_err("must fail");
        assert!(err.contains("not an HTTP response"), "{err}");
    }
}
