//! The engine's control flow beyond one step after another: `approve` steps counting distinct
//! identities, and `parallel` steps whose branches run at once, join, and resume branch by branch.

use super::*;

const APPROVED: &str = "\
title: t
severity: sev1
owner: o
when_to_use: w
steps:
  - id: sign-off
    action: approve
    with: { summary: 'restore production from the snapshot', approvers: 2 }
  - id: restore
    action: database.restore-snapshot
    with: { target: restored, snapshot: snap-1 }
";

#[tokio::test]
async fn an_approval_step_waits_for_distinct_identities_and_yes_counts_once() {
    let actions = recorder(None);
    let dir = temp_dir("approve");
    let answers = Answers(Answer::Yes("ana@laptop (--yes)".into()), Answer::No);
    let engine = engine_of(APPROVED, actions.clone(), answers, &dir);
    let (mut op, guard) = start(&engine).await;

    // The runner's `--yes` is one approval of two: the run stops before anything changes.
    let id = op.id.clone();
    let waiting = |n: usize| {
        Outcome::Stopped {
        step: "sign-off".into(),
        reason: format!(
            "waiting for approvals: {n} of 2 ({RUNNER}); each other approver runs `suma runbook approve {id} --step sign-off` with their own AWS credentials, then `suma runbook resume {id}` goes on"
        ),
    }
    };
    assert_eq!(engine.run(&mut op, &guard, scope()).await.unwrap(), waiting(1));
    assert!(actions.calls.lock().unwrap().is_empty(), "nothing ran");
    assert_eq!(op.steps[0].facts["approvals"][0]["identity"], RUNNER);
    // Resumed with `--yes` again by the same identity: still one.
    assert_eq!(engine.run(&mut op, &guard, scope()).await.unwrap(), waiting(1));

    // A second identity approves: the run goes on, and says who approved.
    let bo = "arn:aws:sts::123456789012:assumed-role/oncall/bo";
    actions.approve(approval(bo, "bo@desk"));
    assert_eq!(engine.run(&mut op, &guard, scope()).await.unwrap(), Outcome::Completed);
    let sign_off = &op.steps[0];
    assert_eq!(sign_off.status, StepStatus::Succeeded);
    assert_eq!(sign_off.facts["outputs"]["approved_by"], json!([RUNNER, bo]));
    assert_eq!(sign_off.facts["approvals"][1]["actor"], "bo@desk");
    assert_eq!(actions.calls.lock().unwrap().len(), 1, "the restore ran once");
}

#[tokio::test]
async fn an_approval_declined_by_the_runner_stops_and_without_an_answer_only_recorded_ones_count() {
    let actions = recorder(None);
    let dir = temp_dir("approve-no");
    let engine = engine_of(APPROVED, actions.clone(), Answers(Answer::No, Answer::No), &dir);
    let (mut op, guard) = start(&engine).await;
    let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Stopped {
            step: "sign-off".into(),
            reason: "not approved by the one running the run".into()
        }
    );

    // In CI without `--yes`: two approvals recorded beforehand are enough.
    let dir = temp_dir("approve-ci");
    let unanswered = Answers(Answer::Cannot("no terminal".into()), Answer::No);
    let engine = engine_of(APPROVED, actions.clone(), unanswered, &dir);
    let (mut op, guard) = start(&engine).await;
    actions.approve(approval("arn:aws:iam::123456789012:user/cy", "cy"));
    actions.approve(approval("arn:aws:iam::123456789012:user/di", "di"));
    assert_eq!(engine.run(&mut op, &guard, scope()).await.unwrap(), Outcome::Completed);
    assert!(
        !op.steps[0].facts["outputs"]["approved_by"]
            .to_string()
            .contains("oncall/ana"),
        "the runner gave no approval"
    );
}

const PARALLEL: &str = "\
title: t
severity: sev2
owner: o
when_to_use: w
steps:
  - id: look
    action: database.describe
  - id: checks
    action: parallel
    branches:
      - id: api
        action: http.check
        with: { url: 'http://api/${steps.look.outputs.latest_snapshot}' }
      - id: web
        action: http.check
        with: { url: 'http://web/' }
      - id: standby
        action: database.describe
        when: steps.look.outputs.multi_az == true
  - id: after
    action: sql.query
    with: { query: 'select ${steps.api.outputs.status}' }
";

fn calls_of(actions: &Recorder, action: &str) -> usize {
    actions.calls.lock().unwrap().iter().filter(|c| c.0 == action).count()
}

#[tokio::test]
async fn parallel_branches_run_at_once_and_the_steps_after_the_join_read_their_outputs() {
    let actions = recorder(None);
    // Each `http.check` waits for the other: run one after the other, they would never finish.
    *actions.meeting.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(2)));
    let dir = temp_dir("parallel");
    let engine = engine_of(PARALLEL, actions.clone(), Answers(Answer::No, Answer::No), &dir);
    let (mut op, guard) = start(&engine).await;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), engine.run(&mut op, &guard, scope()))
        .await
        .expect("both branches were in flight together")
        .unwrap();
    assert_eq!(outcome, Outcome::Completed);
    let branches = &op.steps[1].facts["branches"];
    assert_eq!(branches["api"]["status"], "succeeded");
    assert_eq!(
        branches["api"]["args"]["url"], "http://api/snap-1",
        "resolved before the branch ran"
    );
    assert_eq!(branches["web"]["outputs"]["status"], 200);
    assert_eq!(branches["standby"]["status"], "skipped");
    assert_eq!(
        op.steps[2].facts["args"]["query"], "select 200",
        "a branch's output after the join"
    );
    let saved = engine.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(saved.steps[1].facts["branches"], *branches, "journaled as it went");
    let timeline = crate::runbook::timeline::markdown(&saved);
    assert!(
        timeline.contains(
            "`api` succeeded; `standby` skipped: `steps.look.outputs.multi_az == true` is false; `web` succeeded"
        ),
        "{timeline}"
    );
}

#[tokio::test]
async fn a_failed_branch_fails_the_join_and_resume_runs_only_the_branches_that_did_not_succeed() {
    const TWO: &str = "\
title: t
severity: sev2
owner: o
when_to_use: w
steps:
  - id: checks
    action: parallel
    branches:
      - id: api
        action: http.check
        with: { url: 'http://api/' }
      - id: db
        action: sql.query
        with: { query: 'select 1' }
      - id: notify
        action: datadog.event
        on_failure: continue
        with: { title: t, text: x }
  - id: after
    action: sql.query
    with: { query: 'select ${steps.api.outputs.status}' }
";
    let actions = failing(&["sql.query", "datadog.event"]);
    let dir = temp_dir("parallel-resume");
    let engine = engine_of(TWO, actions.clone(), Answers(Answer::No, Answer::No), &dir);
    let (mut op, guard) = start(&engine).await;
    let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Stopped {
            step: "checks".into(),
            reason: "1 of 3 branches failed: `db`: connection refused".into()
        }
    );
    let branches = &op.steps[0].facts["branches"];
    assert_eq!(
        branches["api"]["status"], "succeeded",
        "the other branches ran to their end"
    );
    assert_eq!(branches["notify"]["status"], "tolerated");
    assert_eq!(branches["db"]["error"], "connection refused");

    let outcome = engine.run(&mut op, &guard, scope()).await.unwrap();
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        calls_of(&actions, "http.check"),
        1,
        "a branch that succeeded does not run again"
    );
    assert_eq!(calls_of(&actions, "datadog.event"), 1, "nor one that was tolerated");
    assert_eq!(calls_of(&actions, "sql.query"), 3, "`db` twice, then `after`");
    assert_eq!(
        op.steps[1].facts["args"]["query"], "select 200",
        "`api`'s output from the first attempt"
    );
}
