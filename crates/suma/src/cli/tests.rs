//! The command-line definition checked as a whole: clap's own consistency rules, and which commands the
//! definition makes mutating.

use clap::CommandFactory as _;

use super::*;

/// Every leaf command as its path (`deploy canary`) with the definition it ends in.
fn leaves(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    if !command.has_subcommands() {
        out.push((path.trim().to_owned(), command.clone()));
    }
    for sub in command.get_subcommands() {
        leaves(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

fn all_leaves() -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    leaves(&Cli::command(), "", &mut out);
    out
}

fn takes(command: &clap::Command, id: &str) -> bool {
    command.get_arguments().any(|arg| arg.get_id() == id)
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn the_commands_that_ask_before_acting_are_the_mutating_ones() {
    let mut mutating: Vec<String> = all_leaves()
        .into_iter()
        .filter(|(_, command)| takes(command, "yes"))
        .map(|(path, _)| path)
        .collect();
    mutating.sort();
    let mut expected = [
        "dashboards apply",
        "deploy abort",
        "deploy canary",
        "deploy pause",
        "deploy promote",
        "deploy resume",
        "dr drill",
        "dr failback",
        "dr failover",
        "lock release",
        "monitors apply",
        "rollback",
        "runbook abort",
        "runbook resume",
        "runbook run",
        "secrets retire",
        "secrets rotate",
        "taskdef register",
    ];
    expected.sort_unstable();
    assert_eq!(mutating, expected, "a command that changes something takes `--yes`");
}

#[test]
fn every_command_with_a_dry_run_asks_before_acting() {
    for (path, command) in all_leaves() {
        if takes(&command, "dry_run") {
            assert!(
                takes(&command, "yes"),
                "`suma {path}` plans with --dry-run but never asks"
            );
        }
    }
}

#[test]
fn parsing_tells_a_mutating_command_from_a_reading_one() {
    let parsed = |args: &[&str]| parse_from(std::iter::once("suma").chain(args.iter().copied()));
    assert!(parsed(&["lock", "release", "--force", "--reason", "runner died"]).mutating);
    assert!(parsed(&["deploy", "abort", "--env", "staging"]).mutating);
    assert!(parsed(&["monitors", "apply"]).mutating);
    assert!(!parsed(&["status"]).mutating);
    assert!(!parsed(&["monitors", "diff"]).mutating);
    assert!(!parsed(&["lock", "status"]).mutating);
    assert!(!parsed(&["runbook", "validate"]).mutating);
}
