//! The result of a deploy or rollback, told: a mail (when SMTP_HOST and LIFEBOAT_MAIL_TO are
//! set) and a JSON POST of the history entry to deploy.webhook-url. Neither changes the
//! outcome: one that cannot be delivered is a warning.

use std::time::Duration;

use tracing::{info, warn};

use crate::history::Entry;
use crate::stack::Stack;

pub fn send(stack: &Stack, subject: &str, entry: &Entry) {
    let config = &stack.config;
    let body = serde_json::to_string_pretty(entry).unwrap_or_default();
    stack.block_on(async {
        lifeboat::mail::tell_outcome(config, "to mail the deploy's outcome", subject, &body).await;
        if let Some(url) = &config.deploy.webhook_url {
            let posted = async {
                let client = lifeboat::http::client(Duration::from_secs(10))?;
                let reply = client
                    .post(url.expose())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!(lifeboat::http::describe(&e)))?;
                if !reply.status().is_success() {
                    anyhow::bail!("it answered {}", reply.status());
                }
                anyhow::Ok(())
            };
            // A webhook's path often is its token (Slack, Discord): only its origin is shown.
            let shown = origin(url.expose());
            match posted.await {
                Ok(()) => info!("posted the outcome to {shown}"),
                Err(e) => warn!("cannot post the outcome to {shown}: {e:#}"),
            }
        }
    });
}

/// `https://hooks.example.com/***`: a URL's scheme and host only.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/***")
}
