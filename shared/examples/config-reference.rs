//! Print `docs/configuration.md`, generated from the settings table: `scripts/config-reference`
//! runs this and writes the file (or, with `--check`, compares it).

use std::io::Write as _;

fn main() -> std::io::Result<()> {
    // The reference as written: its examples hold placeholders, not secrets to redact.
    std::io::stdout().write_all(lifeboat::config::reference_markdown().as_bytes())
}
