//! `kind = "http"`: one request, its captures, and every assertion on the answer.
//!
//! Also the request and assertion code the `rate-limit` and `webhook` kinds share. Redirects are
//! not followed: a 302 to a login page is an answer to assert on, not a success to hide.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, CONTENT_TYPE};

use super::{ms, Captured, Ctx, Outcome};
use crate::spec::{Check, CheckSpec, Expect, HeaderExpect, JsonExpect, StatusExpect};

/// A response, read whole.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub elapsed: Duration,
    /// The server's certificate (DER), on https.
    pub certificate: Option<Vec<u8>>,
}

/// The most of a body that is kept (a smoke check reads small JSON answers).
const MAX_BODY: usize = 1024 * 1024;

/// The shared client for every check without its own CA file.
pub fn shared_client() -> Result<reqwest::Client, String> {
    configure(lifeboat::http::builder(Duration::from_secs(300)))
        .build()
        .map_err(|e| {
            format!(
                "cannot set up the HTTP client: {}",
                lifeboat::http::describe(&e)
            )
        })
}

fn configure(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
}

/// The shared client, or one that also trusts `ca_file`.
pub fn client_for(ctx: &Ctx, ca_file: Option<&str>) -> Result<reqwest::Client, String> {
    let Some(path) = ca_file else {
        return Ok(ctx.client.clone());
    };
    let pem = super::read_ca_file(path)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("ca-file {path}: {}", lifeboat::http::describe(&e)))?;
    // The check's own timeout bounds the request (run.rs); this one is only a backstop.
    configure(lifeboat::http::builder(Duration::from_secs(300)))
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| {
            format!(
                "cannot set up the HTTP client: {}",
                lifeboat::http::describe(&e)
            )
        })
}

/// `url` as written, or below the environment's base URL when it is a path.
pub fn resolve_url(ctx: &Ctx, url: &str) -> Result<String, String> {
    if url.contains("://") {
        return Ok(url.to_owned());
    }
    let base = ctx
        .base_url
        .as_deref()
        .ok_or_else(|| format!("{url} is a path and the environment has no base-url"))?;
    let sep = if url.starts_with('/') { "" } else { "/" };
    Ok(format!("{}{sep}{url}", base.trim_end_matches('/')))
}

/// The body a check sends: `body` as written, or `json` serialised (with its content type).
pub fn request_body(spec: &CheckSpec) -> Result<Option<(Vec<u8>, bool)>, String> {
    if let Some(body) = &spec.body {
        return Ok(Some((body.clone().into_bytes(), false)));
    }
    if let Some(json) = &spec.json {
        let value = serde_json::to_value(json).map_err(|e| format!("json body: {e}"))?;
        return Ok(Some((value.to_string().into_bytes(), true)));
    }
    Ok(None)
}

/// Send one request and read the whole answer.
pub async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<(Vec<u8>, bool)>,
) -> Result<Response, String> {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    // No per-request timeout: the check's timeout (run.rs) bounds the whole attempt, and a
    // second timer racing it would only change which message a person reads.
    let mut request = client.request(method, url);
    let mut has_type = false;
    for (k, v) in headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        request = request.header(k, v);
    }
    if let Some((bytes, json)) = body {
        if json && !has_type {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        request = request.body(bytes);
    }
    let started = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|e| lifeboat::http::describe(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec));
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", lifeboat::http::describe(&e)))?
    {
        if body.len() < MAX_BODY {
            body.extend_from_slice(&chunk);
        }
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        elapsed: started.elapsed(),
        certificate,
    })
}

pub async fn run(check: &Check, spec: &CheckSpec, ctx: &Ctx) -> Outcome {
    let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let result = async {
        let url = resolve_url(ctx, url_of(spec))?;
        let client = client_for(ctx, spec.ca_file.as_deref())?;
        let body = request_body(spec)?;
        let headers: Vec<(String, String)> = spec.headers.clone().into_iter().collect();
        send(&client, &method, &url, &headers, body).await
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
        Err(e) => Outcome::fail(format!("{method} {}: {e}", url_of(spec))),
    }
}

pub fn url_of(spec: &CheckSpec) -> &str {
    spec.url.as_ref().map_or("", |u| u.get_ref().as_str())
}

/// Captures first (a secret one is scrubbed from the failure messages below), then every
/// assertion, each failure said.
pub fn judge(
    check: &Check,
    spec: &CheckSpec,
    ctx: &Ctx,
    method: &str,
    response: &Response,
    default_status: &StatusExpect,
) -> Outcome {
    let json: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
    let mut failures = Vec::new();
    let mut captures = Vec::new();
    for (name, capture) in &spec.capture {
        let table = capture.get_ref().table();
        let value = if let Some(pointer) = &table.pointer {
            json.as_ref()
                .and_then(|j| j.pointer(pointer))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .ok_or_else(|| format!("capture `{name}`: nothing at {pointer}"))
        } else {
            let header = table.header.clone().unwrap_or_default();
            response
                .headers
                .get(&header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| format!("capture `{name}`: no {header} header"))
        };
        match value {
            Ok(v) if table.secret && crate::vars::too_short(&v) => failures.push(format!(
                "capture `{name}` is marked secret, but its value is shorter than {} characters: \
                 too short to scrub from the output, so it is not used",
                crate::vars::MIN_SECRET_CHARS
            )),
            Ok(v) => {
                if table.secret {
                    ctx.redactor.add(&v);
                }
                captures.push(Captured {
                    name: name.clone(),
                    value: v,
                });
            }
            Err(e) => failures.push(e),
        }
    }
    let expect = spec
        .expect
        .as_ref()
        .map(|e| e.get_ref().clone())
        .unwrap_or_default();
    let status = expect.status.as_ref().unwrap_or(default_status);
    let status_ok = status.matches(response.status);
    if !status_ok {
        failures.push(format!(
            "status {}, expected {}",
            response.status,
            status.describe()
        ));
    }
    failures.extend(assert_response(
        &expect,
        check.regex.as_ref(),
        response,
        json.as_ref(),
        &ctx.redactor,
    ));
    let what = format!("{method} {} → {}", url_of(spec), response.status);
    let mut outcome = if failures.is_empty() {
        Outcome::pass(format!("{what} in {}", ms(response.elapsed)))
    } else {
        let mut message = format!("{what}: {}", failures.join("; "));
        if !status_ok && !response.body.is_empty() {
            let _ = write!(
                message,
                " (body: {})",
                excerpt(&ctx.redactor.scrub(&response.body))
            );
        }
        Outcome::fail(message)
    };
    outcome.captures = captures;
    outcome.answered = true;
    outcome
}

/// The first 160 characters of a body, on one line. Scrub first: a secret across the cut would
/// show in part.
pub fn excerpt(body: &str) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    if body.chars().count() > 160 {
        format!("{flat}…")
    } else {
        flat
    }
}

/// Every assertion but the status.
fn assert_response(
    expect: &Expect,
    regex: Option<&regex_lite::Regex>,
    response: &Response,
    json: Option<&serde_json::Value>,
    redactor: &crate::vars::Redactor,
) -> Vec<String> {
    let mut failures = Vec::new();
    assert_headers(expect, response, &mut failures);
    if !expect.json.is_empty() && json.is_none() {
        failures.push("the body is not JSON".into());
    }
    if let Some(json) = json {
        for j in &expect.json {
            assert_json(j, json, redactor, &mut failures);
        }
    }
    assert_body(expect, regex, response, &mut failures);
    if let Some(max) = expect.max_ms {
        let took = response.elapsed.as_millis();
        if took > u128::from(max) {
            failures.push(format!("took {took} ms, more than {max} ms"));
        }
    }
    if let Some(days) = expect.tls_days {
        assert_tls_days(days, response, &mut failures);
    }
    failures
}

/// `expect.headers`: present, absent, or containing a text.
fn assert_headers(expect: &Expect, response: &Response, failures: &mut Vec<String>) {
    for (name, want) in &expect.headers {
        let got = response.headers.get(name).and_then(|v| v.to_str().ok());
        match (want, got) {
            (HeaderExpect::Present(true), None) => failures.push(format!("no {name} header")),
            (HeaderExpect::Present(false), Some(_)) => {
                failures.push(format!("a {name} header, expected none"));
            }
            (HeaderExpect::Contains(s), None) => {
                failures.push(format!("no {name} header, expected one containing {s:?}"));
            }
            (HeaderExpect::Contains(s), Some(v)) if !v.contains(s.as_str()) => {
                failures.push(format!(
                    "header {name} is {v:?}, expected it to contain {s:?}"
                ));
            }
            _ => {}
        }
    }
}

/// One `[[expect.json]]`: something (or nothing) at its pointer, of a type, equal to a value.
fn assert_json(
    j: &JsonExpect,
    json: &serde_json::Value,
    redactor: &crate::vars::Redactor,
    failures: &mut Vec<String>,
) {
    let got = json.pointer(&j.pointer);
    if let Some(exists) = j.exists {
        if exists != got.is_some() {
            failures.push(if exists {
                format!("nothing at {}", j.pointer)
            } else {
                format!("{} is present, expected nothing there", j.pointer)
            });
            return;
        }
    }
    if let Some(t) = j.type_ {
        match got {
            Some(v) if t.of(v) => {}
            Some(v) => failures.push(format!(
                "{} is {}, expected a{} {}",
                j.pointer,
                short(v, redactor),
                if t.name().starts_with(['a', 'i', 'o']) {
                    "n"
                } else {
                    ""
                },
                t.name()
            )),
            None => {
                failures.push(format!("nothing at {}, expected a {}", j.pointer, t.name()));
            }
        }
    }
    if let Some(want) = &j.equals {
        let want = serde_json::to_value(want).unwrap_or(serde_json::Value::Null);
        match got {
            Some(v) if json_eq(v, &want) => {}
            Some(v) => {
                failures.push(format!(
                    "{} is {}, expected {want}",
                    j.pointer,
                    short(v, redactor)
                ));
            }
            None => failures.push(format!("nothing at {}, expected {want}", j.pointer)),
        }
    }
}

/// `expect.body-contains` and `expect.body-regex`.
fn assert_body(
    expect: &Expect,
    regex: Option<&regex_lite::Regex>,
    response: &Response,
    failures: &mut Vec<String>,
) {
    if let Some(contains) = &expect.body_contains {
        for s in contains.items() {
            if !response.body.contains(s.as_str()) {
                failures.push(format!("the body does not contain {s:?}"));
            }
        }
    }
    if let (Some(re), Some(pattern)) = (regex, &expect.body_regex) {
        if !re.is_match(&response.body) {
            failures.push(format!("the body does not match /{pattern}/"));
        }
    }
}

/// `expect.tls-days`: the certificate expires no sooner than in `days` days.
fn assert_tls_days(days: u32, response: &Response, failures: &mut Vec<String>) {
    match response.certificate.as_deref().map(not_after) {
        None => failures.push("no TLS certificate (is the URL https?)".into()),
        Some(None) => failures.push("cannot read the certificate's expiry".into()),
        Some(Some(expiry)) => {
            let left = (expiry - chrono::Utc::now()).num_days();
            if left < i64::from(days) {
                failures.push(format!(
                    "the TLS certificate expires in {left} days ({}), expected at least {days}",
                    expiry.format("%Y-%m-%d")
                ));
            }
        }
    }
}

/// A value for a message, scrubbed of secrets, then cut short.
fn short(v: &serde_json::Value, redactor: &crate::vars::Redactor) -> String {
    let s = redactor.scrub(&v.to_string());
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// JSON equality where `1` equals `1.0`.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            x == y
                || x.as_f64()
                    .zip(y.as_f64())
                    .is_some_and(|(x, y)| (x - y).abs() < f64::EPSILON)
        }
        _ => a == b,
    }
}

/// The `notAfter` of an X.509 certificate: lifeboat-healthcheck's reader, lifeboat's only one.
pub fn not_after(cert: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(lifeboat_healthcheck::cert::not_after_unix(cert)?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_lists_match() {
        assert!(StatusExpect::Class("2xx".into()).matches(204));
        assert!(!StatusExpect::Class("2xx".into()).matches(301));
        assert!(StatusExpect::Codes(vec![200, 201]).matches(201));
        assert!(!StatusExpect::Code(200).matches(201));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(!json_eq(&serde_json::json!("1"), &serde_json::json!(1)));
    }

    #[test]
    fn a_body_excerpt_is_one_short_line() {
        let long = "a\nb".repeat(200);
        let e = excerpt(&long);
        assert!(!e.contains('\n') && e.ends_with('…') && e.chars().count() == 161);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert!(not_after(b"").is_none());
        assert!(not_after(&[0x30, 0x82, 0xff]).is_none());
    }
}
