//! Mail through SMTP: plain (a local relay, Mailhog), STARTTLS (587) and TLS (465).
//!
//! Seed 001 mails a weekly backup report; lifeboat mails failures. A mail that cannot be sent is
//! an error the caller reports, never swallowed. Extra CA certificates (an internal relay's own
//! CA) come from `LIFEBOAT_SMTP_CA_FILE`.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail address {address:?} ({field}): {reason}")]
    Address {
        field: &'static str,
        address: String,
        reason: String,
    },
    #[error("cannot read the SMTP CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("SMTP settings for {host}: {reason}")]
    Setup { host: String, reason: String },
    #[error("building the mail: {0}")]
    Build(String),
    #[error("sending mail through {host}:{port}: {reason}")]
    Send {
        host: String,
        port: u16,
        reason: String,
    },
}

/// A configured SMTP sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
    port: u16,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer({}:{})", self.host, self.port)
    }
}

fn mailbox(field: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            field,
            address: address.into(),
            reason: e.to_string(),
        })
}

/// The longest a mail may take to send, login and all.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

impl Mailer {
    /// A mailer for a complete configuration (see [`crate::config::Config::require_smtp`]).
    pub fn new(cfg: &SmtpConfig) -> Result<Self, MailError> {
        let host = cfg.host.clone().unwrap_or_default();
        let setup = |reason: String| MailError::Setup {
            host: host.clone(),
            reason,
        };
        let from = mailbox("SMTP_FROM", cfg.from.as_deref().unwrap_or_default())?;
        let to = cfg
            .to
            .iter()
            .map(|a| mailbox("LIFEBOAT_MAIL_TO", a))
            .collect::<Result<Vec<_>, _>>()?;

        let mut tls = TlsParameters::builder(host.clone());
        if let Some(path) = &cfg.ca_file {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| MailError::CaFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| MailError::CaFile {
                path: shown,
                reason: e.to_string(),
            })?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = match cfg.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => {
                Tls::Required(tls.build_rustls().map_err(|e| setup(e.to_string()))?)
            }
            SmtpTls::Tls => Tls::Wrapper(tls.build_rustls().map_err(|e| setup(e.to_string()))?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            host,
            port: cfg.port,
        })
    }

    /// Send a plain-text mail to the configured recipients.
    pub async fn send(&self, subject: &str, body: &str) -> Result<(), MailError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body.to_owned())
            .map_err(|e| MailError::Build(e.to_string()))?;
        let failed = |reason: String| MailError::Send {
            host: self.host.clone(),
            port: self.port,
            reason,
        };
        // The whole exchange, not each read: a server that stops answering mid-conversation
        // (seen after a refused login) must not hold a nightly job for minutes.
        match tokio::time::timeout(SEND_DEADLINE, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(|e| failed(e.to_string())),
            Err(_) => Err(failed(format!(
                "no answer within {} s",
                SEND_DEADLINE.as_secs()
            ))),
        }
    }
}

/// Whether a job's outcome is mailed at all: only when both `SMTP_HOST` and `LIFEBOAT_MAIL_TO`
/// are set, as a stack's `.env` often configures SMTP for the app alone.
pub fn outcome_wanted(config: &Config) -> bool {
    config.smtp.host.is_some() && !config.smtp.to.is_empty()
}

/// Mail a job's outcome to `LIFEBOAT_MAIL_TO`, any password in a URL of the body shown as
/// `***`; nothing is sent unless [`outcome_wanted`]. `why` says what the settings are needed
/// for when some are missing (`to mail the restore's outcome`).
pub async fn send_outcome(
    config: &Config,
    why: &str,
    subject: &str,
    body: &str,
) -> anyhow::Result<()> {
    if !outcome_wanted(config) {
        return Ok(());
    }
    let mailer = Mailer::new(config.require_smtp(why)?)?;
    mailer
        .send(subject, &crate::secret::redact_url(body))
        .await?;
    Ok(())
}

/// [`send_outcome`] for a job whose outcome a mail does not change: a mail that cannot be sent
/// is a warning.
pub async fn tell_outcome(config: &Config, why: &str, subject: &str, body: &str) {
    if let Err(e) = send_outcome(config, why, subject, body).await {
        tracing::warn!("cannot mail the outcome: {e:#}");
    }
}
