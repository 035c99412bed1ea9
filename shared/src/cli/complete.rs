//! `lifeboat-* completions SHELL` and `--version`, the same for every clap binary.

use std::process::ExitCode;

use clap::{Args, CommandFactory, ValueEnum};

/// `completions SHELL`: the completion script of this binary.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells a completion script is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The `after_help` of the `completions` subcommand: where each shell looks for the script.
pub const COMPLETIONS_HELP: &str = "\
Install, for one user (scripts/man --install does it for every binary):
  bash  lifeboat-backup completions bash \\
          > ~/.local/share/bash-completion/completions/lifeboat-backup
  zsh   lifeboat-backup completions zsh > ~/.zfunc/_lifeboat-backup
          (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  fish  lifeboat-backup completions fish \\
          > ~/.config/fish/completions/lifeboat-backup.fish

Exit codes:
  0  the script was written on stdout
  2  the request was wrong (a shell other than bash, zsh or fish)";

/// Write the completion script of `C` for `shell` to `out`.
pub fn write<C: CommandFactory>(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = C::command();
    let name = cmd.get_name().to_owned();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, out),
    }
}

/// `completions SHELL`: the script on stdout (it names no secret: no redaction needed, and
/// the redaction would mangle a script's `key=value` words).
pub fn print<C: CommandFactory>(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    write::<C>(args.shell, &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(ExitCode::SUCCESS)
}

/// `--version`: `0.1.0 (commit 1a2b3c4d5e6f, features: docker, db, s3)`, with the commit the
/// binary's build script found (`env!("LIFEBOAT_COMMIT")`) and the features compiled into the
/// `lifeboat` library, so that two builds can be told apart.
pub fn version(commit: &'static str) -> &'static str {
    let features: Vec<&str> = [
        ("docker", cfg!(feature = "docker")),
        ("db", cfg!(feature = "db")),
        ("redis", cfg!(feature = "redis")),
        ("s3", cfg!(feature = "s3")),
        ("mail", cfg!(feature = "mail")),
        ("http", cfg!(feature = "http")),
        ("progress", cfg!(feature = "progress")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    };
    let text = format!(
        "{} (commit {commit}, features: {features})",
        env!("CARGO_PKG_VERSION")
    );
    Box::leak(text.into_boxed_str())
}
