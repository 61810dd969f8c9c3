//! Approvals given from outside a run (`suma runbook approve RUN`): which `approve` step of which run may
//! still be approved, and how many approvals it needs. Refusing here — a finished run, a step that is not
//! an approval, one already approved — happens before anything is recorded. Counting the approvals is
//! the engine's, when the run reaches or resumes at the step.

use serde::Serialize;
use serde_json::Value;

use super::{Runbook, DEFAULT_APPROVERS};
use crate::journal::{Operation, StepStatus};

/// An `approve` step that can still be approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub step: String,
    /// What is being approved, as the runbook (or the run, once it resolved it) says.
    pub summary: String,
    /// Approvals the step needs; `None` while it is a reference the run has not resolved yet.
    pub needed: Option<usize>,
}

/// The `approve` step `step` of run `op` (which runs `runbook`); without `step`, the step the run stopped
/// at. Refuses a finished run, an unknown step, a step that is not an `approve` step, and one already
/// approved.
pub fn target(op: &Operation, runbook: &Runbook, step: Option<&str>) -> Result<Target, String> {
    if op.status.is_finished() {
        return Err(format!(
            "run `{}` is {}; nothing in it waits for an approval",
            op.id,
            op.status.as_str()
        ));
    }
    let approvals: Vec<&str> = runbook
        .steps
        .iter()
        .filter(|s| s.action == "approve")
        .map(|s| s.id.as_str())
        .collect();
    let index = match step {
        Some(id) => runbook.steps.iter().position(|s| s.id == id).ok_or_else(|| {
            format!(
                "run `{}` has no step `{id}`; its approval steps: {}",
                op.id,
                listed(&approvals)
            )
        })?,
        None => op.next_step(),
    };
    let Some(found) = runbook.steps.get(index).filter(|s| s.action == "approve") else {
        let which = runbook
            .steps
            .get(index)
            .map_or("the end".to_owned(), |s| format!("`{}`", s.id));
        return Err(format!(
            "step {which} of run `{}` is not an `approve` step; name one with `--step` ({})",
            op.id,
            listed(&approvals)
        ));
    };
    if op.steps.get(index).is_some_and(|s| s.status == StepStatus::Succeeded) {
        return Err(format!(
            "step `{}` of run `{}` is approved already and the run went past it",
            found.id, op.id
        ));
    }
    // The run's resolved arguments when it reached the step; else the runbook's literal values.
    let resolved = op
        .steps
        .get(index)
        .and_then(|s| s.facts.get("args"))
        .and_then(Value::as_object);
    let arg = |name: &str| -> Option<String> {
        match resolved.and_then(|args| args.get(name)) {
            Some(value) => value.as_str().map(str::to_owned),
            None => found.args.get(name).and_then(super::scalar_text),
        }
    };
    let needed = match arg("approvers") {
        None => Some(DEFAULT_APPROVERS as usize),
        Some(text) => text.parse().ok(),
    };
    Ok(Target {
        step: found.id.clone(),
        summary: arg("summary").unwrap_or_default(),
        needed,
    })
}

fn listed(ids: &[&str]) -> String {
    if ids.is_empty() {
        "it has none".to_owned()
    } else {
        ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::journal::{OperationStatus, PlannedStep};

    const RUNBOOK: &str = "\
title: t
severity: sev1
owner: o
when_to_use: w
parameters:
  - { name: quorum, type: integer, description: approvers, required: true }
steps:
  - id: look
    action: database.describe
  - id: sign-off
    action: approve
    with: { summary: 'restore from ${steps.look.outputs.latest_snapshot}', approvers: '${params.quorum}' }
  - id: second
    action: approve
    with: { summary: 'cut DNS over' }
";

    fn run_at(done: usize) -> (Operation, Runbook) {
        let runbook = super::super::parse(RUNBOOK, Path::new("t.yaml")).unwrap();
        let plan = runbook
            .steps
            .iter()
            .map(|s| PlannedStep {
                name: s.id.clone(),
                detail: String::new(),
            })
            .collect();
        let mut op = Operation::new("runbook", "production", "ana", plan);
        for index in 0..done {
            op.start_step(index);
            op.finish_step(StepStatus::Succeeded, None, Default::default());
        }
        (op, runbook)
    }

    #[test]
    fn the_step_the_run_stopped_at_or_the_one_named() {
        let (mut op, runbook) = run_at(1);
        // Not reached yet: the summary as written, the count unknown until the reference resolves.
        assert_eq!(
            target(&op, &runbook, None).unwrap(),
            Target {
                step: "sign-off".into(),
                summary: "restore from ${steps.look.outputs.latest_snapshot}".into(),
                needed: None
            }
        );
        assert_eq!(
            target(&op, &runbook, Some("second")).unwrap().needed,
            Some(DEFAULT_APPROVERS as usize)
        );
        // Reached and stopped there: what the run resolved.
        op.start_step(1);
        op.record_facts(
            [(
                "args".to_owned(),
                serde_json::json!({"summary": "restore from snap-7", "approvers": "3"}),
            )]
            .into(),
        );
        op.finish_step(
            StepStatus::Failed,
            Some("waiting for approvals".into()),
            Default::default(),
        );
        let at = target(&op, &runbook, None).unwrap();
        assert_eq!((at.summary.as_str(), at.needed), ("restore from snap-7", Some(3)));
    }

    #[test]
    fn what_cannot_be_approved_is_refused_with_the_steps_that_can() {
        let (op, runbook) = run_at(0);
        let cases = [
            (None, "step `look` of run"),
            (
                Some("look"),
                "not an `approve` step; name one with `--step` (`sign-off`, `second`)",
            ),
            (
                Some("nope"),
                "has no step `nope`; its approval steps: `sign-off`, `second`",
            ),
        ];
        for (step, want) in cases {
            let err = target(&op, &runbook, step).unwrap_err();
            assert!(err.contains(want), "{step:?}: {err}");
        }
        let (op, runbook) = run_at(2);
        let err = target(&op, &runbook, Some("sign-off")).unwrap_err();
        assert!(err.contains("approved already"), "{err}");
        let (mut op, runbook) = run_at(1);
        op.set_status(OperationStatus::Aborted);
        let err = target(&op, &runbook, None).unwrap_err();
        assert!(err.contains("is aborted; nothing in it waits"), "{err}");
    }
}
