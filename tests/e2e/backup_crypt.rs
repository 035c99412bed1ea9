//! Encrypted backups against the real stack: what lifeboat-backup writes with
//! LIFEBOAT_BACKUP_RECIPIENTS is what the reference `age` CLI (Debian's package, installed by
//! scripts/test) decrypts, lifeboat-restore reads back with the identity, the bucket holds only
//! ciphertext, and the backup host needs no secret key. A recipient that does not parse is exit
//! 2 with nothing written; rekey re-encrypts to new recipients.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_testkit::{gunzip, lifeboat, manifest_of, run, stack_var, unique, Ran};

mod support;
use support::{archive_of, archives, drop_database, file_name, stack_psql as psql};

/// A database of 300 notes, one of them the marker.
fn notes_database() -> String {
    let db = support::notes_database("lbtest_crypt_", 299, "'nota ' || g");
    psql(&db, &format!("INSERT INTO notes VALUES (300, '{MARKER}')"));
    db
}

/// A row no ciphertext may show.
const MARKER: &str = "nota-secreta-7f3a";

/// An age key pair made by `age-keygen`: the identity file and its public key.
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(Command::new("age-keygen").arg("-o").arg(&path));
    assert!(out.status.success(), "age-keygen: {out:?}");
    let public = run(Command::new("age-keygen").arg("-y").arg(&path));
    assert!(public.status.success(), "age-keygen -y: {public:?}");
    let public = String::from_utf8(public.stdout).expect("utf-8");
    (path, public.trim().to_owned())
}

/// `age -d -i KEY ARCHIVE`, then gunzip: the SQL.
fn age_decrypt(work: &Path, key: &Path, archive: &Path) -> String {
    let plain = work.join("plain.sql.gz");
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(&plain)
        .arg(archive));
    assert!(out.status.success(), "age -d: {out:?}");
    let sql = gunzip(&plain);
    std::fs::remove_file(&plain).expect("rm");
    sql
}

fn tool(name: &str, work: &Path, args: &[&str], env: &[(&str, String)]) -> Ran {
    lifeboat(name)
        .dir(work)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .run()
}

#[test]
fn an_encrypted_backup_is_read_by_age_and_by_lifeboat_restore_and_the_bucket_holds_ciphertext() {
    let db = notes_database();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("key dir");
    let (first_key, first) = keypair(keys.path(), "first.txt");
    let (second_key, second) = keypair(keys.path(), "second.txt");
    // The second recipient comes from a file of recipients, with a comment.
    let recipients_file = keys.path().join("recipients.txt");
    std::fs::write(&recipients_file, format!("# the off-site team\n{second}\n")).expect("write");

    let s3 = lifeboat_testkit::s3();
    let prefix = unique("crypt");
    let mut env: Vec<(&str, String)> = vec![
        (
            "LIFEBOAT_DB_CONTAINER",
            stack_var("LBTEST_POSTGRES_CONTAINER"),
        ),
        (
            "LIFEBOAT_BACKUP_RECIPIENTS",
            format!("{first},{}", recipients_file.display()),
        ),
        ("LIFEBOAT_S3_PREFIX", prefix.clone()),
    ];
    env.extend(s3.env());
    // The backup host holds public keys only: no LIFEBOAT_BACKUP_IDENTITY here.
    let out = tool("lifeboat-backup", work.path(), &["--database", &db], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let archive = archive_of(work.path(), &out);
    let name = file_name(&archive);
    assert!(name.ends_with(".sql.gz.age"), "{name}");

    // Ciphertext on disk: age's header, no row, no gzip.
    let bytes = std::fs::read(&archive).expect("read");
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "an age file");
    assert!(!String::from_utf8_lossy(&bytes).contains(MARKER));
    // The manifest names both recipients by fingerprint, never by key.
    let manifest = manifest_of(&archive);
    let fingerprints = manifest["encryption"]["recipients"]
        .as_array()
        .expect("recipients")
        .clone();
    assert_eq!(fingerprints.len(), 2, "{manifest}");
    assert!(fingerprints
        .iter()
        .all(|f| f.as_str().is_some_and(|f| f.starts_with("x25519:"))));
    let text = manifest.to_string();
    assert!(!text.contains(&first) && !text.contains(&second), "{text}");

    // The bucket holds the same ciphertext.
    let remote = lifeboat_testkit::block_on(
        s3.bucket(&format!("{prefix}/"))
            .get(&format!("backups/{name}"), 1 << 30),
    )
    .expect("the archive is in the bucket");
    assert_eq!(remote, bytes);
    assert!(!String::from_utf8_lossy(&remote).contains(MARKER));

    // `age -d` with either identity, then gunzip: the dump, with the marker row.
    for key in [&first_key, &second_key] {
        let sql = age_decrypt(work.path(), key, &archive);
        assert!(sql.contains(MARKER) && sql.contains("CREATE TABLE public.notes"));
    }

    // Reading it back needs the identity: exit 2 naming the setting without it.
    let out = tool("lifeboat-backup", work.path(), &["verify", &name], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("LIFEBOAT_BACKUP_IDENTITY"),
        "{}",
        out.stderr
    );
    // A key it was not encrypted to: refused, said so.
    let (stranger, _) = keypair(keys.path(), "stranger.txt");
    let mut wrong = env.clone();
    wrong.push(("LIFEBOAT_BACKUP_IDENTITY", stranger.display().to_string()));
    let out = tool("lifeboat-backup", work.path(), &["verify", &name], &wrong);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("none of the keys given"),
        "{}",
        out.stderr
    );
    let mut with_key = env.clone();
    with_key.push(("LIFEBOAT_BACKUP_IDENTITY", second_key.display().to_string()));
    let out = tool(
        "lifeboat-backup",
        work.path(),
        &["verify", &name, "--restore-test"],
        &with_key,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("300 rows"), "{}", out.stdout);

    // lifeboat-restore reads it back into the live database.
    psql(&db, "DELETE FROM notes");
    let out = tool(
        "lifeboat-restore",
        work.path(),
        &["--database", &db, "--yes", "--no-safety-backup", &name],
        &with_key,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(psql(&db, "SELECT count(*) FROM notes"), "300");
    assert_eq!(psql(&db, "SELECT body FROM notes WHERE id = 300"), MARKER);
    let _ = tool(
        "lifeboat-restore",
        work.path(),
        &["--database", &db, "cleanup", "--yes"],
        &with_key,
    );
    drop_database(&db);
}

#[test]
fn a_recipient_that_does_not_parse_or_cannot_be_read_back_is_exit_2_with_nothing_written() {
    let work = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("key dir");
    let (identity, public) = keypair(keys.path(), "id.txt");
    let (_, other) = keypair(keys.path(), "other.txt");
    let secret = std::fs::read_to_string(&identity)
        .expect("read")
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("a secret key")
        .to_owned();
    // No container exists by this name: each refusal comes before Docker is asked anything.
    let base = [(
        "LIFEBOAT_DB_CONTAINER",
        "lbtest-no-such-container".to_owned(),
    )];
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![(
                "LIFEBOAT_BACKUP_RECIPIENTS",
                format!("{public},age1notakey"),
            )],
            "`age1notakey`",
        ),
        (
            vec![("LIFEBOAT_BACKUP_RECIPIENTS", secret.clone())],
            "not a recipient",
        ),
        (
            vec![(
                "LIFEBOAT_BACKUP_RECIPIENTS",
                "/nonexistent/recipients.txt".into(),
            )],
            "/nonexistent/recipients.txt",
        ),
        (
            vec![
                ("LIFEBOAT_BACKUP_RECIPIENTS", public.clone()),
                ("LIFEBOAT_BACKUP_PASSPHRASE", "correct horse battery".into()),
            ],
            "LIFEBOAT_BACKUP_PASSPHRASE",
        ),
        // An identity that cannot read what the recipients get: backups nobody here could read.
        (
            vec![
                ("LIFEBOAT_BACKUP_RECIPIENTS", other.clone()),
                ("LIFEBOAT_BACKUP_IDENTITY", identity.display().to_string()),
            ],
            "cannot decrypt",
        ),
    ];
    for (settings, says) in cases {
        let mut env = base.to_vec();
        env.extend(settings);
        let out = lifeboat("lifeboat-backup")
            .dir(work.path())
            .secret(&secret)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .run();
        assert_eq!(out.code, 2, "{env:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
        assert!(
            !work.path().join("backups").exists(),
            "nothing written: {:?}",
            archives(&work.path().join("backups"))
        );
        assert!(
            !out.stderr.contains("lbtest-no-such-container"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_passphrase_encrypts_and_rekey_moves_backups_to_new_recipients() {
    let db = notes_database();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("key dir");
    let dir = work.path().join("backups");
    let container = (
        "LIFEBOAT_DB_CONTAINER",
        stack_var("LBTEST_POSTGRES_CONTAINER"),
    );
    let passphrase = "a long passphrase for the vault".to_owned();

    // One backup in clear, one with a passphrase.
    let plain = tool(
        "lifeboat-backup",
        work.path(),
        &["--database", &db],
        std::slice::from_ref(&container),
    );
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let plain = file_name(&archive_of(work.path(), &plain));
    let with_passphrase = [
        container.clone(),
        ("LIFEBOAT_BACKUP_PASSPHRASE", passphrase.clone()),
    ];
    let out = tool(
        "lifeboat-backup",
        work.path(),
        &["--database", &db],
        &with_passphrase,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sealed = file_name(&archive_of(work.path(), &out));
    assert!(sealed.ends_with(".sql.gz.age"), "{sealed}");
    assert_eq!(
        manifest_of(&dir.join(&sealed))["encryption"]["recipients"][0],
        "passphrase"
    );
    let out = tool(
        "lifeboat-backup",
        work.path(),
        &["verify", &sealed],
        &with_passphrase,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let wrong = [
        container.clone(),
        (
            "LIFEBOAT_BACKUP_PASSPHRASE",
            "not the passphrase at all".to_owned(),
        ),
    ];
    let out = tool("lifeboat-backup", work.path(), &["verify", &sealed], &wrong);
    assert_eq!(out.code, 1, "{}", out.stderr);

    rekey_twice(work.path(), keys.path(), &container, &plain, &sealed);
    drop_database(&db);
}

/// rekey to a new key pair (the clear backup encrypted, the passphrase one left as it was),
/// then to a newer one with both identities (the retired key no longer reads anything).
fn rekey_twice(
    work: &Path,
    keys: &Path,
    container: &(&'static str, String),
    plain: &str,
    sealed: &str,
) {
    let dir = work.join("backups");
    let container = container.clone();
    // rekey to a new key pair; the passphrase still reads the one encrypted with it.
    let (new_key, new_public) = keypair(keys, "new.txt");
    let rekey_env = [
        container.clone(),
        ("LIFEBOAT_BACKUP_RECIPIENTS", new_public.clone()),
        ("LIFEBOAT_BACKUP_IDENTITY", new_key.display().to_string()),
    ];
    let out = tool("lifeboat-backup", work, &["rekey"], &rekey_env);
    // The passphrase backup cannot be read with the new key alone: exit 1, left as it was.
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("{plain}\tre-encrypted as {plain}.age")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains(sealed), "{}", out.stderr);
    assert_eq!(
        archives(&dir),
        {
            let mut v = vec![format!("{plain}.age"), sealed.to_owned()];
            v.sort();
            v
        },
        "the clear copy is gone, the other left as it was"
    );
    // The clear backup is now ciphertext the new key reads, with the same rows.
    let rekeyed = dir.join(format!("{plain}.age"));
    assert!(!String::from_utf8_lossy(&std::fs::read(&rekeyed).expect("read")).contains(MARKER));
    let out = tool(
        "lifeboat-backup",
        work,
        &["verify", &format!("{plain}.age")],
        &rekey_env,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("300 rows"), "{}", out.stdout);

    // Rotate again, the old identity reading: every backup goes to the newest recipient.
    let (newest_key, newest_public) = keypair(keys, "newest.txt");
    let identities = keys.join("both.txt");
    std::fs::write(
        &identities,
        std::fs::read_to_string(&new_key).expect("read")
            + &std::fs::read_to_string(&newest_key).expect("read"),
    )
    .expect("write");
    let rotate = [
        container.clone(),
        ("LIFEBOAT_BACKUP_RECIPIENTS", newest_public),
        ("LIFEBOAT_BACKUP_IDENTITY", identities.display().to_string()),
    ];
    std::fs::remove_file(manifest_of_path(&dir.join(sealed)))
        .expect("forget the passphrase backup");
    std::fs::remove_file(dir.join(sealed)).expect("rm");
    let out = tool("lifeboat-backup", work, &["rekey"], &rotate);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&new_key)
        .arg("-o")
        .arg("/dev/null")
        .arg(&rekeyed));
    assert!(!out.status.success(), "the retired key no longer reads it");
    let newest_only = [
        container,
        ("LIFEBOAT_BACKUP_IDENTITY", newest_key.display().to_string()),
    ];
    let out = tool(
        "lifeboat-backup",
        work,
        &["verify", &format!("{plain}.age")],
        &newest_only,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn manifest_of_path(archive: &Path) -> PathBuf {
    let mut p = archive.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

#[test]
fn an_ssh_public_key_encrypts_and_its_private_key_reads_the_backup_back() {
    let db = notes_database();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("key dir");
    let key = keys.path().join("id_ed25519");
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@laptop", "-f"])
        .arg(&key));
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let container = (
        "LIFEBOAT_DB_CONTAINER",
        stack_var("LBTEST_POSTGRES_CONTAINER"),
    );
    let env = [
        container.clone(),
        ("LIFEBOAT_BACKUP_RECIPIENTS", public.trim().to_owned()),
    ];
    let out = tool("lifeboat-backup", work.path(), &["--database", &db], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let archive = archive_of(work.path(), &out);
    let fingerprint = &manifest_of(&archive)["encryption"]["recipients"][0];
    assert!(
        fingerprint
            .as_str()
            .is_some_and(|f| f.starts_with("ssh-ed25519:")),
        "{fingerprint}"
    );
    // The private key (no passphrase) as the identity, with lifeboat and with `age -d`.
    let with_key = [
        container,
        ("LIFEBOAT_BACKUP_IDENTITY", key.display().to_string()),
    ];
    let out = tool(
        "lifeboat-backup",
        work.path(),
        &["verify", &file_name(&archive)],
        &with_key,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("300 rows"), "{}", out.stdout);
    assert!(age_decrypt(work.path(), &key, &archive).contains(MARKER));
    drop_database(&db);
}
