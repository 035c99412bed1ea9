//! lifeboat-backup telling people, against real services: the ping URL (a real HTTP server on
//! loopback that records what it receives), the weekly digest through the real SMTP server, and
//! the summary on a real pseudo-terminal (util-linux `script`). A ping or a mail never changes
//! the exit code, and stdout carries only the new backup's path whatever the terminal.

use std::path::Path;

use lifeboat_testkit::{http_response, stack_var, unique, HttpFixture, Reply};

mod support;
use support::{archive_of as archive, backup, file_name};

/// The token of the ping URL: it must never appear on stderr.
const TOKEN: &str = "0f1e2d3c-secret-token";

/// Create a database with a small table on the test server; returns its name.
async fn database() -> String {
    support::create_database(
        "lbtest_",
        "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL);
         INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 100) g;",
    )
    .await
}

/// A request's body: what follows the blank line.
fn body(request: &str) -> &str {
    request.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn a_good_run_pings_start_then_success_and_never_shows_the_token() {
    let db = database().await;
    let work = tempfile::tempdir().expect("tempdir");
    let monitor = HttpFixture::start(Reply::Raw(http_response("200 OK", "", "OK")));
    let url = monitor.url(&format!("/ping/{TOKEN}"));
    let container = stack_var("LBTEST_POSTGRES_CONTAINER");
    let out = backup(
        work.path(),
        &["-vv", "--database", &db],
        &[
            ("LIFEBOAT_DB_CONTAINER", &container),
            ("LIFEBOAT_BACKUP_PING_URL", &url),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let name = file_name(&archive(work.path(), &out));

    let requests = monitor.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests[0].starts_with(&format!("GET /ping/{TOKEN}/start HTTP/1.1\r\n")),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].starts_with(&format!("POST /ping/{TOKEN} HTTP/1.1\r\n")),
        "{}",
        requests[1]
    );
    let success = body(&requests[1]);
    assert!(
        success.contains(&name) && success.contains(&db),
        "the success ping names the backup: {success}"
    );
    let agent = format!(
        "user-agent: lifeboat/{}",
        env!("CARGO_PKG_VERSION").to_ascii_lowercase()
    );
    assert!(
        requests
            .iter()
            .all(|r| r.to_ascii_lowercase().contains(&agent)),
        "{requests:#?}"
    );
    // Even at trace level the token stays out of the logs.
    assert!(
        stderr.contains(&format!("127.0.0.1:{}/***", monitor.port)),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

#[test]
fn a_failed_run_pings_fail_with_the_reason_and_exits_1() {
    let work = tempfile::tempdir().expect("tempdir");
    let monitor = HttpFixture::start(Reply::Raw(http_response("200 OK", "", "OK")));
    let url = monitor.url(&format!("/ping/{TOKEN}"));
    let missing = unique("lbtest-no-such-container-");
    let out = backup(
        work.path(),
        &[],
        &[
            ("LIFEBOAT_DB_CONTAINER", &missing),
            ("LIFEBOAT_BACKUP_PING_URL", &url),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no path on stdout after a failure");

    let requests = monitor.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests[0].starts_with(&format!("GET /ping/{TOKEN}/start ")),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].starts_with(&format!("POST /ping/{TOKEN}/fail ")),
        "{}",
        requests[1]
    );
    assert!(
        body(&requests[1]).contains(&missing),
        "the failure ping carries the reason: {}",
        requests[1]
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

#[tokio::test]
async fn a_ping_server_that_is_down_or_refuses_warns_but_the_backup_exits_0() {
    let db = database().await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = stack_var("LBTEST_POSTGRES_CONTAINER");

    // Nothing listens: every ping is tried 3 times, then warned about.
    let refused = lifeboat_testkit::refused_port();
    let down = format!("http://127.0.0.1:{}/ping/{TOKEN}", refused.port);
    let out = backup(
        work.path(),
        &["--database", &db],
        &[
            ("LIFEBOAT_DB_CONTAINER", &container),
            ("LIFEBOAT_BACKUP_PING_URL", &down),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(archive(work.path(), &out).exists());
    for ping in ["start", "success"] {
        assert!(
            stderr.contains(&format!("WARN the {ping} ping to http://127.0.0.1:"))
                && stderr.contains("/*** failed (3 tries): "),
            "{stderr}"
        );
    }
    assert!(stderr.contains("exit code are its own"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");

    // A wrong token (404) stays wrong: warned about once per ping, never retried.
    let monitor = HttpFixture::start(Reply::Raw(http_response("404 Not Found", "", "not found")));
    let url = monitor.url(&format!("/ping/{TOKEN}"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = backup(
        work.path(),
        &["--database", &db],
        &[
            ("LIFEBOAT_DB_CONTAINER", &container),
            ("LIFEBOAT_BACKUP_PING_URL", &url),
        ],
    );
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(monitor.requests().len(), 2, "{:#?}", monitor.requests());
    assert!(
        stderr.contains("failed (1 try): answered 404 Not Found"),
        "{stderr}"
    );
}

/// The mails in the maildir that contain every one of `needles`, as [`readable`].
fn mails_with(maildir: &Path, needles: &[&str]) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(maildir.join(d)).ok())
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|m| readable(&m))
        .filter(|m| needles.iter().all(|n| m.contains(n)))
        .collect()
}

/// A mail as a person reads it: header lines unfolded (a long Subject is folded), and a
/// quoted-printable body (what lettre sends when a line is longer than 76) decoded.
fn readable(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return format!("{head}\n\n{body}");
    }
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'=' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    format!("{head}\n\n{}", String::from_utf8_lossy(&out))
}

/// The one mail that contains every one of `needles`, waiting up to 10 s for it.
fn the_mail_with(maildir: &Path, needles: &[&str]) -> String {
    lifeboat_testkit::wait_for(
        &format!("a mail with {needles:?}"),
        std::time::Duration::from_secs(10),
        || mails_with(maildir, needles).pop(),
    )
}

#[tokio::test]
async fn the_weekly_digest_goes_out_once_a_week_and_checks_every_archive() {
    let db = database().await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("backups");
    let smtp = lifeboat_testkit::smtp();
    let port = smtp.plain_port.to_string();
    let container = stack_var("LBTEST_POSTGRES_CONTAINER");
    let env = [
        ("LIFEBOAT_DB_CONTAINER", container.as_str()),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_FROM", "lifeboat@demo.test"),
        ("LIFEBOAT_MAIL_TO", "ops@demo.test"),
        ("LIFEBOAT_BACKUP_MAIL", "weekly"),
    ];
    let digests = || mails_with(&smtp.maildir, &["weekly digest", &db]).len();

    // The first success sends one: there is no digest on record.
    let out = backup(work.path(), &["--database", &db], &env);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let first = archive(work.path(), &out);
    let mail = the_mail_with(&smtp.maildir, &["weekly digest", &db]);
    assert!(
        mail.contains("Subject: lifeboat-backup weekly digest: 1 backup on "),
        "{mail}"
    );
    assert!(
        mail.contains(&file_name(&first)) && mail.contains("all verified"),
        "{mail}"
    );
    let state = dir.join(".lifeboat-digest");
    let recorded = std::fs::read_to_string(&state).expect("the digest's time is recorded");
    let when = chrono::DateTime::parse_from_rfc3339(recorded.trim()).expect("an RFC 3339 time");
    assert!((chrono::Utc::now() - when.with_timezone(&chrono::Utc)).num_minutes() < 5);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&state).expect("state").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The next night's run is a day early for the next digest: no mail. The SMTP server has
    // written a message before it accepts it, so when the run exits, a digest would be there.
    let out = backup(work.path(), &["--database", &db], &env);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(digests(), 1, "no second digest within the week");

    // A week later: a digest again, with every backup, and the archive that rotted on disk
    // (same size, one byte changed) named as not verified.
    let rfc3339 = (chrono::Utc::now() - chrono::Duration::days(8)).to_rfc3339();
    std::fs::write(&state, rfc3339).expect("date the last digest 8 days ago");
    let mut bytes = std::fs::read(&first).expect("first archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&first, bytes).expect("corrupt it");
    let out = backup(work.path(), &["--database", &db], &env);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(digests(), 2, "a digest after 8 days");
    let mail = the_mail_with(&smtp.maildir, &["FAILED verification", &db]);
    assert!(
        mail.contains("Subject: lifeboat-backup weekly digest: 1 of 3 backups FAILED verification"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!(
            "{}: its SHA-256 differs from its manifest's",
            file_name(&first)
        )),
        "{mail}"
    );
}

/// lifeboat-backup on a new pseudo-terminal; returns everything it wrote there.
fn on_a_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = support::backup_command(dir, args, env)
        .env("TERM", "xterm")
        .on_a_terminal()
        .run();
    (out.status.code(), out.stdout)
}

#[tokio::test]
async fn a_summary_in_colour_on_a_terminal_and_nothing_more_when_piped() {
    let db = database().await;
    let work = tempfile::tempdir().expect("tempdir");
    let container = stack_var("LBTEST_POSTGRES_CONTAINER");
    let env = [("LIFEBOAT_DB_CONTAINER", container.as_str())];

    let (code, screen) = on_a_terminal(work.path(), &["--database", &db], &env);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("\x1b[32m"), "in colour: {screen:?}");
    assert!(screen.contains("backup complete"), "{screen}");
    assert!(
        screen.contains("1 backup\x1b[0m in ./backups"),
        "the directory's backups: {screen:?}"
    );
    assert!(screen.contains("<- new"), "{screen}");
    assert!(screen.contains("never fewer than 3"), "{screen}");

    // Piped: the path on stdout, the log on stderr, no summary and no colour.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = backup(work.path(), &["--database", &db], &env);
    let stderr = out.stderr.clone();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(archive(work.path(), &out).exists());
    assert!(
        !stderr.contains("<- new")
            && !stderr.contains("never fewer than")
            && !stderr.contains('\x1b'),
        "{stderr}"
    );

    // A terminal, but NO_COLOR or JSON logs: no summary either.
    for (args, extra) in [
        (vec!["--database", db.as_str()], Some(("NO_COLOR", "1"))),
        (
            vec!["--log-format", "json", "--database", db.as_str()],
            None,
        ),
    ] {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let env: Vec<(&str, &str)> = env.iter().copied().chain(extra).collect();
        let (code, screen) = on_a_terminal(work.path(), &args, &env);
        assert_eq!(code, Some(0), "{screen}");
        assert!(
            !screen.contains("<- new") && !screen.contains("backup complete"),
            "{args:?} {extra:?}: {screen}"
        );
        assert!(
            screen.contains(".sql.gz"),
            "the path is still printed: {screen}"
        );
    }
}
