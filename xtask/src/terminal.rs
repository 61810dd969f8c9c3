//! The demo's promise that suma's output fits the terminal: every `suma` the demo runs is given the
//! terminal's width (`COLUMNS`, as suma reads it when its stdout is not a terminal), its stdout is echoed
//! line by line, and a line wider than that width fails the demo, naming the command and the line.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use crate::process::Result;

/// The width the demo's output must fit when the terminal's is unknown (CI, a pipe).
const DEFAULT_WIDTH: usize = 100;

/// The terminal's width: `COLUMNS`, else what `stty` says of the controlling terminal, else
/// [`DEFAULT_WIDTH`]; found once per run of the demo.
pub fn width() -> usize {
    static WIDTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WIDTH.get_or_init(find_width)
}

fn find_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()) {
        return columns;
    }
    let from_tty = std::fs::File::open("/dev/tty").ok().and_then(|tty| {
        let out = Command::new("stty").arg("size").stdin(tty).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace().nth(1)?.parse().ok()
    });
    from_tty.filter(|&w: &usize| w > 0).unwrap_or(DEFAULT_WIDTH)
}

/// The columns `line` takes on a terminal: its characters without ANSI escape sequences (colours).
pub fn display_width(line: &str) -> usize {
    let mut width = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then one final byte in @..~.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        width += 1;
    }
    width
}

/// Runs `cmd` (a `suma` of the demo) with `COLUMNS` set to [`width`], echoing its stdout; returns its exit
/// code, or an error naming the first line wider than the terminal.
pub fn run_fitting(cmd: &mut Command) -> Result<Option<i32>> {
    let width = width();
    let mut child = cmd
        .env("COLUMNS", width.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut too_wide = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        let columns = display_width(&line);
        if columns > width && too_wide.is_none() {
            too_wide = Some((columns, line));
        }
    }
    let status = child.wait().map_err(|e| format!("cannot wait for {cmd:?}: {e}"))?;
    if let Some((columns, line)) = too_wide {
        let program = std::path::Path::new(cmd.get_program()).file_name().unwrap_or_default();
        let words: Vec<_> = std::iter::once(program)
            .chain(cmd.get_args())
            .map(|w| w.to_string_lossy())
            .collect();
        return Err(format!(
            "`{}` printed a line of {columns} columns on a terminal of {width}:\n{line}",
            words.join(" ")
        ));
    }
    Ok(status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_take_no_columns() {
        assert_eq!(display_width("plain"), 5);
        assert_eq!(display_width("\u{1b}[1;31mfailed\u{1b}[0m here"), 11);
        assert_eq!(display_width("│ ✓ ok │"), 8);
        assert_eq!(display_width(""), 0);
    }

    #[test]
    fn a_line_wider_than_the_terminal_fails_the_run() {
        std::env::set_var("COLUMNS", "10");
        let fits = run_fitting(Command::new("printf").arg("0123456789\\nshort\\n")).unwrap();
        assert_eq!(fits, Some(0));
        let error = run_fitting(Command::new("printf").arg("ok\\n0123456789A\\n")).unwrap_err();
        assert!(error.contains("a line of 11 columns on a terminal of 10"), "{error}");
        assert!(error.ends_with("0123456789A"), "{error}");
    }
}
