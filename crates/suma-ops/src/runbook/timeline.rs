//! The Markdown timeline of a run, for the post-incident review: what ran, when, for how long, who
//! confirmed it, what it found, every try that failed before a step's last, and where it stopped.

use std::fmt::Write as _;

use crate::journal::{Operation, StepStatus};

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn duration(start: chrono::DateTime<chrono::Utc>, end: Option<chrono::DateTime<chrono::Utc>>) -> String {
    end.map_or_else(
        || "—".to_owned(),
        |end| {
            let ms = (end - start).num_milliseconds().max(0) as u64;
            humantime::format_duration(std::time::Duration::from_secs(ms.div_ceil(1000))).to_string()
        },
    )
}

/// Renders the run recorded in `op` (a `runbook` operation).
pub fn markdown(op: &Operation) -> String {
    let title = op.parameters.get("title").and_then(|v| v.as_str()).unwrap_or("runbook");
    let runbook = op.parameters.get("runbook").and_then(|v| v.as_str()).unwrap_or("?");
    let mut out = String::new();
    let _ = writeln!(out, "# {title}: `{runbook}` on `{}`\n", op.environment);
    let ended = op.steps.iter().filter_map(|s| s.ended_at).max();
    let _ = writeln!(out, "- Run: `{}`", op.id);
    let _ = writeln!(out, "- Started by: {}", op.actor);
    let _ = writeln!(out, "- Started: {}", op.started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    if let Some(ended) = ended {
        let _ = writeln!(
            out,
            "- Last step ended: {} (elapsed {})",
            ended.format("%Y-%m-%d %H:%M:%S UTC"),
            duration(op.started_at, Some(ended))
        );
    }
    let _ = writeln!(out, "- Status: **{}**", op.status.as_str());
    if let Some(params) = op.parameters.get("params").and_then(|v| v.as_object()) {
        if !params.is_empty() {
            let list: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("`{k}={}`", crate::runbook::expr::to_text(v)))
                .collect();
            let _ = writeln!(out, "- Parameters: {}", list.join(", "));
        }
    }
    let _ = writeln!(out, "\n## Steps\n");
    let _ = writeln!(out, "| # | Time (UTC) | Step | Status | Took | Confirmed by | Result |");
    let _ = writeln!(out, "| - | - | - | - | - | - | - |");
    for (index, planned) in op.plan.iter().enumerate() {
        match op.steps.get(index) {
            Some(step) => {
                let result = match step.facts.get("branches").and_then(|b| b.as_object()) {
                    // A parallel step: each branch's end, in one cell.
                    Some(branches) => branches
                        .iter()
                        .map(|(id, b)| {
                            let detail = b["error"].as_str().or(b["reason"].as_str()).unwrap_or_default();
                            let status = b["status"].as_str().unwrap_or_default();
                            if detail.is_empty() {
                                format!("`{id}` {status}")
                            } else {
                                format!("`{id}` {status}: {detail}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    None => match step.status {
                        StepStatus::Failed | StepStatus::Tolerated => step.error.clone().unwrap_or_default(),
                        StepStatus::Skipped => step
                            .facts
                            .get("skipped")
                            .map(crate::runbook::expr::to_text)
                            .unwrap_or_default(),
                        _ => step
                            .facts
                            .get("outputs")
                            .and_then(|o| o.as_object())
                            .map(|o| {
                                o.iter()
                                    .map(|(k, v)| format!("{k}={}", crate::runbook::expr::to_text(v)))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default(),
                    },
                };
                let confirmed = step
                    .facts
                    .get("confirmed_by")
                    .map(crate::runbook::expr::to_text)
                    .unwrap_or_default();
                let status = format!("{:?}", step.status).to_lowercase();
                let _ = writeln!(
                    out,
                    "| {} | {} | `{}` {} | {status} | {} | {} | {} |",
                    index + 1,
                    step.started_at.format("%H:%M:%S"),
                    step.name,
                    cell(&planned.detail),
                    duration(step.started_at, step.ended_at),
                    cell(&confirmed),
                    cell(&result)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | | `{}` {} | not run | | | |",
                    index + 1,
                    planned.name,
                    cell(&planned.detail)
                );
            }
        }
    }
    // Tries that failed before a step's last (its `retry`, or a resume): what each ran into.
    let earlier: Vec<String> = op
        .steps
        .iter()
        .flat_map(|step| {
            step.attempts.iter().enumerate().map(move |(n, attempt)| {
                format!(
                    "- `{}` try {} at {} (took {}): {}{}",
                    step.name,
                    n + 1,
                    attempt.started_at.format("%H:%M:%S"),
                    duration(attempt.started_at, attempt.ended_at),
                    format!("{:?}", attempt.status).to_lowercase(),
                    attempt.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )
            })
        })
        .collect();
    if !earlier.is_empty() {
        let _ = writeln!(out, "\n## Earlier tries\n");
        for line in earlier {
            let _ = writeln!(out, "{line}");
        }
    }
    if !op.events.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for event in &op.events {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                event.at.format("%H:%M:%S"),
                event.actor,
                event.message
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::journal::{OperationStatus, PlannedStep};

    #[test]
    fn lists_every_step_with_confirmations_results_and_what_did_not_run() {
        let plan = ["revoke", "rotate", "notify"]
            .map(|n| PlannedStep {
                name: n.to_owned(),
                detail: format!("{n} | things"),
            })
            .to_vec();
        let mut op = Operation::new("runbook", "production", "ana", plan);
        op.parameters.insert("runbook".into(), json!("security-incident"));
        op.parameters.insert("title".into(), json!("Security incident"));
        op.parameters.insert("params".into(), json!({"reason": "leaked key"}));
        op.start_step(0);
        op.finish_step(
            StepStatus::Succeeded,
            None,
            BTreeMap::from([
                ("outputs".into(), json!({"revoked": 41})),
                ("confirmed_by".into(), json!("ana")),
            ]),
        );
        op.start_step(1);
        op.finish_step(StepStatus::Failed, Some("timed out after 30m".into()), BTreeMap::new());
        op.set_status(OperationStatus::Interrupted);
        op.note("bo", "resumed by bo");
        let md = markdown(&op);
        assert!(
            md.starts_with("# Security incident: `security-incident` on `production`"),
            "{md}"
        );
        assert!(md.contains("- Parameters: `reason=leaked key`"), "{md}");
        assert!(md.contains("- Status: **interrupted**"), "{md}");
        assert!(md.contains("`revoke` revoke \\| things | succeeded |"), "{md}");
        assert!(md.contains("| ana | revoked=41 |"), "{md}");
        assert!(md.contains("| failed |") && md.contains("timed out after 30m"), "{md}");
        assert!(md.contains("| 3 | | `notify` notify \\| things | not run |"), "{md}");
        assert!(md.contains(": resumed by bo"), "{md}");
    }
}
