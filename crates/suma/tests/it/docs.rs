//! The docs' examples run against the sandbox, so they cannot drift: every `suma …` command written in
//! README.md and docs/*.md that only reads, or plans with `--dry-run`, runs as written (the sandbox has
//! the docs' `staging` and `production`; the reader's image, `REPO:TAG`, is filled in) and must end with
//! 0 or 1 — never a usage or configuration error (2) or a failure to run (3). The command-line unit tests
//! check that every example, the changing ones too, parses in its current spelling.

use clap::Parser as _;

use crate::common::{self, run, suma};

#[allow(dead_code)]
#[path = "../../src/cli/examples.rs"]
mod examples;

/// The image the docs write as `REPO:TAG`: any image reference does in the sandbox, whose agent runs the
/// service's binary for every image.
const DOCS_IMAGE: &str = "registry.local/auth-service:9.9.9-docs";

/// `REPO:TAG` (the reader's image) as [`DOCS_IMAGE`], so examples that only read with an image run too.
fn fill_in_the_image(word: String) -> String {
    if word == "REPO:TAG" {
        DOCS_IMAGE.to_owned()
    } else {
        word
    }
}

/// Examples run at once.
const CONCURRENT_EXAMPLES: usize = 4;

/// Why an example is not run, or `None` to run it.
fn not_run(args: &[String]) -> Option<&'static str> {
    if suma::cli::Cli::try_parse_from(args).is_err() {
        return Some("ends in help or the version");
    }
    // `20261205T061525-3bfda0`, `postgres://…`: a value the reader fills in (`REPO:TAG` is filled in).
    let placeholder = |word: &String| {
        word.contains('…')
            || (word.len() > 2 && word.chars().all(|c| c.is_ascii_uppercase() || c == ':' || c == '_'))
            || (word.len() == 22 && word.as_bytes()[8] == b'T' && word.as_bytes()[15] == b'-')
    };
    if args.iter().any(placeholder) {
        return Some("holds a placeholder");
    }
    let changes = suma::cli::parse_from(args).mutating;
    if changes && !args.iter().any(|a| a == "--dry-run") {
        return Some("changes the environment");
    }
    None
}

#[test]
fn every_documented_command_that_only_reads_runs_against_the_sandbox() {
    crate::require_sandbox!();
    let _staging = common::staging_shared();
    // The docs are read from the repository's root (`templates/` is relative to it); what `--out`
    // writes goes to a directory of the test's.
    let root = common::workspace_root();
    let written = tempfile::tempdir().unwrap();
    let (mut runs, mut skipped) = (Vec::new(), Vec::new());
    for (place, args) in examples::documented_commands() {
        let args: Vec<String> = args.into_iter().map(fill_in_the_image).collect();
        if let Some(reason) = not_run(&args) {
            skipped.push(format!("{place} ({reason})"));
            continue;
        }
        let mut args = args;
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
                    if ![0, 1].contains(&out.code) {
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
    eprintln!("ran {} documented commands; not run: {}", ran.len(), skipped.join(", "));
    assert!(ran.len() >= 20, "ran only {}: {ran:?}", ran.len());
}
