//! The command line read the same way by every clap binary, before anything else happens.
//!
//! clap does the parsing; this adds what a newcomer needs around it, at the root rather than
//! case by case:
//! - every message clap prints passes through the one redaction ([`crate::redact`]): a bad
//!   value can be a URL with a password;
//! - a value that came from an environment variable is blamed on the variable, not on the flag
//!   the person never typed (`LIFEBOAT_LOG_FORMAT=xml`);
//! - a free argument (VERSION, BACKUP) that clap's own matcher takes for a misspelled
//!   subcommand (`lifeboat-deploy stauts`) is refused, exit 2, before any engine or database
//!   is asked anything; `--` before it says it really is a name;
//! - the logs are set up ([`crate::output::init`]), and a bad `LIFEBOAT_LOG` filter is exit 2.

use std::ffi::OsString;
use std::io::Write as _;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command, Parser};

use super::GlobalArgs;
use crate::exit::USAGE;

/// Parse the process's command line into `C` and start the logs; on a wrong request print why
/// (redacted) and exit 2, on `--help`/`--version` print them and exit 0.
pub fn parse<C: Parser>(global: impl FnOnce(&C) -> &GlobalArgs) -> C {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match try_parse::<C>(&args) {
        Ok(cli) => cli,
        Err(Refused::Clap(err)) => exit_with_clap(&err, &C::command(), &args),
        Err(Refused::Message(text)) => exit_usage(&text),
    };
    if let Err(err) = crate::output::init(&global(&cli).output()) {
        exit_usage(&format!("error: {err}"));
    }
    cli
}

/// Why a command line was refused.
#[derive(Debug)]
pub enum Refused {
    /// clap's own error (including `--help` and `--version`, which are not failures).
    Clap(clap::Error),
    /// lifeboat's own, already worded.
    Message(String),
}

/// [`parse`] without exiting, for tests: the same checks on `args` (`args[0]` is the binary).
pub fn try_parse<C: Parser>(args: &[OsString]) -> Result<C, Refused> {
    let mut cmd = C::command();
    let matches = cmd
        .try_get_matches_from_mut(args.iter().cloned())
        .map_err(Refused::Clap)?;
    if let Some(text) = subcommand_lookalike(&cmd, &matches, args) {
        return Err(Refused::Message(text));
    }
    C::from_arg_matches(&matches).map_err(|e| Refused::Clap(e.format(&mut cmd)))
}

/// A free argument of the top command given with a subcommand (`restore latest list`), or one
/// that clap's matcher takes for a misspelled subcommand (`deploy stauts`): refused.
fn subcommand_lookalike(cmd: &Command, matches: &ArgMatches, args: &[OsString]) -> Option<String> {
    cmd.get_subcommands().next()?;
    let bin = cmd.get_name();
    let free: Vec<(String, String)> = cmd
        .get_positionals()
        .filter_map(|arg| {
            let values = matches.get_raw(arg.get_id().as_str())?;
            let id = arg.get_value_names().and_then(|v| v.first()).map_or_else(
                || arg.get_id().to_string().to_uppercase(),
                ToString::to_string,
            );
            Some(values.map(move |v| (id.clone(), v.to_string_lossy().into_owned())))
        })
        .flatten()
        .collect();
    if let Some((sub, _)) = matches.subcommand() {
        let (id, value) = free.first()?;
        return Some(format!(
            "error: the subcommand '{sub}' takes no {id}, and '{value}' was given before it\n\n  tip: {bin} {sub} --help says what it takes\n\nFor more information, try '--help'."
        ));
    }
    if args.iter().any(|a| a == "--") {
        return None;
    }
    free.iter().find_map(|(id, value)| {
        let suggested = suggest_subcommand(cmd, value)?;
        Some(format!(
            "error: '{value}' looks like a subcommand, not a {id}\n\n  tip: did you mean '{suggested}'? ({bin} {suggested} --help says what it does)\n  tip: if '{value}' really is a {id}, put -- before it: {bin} -- {value}\n\nFor more information, try '--help'."
        ))
    })
}

/// The subcommand `value` names or, by clap's own matcher, nearly names.
fn suggest_subcommand(cmd: &Command, value: &str) -> Option<String> {
    let probe = Command::new("probe")
        .disable_help_subcommand(true)
        .subcommands(cmd.get_subcommands().cloned())
        .try_get_matches_from(["probe", value]);
    match probe {
        Ok(m) => m.subcommand_name().map(ToOwned::to_owned),
        Err(err) if err.kind() == ErrorKind::InvalidSubcommand => {
            match err.get(ContextKind::SuggestedSubcommand) {
                Some(ContextValue::Strings(s)) => Some(s.join("' or '")),
                _ => None,
            }
        }
        Err(_) => None,
    }
}

/// Print clap's error (help and version on stdout, exit 0; the rest on stderr, exit 2).
fn exit_with_clap(err: &clap::Error, cmd: &Command, args: &[OsString]) -> ! {
    let color = match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            std::io::IsTerminal::is_terminal(&std::io::stdout())
        }
        _ => crate::output::color_enabled(),
    };
    let rendered = err.render();
    let text = if color {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    if !err.use_stderr() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(crate::redact::redact(&text).as_bytes());
        let _ = out.flush();
        std::process::exit(0);
    }
    exit_usage(&blame_the_variable(err, cmd, &text, args));
}

/// clap names the flag of a bad value even when the value came from the flag's environment
/// variable: name the variable then, which is what the person has to change.
fn blame_the_variable(err: &clap::Error, cmd: &Command, text: &str, args: &[OsString]) -> String {
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return text.to_owned();
    };
    let Some(long) = arg
        .split_whitespace()
        .next()
        .and_then(|f| f.strip_prefix("--"))
    else {
        return text.to_owned();
    };
    let given = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a.strip_prefix("--")
            .is_some_and(|rest| rest == long || rest.starts_with(&format!("{long}=")))
    });
    match variable_of(cmd, long) {
        Some(var) if !given && std::env::var_os(&var).is_some() => text.replacen(
            &format!("'{arg}'"),
            &format!("{var} (the variable of --{long})"),
            1,
        ),
        _ => text.to_owned(),
    }
}

/// The environment variable of the flag `--long`, in the command or any subcommand.
fn variable_of(cmd: &Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .or_else(|| cmd.get_subcommands().find_map(|s| variable_of(s, long)))
}

/// A refused request: the text on stderr, redacted, and exit 2.
fn exit_usage(text: &str) -> ! {
    let mut err = std::io::stderr().lock();
    let text = crate::redact::redact(text);
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
    std::process::exit(i32::from(USAGE));
}
