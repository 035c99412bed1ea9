//! `lifeboat::s3` against the real S3 server (moto) started by scripts/test.

use lifeboat::config::S3Settings;
use lifeboat::s3::Bucket;
use lifeboat::secret::Secret;

fn settings() -> S3Settings {
    let s3 = lifeboat_testkit::s3();
    S3Settings {
        endpoint: Some(s3.endpoint),
        region: "us-east-1".into(),
        access_key_id: s3.access_key_id,
        secret_access_key: Secret::new(s3.secret_access_key),
        bucket: s3.bucket,
        prefix: lifeboat_testkit::unique("lifeboat-test/"),
        path_style: true,
    }
}

#[tokio::test]
async fn objects_are_put_listed_read_and_deleted_under_the_prefix() {
    let bucket = Bucket::new(&settings());
    bucket.check().await.expect("bucket exists");
    bucket
        .put("backups/a.sql.gz", b"first".to_vec())
        .await
        .expect("put a");
    bucket
        .put("backups/b.sql.gz", vec![7u8; 100_000])
        .await
        .expect("put b");
    bucket.put("other/c", b"x".to_vec()).await.expect("put c");
    let mut listed = bucket.list("backups/").await.expect("list");
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<(&str, u64)> = listed.iter().map(|o| (o.name.as_str(), o.size)).collect();
    assert_eq!(
        names,
        [("backups/a.sql.gz", 5), ("backups/b.sql.gz", 100_000)]
    );
    assert!(listed[0].modified.is_some());
    assert_eq!(
        bucket.get("backups/a.sql.gz", 1024).await.expect("get"),
        b"first"
    );
    for name in ["backups/a.sql.gz", "backups/b.sql.gz", "other/c"] {
        bucket.delete(name).await.expect("delete");
    }
    assert!(bucket.list("").await.expect("list").is_empty());
}

#[tokio::test]
async fn a_missing_object_or_bucket_is_an_error_naming_it() {
    let bucket = Bucket::new(&settings());
    let err = bucket
        .get("nope", 1024)
        .await
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("s3://lifeboat-test/lifeboat-test/") && err.contains("nope"),
        "{err}"
    );
    let mut other = settings();
    other.bucket = "no-such-bucket".into();
    let err = Bucket::new(&other)
        .check()
        .await
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("no-such-bucket"), "{err}");
}

#[tokio::test]
async fn errors_never_show_the_secret_key() {
    let s = settings();
    let secret = s.secret_access_key.expose().to_owned();
    // Errors the server answers (a missing object, a missing bucket) ...
    let bucket = Bucket::new(&s);
    let missing = bucket.get("nope", 1024).await.expect_err("no such object");
    let mut other = settings();
    other.bucket = "no-such-bucket".into();
    let no_bucket = Bucket::new(&other)
        .check()
        .await
        .expect_err("no such bucket");
    // ... and one it cannot (nothing listens on port 1).
    let mut down = settings();
    down.endpoint = Some("http://127.0.0.1:1".into());
    let unreachable = Bucket::new(&down)
        .put("x", b"y".to_vec())
        .await
        .expect_err("nothing listens on port 1");
    for err in [missing, no_bucket, unreachable] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&secret), "{text}");
    }
    assert!(
        !format!("{s:?}").contains(&secret),
        "settings print *** for the secret"
    );
}

#[tokio::test]
async fn a_file_of_several_parts_arrives_whole_and_no_upload_is_left_pending() {
    let bucket = Bucket::new(&settings());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.sql.gz");
    // 12 MiB and a bit, of varied bytes: three parts of 5 MiB (S3's smallest).
    let body: Vec<u8> = (0..12 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, &body).expect("write");
    let sent = bucket
        .upload_file("backups/big.sql.gz", &path, 5 * 1024 * 1024)
        .await
        .expect("upload");
    assert_eq!(sent, body.len() as u64);
    let back = bucket
        .get("backups/big.sql.gz", 64 << 20)
        .await
        .expect("get");
    assert!(back == body, "the same bytes, in order");
    let pending = bucket
        .client()
        .list_multipart_uploads()
        .bucket(bucket.bucket())
        .prefix(bucket.key("backups/"))
        .send()
        .await
        .expect("list uploads");
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    // A file that is not there: the upload fails; nothing is left behind, no pending upload.
    let err = bucket
        .upload_file(
            "backups/missing.sql.gz",
            &dir.path().join("missing"),
            5 << 20,
        )
        .await
        .expect_err("no such file");
    assert!(err.to_string().contains("missing.sql.gz"), "{err}");
    let listed = bucket.list("backups/").await.expect("list");
    assert!(
        listed.iter().all(|o| o.name != "backups/missing.sql.gz"),
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_part_that_never_uploads_aborts_the_whole_upload_and_leaves_nothing() {
    let direct = settings();
    // The storage refuses the second part, every time.
    let proxy = lifeboat_testkit::FaultyProxy::start(
        direct.endpoint.as_deref().expect("endpoint"),
        |head| {
            if head.contains("partNumber=2") {
                lifeboat_testkit::Fault::Fail(500)
            } else {
                lifeboat_testkit::Fault::Forward
            }
        },
    );
    let mut through = direct.clone();
    through.endpoint = Some(proxy.url());
    let bucket = Bucket::new(&through);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.sql.gz");
    std::fs::write(&path, vec![42u8; 11 * 1024 * 1024]).expect("write");
    let err = bucket
        .upload_file("backups/big.sql.gz", &path, 5 * 1024 * 1024)
        .await
        .expect_err("part 2 never uploads")
        .to_string();
    assert!(err.contains("tries"), "{err}");
    // Straight to the storage: no object, and no upload left pending with its parts.
    let plain = Bucket::new(&direct);
    assert!(
        plain.get("backups/big.sql.gz", 1024).await.is_err(),
        "no object"
    );
    let pending = plain
        .client()
        .list_multipart_uploads()
        .bucket(plain.bucket())
        .prefix(plain.key("backups/"))
        .send()
        .await
        .expect("list uploads");
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
}
