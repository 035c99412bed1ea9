//! TLS for `https://`, `rediss://` and PostgreSQL's `sslmode`, with rustls (no OpenSSL), and the
//! certificate's expiry for `--cert-min-days` (the seed's SSLCertificateExpiring alert).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::verifier::{AcceptAny, ChainOnly};

use crate::net::{describe, Stream, Timed};

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the public roots, host name included.
    Full,
    /// Not at all: `--insecure`, and PostgreSQL's `sslmode=require` (as libpq).
    None,
    /// PostgreSQL's `verify-ca` (`host_name` false: the chain only) and `verify-full`, against
    /// the PEM file `roots` (none: the public roots).
    Chain {
        roots: Option<std::path::PathBuf>,
        host_name: bool,
    },
}

/// What the handshake told us about the certificate.
#[derive(Debug, Clone, Copy)]
pub struct PeerCert {
    /// Whole days until `notAfter` (negative once expired), when the certificate could be read.
    pub days_left: Option<i64>,
}

/// Wrap `tcp` in TLS for `host` and complete the handshake.
pub fn connect(
    tcp: Timed,
    host: &str,
    verify: Verify,
) -> Result<(Box<dyn Stream>, PeerCert), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        Verify::Full => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
        Verify::Chain { roots, host_name } => {
            let store = match roots {
                None => rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
                Some(path) => root_file(&path)?,
            };
            if host_name {
                builder.with_root_certificates(store).with_no_client_auth()
            } else {
                let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(store),
                    provider,
                )
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
                    .with_no_client_auth()
            }
        }
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host} is not a valid TLS server name"))?;
    let conn =
        ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS setup: {e}"))?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("TLS handshake: {}", tls_reason(&e)))?;
    }
    let days_left = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::cert::not_after_unix(c.as_ref()))
        .map(|t| (t - now_unix()).div_euclid(86_400));
    Ok((Box::new(stream), PeerCert { days_left }))
}

fn tls_reason(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("invalid certificate ({c:?}); --insecure skips the check")
        }
        Some(other) => other.to_string(),
        None => describe(e),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The certificates of a PEM file (a CA bundle is a few hundred KiB at most).
fn root_file(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: String| format!("sslrootcert {}: {e}", path.display());
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        store
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(store)
}
