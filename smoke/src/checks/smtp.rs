//! `kind = "smtp"`: send a probe mail through lifeboat's SMTP settings (`SMTP_*`, with `to` and
//! `from` from the check when given); with `mail-api`, a Mailpit- or Mailhog-style HTTP API,
//! also wait until it arrived there and delete it (seed 000: "Mailhog capturing test emails").
//!
//! The subject carries the run id and the check's name, so the probe is found among other mail
//! and never mistaken for a real one.

use std::time::{Duration, Instant};

use lifeboat::mail::Mailer;

use super::{ms, Cleanup, Ctx, Outcome};
use crate::spec::{Check, CheckSpec, MailApiKind};

/// How often the mail API is asked whether the probe arrived.
const POLL: Duration = Duration::from_millis(100);

/// How long the cleanup waits for a probe mail the check did not see arrive.
const LATE_WAIT: Duration = Duration::from_secs(5);

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let mut cfg = ctx.config.smtp.clone();
    if let Some(to) = &spec.to {
        cfg.to = vec![to.clone()];
    }
    if let Some(from) = &spec.from {
        cfg.from = Some(from.clone());
    }
    let host = cfg.host.clone().unwrap_or_default();
    if host.is_empty() {
        return Outcome::fail("SMTP_HOST is not set");
    }
    let mailer = match Mailer::new(&cfg) {
        Ok(m) => m,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let token = format!("{}.{}", ctx.run_id, check.name);
    let subject = format!("lifeboat-smoke probe {token}");
    let started = Instant::now();
    if let Err(e) = mailer
        .send(
            &subject,
            &format!(
                "A probe mail from lifeboat-smoke (run {}); it can be deleted.\n",
                ctx.run_id
            ),
        )
        .await
    {
        return Outcome::fail(e.to_string());
    }
    let sent = format!("sent to {}:{} in {}", host, cfg.port, ms(started.elapsed()));
    let Some(api) = spec.mail_api.as_deref().filter(|a| !a.is_empty()) else {
        return Outcome::pass(sent);
    };
    let kind = spec.mail_api_kind.unwrap_or_default();
    let api = api.trim_end_matches('/').to_owned();
    // Registered before the wait: a probe that arrives after the check's timeout is looked for
    // again, and deleted, when the run cleans up.
    let cleanup = ctx.cleanups.add(Cleanup::Mail {
        check: check.name.clone(),
        api: api.clone(),
        kind,
        token: token.clone(),
    });
    // The check's own timeout bounds this loop.
    loop {
        match find_mail(&ctx.client, &api, kind, &token).await {
            Ok(ids) if !ids.is_empty() => {
                let arrived = ms(started.elapsed());
                return match delete_mail(&ctx.client, &api, kind, &ids).await {
                    Ok(()) => {
                        ctx.cleanups.remove(cleanup);
                        Outcome::pass(format!(
                            "{sent}, arrived in the mail API in {arrived}, deleted"
                        ))
                    }
                    Err(e) => {
                        Outcome::fail(format!("{sent}, arrived, but deleting it failed: {e}"))
                    }
                };
            }
            Ok(_) => {}
            Err(e) => return Outcome::fail(format!("{sent}, but the mail API {api}: {e}")),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The cleanup of a probe mail: found by its token and deleted; one that is not there yet is
/// waited for a while (it may be late), then said to be missing.
pub async fn remove_probe(
    client: &reqwest::Client,
    api: &str,
    kind: MailApiKind,
    token: &str,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let ids = find_mail(client, api, kind, token).await?;
        if !ids.is_empty() {
            return delete_mail(client, api, kind, &ids).await;
        }
        if started.elapsed() >= LATE_WAIT {
            return Err(format!(
                "the probe mail (subject `lifeboat-smoke probe {token}`) had not arrived in the mail API {} s after the check; if it arrives later it stays there",
                LATE_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The ids of the messages whose subject holds `token`.
async fn find_mail(
    client: &reqwest::Client,
    api: &str,
    kind: MailApiKind,
    token: &str,
) -> Result<Vec<String>, String> {
    let mut url = url::Url::parse(api).map_err(|e| format!("not a URL: {e}"))?;
    // Below the API's own path (`http://host/mailpit`), as the delete is.
    let base = url.path().trim_end_matches('/').to_owned();
    match kind {
        MailApiKind::Mailpit => {
            url.set_path(&format!("{base}/api/v1/search"));
            url.query_pairs_mut()
                .append_pair("query", &format!("subject:\"{token}\""));
        }
        MailApiKind::Mailhog => {
            url.set_path(&format!("{base}/api/v2/search"));
            url.query_pairs_mut()
                .append_pair("kind", "containing")
                .append_pair("query", token);
        }
    }
    let response = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| lifeboat::http::describe(&e))?;
    if !response.status().is_success() {
        return Err(format!("search answered {}", response.status().as_u16()));
    }
    let body: serde_json::Value = serde_json::from_slice(
        &response
            .bytes()
            .await
            .map_err(|e| lifeboat::http::describe(&e))?,
    )
    .map_err(|e| format!("search did not answer JSON: {e}"))?;
    let (list, subject_of): (&str, fn(&serde_json::Value) -> Option<String>) = match kind {
        MailApiKind::Mailpit => ("/messages", |m| m["Subject"].as_str().map(str::to_owned)),
        MailApiKind::Mailhog => ("/items", |m| {
            m.pointer("/Content/Headers/Subject/0")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        }),
    };
    Ok(body
        .pointer(list)
        .and_then(|l| l.as_array())
        .map(|items| {
            items
                .iter()
                .filter(|m| subject_of(m).is_some_and(|s| s.contains(token)))
                .filter_map(|m| m["ID"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Delete probe messages through the mail API.
async fn delete_mail(
    client: &reqwest::Client,
    api: &str,
    kind: MailApiKind,
    ids: &[String],
) -> Result<(), String> {
    let requests: Vec<reqwest::RequestBuilder> = match kind {
        MailApiKind::Mailpit => vec![client
            .delete(format!("{api}/api/v1/messages"))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({ "IDs": ids }).to_string())],
        MailApiKind::Mailhog => ids
            .iter()
            .map(|id| client.delete(format!("{api}/api/v1/messages/{id}")))
            .collect(),
    };
    for request in requests {
        let response = request
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| lifeboat::http::describe(&e))?;
        if !response.status().is_success() {
            return Err(format!("delete answered {}", response.status().as_u16()));
        }
    }
    Ok(())
}
