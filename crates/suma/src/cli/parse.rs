//! From argv to an [`Invocation`]: clap parses, then the command's definition says whether it mutates
//! (its leaf takes `--yes`) and which deprecated spellings were used, so no list is kept by hand.

use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _};

use super::Cli;

/// The parsed command line, and what the command's definition says about it.
#[derive(Debug)]
pub struct Invocation {
    pub cli: Cli,
    /// The command changes something. Every such command asks before it acts (it takes `--yes`), so the
    /// definition says it and no list is kept by hand. On a signal a mutating command stops at a safe
    /// point and records its state; any other is dropped.
    pub mutating: bool,
    /// A warning for each deprecated spelling used.
    pub deprecations: Vec<String>,
}

/// The arguments of the `runbook run` that `words` (the command line without `suma`) spell, or `None`
/// when they spell another command or do not parse: `suma iam-policy runbook run NAME` reads the runbook.
pub fn runbook_run_args(words: &[String]) -> Option<super::RunbookRunArgs> {
    let argv = std::iter::once("suma").chain(words.iter().map(String::as_str));
    match <Cli as clap::Parser>::try_parse_from(argv).ok()?.command {
        super::Command::Runbook(super::RunbookCommand::Run(args)) => Some(args),
        _ => None,
    }
}

/// Spellings kept, hidden, for one release; each use prints a warning that names its replacement.
const DEPRECATED: &[(&str, &str)] = &[
    ("--rollout-timeout", "`--timeout`"),
    (
        "--resume",
        "the `resume` subcommand (`suma dr resume`, `suma secrets resume NAME`, `suma rollback resume`)",
    ),
    (
        "--abort",
        "the `abort` subcommand (`suma dr abort`, `suma secrets abort NAME`, `suma rollback abort`)",
    ),
];

/// The deprecated spellings among `args` (up to a `--`), as warnings.
pub(super) fn deprecations(args: &[std::ffi::OsString]) -> Vec<String> {
    let mut found = Vec::new();
    for arg in args.iter().skip(1).map(|a| a.to_string_lossy()) {
        if arg == "--" {
            break;
        }
        for (old, new) in DEPRECATED {
            let used = arg == *old || arg.strip_prefix(old).is_some_and(|rest| rest.starts_with('='));
            if used && !found.iter().any(|f: &String| f.starts_with(&format!("`{old}`"))) {
                found.push(format!(
                    "`{old}` is deprecated and will be removed in the next release: use {new}"
                ));
            }
        }
    }
    found
}

/// Parses the process's arguments; on a usage error prints it and exits 2.
pub fn parse() -> Invocation {
    parse_from(std::env::args_os())
}

pub fn parse_from<I, T>(args: I) -> Invocation
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = command.clone().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Invocation {
        cli,
        mutating: asks_for_confirmation(&command, &matches),
        deprecations: deprecations(&args),
    }
}

/// Whether the subcommand `matches` selects (down to its leaf) takes `--yes`.
fn asks_for_confirmation(command: &clap::Command, matches: &ArgMatches) -> bool {
    match matches.subcommand() {
        Some((name, sub)) => command
            .find_subcommand(name)
            .is_some_and(|leaf| asks_for_confirmation(leaf, sub)),
        None => command.get_arguments().any(|arg| arg.get_id() == "yes"),
    }
}
