//! `lifeboat::db` against the real PostgreSQL started by scripts/test.

use lifeboat::db::{self, DbTarget, SslMode};
use lifeboat::secret::SecretUrl;

fn url_with(query: &str) -> SecretUrl {
    SecretUrl::new(format!("{}?{query}", lifeboat_testkit::database_url()))
}

async fn uses_ssl(target: &DbTarget) -> bool {
    let client = target.connect().await.expect("connect");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query")
        .get(0)
}

#[tokio::test]
async fn sslmode_require_encrypts_and_disable_does_not() {
    let require = DbTarget::from_url(&url_with("sslmode=require")).expect("url");
    assert_eq!(require.ssl_mode(), SslMode::Require);
    assert!(uses_ssl(&require).await, "sslmode=require must use TLS");
    let disable = DbTarget::from_url(&url_with("sslmode=disable")).expect("url");
    assert!(
        !uses_ssl(&disable).await,
        "sslmode=disable must not use TLS"
    );
    let prefer =
        DbTarget::from_url(&SecretUrl::new(lifeboat_testkit::database_url())).expect("url");
    assert!(
        uses_ssl(&prefer).await,
        "the default (prefer) uses TLS when the server offers it"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_no_trusted_ca_signed() {
    // As libpq: no root certificate anywhere is refused before connecting.
    let err = DbTarget::from_url(&url_with("sslmode=verify-full"))
        .expect_err("no root certificate")
        .to_string();
    assert!(
        err.contains("root.crt") && err.contains("sslrootcert=system"),
        "{err}"
    );
    let target =
        DbTarget::from_url(&url_with("sslmode=verify-full&sslrootcert=system")).expect("url");
    let err = target
        .connect()
        .await
        .expect_err("a self-signed server certificate must be refused")
        .to_string();
    assert!(err.contains("cannot connect to postgres://"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "refused for its certificate: {err}"
    );
}

#[tokio::test]
async fn server_version_is_read() {
    let target =
        DbTarget::from_url(&SecretUrl::new(lifeboat_testkit::database_url())).expect("url");
    let client = target.connect().await.expect("connect");
    let version = db::server_version(&client, &target).await.expect("version");
    assert!(version.starts_with("15."), "{version}");
}

#[tokio::test]
async fn a_wrong_password_fails_without_showing_it() {
    let url = lifeboat_testkit::database_url();
    let (head, rest) = url.split_once('@').expect("url has credentials");
    let user = head.rsplit_once(':').expect("user:password").0;
    let wrong = SecretUrl::new(format!("{user}:not-the-password-xyzzy@{rest}"));
    let err = DbTarget::from_url(&wrong)
        .expect("url")
        .connect()
        .await
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("xyzzy"), "{err}");
}

#[tokio::test]
async fn a_container_s_credentials_come_from_its_postgres_environment() {
    let docker = lifeboat::docker::Docker::connect(None)
        .await
        .expect("docker");
    let container = lifeboat_testkit::stack_var("LBTEST_POSTGRES_CONTAINER");
    let creds = db::container_credentials(&docker, &container)
        .await
        .expect("credentials");
    assert_eq!(creds.user, "lifeboat");
    assert_eq!(creds.database, "lifeboat");
    let password = creds.password.clone().expect("POSTGRES_PASSWORD is set");
    assert!(lifeboat_testkit::database_url().contains(password.expose()));
    // Those credentials work, from inside the container (no password on the command line) ...
    let out = docker
        .exec_output(
            &container,
            &["psql", "-h", "127.0.0.1", "-tAc", "SELECT current_user"],
        )
        .await;
    assert!(
        out.is_err(),
        "without PGPASSWORD in its environment psql over TCP must be refused"
    );
    let mut buf = Vec::new();
    docker
        .exec(
            &container,
            &["psql", "-h", "127.0.0.1", "-tAc", "SELECT current_user"],
            &creds.client_env(),
            &mut buf,
        )
        .await
        .expect("psql with the discovered credentials");
    assert_eq!(String::from_utf8_lossy(&buf).trim(), "lifeboat");
    // ... and from outside, on the published port.
    let port: u16 = lifeboat_testkit::database_url()
        .rsplit_once(':')
        .and_then(|(_, p)| p.split('/').next()?.parse().ok())
        .expect("port");
    let target = DbTarget::from_parts("127.0.0.1", port, &creds.user, &password, &creds.database);
    assert!(!target.to_string().contains(password.expose()));
    target
        .connect()
        .await
        .expect("connect with discovered credentials");
}
