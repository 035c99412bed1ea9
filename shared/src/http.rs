//! Outgoing HTTP(S): one way to build a client, with timeouts and lifeboat's user agent.
//!
//! lifeboat-backup pings a dead-man switch (healthchecks.io and the like) with it, and
//! lifeboat-smoke will send its requests with it. Every request has a deadline, so that a server
//! that accepts and never answers cannot hold a cron job. TLS is rustls on the ring provider,
//! as for PostgreSQL, S3 and SMTP: no OpenSSL, no aws-lc. Certificates are checked against the
//! system's store (rustls-platform-verifier), as curl does.
//!
//! reqwest's errors print the URL they were sending to; a ping URL is a secret, so callers show
//! errors through [`describe`], which leaves it out.

use std::time::Duration;

pub use reqwest::Client;

/// `lifeboat/<version>`, sent with every request so that a server's log says who called.
pub const USER_AGENT: &str = concat!("lifeboat/", env!("CARGO_PKG_VERSION"));

/// The longest wait for a TCP and TLS connection, whatever the request's own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

/// A client builder: the whole request (connect, send, read the body) must end within
/// `timeout`, the connection within at most 5 s, and the user agent is [`USER_AGENT`].
/// Callers may add their own settings before `build()`.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    install_ring();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
}

/// A client with [`builder`]'s settings.
pub fn client(timeout: Duration) -> Result<Client, HttpError> {
    builder(timeout)
        .build()
        .map_err(|e| HttpError::Setup(describe(&e)))
}

/// An error and its causes, `: `-separated, without the URL reqwest puts in its own message.
pub fn describe(err: &reqwest::Error) -> String {
    if let Some(status) = err.status() {
        return format!("answered {status}");
    }
    let mut parts: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        let line = cause.to_string();
        // hyper repeats its cause in its own message; say each thing once.
        if !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        parts.push(kind(err).to_owned());
    }
    parts.join(": ")
}

/// What went wrong, in reqwest's own categories, for an error with no cause to show.
fn kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_redirect() {
        "too many redirects"
    } else if err.is_builder() {
        "invalid request"
    } else {
        "request failed"
    }
}

/// reqwest is built without a crypto provider (see Cargo.toml) and takes the process default:
/// make it ring. A provider installed earlier is kept.
fn install_ring() {
    // Err only means a default is already there, which is what is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server on loopback that returns the request it read.
    fn one_shot(reply: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            if reply.is_empty() {
                std::thread::sleep(Duration::from_secs(3));
            } else {
                stream.write_all(reply.as_bytes()).expect("write");
            }
            String::from_utf8_lossy(&request).into_owned()
        });
        (port, handle)
    }

    #[tokio::test]
    async fn requests_carry_the_user_agent() {
        let (port, server) =
            one_shot("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        let client = client(Duration::from_secs(5)).expect("client");
        let response = client
            .get(format!("http://127.0.0.1:{port}/check"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        let request = server.join().expect("server");
        assert!(request.starts_with("GET /check HTTP/1.1"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("user-agent: {USER_AGENT}")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_the_error_does_not_name_the_url() {
        let (port, _server) = one_shot("");
        let client = client(Duration::from_millis(500)).expect("client");
        let err = client
            .get(format!("http://127.0.0.1:{port}/secret-token"))
            .send()
            .await
            .expect_err("no answer");
        let text = describe(&err);
        assert!(text.contains("timed out"), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[test]
    fn an_https_client_builds_on_ring() {
        // Without a provider, reqwest panics when it builds a TLS client.
        client(Duration::from_secs(1)).expect("client");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
