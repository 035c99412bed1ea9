//! `lifeboat::redis` against the real Redis started by scripts/test.

use std::time::Duration;

use lifeboat::redis::{Redis, RedisError};
use lifeboat::secret::SecretUrl;

#[tokio::test]
async fn ping_answers_with_a_latency() {
    let redis = Redis::new(&SecretUrl::new(lifeboat_testkit::redis_url())).expect("url");
    let latency = redis.ping(Duration::from_secs(2)).await.expect("ping");
    assert!(latency < Duration::from_secs(2));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let redis = Redis::new(&SecretUrl::new(format!(
        "redis://:pw-hidden@127.0.0.1:{port}"
    )))
    .expect("url");
    let err = redis
        .ping(Duration::from_secs(2))
        .await
        .expect_err("must fail");
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw-hidden"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let redis = Redis::new(&SecretUrl::new(format!("redis://127.0.0.1:{port}"))).expect("url");
    let err = redis
        .ping(Duration::from_millis(500))
        .await
        .expect_err("must time out");
    assert!(matches!(err, RedisError::Timeout { .. }), "{err:?}");
    drop(listener);
}
