//! Executes a validated runbook, one step at a time: evaluates `when`, resolves references, asks for
//! confirmation, runs the action under its timeout (again, after a growing wait, as often as its `retry`
//! allows), and journals the step (resolved arguments, outputs, who confirmed it, timing, each failed
//! try) before moving on. A failed, declined or timed-out step stops the run as
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
use super::{Runbook, Step, StepFailure};
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

/// The outputs recorded by the steps that succeeded, for resume.
pub fn recorded_outputs(op: &Operation) -> BTreeMap<String, Outputs> {
    op.steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
        .filter_map(|s| {
            let outputs = s.facts.get("outputs")?.as_object()?;
            Some((
                s.name.clone(),
                outputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ))
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
        let text = match value {
            serde_yaml::Value::String(s) => s.clone(),
            other => expr::to_text(&super::yaml_to_json(other)),
        };
        let resolved = expr::interpolate(&text, scope)?;
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
        let done = if step.action == "manual" {
            Done::from(Outputs::from([("confirmed_by".to_owned(), json!(confirmed_by))]))
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
            .filter(|child| child.id.starts_with(&prefix) && !child.status.is_finished())
            .collect();
        let mut notes = Vec::new();
        for mut child in children {
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::journal::{LocalLog, OperationStatus};
    use crate::report::SilentReporter;
    use suma_testkit::MemoryLockTable as MemoryTable;

    const RUNBOOK: &str = "\
title: t
severity: sev2
owner: o
when_to_use: w
parameters:
  - { name: reason, type: string, description: why, required: true }
steps:
  - id: look
    action: database.describe
  - id: failover
    action: database.failover
    when: steps.look.outputs.multi_az == true
  - id: restore
    action: database.restore-snapshot
    confirm: true
    when: steps.look.outputs.multi_az == false
    with: { target: restored, snapshot: '${steps.look.outputs.latest_snapshot}' }
  - id: tell
    action: manual
    with: { instructions: 'Tell the team: ${params.reason} (restored ${steps.restore.outputs.identifier})' }
  - id: verify
    action: sql.query
    with: { query: 'select count(*) from users', host: '${steps.restore.outputs.endpoint}' }
";

    /// Records calls; fails the actions `failures` names, once per entry, in order.
    struct Recorder {
        calls: Mutex<Vec<(String, BTreeMap<String, String>)>>,
        failures: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Actions for Recorder {
        async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError> {
            self.calls.lock().unwrap().push((ctx.step.action.clone(), args.clone()));
            {
                let mut failures = self.failures.lock().unwrap();
                if failures.first() == Some(&ctx.step.action) {
                    failures.remove(0);
                    return Err(ActionError::new("connection refused"));
                }
            }
            Ok(match ctx.step.action.as_str() {
                "database.describe" => Outputs::from([
                    ("multi_az".into(), json!(false)),
                    ("latest_snapshot".into(), json!("snap-1")),
                ]),
                "database.restore-snapshot" => Outputs::from([
                    ("identifier".into(), json!("restored")),
                    ("endpoint".into(), json!("restored.db")),
                ]),
                _ => Outputs::from([("rows".into(), json!(1))]),
            }
            .into())
        }
    }

    /// Lets a test keep the recorder while the engine borrows it.
    struct ArcActions(Arc<Recorder>);

    #[async_trait]
    impl Actions for ArcActions {
        async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError> {
            self.0.run(args, ctx).await
        }
    }

    struct Answers(Answer, Answer);

    impl Confirmations for Answers {
        fn confirm(&self, _: &Step, _: &str) -> Answer {
            self.0.clone()
        }
        fn manual(&self, _: &Step, _: &str) -> Answer {
            self.1.clone()
        }
    }

    fn engine(actions: Arc<Recorder>, answers: Answers, dir: &Path) -> Engine<'static> {
        engine_of(RUNBOOK, actions, answers, dir)
    }

    fn engine_of(text: &str, actions: Arc<Recorder>, answers: Answers, dir: &Path) -> Engine<'static> {
        Engine {
            runbook: super::super::parse(text, Path::new("t.yaml")).unwrap(),
            actions: Box::leak(Box::new(ArcActions(actions))),
            confirmations: Box::leak(Box::new(answers)),
            journal: Journal::new(Arc::new(MemoryTable::default()), LocalLog::new(dir)),
            reporter: Arc::new(SilentReporter),
            cancel: CancellationToken::new(),
        }
    }

    fn scope() -> Scope {
        let mut scope = Scope::default();
        scope.params.insert("reason".into(), json!("disk full"));
        scope
    }

    fn recorder(fail_once: Option<&str>) -> Arc<Recorder> {
        failing(fail_once.as_slice())
    }

    fn failing(failures: &[&str]) -> Arc<Recorder> {
        Arc::new(Recorder {
            calls: Mutex::default(),
            failures: Mutex::new(failures.iter().map(|a| a.to_string()).collect()),
        })
    }

    /// The shared runbook with `retry` on its last step.
    fn with_retry(attempts: u32) -> String {
        format!("{RUNBOOK}    retry: {{ attempts: {attempts}, backoff: 10ms, max_backoff: 15ms }}\n")
    }

    #[tokio::test]
    async fn a_step_with_retry_is_tried_again_and_each_failed_try_is_journaled() {
        let actions = failing(&["sql.query", "sql.query"]);
        let dir = temp_dir("retry");
        let answers = Answers(Answer::Yes("ana".into()), Answer::Yes("bo".into()));
        let engine = engine_of(&with_retry(3), actions.clone(), answers, &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        let verify = &op.steps[4];
        assert_eq!(verify.status, StepStatus::Succeeded);
        assert_eq!(verify.attempts.len(), 2, "{verify:?}");
        for attempt in &verify.attempts {
            assert_eq!(attempt.status, StepStatus::Failed);
            assert_eq!(attempt.error.as_deref(), Some("connection refused"));
        }
        assert_eq!(verify.facts["outputs"]["rows"], json!(1));
        let tries = actions
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == "sql.query")
            .count();
        assert_eq!(tries, 3);
        // The journal holds what the run holds.
        let saved = engine.journal.load(&op.id).await.unwrap().unwrap();
        assert_eq!(saved.steps[4].attempts.len(), 2);
        let timeline = crate::runbook::timeline::markdown(&saved);
        assert!(timeline.contains("## Earlier tries"), "{timeline}");
        assert!(timeline.contains("- `verify` try 2 at "), "{timeline}");
        assert!(timeline.contains(": failed: connection refused"), "{timeline}");
    }

    #[tokio::test]
    async fn a_step_out_of_tries_stops_the_run_saying_so_and_resume_tries_again() {
        let actions = failing(&["sql.query", "sql.query", "sql.query"]);
        let dir = temp_dir("retry-out");
        let answers = Answers(Answer::Yes("ana".into()), Answer::Yes("bo".into()));
        let engine = engine_of(&with_retry(2), actions.clone(), answers, &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Stopped {
                step: "verify".into(),
                reason: "connection refused (try 2 of 2)".into()
            }
        );
        assert_eq!(op.steps[4].attempts.len(), 1);
        // A resume gives the step its tries again: the third failure, then a success.
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(
            actions
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.0 == "sql.query")
                .count(),
            4
        );
    }

    #[tokio::test]
    async fn a_step_that_may_fail_is_journaled_tolerated_and_the_run_goes_on() {
        const TOLERANT: &str = "\
title: t
severity: sev2
owner: o
when_to_use: w
steps:
  - id: look
    action: database.describe
    on_failure: continue
    retry: { attempts: 2, backoff: 10ms, max_backoff: 10ms }
  - id: verify
    action: sql.query
    with: { query: 'select 1' }
";
        let actions = failing(&["database.describe", "database.describe"]);
        let dir = temp_dir("tolerated");
        let answers = Answers(Answer::Yes("ana".into()), Answer::Yes("bo".into()));
        let engine = engine_of(TOLERANT, actions.clone(), answers, &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, Scope::default()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(op.status, OperationStatus::Succeeded);
        assert_eq!(op.steps[0].status, StepStatus::Tolerated);
        assert_eq!(op.steps[0].error.as_deref(), Some("connection refused (try 2 of 2)"));
        assert_eq!(op.steps[1].status, StepStatus::Succeeded);
        assert_eq!(op.next_step(), 2, "a tolerated step is not run again by a resume");
        let timeline = crate::runbook::timeline::markdown(&op);
        assert!(timeline.contains("| tolerated |"), "{timeline}");
        assert!(engine.runbook.plan()[0].detail.contains("[goes on if it fails]"));
    }

    const HANDLED: &str = "\
title: t
severity: sev2
owner: o
when_to_use: w
steps:
  - id: look
    action: database.describe
  - id: verify
    action: sql.query
    with: { query: 'select 1' }
on_failure:
  - id: tell
    action: sql.query
    with: { query: 'stopped at ${run.stopped_at}: ${run.reason} (${steps.look.outputs.latest_snapshot})' }
  - id: never
    action: sql.query
    when: run.reason == 'nothing'
    with: { query: 'select 2' }
on_cancel:
  - id: cancelled
    action: sql.query
    with: { query: 'cancelled at ${run.stopped_at}' }
";

    #[tokio::test]
    async fn on_failure_handlers_run_unattended_when_the_run_stops_and_on_cancel_when_a_signal_stops_it() {
        let actions = failing(&["sql.query"]);
        let dir = temp_dir("handlers");
        let answers = Answers(Answer::No, Answer::No);
        let engine = engine_of(HANDLED, actions.clone(), answers, &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, Scope::default()).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Stopped { ref step, .. } if step == "verify"),
            "{outcome:?}"
        );
        assert_eq!(op.status, OperationStatus::Interrupted, "still resumable");
        {
            let calls = actions.calls.lock().unwrap();
            let handled: Vec<&String> = calls.iter().skip(2).map(|c| &c.1["query"]).collect();
            assert_eq!(handled, ["stopped at verify: connection refused (snap-1)"]);
        }
        let notes: Vec<&str> = op.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            notes,
            [
                "on_failure `tell`: done, rows=1",
                "on_failure `never`: skipped by its `when`"
            ]
        );
        let saved = engine.journal.load(&op.id).await.unwrap().unwrap();
        assert_eq!(saved.events.len(), 2, "the notes are journaled");

        // A signal: the step is not run, the on_cancel handler is, with a cancellation of its own.
        let engine = engine_of(HANDLED, failing(&[]), Answers(Answer::No, Answer::No), &dir);
        let (mut op, guard) = start(&engine).await;
        engine.cancel.cancel();
        let outcome = engine.run(&mut op, &guard, Scope::default()).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Interrupted { ref step } if step == "look"),
            "{outcome:?}"
        );
        let notes: Vec<&str> = op.events.iter().map(|e| e.message.as_str()).collect();
        assert!(notes.contains(&"on_cancel `cancelled`: done, rows=1"), "{notes:?}");
    }

    #[test]
    fn retry_waits_double_up_to_the_cap_and_bad_settings_are_refused() {
        let retry = crate::runbook::Retry {
            attempts: 5,
            backoff: std::time::Duration::from_secs(10),
            max_backoff: std::time::Duration::from_secs(30),
        };
        let waits: Vec<u64> = (1..=4).map(|n| retry.delay(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 30, 30]);
        let refused = |step: &str| {
            let text = format!("title: t\nseverity: sev2\nowner: o\nwhen_to_use: w\nsteps:\n  - id: s\n{step}");
            let errors = super::super::parse(&text, Path::new("t.yaml")).unwrap_err();
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
        };
        let cases = [
            (
                "    action: service.status\n    retry: { attempts: 0 }\n",
                "`attempts: 0` is out of range",
            ),
            (
                "    action: service.status\n    retry: { attempts: 11 }\n",
                "`attempts: 11` is out of range",
            ),
            (
                "    action: service.status\n    retry: { attempts: 2, backoff: 10m }\n",
                "`backoff: 10m` is longer than `max_backoff: 5m`",
            ),
            (
                "    action: manual\n    with: { instructions: x }\n    retry: { attempts: 2 }\n",
                "a manual step cannot be retried",
            ),
            ("    action: service.status\n    retry: { tries: 2 }\n", "tries"),
            (
                "    action: manual\n    with: { instructions: x }\n    on_failure: continue\n",
                "a manual step cannot go on after failing",
            ),
            ("    action: service.status\n    on_failure: ignore\n", "ignore"),
            (
                "    action: service.status\n    with: {}\non_failure:\n  - id: ask\n    action: service.status\n    confirm: true\n",
                "`on_failure` step `ask` asks a person",
            ),
            (
                "    action: sql.query\n    with: { query: '${run.reason}' }\n",
                "`run.reason` has a value only in an `on_failure` or `on_cancel` step",
            ),
            (
                "    action: service.status\non_cancel:\n  - id: s\n    action: service.status\n",
                "step id `s` is used twice",
            ),
        ];
        for (step, message) in cases {
            let errors = refused(step);
            assert!(errors.contains(message), "{step}: {errors}");
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("suma-runbook-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn runs_conditions_references_and_confirmations_into_the_journal() {
        let actions = recorder(None);
        let dir = temp_dir("run");
        let engine = engine(
            actions.clone(),
            Answers(Answer::Yes("ana".into()), Answer::Yes("bo".into())),
            &dir,
        );
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(op.status, OperationStatus::Succeeded);
        let statuses: Vec<_> = op.steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Succeeded,
                StepStatus::Skipped,
                StepStatus::Succeeded,
                StepStatus::Succeeded,
                StepStatus::Succeeded
            ]
        );
        let calls = actions.calls.lock().unwrap();
        assert_eq!(calls.len(), 3, "the manual step calls no action: {calls:?}");
        assert_eq!(calls[1].1["snapshot"], "snap-1");
        assert_eq!(calls[2].1["host"], "restored.db");
        assert_eq!(op.steps[2].facts["confirmed_by"], json!("ana"));
        assert_eq!(op.steps[3].facts["confirmed_by"], json!("bo"));
        assert_eq!(
            op.steps[3].facts["args"]["instructions"],
            json!("Tell the team: disk full (restored restored)")
        );
    }

    #[tokio::test]
    async fn a_failed_step_stops_the_run_and_resume_continues_there_with_earlier_outputs() {
        let actions = recorder(Some("sql.query"));
        let dir = temp_dir("resume");
        let engine = engine(
            actions.clone(),
            Answers(Answer::Yes("ana".into()), Answer::Yes("bo".into())),
            &dir,
        );
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Stopped {
                step: "verify".into(),
                reason: "connection refused".into()
            }
        );
        assert_eq!(op.status, OperationStatus::Interrupted);
        assert_eq!(op.next_step(), 4);
        // Resume: only the failed step runs again, with the restore's recorded endpoint.
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        let calls = actions.calls.lock().unwrap();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[3].0, "sql.query");
        assert_eq!(calls[3].1["host"], "restored.db");
    }

    #[tokio::test]
    async fn declined_or_unanswerable_steps_stop_and_skip_manual_skips() {
        let dir = temp_dir("answers");
        let engine = engine(recorder(None), Answers(Answer::No, Answer::Yes("bo".into())), &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Stopped { ref step, ref reason } if step == "restore" && reason == "not confirmed")
        );

        let engine = engine_with(Answers(Answer::Yes("ci (--yes)".into()), Answer::Skip), &dir);
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(op.steps[3].status, StepStatus::Skipped);

        let engine = engine_with(
            Answers(
                Answer::Yes("ci".into()),
                Answer::Cannot("manual step without --skip-manual".into()),
            ),
            &dir,
        );
        let (mut op, guard) = start(&engine).await;
        let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
        assert!(matches!(outcome, Outcome::Stopped { ref step, .. } if step == "tell"));
    }

    /// A new run holding the environment's lock, as the command starts it.
    async fn start(engine: &Engine<'_>) -> (Operation, crate::journal::lock::LockGuard) {
        let op = Operation::new(KIND, "staging", "ana", engine.runbook.plan());
        let locks =
            crate::journal::lock::Locks::new(engine.journal.table().clone(), std::time::Duration::from_secs(60));
        let guard = locks.acquire(&op, false).await.unwrap();
        (op, guard)
    }

    fn engine_with(answers: Answers, dir: &Path) -> Engine<'static> {
        engine(recorder(None), answers, dir)
    }
}
