//! The environment lock and the journal against DynamoDB in the sandbox (moto): mutual exclusion, lease
//! expiry and takeover, fencing, and force release through the CLI.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{json, lock_region, run, sandbox_session, suma, unique};
use suma::journal::lock::{LockError, Locks};
use suma::journal::{Journal, LocalLog, Operation, OperationStatus, PlannedStep, StepStatus};

const TABLE: &str = "suma-locks";

fn op(environment: &str, actor: &str) -> Operation {
    Operation::new(
        "test-operation",
        environment,
        actor,
        vec![PlannedStep {
            name: "change".to_owned(),
            detail: "changes a thing".to_owned(),
        }],
    )
}

async fn locks(lease: Duration) -> Locks {
    let session = sandbox_session().await;
    Locks::new(session.lock_store(&lock_region(), TABLE), lease)
}

async fn journal(dir: &std::path::Path) -> Journal {
    let session = sandbox_session().await;
    Journal::new(session.lock_store(&lock_region(), TABLE), LocalLog::new(dir))
}

#[tokio::test]
async fn of_concurrent_acquirers_exactly_one_wins() {
    crate::require_sandbox!();
    let environment = unique("race");
    let locks = Arc::new(locks(Duration::from_secs(30)).await);
    let attempts = (0..8).map(|i| {
        let locks = locks.clone();
        let environment = environment.clone();
        tokio::spawn(async move { locks.acquire(&op(&environment, &format!("runner-{i}@ci")), false).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one acquirer holds the lock");
    for result in &results {
        if let Err(e) = result {
            assert!(matches!(e, LockError::Held(_)), "losers see who holds it: {e}");
            assert!(e.to_string().contains("is locked by runner-"), "{e}");
        }
    }
    let holder = locks.status(&environment).await.unwrap().expect("locked");
    assert!(holder.lease_active);
    for guard in results.into_iter().flatten() {
        guard.release().await.unwrap();
    }
    assert!(locks.status(&environment).await.unwrap().is_none(), "released");
}

#[tokio::test]
async fn a_renewed_lease_stays_held_beyond_its_length() {
    crate::require_sandbox!();
    let environment = unique("renew");
    // Long enough that a renew has seconds to answer while the crash matrix loads moto and both cores: a
    // renew that misses the safety margin stops the guard, as designed (a stuck request is hedged; the
    // unit tests of the lock show it). The wait covers two lease lengths.
    let locks = locks(Duration::from_secs(20)).await;
    let guard = locks.acquire(&op(&environment, "a@host"), false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(41_000)).await;
    let err = locks.acquire(&op(&environment, "b@host"), false).await.unwrap_err();
    assert!(matches!(err, LockError::Held(_)), "{err}");
    assert!(!guard.lost().is_cancelled());
    guard.release().await.unwrap();
    let second = locks.acquire(&op(&environment, "b@host"), false).await.unwrap();
    second.release().await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_only_to_finish_its_operation() {
    crate::require_sandbox!();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path()).await;
    let environment = unique("expiry");
    let locks = locks(Duration::from_secs(1)).await;
    let crashed = op(&environment, "a@host");
    let guard = locks.acquire(&crashed, false).await.unwrap();
    journal.save(&crashed, Some(guard.fence())).await.unwrap();
    // The holder dies: it stops renewing without releasing.
    guard.abandon();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let other = op(&environment, "b@host");
    let err = locks.acquire(&other, false).await.unwrap_err();
    assert!(matches!(err, LockError::Unfinished(_)), "{err}");
    assert!(err.to_string().contains(&crashed.id), "{err}");
    assert!(err.to_string().contains("resume or abort it"), "{err}");

    // Resuming the crashed operation takes the expired lease over.
    let resumed = locks.acquire(&crashed, true).await.unwrap();
    let mut finished = crashed.clone();
    finished.set_status(OperationStatus::Succeeded);
    journal.save(&finished, Some(resumed.fence())).await.unwrap();
    resumed.release().await.unwrap();
    let free = locks.acquire(&other, false).await.unwrap();
    free.release().await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_of_a_finished_operation_is_free_to_take() {
    crate::require_sandbox!();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path()).await;
    let environment = unique("finished");
    let locks = locks(Duration::from_secs(1)).await;
    let mut first = op(&environment, "a@host");
    let guard = locks.acquire(&first, false).await.unwrap();
    first.set_status(OperationStatus::Failed);
    journal.save(&first, Some(guard.fence())).await.unwrap();
    // Crashed after recording the end but before deleting the lock.
    guard.abandon();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let next = locks.acquire(&op(&environment, "b@host"), false).await.unwrap();
    next.release().await.unwrap();
}

#[tokio::test]
async fn a_holder_that_lost_the_lock_cannot_overwrite_the_journal() {
    crate::require_sandbox!();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path()).await;
    let environment = unique("fence");
    let locks = locks(Duration::from_secs(30)).await;
    let mut mine = op(&environment, "a@host");
    let guard = locks.acquire(&mine, false).await.unwrap();
    mine.start_step(0);
    journal.save(&mine, Some(guard.fence())).await.unwrap();

    suma::lock_release::force_release(
        &locks,
        &journal,
        &suma::report::SilentReporter,
        &tokio_util::sync::CancellationToken::new(),
        &environment,
        "oncall@host",
        "holder unresponsive",
    )
    .await
    .unwrap()
    .expect("it was locked");
    mine.finish_step(StepStatus::Succeeded, None, Default::default());
    let err = journal.save(&mine, Some(guard.fence())).await.unwrap_err();
    assert!(err.to_string().contains("no longer held by this operation"), "{err}");
    let recorded = journal.load(&mine.id).await.unwrap().unwrap();
    assert_eq!(
        recorded.status,
        OperationStatus::Abandoned,
        "the force release marked it abandoned"
    );
    assert_eq!(
        recorded.steps[0].status,
        StepStatus::Running,
        "the fenced write did not land"
    );
}

#[tokio::test]
async fn after_a_takeover_the_stalled_runner_is_fenced_out_though_actor_and_operation_match() {
    crate::require_sandbox!();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path()).await;
    let environment = unique("takeover");
    let locks = locks(Duration::from_secs(1)).await;
    let table = sandbox_session().await.lock_store(&lock_region(), TABLE);
    let mut stalled = op(&environment, "ci@runner-7");
    let first = locks.acquire(&stalled, false).await.unwrap();
    let stale_fence = first.fence().clone();
    journal.save(&stalled, Some(&stale_fence)).await.unwrap();
    // The runner stalls (a paused VM, a long GC): it stops renewing but still believes it holds the lock.
    first.abandon();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // `resume` on the same CI actor takes the expired lease over: a new fence.
    let resumed = locks.acquire(&stalled, true).await.unwrap();
    assert_ne!(resumed.fence(), &stale_fence);
    let mut current = stalled.clone();
    current.note("ci@runner-7", "resumed");
    journal.save(&current, Some(resumed.fence())).await.unwrap();

    // The stalled runner wakes: every write under its old fence is refused.
    stalled.start_step(0);
    let err = journal.save(&stalled, Some(&stale_fence)).await.unwrap_err();
    assert!(err.to_string().contains("no longer held by this operation"), "{err}");
    let renew = table
        .renew(&environment, stale_fence.as_str(), i64::MAX)
        .await
        .unwrap_err();
    assert_eq!(renew.kind, suma::aws::AwsErrorKind::ConditionFailed, "{renew}");
    let control = table
        .take_control(&environment, stale_fence.as_str())
        .await
        .unwrap_err();
    assert_eq!(control.kind, suma::aws::AwsErrorKind::ConditionFailed, "{control}");
    assert_eq!(
        journal.load(&stalled.id).await.unwrap().unwrap(),
        current,
        "the successor's record stands"
    );

    // Commands are for the operation they name, consumed once, and readable only under the live fence.
    table
        .put_control(&environment, &stalled.id, "abort", "oncall@laptop")
        .await
        .unwrap();
    let other = table
        .put_control(&environment, "20261204T000000-000000", "promote", "oncall@laptop")
        .await
        .unwrap_err();
    assert_eq!(other.kind, suma::aws::AwsErrorKind::ConditionFailed, "{other}");
    assert_eq!(
        resumed.take_control().await.unwrap(),
        Some(("abort".to_owned(), "oncall@laptop".to_owned()))
    );
    assert_eq!(resumed.take_control().await.unwrap(), None, "consumed when read");
    resumed.release().await.unwrap();
}

#[tokio::test]
async fn force_release_through_the_cli_needs_confirmation_and_is_journaled() {
    crate::require_sandbox!();
    // Its own copy of the staging environment under a unique name keeps this test apart from others.
    let environment = "staging";
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path()).await;
    let locks = locks(Duration::from_secs(30)).await;
    let held = op(environment, "crashed-runner@ci");
    let guard = locks.acquire(&held, false).await.unwrap();
    journal.save(&held, Some(guard.fence())).await.unwrap();
    guard.abandon();

    // No TTY and no --yes: refuse, change nothing.
    let out = run(suma(&[
        "lock",
        "release",
        "--force",
        "--reason",
        "runner died",
        "--env",
        environment,
    ]));
    assert_eq!(out.code, 2, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("refusing to force-release the lock of `staging` without confirmation"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(locks.status(environment).await.unwrap().is_some(), "still locked");

    // --dry-run prints the plan and changes nothing.
    let out = run(suma(&[
        "lock",
        "release",
        "--force",
        "--reason",
        "runner died",
        "--env",
        environment,
        "--dry-run",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("dry run") && out.stdout.contains(&held.id),
        "{}",
        out.stdout
    );
    assert!(locks.status(environment).await.unwrap().is_some(), "still locked");

    let state = tempfile::tempdir().unwrap();
    let out = run(suma(&[
        "lock",
        "release",
        "--force",
        "--reason",
        "runner died",
        "--env",
        environment,
        "--yes",
        "--output",
        "json",
    ])
    .env("SUMA_STATE_DIR", state.path())
    .env("SUMA_ACTOR", "oncall@laptop"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let released = json(&out);
    assert_eq!(released["previous"]["operation_id"], held.id.as_str());
    assert_eq!(released["abandoned_operation"], held.id.as_str());
    assert!(locks.status(environment).await.unwrap().is_none(), "released");

    // The release is an operation in the journal, with who and why, in DynamoDB and in the local log.
    let record_id = released["record_id"].as_str().unwrap();
    let out = run(suma(&["ops", "show", record_id, "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = json(&out);
    assert_eq!(record["kind"], "lock-force-release");
    assert_eq!(record["actor"], "oncall@laptop");
    assert_eq!(record["parameters"]["reason"], "runner died");
    assert_eq!(record["steps"][0]["facts"]["previous_holder"], "crashed-runner@ci");
    let local = std::fs::read_to_string(state.path().join("operations.jsonl")).unwrap();
    assert!(local.contains(record_id));

    let out = run(suma(&["ops", "show", &held.id, "--output", "json"]));
    let abandoned = json(&out);
    assert_eq!(abandoned["status"], "abandoned");
    assert!(abandoned["events"][0]["message"]
        .as_str()
        .unwrap()
        .contains("runner died"));

    let out = run(suma(&["ops", "list", "--env", environment, "--output", "json"]));
    let listed = json(&out);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&record_id) && ids.contains(&held.id.as_str()), "{ids:?}");

    // Releasing a free lock is not an error and changes nothing.
    let out = run(suma(&[
        "lock",
        "release",
        "--force",
        "--reason",
        "again",
        "--env",
        environment,
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("not locked"));
}

#[test]
fn lock_status_through_the_cli() {
    crate::require_sandbox!();
    let out = run(suma(&["lock", "status", "--env", "production", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = json(&out);
    assert_eq!(status["environment"], "production");
    assert_eq!(status["locked"], false);
}
