//! The command line a person meets, on the same rules as the five clap binaries, by hand: clap
//! would more than double this binary's size (see docs/lifeboat-healthcheck.md). `-h` is a
//! summary with one example, `--help` the whole text, `serve --help` serve's; every help wraps
//! to the terminal (`COLUMNS`) and keeps its examples' lines; a misspelled option or variable
//! gets the name meant, by clap's measure (Jaro similarity over 0.7); `completions SHELL`
//! writes a completion script from the same table of options.

/// Every option: its flags, the name of its value (none for a switch), and what it does.
pub const OPTIONS: &[(&str, Option<&str>, &str)] = &[
    ("--timeout", Some("DURATION"), "give up before this"),
    (
        "--expect-status",
        Some("SPEC"),
        "the statuses that count as healthy",
    ),
    ("--expect-body", Some("TEXT"), "the body contains TEXT"),
    (
        "--expect-json",
        Some("PTR=VALUE"),
        "the JSON value at PTR is VALUE",
    ),
    ("--header", Some("NAME: VALUE"), "send a header"),
    (
        "--cert-min-days",
        Some("N"),
        "the certificate is valid N more days",
    ),
    ("--insecure", None, "do not verify the TLS certificate"),
    ("--follow-redirects", None, "follow up to 5 redirects"),
    ("--head", None, "send HEAD: the status alone decides"),
    ("--listen", Some("ADDR"), "serve: where to listen"),
    ("--help", None, "this help (-h: a summary)"),
    ("--version", None, "the version, commit and features"),
];

/// The subcommands.
pub const SUBCOMMANDS: &[&str] = &["serve", "completions"];

pub const HELP: &str = "\
lifeboat-healthcheck: check that a service is healthy, for Docker's HEALTHCHECK

Usage: lifeboat-healthcheck [OPTIONS] [TARGET]...
       lifeboat-healthcheck serve [--listen ADDR] [OPTIONS] TARGET...
       lifeboat-healthcheck completions bash|zsh|fish

Targets (all must pass):
  http://HOST[:PORT]/PATH      a GET answered with the expected status
  https://HOST[:PORT]/PATH     the same over TLS, certificate verified
  tcp://HOST:PORT              the port accepts a connection
  postgres://USER:PASS@HOST[:PORT]/DB[?sslmode=require]
                               the server accepts the login and is ready (md5,
                               SCRAM)
  mysql://USER:PASS@HOST[:PORT]/DB[?ssl-mode=REQUIRED]
                               MySQL, MariaDB or TiDB accepts the login and
                               answers SELECT 1 (native and caching_sha2
                               passwords; ssl-mode, sslmode or Node's ssl=)
  redis://[:PASS@]HOST[:PORT]  PING answers PONG (LOADING is unhealthy)
  rediss://[:PASS@]HOST[:PORT] the same over TLS (managed Redis: Upstash)
  Without a target: $HEALTHCHECK_URL,
                   else http://127.0.0.1:${PORT:-3000}/api/health

Options (each also an environment variable, for exec-form HEALTHCHECK):
  --timeout DURATION       give up before this, e.g. 5s, 500ms
                           [HEALTHCHECK_TIMEOUT, default 5s]
  --expect-status SPEC     2xx, 200, 200-399 or 200,204
                           [HEALTHCHECK_EXPECT_STATUS, default 2xx]
  --expect-body TEXT       the body contains TEXT [HEALTHCHECK_EXPECT_BODY]
  --expect-json PTR=VALUE  the JSON value at pointer PTR is VALUE, e.g.
                           /status=healthy (repeatable)
                           [HEALTHCHECK_EXPECT_JSON]
  --header 'NAME: VALUE'   send a header (repeatable) [HEALTHCHECK_HEADER]
  --cert-min-days N        https: the certificate is valid N more days
                           [HEALTHCHECK_CERT_MIN_DAYS]
  --insecure               https: do not verify the certificate (said in the
                           report) [HEALTHCHECK_INSECURE=1]
  --follow-redirects       follow up to 5 redirects; --header values never go
                           to another host, port or scheme
                           [HEALTHCHECK_FOLLOW_REDIRECTS=1]
  --head                   send HEAD: the status alone decides (by default the
                           whole body must arrive before the timeout)
                           [HEALTHCHECK_HEAD=1]
  --listen ADDR            serve: where to listen; 0.0.0.0:8080 for other
                           containers
                           [HEALTHCHECK_LISTEN, default 127.0.0.1:8080]
  -h, --help               this help (-h: a summary)
  -V, --version            the version, the commit and the compiled probes

A variable starting with HEALTHCHECK_ that is none of these is refused
(unhealthy, with the name meant): a misspelled one must not leave a default in
its place.

serve answers GET / with JSON (status and latency of each target): 200 healthy,
503 not; a client has 5 seconds for its whole request.

Examples:
  HEALTHCHECK --interval=30s --timeout=10s \\
      CMD [\"/lifeboat-healthcheck\", \"--timeout\", \"8s\"]
  lifeboat-healthcheck --expect-json /status=healthy http://app:3000/api/health
  lifeboat-healthcheck tcp://db:5432 redis://cache:6379
  lifeboat-healthcheck serve --listen 0.0.0.0:8080 postgres://app:PASS@db/app

Exit codes:
  0  healthy
  1  unhealthy, or the check could not run (Docker reserves 2: it is never used)
";

pub const SHORT_HELP: &str = "\
lifeboat-healthcheck: check that a service is healthy, for Docker's HEALTHCHECK

Usage: lifeboat-healthcheck [OPTIONS] [TARGET]...
       lifeboat-healthcheck serve [--listen ADDR] [OPTIONS] TARGET...

Targets: http:// https:// tcp:// postgres:// mysql:// redis:// rediss://
(all must pass)

Example: HEALTHCHECK CMD [\"/lifeboat-healthcheck\", \"--timeout\", \"8s\"]

--help shows every option, its variable, more examples and the exit codes.
";

pub const SERVE_HELP: &str = "\
lifeboat-healthcheck serve: answer health requests over HTTP, for what cannot
run a probe

Usage: lifeboat-healthcheck serve [--listen ADDR] [OPTIONS] TARGET...

Each GET / runs the checks of every TARGET (the options are those of a check,
see lifeboat-healthcheck --help) and answers JSON with each target's status and
latency: 200 when all are healthy, 503 when one is not. At most 16 requests at
once; a client has 5 seconds for its whole request.

Options:
  --listen ADDR  where to listen [HEALTHCHECK_LISTEN, default 127.0.0.1:8080];
                 0.0.0.0:8080 for other containers

Example:
  lifeboat-healthcheck serve --listen 0.0.0.0:8080 tcp://db:5432 redis://cache

Exit codes:
  0  stopped
  1  it could not listen, or a bad argument
";

/// `text` wrapped to `width` columns: a longer line breaks at its last space before the edge,
/// and goes on under its description (after a run of two spaces) or its own indentation.
/// Lines that fit are kept as written, so examples stay whole at 80 columns.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(40);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // A lone note far to the right (`[HEALTHCHECK_HEAD=1]`) moves left to fit.
        let lead = line.len() - line.trim_start().len();
        let body = line.trim_start();
        let fitted;
        let line = if lead + body.chars().count() > width && !body.contains(' ') {
            let lead = width.saturating_sub(body.chars().count()).min(lead);
            fitted = format!("{}{body}", " ".repeat(lead));
            fitted.as_str()
        } else {
            line
        };
        let mut rest = line;
        let indent = hanging_indent(line);
        let mut first = true;
        loop {
            // The first line has the whole width; the next ones start at `indent`.
            let room = if first {
                width
            } else {
                width.saturating_sub(indent)
            };
            if rest.chars().count() <= room {
                break;
            }
            let limit = rest.char_indices().nth(room).map_or(rest.len(), |(i, _)| i);
            let floor = if first { indent } else { 0 };
            let Some(cut) = rest[..limit].rfind(' ').filter(|&c| c > floor) else {
                break;
            };
            out.push_str(rest[..cut].trim_end());
            out.push('\n');
            rest = rest[cut..].trim_start();
            out.push_str(&" ".repeat(indent));
            first = false;
        }
        if first || !rest.is_empty() {
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

/// Where a wrapped line goes on: the column after the first run of two or more spaces that
/// follows text (an option's description), else the line's own indentation.
fn hanging_indent(line: &str) -> usize {
    let lead = line.len() - line.trim_start().len();
    let body = &line[lead..];
    body.find("  ")
        .map(|gap| {
            let after = body[gap..].len() - body[gap..].trim_start().len();
            lead + gap + after
        })
        .filter(|&col| col < 40)
        .unwrap_or(lead)
}

/// The terminal's width from `COLUMNS`; without it (a pipe, `docker inspect`), no wrapping.
pub fn terminal_width(getenv: &dyn Fn(&str) -> Option<String>) -> usize {
    getenv("COLUMNS")
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(usize::MAX)
}

/// The name among `known` that `name` most likely meant, by clap's measure: Jaro similarity
/// over 0.7, `-` and `_` counted alike, the prefix every name shares (`--`, `HEALTHCHECK_`)
/// left out so that it does not make every name look alike.
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| {
        s.trim_start_matches('-')
            .trim_start_matches("HEALTHCHECK_")
            .to_ascii_lowercase()
            .replace('-', "_")
    };
    let wanted = fold(name);
    let mut best: Option<(f64, &str)> = None;
    for k in known {
        let score = jaro(&wanted, &fold(k));
        if score > 0.7 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| k)
}

/// The Jaro similarity of two strings, 0 (nothing alike) to 1 (equal).
fn jaro(a: &str, b: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = vec![false; b.len()];
    let mut a_matched = Vec::new();
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if let Some(j) = (lo..hi).find(|&j| !b_used[j] && b[j] == *ca) {
            b_used[j] = true;
            a_matched.push(*ca);
        }
    }
    if a_matched.is_empty() {
        return 0.0;
    }
    let b_matched = b.iter().zip(&b_used).filter(|(_, u)| **u).map(|(c, _)| *c);
    let transpositions = a_matched
        .iter()
        .zip(b_matched)
        .filter(|(x, y)| **x != *y)
        .count()
        / 2;
    #[allow(clippy::cast_precision_loss)] // names are short
    let (m, t, la, lb) = (
        a_matched.len() as f64,
        transpositions as f64,
        a.len() as f64,
        b.len() as f64,
    );
    (m / la + m / lb + (m - t) / m) / 3.0
}

/// `completions SHELL`: a completion script for the options, subcommands and shells.
pub fn completions(shell: &str) -> Option<String> {
    use std::fmt::Write as _;
    let flags: Vec<&str> = OPTIONS.iter().map(|(f, _, _)| *f).collect();
    let bin = "lifeboat-healthcheck";
    match shell {
        "bash" => Some(format!(
            "# bash completion for {bin}\n\
             _lifeboat_healthcheck() {{\n\
             \x20   local cur=\"${{COMP_WORDS[COMP_CWORD]}}\"\n\
             \x20   if [ \"$COMP_CWORD\" -eq 2 ] && [ \"${{COMP_WORDS[1]}}\" = completions ]; then\n\
             \x20       COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")); return\n\
             \x20   fi\n\
             \x20   COMPREPLY=($(compgen -W \"{} {}\" -- \"$cur\"))\n\
             }}\n\
             complete -o default -F _lifeboat_healthcheck {bin}\n",
            flags.join(" "),
            SUBCOMMANDS.join(" ")
        )),
        "zsh" => {
            let mut out = format!("#compdef {bin}\n\n_arguments \\\n");
            for (flag, value, help) in OPTIONS {
                let takes = value.map_or(String::new(), |v| format!(":{}:", v.to_lowercase()));
                let _ = writeln!(out, "  '{flag}[{help}]{takes}' \\");
            }
            let _ = write!(
                out,
                "  '1: :({} http:// https:// tcp:// postgres:// mysql:// redis:// rediss://)' \\\n  '*:target:'\n",
                SUBCOMMANDS.join(" ")
            );
            Some(out)
        }
        "fish" => {
            let mut out = format!("# fish completion for {bin}\n");
            for (flag, value, help) in OPTIONS {
                let long = flag.trim_start_matches("--");
                let takes = if value.is_some() { " -r" } else { "" };
                let _ = writeln!(out, "complete -c {bin} -l {long}{takes} -d '{help}'");
            }
            let _ = write!(
                out,
                "complete -c {bin} -n '__fish_use_subcommand' -a 'serve' -d 'answer health requests over HTTP'\n\
                 complete -c {bin} -n '__fish_use_subcommand' -a 'completions' -d 'a completion script'\n\
                 complete -c {bin} -n '__fish_seen_subcommand_from completions' -a 'bash zsh fish'\n"
            );
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_find_the_name_meant() {
        let flags = OPTIONS.iter().map(|(f, _, _)| *f);
        assert_eq!(nearest("--timout", flags.clone()), Some("--timeout"));
        assert_eq!(
            nearest("--expect_status", flags.clone()),
            Some("--expect-status")
        );
        assert_eq!(nearest("--frobnicate", flags), None);
        assert_eq!(
            nearest("HEALTHCHECK_TIMOUT", crate::env::ALL.iter().copied()),
            Some("HEALTHCHECK_TIMEOUT")
        );
    }

    #[test]
    fn help_wraps_to_the_terminal_and_keeps_short_lines() {
        for text in [HELP, SHORT_HELP, SERVE_HELP] {
            assert!(
                text.lines().all(|l| l.chars().count() <= 80),
                "written for 80 columns"
            );
        }
        assert_eq!(wrap(HELP, 80), HELP, "nothing wraps at 80 columns");
        let narrow = wrap(HELP, 60);
        assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
        assert!(narrow.contains("\n  tcp://HOST:PORT              the port accepts a connection\n"));
        let wide = wrap(HELP, 200);
        assert_eq!(wide.trim_end(), HELP.trim_end());
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_options() {
        for shell in ["bash", "zsh", "fish"] {
            let script = completions(shell).expect(shell);
            assert!(script.contains("timeout") && script.contains("lifeboat-healthcheck"));
        }
        assert!(completions("powershell").is_none());
    }
}
