//! `lifeboat::docker` against the real Docker engine, with containers of the locally built images.

use std::time::Duration;

use lifeboat::docker::{Docker, DockerError, Health};
use lifeboat_testkit::TestContainer;

const REDIS_IMAGE: &str = "lifeboat-test/redis:7";

async fn docker() -> Docker {
    Docker::connect(None)
        .await
        .expect("the Docker engine answers")
}

/// A redis container labelled as service `cache` of a fresh compose project.
fn compose_redis() -> (TestContainer, String) {
    let project = lifeboat_testkit::unique("lbtest");
    let c = TestContainer::run(
        "lbtest-cache-",
        &[
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            "com.docker.compose.service=cache",
            REDIS_IMAGE,
        ],
    );
    (c, project)
}

#[tokio::test]
async fn an_unreachable_engine_says_how_to_start_one() {
    let err = Docker::connect(Some("unix:///nonexistent/docker.sock"))
        .await
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("unix:///nonexistent/docker.sock"), "{err}");
    assert!(err.contains("systemctl start docker"), "{err}");
}

#[tokio::test]
async fn compose_containers_are_found_by_their_labels() {
    let docker = docker().await;
    let (c, project) = compose_redis();
    let found = docker
        .compose_containers(&project, None, false)
        .await
        .expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, c.name);
    assert_eq!(found[0].service.as_deref(), Some("cache"));
    let one = docker
        .service_container(&project, "cache")
        .await
        .expect("service");
    assert_eq!(one.name, c.name);
    let err = docker
        .service_container(&project, "postgres")
        .await
        .expect_err("no such service")
        .to_string();
    assert!(
        err.contains("service `postgres`") && err.contains(&project),
        "{err}"
    );
}

#[tokio::test]
async fn exec_streams_stdout_and_checks_the_exit_code() {
    let docker = docker().await;
    let (c, _) = compose_redis();
    docker
        .wait_healthy(&c.name, Duration::from_secs(30))
        .await
        .expect("healthy");

    let mut out = Vec::new();
    let res = docker
        .exec(
            &c.name,
            &["sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"],
            &[],
            &mut out,
        )
        .await
        .expect("exec");
    assert_eq!(res.stdout_bytes, 3_000_000);
    assert_eq!(out.len(), 3_000_000);
    assert_eq!(res.stderr.trim(), "done");

    let env = vec!["GREETING=hello".to_owned()];
    let mut out = Vec::new();
    docker
        .exec(&c.name, &["sh", "-c", "echo $GREETING"], &env, &mut out)
        .await
        .expect("exec with env");
    assert_eq!(String::from_utf8_lossy(&out).trim(), "hello");

    let err = docker
        .exec(
            &c.name,
            &[
                "sh",
                "-c",
                "echo partial; echo 'pg_dump: error: oops' >&2; exit 3",
            ],
            &[],
            &mut Vec::new(),
        )
        .await
        .expect_err("exit 3 is a failure");
    match &err {
        DockerError::ExecFailed { code, stderr, .. } => {
            assert_eq!(*code, 3);
            assert!(stderr.contains("oops"));
        }
        other => panic!("expected ExecFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("exited with code 3"), "{err}");
}

/// An input that gives `good` bytes, then fails, as a corrupt archive does mid-restore.
struct FailsAfter {
    good: usize,
}

impl tokio::io::AsyncRead for FailsAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.good == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("corrupt deflate stream")));
        }
        let n = self.good.min(buf.remaining());
        buf.put_slice(&vec![b'x'; n]);
        self.good -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn exec_with_input_streams_stdin_and_stops_when_the_command_does() {
    use tokio::io::AsyncReadExt;
    let docker = docker().await;
    let (c, _) = compose_redis();
    docker
        .wait_healthy(&c.name, Duration::from_secs(30))
        .await
        .expect("healthy");

    // More than any pipe or socket buffer, so it must really stream; stdin is closed at the end.
    let size: u64 = 20_000_000;
    let mut input = tokio::io::repeat(b'a').take(size);
    let mut out = Vec::new();
    let res = docker
        .exec_with_input(&c.name, &["sh", "-c", "wc -c"], &[], &mut input, &mut out)
        .await
        .expect("exec with input");
    assert_eq!(String::from_utf8_lossy(&out).trim(), size.to_string());
    assert_eq!(res.stdin_bytes, size);

    // A command that stops reading early ends the feeding; the call does not hang.
    let mut input = tokio::io::repeat(b'a').take(size);
    let mut out = Vec::new();
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        docker.exec_with_input(&c.name, &["head", "-c", "10"], &[], &mut input, &mut out),
    )
    .await
    .expect("returns once the command exited")
    .expect("head exits 0");
    assert_eq!(out, b"aaaaaaaaaa");
    assert!(res.stdin_bytes < size, "{}", res.stdin_bytes);

    // A command that fails while reading is ExecFailed, with its stderr.
    let mut input = tokio::io::repeat(b'a').take(size);
    let err = docker
        .exec_with_input(
            &c.name,
            &[
                "sh",
                "-c",
                "head -c 1 >/dev/null; echo 'ERROR: syntax' >&2; exit 3",
            ],
            &[],
            &mut input,
            &mut Vec::new(),
        )
        .await
        .expect_err("exit 3 is a failure");
    assert!(
        matches!(&err, DockerError::ExecFailed { code: 3, stderr, .. } if stderr.contains("ERROR: syntax")),
        "{err:?}"
    );

    // An input that fails is the input's error, at once, even though the command still waits.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        docker.exec_with_input(
            &c.name,
            &["sh", "-c", "cat >/dev/null"],
            &[],
            &mut FailsAfter { good: 100_000 },
            &mut Vec::new(),
        ),
    )
    .await
    .expect("returns at the input's error")
    .expect_err("the input failed");
    assert!(
        matches!(&err, DockerError::Input { .. }) && err.to_string().contains("corrupt deflate"),
        "{err:?}"
    );
}

#[tokio::test]
async fn stop_start_and_wait_until_healthy() {
    let docker = docker().await;
    let (c, _) = compose_redis();
    docker
        .wait_healthy(&c.name, Duration::from_secs(30))
        .await
        .expect("healthy");
    // Ready as soon as the HEALTHCHECK's command passes; Docker's own verdict follows at its
    // next probe.
    assert_eq!(docker.ready(&c.name).await.expect("ready"), Health::Healthy);
    let mut docker_says = docker.health(&c.name).await.expect("health");
    for _ in 0..100 {
        if docker_says == Health::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        docker_says = docker.health(&c.name).await.expect("health");
    }
    assert_eq!(docker_says, Health::Healthy);
    docker
        .stop(&c.name, Duration::from_secs(5))
        .await
        .expect("stop");
    assert_eq!(
        docker.health(&c.name).await.expect("health"),
        Health::NotRunning
    );
    docker
        .stop(&c.name, Duration::from_secs(5))
        .await
        .expect("stopping a stopped container is fine");
    docker.start(&c.name).await.expect("start");
    docker
        .wait_healthy(&c.name, Duration::from_secs(30))
        .await
        .expect("healthy again");
}

#[tokio::test]
async fn a_container_that_never_becomes_healthy_fails_at_the_deadline() {
    let docker = docker().await;
    let c = TestContainer::run(
        "lbtest-sick-",
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            REDIS_IMAGE,
        ],
    );
    let err = docker
        .wait_healthy(&c.name, Duration::from_secs(4))
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            DockerError::NotHealthy {
                status: Health::Unhealthy | Health::Starting,
                ..
            }
        ),
        "{err:?}"
    );
    let err = docker
        .health("lbtest-no-such-container")
        .await
        .expect_err("must fail");
    assert!(matches!(err, DockerError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn an_image_is_built_from_a_context_without_pulling() {
    let docker = docker().await;
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM lifeboat-test/base:bookworm\nCOPY hello.txt /hello.txt\n",
    )
    .expect("write");
    let marker = lifeboat_testkit::unique("hello ");
    std::fs::write(ctx.path().join("hello.txt"), &marker).expect("write");
    let tag = format!("{}:t", lifeboat_testkit::unique("lbtest-build-"));
    let id = docker.build_image(ctx.path(), &tag).await.expect("build");
    assert!(!id.is_empty());
    let content = lifeboat_testkit::docker_ok(&["run", "--rm", &tag, "cat", "/hello.txt"]);
    lifeboat_testkit::docker_ok(&["rmi", "-f", &tag]);
    assert_eq!(content, marker);

    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM lifeboat-test/base:bookworm\nCOPY missing.txt /\n",
    )
    .expect("write");
    let err = docker
        .build_image(ctx.path(), &tag)
        .await
        .expect_err("must fail")
        .to_string();
    assert!(err.contains(&tag) && err.contains("missing.txt"), "{err}");
}
