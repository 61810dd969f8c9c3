//! Executes a validated runbook, one step at a time: evaluates `when`, resolves references, asks for
//! confirmation, runs the action under its timeout (again, after a growing wait, as often as its `retry`
//! allows), and journals the step (resolved arguments, outputs, who confirmed it, timing, each failed
//! try) before moving on. An `approve` step counts the distinct identities that approved it (the runner
//! once, others through `suma runbook approve`) and stops the run until there are enough. A failed, declined or timed-out step stops the run as
//! `interrupted` with the lock kept, so `suma runbook resume` continues from that step with the earlier
//! outputs. Nothing here knows AWS: actions come through [`Actions`], people through [`Confirmations`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::expr::{self, Condition, Scope};
use super::{Runbook, Step, StepFailure, DEFAULT_APPROVERS};
use crate::aws::dynamodb::ApprovalItem;
use crate::engine::{EngineError, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{Decision, Journal, Operation, StepStatus};
use crate::report::Reporter;

pub const KIND: &str = "runbook";

/// What a step needs besides its arguments.
pub struct StepContext<'a> {
    pub operation: &'a Operation,
    pub step: &'a Step,
    pub cancel: CancellationToken,
}

/// A failed action; `facts` are kept in the journal (e.g. the id of a child operation to resume).
#[derive(Debug)]
pub struct ActionError {
    pub message: String,
    pub facts: BTreeMap<String, Value>,
}

impl ActionError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            facts: BTreeMap::new(),
        }
    }
}

impl<E: std::fmt::Display> From<E> for ActionError {
    fn from(e: E) -> Self {
        Self::new(e.to_string())
    }
}

pub type Outputs = BTreeMap<String, Value>;

/// A finished action: the outputs later steps may reference, and facts kept only in the journal.
#[derive(Debug, Default)]
pub struct Done {
    pub outputs: Outputs,
    pub facts: BTreeMap<String, Value>,
}

impl From<Outputs> for Done {
    fn from(outputs: Outputs) -> Self {
        Self {
            outputs,
            facts: BTreeMap::new(),
        }
    }
}

/// The built-in actions, implemented against real systems by the command layer.
#[async_trait]
pub trait Actions: Send + Sync {
    async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError>;

    /// Records the approval of `ctx.step` by the one running the run when `runner` names them (under
    /// their authenticated identity, which counts once however often it approves), and returns every
    /// approval recorded for the step, those given with `suma runbook approve` included.
    async fn approvals(&self, ctx: &StepContext<'_>, runner: Option<&str>) -> Result<Vec<ApprovalItem>, ActionError>;

    /// Ends `child`, an unfinished operation a step started (a rotation, a failover, a rollback), the way
    /// its own `abort` would; returns what it did.
    async fn abort_child(&self, child: &mut Operation) -> Result<String, ActionError> {
        Ok(format!("child operation `{}` left as it is", child.id))
    }
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Confirmed by this person (or `actor (--yes)`).
    Yes(String),
    No,
    /// `manual` without a person: skipped because `--skip-manual` said so.
    Skip,
    /// Nobody can answer (no terminal and no `--yes`/`--skip-manual`); the reason.
    Cannot(String),
}

/// How confirmations and manual steps are answered: a prompt on a terminal, `--yes` in CI.
pub trait Confirmations: Send + Sync {
    fn confirm(&self, step: &Step, question: &str) -> Answer;
    fn manual(&self, step: &Step, instructions: &str) -> Answer;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Completed,
    /// A step failed, timed out or was declined: resumable from `step`.
    Stopped {
        step: String,
        reason: String,
    },
    /// Ctrl-C or a lost lock during `step`.
    Interrupted {
        step: String,
    },
}

pub struct Engine<'a> {
    pub runbook: Runbook,
    pub actions: &'a dyn Actions,
    pub confirmations: &'a dyn Confirmations,
    pub journal: Journal,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: CancellationToken,
}

/// The outputs recorded by the steps that succeeded, and by every branch that succeeded in a `parallel`
/// step (whether its group went on or stopped, so a resume of the group starts with them), for resume.
pub fn recorded_outputs(op: &Operation) -> BTreeMap<String, Outputs> {
    let as_outputs = |value: &Value| -> Option<Outputs> {
        Some(value.as_object()?.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    op.steps
        .iter()
        .flat_map(|s| {
            let own = (s.status == StepStatus::Succeeded)
                .then(|| Some((s.name.clone(), as_outputs(s.facts.get("outputs")?)?)))
                .flatten();
            let branches = parallel::branch_outputs(&s.facts).filter_map(|(id, v)| Some((id, as_outputs(v)?)));
            own.into_iter().chain(branches).collect::<Vec<_>>()
        })
        .collect()
}

impl Engine<'_> {
    /// Runs from `op.next_step()` to the end under `guard`. `scope` holds params, env and run values;
    /// earlier outputs are read from the journal.
    pub async fn run(&self, op: &mut Operation, guard: &LockGuard, mut scope: Scope) -> Result<Outcome, EngineError> {
        scope.outputs = recorded_outputs(op);
        let steps = RunbookSteps {
            engine: self,
            scope: Mutex::new(scope),
        };
        let run = Run::new(&self.journal, guard, self.reporter.as_ref(), &self.cancel);
        let outcome = match crate::engine::drive(&steps, &run, op).await? {
            RunEnd::Completed => Outcome::Completed,
            RunEnd::Stopped { at_step, reason } | RunEnd::Failed { at_step, reason } => {
                Outcome::Stopped { step: at_step, reason }
            }
            RunEnd::Undone { decision, note } => Outcome::Stopped {
                step: String::new(),
                reason: format!("{}: {note}", decision.reason),
            },
            RunEnd::Interrupted { at_step } => Outcome::Interrupted { step: at_step },
        };
        let mut scope = steps.scope.into_inner().expect("runbook scope");
        let (list, handlers, cap, stopped_at, reason) = match &outcome {
            Outcome::Stopped { step, reason } => ("on_failure", &self.runbook.on_failure, None, step, reason.clone()),
            Outcome::Interrupted { step } => (
                "on_cancel",
                &self.runbook.on_cancel,
                Some(ON_CANCEL_TIMEOUT),
                step,
                "interrupted by a signal".to_owned(),
            ),
            Outcome::Completed => return Ok(outcome),
        };
        if !handlers.is_empty() {
            scope.run.insert("stopped_at".to_owned(), json!(stopped_at));
            scope.run.insert("reason".to_owned(), json!(reason));
            self.handle(list, handlers, cap, op, &run, &scope).await;
        }
        Ok(outcome)
    }

    /// Runs `handlers` unattended after the run stopped: each one's `when`, its arguments resolved, its
    /// action under its timeout (at most `cap`), with a cancellation of its own (the run's may be
    /// cancelled already). What each did becomes a note on the run; a handler's failure is noted and the
    /// next one runs. Nothing runs once the lock is no longer held.
    async fn handle(
        &self,
        list: &str,
        handlers: &[Step],
        cap: Option<Duration>,
        op: &mut Operation,
        run: &Run<'_>,
        scope: &Scope,
    ) {
        let actor = run.guard.holder().to_owned();
        for step in handlers {
            if run.guard.ensure_held().is_err() {
                op.note(&actor, format!("{list}: not run, the lock is no longer held"));
                return;
            }
            let note = match self.handler(step, cap, op, scope).await {
                Ok(Some(outputs)) => format!("{list} `{}`: done{outputs}", step.id),
                Ok(None) => format!("{list} `{}`: skipped by its `when`", step.id),
                Err(e) => {
                    self.reporter.warn(&format!("{list} step `{}` failed: {e}", step.id));
                    format!("{list} `{}`: failed: {e}", step.id)
                }
            };
            self.reporter.info(&note);
            op.note(&actor, note);
            if let Err(e) = run.save(op).await {
                self.reporter
                    .warn(&format!("{list}: the run's notes were not saved: {e}"));
                return;
            }
        }
    }

    /// One handler: `None` when its `when` is false, else its outputs as text.
    async fn handler(
        &self,
        step: &Step,
        cap: Option<Duration>,
        op: &Operation,
        scope: &Scope,
    ) -> Result<Option<String>, String> {
        if let Some(when) = &step.when {
            if !Condition::parse(when).and_then(|c| c.eval(scope))? {
                return Ok(None);
            }
        }
        let args = resolve_args(step, scope)?;
        let timeout = cap.map_or(step.timeout(), |cap| step.timeout().min(cap));
        let context = StepContext {
            operation: op,
            step,
            cancel: CancellationToken::new(),
        };
        match tokio::time::timeout(timeout, self.actions.run(&args, &context)).await {
            Ok(Ok(done)) => Ok(Some(
                done.outputs
                    .iter()
                    .map(|(k, v)| format!(", {k}={}", expr::to_text(v)))
                    .collect(),
            )),
            Ok(Err(e)) => Err(e.message),
            Err(_) => Err(format!("timed out after {}", humantime::format_duration(timeout))),
        }
    }
}

/// How long an `on_cancel` step may take: a CI cancel allows seconds before the runner is killed.
pub const ON_CANCEL_TIMEOUT: Duration = Duration::from_secs(20);

/// `step`'s arguments with every reference resolved in `scope`, each checked against its type.
fn resolve_args(step: &Step, scope: &Scope) -> Result<BTreeMap<String, String>, String> {
    let mut args = BTreeMap::new();
    for (name, value) in &step.args {
        let resolved = match value {
            serde_norway::Value::String(s) => expr::interpolate(s, scope)?,
            // A map or list is resolved value by value, then passed on as JSON.
            other => expr::interpolate_value(&super::yaml_to_json(other), scope)?.to_string(),
        };
        if let Some(spec) = step.spec().arg(name) {
            spec.ty
                .check(&resolved)
                .map_err(|e| format!("argument `{name}` resolved to {e}"))?;
        }
        args.insert(name.clone(), resolved);
    }
    Ok(args)
}

impl Engine<'_> {
    /// Aborts the run `op` under `guard`: its unfinished child operations are aborted; done steps stay.
    pub async fn abort(&self, op: &mut Operation, guard: &LockGuard, by: &str) -> Result<String, EngineError> {
        let steps = RunbookSteps {
            engine: self,
            scope: Mutex::new(Scope::default()),
        };
        let run = Run::new(&self.journal, guard, self.reporter.as_ref(), &self.cancel);
        match crate::engine::abort(&steps, &run, op, by).await? {
            RunEnd::Undone { note, .. } => Ok(note),
            other => Ok(format!("{other:?}")),
        }
    }
}

/// A run of a runbook as the operation engine drives it; the scope gathers each step's outputs.
struct RunbookSteps<'e, 'a> {
    engine: &'e Engine<'a>,
    scope: Mutex<Scope>,
}

impl RunbookSteps<'_, '_> {
    fn scope(&self) -> std::sync::MutexGuard<'_, Scope> {
        self.scope.lock().expect("runbook scope")
    }

    /// Runs step `index`'s action under its timeout, as many times as its `retry` allows. A failed try is
    /// journaled as an attempt of the step (its error kept) before the wait, so the timeline shows every
    /// try and a child operation of the next try gets an id of its own; a signal ends the wait.
    async fn act(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        index: usize,
        args: &BTreeMap<String, String>,
        facts: &mut BTreeMap<String, Value>,
    ) -> Result<Done, StepError> {
        let step = &self.engine.runbook.steps[index];
        let attempts = step.attempts();
        let mut failed = 0;
        loop {
            run.mutating()?;
            let timeout = step.timeout();
            let result = {
                let context = StepContext {
                    operation: op,
                    step,
                    cancel: run.cancel.clone(),
                };
                tokio::select! {
                    r = tokio::time::timeout(timeout, self.engine.actions.run(args, &context)) => r,
                    () = run.cancel.cancelled() => return Err(StepError::Interrupted),
                }
            };
            let (reason, failure_facts) = match result {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(e)) => (e.message, e.facts),
                Err(_) => (
                    format!("timed out after {}", humantime::format_duration(timeout)),
                    BTreeMap::new(),
                ),
            };
            failed += 1;
            if failed >= attempts {
                facts.extend(failure_facts);
                let reason = if attempts > 1 {
                    format!("{reason} (try {failed} of {attempts})")
                } else {
                    reason
                };
                return Err(StepError::Failed {
                    reason,
                    facts: std::mem::take(facts),
                });
            }
            let wait = step.retry.as_ref().map_or(Duration::ZERO, |r| r.delay(failed));
            self.engine.reporter.warn(&format!(
                "step `{}` failed (try {failed} of {attempts}): {reason}; trying again in {}",
                step.id,
                humantime::format_duration(wait)
            ));
            op.finish_step(StepStatus::Failed, Some(reason), failure_facts);
            op.start_step(index);
            run.save(op).await?;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = run.cancel.cancelled() => return Err(StepError::Interrupted),
            }
        }
    }
}

impl RunbookSteps<'_, '_> {
    /// An `approve` step: the approval of the one running the run when they give it (a prompt, or
    /// `--yes`), then every approval recorded for the step. The run goes on once `approvers` distinct
    /// identities approved; otherwise it stops, resumable, saying who approved and how the others do.
    async fn approve(
        &self,
        run: &Run<'_>,
        op: &Operation,
        step: &Step,
        args: &BTreeMap<String, String>,
    ) -> Result<Done, StepError> {
        let needed: usize = args.get("approvers").map_or(Ok(DEFAULT_APPROVERS as usize), |n| {
            n.parse()
                .map_err(|_| StepError::failed(format!("`approvers: {n}` is not a count")))
        })?;
        let summary = args.get("summary").map_or("", String::as_str);
        let runner = match self
            .engine
            .confirmations
            .confirm(step, &format!("approve `{}`: {summary}", step.id))
        {
            Answer::Yes(who) => Some(who),
            Answer::No => return Err(StepError::failed("not approved by the one running the run".to_owned())),
            // In CI without `--yes`: the runner gives no approval, those recorded may be enough.
            Answer::Skip | Answer::Cannot(_) => None,
        };
        let context = StepContext {
            operation: op,
            step,
            cancel: run.cancel.clone(),
        };
        let approvals = self
            .engine
            .actions
            .approvals(&context, runner.as_deref())
            .await
            .map_err(|e| StepError::Failed {
                reason: format!("the approvals cannot be read or recorded: {}", e.message),
                facts: e.facts,
            })?;
        let identities: Vec<&str> = approvals.iter().map(|a| a.identity.as_str()).collect();
        let facts = BTreeMap::from([("approvals".to_owned(), json!(approvals))]);
        if approvals.len() < needed {
            let given = if identities.is_empty() {
                String::new()
            } else {
                format!(" ({})", identities.join(", "))
            };
            return Err(StepError::Failed {
                reason: format!(
                    "waiting for approvals: {} of {needed}{given}; each other approver runs `suma runbook approve {id} --step {step}` with their own AWS credentials, then `suma runbook resume {id}` goes on",
                    approvals.len(),
                    id = op.id,
                    step = step.id,
                ),
                facts,
            });
        }
        Ok(Done {
            outputs: Outputs::from([("approved_by".to_owned(), json!(identities))]),
            facts,
        })
    }
}

#[async_trait]
impl Steps for RunbookSteps<'_, '_> {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let step = &self.engine.runbook.steps[index];
        let stop = |reason: String, facts: BTreeMap<String, Value>| StepError::Failed { reason, facts };
        if let Some(when) = &step.when {
            let holds = Condition::parse(when).and_then(|c| c.eval(&self.scope()));
            match holds {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(StepEnd::skipped(
                        format!("when {when}: false"),
                        BTreeMap::from([("skipped".to_owned(), json!(format!("`{when}` is false")))]),
                    ))
                }
                Err(e) => return Err(stop(format!("its `when` cannot be evaluated: {e}"), BTreeMap::new())),
            }
        }
        let args = resolve_args(step, &self.scope()).map_err(|e| stop(e, BTreeMap::new()))?;
        // The resolved arguments are on record before anything acts on them.
        run.record(op, BTreeMap::from([("args".to_owned(), json!(args))]))
            .await?;
        let mut facts = BTreeMap::new();
        let confirmations = self.engine.confirmations;
        let confirmed_by = if step.action == "manual" {
            let instructions = args.get("instructions").cloned().unwrap_or_default();
            match confirmations.manual(step, &instructions) {
                Answer::Yes(who) => Some(who),
                Answer::Skip => {
                    return Ok(StepEnd::skipped(
                        "manual step skipped (--skip-manual)",
                        BTreeMap::from([("skipped".to_owned(), json!("--skip-manual"))]),
                    ))
                }
                Answer::No => return Err(stop("the manual step was not confirmed as done".to_owned(), facts)),
                Answer::Cannot(reason) => return Err(stop(reason, facts)),
            }
        } else if step.action == "approve" {
            // Asked inside `approve`: an approval is recorded under an identity, not as a confirmation.
            None
        } else if step.confirm {
            let question = format!("run step `{}`: {}", step.id, step.describe());
            match confirmations.confirm(step, &question) {
                Answer::Yes(who) => Some(who),
                Answer::No | Answer::Skip => return Err(stop("not confirmed".to_owned(), facts)),
                Answer::Cannot(reason) => return Err(stop(reason, facts)),
            }
        } else {
            None
        };
        if let Some(who) = &confirmed_by {
            facts.insert("confirmed_by".to_owned(), json!(who));
        }
        if step.action == "parallel" {
            return self.parallel(run, op, step, facts).await;
        }
        let done = if step.action == "manual" {
            Done::from(Outputs::from([("confirmed_by".to_owned(), json!(confirmed_by))]))
        } else if step.action == "approve" {
            self.approve(run, op, step, &args).await?
        } else {
            match self.act(run, op, index, &args, &mut facts).await {
                Ok(done) => done,
                Err(StepError::Failed { reason, facts }) if step.on_failure == StepFailure::Continue => {
                    self.engine.reporter.warn(&format!(
                        "step `{}` failed, the run goes on (on_failure: continue)",
                        step.id
                    ));
                    return Ok(StepEnd::Tolerated { reason, facts });
                }
                Err(e) => return Err(e),
            }
        };
        facts.extend(done.facts);
        let outputs = done.outputs;
        facts.insert("outputs".to_owned(), json!(outputs));
        self.scope().outputs.insert(step.id.clone(), outputs);
        Ok(StepEnd::Done(facts))
    }

    /// A failed, declined or timed-out step stops the run resumable: `suma runbook resume` continues there.
    fn on_failure(&self, _: &Operation, _: usize) -> OnFailure {
        OnFailure::Stop
    }

    /// Steps already done stay done; a child operation a step left unfinished (a rotation with a pending
    /// value, a half-switched failover) is aborted the way its own `abort` would, so nothing is left
    /// half-changed under a run that no longer holds the lock.
    async fn undo(&self, run: &Run<'_>, op: &mut Operation, _: &Decision) -> Result<String, StepError> {
        let prefix = format!("{}.", op.id);
        let children: Vec<Operation> = run
            .journal
            .list(&op.environment, usize::MAX)
            .await?
            .into_iter()
            .filter(|child| child.id.starts_with(&prefix))
            .collect();
        let mut notes = Vec::new();
        for listed in children {
            // The listing may lag the child's last save: its state is read again, consistently.
            let mut child = run.journal.load(&listed.id).await?.unwrap_or(listed);
            if child.status.is_finished() {
                continue;
            }
            run.held()?;
            let note =
                self.engine.actions.abort_child(&mut child).await.map_err(|e| {
                    StepError::failed(format!("aborting child operation `{}`: {}", child.id, e.message))
                })?;
            notes.push(note);
        }
        notes.push("the steps already done stay done".to_owned());
        Ok(notes.join("; "))
    }
}

mod parallel;
#[cfg(test)]
mod tests;
