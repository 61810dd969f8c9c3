//! The runbook engine against recorded actions and scripted answers: conditions, references,
//! confirmations, resume, retry, tolerated failures and handlers, each journaled.

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

/// Records calls; fails the actions `failures` names, once per entry, in order. Approvals are kept as
/// the lock table keeps them: one per identity; the runner is `RUNNER`.
struct Recorder {
    calls: Mutex<Vec<(String, BTreeMap<String, String>)>>,
    failures: Mutex<Vec<String>>,
    approvals: Mutex<Vec<ApprovalItem>>,
    /// When set, every `http.check` waits here: two of them get past it only by running at once.
    meeting: Mutex<Option<Arc<tokio::sync::Barrier>>>,
}

const RUNNER: &str = "arn:aws:sts::123456789012:assumed-role/oncall/ana";

fn approval(identity: &str, actor: &str) -> ApprovalItem {
    ApprovalItem {
        identity: identity.to_owned(),
        actor: actor.to_owned(),
        at: "2026-12-06T05:00:00Z".to_owned(),
        reason: None,
    }
}

impl Recorder {
    fn approve(&self, given: ApprovalItem) {
        let mut approvals = self.approvals.lock().unwrap();
        if !approvals.iter().any(|a| a.identity == given.identity) {
            approvals.push(given);
        }
    }
}

#[async_trait]
impl Actions for Recorder {
    async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError> {
        self.calls.lock().unwrap().push((ctx.step.action.clone(), args.clone()));
        let meeting = self.meeting.lock().unwrap().clone();
        if let (Some(meeting), "http.check") = (meeting, ctx.step.action.as_str()) {
            meeting.wait().await;
        }
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
            "http.check" => Outputs::from([("status".into(), json!(200))]),
            _ => Outputs::from([("rows".into(), json!(1))]),
        }
        .into())
    }

    async fn approvals(&self, _: &StepContext<'_>, runner: Option<&str>) -> Result<Vec<ApprovalItem>, ActionError> {
        if let Some(actor) = runner {
            self.approve(approval(RUNNER, actor));
        }
        Ok(self.approvals.lock().unwrap().clone())
    }
}

/// Lets a test keep the recorder while the engine borrows it.
struct ArcActions(Arc<Recorder>);

#[async_trait]
impl Actions for ArcActions {
    async fn run(&self, args: &BTreeMap<String, String>, ctx: &StepContext<'_>) -> Result<Done, ActionError> {
        self.0.run(args, ctx).await
    }
    async fn approvals(&self, ctx: &StepContext<'_>, runner: Option<&str>) -> Result<Vec<ApprovalItem>, ActionError> {
        self.0.approvals(ctx, runner).await
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
        approvals: Mutex::default(),
        meeting: Mutex::default(),
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
                "a `manual` step cannot be retried",
            ),
            ("    action: service.status\n    retry: { tries: 2 }\n", "tries"),
            (
                "    action: manual\n    with: { instructions: x }\n    on_failure: continue\n",
                "a `manual` step cannot go on after failing",
            ),
            (
                "    action: approve\n    with: { summary: x, approvers: 0 }\n",
                "`approvers: 0` is not between 1 and 10",
            ),
            (
                "    action: approve\n    with: { summary: x }\n    retry: { attempts: 2 }\n",
                "an `approve` step cannot be retried",
            ),
            (
                "    action: parallel\n    branches:\n      - { id: a, action: service.status }\n      - { id: b, action: manual, with: { instructions: x } }\n",
                "step `b` cannot be a branch of `s`: it asks a person",
            ),
            (
                "    action: parallel\n    branches:\n      - { id: a, action: service.status }\n      - { id: b, action: secret.rotate, with: { secret: x } }\n",
                "step `b` cannot be a branch of `s`: it runs an operation of its own",
            ),
            (
                "    action: parallel\n    branches:\n      - { id: a, action: service.status }\n      - { id: b, action: sql.query, with: { query: '${steps.a.outputs.running}' } }\n",
                "refers to branch `a`, which runs at the same time as this one",
            ),
            (
                "    action: parallel\n    branches:\n      - { id: a, action: service.status }\n",
                "parallel step `s` has 1 branch(es)",
            ),
            (
                "    action: service.status\n    branches:\n      - { id: a, action: service.status }\n",
                "`branches` belong to `action: parallel`",
            ),
            (
                "    action: parallel\n    timeout: 1m\n    branches:\n      - { id: a, action: service.status }\n      - { id: b, action: service.status }\n",
                "takes no `retry` or `timeout` of its own",
            ),
            (
                "    action: service.status\n    with: {}\non_failure:\n  - id: ask\n    action: approve\n    with: { summary: x }\n",
                "`on_failure` step `ask` asks a person",
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
    let locks = crate::journal::lock::Locks::new(engine.journal.table().clone(), std::time::Duration::from_secs(60));
    let guard = locks.acquire(&op, false).await.unwrap();
    (op, guard)
}

fn engine_with(answers: Answers, dir: &Path) -> Engine<'static> {
    engine(recorder(None), answers, dir)
}

mod control_flow;
