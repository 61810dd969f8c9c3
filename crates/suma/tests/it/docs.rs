//! The docs' examples run against the sandbox, so they cannot drift: every `suma …` command written in
//! README.md and docs/*.md runs (the sandbox has the docs' `staging` and `production`; the reader's
//! image, `REPO:TAG`, and operation id are filled in) and must end with 0 or 1 — never a usage or
//! configuration error (2) or a failure to run (3). One that only reads runs as written; one that changes
//! the environment runs with `--dry-run`, so its flags, its configuration and its plan against the
//! sandbox's live state are checked while nothing changes (each changing command is run for real by the
//! sandbox tests of its own area). The command-line unit tests check that every example parses.

use clap::Parser as _;

use crate::common::{self, run, suma};

#[allow(dead_code)]
#[path = "../../src/cli/examples.rs"]
mod examples;

/// The image the docs write as `REPO:TAG`: any image reference does in the sandbox, whose agent runs the
/// service's binary for every image.
const DOCS_IMAGE: &str = "registry.local/auth-service:9.9.9-docs";

/// `20261205T061525-3bfda0`: an operation id as `suma ops list` prints it.
fn is_operation_id(word: &str) -> bool {
    word.len() == 22 && word.as_bytes()[8] == b'T' && word.as_bytes()[15] == b'-'
}

/// The reader's values filled in: `REPO:TAG` as [`DOCS_IMAGE`], an operation id as `operation`, a real
/// one of the sandbox's journal.
fn fill_in(word: String, operation: &str) -> String {
    if word == "REPO:TAG" {
        DOCS_IMAGE.to_owned()
    } else if is_operation_id(&word) {
        operation.to_owned()
    } else {
        word
    }
}

/// The id of one of staging's journaled operations, for the examples that show one: staging's newest,
/// or, on a sandbox where nothing has run on staging yet, a run of the read-only `release-smoke`
/// runbook, journaled as any operation is.
fn an_operation_id(root: &std::path::Path) -> String {
    let newest = || {
        let out = run(suma(&["ops", "list", "--env", "staging", "--limit", "1", "--output", "json"]).current_dir(root));
        assert_eq!(out.code, 0, "suma ops list: {}", out.stderr);
        let ops: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        ops[0]["id"].as_str().map(str::to_owned)
    };
    if let Some(id) = newest() {
        return id;
    }
    let out = run(suma(&["runbook", "run", "release-smoke", "--env", "staging", "--yes"]).current_dir(root));
    assert_eq!(out.code, 0, "suma runbook run release-smoke: {}", out.stderr);
    newest().expect("the runbook's run is in staging's journal")
}

/// Examples run at once.
const CONCURRENT_EXAMPLES: usize = 4;

/// Why an example is not run, or `None` to run it.
fn not_run(args: &[String]) -> Option<&'static str> {
    if suma::cli::Cli::try_parse_from(args).is_err() {
        return Some("ends in help or the version");
    }
    // `postgres://…`, `NAME`: a value the reader fills in (the image and an operation id are filled in).
    let placeholder = |word: &String| {
        word.contains('…') || (word.len() > 2 && word.chars().all(|c| c.is_ascii_uppercase() || c == ':' || c == '_'))
    };
    if args.iter().any(placeholder) {
        return Some("holds a placeholder");
    }
    None
}

/// Whether a `resume` or `abort` example found nothing to continue: the sandbox has no interrupted
/// operation of its kind, and the command says so (exit 3, the environment's state refused it) after
/// reading the journal. That is the example run as far as the sandbox's state lets it go.
fn nothing_to_continue(args: &[String], out: &common::Run) -> bool {
    let continues = args.iter().any(|a| a == "resume" || a == "abort");
    let said = ["no unfinished", "no interrupted"]
        .iter()
        .any(|words| out.stderr.contains(words));
    continues && out.code == 3 && said
}

/// A command that changes the environment, as its plan: with `--dry-run`.
fn planned(mut args: Vec<String>) -> (Vec<String>, bool) {
    let changes = suma::cli::parse_from(&args).mutating;
    let plans = changes && !args.iter().any(|a| a == "--dry-run");
    if plans {
        args.push("--dry-run".to_owned());
    }
    (args, plans)
}

#[test]
fn every_documented_command_that_only_reads_runs_against_the_sandbox() {
    crate::require_sandbox!();
    let _staging = common::staging_shared();
    // The docs are read from the repository's root (`templates/` is relative to it); what `--out`
    // writes goes to a directory of the test's.
    let root = common::workspace_root();
    let written = tempfile::tempdir().unwrap();
    let operation = an_operation_id(&root);
    let (mut runs, mut skipped, mut dry_runs) = (Vec::new(), Vec::new(), 0);
    for (place, args) in examples::documented_commands() {
        let args: Vec<String> = args.into_iter().map(|word| fill_in(word, &operation)).collect();
        if let Some(reason) = not_run(&args) {
            skipped.push(format!("{place} ({reason})"));
            continue;
        }
        let (mut args, plans) = planned(args);
        dry_runs += usize::from(plans);
        if let Some(file) = args.iter().position(|a| a == "--out").map(|i| i + 1) {
            args[file] = written.path().join(&args[file]).to_string_lossy().into_owned();
        }
        runs.push((place, args));
    }
    // They only read, so they run side by side.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT_EXAMPLES {
            scope.spawn(|| {
                while let Some((place, args)) = runs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let words: Vec<&str> = args[1..].iter().map(String::as_str).collect();
                    let out = run(suma(&words).current_dir(&root));
                    if ![0, 1].contains(&out.code) && !nothing_to_continue(args, &out) {
                        failures.lock().unwrap().push(format!(
                            "{place}: `{}` exited {}:\n{}",
                            args.join(" "),
                            out.code,
                            out.stderr.trim()
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let ran: Vec<_> = runs.iter().map(|(place, _)| place).collect();
    eprintln!(
        "ran {} documented commands ({dry_runs} of them with --dry-run added); not run: {}",
        ran.len(),
        skipped.join(", ")
    );
    assert!(ran.len() >= 35, "ran only {}: {ran:?}", ran.len());
    assert!(dry_runs >= 15, "planned only {dry_runs} changing commands");
}
