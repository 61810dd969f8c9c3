//! The `suma` commands written in the docs (README.md and docs/*.md) and in the GitHub workflows, as
//! argument lists with where each is written. Only std: the command-line unit tests check that each parses
//! in its current spelling, and the sandbox tests (`tests/it/docs.rs`, which include this file) run the
//! ones that only read.

/// The repository these tests run in, two levels above this crate. Cargo's run-time value wins: a target
/// directory shared by checkouts at different paths may hold a test binary built in another one.
fn checkout_root() -> std::path::PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../..")
}

/// The `suma …` commands in the ```sh blocks of README.md and docs/*.md, as argument lists: what
/// follows `#` is a comment; `&&` and `|` separate commands; redirections are dropped.
pub fn documented_commands() -> Vec<(String, Vec<String>)> {
    let root = checkout_root();
    let mut files = vec![root.join("README.md")];
    files.extend(sorted_files(&root.join("docs"), "md"));
    let mut commands = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut in_shell = false;
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_shell = !in_shell && trimmed.trim_start_matches('`').starts_with("sh");
                continue;
            }
            if !in_shell {
                continue;
            }
            let code = trimmed.split(" #").next().unwrap_or_default();
            for segment in code.split("&&").flat_map(|s| s.split(" | ")) {
                let words = split_words(segment);
                let start = words.iter().position(|w| w == "suma");
                // `suma` as the command, after any `VAR=value` assignments.
                let Some(start) = start.filter(|&i| words[..i].iter().all(|w| w.contains('='))) else {
                    continue;
                };
                commands.push(command_at(&file, number, &words[start..]));
            }
        }
    }
    commands
}

/// The files of `dir` whose extension is `extension`, sorted.
fn sorted_files(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// `words` (from `suma` on) up to a redirection, with where they are written (`file:line`, 1-based).
fn command_at(file: &std::path::Path, index: usize, words: &[String]) -> (String, Vec<String>) {
    let args = words
        .iter()
        .take_while(|w| !w.starts_with('>') && !w.starts_with("2>"))
        .cloned()
        .collect();
    let place = format!("{}:{}", file.file_name().unwrap().to_string_lossy(), index + 1);
    (place, args)
}

/// Words as a shell splits them, for the quoting the docs use.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The GitHub workflows and the repository's action, which call suma from their scripts.
pub fn workflow_files() -> Vec<std::path::PathBuf> {
    let github = checkout_root().join(".github");
    let mut files = sorted_files(&github.join("workflows"), "yml");
    files.push(github.join("actions/suma/action.yml"));
    files
}

/// The `suma …` commands in the workflows' scripts, as argument lists: a line's `- run:`/`run:` and a
/// shell's `if`/`then` are dropped; `;`, `&&` and `|` separate commands; `$VAR` words stay as they are
/// (each stands for one value, quoted where the script quotes it).
pub fn workflow_commands() -> Vec<(String, Vec<String>)> {
    let mut commands = Vec::new();
    for file in workflow_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim().trim_start_matches("- ").trim_start_matches("run:").trim();
            for segment in code.split(';').flat_map(|s| s.split("&&")).flat_map(|s| s.split(" | ")) {
                let words = split_words(segment);
                let words = match words.first().map(String::as_str) {
                    Some("if" | "then" | "!") => &words[1..],
                    _ => &words[..],
                };
                if words.first().map(String::as_str) != Some("suma") {
                    continue;
                }
                commands.push(command_at(&file, number, words));
            }
        }
    }
    commands
}
