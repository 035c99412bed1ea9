//! `lifeboat-man OUTDIR`: the man pages (`OUTDIR/man/man1/lifeboat-*.1`) and the completion
//! scripts (`OUTDIR/completions/{bash,zsh,fish}/…`) of the six binaries, from their own
//! definitions: clap's for five (rendered by clap_mangen, which no shipped binary links), and
//! lifeboat-healthcheck's help text and option table for the sixth. `scripts/man` runs it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use lifeboat::cli::complete::{self, Shell};

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        let _ = writeln!(std::io::stderr(), "usage: lifeboat-man OUTDIR");
        return ExitCode::from(2);
    };
    match write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "lifeboat-man: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> std::io::Result<()> {
    let man = out.join("man/man1");
    fs::create_dir_all(&man)?;
    clap_page::<lifeboat_backup::Cli>(out, &man)?;
    clap_page::<lifeboat_restore::Cli>(out, &man)?;
    clap_page::<lifeboat_smoke::Cli>(out, &man)?;
    clap_page::<lifeboat_deploy::Cli>(out, &man)?;
    clap_page::<lifeboat_rollback::Cli>(out, &man)?;
    healthcheck_page(out, &man)
}

/// A clap binary's man page and its three completion scripts.
fn clap_page<C: CommandFactory>(out: &Path, man: &Path) -> std::io::Result<()> {
    let cmd = C::command();
    let name = cmd.get_name().to_owned();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    fs::write(man.join(format!("{name}.1")), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut script = Vec::new();
        complete::write::<C>(shell, &mut script);
        write_completion(out, &name, shell, &script)?;
    }
    Ok(())
}

/// lifeboat-healthcheck has no clap (its size): its page is its help text, as written.
fn healthcheck_page(out: &Path, man: &Path) -> std::io::Result<()> {
    let name = "lifeboat-healthcheck";
    let body: String = lifeboat_healthcheck::HELP
        .lines()
        .map(|l| {
            let l = l.replace('\\', "\\e");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let page = format!(
        ".TH {} 1 \"\" \"{name} {}\"\n.SH NAME\n{name} \\- check that a service is healthy, for Docker's HEALTHCHECK\n.SH DESCRIPTION\n.nf\n{body}.fi\n",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION")
    );
    fs::write(man.join(format!("{name}.1")), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let script = lifeboat_healthcheck::completions(shell_name(shell)).unwrap_or_default();
        write_completion(out, name, shell, script.as_bytes())?;
    }
    Ok(())
}

fn shell_name(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "bash",
        Shell::Zsh => "zsh",
        Shell::Fish => "fish",
    }
}

/// Where each shell looks: `bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`.
fn write_completion(out: &Path, name: &str, shell: Shell, script: &[u8]) -> std::io::Result<()> {
    let dir = out.join("completions").join(shell_name(shell));
    fs::create_dir_all(&dir)?;
    let file = match shell {
        Shell::Bash => name.to_owned(),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
    };
    fs::write(dir.join(file), script)
}
