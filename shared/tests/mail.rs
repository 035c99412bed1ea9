//! `lifeboat::mail` against the real SMTP server (aiosmtpd) started by scripts/test, in its
//! three TLS modes.

use lifeboat::config::{SmtpConfig, SmtpTls};
use lifeboat::mail::Mailer;

fn config(port: u16, tls: SmtpTls, ca: bool) -> SmtpConfig {
    let smtp = lifeboat_testkit::smtp();
    SmtpConfig {
        host: Some(if tls == SmtpTls::None {
            "127.0.0.1".into()
        } else {
            "localhost".into()
        }),
        port,
        user: None,
        password: None,
        from: Some("lifeboat@demo.test".into()),
        tls,
        ca_file: ca.then_some(smtp.ca_file),
        to: vec!["ops@demo.test".into(), "oncall@demo.test".into()],
    }
}

async fn send_and_receive(cfg: &SmtpConfig) {
    let subject = lifeboat_testkit::unique("lifeboat test ");
    Mailer::new(cfg)
        .expect("mailer")
        .send(&subject, "backup ok\n")
        .await
        .expect("send");
    let message = lifeboat_testkit::smtp().wait_for_message(&subject);
    assert!(
        message.contains("ops@demo.test") && message.contains("oncall@demo.test"),
        "{message}"
    );
    assert!(message.contains("backup ok"), "{message}");
}

#[tokio::test]
async fn plain_smtp_delivers() {
    send_and_receive(&config(
        lifeboat_testkit::smtp().plain_port,
        SmtpTls::None,
        false,
    ))
    .await;
}

#[tokio::test]
async fn starttls_delivers_with_the_relay_s_ca() {
    send_and_receive(&config(
        lifeboat_testkit::smtp().starttls_port,
        SmtpTls::StartTls,
        true,
    ))
    .await;
}

#[tokio::test]
async fn implicit_tls_delivers_with_the_relay_s_ca() {
    send_and_receive(&config(
        lifeboat_testkit::smtp().tls_port,
        SmtpTls::Tls,
        true,
    ))
    .await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let cfg = config(lifeboat_testkit::smtp().tls_port, SmtpTls::Tls, false);
    let err = Mailer::new(&cfg)
        .expect("mailer")
        .send("never", "x")
        .await
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("sending mail through localhost:"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "refused for its certificate: {err}"
    );
}

#[tokio::test]
async fn a_bad_address_names_the_setting() {
    let mut cfg = config(lifeboat_testkit::smtp().plain_port, SmtpTls::None, false);
    cfg.to = vec!["not an address".into()];
    let err = Mailer::new(&cfg).expect_err("must fail").to_string();
    assert!(
        err.contains("LIFEBOAT_MAIL_TO") && err.contains("not an address"),
        "{err}"
    );
}
