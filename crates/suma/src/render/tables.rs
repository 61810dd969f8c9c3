//! Small helpers to build tables with tabled, one style for the whole tool, and what makes output fit the
//! terminal. Tables fit it: the widest columns (facts, errors, ARNs) wrap first, so a row is never wider
//! than the screen; the prose around them (an outcome and its reason) wraps between words. The full values
//! are in `--output json`, and `suma ops show --wide` turns the fitting off.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tabled::builder::Builder;
use tabled::settings::peaker::Priority;
use tabled::settings::{Style, Width};

/// Set by `--wide`: tables keep every value on one line whatever the terminal's width.
static WIDE: AtomicBool = AtomicBool::new(false);

/// Tables from now on are not fitted to the terminal.
pub fn set_wide() {
    WIDE.store(true, Ordering::Relaxed);
}

/// Narrower than this, wrapping makes a table unreadable; it is left as it is.
const NARROWEST: usize = 40;

/// The width tables must fit: the terminal's when stdout is one, else `COLUMNS` when set. `None` in pipes
/// and files without `COLUMNS`, so scripts and `grep` see whole values.
fn max_width() -> Option<usize> {
    if WIDE.load(Ordering::Relaxed) {
        return None;
    }
    let width = if std::io::stdout().is_terminal() {
        console::Term::stdout()
            .size_checked()
            .map(|(_, columns)| usize::from(columns))
    } else {
        std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok())
    };
    width.filter(|w| *w >= NARROWEST)
}

/// Wraps the widest columns first until every line of `table` is at most `width` wide.
fn fit(table: &mut tabled::Table, width: usize) {
    table.with(Width::wrap(width).priority(Priority::max(true)).keep_words(true));
}

/// `text` with every line wider than the terminal wrapped between words, its continuation indented two
/// spaces past the line's own indentation; a word wider than the line is cut. Lines of a fitted table are
/// never wider, so they pass as they are. Unchanged where tables are not fitted (pipes, `--wide`).
pub fn fit_lines(text: &str) -> std::borrow::Cow<'_, str> {
    match max_width() {
        Some(width) => wrap_lines(text, width),
        None => text.into(),
    }
}

fn wrap_lines(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    let measure = console::measure_text_width;
    if text.lines().all(|line| measure(line) <= width) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + text.len() / width.max(1) * 4);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if measure(line) <= width {
            out.push_str(line);
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let continuation = format!("{indent}  ");
        let mut current = indent.to_owned();
        let mut used = measure(indent);
        let mut words_on_line = 0;
        for word in line.split_whitespace() {
            let mut word = word.to_owned();
            loop {
                let room = width.saturating_sub(used + usize::from(words_on_line > 0));
                let fits = measure(&word) <= room;
                if fits || (words_on_line == 0 && room == 0) {
                    if words_on_line > 0 {
                        current.push(' ');
                        used += 1;
                    }
                    used += measure(&word);
                    current.push_str(&word);
                    words_on_line += 1;
                    break;
                }
                if words_on_line == 0 {
                    // Wider than a whole line: cut it where the line ends.
                    let cut: String = word.chars().take(room).collect();
                    word = word.chars().skip(room).collect();
                    current.push_str(&cut);
                }
                out.push_str(&current);
                out.push('\n');
                current = continuation.clone();
                used = measure(&continuation);
                words_on_line = 0;
            }
        }
        out.push_str(&current);
    }
    out.into()
}

/// A table from a header and rows, in suma's style.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    let mut builder = Builder::default();
    builder.push_record(header);
    for row in rows {
        builder.push_record(row);
    }
    let mut table = builder.build();
    table.with(Style::sharp());
    if let Some(width) = max_width() {
        fit(&mut table, width);
    }
    table.to_string()
}

/// `value` or a dash.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// A section heading.
pub fn heading(title: &str) -> String {
    console::style(title).bold().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fitted_table_is_no_wider_than_asked_and_loses_nothing() {
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/auth-service-production:1234";
        let error = "DescribeServices on cluster auth-production: the request was throttled, retry later";
        for width in [40, 60, 80, 120] {
            let mut builder = Builder::default();
            builder.push_record(["step", "status", "facts", "error"]);
            builder.push_record(["register-revision", "succeeded", arn, error]);
            let mut table = builder.build();
            table.with(Style::sharp());
            fit(&mut table, width);
            let text = table.to_string();
            for line in text.lines() {
                assert!(console::measure_text_width(line) <= width, "{width}: {line}");
            }
            // Wrapped, not cut: every letter and digit of every cell is still there.
            let count = |t: &str| t.chars().filter(|c| c.is_alphanumeric()).count();
            let cells = [
                "step",
                "status",
                "facts",
                "error",
                "register-revision",
                "succeeded",
                arn,
                error,
            ];
            assert_eq!(
                count(&text),
                cells.iter().map(|c| count(c)).sum::<usize>(),
                "{width}:\n{text}"
            );
        }
    }

    #[test]
    fn prose_wider_than_the_terminal_wraps_between_words_and_tables_pass() {
        let reason = "rolled back: error_rate = 0.0878 above 0.0050 (fail-fast: 10x the maximum or more) (2 failed analyses, 1 tolerated)";
        let wrapped = wrap_lines(reason, 40);
        for line in wrapped.lines() {
            assert!(console::measure_text_width(line) <= 40, "{line:?} in\n{wrapped}");
        }
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>(),
            reason.split_whitespace().collect::<Vec<_>>()
        );
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("  ")), "{wrapped}");
        // Already fitting: the same text, not a copy.
        let table = table(["a", "b"], [["1".to_owned(), "2".to_owned()]]);
        assert!(matches!(wrap_lines(&table, 40), std::borrow::Cow::Borrowed(_)));
        // A word wider than a line is cut, nothing is lost; an indented line keeps its indentation.
        let arn = "  arn:aws:ecs:eu-west-1:123456789012:task-definition/auth-service-production:1234 live";
        let cut = wrap_lines(arn, 40);
        assert!(cut.lines().all(|l| console::measure_text_width(l) <= 40), "{cut}");
        assert!(cut.starts_with("  arn:aws"), "{cut}");
        assert_eq!(cut.replace(['\n', ' '], ""), arn.replace(' ', ""));
        // Colours take no columns.
        let red = format!(
            "{}: {}",
            console::style("rolled back").red().force_styling(true),
            "x ".repeat(30)
        );
        assert!(wrap_lines(&red, 40)
            .lines()
            .all(|l| console::measure_text_width(l) <= 40));
    }
}
