//! The engine's guarantees on a toy operation against the in-memory lock table (DynamoDB's conditional
//! semantics): fencing after a takeover, stopping before a change once the lease cannot be kept, the
//! decision journaled before it is acted on, and facts and attempts kept when a step restarts. Time is
//! paused, so leases of tens of seconds take no wall time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use suma_testkit::MemoryLockTable;
use tokio::sync::Notify;

use super::*;
use crate::aws::dynamodb::{ApprovalItem, LockItem, LockTable, OperationItem};
use crate::journal::lock::Locks;
use crate::journal::{LocalLog, PlannedStep};
use crate::report::SilentReporter;

const ENV: &str = "staging";
const LEASE: Duration = Duration::from_secs(30);

/// Three steps that each make one change, logged; step 1 can be held until released, and step 0 can
/// decide to roll back or stop half-way on its first attempt.
#[derive(Default)]
struct Toy {
    changes: Mutex<Vec<String>>,
    hold_step_1: Option<Arc<Notify>>,
    decide_in_step_0: bool,
    cut_step_0_short_once: Mutex<bool>,
    undo_saw_decision_on_record: Mutex<Option<bool>>,
}

impl Toy {
    fn changes(&self) -> Vec<String> {
        self.changes.lock().unwrap().clone()
    }
}

#[async_trait]
impl Steps for Toy {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        if index == 0 {
            if op.fact("intent").is_none() {
                run.record(
                    op,
                    Facts::from([("intent".to_owned(), serde_json::json!("scale to 0"))]),
                )
                .await?;
            }
            if std::mem::take(&mut *self.cut_step_0_short_once.lock().unwrap()) {
                // Killed after journaling its intent, before its change.
                return Err(StepError::Interrupted);
            }
            if self.decide_in_step_0 {
                return Err(StepError::Decided(Decision::new(
                    DecisionKind::RollBack,
                    "the analysis failed",
                    "analysis",
                )));
            }
        }
        if index == 1 {
            if let Some(hold) = &self.hold_step_1 {
                hold.notified().await;
            }
        }
        run.mutating()?;
        self.changes.lock().unwrap().push(format!("change {index}"));
        Ok(StepEnd::Done(Facts::new()))
    }

    async fn undo(&self, run: &Run<'_>, op: &mut Operation, _: &Decision) -> Result<String, StepError> {
        let on_record = run
            .journal
            .load(&op.id)
            .await
            .unwrap()
            .and_then(|o| o.decision)
            .is_some();
        *self.undo_saw_decision_on_record.lock().unwrap() = Some(on_record);
        run.held()?;
        self.changes.lock().unwrap().push("undo".to_owned());
        Ok("put back".to_owned())
    }
}

/// The lock table with a partition between this runner and DynamoDB: renewals never answer.
struct Partitioned(Arc<MemoryLockTable>, Option<crate::aws::AwsErrorKind>);

#[async_trait]
impl LockTable for Partitioned {
    /// With `Some(kind)`, the write lands but its answer is lost: the caller sees `kind` (a timeout, or
    /// the SDK's retry refused by the lock it had just written).
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError> {
        self.0.acquire(item, now, takeover_of).await?;
        match self.1 {
            None => Ok(()),
            Some(kind) => Err(AwsError::new(
                "DynamoDB",
                "PutItem",
                "locks",
                kind,
                "the answer was lost",
            )),
        }
    }
    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        self.0.get_lock(environment).await
    }
    async fn renew(&self, _: &str, _: &str, _: i64) -> Result<(), AwsError> {
        std::future::pending().await
    }
    async fn release(&self, environment: &str, fence: &str) -> Result<(), AwsError> {
        self.0.release(environment, fence).await
    }
    async fn seize(&self, item: &LockItem, held_fence: &str) -> Result<(), AwsError> {
        self.0.seize(item, held_fence).await
    }
    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError> {
        self.0.save_operation(op, fence).await
    }
    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, fence: &str) -> Result<(), AwsError> {
        self.0.save_sub_operation(op, parent, fence).await
    }
    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError> {
        self.0.get_operation(id).await
    }
    async fn list_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError> {
        self.0.list_operations(environment, limit).await
    }
    async fn put_control(&self, environment: &str, id: &str, command: &str, actor: &str) -> Result<(), AwsError> {
        self.0.put_control(environment, id, command, actor).await
    }
    async fn take_control(&self, environment: &str, fence: &str) -> Result<Option<(String, String)>, AwsError> {
        self.0.take_control(environment, fence).await
    }
    async fn add_approval(&self, operation_id: &str, step: &str, approval: &ApprovalItem) -> Result<(), AwsError> {
        self.0.add_approval(operation_id, step, approval).await
    }
    async fn list_approvals(&self, operation_id: &str, step: &str) -> Result<Vec<ApprovalItem>, AwsError> {
        self.0.list_approvals(operation_id, step).await
    }
}

fn operation() -> Operation {
    let plan = (0..3)
        .map(|i| PlannedStep {
            name: format!("step-{i}"),
            detail: String::new(),
        })
        .collect();
    Operation::new("toy", ENV, "ci@runner", plan)
}

struct World {
    table: Arc<MemoryLockTable>,
    journal: Journal,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(MemoryLockTable::default());
        Self {
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            table,
            _dir: dir,
        }
    }

    fn locks(&self) -> Locks {
        Locks::new(self.table.clone(), LEASE)
    }

    /// Drives `op` to its end under a new lock (a takeover when `resume`).
    async fn drive(&self, steps: &dyn Steps, op: &mut Operation, resume: bool) -> Result<RunEnd, EngineError> {
        let guard = self.locks().acquire(op, resume).await.unwrap();
        let cancel = CancellationToken::new();
        let run = Run::new(&self.journal, &guard, &SilentReporter, &cancel);
        let end = drive(steps, &run, op).await;
        guard.abandon();
        end
    }
}

#[tokio::test(start_paused = true)]
async fn a_runner_that_cannot_renew_stops_before_its_next_change() {
    let world = World::new();
    let partitioned = Arc::new(Partitioned(world.table.clone(), None));
    let journal = Journal::new(partitioned.clone(), LocalLog::new(world._dir.path()));
    let hold = Arc::new(Notify::new());
    let toy = Arc::new(Toy {
        hold_step_1: Some(hold.clone()),
        ..Toy::default()
    });
    let mut op = operation();
    let guard = Locks::new(partitioned, LEASE).acquire(&op, false).await.unwrap();
    let runner = {
        let toy = toy.clone();
        tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let run = Run::new(&journal, &guard, &SilentReporter, &cancel);
            drive(toy.as_ref(), &run, &mut op).await
        })
    };
    // The renewals hang; three quarters of the lease later the runner knows it may lose the lock.
    tokio::time::sleep(LEASE * 3 / 4 + Duration::from_secs(1)).await;
    hold.notify_one();
    let end = runner.await.unwrap().unwrap();
    assert_eq!(
        end,
        RunEnd::Interrupted {
            at_step: "step-1".into()
        }
    );
    assert_eq!(toy.changes(), ["change 0"], "no change after the safety margin");
}

#[tokio::test(start_paused = true)]
async fn a_lock_whose_write_landed_but_whose_answer_was_lost_is_held() {
    use crate::aws::AwsErrorKind::{ConditionFailed, Unreachable};
    for lost in [ConditionFailed, Unreachable] {
        let world = World::new();
        let table = Arc::new(Partitioned(world.table.clone(), Some(lost)));
        let op = operation();
        let guard = Locks::new(table, LEASE)
            .acquire(&op, false)
            .await
            .unwrap_or_else(|e| panic!("{lost:?}: our own lock was refused: {e}"));
        let held = world.table.get_lock(ENV).await.unwrap().unwrap();
        assert_eq!(held.fence, guard.fence().as_str(), "{lost:?}");
        // Someone else's lock is still refused.
        let other = Operation::new("toy", ENV, "other@host", Vec::new());
        assert!(world.locks().acquire(&other, false).await.is_err());
        guard.release().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_takeover_the_stalled_runner_cannot_write_and_stops() {
    let world = World::new();
    let hold = Arc::new(Notify::new());
    let toy = Arc::new(Toy {
        hold_step_1: Some(hold.clone()),
        ..Toy::default()
    });
    let mut op = operation();
    let id = op.id.clone();
    let guard = world.locks().acquire(&op, false).await.unwrap();
    let stalled = {
        let toy = toy.clone();
        let journal = world.journal.clone();
        tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let run = Run::new(&journal, &guard, &SilentReporter, &cancel);
            let end = drive(toy.as_ref(), &run, &mut op).await;
            (end, guard.lost().is_cancelled())
        })
    };
    tokio::task::yield_now().await;
    // Its lease ran out on the table's clock (the runner's process was paused); `resume` takes over with
    // the same actor and operation id.
    world.table.expire(ENV, 0);
    let mut taken = world.journal.load(&id).await.unwrap().unwrap();
    let successor = world.locks().acquire(&taken, true).await.unwrap();
    taken.note("ci@runner", "taken over");
    world.journal.save(&taken, Some(successor.fence())).await.unwrap();

    hold.notify_one();
    let (end, lost) = stalled.await.unwrap();
    assert!(
        matches!(end, Err(EngineError::Journal(JournalError::Fenced { .. }))),
        "{end:?}"
    );
    assert!(lost, "a refused write marks the lease lost");
    assert_eq!(
        world.journal.load(&id).await.unwrap().unwrap(),
        taken,
        "the successor's record stands"
    );
    assert!(
        world.table.take_control(ENV, successor.fence().as_str()).await.is_ok(),
        "the successor still holds the lock"
    );
}

#[tokio::test(start_paused = true)]
async fn a_decision_is_on_record_before_it_is_acted_on() {
    let world = World::new();
    let toy = Toy {
        decide_in_step_0: true,
        ..Toy::default()
    };
    let mut op = operation();
    let end = world.drive(&toy, &mut op, false).await.unwrap();
    assert!(matches!(&end, RunEnd::Undone { decision, .. } if decision.kind == DecisionKind::RollBack));
    assert_eq!(*toy.undo_saw_decision_on_record.lock().unwrap(), Some(true));
    assert_eq!(toy.changes(), ["undo"]);
    let recorded = world.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(recorded.status, OperationStatus::Failed);
    assert_eq!(recorded.decision.unwrap().reason, "the analysis failed");

    // A resume of an operation that decided finishes the undo; it never runs a step again.
    let mut again = world.journal.load(&op.id).await.unwrap().unwrap();
    again.set_status(OperationStatus::Interrupted);
    world.table.expire(ENV, 0);
    let end = world.drive(&toy, &mut again, true).await.unwrap();
    assert!(matches!(end, RunEnd::Undone { .. }));
    assert_eq!(toy.changes(), ["undo", "undo"], "no step ran on resume");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_step_keeps_its_facts_and_shows_every_attempt() {
    let world = World::new();
    let toy = Toy {
        cut_step_0_short_once: Mutex::new(true),
        ..Toy::default()
    };
    let mut op = operation();
    let end = world.drive(&toy, &mut op, false).await.unwrap();
    assert_eq!(
        end,
        RunEnd::Interrupted {
            at_step: "step-0".into()
        }
    );
    let mut recorded = world.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(recorded.fact("intent"), Some(&serde_json::json!("scale to 0")));

    world.table.expire(ENV, 0);
    let end = world.drive(&toy, &mut recorded, true).await.unwrap();
    assert_eq!(end, RunEnd::Completed);
    let step = &recorded.steps[0];
    assert_eq!(
        step.facts.get("intent"),
        Some(&serde_json::json!("scale to 0")),
        "the intent journaled by the first attempt is kept"
    );
    assert_eq!(step.attempts.len(), 1);
    assert_eq!(
        step.attempts[0].status,
        StepStatus::Running,
        "the cut-off attempt is on the timeline"
    );
    assert_eq!(toy.changes(), ["change 0", "change 1", "change 2"]);
}

#[tokio::test(start_paused = true)]
async fn pause_at_a_step_boundary_holds_until_resume_and_abort_decides() {
    let world = World::new();
    let hold = Arc::new(Notify::new());
    let toy = Arc::new(Toy {
        hold_step_1: Some(hold.clone()),
        ..Toy::default()
    });
    let mut op = operation();
    let id = op.id.clone();
    let runner = {
        let toy = toy.clone();
        let locks = world.locks();
        let journal = world.journal.clone();
        tokio::spawn(async move {
            let guard = locks.acquire(&op, false).await.unwrap();
            let cancel = CancellationToken::new();
            let run = Run::new(&journal, &guard, &SilentReporter, &cancel);
            drive(toy.as_ref(), &run, &mut op).await
        })
    };
    tokio::task::yield_now().await;
    world.table.put_control(ENV, &id, "pause", "oncall").await.unwrap();
    hold.notify_one();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(toy.changes(), ["change 0", "change 1"], "paused before step 2");
    world.table.put_control(ENV, &id, "abort", "oncall").await.unwrap();
    let end = runner.await.unwrap().unwrap();
    assert!(
        matches!(&end, RunEnd::Undone { decision, .. } if decision.kind == DecisionKind::Abort && decision.by == "oncall"),
        "{end:?}"
    );
    assert_eq!(toy.changes(), ["change 0", "change 1", "undo"]);
}
