//! Print `docs/configuration.md`, generated from the settings table: `scripts/config-reference`
//! runs this and writes the file (or, with `--check`, compares it).

fn main() {
    print!("{}", lifeboat::config::reference_markdown());
}
