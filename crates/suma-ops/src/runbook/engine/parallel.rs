//! A `parallel` step: its branches run at the same time and the step ends once every branch has (the
//! join). Every branch's resolved arguments are journaled before any acts; each branch's end is
//! journaled as it happens, so a crash or a signal loses nothing that finished. A resume runs again only
//! the branches that did not succeed; the others keep their outputs. A failed branch fails the step
//! once all have ended (the others are never cut short: a half-run check tells nobody anything), unless
//! it was `on_failure: continue`.

use std::collections::BTreeMap;

use futures::stream::{FuturesUnordered, StreamExt as _};
use serde_json::{json, Value};

use super::{resolve_args, RunbookSteps, StepContext};
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::Operation;
use crate::runbook::expr::Condition;
use crate::runbook::{Step, StepFailure};

/// A branch's journaled state: `running` (arguments on record), `succeeded`, `skipped`, `tolerated` or
/// `failed`, with its `args`, `outputs`, `facts` and `error`.
fn finished(entry: &Value) -> bool {
    matches!(entry["status"].as_str(), Some("succeeded" | "skipped" | "tolerated"))
}

/// The branches' states as journaled by an earlier attempt of the step (empty on a first run).
fn recorded(op: &Operation) -> BTreeMap<String, Value> {
    op.steps
        .last()
        .and_then(|s| s.facts.get("branches"))
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default()
}

/// The outputs of the branches that succeeded, from a `parallel` step's facts: what later steps (and a
/// resume) read as `steps.BRANCH.outputs.*`.
pub(super) fn branch_outputs(facts: &BTreeMap<String, Value>) -> impl Iterator<Item = (String, &Value)> {
    facts
        .get("branches")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, entry)| entry["status"] == "succeeded")
        .map(|(id, entry)| (id.clone(), &entry["outputs"]))
}

impl RunbookSteps<'_, '_> {
    pub(super) async fn parallel(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        group: &Step,
        mut facts: BTreeMap<String, Value>,
    ) -> Result<StepEnd, StepError> {
        let mut states = recorded(op);
        let mut pending: Vec<(&Step, BTreeMap<String, String>)> = Vec::new();
        for branch in &group.branches {
            if states.get(&branch.id).is_some_and(finished) {
                // Done by an earlier attempt: it does not run again, and its outputs are in the scope
                // already (`recorded_outputs`).
                continue;
            }
            let holds = match &branch.when {
                None => Ok(true),
                Some(when) => Condition::parse(when).and_then(|c| c.eval(&self.scope())),
            };
            let entry = match holds.and_then(|holds| Ok((holds, resolve_args(branch, &self.scope())?))) {
                Ok((false, _)) => {
                    json!({"status": "skipped", "reason": format!("`{}` is false", branch.when.as_deref().unwrap_or_default())})
                }
                Ok((true, args)) => {
                    let entry = json!({"status": "running", "args": args});
                    pending.push((branch, args));
                    entry
                }
                Err(e) => json!({"status": "failed", "error": e}),
            };
            states.insert(branch.id.clone(), entry);
        }
        // Intent: every branch's arguments are on record before any of them acts.
        run.record(op, BTreeMap::from([("branches".to_owned(), json!(states))]))
            .await?;
        run.mutating()?;
        let snapshot = op.clone();
        let mut running: FuturesUnordered<_> = pending
            .iter()
            .map(|(branch, args)| {
                let snapshot = &snapshot;
                async move {
                    let context = StepContext {
                        operation: snapshot,
                        step: branch,
                        cancel: run.cancel.clone(),
                    };
                    let timeout = branch.timeout();
                    let result = tokio::time::timeout(timeout, self.engine.actions.run(args, &context)).await;
                    (*branch, timeout, result)
                }
            })
            .collect();
        loop {
            let next = tokio::select! {
                next = running.next() => next,
                () = run.cancel.cancelled() => return Err(StepError::Interrupted),
            };
            let Some((branch, timeout, result)) = next else {
                break;
            };
            let entry = states.entry(branch.id.clone()).or_insert_with(|| json!({}));
            let failure = match result {
                Ok(Ok(done)) => {
                    entry["status"] = json!("succeeded");
                    entry["outputs"] = json!(done.outputs);
                    entry["facts"] = json!(done.facts);
                    self.scope().outputs.insert(branch.id.clone(), done.outputs);
                    None
                }
                Ok(Err(e)) => {
                    entry["facts"] = json!(e.facts);
                    Some(e.message)
                }
                Err(_) => Some(format!("timed out after {}", humantime::format_duration(timeout))),
            };
            if let Some(error) = failure {
                let tolerated = branch.on_failure == StepFailure::Continue;
                entry["status"] = json!(if tolerated { "tolerated" } else { "failed" });
                entry["error"] = json!(error);
                self.engine.reporter.warn(&format!(
                    "branch `{}` of `{}` failed{}: {error}",
                    branch.id,
                    group.id,
                    if tolerated { ", the run goes on" } else { "" }
                ));
            }
            // Each branch's end is on record as it happens.
            run.record(op, BTreeMap::from([("branches".to_owned(), json!(states))]))
                .await?;
        }
        facts.insert("branches".to_owned(), json!(states));
        let failed: Vec<String> = states
            .iter()
            .filter(|(_, e)| e["status"] == "failed")
            .map(|(id, e)| format!("`{id}`: {}", e["error"].as_str().unwrap_or_default()))
            .collect();
        if failed.is_empty() {
            return Ok(StepEnd::Done(facts));
        }
        let reason = format!(
            "{} of {} branches failed: {}",
            failed.len(),
            group.branches.len(),
            failed.join("; ")
        );
        if group.on_failure == StepFailure::Continue {
            return Ok(StepEnd::Tolerated { reason, facts });
        }
        Err(StepError::Failed { reason, facts })
    }
}
