//! Small helpers to build tables with tabled, one style for the whole tool.

use tabled::builder::Builder;
use tabled::settings::Style;

/// A table from a header and rows, in suma's style.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    let mut builder = Builder::default();
    builder.push_record(header);
    for row in rows {
        builder.push_record(row);
    }
    let mut table = builder.build();
    table.with(Style::sharp());
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
