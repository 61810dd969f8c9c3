//! Everything suma prints goes through here: data to stdout (tables or JSON), progress, prompts and
//! errors to stderr. Honours `--output`, `--no-color`/`NO_COLOR` and whether streams are terminals.

pub mod compliance;
pub mod deploy;
pub mod dr;
pub mod monitoring;
mod reporter;
pub mod runbook;
pub mod secrets;
pub mod status;
pub mod tables;
pub mod taskdef;

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::config::OutputFormat;

pub use reporter::TerminalReporter;

/// Writes command results.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: OutputFormat,
    pub color: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, color: bool) -> Self {
        // Colour only where a person reads it: never in pipes, files or CI logs.
        console::set_colors_enabled(color && std::io::stdout().is_terminal());
        console::set_colors_enabled_stderr(color && std::io::stderr().is_terminal());
        Self { format, color }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints `value` as pretty JSON to stdout.
    pub fn json<T: Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("reports always serialize");
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Prints human text to stdout, fitted to the terminal ([`tables::fit_lines`]).
    pub fn text(&self, text: &str) {
        let text = tables::fit_lines(text);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    /// JSON when `--output json`, otherwise the human rendering.
    pub fn either<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.is_json() {
            self.json(value);
        } else {
            self.text(&human());
        }
    }
}

/// Prints an error and its causes to stderr, with hints on their own lines.
pub fn error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let red = console::style("error").red().bold();
    let mut lines = Vec::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        // A cause whose text repeats its parent's adds nothing.
        if lines.iter().any(|l: &String| l.contains(&text)) {
            continue;
        }
        if i == 0 {
            lines.push(text);
        } else {
            lines.push(format!("  caused by: {text}"));
        }
    }
    let text = lines.join("\n");
    let mut hints = Vec::new();
    let mut body = Vec::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("hint: ") {
            Some(hint) => hints.push(hint.to_owned()),
            None => body.push(line.to_owned()),
        }
    }
    let _ = writeln!(stderr, "{red}: {}", body.join("\n"));
    for hint in hints {
        let _ = writeln!(stderr, "  {}: {hint}", console::style("hint").cyan().bold());
    }
}

/// Why a mutating command did not ask: it must not guess when nobody can answer.
#[derive(Debug, thiserror::Error)]
#[error("refusing to {action} without confirmation: stdin is not a terminal\nhint: pass `--yes` to confirm non-interactively")]
pub struct ConfirmationRequired {
    pub action: String,
}

/// Asks "ACTION? [y/N]" on the terminal; `--yes` answers for it.
pub fn confirm(action: &str, yes: bool) -> Result<bool, ConfirmationRequired> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(ConfirmationRequired {
            action: action.to_owned(),
        });
    }
    eprint!("{} {action}? [y/N] ", console::style("?").yellow().bold());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
