//! Executes a validated runbook, one step at a time: evaluates `when`, resolves references, asks for
//! confirmation, runs the action under its timeout, and journals the step (resolved arguments, outputs,
//! who confirmed it, timing) before moving on. A failed, declined or timed-out step stops the run as
//! `interrupted` with the lock kept, so `suma runbook resume` continues from that step with the earlier
//! outputs. Nothing here knows AWS: actions come through [`Actions`], people through [`Confirmations`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::expr::{self, Condition, Scope};
use super::{Runbook, Step};
use crate::journal::{Journal, JournalError, Operation, OperationStatus, StepStatus};
use crate::report::Reporter;

pub const KIND: &str = "runbook";

/// What a step needs besides its arguments.
pub struct StepContext<'a> {
    pub operation: &'a Operation,
    pub step: &'a Step,
    /// The journal facts of an earlier, unfinished attempt of this step (a child operation's id).
    pub previous_facts: &'a BTreeMap<String, Value>,
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
    /// Runs from `op.next_step()` to the end. `scope` holds params, env and run values; earlier outputs
    /// are read from the journal.
    pub async fn run(
        &self,
        op: &mut Operation,
        holder: &str,
        mut scope: Scope,
        lost: CancellationToken,
    ) -> Result<Outcome, JournalError> {
        scope.outputs = recorded_outputs(op);
        let total = self.runbook.steps.len();
        for index in op.next_step()..total {
            let step = &self.runbook.steps[index];
            if self.cancel.is_cancelled() || lost.is_cancelled() {
                return self.interrupted(op, holder, step).await;
            }
            let previous_facts = op.steps.get(index).map(|s| s.facts.clone()).unwrap_or_default();
            op.start_step(index);
            self.reporter.step_started(index, total, &step.id);
            if let Some(when) = &step.when {
                let holds = Condition::parse(when).and_then(|c| c.eval(&scope));
                match holds {
                    Ok(true) => {}
                    Ok(false) => {
                        op.finish_step(
                            StepStatus::Skipped,
                            None,
                            BTreeMap::from([("skipped".to_owned(), json!(format!("`{when}` is false")))]),
                        );
                        self.journal.save(op, Some(holder)).await?;
                        self.reporter.step_finished(
                            index,
                            total,
                            &step.id,
                            StepStatus::Skipped,
                            &format!("when {when}: false"),
                        );
                        continue;
                    }
                    Err(e) => {
                        return self
                            .stop(
                                op,
                                holder,
                                step,
                                &format!("its `when` cannot be evaluated: {e}"),
                                BTreeMap::new(),
                            )
                            .await
                    }
                }
            }
            let mut args = BTreeMap::new();
            for (name, value) in &step.args {
                let text = match value {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => expr::to_text(&super::yaml_to_json(other)),
                };
                let resolved = match expr::interpolate(&text, &scope) {
                    Ok(r) => r,
                    Err(e) => return self.stop(op, holder, step, &e, BTreeMap::new()).await,
                };
                if let Some(spec) = step.spec().arg(name) {
                    if let Err(e) = spec.ty.check(&resolved) {
                        return self
                            .stop(
                                op,
                                holder,
                                step,
                                &format!("argument `{name}` resolved to {e}"),
                                BTreeMap::new(),
                            )
                            .await;
                    }
                }
                args.insert(name.clone(), resolved);
            }
            let mut facts = BTreeMap::from([("args".to_owned(), json!(args))]);
            // Kept across attempts: a child operation started by an earlier attempt is resumed, not redone.
            for (k, v) in &previous_facts {
                if k.starts_with("child_") {
                    facts.insert(k.clone(), v.clone());
                }
            }
            self.journal.save(op, Some(holder)).await?;
            let confirmed_by = if step.action == "manual" {
                let instructions = args.get("instructions").cloned().unwrap_or_default();
                match self.confirmations.manual(step, &instructions) {
                    Answer::Yes(who) => Some(who),
                    Answer::Skip => {
                        facts.insert("skipped".to_owned(), json!("--skip-manual"));
                        op.finish_step(StepStatus::Skipped, None, facts);
                        self.journal.save(op, Some(holder)).await?;
                        self.reporter.step_finished(
                            index,
                            total,
                            &step.id,
                            StepStatus::Skipped,
                            "manual step skipped (--skip-manual)",
                        );
                        continue;
                    }
                    Answer::No => {
                        return self
                            .stop(op, holder, step, "the manual step was not confirmed as done", facts)
                            .await
                    }
                    Answer::Cannot(reason) => return self.stop(op, holder, step, &reason, facts).await,
                }
            } else if step.confirm {
                let question = format!("run step `{}`: {}", step.id, step.describe());
                match self.confirmations.confirm(step, &question) {
                    Answer::Yes(who) => Some(who),
                    Answer::No | Answer::Skip => return self.stop(op, holder, step, "not confirmed", facts).await,
                    Answer::Cannot(reason) => return self.stop(op, holder, step, &reason, facts).await,
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
                let context = StepContext {
                    operation: op,
                    step,
                    previous_facts: &previous_facts,
                    cancel: self.cancel.clone(),
                };
                let timeout = step.timeout();
                let result = tokio::select! {
                    r = tokio::time::timeout(timeout, self.actions.run(&args, &context)) => r,
                    () = self.cancel.cancelled() => return self.interrupted(op, holder, step).await,
                    () = lost.cancelled() => return self.interrupted(op, holder, step).await,
                };
                match result {
                    Ok(Ok(done)) => done,
                    Ok(Err(e)) => {
                        facts.extend(e.facts);
                        return self.stop(op, holder, step, &e.message, facts).await;
                    }
                    Err(_) => {
                        let reason = format!("timed out after {}", humantime::format_duration(timeout));
                        return self.stop(op, holder, step, &reason, facts).await;
                    }
                }
            };
            facts.extend(done.facts);
            let outputs = done.outputs;
            let summary = outputs
                .iter()
                .map(|(k, v)| format!("{k}={}", expr::to_text(v)))
                .collect::<Vec<_>>()
                .join(" ");
            facts.insert("outputs".to_owned(), json!(outputs));
            scope.outputs.insert(step.id.clone(), outputs);
            op.finish_step(StepStatus::Succeeded, None, facts);
            self.journal.save(op, Some(holder)).await?;
            self.reporter
                .step_finished(index, total, &step.id, StepStatus::Succeeded, &summary);
        }
        op.set_status(OperationStatus::Succeeded);
        self.journal.save(op, Some(holder)).await?;
        Ok(Outcome::Completed)
    }

    async fn stop(
        &self,
        op: &mut Operation,
        holder: &str,
        step: &Step,
        reason: &str,
        facts: BTreeMap<String, Value>,
    ) -> Result<Outcome, JournalError> {
        op.finish_step(StepStatus::Failed, Some(reason.to_owned()), facts);
        // Resumable: the lock stays with the run until `resume` or `abort`.
        op.set_status(OperationStatus::Interrupted);
        self.journal.save(op, Some(holder)).await?;
        let index = op.steps.len().saturating_sub(1);
        self.reporter
            .step_finished(index, self.runbook.steps.len(), &step.id, StepStatus::Failed, reason);
        Ok(Outcome::Stopped {
            step: step.id.clone(),
            reason: reason.to_owned(),
        })
    }

    async fn interrupted(&self, op: &mut Operation, holder: &str, step: &Step) -> Result<Outcome, JournalError> {
        if op.steps.last().is_some_and(|s| s.status == StepStatus::Running) {
            op.finish_step(StepStatus::Failed, Some("interrupted".to_owned()), BTreeMap::new());
        }
        op.set_status(OperationStatus::Interrupted);
        self.journal.save(op, Some(holder)).await?;
        Ok(Outcome::Interrupted { step: step.id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::journal::memory::MemoryTable;
    use crate::journal::LocalLog;
    use crate::report::SilentReporter;

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

    /// Records calls; fails `fail_on` once.
    struct Recorder {
        calls: Mutex<Vec<(String, BTreeMap<String, String>)>>,
        fail_once: Mutex<Option<String>>,
    }

    #[async_trait]
    impl Actions for Recorder {
        async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError> {
            self.calls.lock().unwrap().push((ctx.step.action.clone(), args.clone()));
            if self
                .fail_once
                .lock()
                .unwrap()
                .take_if(|a| *a == ctx.step.action)
                .is_some()
            {
                return Err(ActionError::new("connection refused"));
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
        Engine {
            runbook: super::super::parse(RUNBOOK, Path::new("t.yaml")).unwrap(),
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
        Arc::new(Recorder {
            calls: Mutex::default(),
            fail_once: Mutex::new(fail_once.map(str::to_owned)),
        })
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
        let (mut op, _guard) = start(&engine).await;
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
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
        let (mut op, _guard) = start(&engine).await;
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
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
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
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
        let (mut op, _guard) = start(&engine).await;
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Stopped { ref step, ref reason } if step == "restore" && reason == "not confirmed")
        );

        let engine = engine_with(Answers(Answer::Yes("ci (--yes)".into()), Answer::Skip), &dir);
        let (mut op, _guard) = start(&engine).await;
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(op.steps[3].status, StepStatus::Skipped);

        let engine = engine_with(
            Answers(
                Answer::Yes("ci".into()),
                Answer::Cannot("manual step without --skip-manual".into()),
            ),
            &dir,
        );
        let (mut op, _guard) = start(&engine).await;
        let outcome = engine
            .run(&mut op, "ana", scope(), CancellationToken::new())
            .await
            .unwrap();
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
