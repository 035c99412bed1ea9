//! README is the reference people read at 3 a.m.: it must name every setting and variable the
//! code reads, give the two commands in its first lines, and its example configuration must load.

use std::collections::HashMap;

use lifeboat::config::{Config, LoadOptions, SETTINGS};
use lifeboat::env_vars;
use lifeboat_testkit::workspace_root;

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md")
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
fn readme_names_every_environment_variable_and_config_key() {
    let text = readme();
    for var in env_vars::ALL {
        assert!(
            text.contains(&format!("`{var}`")),
            "README does not document `{var}`"
        );
    }
    for var in lifeboat_healthcheck::env::ALL {
        assert!(
            text.contains(&format!("`{var}`")),
            "README does not document lifeboat-healthcheck's `{var}`"
        );
    }
    for s in SETTINGS {
        assert!(
            text.contains(&format!("`{}`", s.key)),
            "README does not document the key `{}`",
            s.key
        );
    }
}

#[test]
fn readme_lists_the_exit_codes() {
    let text = readme();
    for code in ["| 0 |", "| 1 |", "| 2 |"] {
        assert!(text.contains(code), "README's exit code table lacks {code}");
    }
}

#[test]
fn every_toml_example_in_readme_loads() {
    let text = readme();
    let mut blocks = 0;
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed code block");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lifeboat.toml");
        std::fs::write(&path, &body[..end]).expect("write");
        for profile in [None, Some("staging"), Some("production")] {
            let opts = LoadOptions {
                config_file: Some(path.clone()),
                env_file: None,
                profile: profile.map(str::to_owned),
                ..LoadOptions::default()
            };
            Config::load_with_env(&opts, &HashMap::new()).unwrap_or_else(|e| {
                panic!(
                    "README's example does not load ({profile:?}): {e}\n{}",
                    &body[..end]
                )
            });
        }
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 1, "README has no ```toml example");
}
