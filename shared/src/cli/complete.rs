//! `completions SHELL` for every binary with clap_complete (filled in by issue 17).
