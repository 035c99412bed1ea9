//! docs/configuration.md is generated from the settings table; a change to the table without
//! the file (or an edit of the file by hand) fails here, without any service.

use std::path::Path;

#[test]
fn the_committed_configuration_reference_is_generated_from_the_settings_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == lifeboat::config::reference_markdown(),
        "docs/configuration.md is stale (or missing): run scripts/config-reference and commit it"
    );
}
