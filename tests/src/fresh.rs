//! Which sources a lifeboat binary is built from: its own crate and every workspace crate it
//! depends on, transitively, read from the workspace's Cargo.toml files. [`crate::bin`] refuses
//! a binary older than any of them, so lifeboat-deploy is stale after an edit under restore/.
//!
//! The manifests are read line by line (the workspace writes them in one plain style): enough
//! for `members`, `[workspace.dependencies]` paths, package and bin names, and the entries of
//! `[dependencies]`/`[build-dependencies]` tables. Dev-dependencies are not part of a binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A workspace member: its folder and the workspace crates it depends on (by package name).
#[derive(Debug)]
struct Member {
    dir: PathBuf,
    package: String,
    bins: Vec<String>,
    deps: Vec<String>,
}

/// The crate folders (relative to `root`) that binary `name` is built from: its own first, then
/// its workspace dependencies, transitively, each once. `None` when no member builds `name`.
pub fn crate_dirs_of(root: &Path, name: &str) -> Option<Vec<PathBuf>> {
    let root_manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let paths = workspace_paths(&root_manifest);
    let members: Vec<Member> = members(&root_manifest)
        .iter()
        .filter_map(|dir| {
            let text = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).ok()?;
            Some(member(Path::new(dir), &text, &paths))
        })
        .collect();
    let by_package: BTreeMap<&str, &Member> =
        members.iter().map(|m| (m.package.as_str(), m)).collect();
    let start = members
        .iter()
        .find(|m| m.bins.iter().any(|b| b == name) || m.package == name)?;
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut todo = vec![start];
    while let Some(m) = todo.pop() {
        if !seen.insert(m.package.clone()) {
            continue;
        }
        order.push(m.dir.clone());
        todo.extend(m.deps.iter().filter_map(|d| by_package.get(d.as_str())));
    }
    Some(order)
}

/// The quoted strings of the root manifest's `members = [...]`.
fn members(root_manifest: &str) -> Vec<String> {
    let Some(start) = root_manifest.find("members") else {
        return Vec::new();
    };
    let rest = &root_manifest[start..];
    let list = rest
        .find('[')
        .and_then(|open| Some(&rest[open + 1..open + rest[open..].find(']')?]))
        .unwrap_or_default();
    list.split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `[workspace.dependencies]` entries with a `path`: package name → folder.
fn workspace_paths(root_manifest: &str) -> BTreeMap<String, PathBuf> {
    tables(root_manifest)
        .filter(|(table, _)| *table == "workspace.dependencies")
        .filter_map(|(_, line)| {
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_owned(), quoted_after(value, "path")?.into()))
        })
        .collect()
}

fn member(dir: &Path, manifest: &str, paths: &BTreeMap<String, PathBuf>) -> Member {
    let mut package = String::new();
    let mut bins = Vec::new();
    let mut deps = Vec::new();
    for (table, line) in tables(manifest) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        match table {
            "package" if key == "name" => value.trim().trim_matches('"').clone_into(&mut package),
            "[bin]" if key == "name" => bins.push(value.trim().trim_matches('"').to_owned()),
            t if is_dependencies(t) => {
                let name = key.split('.').next().unwrap_or(key).trim();
                // A path of its own (relative to the member), or the workspace's entry.
                let local = quoted_after(value, "path")
                    .map(|p| normalize(&dir.join(p)))
                    .and_then(|p| {
                        paths
                            .iter()
                            .find(|(_, dir)| **dir == p)
                            .map(|(n, _)| n.clone())
                    });
                if local.is_some() || paths.contains_key(name) {
                    deps.push(local.unwrap_or_else(|| name.to_owned()));
                }
            }
            _ => {}
        }
    }
    Member {
        dir: dir.to_path_buf(),
        package,
        bins,
        deps,
    }
}

/// `[dependencies]`, `[build-dependencies]` and their `[target.'…'.…]` forms; not dev ones.
fn is_dependencies(table: &str) -> bool {
    let table = table
        .strip_prefix("target.")
        .and_then(|t| t.rsplit_once('.'))
        .map_or(table, |(_, t)| t);
    table == "dependencies" || table == "build-dependencies"
}

/// Each line that is neither blank, a comment nor a header, with the table it is in:
/// `package`, `dependencies`, `[bin]` for an `[[bin]]` entry, and so on.
fn tables(manifest: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut table = "";
    manifest.lines().filter_map(move |line| {
        let line = line.split_once(" #").map_or(line, |(l, _)| l).trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = header;
            return None;
        }
        Some((table, line))
    })
}

/// The quoted value of `key = "…"` inside an inline table.
fn quoted_after<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    let at = value.find(key)?;
    let rest = value[at + key.len()..].trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    #[test]
    fn a_binary_depends_on_every_workspace_crate_below_it_and_not_on_dev_dependencies() {
        let root = tempfile::tempdir().expect("tempdir");
        let root = root.path();
        write(
            root,
            "Cargo.toml",
            "[workspace]\nmembers = [\n    \"shared\",\n    \"backup\",\n    \"restore\",\n    \
             \"deploy\",\n    \"tests\",\n    \"lone\",\n]\n\n[workspace.dependencies]\n\
             lifeboat = { path = \"shared\", default-features = false }\n\
             lifeboat-testkit = { path = \"tests\" }\nlifeboat-backup = { path = \"backup\" }\n\
             lifeboat-restore = { path = \"restore\" }\nanyhow = \"1\"\n",
        );
        write(
            root,
            "shared/Cargo.toml",
            "[package]\nname = \"lifeboat\"\n\n[dependencies]\nanyhow = { workspace = true }\n\n\
             [dev-dependencies]\nlifeboat-testkit = { workspace = true }\n",
        );
        write(
            root,
            "backup/Cargo.toml",
            "[package]\nname = \"lifeboat-backup\"\n\n[[bin]]\nname = \"lifeboat-backup\"\n\
             path = \"src/main.rs\"\n\n[dependencies]\n\
             lifeboat = { workspace = true, features = [\"db\"] } # the shared code\n",
        );
        write(
            root,
            "restore/Cargo.toml",
            "[package]\nname = \"lifeboat-restore\"\n\n[dependencies]\n\
             lifeboat.workspace = true\nlifeboat-backup = { workspace = true }\n",
        );
        write(
            root,
            "deploy/Cargo.toml",
            "[package]\nname = \"lifeboat-deploy\"\n\n[[bin]]\nname = \"lifeboat-deploy\"\n\n\
             [dependencies]\nlifeboat-restore = { path = \"../restore\" }\n\n\
             [dev-dependencies]\nlifeboat-testkit = { workspace = true }\n",
        );
        write(
            root,
            "tests/Cargo.toml",
            "[package]\nname = \"lifeboat-testkit\"\n",
        );
        write(
            root,
            "lone/Cargo.toml",
            "[package]\nname = \"lone\"\n\n[dependencies]\nanyhow = \"1\"\n",
        );

        let dirs = |name| {
            let mut d: Vec<String> = crate_dirs_of(root, name)
                .expect("a member builds it")
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            d[1..].sort();
            d
        };
        assert_eq!(
            dirs("lifeboat-deploy"),
            ["deploy", "backup", "restore", "shared"]
        );
        assert_eq!(dirs("lifeboat-restore"), ["restore", "backup", "shared"]);
        assert_eq!(dirs("lifeboat-backup"), ["backup", "shared"]);
        assert_eq!(dirs("lone"), ["lone"]);
        assert_eq!(crate_dirs_of(root, "lifeboat-nothing"), None);
    }

    #[test]
    fn the_real_workspace_puts_restore_below_deploy_and_nothing_below_healthcheck() {
        let root = crate::workspace_root();
        let deploy = crate_dirs_of(&root, "lifeboat-deploy").expect("deploy");
        for dir in [
            "deploy",
            "restore",
            "backup",
            "smoke",
            "healthcheck",
            "shared",
        ] {
            assert!(deploy.contains(&PathBuf::from(dir)), "{dir}: {deploy:?}");
        }
        assert_eq!(
            crate_dirs_of(&root, "lifeboat-healthcheck"),
            Some(vec![PathBuf::from("healthcheck")])
        );
        assert_eq!(
            crate_dirs_of(&root, "lifeboat-demo-app"),
            Some(vec![PathBuf::from("tests/demo-app")])
        );
    }
}
