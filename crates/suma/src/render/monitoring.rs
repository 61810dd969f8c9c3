//! Tables of `suma monitors|dashboards diff|apply`: one row per resource, its action, and for an update
//! each field that differs with Datadog's value and the template's.

use serde_json::Value;

use super::tables::{or_dash, table};
use crate::monitoring::report::Report;
use crate::monitoring::Action;

/// A value on one line, cut to `max` characters.
fn short(value: Option<&Value>, max: usize) -> String {
    let text = match value {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    };
    let text = text.replace('\n', "⏎");
    if text.chars().count() > max {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

fn rows(report: &Report) -> String {
    let body = report.items.iter().map(|item| {
        let mut detail: Vec<String> = item
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}: {} → {}",
                    c.path,
                    short(c.before.as_ref(), 50),
                    short(Some(&c.after), 50)
                )
            })
            .collect();
        if let Some(note) = &item.note {
            detail.extend(note.lines().map(str::to_owned));
        }
        [
            item.action.as_str().to_owned(),
            item.name.clone(),
            or_dash(item.id.as_deref()),
            if detail.is_empty() {
                "-".to_owned()
            } else {
                detail.join("\n")
            },
        ]
    });
    table(["ACTION", "NAME", "ID", "CHANGES"], body)
}

fn counts(report: &Report) -> String {
    report
        .summary
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(action, n)| format!("{n} {action}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan `diff` shows.
pub fn diff(report: &Report) -> String {
    format!(
        "{} of `{}` against {}:\n{}\n{}",
        report.kind,
        report.environment,
        report.templates,
        rows(report),
        counts(report)
    )
}

/// What `apply` did (or, with `--dry-run` or nothing to do, would do).
pub fn applied(report: &Report, dry_run: bool) -> String {
    let writes = report.items.iter().filter(|i| i.action.writes()).count();
    let head = if dry_run {
        format!(
            "plan (dry run, nothing changed) for the {} of `{}`:",
            report.kind, report.environment
        )
    } else if writes == 0 {
        format!(
            "the {} of `{}` already match the templates:",
            report.kind, report.environment
        )
    } else {
        format!(
            "applied {writes} change(s) to the {} of `{}`{}:",
            report.kind,
            report.environment,
            report
                .operation
                .as_deref()
                .map_or_else(String::new, |op| format!(" (operation {op})"))
        )
    };
    let mut text = format!("{head}\n{}\n{}", rows(report), counts(report));
    if report.items.iter().any(|i| i.action == Action::Conflict) {
        text.push_str("\nsome templates were not applied: a resource of the same name is not suma's (see CHANGES)");
    }
    text
}
