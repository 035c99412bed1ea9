//! The progress bars of a restore (`checking`, `restoring`): lifeboat's shared bar
//! ([`lifeboat::progress`], indicatif: bytes, rate and time left), drawn only on a terminal,
//! without `--no-progress`, `-q` or `--log-format json`.

pub use lifeboat::progress::Bar;
