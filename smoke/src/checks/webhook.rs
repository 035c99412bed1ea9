//! `kind = "webhook"`: a payload signed with an HMAC-SHA256 secret, as a payment provider would
//! send it (seed 002's webhook check), expecting 2xx. With `reject-forged = true` the same
//! payload with a wrong signature is sent first and must be refused (4xx): an endpoint that
//! accepts anything passes a naive smoke test and fails its users.
//!
//! The signature goes in `signature-header` (default `X-Signature`) as `signature-prefix`
//! (default `sha256=`) and the lowercase hex digest of the body exactly as sent.

use hmac::{Hmac, Mac};

use super::http::{client_for, judge, request_body, resolve_url, send, url_of};
use super::{Ctx, Outcome};
use crate::spec::{Check, CheckSpec, StatusExpect};

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let method = spec
        .method
        .as_deref()
        .unwrap_or("POST")
        .to_ascii_uppercase();
    let path = url_of(spec);
    let header = spec.signature_header.as_deref().unwrap_or("X-Signature");
    let prefix = spec.signature_prefix.as_deref().unwrap_or("sha256=");
    let secret = spec.secret.clone().unwrap_or_default();
    let result = async {
        let url = resolve_url(ctx, path)?;
        let client = client_for(ctx, spec.ca_file.as_deref())?;
        let (body, json) = request_body(spec)?.unwrap_or_else(|| {
            let payload = serde_json::json!({
                "id": format!("{}-{}", ctx.run_id, check.name),
                "smoke": true,
            });
            (payload.to_string().into_bytes(), true)
        });
        let headers: Vec<(String, String)> = spec.headers.clone().into_iter().collect();
        if spec.reject_forged == Some(true) {
            let mut forged = headers.clone();
            forged.push((header.to_owned(), format!("{prefix}{}", "0".repeat(64))));
            let r = send(&client, &method, &url, &forged, Some((body.clone(), json))).await?;
            if !(400..500).contains(&r.status) {
                return Err(format!(
                    "a forged signature was answered {}, expected 4xx",
                    r.status
                ));
            }
        }
        let mut signed = headers;
        signed.push((
            header.to_owned(),
            format!("{prefix}{}", sign(&secret, &body)),
        ));
        send(&client, &method, &url, &signed, Some((body, json))).await
    }
    .await;
    match result {
        Ok(response) => judge(
            check,
            spec,
            ctx,
            &method,
            &response,
            &StatusExpect::Class("2xx".into()),
        ),
        Err(e) => Outcome::fail(format!("{method} {path}: {e}")),
    }
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    lifeboat::output::hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_rfc_4231_case_2() {
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
