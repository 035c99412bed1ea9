//! The JSON API: what the toolkit's health checks, smoke tests and demo talk to.
//!
//! Each route touches the state a backup must carry: users and businesses (PostgreSQL),
//! sessions and rate-limit counters (Redis), and webhook payments (PostgreSQL, signed).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::http::{Request, Response};
use crate::store::{hex, password_sha256, pg_reason, unhex, Cache, Db};
use crate::{Config, DemoVersion};

/// Everything a request handler needs.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub cache: Cache,
}

const SESSION_SECONDS: u64 = 3600;
const RATE_WINDOW_SECONDS: i64 = 60;
/// Bound on one request's work, so a frozen database cannot hold a client forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the health check's own database round trip (the image's probe waits 2 s).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

/// Handlers return `Err` for early exits (bad input, failures) so that `?` reads naturally.
type Reply = Result<Response, Response>;

enum Route<'a> {
    Health,
    Version,
    Login,
    Businesses,
    Business(&'a str),
    PaymentWebhook,
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        Some(match path {
            "/api/health" => Route::Health,
            "/api/version" => Route::Version,
            "/api/auth/login" => Route::Login,
            "/api/businesses" => Route::Businesses,
            "/api/webhooks/payment" => Route::PaymentWebhook,
            _ => match path.strip_prefix("/api/businesses/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Business(id),
                _ => return None,
            },
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::Health | Route::Version => "GET",
            Route::Business(_) => "GET, DELETE",
            Route::Login | Route::PaymentWebhook => "POST",
            Route::Businesses => "GET, POST",
        }
    }
}

pub async fn handle(app: &App, req: Request) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, dispatch(app, &req)).await {
        Ok(Ok(response) | Err(response)) => response,
        Err(_) => error(503, "request timed out"),
    }
}

async fn dispatch(app: &App, req: &Request) -> Reply {
    let Some(route) = Route::parse(&req.path) else {
        return Err(error(404, "not found"));
    };
    match (req.method.as_str(), &route) {
        ("GET", Route::Health) => Ok(health(app).await),
        ("GET", Route::Version) => Ok(version(app).await),
        ("POST", Route::Login) => login(app, req).await,
        ("POST", Route::Businesses) => create_business(app, req).await,
        ("GET", Route::Businesses) => list_businesses(app, req).await,
        ("GET", Route::Business(id)) => get_business(app, req, id).await,
        ("DELETE", Route::Business(id)) => delete_business(app, req, id).await,
        ("POST", Route::PaymentWebhook) => payment_webhook(app, req).await,
        _ => Err(error(405, "method not allowed").with_header("Allow", route.allowed())),
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

/// 503 when the database cannot be reached, 500 when a query failed; the detail goes to the log.
fn db_failure(e: &tokio_postgres::Error) -> Response {
    eprintln!("database error: {}", pg_reason(e));
    if e.is_closed() {
        error(503, "database unavailable")
    } else {
        error(500, "database error")
    }
}

#[allow(clippy::needless_pass_by_value)] // shaped for `map_err`
fn db_unavailable(reason: String) -> Response {
    eprintln!("database unavailable: {reason}");
    error(503, "database unavailable")
}

fn redis_failure(e: &redis::RedisError) -> Response {
    eprintln!("redis error: {e}");
    error(503, "session store unavailable")
}

fn parse_json(req: &Request) -> Result<Value, Response> {
    serde_json::from_slice(&req.body).map_err(|_| error(400, "malformed JSON"))
}

async fn health(app: &App) -> Response {
    let config = &app.config;
    if config.version == DemoVersion::Broken {
        return Response::json(
            503,
            &json!({ "status": "unhealthy", "reason": "broken build", "version": config.version.name() }),
        );
    }
    let users = async {
        let client = app.db.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .map_err(|e| pg_reason(&e))?;
        row.try_get::<_, i64>(0).map_err(|e| pg_reason(&e))
    };
    let users = if let Ok(users) = tokio::time::timeout(HEALTH_TIMEOUT, users).await {
        users
    } else {
        app.db.reset().await;
        Err("timed out querying the database".into())
    };
    let redis_up = tokio::time::timeout(
        HEALTH_TIMEOUT,
        app.cache.query::<String>(&redis::cmd("PING")),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let mut body = json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "redis": if redis_up { "connected" } else { "disconnected" },
        "version": config.version.name(),
        "environment": config.environment,
    });
    match users {
        Ok(users) => {
            body["status"] = "healthy".into();
            body["database"] = "connected".into();
            body["users"] = users.into();
            Response::json(200, &body)
        }
        Err(reason) => {
            body["status"] = "unhealthy".into();
            body["database"] = "disconnected".into();
            body["error"] = reason.into();
            Response::json(503, &body)
        }
    }
}

async fn version(app: &App) -> Response {
    let schema = match app.db.client().await {
        Ok(client) => crate::migrations::current_version(&client)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    Response::json(
        200,
        &json!({
            "version": app.config.version.name(),
            "schema": schema,
            "migrations_known": app.config.version.known_migrations(),
        }),
    )
}

async fn login(app: &App, req: &Request) -> Reply {
    // Rate limit first: every attempt counts, whatever its credentials.
    let key = format!("ratelimit:login:{}", req.peer.ip());
    let attempts: i64 = app
        .cache
        .query(redis::cmd("INCR").arg(&key))
        .await
        .map_err(|e| redis_failure(&e))?;
    if attempts == 1 {
        app.cache
            .query::<()>(redis::cmd("EXPIRE").arg(&key).arg(RATE_WINDOW_SECONDS))
            .await
            .map_err(|e| redis_failure(&e))?;
    }
    if attempts > app.config.login_rate_limit {
        let mut ttl: i64 = app
            .cache
            .query(redis::cmd("TTL").arg(&key))
            .await
            .map_err(|e| redis_failure(&e))?;
        if ttl < 0 {
            // A counter without expiry (its EXPIRE was lost): give it one so it cannot lock forever.
            app.cache
                .query::<()>(redis::cmd("EXPIRE").arg(&key).arg(RATE_WINDOW_SECONDS))
                .await
                .map_err(|e| redis_failure(&e))?;
            ttl = RATE_WINDOW_SECONDS;
        }
        return Err(error(429, "too many login attempts")
            .with_header("Retry-After", ttl.max(1).to_string()));
    }

    let body = parse_json(req)?;
    let (Some(email), Some(password)) = (body["email"].as_str(), body["password"].as_str()) else {
        return Err(error(400, "email and password are required"));
    };
    let client = app.db.client().await.map_err(db_unavailable)?;
    let row = client
        .query_opt(
            "SELECT id, password_sha256 FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .map_err(|e| db_failure(&e))?;
    let user_id = match row {
        Some(row) => {
            let id: i64 = row.try_get(0).map_err(|e| db_failure(&e))?;
            let stored: String = row.try_get(1).map_err(|e| db_failure(&e))?;
            constant_time_eq(stored.as_bytes(), password_sha256(password).as_bytes()).then_some(id)
        }
        None => None,
    };
    let Some(user_id) = user_id else {
        return Err(error(401, "invalid credentials"));
    };

    let token = hex(&rand::random::<[u8; 32]>());
    app.cache
        .query::<()>(
            redis::cmd("SET")
                .arg(format!("session:{token}"))
                .arg(user_id)
                .arg("EX")
                .arg(SESSION_SECONDS),
        )
        .await
        .map_err(|e| redis_failure(&e))?;
    Ok(Response::json(
        200,
        &json!({ "token": token, "expires_in": SESSION_SECONDS }),
    ))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user id of the request's `Authorization: Bearer <token>` session.
async fn authenticate(app: &App, req: &Request) -> Result<i64, Response> {
    let unauthorized = || error(401, "unauthorized");
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(unauthorized)?;
    let user: Option<String> = app
        .cache
        .query(redis::cmd("GET").arg(format!("session:{token}")))
        .await
        .map_err(|e| redis_failure(&e))?;
    user.and_then(|id| id.parse().ok()).ok_or_else(unauthorized)
}

/// The columns of a business, with `plan` from v2 on.
fn business_columns(version: DemoVersion) -> &'static str {
    if version.has_plan() {
        "id, name, owner_id, created_at, plan"
    } else {
        "id, name, owner_id, created_at"
    }
}

fn business_json(row: &tokio_postgres::Row) -> Result<Value, Response> {
    let get_err = |e: tokio_postgres::Error| db_failure(&e);
    let created_at: Option<chrono::DateTime<chrono::Utc>> =
        row.try_get("created_at").map_err(get_err)?;
    let mut business = json!({
        "id": row.try_get::<_, i64>("id").map_err(get_err)?,
        "name": row.try_get::<_, String>("name").map_err(get_err)?,
        "owner_id": row.try_get::<_, Option<i64>>("owner_id").map_err(get_err)?,
        "created_at": created_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    });
    if row.columns().iter().any(|c| c.name() == "plan") {
        business["plan"] = row.try_get::<_, String>("plan").map_err(get_err)?.into();
    }
    Ok(business)
}

async fn create_business(app: &App, req: &Request) -> Reply {
    let owner_id = authenticate(app, req).await?;
    let body = parse_json(req)?;
    let name = body["name"].as_str().map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(error(
            422,
            "name must be a non-empty string of at most 200 characters",
        ));
    }
    let client = app.db.client().await.map_err(db_unavailable)?;
    let sql = format!(
        "INSERT INTO businesses (owner_id, name) VALUES ($1, $2) RETURNING {}",
        business_columns(app.config.version)
    );
    let row = client
        .query_one(&sql, &[&owner_id, &name])
        .await
        .map_err(|e| db_failure(&e))?;
    Ok(Response::json(201, &business_json(&row)?))
}

async fn list_businesses(app: &App, req: &Request) -> Reply {
    let owner_id = authenticate(app, req).await?;
    let client = app.db.client().await.map_err(db_unavailable)?;
    let sql = format!(
        "SELECT {} FROM businesses WHERE owner_id = $1 ORDER BY id",
        business_columns(app.config.version)
    );
    let rows = client
        .query(&sql, &[&owner_id])
        .await
        .map_err(|e| db_failure(&e))?;
    let businesses = rows
        .iter()
        .map(business_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({ "businesses": businesses })))
}

async fn get_business(app: &App, req: &Request, id: &str) -> Reply {
    let owner_id = authenticate(app, req).await?;
    let not_found = || error(404, "not found");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let client = app.db.client().await.map_err(db_unavailable)?;
    let sql = format!(
        "SELECT {} FROM businesses WHERE id = $1 AND owner_id = $2",
        business_columns(app.config.version)
    );
    let row = client
        .query_opt(&sql, &[&id, &owner_id])
        .await
        .map_err(|e| db_failure(&e))?
        .ok_or_else(not_found)?;
    Ok(Response::json(200, &business_json(&row)?))
}

/// Delete one of the caller's businesses: how a smoke test removes the one it created.
async fn delete_business(app: &App, req: &Request, id: &str) -> Reply {
    let owner_id = authenticate(app, req).await?;
    let not_found = || error(404, "not found");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let client = app.db.client().await.map_err(db_unavailable)?;
    let deleted = client
        .execute(
            "DELETE FROM businesses WHERE id = $1 AND owner_id = $2",
            &[&id, &owner_id],
        )
        .await
        .map_err(|e| db_failure(&e))?;
    if deleted == 0 {
        return Err(not_found());
    }
    Ok(Response::json(200, &json!({ "deleted": id })))
}

/// Whether `header` is `sha256=<hex HMAC-SHA256 of body under secret>`, compared in constant
/// time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(signature) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(unhex)
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

async fn payment_webhook(app: &App, req: &Request) -> Reply {
    if !verify_signature(
        app.config.webhook_secret.as_bytes(),
        &req.body,
        req.header("x-signature"),
    ) {
        return Err(error(401, "invalid signature"));
    }
    let payload = parse_json(req)?;
    let event_id = match &payload["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let amount_cents = payload["amount_cents"].as_i64();
    let client = app.db.client().await.map_err(db_unavailable)?;
    client
        .execute(
            "INSERT INTO payments (event_id, amount_cents, payload) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
            &[&event_id, &amount_cents, &payload],
        )
        .await
        .map_err(|e| db_failure(&e))?;
    Ok(Response::json(200, &json!({ "received": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length works");
        mac.update(body);
        format!("sha256={}", hex(&mac.finalize().into_bytes()))
    }

    #[test]
    fn signature_check() {
        let body = br#"{"id":"evt_1","amount_cents":500}"#;
        let good = sign(b"demo-webhook-secret", body);
        assert!(verify_signature(b"demo-webhook-secret", body, Some(&good)));
        assert!(verify_signature(
            b"demo-webhook-secret",
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!verify_signature(b"other-secret", body, Some(&good)));
        assert!(!verify_signature(
            b"demo-webhook-secret",
            b"{}",
            Some(&good)
        ));
        assert!(!verify_signature(b"demo-webhook-secret", body, None));
        assert!(!verify_signature(
            b"demo-webhook-secret",
            body,
            Some("sha256=zz")
        ));
        assert!(!verify_signature(
            b"demo-webhook-secret",
            body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!verify_signature(
            b"demo-webhook-secret",
            body,
            Some(&good[..good.len() - 2])
        ));
    }

    #[test]
    fn known_test_vector() {
        // RFC 4231 test case 2.
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(verify_signature(
            b"Jefe",
            b"what do ya want for nothing?",
            Some(expected)
        ));
    }

    #[test]
    fn routes() {
        assert!(matches!(Route::parse("/api/health"), Some(Route::Health)));
        assert!(matches!(
            Route::parse("/api/businesses/42"),
            Some(Route::Business("42"))
        ));
        assert!(Route::parse("/api/businesses/").is_none());
        assert!(Route::parse("/api/businesses/1/x").is_none());
        assert!(Route::parse("/nope").is_none());
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
