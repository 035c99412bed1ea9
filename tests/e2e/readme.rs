//! The documentation is what people read at 3 a.m.: README.md (short, with the two commands in its
//! first lines), a manual per binary in docs/, the generated configuration reference in
//! docs/configuration.md, and ARCHITECTURE.md. These tests keep them true without any service:
//! every link resolves to a file and heading, every binary has its manual, every table of
//! contents matches its headings, every setting and variable is documented, every example
//! configuration loads, and every command, flag and script the docs show exists.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use lifeboat::config::{Config, LoadOptions, SETTINGS};
use lifeboat::env_vars;
use lifeboat_testkit::workspace_root;

/// The six binaries with a manual, `lifeboat-<crate directory>`.
const BINARIES: [&str; 6] = [
    "backup",
    "restore",
    "healthcheck",
    "smoke",
    "deploy",
    "rollback",
];

/// The longest README may grow; the rest belongs in docs/.
const README_MAX_LINES: usize = 300;

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn readme() -> String {
    read("README.md")
}

/// README.md, ARCHITECTURE.md and every page of docs/, as paths relative to the workspace.
fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned(), "ARCHITECTURE.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(workspace_root().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| Path::new(name).extension().is_some_and(|e| e == "md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The workspace members, as their directories (`backup`, `tests/demo-app`).
fn members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let start = manifest.find("members = [").expect("workspace members");
    let list = &manifest[start..];
    let list = &list[..list.find(']').expect("closed members list")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A markdown text split into its prose lines and its fenced code blocks (language, body).
struct Markdown {
    prose: Vec<String>,
    blocks: Vec<(String, String)>,
}

fn parse(text: &str) -> Markdown {
    let mut prose = Vec::new();
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match open.as_mut() {
            Some(_) if line.starts_with("```") => {
                blocks.push(open.take().expect("an open block"));
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    open = Some((lang.trim().to_owned(), String::new()));
                } else {
                    prose.push(line.to_owned());
                }
            }
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    Markdown { prose, blocks }
}

/// The inline code spans of a prose line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// A prose line without its inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens.
fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every heading of a markdown text: its level and title, outside code blocks.
fn headings(md: &Markdown) -> Vec<(usize, String)> {
    md.prose
        .iter()
        .filter_map(|line| {
            let level = line.chars().take_while(|&c| c == '#').count();
            let title = line[level..].strip_prefix(' ')?;
            (level > 0).then(|| (level, title.trim().to_owned()))
        })
        .collect()
}

/// The anchors a page offers, duplicates numbered as GitHub does (`-1`, `-2`).
fn anchors(md: &Markdown) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, title) in headings(md) {
        let base = slug(&title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a prose line's `[text](target)` links, outside inline code.
fn link_targets(line: &str) -> Vec<String> {
    let text = without_code(line);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end..];
    }
    out
}

/// The anchors a table of contents links to: the `- [..](#anchor)` lines right after a
/// `## Contents` heading or a `**Contents**` line. `None` when the page has none.
fn table_of_contents(md: &Markdown) -> Option<Vec<String>> {
    let at = md
        .prose
        .iter()
        .position(|l| l.trim() == "## Contents" || l.trim() == "**Contents**")?;
    let entries = md.prose[at + 1..]
        .iter()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- ["))
        .map(|l| {
            let target = link_targets(l).into_iter().next().unwrap_or_default();
            target.trim_start_matches('#').to_owned()
        })
        .collect();
    Some(entries)
}

#[test]
fn readme_starts_with_the_two_commands() {
    let head: String = readme().lines().take(40).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("scripts/demo") && head.contains("scripts/test"),
        "{head}"
    );
}

#[test]
fn readme_stays_short() {
    let lines = readme().lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; keep it under {README_MAX_LINES} and move the rest to docs/"
    );
}

#[test]
fn readme_lists_the_exit_codes() {
    let text = readme();
    for code in ["| 0 |", "| 1 |", "| 2 |", "| 3 |"] {
        assert!(text.contains(code), "README's exit code table lacks {code}");
    }
}

#[test]
fn every_link_resolves_to_a_file_and_a_heading() {
    let root = workspace_root();
    let mut broken = Vec::new();
    for file in markdown_files() {
        let md = parse(&read(&file));
        let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
        for target in md.prose.iter().flat_map(|l| link_targets(l)) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked: PathBuf = if path.is_empty() {
                PathBuf::from(&file)
            } else {
                dir.join(path)
            };
            let full = root.join(&linked);
            if !full.exists() {
                broken.push(format!("{file}: {target} (no file {})", linked.display()));
                continue;
            }
            if anchor.is_empty() || full.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let text = std::fs::read_to_string(&full).expect("linked page");
            if !anchors(&parse(&text)).contains(anchor) {
                broken.push(format!("{file}: {target} (no heading #{anchor})"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_binary_has_its_manual_linked_from_readme() {
    let text = readme();
    for name in BINARIES {
        let manual = format!("docs/lifeboat-{name}.md");
        assert!(
            workspace_root().join(&manual).is_file(),
            "lifeboat-{name} has no manual {manual}"
        );
        assert!(
            text.contains(&format!("({manual})")),
            "README does not link lifeboat-{name}'s manual {manual}"
        );
    }
    // A new binary crate gets a manual too.
    for member in members() {
        let dir = workspace_root().join(&member);
        if dir.join("src/main.rs").is_file() && !member.starts_with("tests") {
            assert!(
                BINARIES.contains(&member.as_str()),
                "the binary crate {member}/ has no manual: add docs/lifeboat-{member}.md and list it here"
            );
        }
    }
}

#[test]
fn every_table_of_contents_matches_its_headings() {
    let mut pages = vec!["README.md".to_owned(), "ARCHITECTURE.md".to_owned()];
    pages.extend(BINARIES.iter().map(|b| format!("docs/lifeboat-{b}.md")));
    for file in markdown_files() {
        let md = parse(&read(&file));
        let Some(toc) = table_of_contents(&md) else {
            assert!(
                !pages.contains(&file),
                "{file} has no table of contents (`## Contents` or `**Contents**` and a list of links)"
            );
            continue;
        };
        let sections: Vec<String> = headings(&md)
            .into_iter()
            .filter(|(level, title)| *level == 2 && title != "Contents")
            .map(|(_, title)| slug(&title))
            .collect();
        assert_eq!(
            toc, sections,
            "{file}: the table of contents does not list its ## headings, in order"
        );
    }
}

#[test]
fn architecture_names_every_crate_directory() {
    let text = read("ARCHITECTURE.md");
    for member in members() {
        assert!(
            text.contains(&format!("`{member}/`")),
            "ARCHITECTURE.md does not name the crate directory `{member}/`"
        );
    }
}

#[test]
fn the_configuration_reference_documents_every_variable_and_key() {
    let reference = read("docs/configuration.md");
    for var in env_vars::ALL {
        assert!(
            reference.contains(&format!("`{var}`")),
            "docs/configuration.md does not document `{var}` (scripts/config-reference writes it)"
        );
    }
    for s in SETTINGS {
        if let Some(key) = s.key {
            assert!(
                reference.contains(&format!("`{key}`")),
                "docs/configuration.md does not document the key `{key}`"
            );
        }
    }
    let manual = read("docs/lifeboat-healthcheck.md");
    for var in lifeboat_healthcheck::env::ALL {
        assert!(
            manual.contains(&format!("`{var}`")),
            "docs/lifeboat-healthcheck.md does not document `{var}`"
        );
    }
}

/// lifeboat-healthcheck links no lifeboat library (its size budget), so its variables and the
/// defaults its help states are written there again: they must be the settings table's.
#[test]
fn the_healthcheck_s_variables_and_defaults_are_the_settings_table_s() {
    use lifeboat::config::settings::Section;
    let table: BTreeSet<&str> = SETTINGS
        .iter()
        .filter(|s| s.section == Section::Healthcheck)
        .map(|s| s.var)
        .collect();
    let probe: BTreeSet<&str> = lifeboat_healthcheck::env::ALL.iter().copied().collect();
    assert_eq!(
        probe, table,
        "lifeboat_healthcheck::env::ALL and the settings table's healthcheck section differ"
    );
    for s in SETTINGS
        .iter()
        .filter(|s| s.section == Section::Healthcheck)
    {
        let Some(default) = s.default else { continue };
        let shown = if s.var == "PORT" {
            format!("${{PORT:-{default}}}")
        } else {
            format!("[{}, default {default}]", s.var)
        };
        assert!(
            lifeboat_healthcheck::HELP.contains(&shown),
            "lifeboat-healthcheck's help does not show {shown} (the settings table's default of {})",
            s.var
        );
    }
}

#[test]
fn every_toml_example_loads() {
    let mut examples = 0;
    for file in markdown_files() {
        for (lang, body) in parse(&read(&file)).blocks {
            // `toml smoke.toml` blocks are lifeboat-smoke specs, checked by the smoke suite.
            if lang != "toml" {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("lifeboat.toml");
            std::fs::write(&path, &body).expect("write");
            for profile in [None, Some("staging"), Some("production")] {
                let opts = LoadOptions {
                    config_file: Some(path.clone()),
                    env_file: None,
                    profile: profile.map(str::to_owned),
                    ..LoadOptions::default()
                };
                Config::load_with_env(&opts, &HashMap::new()).unwrap_or_else(|e| {
                    panic!("{file}: an example does not load ({profile:?}): {e}\n{body}")
                });
            }
            examples += 1;
        }
    }
    assert!(
        examples >= 1,
        "the docs have no ```toml example of lifeboat.toml"
    );
}

/// Every Rust source of a directory, concatenated.
fn sources(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
    out
}

/// The binary a word runs, `lifeboat-<name>` (also as a path or quoted), if it is one of ours.
fn binary_of(word: &str) -> Option<&'static str> {
    let word = word.trim_matches(|c: char| "\"',;[]()".contains(c));
    let name = word.rsplit('/').next()?.strip_prefix("lifeboat-")?;
    BINARIES.into_iter().find(|b| *b == name)
}

/// The long flags given to our binaries on one line of a command: `(binary, flag)`.
fn flags_on(line: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut current: Option<&'static str> = None;
    let mut previous = "";
    for word in line.split_whitespace() {
        if word.starts_with('#') {
            break;
        }
        if matches!(word, "&&" | "||" | "|" | ";") {
            current = None;
        } else if let Some(bin) = binary_of(word) {
            // `cargo build -p lifeboat-healthcheck --target …`: a package name, not a run.
            current = (!previous.starts_with('-')).then_some(bin);
        } else if let Some(bin) = current {
            let word = word.trim_matches(|c: char| "\"',[]".contains(c));
            if let Some(flag) = word.strip_prefix("--") {
                let flag = flag.split('=').next().unwrap_or(flag);
                if !flag.is_empty() {
                    out.push((bin, flag.to_owned()));
                }
            }
        }
        previous = word;
    }
    out
}

#[test]
fn the_commands_the_docs_show_exist() {
    let root = workspace_root();
    let shared = sources(&root.join("shared/src"));
    let mut code: HashMap<&str, String> = HashMap::new();
    let mut missing = Vec::new();
    for file in markdown_files() {
        let md = parse(&read(&file));
        let mut lines: Vec<String> = md
            .blocks
            .iter()
            .filter(|(lang, _)| !matches!(lang.as_str(), "toml" | "toml smoke.toml" | "nginx"))
            .flat_map(|(_, body)| body.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        lines.extend(md.prose.iter().flat_map(|l| {
            code_spans(l)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }));
        for line in &lines {
            for word in line.split_whitespace() {
                let word = word.trim_matches(|c: char| "\"',;()".contains(c));
                let is_script = word
                    .strip_prefix("scripts/")
                    .is_some_and(|rest| !rest.is_empty())
                    || word == ".ci/run";
                if is_script && !root.join(word).is_file() {
                    missing.push(format!("{file}: {word} does not exist"));
                }
            }
            for (bin, flag) in flags_on(line) {
                let own = code
                    .entry(bin)
                    .or_insert_with(|| sources(&root.join(bin).join("src")));
                let quoted = format!("\"--{flag}\"");
                let field = flag.replace('-', "_");
                let known = [own.as_str(), shared.as_str()]
                    .iter()
                    .any(|src| src.contains(&quoted) || src.contains(&field));
                if !known {
                    missing.push(format!(
                        "{file}: lifeboat-{bin} has no flag --{flag} (in `{}`)",
                        line.trim()
                    ));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// A workspace path a page names in inline code (`backup/src/archive.rs`, `tests/compose/`):
/// one whose first folder is a folder at the workspace's root (`./backups` is the user's).
fn workspace_path(span: &str, root: &Path) -> Option<String> {
    if span.contains(|c: char| c.is_whitespace() || "<>*$~…".contains(c)) {
        return None;
    }
    let (first, rest) = span.split_once('/')?;
    (!matches!(first, "" | "." | "..") && !rest.starts_with('/') && root.join(first).is_dir())
        .then(|| span.to_owned())
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for file in markdown_files() {
        let md = parse(&read(&file));
        for line in &md.prose {
            for span in code_spans(line) {
                if let Some(path) = workspace_path(span, &root) {
                    if !root.join(&path).exists() {
                        missing.push(format!("{file}: `{path}` does not exist"));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The package name and the workspace crates of `[dependencies]` of one member's Cargo.toml.
fn package_and_dependencies(
    member: &str,
    workspace: &BTreeSet<String>,
) -> (String, BTreeSet<String>) {
    let manifest = read(&format!("{member}/Cargo.toml"));
    let mut name = String::new();
    let mut deps = BTreeSet::new();
    let mut table = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if table == "[package]" && key == "name" && name.is_empty() {
            value.trim().trim_matches('"').clone_into(&mut name);
        } else if table == "[dependencies]" && workspace.contains(key) {
            deps.insert(key.to_owned());
        }
    }
    (name, deps)
}

#[test]
fn architecture_shows_the_crate_graph_of_the_cargo_files() {
    let members = members();
    let workspace: BTreeSet<String> = members
        .iter()
        .map(|m| package_and_dependencies(m, &BTreeSet::new()).0)
        .collect();
    let text = read("ARCHITECTURE.md");
    for member in &members {
        let (name, deps) = package_and_dependencies(member, &workspace);
        let prefix = format!("| `{member}/` | `{name}` | ");
        let row = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("ARCHITECTURE.md's crate table has no row {prefix}…"));
        let listed: BTreeSet<String> =
            code_spans(row[prefix.len()..].split(" | ").next().unwrap_or_default())
                .into_iter()
                .map(str::to_owned)
                .collect();
        assert_eq!(
            listed, deps,
            "ARCHITECTURE.md: {member}/ depends on these workspace crates (its Cargo.toml)"
        );
    }
}

/// The cells of a markdown table row, trimmed (`\|` inside a cell is no separator).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .replace("\\|", "\u{0}")
        .split('|')
        .map(|c| c.replace('\u{0}', "|").trim().to_owned())
        .collect()
}

#[test]
fn the_manuals_give_the_defaults_of_the_settings_table() {
    let defaults: HashMap<&str, &str> = SETTINGS
        .iter()
        .filter_map(|s| Some((s.var, s.default?)))
        .collect();
    let mut wrong = Vec::new();
    for b in BINARIES {
        let file = format!("docs/lifeboat-{b}.md");
        for line in parse(&read(&file)).prose {
            let row = cells(&line);
            if !line.starts_with('|') || row.len() != 4 {
                continue;
            }
            let Some(&default) = defaults.get(row[1].trim_matches('`')) else {
                continue;
            };
            // A default written as one value (`120`), not a sentence (`discovered`).
            let shown = &row[2];
            let one_value =
                shown.starts_with('`') && shown.ends_with('`') && shown.matches('`').count() == 2;
            if one_value && shown.trim_matches('`') != default {
                wrong.push(format!(
                    "{file}: {} defaults to `{default}`, not {shown}",
                    row[1]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
