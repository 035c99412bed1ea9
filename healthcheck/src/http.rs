//! HTTP/1.1 GET over a plain or TLS socket: status, headers, and the body only when an
//! assertion needs it. Redirects are not followed unless asked (a 301 from a health route
//! usually means a misconfigured proxy, which is worth knowing).

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
        let (response, cert_note) = fetch(&current, opts, deadline)?;
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
    deadline: Deadline,
) -> Result<(Response, String), String> {
    let tcp = net::connect(&target.host, target.port, deadline)?;
    let (mut stream, cert_note): (Box<dyn Stream>, String) = match target.scheme {
        Scheme::Https => tls_stream(tcp, target, opts)?,
        _ => (Box::new(tcp), String::new()),
    };
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lifeboat-healthcheck/{}\r\nAccept: */*\r\nConnection: close\r\n",
        target.path,
        host_header(target),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in &opts.headers {
        request.extend([name.as_str(), ": ", value.as_str(), "\r\n"]);
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {}", net::describe(&e)))?;
    let need_body = opts.expect_body.is_some() || !opts.expect_json.is_empty();
    let response = read_response(stream.as_mut(), need_body)?;
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

/// Read the status line and headers; the body too when `need_body`.
pub fn read_response(stream: &mut dyn Stream, need_body: bool) -> Result<Response, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEADERS {
            return Err("response headers too large".into());
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err("the server closed the connection without answering".into())
            }
            Ok(0) => return Err("the server closed the connection mid-response".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("waiting for the response: {}", net::describe(&e))),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
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
    if !need_body {
        return Ok(response);
    }
    let mut body = buf[head_end + 4..].to_vec();
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    loop {
        if length.is_some_and(|l| body.len() >= l) || body.len() > MAX_BODY {
            break;
        }
        if chunked && find(&body, b"0\r\n\r\n").is_some() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            // A TLS peer that closes without close_notify: keep what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("reading the body: {}", net::describe(&e))),
        }
    }
    if let Some(l) = length {
        body.truncate(l);
    }
    response.body = if chunked { dechunk(&body) } else { body };
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decode a chunked body (as much as arrived).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, need_body: bool) -> Response {
        let mut stream = std::io::Cursor::new(raw.as_bytes().to_vec());
        read_response(&mut stream, need_body).expect("response")
    }

    #[test]
    fn status_headers_and_a_sized_body() {
        let r = parse(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA",
            true,
        );
        assert_eq!(
            (r.status, r.header("x-a"), r.body.as_slice()),
            (503, Some("b"), &b"hello"[..])
        );
    }

    #[test]
    fn a_chunked_body_is_decoded() {
        let r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n", true);
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn garbage_is_not_an_http_response() {
        let mut stream = std::io::Cursor::new(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
        let err = read_response(&mut stream, false).expect_err("must fail");
        assert!(err.contains("not an HTTP response"), "{err}");
    }
}
