//! Small files that must never be half-written (a manifest, a journal, a state file), and the
//! rules for files in directories other users may share: never through a symlink, never in a
//! directory someone else can write.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// A file name made from any string (a database's name may hold any character), that two
/// different strings never share: ASCII letters, digits, `-` and `_` stay, every other byte is
/// written `%XX`. So `app.db` and `app_db` get two journals and two locks, not one.
pub fn safe_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The user this process acts as (its effective uid).
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Make `dir` if it is missing (mode 0700), then check that it is fit for files another user
/// must not touch: a real directory (not a symlink), owned by us, writable by no one else. The
/// error says what is wrong and how to fix it.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; name the directory itself",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {me}); another user could replace its files. Remove it, or choose a directory of your own",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o}); run `chmod go-w {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

/// Open `path` for reading and writing, created with mode 0600 when missing, never truncated, and
/// never through a symbolic link (`O_NOFOLLOW`): in a directory a local user could write, a
/// planted link must not turn our write into theirs. It must be a regular file of ours.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    open_own(
        path,
        OFlags::RDWR | OFlags::CREATE,
        Mode::from_raw_mode(0o600),
    )
}

/// Open `path` to append to it, created with mode 0600 when missing, never through a symbolic
/// link, and only if it is a regular file of ours: each `write` of a line lands whole at the end
/// (`O_APPEND`), whoever else appends.
pub fn open_append_private(path: &Path) -> std::io::Result<File> {
    open_own(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND,
        Mode::from_raw_mode(0o600),
    )
}

/// The last `max` bytes (at most) of `path` if it is there (`None` if not), under the same
/// rules as [`read_own`].
pub fn read_own_tail(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match open_own(path, OFlags::RDONLY, Mode::empty()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The text of `path` if it is there (`None` if not), at most `max` bytes, and its metadata:
/// a regular file of ours, opened without following a symbolic link. A file that is a link,
/// not regular, or another user's is an error of kind `InvalidData`, which the caller names.
pub fn read_own(path: &Path, max: u64) -> std::io::Result<Option<(String, std::fs::Metadata)>> {
    use std::io::Read;
    let file = match open_own(path, OFlags::RDONLY, Mode::empty()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mut text = String::new();
    file.take(max).read_to_string(&mut text)?;
    Ok(Some((text, meta)))
}

/// `path` opened with `flags`, never through a symbolic link, and only if it is a regular file
/// of ours (else an `InvalidData` error saying why).
fn open_own(path: &Path, flags: OFlags, mode: Mode) -> std::io::Result<File> {
    let foreign = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let fd = rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        mode,
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            foreign("it is a symbolic link, which is never followed here".into())
        } else {
            std::io::Error::from(e)
        }
    })?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(foreign("it is not a regular file".into()));
    }
    if meta.uid() != euid() {
        return Err(foreign(format!(
            "it belongs to uid {}, not to this user",
            meta.uid()
        )));
    }
    Ok(file)
}

/// Replace `path` with `bytes` atomically: written to `path.partial` (mode 0600), fsynced,
/// renamed over `path`, and the directory fsynced. A crash leaves the old file or the new one,
/// never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] with the file's `mode` set on it whatever the umask (0644 for a metrics
/// file another user's exporter reads).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        // A `.partial` left by a crash is removed, and the new one made afresh (`O_EXCL`): a
        // symbolic link planted under that name is removed, never written through.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        if mode != 0o600 {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn safe_names_keep_every_name_apart() {
        assert_eq!(super::safe_name("app_db"), "app_db");
        assert_eq!(super::safe_name("app.db"), "app%2Edb");
        assert_eq!(super::safe_name("../a/b"), "%2E%2E%2Fa%2Fb");
        assert_eq!(super::safe_name("x%2E"), "x%252E");
        assert_eq!(super::safe_name("é"), "%C3%A9");
    }

    #[test]
    fn a_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("victim");
        // The lock's open.
        let link = dir.path().join("job.lock");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        let err = super::open_private(&link).expect_err("a symlink is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // The atomic write's temporary file.
        let state = dir.path().join("state");
        std::os::unix::fs::symlink(&victim, dir.path().join("state.partial")).expect("symlink");
        super::write_atomic(&state, b"new").expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(&state).expect("read"), b"new");
    }

    #[test]
    fn a_directory_others_can_write_or_a_link_to_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locks = dir.path().join("locks");
        super::private_dir(&locks).expect("made 0700");
        let mode = std::fs::metadata(&locks)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let err = super::private_dir(&locks).expect_err("world-writable");
        assert!(
            err.contains("writable by other users") && err.contains("chmod go-w"),
            "{err}"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&locks, &link).expect("symlink");
        let err = super::private_dir(&link).expect_err("a link");
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        super::write_atomic(&path, b"one").expect("first");
        super::write_atomic(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no .partial left"
        );
    }
}
