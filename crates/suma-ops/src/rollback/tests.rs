//! The rollback's steps against the in-memory account the engine tests share: a rollback while 10% of
//! traffic sits on a canary, with the weight change throttled, stops resumable with the lock kept (the
//! canary's traffic is never left with no operation owning it), and `resume` finishes it; a failure after
//! the traffic is back ends it `failed`.

use std::sync::Arc;

use super::*;
use crate::journal::lock::Locks;
use crate::journal::LocalLog;
use crate::report::SilentReporter;
use suma_testkit::aws_world::AwsWorld;
use suma_testkit::MemoryLockTable;

use suma_testkit::environment::{CANARY_TG, REGION, RULE, STABLE_TG};

fn environment() -> Environment {
    suma_testkit::environment("")
}

/// Staging with a canary nobody runs any more: stable on `td:2` (4 tasks), the canary service at 1 and
/// 10% of the traffic on it; `td:1` is the revision to roll back to.
struct Staging {
    world: Arc<AwsWorld>,
    journal: Journal,
    locks: Locks,
    _dir: tempfile::TempDir,
}

impl Staging {
    fn new() -> Self {
        let world = AwsWorld::new();
        world.register("td:1", "repo/auth-service:1.4.2");
        world.register("td:2", "repo/auth-service:1.5.0");
        world.run_service(REGION, "auth-service", "td:2", 4);
        world.run_service(REGION, "auth-service-canary", "td:2", 1);
        world.with(|s| {
            s.rules.insert(
                RULE.into(),
                vec![
                    WeightedTarget {
                        target_group_arn: STABLE_TG.into(),
                        weight: 90,
                    },
                    WeightedTarget {
                        target_group_arn: CANARY_TG.into(),
                        weight: 10,
                    },
                ],
            );
        });
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(MemoryLockTable::default());
        Self {
            world,
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            locks: Locks::new(table, Duration::from_secs(60)),
            _dir: dir,
        }
    }

    /// (stable, canary) weights.
    fn weights(&self) -> (i32, i32) {
        let w = self.world.weights(RULE);
        (w[0], w[1])
    }

    /// Runs (or resumes) `op` under a lock taken for it; the lock is kept if the rollback stopped.
    async fn execute(&self, op: &mut Operation, takeover: bool) -> Result<(), RollbackError> {
        let guard = self.locks.acquire(op, takeover).await.unwrap();
        let guard = if takeover {
            guard
        } else {
            guard.begin(&self.journal, op).await.unwrap()
        };
        let aws = self.world.apis();
        let env = environment();
        let cancel = CancellationToken::new();
        let result = execute(
            &env,
            aws.as_ref(),
            &self.journal,
            &SilentReporter,
            &cancel,
            op,
            &guard,
            Duration::from_secs(60),
        )
        .await;
        guard.settle(op).await.unwrap();
        result
    }

    /// Whether an unfinished operation holds staging's lock.
    async fn locked(&self) -> bool {
        self.locks
            .status("staging")
            .await
            .unwrap()
            .is_some_and(|l| !crate::journal::FINISHED_STATUSES.contains(&l.operation_status.as_str()))
    }
}

async fn new_rollback(staging: &Staging) -> Operation {
    let aws = staging.world.apis();
    let prepared = prepare("staging", &environment(), aws.as_ref(), &staging.journal, "td:1")
        .await
        .unwrap();
    prepared.operation("staging", "tester@host", "td:1", "test")
}

#[tokio::test(start_paused = true)]
async fn a_throttled_weight_change_stops_resumable_and_resume_puts_the_traffic_back() {
    let staging = Staging::new();
    staging
        .world
        .with(|s| s.faults.throttle_next = Some("weights 100/0".into()));
    let mut op = new_rollback(&staging).await;

    let stopped = staging.execute(&mut op, false).await.unwrap_err();
    assert!(
        matches!(&stopped, RollbackError::Stopped { at_step, .. } if at_step == "restore-weights"),
        "{stopped}"
    );
    assert!(
        stopped.to_string().contains("suma rollback resume --env staging"),
        "{stopped}"
    );
    assert_eq!(op.status, OperationStatus::Interrupted);
    assert_eq!(staging.weights(), (90, 10), "the throttled change did not happen");
    assert!(staging.locked().await, "the lock is kept for resume or abort");

    staging.execute(&mut op, true).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(staging.weights(), (100, 0));
    assert_eq!(staging.world.service(REGION, "auth-service-canary").desired, 0);
    assert_eq!(staging.world.service(REGION, "auth-service").task_definition, "td:1");
}

#[tokio::test(start_paused = true)]
async fn a_failed_update_of_stable_after_the_traffic_is_back_ends_failed_and_frees_the_lock() {
    let staging = Staging::new();
    staging
        .world
        .with(|s| s.faults.throttle_next = Some("update eu-west-1 auth-service td:1".into()));
    let mut op = new_rollback(&staging).await;

    let failed = staging.execute(&mut op, false).await.unwrap_err();
    assert!(
        matches!(&failed, RollbackError::Failed { at_step, .. } if at_step == "update-stable"),
        "{failed}"
    );
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(staging.weights(), (100, 0), "no traffic is left on the canary");
    assert_eq!(staging.world.service(REGION, "auth-service").task_definition, "td:2");
    assert!(!staging.locked().await);
}

#[tokio::test(start_paused = true)]
async fn after_taking_over_a_live_runner_the_weights_are_checked_again_once_it_has_surely_stopped() {
    let staging = Staging::new();
    let mut op = new_rollback(&staging).await;
    // Taken over from a runner still alive: it may act for up to one lease more.
    let until = chrono::Utc::now() + chrono::Duration::seconds(30);
    op.parameters
        .insert(crate::journal::lock::FENCED_RUNNER_UNTIL.to_owned(), json!(until));
    // Its last change, 5 s after the rollback put the traffic back: a 50/50 split.
    let stale = {
        let apis = staging.world.apis();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let split = [
                WeightedTarget {
                    target_group_arn: STABLE_TG.into(),
                    weight: 50,
                },
                WeightedTarget {
                    target_group_arn: CANARY_TG.into(),
                    weight: 50,
                },
            ];
            apis.elb(&environment().primary_region)
                .set_weights(RULE, &split)
                .await
                .unwrap();
        })
    };
    staging.execute(&mut op, false).await.unwrap();
    stale.await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(staging.weights(), (100, 0), "the late split was put back");
    let weights: Vec<String> = staging
        .world
        .mutations()
        .into_iter()
        .filter(|m| m.starts_with("weights"))
        .collect();
    assert_eq!(weights, ["weights 100/0", "weights 50/50", "weights 100/0"]);
}
