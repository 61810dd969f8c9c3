//! Runbook hooks on the deploy engine, with a scripted runner: each attempt of a step runs its own child
//! operation under an id derived from the deploy, the step and the hook; a failing runbook rolls the
//! deploy back with its reason; an interrupted one stops the deploy as interrupted.

use super::*;
use crate::canary::hooks::{RunbookHooks, RunbookVerdict};
use crate::config::DeployHook;

/// Answers each run from a script, in order, and records the child ids it was given.
struct ScriptedRunbooks {
    verdicts: Mutex<Vec<RunbookVerdict>>,
    children: Mutex<Vec<String>>,
}

#[async_trait]
impl RunbookHooks for ScriptedRunbooks {
    async fn run(&self, _: &DeployHook, _: &Operation, child_id: &str, guard: &LockGuard) -> RunbookVerdict {
        assert!(guard.ensure_held().is_ok(), "a hook runs under the deploy's lock");
        self.children.lock().unwrap().push(child_id.to_owned());
        self.verdicts.lock().unwrap().remove(0)
    }
}

fn with_smoke_hook(h: &Harness, verdicts: Vec<RunbookVerdict>) -> (Engine, Arc<ScriptedRunbooks>, CancellationToken) {
    let runner = Arc::new(ScriptedRunbooks {
        verdicts: Mutex::new(verdicts),
        children: Mutex::new(Vec::new()),
    });
    let cancel = CancellationToken::new();
    let mut engine = h.engine(Script::new(&[Some(0.0)]), silent(), cancel.clone());
    engine.env.hooks.post_step =
        vec![serde_norway::from_str("{ name: release smoke, runbook: runbooks/release-smoke.yaml }").unwrap()];
    engine.runbook_hooks = Some(runner.clone());
    (engine, runner, cancel)
}

#[tokio::test(start_paused = true)]
async fn a_failing_runbook_hook_rolls_back_and_each_step_runs_its_own_child() {
    let h = Harness::new(RolloutEnd::Completes);
    let (engine, runner, _) = with_smoke_hook(
        &h,
        vec![
            RunbookVerdict::Passed,
            RunbookVerdict::Failed("step `health` failed: GET /health answered 503".into()),
        ],
    );
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    let child_10 = format!("{}.shift-10.release-smoke.1", op.id);
    let child_50 = format!("{}.shift-50.release-smoke.1", op.id);
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason == &format!("post-step hook `release smoke` failed: runbook run `{child_50}`: step `health` failed: GET /health answered 503")),
        "{outcome:?}"
    );
    assert_eq!(*runner.children.lock().unwrap(), [child_10.clone(), child_50.clone()]);
    h.assert_consistent("td:1");
    let hooks = |step: &str| op.steps.iter().rev().find(|s| s.name == step).unwrap().facts["hooks"][0].clone();
    assert_eq!(hooks("shift-10")["operation"], json!(child_10));
    assert_eq!(hooks("shift-10")["ok"], json!(true));
    assert_eq!(hooks("shift-50")["ok"], json!(false));
    assert_eq!(hooks("shift-50")["runbook"], json!("runbooks/release-smoke.yaml"));
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_runbook_hook_leaves_the_deploy_interrupted_and_resume_runs_it_again() {
    let h = Harness::new(RolloutEnd::Completes);
    let (engine, runner, _) = with_smoke_hook(&h, vec![RunbookVerdict::Interrupted]);
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Interrupted { at_step } if at_step == "shift-10"),
        "{outcome:?}"
    );
    assert_eq!(runner.children.lock().unwrap().len(), 1);

    // The resumed step is its second attempt: its hook runs as a child of its own.
    h.expire_lease();
    let (engine, runner, _) = with_smoke_hook(&h, vec![RunbookVerdict::Passed, RunbookVerdict::Passed]);
    let outcome = h.run(&engine, &mut op, true).await;
    assert_eq!(outcome, Outcome::Promoted);
    let children = runner.children.lock().unwrap().clone();
    assert_eq!(
        children,
        [
            format!("{}.shift-10.release-smoke.2", op.id),
            format!("{}.shift-50.release-smoke.1", op.id)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_runner_a_runbook_hook_fails_with_the_reason() {
    let h = Harness::new(RolloutEnd::Completes);
    let (mut engine, _, _) = with_smoke_hook(&h, Vec::new());
    engine.runbook_hooks = None;
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.ends_with("this command cannot run runbook hooks")),
        "{outcome:?}"
    );
}
