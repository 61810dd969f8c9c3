//! Small helpers to build tables with tabled, one style for the whole tool. Tables fit the terminal: the
//! widest columns (facts, errors, ARNs) wrap first, so a row is never wider than the screen; the full
//! values are in `--output json`, and `suma ops show --wide` turns the fitting off.

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
}
