//! The command-line definition checked as a whole: clap's own consistency rules, and which commands the
//! definition makes mutating.

use clap::CommandFactory as _;

use super::examples::{documented_commands, workflow_commands, workflow_files};
use super::parse::deprecations;
use super::*;

/// Every command that runs as given, as its path (`deploy canary`) with its definition: the leaves, and
/// a command whose subcommands are optional (`rollback`, `rollback abort`).
fn leaves(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    if !command.has_subcommands() || command.is_args_conflicts_with_subcommands_set() {
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
        "deploy bluegreen",
        "deploy canary",
        "deploy pause",
        "deploy promote",
        "deploy resume",
        "dr abort",
        "dr drill",
        "dr failback",
        "dr failover",
        "dr switchover",
        "dr resume",
        "init",
        "lock release",
        "monitors apply",
        "monitors import",
        "rollback",
        "rollback abort",
        "rollback resume",
        "runbook abort",
        "runbook approve",
        "runbook resume",
        "runbook run",
        "secrets abort",
        "secrets resume",
        "secrets retire",
        "secrets rotate",
        "slos apply",
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

#[test]
fn an_old_spelling_parses_and_is_named_with_its_replacement() {
    let parsed = parse_from(["suma", "secrets", "rotate", "db", "--resume", "--rollout-timeout=5m"]);
    assert!(matches!(
        parsed.cli.command,
        Command::Secrets(SecretsCommand::Rotate(SecretsRotateArgs { resume: true, timeout, .. }))
            if timeout == std::time::Duration::from_secs(300)
    ));
    assert_eq!(parsed.deprecations.len(), 2, "{:?}", parsed.deprecations);
    assert!(
        parsed.deprecations[0].contains("`suma secrets resume NAME`"),
        "{:?}",
        parsed.deprecations
    );
    assert!(parsed.deprecations[1].starts_with("`--rollout-timeout` is deprecated"));
    // After `--`, nothing is a flag.
    let args = ["suma", "x", "--", "--abort"].map(std::ffi::OsString::from);
    assert!(deprecations(&args).is_empty());
    assert!(parse_from(["suma", "dr", "resume"]).deprecations.is_empty());
}

#[test]
fn rollback_takes_its_unfinished_forms_as_subcommands() {
    let parsed = parse_from(["suma", "rollback", "abort", "--reason", "bad metrics"]);
    let Command::Rollback(args) = parsed.cli.command else {
        panic!("not a rollback")
    };
    assert!(matches!(
        args.unfinished,
        Some(RollbackCommand::Abort(RollbackAbortArgs { reason: Some(ref r), .. })) if r == "bad metrics"
    ));
    let Command::Rollback(args) = parse_from(["suma", "rollback", "--reason", "x", "--timeout", "2m"])
        .cli
        .command
    else {
        panic!("not a rollback")
    };
    assert!(args.unfinished.is_none());
    assert_eq!(args.timeout, std::time::Duration::from_secs(120));
    // A new rollback needs its reason.
    let err = Cli::try_parse_from(["suma", "rollback"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn force_needs_a_reason() {
    for args in [
        &["suma", "secrets", "retire", "jwt", "--force"][..],
        &["suma", "deploy", "canary", "--image", "r/a:1", "--force"],
        &["suma", "taskdef", "register", "--force"],
        &["suma", "lock", "release", "--force"],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{args:?}");
        assert!(err.to_string().contains("--reason"), "{args:?}: {err}");
    }
}

#[test]
fn the_workflows_call_suma_in_its_current_spelling_and_fail_on_a_failing_pipe() {
    let commands = workflow_commands();
    assert!(
        commands.len() >= 12,
        "{} commands in the workflows: {commands:?}",
        commands.len()
    );
    assert_parse_in_current_spelling(commands);
    // GitHub's unnamed default shell is `bash -e` without `pipefail`: a failing `suma … | tee` would
    // pass its step, and a failed staging canary would let production go on.
    for file in workflow_files()
        .iter()
        .filter(|f| f.parent().is_some_and(|p| p.ends_with("workflows")))
    {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("\ndefaults:\n  run:\n    shell: bash\n"),
            "{}: set `defaults: run: shell: bash` so scripts run with pipefail",
            file.display()
        );
    }
}

#[test]
fn every_documented_command_parses_in_its_current_spelling() {
    let commands = documented_commands();
    assert!(commands.len() >= 30, "{} documented commands", commands.len());
    assert_parse_in_current_spelling(commands);
}

fn assert_parse_in_current_spelling(commands: Vec<(String, Vec<String>)>) {
    for (place, args) in commands {
        if let Err(e) = Cli::try_parse_from(&args) {
            // `--help` and `--version` end parsing by design.
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            assert!(
                matches!(e.kind(), DisplayHelp | DisplayVersion),
                "{place}: `{}` does not parse: {e}",
                args.join(" ")
            );
        }
        let os: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        assert!(
            deprecations(&os).is_empty(),
            "{place}: `{}` uses a deprecated spelling",
            args.join(" ")
        );
    }
}
