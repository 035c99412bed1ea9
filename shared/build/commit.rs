// The commit a binary is built from, for its `--version`: included by the build.rs of every
// lifeboat binary crate (`include!("../shared/build/commit.rs")`), so there is one copy.
// `LIFEBOAT_COMMIT` overrides it (a build from a tarball); outside git it is "unknown".

use std::path::Path;
use std::process::Command;

#[allow(clippy::disallowed_macros)] // cargo reads a build script's stdout: nothing to redact
fn main() {
    println!("cargo:rerun-if-env-changed=LIFEBOAT_COMMIT");
    let commit = std::env::var("LIFEBOAT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LIFEBOAT_COMMIT={commit}");
}

/// `git rev-parse --short=12 HEAD` of the workspace, and the files whose change moves it.
#[allow(clippy::disallowed_macros)]
fn git_commit() -> Option<String> {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let root = Path::new(&crate_dir).parent()?;
    let git = root.join(".git");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
        if let Some(reference) = head.strip_prefix("ref: ") {
            let reference = git.join(reference.trim());
            if reference.exists() {
                println!("cargo:rerun-if-changed={}", reference.display());
            }
            if git.join("packed-refs").exists() {
                println!("cargo:rerun-if-changed={}", git.join("packed-refs").display());
            }
        }
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
