//! The demo compose stack, for real: postgres, redis, app and worker from the locally built
//! images, found by lifeboat's docker module through compose's labels, healthy, migrated,
//! seeded, serving; 503 while its database is down and healthy again when it is back.

use std::time::Duration;

use lifeboat::docker::{Docker, Health};
use lifeboat_testkit::{docker_ok, http, http_get, wait_for, DemoStack};

fn app_address(stack: &DemoStack) -> String {
    format!("127.0.0.1:{}", stack.published("app", "3000"))
}

fn health(address: &str) -> Option<(u16, serde_json::Value)> {
    let (status, body) = http_get(address, "/api/health").ok()?;
    Some((status, serde_json::from_str(&body).ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_stack_comes_up_healthy_and_reports_its_database() {
    let stack = DemoStack::build("v1")
        .prefix("lbtest-stack-")
        .unmigrated()
        .up();
    let project = &stack.project;
    let docker = Docker::connect(None).await.expect("docker");

    // Compose's labels find every service.
    let containers = docker
        .compose_containers(&project.name, None, false)
        .await
        .expect("list");
    let mut services: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.service.as_deref())
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["app", "postgres", "redis", "worker"]);

    // The app has no schema yet: migrate and seed as one-off containers, as a deploy would.
    let migrated = stack.migrate();
    assert!(migrated.contains("applied migration 3"), "{migrated}");
    stack.seed();

    let app = docker
        .service_container(&project.name, "app")
        .await
        .expect("app container");
    docker
        .wait_healthy(&app.id, Duration::from_mins(1))
        .await
        .expect("app healthy");
    let address = app_address(&stack);
    let (status, body) = wait_for("GET /api/health = 200", Duration::from_secs(20), || {
        health(&address).filter(|(s, _)| *s == 200)
    });
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["database"], "connected");
    assert_eq!(body["version"], "v1");
    assert!(body["users"].as_i64().is_some_and(|n| n >= 1), "{body}");

    the_api_works_like_the_seeds_app(&address);

    // The database goes away: the app says 503 and Docker marks it unhealthy.
    let postgres = docker
        .service_container(&project.name, "postgres")
        .await
        .expect("postgres");
    docker
        .stop(&postgres.id, Duration::from_secs(5))
        .await
        .expect("stop postgres");
    let (status, body) = wait_for("GET /api/health = 503", Duration::from_secs(20), || {
        health(&address).filter(|(s, _)| *s == 503)
    });
    assert_eq!(status, 503);
    assert_eq!(body["database"], "disconnected");
    wait_for(
        "Docker marks the app unhealthy",
        Duration::from_secs(30),
        || {
            let h = futures_block(docker.health(&app.id));
            (h == Health::Unhealthy).then_some(())
        },
    );

    // It comes back by itself when the database does.
    docker.start(&postgres.id).await.expect("start postgres");
    docker
        .wait_healthy(&postgres.id, Duration::from_mins(1))
        .await
        .expect("postgres healthy");
    docker
        .wait_healthy(&app.id, Duration::from_mins(1))
        .await
        .expect("app healthy again");
    let (status, _) = health(&address).expect("health answers");
    assert_eq!(status, 200);
}

/// Block on a future from inside the multi-thread runtime (for `wait_for`'s sync closure).
fn futures_block<T>(
    f: impl std::future::Future<Output = Result<T, lifeboat::docker::DockerError>>,
) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
        .expect("docker call")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_image_adds_a_migration_and_broken_never_becomes_healthy() {
    let stack = DemoStack::build("v1")
        .prefix("lbtest-images-")
        .services(&["postgres", "redis"])
        .unmigrated()
        .up();
    let project = &stack.project;
    let docker = Docker::connect(None).await.expect("docker");
    let postgres = docker
        .service_container(&project.name, "postgres")
        .await
        .expect("postgres");
    docker
        .wait_healthy(&postgres.id, Duration::from_mins(1))
        .await
        .expect("postgres healthy");

    let network = format!("{}_demo", project.name);
    let db_env = "DATABASE_URL=postgres://demo:demo-password@postgres:5432/demo";
    let migrate = |image: &str| {
        docker_ok(&[
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            db_env,
            image,
            "lifeboat-demo-app",
            "migrate",
        ])
    };
    assert!(migrate("lifeboat-demo/app:v1").contains("applied migration 3"));
    let v2 = migrate("lifeboat-demo/app:v2");
    assert!(v2.contains("applied migration 4"), "{v2}");

    let name = lifeboat_testkit::unique("lbtest-broken-");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &network,
        "-e",
        db_env,
        "-e",
        "REDIS_URL=redis://redis:6379",
        "lifeboat-demo/app:broken",
    ]);
    let _cleanup = lifeboat_testkit::TestContainer { name: name.clone() };
    let err = docker
        .wait_healthy(&name, Duration::from_secs(8))
        .await
        .expect_err("broken must never be healthy");
    assert!(err.to_string().contains("did not become healthy"), "{err}");
    let out = lifeboat_testkit::docker(&["exec", &name, "lifeboat-demo-app", "probe"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the broken build's own probe fails"
    );
}

/// Login, authenticated create and read, the signed webhook and the login rate limit (Redis).
fn the_api_works_like_the_seeds_app(address: &str) {
    use hmac::{Hmac, Mac};
    let json = [("Content-Type", "application/json")];
    let login = http(
        address,
        "POST",
        "/api/auth/login",
        &json,
        r#"{"email":"admin@demo.test","password":"demo-password"}"#,
    )
    .expect("login");
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["token"].as_str().expect("a token").to_owned();
    let bearer = format!("Bearer {token}");
    let auth = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];

    let created = http(
        address,
        "POST",
        "/api/businesses",
        &auth,
        r#"{"name":"Panadería Lucía"}"#,
    )
    .expect("create");
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_i64().expect("an id");
    let read = http(address, "GET", &format!("/api/businesses/{id}"), &auth, "").expect("read");
    assert_eq!(
        (read.status, read.json()["name"].as_str()),
        (200, Some("Panadería Lucía"))
    );
    let anonymous =
        http(address, "POST", "/api/businesses", &json, r#"{"name":"x"}"#).expect("anonymous");
    assert_eq!(anonymous.status, 401);

    let payload = r#"{"id":"evt_1","amount_cents":1999}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"demo-webhook-secret").expect("key");
    mac.update(payload.as_bytes());
    let signed = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::from("sha256="), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let good = http(
        address,
        "POST",
        "/api/webhooks/payment",
        &[("X-Signature", signed.as_str())],
        payload,
    )
    .expect("webhook");
    assert_eq!(good.status, 200, "{}", good.body);
    let forged = http(
        address,
        "POST",
        "/api/webhooks/payment",
        &[("X-Signature", "sha256=00")],
        payload,
    )
    .expect("webhook");
    assert_eq!(forged.status, 401);

    let limited = (0..10)
        .map(|_| {
            http(
                address,
                "POST",
                "/api/auth/login",
                &json,
                r#"{"email":"admin@demo.test","password":"wrong"}"#,
            )
            .expect("login")
        })
        .find(|r| r.status != 401)
        .expect("the rate limit answers before the 10th attempt");
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry: u64 = limited
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}
