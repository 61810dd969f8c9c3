//! Rendering of `suma runbook`: the list, one runbook, the action reference, the plan before a run, the
//! prompt of a manual step, and how a run ended.

use std::collections::BTreeMap;
use std::io::Write as _;

use serde_json::{json, Value};

use super::tables::table;
use crate::journal::{Operation, PlannedStep};
use crate::runbook::catalog::ACTIONS;
use crate::runbook::engine::Outcome;
use crate::runbook::expr::to_text;
use crate::runbook::Loaded;

fn severity(loaded: &Loaded) -> String {
    serde_json::to_value(loaded.runbook.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn list(loaded: &[Loaded], invalid: &[(String, usize)]) -> String {
    let mut rows: Vec<[String; 4]> = loaded
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                severity(l),
                l.runbook.title.clone(),
                l.runbook.owner.clone(),
            ]
        })
        .collect();
    rows.extend(invalid.iter().map(|(name, count)| {
        [
            name.clone(),
            "-".to_owned(),
            format!("INVALID: {count} problem(s); `suma runbook validate {name}`"),
            "-".to_owned(),
        ]
    }));
    table(["NAME", "SEVERITY", "TITLE", "OWNER"], rows)
}

pub fn list_json(loaded: &[Loaded], invalid: &[(String, usize)]) -> Value {
    json!({
        "runbooks": loaded.iter().map(|l| json!({
            "name": l.name, "severity": l.runbook.severity, "title": l.runbook.title,
            "owner": l.runbook.owner, "file": l.path, "steps": l.runbook.steps.len(),
        })).collect::<Vec<_>>(),
        "invalid": invalid.iter().map(|(n, c)| json!({"name": n, "problems": c})).collect::<Vec<_>>(),
    })
}

pub fn show(loaded: &Loaded) -> String {
    let r = &loaded.runbook;
    let mut out = format!(
        "{} ({})\nseverity: {}   owner: {}   file: {}\n\nWhen to use:\n  {}\n",
        r.title,
        loaded.name,
        severity(loaded),
        r.owner,
        loaded.path.display(),
        r.when_to_use.trim().replace('\n', "\n  ")
    );
    if !r.parameters.is_empty() {
        let rows = r.parameters.iter().map(|p| {
            [
                p.name.clone(),
                format!("{:?}", p.ty).to_lowercase(),
                if p.required {
                    "required".to_owned()
                } else {
                    p.default
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |d| to_text(&crate::runbook::yaml_to_json(d)))
                },
                p.description.clone(),
            ]
        });
        out.push_str(&format!(
            "\nParameters (--param NAME=VALUE):\n{}\n",
            table(["NAME", "TYPE", "DEFAULT", "WHAT"], rows)
        ));
    }
    let row = |number: String, id: String, s: &crate::runbook::Step| {
        let mut flags = Vec::new();
        if s.confirm {
            flags.push("confirm".to_owned());
        }
        if let Some(when) = &s.when {
            flags.push(format!("when {when}"));
        }
        [number, id, s.action.clone(), s.describe(), flags.join("; ")]
    };
    // A parallel step's branches follow it, numbered under it (`2.1`, `2.2`).
    let rows = r.steps.iter().enumerate().flat_map(|(i, s)| {
        let branches = s
            .branches
            .iter()
            .enumerate()
            .map(move |(j, b)| row(format!("{}.{}", i + 1, j + 1), format!("  {}", b.id), b));
        std::iter::once(row((i + 1).to_string(), s.id.clone(), s)).chain(branches)
    });
    out.push_str(&format!(
        "\nSteps:\n{}",
        table(["#", "ID", "ACTION", "WHAT", "CONDITIONS"], rows)
    ));
    out
}

pub fn actions() -> String {
    let rows = ACTIONS.iter().map(|a| {
        let args = a
            .args
            .iter()
            .map(|arg| {
                format!(
                    "{}{}: {}",
                    arg.name,
                    if arg.required { "" } else { "?" },
                    arg.ty.describe()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut outputs = a.outputs.join(", ");
        if a.open_outputs {
            outputs.push_str(", + first row's columns");
        }
        [
            a.name.to_owned(),
            a.summary.to_owned(),
            args,
            outputs,
            if a.mutating { "yes" } else { "no" }.to_owned(),
        ]
    });
    table(["ACTION", "WHAT", "ARGUMENTS (? optional)", "OUTPUTS", "CHANGES"], rows)
}

pub fn actions_json() -> Value {
    json!(ACTIONS
        .iter()
        .map(|a| json!({
            "name": a.name, "summary": a.summary, "mutating": a.mutating, "outputs": a.outputs,
            "default_timeout_secs": a.default_timeout.as_secs(),
            "args": a.args.iter().map(|arg| json!({"name": arg.name, "type": arg.ty.describe(), "required": arg.required, "help": arg.help})).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>())
}

pub fn plan(
    loaded: &Loaded,
    environment: &str,
    params: &BTreeMap<String, Value>,
    plan: &[PlannedStep],
    dry_run: bool,
) -> String {
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(
            " with {}",
            params
                .iter()
                .map(|(k, v)| format!("{k}={}", to_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let rows = plan
        .iter()
        .enumerate()
        .map(|(i, s)| [(i + 1).to_string(), s.name.clone(), s.detail.clone()]);
    format!(
        "{}runbook `{}` on `{environment}`{params}: {}\n{}",
        if dry_run {
            "plan (dry run, nothing changed): "
        } else {
            "plan: "
        },
        loaded.name,
        loaded.runbook.title,
        table(["#", "STEP", "WHAT"], rows)
    )
}

/// Shows a manual step's instructions and asks whether it is done.
pub fn manual_prompt(step: &str, instructions: &str) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n{} manual step `{step}`:\n  {}\n",
        console::style("▶").cyan().bold(),
        instructions.trim().replace('\n', "\n  ")
    );
    drop(err);
    super::confirm(&format!("is `{step}` done"), false).unwrap_or(false)
}

pub fn outcome(loaded: &Loaded, op: &Operation, outcome: &Outcome) -> String {
    let head = match outcome {
        Outcome::Completed => format!("runbook `{}` completed (run `{}`)", loaded.name, op.id),
        Outcome::Stopped { step, reason } => format!(
            "runbook `{}` stopped at step `{step}`: {reason}\nThe environment stays locked. Fix the cause, then `suma runbook resume {}`; or `suma runbook abort {} --reason ...`.",
            loaded.name, op.id, op.id
        ),
        Outcome::Interrupted { step } => format!(
            "runbook `{}` interrupted at step `{step}`\nContinue with `suma runbook resume {}`.",
            loaded.name, op.id
        ),
    };
    format!(
        "{head}\n\n{}\nTimeline: suma runbook timeline {}",
        super::status::operation(op),
        op.id
    )
}
