//! Rendering of `suma taskdef`: the per-field diff between a live revision and the rendered template, and
//! the plan of a registration.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use super::tables::{heading, table};
use crate::journal::PlannedStep;
use crate::taskdef::Change;

fn compact(value: &Value) -> String {
    serde_json::to_string(value).expect("JSON values always serialize")
}

/// `~ path: live -> rendered`, `+ path: rendered` (only in the template), `- path: live` (only live).
pub fn changes(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let line = match (&change.live, &change.rendered) {
            (Some(live), Some(rendered)) => format!(
                "~ {}: {} -> {}",
                change.path,
                console::style(compact(live)).red(),
                console::style(compact(rendered)).green()
            ),
            (None, Some(rendered)) => console::style(format!("+ {}: {}", change.path, compact(rendered)))
                .green()
                .to_string(),
            (Some(live), None) => console::style(format!("- {}: {}", change.path, compact(live)))
                .red()
                .to_string(),
            (None, None) => continue,
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

pub fn diff(found: &[Change], live: &str, template: &Path) -> String {
    let live = crate::aws::ecs::task_definition_label(live);
    if found.is_empty() {
        return format!("`{live}` matches `{}`: no difference", template.display());
    }
    let mut out = format!("--- live     {live}\n+++ template {}\n", template.display());
    out.push_str(&changes(found));
    let _ = write!(out, "{} field(s) differ", found.len());
    out
}

pub fn register_plan(steps: &[PlannedStep], found: &[Change], live: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", heading("Plan"));
    let _ = writeln!(
        out,
        "{}",
        table(
            ["#", "STEP", "WHAT"],
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| [(i + 1).to_string(), s.name.clone(), s.detail.clone()])
        )
    );
    if found.is_empty() {
        let _ = writeln!(
            out,
            "No field differs from `{}`.",
            crate::aws::ecs::task_definition_label(live)
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            heading(&format!(
                "Differences from `{}`",
                crate::aws::ecs::task_definition_label(live)
            ))
        );
        out.push_str(&changes(found));
    }
    out
}
