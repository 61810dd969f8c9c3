//! `suma lock release --force` on the operation engine. The release first takes the lock over under the
//! holder's fencing token, live lease or not ([`Locks::seize`]), so a holder that is still running is
//! refused at its next renew or journal write and stops before its next AWS change; that write also puts
//! this release's own operation in the lock item, so the intent is on record before anything else
//! happens. The engine then runs its steps (record what was taken over, mark the holder's operation
//! abandoned) and the lock is released. A release killed half-way holds the lock under its own lease;
//! the next `suma lock release --force` finishes that release instead of starting another, so the
//! original holder's operation is still marked.

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aws::dynamodb::LockItem;
use crate::engine::{self, EngineError, Facts, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::{LockError, LockInfo, Locks};
use crate::journal::{Decision, Journal, JournalError, Operation, OperationStatus, PlannedStep};
use crate::report::Reporter;

pub const KIND: &str = "lock-force-release";

/// What `suma lock release --force` did.
#[derive(Debug, Clone, Serialize)]
pub struct ForceRelease {
    /// The journal record of the release itself.
    pub record_id: String,
    /// The lock as it was before the release took it over.
    pub previous: Option<LockInfo>,
    /// The unfinished operation that held the lock, now `abandoned`.
    pub abandoned_operation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForceReleaseError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the lock of `{environment}` is held by force release `{id}`, whose record can be read neither from the journal nor from the lock\nhint: `suma lock status --env {environment}` shows the lock; delete its item by hand only after checking the environment")]
    Unrecorded { environment: String, id: String },
    #[error("force release `{id}` stopped at `{at_step}`: {reason}\nhint: it holds the lock of `{environment}`; run `suma lock release --force --env {environment}` again: that resumes this release and finishes it")]
    Stopped {
        id: String,
        environment: String,
        at_step: String,
        reason: String,
    },
}

/// The release's plan.
fn plan(environment: &str, held: &LockItem) -> Vec<PlannedStep> {
    vec![
        PlannedStep {
            name: "take-over".to_owned(),
            detail: format!(
                "take the lock of `{environment}` from {} ({} `{}`) under its fencing token",
                held.holder, held.operation_kind, held.operation_id
            ),
        },
        PlannedStep {
            name: "mark-abandoned".to_owned(),
            detail: format!("mark `{}` abandoned if unfinished, with the reason", held.operation_id),
        },
    ]
}

/// Force-releases the lock of `environment`; `None` when it is not locked.
pub async fn force_release(
    locks: &Locks,
    journal: &Journal,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
    environment: &str,
    actor: &str,
    reason: &str,
) -> Result<Option<ForceRelease>, ForceReleaseError> {
    let Some(held) = locks.held(environment).await.map_err(LockError::from)? else {
        return Ok(None);
    };
    let previous = LockInfo::from_item(&held, Utc::now());
    let (mut op, guard) = if held.operation_kind == KIND && !previous.lease_active {
        // A release killed half-way: finish it under a takeover of its own lease.
        // Killed between the seize and its first journal write, it is recorded only in the lock item.
        let recorded = match journal.load(&held.operation_id).await? {
            Some(op) => Some(op),
            None => serde_json::from_str::<Operation>(&held.operation).ok(),
        };
        let mut op = recorded.ok_or_else(|| ForceReleaseError::Unrecorded {
            environment: environment.to_owned(),
            id: held.operation_id.clone(),
        })?;
        op.note(actor, format!("resumed by {actor}: {reason}"));
        let guard = locks.acquire(&op, true).await?;
        (op, guard)
    } else {
        let mut op = Operation::new(KIND, environment, actor, plan(environment, &held));
        op.parameters.insert("reason".to_owned(), json!(reason));
        op.parameters.insert("previous_holder".to_owned(), json!(held.holder));
        op.parameters
            .insert("previous_operation".to_owned(), json!(held.operation_id));
        op.parameters
            .insert("previous_kind".to_owned(), json!(held.operation_kind));
        let guard = locks.seize(&op, &held).await?;
        engine::kill_point(|| "after the lock is taken over, before the release is journaled".to_owned());
        (op, guard)
    };
    op.set_status(OperationStatus::Running);
    journal.save(&op, Some(guard.fence())).await?;
    let run = Run::new(journal, &guard, reporter, cancel);
    let end = engine::drive(&ReleaseSteps { journal }, &run, &mut op).await;
    match end {
        Ok(RunEnd::Completed) => {
            guard.release().await.map_err(LockError::from)?;
            let abandoned = op.steps.get(1).and_then(|s| s.facts.get("abandoned"));
            Ok(Some(ForceRelease {
                record_id: op.id.clone(),
                previous: Some(previous),
                abandoned_operation: abandoned.and_then(|v| v.as_str()).map(str::to_owned),
            }))
        }
        Ok(other) => {
            guard.abandon();
            let (at_step, reason) = match other {
                RunEnd::Stopped { at_step, reason } | RunEnd::Failed { at_step, reason } => (at_step, reason),
                RunEnd::Interrupted { at_step } => (at_step, "interrupted".to_owned()),
                RunEnd::Undone { note, .. } => ("undo".to_owned(), note),
                RunEnd::Completed => unreachable!("matched above"),
            };
            Err(ForceReleaseError::Stopped {
                id: op.id,
                environment: environment.to_owned(),
                at_step,
                reason,
            })
        }
        Err(e) => {
            guard.abandon();
            Err(e.into())
        }
    }
}

struct ReleaseSteps<'a> {
    journal: &'a Journal,
}

fn parameter<'o>(op: &'o Operation, key: &str) -> &'o str {
    op.parameters.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

#[async_trait]
impl Steps for ReleaseSteps<'_> {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let previous = parameter(op, "previous_operation").to_owned();
        match index {
            // Done by the seize that started this run: the facts say what was taken over.
            0 => Ok(StepEnd::Done(Facts::from([
                ("previous_holder".to_owned(), json!(parameter(op, "previous_holder"))),
                ("previous_operation".to_owned(), json!(previous)),
            ]))),
            _ => {
                let Some(mut held) = self.journal.load(&previous).await? else {
                    return Ok(StepEnd::skipped(
                        format!("`{previous}` has no journal record"),
                        Facts::new(),
                    ));
                };
                if held.status.is_finished() && held.status != OperationStatus::Abandoned {
                    return Ok(StepEnd::skipped(
                        format!("`{previous}` had finished ({})", held.status.as_str()),
                        Facts::new(),
                    ));
                }
                // Idempotent: a resumed release finds the note and the status already there.
                if held.status != OperationStatus::Abandoned {
                    run.mutating()?;
                    held.note(
                        &op.actor,
                        format!(
                            "lock force-released by {} (operation {}): {}",
                            op.actor,
                            op.id,
                            parameter(op, "reason")
                        ),
                    );
                    held.set_status(OperationStatus::Abandoned);
                    // Unfenced: the lock is this release's now, and the held operation's runner is fenced out.
                    self.journal.save(&held, None).await?;
                }
                Ok(StepEnd::Done(Facts::from([("abandoned".to_owned(), json!(previous))])))
            }
        }
    }

    fn on_failure(&self, _: &Operation, _: usize) -> OnFailure {
        OnFailure::Stop
    }

    async fn undo(&self, _: &Run<'_>, _: &mut Operation, _: &Decision) -> Result<String, StepError> {
        Ok("nothing to put back: the holder stays fenced out and its operation keeps its status".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use suma_testkit::MemoryLockTable;

    use super::*;
    use crate::aws::dynamodb::LockTable as _;
    use crate::journal::LocalLog;
    use crate::report::SilentReporter;

    struct Harness {
        table: Arc<MemoryLockTable>,
        journal: Journal,
        locks: Locks,
        _dir: tempfile::TempDir,
    }

    fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(MemoryLockTable::default());
        Harness {
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            locks: Locks::new(table.clone(), Duration::from_secs(60)),
            table,
            _dir: dir,
        }
    }

    fn held_canary() -> Operation {
        let step = PlannedStep {
            name: "shift-10".to_owned(),
            detail: String::new(),
        };
        Operation::new("canary-deploy", "prod", "ci@runner-7", vec![step])
    }

    async fn release(h: &Harness, cancel: &CancellationToken) -> Result<Option<ForceRelease>, ForceReleaseError> {
        force_release(
            &h.locks,
            &h.journal,
            &SilentReporter,
            cancel,
            "prod",
            "oncall@laptop",
            "runner hung",
        )
        .await
    }

    #[tokio::test]
    async fn a_live_holder_is_fenced_out_and_its_operation_abandoned() {
        let h = harness();
        let mut held = held_canary();
        let guard = h.locks.acquire(&held, false).await.unwrap();
        h.journal.save(&held, Some(guard.fence())).await.unwrap();

        let released = release(&h, &CancellationToken::new())
            .await
            .unwrap()
            .expect("it was locked");
        assert_eq!(released.abandoned_operation.as_deref(), Some(held.id.as_str()));
        assert_eq!(released.previous.unwrap().holder, "ci@runner-7");
        assert!(h.table.get_lock("prod").await.unwrap().is_none(), "released");
        // The holder wakes up: its write is refused, and its record says abandoned.
        held.start_step(0);
        let refused = h.journal.save(&held, Some(guard.fence())).await;
        assert!(matches!(refused, Err(JournalError::Fenced { .. })), "{refused:?}");
        let recorded = h.journal.load(&held.id).await.unwrap().unwrap();
        assert_eq!(recorded.status, OperationStatus::Abandoned);
        assert!(recorded.events[0].message.contains("runner hung"));
        let record = h.journal.load(&released.record_id).await.unwrap().unwrap();
        assert_eq!(
            (record.kind.as_str(), record.status),
            (KIND, OperationStatus::Succeeded)
        );
        assert_eq!(record.steps[0].facts["previous_holder"], "ci@runner-7");
        guard.abandon();
        assert!(
            release(&h, &CancellationToken::new()).await.unwrap().is_none(),
            "nothing left to release"
        );
    }

    #[tokio::test]
    async fn a_release_stopped_after_the_takeover_is_finished_by_the_next_one() {
        let h = harness();
        let held = held_canary();
        let guard = h.locks.acquire(&held, false).await.unwrap();
        h.journal.save(&held, Some(guard.fence())).await.unwrap();
        guard.abandon();

        // Stopped right after the seize, before any step ran (a signal; a kill leaves the same state).
        let cancel = CancellationToken::new();
        cancel.cancel();
        let stopped = release(&h, &cancel).await.unwrap_err();
        assert!(
            stopped
                .to_string()
                .contains("run `suma lock release --force --env prod` again"),
            "{stopped}"
        );
        let lock = h.table.get_lock("prod").await.unwrap().unwrap();
        assert_eq!(lock.operation_kind, KIND, "the release holds the lock");
        assert_eq!(
            h.journal.load(&held.id).await.unwrap().unwrap().status,
            held.status,
            "not marked yet"
        );

        // Its lease runs out; the next release finishes it rather than abandoning it.
        h.table.expire("prod", 0);
        let released = release(&h, &CancellationToken::new()).await.unwrap().unwrap();
        assert_eq!(released.record_id, lock.operation_id, "the same release, finished");
        assert_eq!(released.abandoned_operation.as_deref(), Some(held.id.as_str()));
        assert_eq!(
            h.journal.load(&held.id).await.unwrap().unwrap().status,
            OperationStatus::Abandoned
        );
        assert!(h.table.get_lock("prod").await.unwrap().is_none());
    }
}
