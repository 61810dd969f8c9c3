//! The per-environment lock: a DynamoDB item written with a conditional put, held under a lease that a
//! background task renews while the operation runs. Two operators or CI runners on different machines can
//! never run mutating operations on one environment at once; a crashed holder's lease expires, and its
//! unfinished operation must then be resumed or aborted (or the lock force-released, which is journaled).
//!
//! Fencing: every acquisition (a takeover by `resume` or `abort` included) mints a new [`Fence`], and every
//! renew, journal write and control read is conditional on it, so a stalled runner that wakes after its
//! successor took over is refused at its first write. It also stops itself: its lease is tracked on the
//! monotonic clock from the moment each renew was sent, and [`LockGuard::ensure_held`] refuses once less
//! than a safety margin is left, before the next AWS mutation, whether or not a renew has come back.
//!
//! Clock assumption: the lease expiry in the table is wall-clock time, and a successor may take over once
//! its own wall clock passes it. Our monotonic view starts when the renew is *sent*, so it never outlives
//! the table's; the margin (a quarter of the lease) covers the skew between machines' clocks, which must
//! stay below it (NTP keeps it to milliseconds; a lease is tens of seconds).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Journal, JournalError, Operation, OperationStatus};
use crate::aws::dynamodb::{LockItem, LockTable};
use crate::aws::{AwsError, AwsErrorKind};

/// Who holds a lock, as `suma lock status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockInfo {
    pub environment: String,
    pub holder: String,
    pub operation_id: String,
    pub operation_kind: String,
    pub operation_status: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// False when the lease ran out: the holder crashed or lost its connection.
    pub lease_active: bool,
}

impl LockInfo {
    pub fn from_item(item: &LockItem, now: DateTime<Utc>) -> Self {
        let at = |secs| Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
        Self {
            environment: item.environment.clone(),
            holder: item.holder.clone(),
            operation_id: item.operation_id.clone(),
            operation_kind: item.operation_kind.clone(),
            operation_status: item.operation_status.clone(),
            acquired_at: at(item.acquired_at),
            expires_at: at(item.expires_at),
            lease_active: item.expires_at >= now.timestamp(),
        }
    }
}

/// The fencing token of one acquisition of a lock. Journal writes under a lock carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence(String);

impl Fence {
    fn mint() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a held operation must stop before its next change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("the lock on `{environment}` was taken over or released; this runner stopped before changing anything else\nhint: `suma lock status --env {environment}` shows who holds it now")]
    TakenAway { environment: String },
    #[error("the lease on `{environment}` could not be renewed in time; this runner stopped before changing anything else\nhint: check the connection to DynamoDB, then resume the operation")]
    Expiring { environment: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("environment `{}` is locked by {} for operation `{}` ({}, {}), lease until {}\nhint: wait for it to finish, or see `suma ops show {}`", .0.environment, .0.holder, .0.operation_id, .0.operation_kind, .0.operation_status, .0.expires_at.format("%H:%M:%S UTC"), .0.operation_id)]
    Held(Box<LockInfo>),
    #[error("environment `{}` has an unfinished operation `{}` ({}, {}) whose holder {} stopped renewing its lease\nhint: resume or abort it, or after checking the environment by hand run `suma lock release --force --reason ... --env {}`", .0.environment, .0.operation_id, .0.operation_kind, .0.operation_status, .0.holder, .0.environment)]
    Unfinished(Box<LockInfo>),
    #[error("could not learn whether the lock of `{environment}` was taken for `{operation_id}`: {detail}\n{hint}")]
    Unknown {
        environment: String,
        operation_id: String,
        detail: String,
        /// What to do: nothing had started either way.
        hint: String,
    },
    #[error("the lock of `{environment}` changed while it was being taken over\nhint: `suma lock status --env {environment}` shows who holds it now; run the command again if it is still needed")]
    Changed { environment: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Why a supersede failed: the lock could not be taken, or the superseded record not written.
#[derive(Debug, thiserror::Error)]
pub enum SupersedeError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The parameter of an operation that superseded a live runner: until when (RFC 3339) that runner may
/// still make one last AWS change before it finds its lease gone.
pub const FENCED_RUNNER_UNTIL: &str = "fenced_runner_until";

/// Reads and changes locks.
#[derive(Clone)]
pub struct Locks {
    table: Arc<dyn LockTable>,
    lease: Duration,
}

impl Locks {
    pub fn new(table: Arc<dyn LockTable>, lease: Duration) -> Self {
        Self { table, lease }
    }

    pub async fn status(&self, environment: &str) -> Result<Option<LockInfo>, AwsError> {
        Ok(self
            .table
            .get_lock(environment)
            .await?
            .map(|item| LockInfo::from_item(&item, Utc::now())))
    }

    /// Takes the lock for `op`. `takeover` allows taking an expired lease held for this same operation
    /// (resume or abort after a crash).
    pub async fn acquire(&self, op: &Operation, takeover: bool) -> Result<LockGuard, LockError> {
        self.acquire_over(op, takeover.then_some(op.id.as_str())).await
    }

    /// Takes the expired lease of the unfinished operation `previous` for a new operation `op` that
    /// finishes its work (a rollback taking over a dead canary, an apply planning again after a dead one),
    /// and journals `previous` as aborted, superseded by `op` because `why`. `op` records what it
    /// superseded in its parameters.
    pub async fn supersede(
        &self,
        journal: &Journal,
        op: &mut Operation,
        previous: Operation,
        why: &str,
    ) -> Result<LockGuard, SupersedeError> {
        let guard = self.acquire_over(op, Some(previous.id.as_str())).await?;
        Self::record_superseded(journal, op, previous, why).await?;
        Ok(guard)
    }

    /// As [`Locks::supersede`], but over a runner that is still alive: its lock `held` is seized under a
    /// new fence, so the runner is refused at its next renew or journal write and stops before its next
    /// AWS change, at the latest when its own view of the lease ends. `op` records that moment
    /// (`fenced_runner_until`, now plus one lease: a renew the runner got in before the seize cannot
    /// reach further), so its steps can check the world again once nothing else can change it.
    pub async fn supersede_live(
        &self,
        journal: &Journal,
        op: &mut Operation,
        previous: Operation,
        held: &LockItem,
        why: &str,
    ) -> Result<LockGuard, SupersedeError> {
        if held.operation_id != previous.id {
            return Err(LockError::Changed {
                environment: op.environment.clone(),
            }
            .into());
        }
        let guard = self.seize(op, held).await?;
        let until = Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or_default();
        op.parameters
            .insert(FENCED_RUNNER_UNTIL.to_owned(), serde_json::json!(until));
        Self::record_superseded(journal, op, previous, why).await?;
        Ok(guard)
    }

    /// Journals `previous` as aborted, superseded by `op` because `why`; `op` names what it superseded.
    async fn record_superseded(
        journal: &Journal,
        op: &mut Operation,
        mut previous: Operation,
        why: &str,
    ) -> Result<(), JournalError> {
        op.parameters
            .insert("superseded".to_owned(), serde_json::json!(previous.id));
        previous.note(&op.actor, format!("superseded by `{}` ({}): {why}", op.id, op.kind));
        previous.set_status(OperationStatus::Aborted);
        journal.save(&previous, None).await
    }

    /// The lock item `op` writes under a new fence, acquired now.
    fn item(&self, op: &Operation, fence: &Fence, now: DateTime<Utc>) -> LockItem {
        LockItem {
            environment: op.environment.clone(),
            holder: op.actor.clone(),
            fence: fence.as_str().to_owned(),
            operation_id: op.id.clone(),
            operation_kind: op.kind.clone(),
            operation_status: op.status.as_str().to_owned(),
            acquired_at: now.timestamp(),
            expires_at: now.timestamp() + self.lease.as_secs() as i64,
            operation: serde_json::to_string(op).expect("operations always serialize"),
        }
    }

    /// The lock of `environment` as stored, fencing token included (for a forced release).
    pub async fn held(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        self.table.get_lock(environment).await
    }

    /// Takes the lock `held` for `op` whether or not its lease is live: a new fence replaces the holder's,
    /// so a holder that is still running is refused at its next renew or journal write and stops before
    /// its next AWS change. `LockError::Changed` when the lock moved on since `held` was read.
    pub async fn seize(&self, op: &Operation, held: &LockItem) -> Result<LockGuard, LockError> {
        self.take(
            op,
            Take::Seize {
                held_fence: &held.fence,
            },
        )
        .await
    }

    async fn acquire_over(&self, op: &Operation, takeover_of: Option<&str>) -> Result<LockGuard, LockError> {
        self.take(op, Take::Acquire { takeover_of }).await
    }

    /// Writes `op`'s lock item under a new fence, as `how` says, and starts its guard.
    async fn take(&self, op: &Operation, how: Take<'_>) -> Result<LockGuard, LockError> {
        let now = Utc::now();
        let fence = Fence::mint();
        // The lease counts from before the write is sent, so our view of it never outlives the table's.
        let sent = tokio::time::Instant::now();
        let item = self.item(op, &fence, now);
        let written = match how {
            Take::Acquire { takeover_of } => self.table.acquire(&item, now.timestamp(), takeover_of).await,
            Take::Seize { held_fence } => self.table.seize(&item, held_fence).await,
        };
        if let Err(e) = written {
            // The write may have landed and only its answer been lost (a timeout, a reset, or the SDK's
            // retry of a write that had succeeded, refused by our own lock). The fence is ours alone, so
            // finding it on the lock means we hold it.
            let current = match self.read_after_write(&op.environment).await {
                Ok(current) => current,
                Err(unknown) => {
                    // Whether the lock is ours cannot be learned: take back what may have landed (only
                    // under our fence), so no lock is left that no journal knows of.
                    let hint = match release_retrying(self.table.as_ref(), &op.environment, fence.as_str()).await {
                        Ok(()) => "nothing had started, and the lock is free again: run the command again".to_owned(),
                        Err(_) => format!(
                            "nothing had started; if `suma lock status --env {}` shows `{}` holding the lock, `suma lock release --force --reason ...` frees it",
                            op.environment, op.id
                        ),
                    };
                    return Err(LockError::Unknown {
                        environment: op.environment.clone(),
                        operation_id: op.id.clone(),
                        detail: unknown.to_string(),
                        hint,
                    });
                }
            };
            if current.as_ref().is_some_and(|held| held.fence == item.fence) {
                tracing::info!(environment = %op.environment, error = %e, "the lock write landed though its answer was lost");
            } else if e.kind != AwsErrorKind::ConditionFailed {
                return Err(e.into());
            } else {
                return Err(match (how, current) {
                    (Take::Seize { .. }, _) => LockError::Changed {
                        environment: op.environment.clone(),
                    },
                    (Take::Acquire { .. }, Some(held)) => {
                        let info = Box::new(LockInfo::from_item(&held, now));
                        if info.lease_active {
                            LockError::Held(info)
                        } else {
                            LockError::Unfinished(info)
                        }
                    }
                    // Released between our put and our read: report it as held; a retry will succeed.
                    (Take::Acquire { .. }, None) => LockError::Aws(e),
                });
            }
        }
        Ok(LockGuard::start(self.table.clone(), op, fence, sent, self.lease))
    }
}

/// Reads of the lock that may follow a write whose answer was lost; the first that answers counts.
const READS_AFTER_WRITE: u32 = 4;

/// Attempts at deleting a lock under its fence when the table does not answer.
const RELEASE_ATTEMPTS: u32 = 3;

/// Deletes the lock of `environment` held under `fence`, trying again while the table does not answer.
/// A lock already gone or taken over (the condition fails) has nothing of ours left to delete.
async fn release_retrying(table: &dyn LockTable, environment: &str, fence: &str) -> Result<(), AwsError> {
    let mut attempt = 0;
    loop {
        match table.release(environment, fence).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == AwsErrorKind::ConditionFailed => return Ok(()),
            Err(e) if attempt + 1 >= RELEASE_ATTEMPTS => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
        }
    }
}

impl Locks {
    /// The lock of `environment`, read again (with a growing pause) while reads fail: after a write
    /// whose answer was lost, only this read tells whether the write landed.
    async fn read_after_write(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        let mut attempt = 0;
        loop {
            match self.table.get_lock(environment).await {
                Ok(current) => return Ok(current),
                Err(e) if attempt + 1 >= READS_AFTER_WRITE => return Err(e),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
            }
        }
    }
}

/// How a lock is taken.
#[derive(Clone, Copy)]
enum Take<'a> {
    /// When free, or expired and finished or `takeover_of` (a resume or abort of that operation).
    Acquire { takeover_of: Option<&'a str> },
    /// In place of the lock held under `held_fence`, live or not (a forced release).
    Seize { held_fence: &'a str },
}

/// A held lock. Its lease is renewed in the background until [`LockGuard::release`]; if renewal finds the
/// lock taken away, or cannot renew before the safety margin, [`LockGuard::lost`] is cancelled and
/// [`LockGuard::ensure_held`] fails, so the operation stops before its next change.
pub struct LockGuard {
    table: Arc<dyn LockTable>,
    environment: String,
    operation_id: String,
    holder: String,
    fence: Fence,
    lease: Arc<LeaseClock>,
    lost: CancellationToken,
    renewal: JoinHandle<()>,
}

/// The lease as this runner knows it, on the monotonic clock.
struct LeaseClock {
    valid_until: std::sync::Mutex<tokio::time::Instant>,
    margin: Duration,
}

impl LeaseClock {
    fn safe_until(&self) -> tokio::time::Instant {
        *self.valid_until.lock().expect("lease clock") - self.margin
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("environment", &self.environment)
            .field("operation_id", &self.operation_id)
            .field("holder", &self.holder)
            .finish()
    }
}

impl LockGuard {
    fn start(
        table: Arc<dyn LockTable>,
        op: &Operation,
        fence: Fence,
        sent: tokio::time::Instant,
        lease: Duration,
    ) -> Self {
        let lost = CancellationToken::new();
        let clock = Arc::new(LeaseClock {
            valid_until: std::sync::Mutex::new(sent + lease),
            margin: lease / 4,
        });
        let renewal = tokio::spawn(renew_until_lost(
            table.clone(),
            op.environment.clone(),
            fence.clone(),
            lease,
            clock.clone(),
            lost.clone(),
        ));
        Self {
            table,
            environment: op.environment.clone(),
            operation_id: op.id.clone(),
            holder: op.actor.clone(),
            fence,
            lease: clock,
            lost,
            renewal,
        }
    }

    /// Who holds it (the operation's actor), for messages and notes.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token that journal writes and control reads under this lock carry.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Cancelled when the lease could not be kept.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether this runner may still change anything: the lock was not taken away and more than the
    /// safety margin of the lease is left on the monotonic clock. Checked before every AWS mutation.
    pub fn ensure_held(&self) -> Result<(), LeaseLost> {
        if self.lost.is_cancelled() {
            return Err(LeaseLost::TakenAway {
                environment: self.environment.clone(),
            });
        }
        if tokio::time::Instant::now() >= self.lease.safe_until() {
            self.lost.cancel();
            return Err(LeaseLost::Expiring {
                environment: self.environment.clone(),
            });
        }
        Ok(())
    }

    /// Reads and consumes the control command left for this operation, if any.
    pub async fn take_control(&self) -> Result<Option<(String, String)>, AwsError> {
        let taken = self.table.take_control(&self.environment, self.fence.as_str()).await;
        if matches!(&taken, Err(e) if e.kind == AwsErrorKind::ConditionFailed) {
            self.lost.cancel();
        }
        taken
    }

    pub async fn release(self) -> Result<(), AwsError> {
        self.renewal.abort();
        release_retrying(self.table.as_ref(), &self.environment, self.fence.as_str()).await
    }

    /// Journals `op`'s first record under this lock, and hands the guard back. When that write fails,
    /// nothing has started, so the lock is released rather than left naming an operation no journal
    /// holds (which `resume` could not find), and the error says whether it was. A write that failed for
    /// the client may still have landed (an answer lost after the table applied it), which would leave a
    /// `running` record of an operation nothing runs: the record is then written once more as failed
    /// before it started, best effort.
    pub async fn begin(self, journal: &Journal, op: &Operation) -> Result<LockGuard, JournalError> {
        match journal.save(op, Some(&self.fence)).await {
            Ok(()) => Ok(self),
            Err(e) => {
                let environment = self.environment.clone();
                let released = self.release().await;
                let mut never_started = op.clone();
                never_started.note(
                    &op.actor,
                    format!("never started: its first journal write failed ({e}); nothing was changed"),
                );
                never_started.set_status(OperationStatus::Failed);
                if let Err(again) = journal.save(&never_started, None).await {
                    tracing::warn!(error = %again, operation = %op.id, "could not record that the operation never started");
                }
                let hint = match released {
                    Ok(()) => "nothing had started, and the lock is free again: run the command again".to_owned(),
                    Err(_) => format!(
                        "nothing had started; if `suma lock status --env {environment}` shows `{}` holding the lock, `suma lock release --force --reason ...` frees it",
                        op.id
                    ),
                };
                Err(JournalError::NotStarted {
                    id: op.id.clone(),
                    source: Box::new(e),
                    hint,
                })
            }
        }
    }

    /// Ends this runner's hold on the lock as `op`'s state requires: a finished operation releases it; an
    /// unfinished one (stopped, interrupted, or its undo failed) keeps the lock item with the lease ended
    /// at once, so `resume` or `abort` can take over right away from any machine while every other
    /// operation stays locked out. Errors are the release's; a failed hand-back only delays a takeover
    /// until the lease runs out, so it is logged.
    pub async fn settle(self, op: &Operation) -> Result<(), AwsError> {
        if op.status.is_finished() {
            return self.release().await;
        }
        if let Err(e) = self.hand_back().await {
            tracing::warn!(error = %e, "the lease could not be ended early; a takeover waits until it runs out");
        }
        Ok(())
    }

    /// Keeps the lock item but ends the lease at once: the unfinished operation can be resumed or aborted
    /// right away, from any machine, while every other operation stays locked out. Used when an operation
    /// stopped on a failed step and its process is about to exit.
    pub async fn hand_back(self) -> Result<(), AwsError> {
        self.renewal.abort();
        let expired = Utc::now().timestamp() - 1;
        self.table.renew(&self.environment, self.fence.as_str(), expired).await
    }

    /// Stops renewing but keeps the lock item, so the lease runs out and the unfinished operation can be
    /// resumed or aborted from any machine. Used when an operation is interrupted.
    pub fn abandon(self) {
        self.renewal.abort();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

async fn renew_until_lost(
    table: Arc<dyn LockTable>,
    environment: String,
    fence: Fence,
    lease: Duration,
    clock: Arc<LeaseClock>,
    lost: CancellationToken,
) {
    // Renewing every quarter of the lease leaves half of it (between a renew's send and the safety
    // margin) for a slow answer or a retry before the runner must stop.
    let period = (lease / 4).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(period).await;
        match renew_before_margin(table.as_ref(), &environment, &fence, lease, &clock, period / 2).await {
            Renewal::Renewed => {}
            Renewal::TakenAway => {
                tracing::error!(environment = %environment, "lock was taken away");
                lost.cancel();
                return;
            }
            Renewal::OutOfTime => {
                tracing::error!(environment = %environment, "lock renewal did not succeed before the lease's safety margin");
                lost.cancel();
                return;
            }
        }
    }
}

enum Renewal {
    Renewed,
    TakenAway,
    OutOfTime,
}

/// One renewal, hedged until the lease's safety margin: when an attempt has not answered after `hedge`,
/// another is sent beside it, and the first to succeed counts. A request stuck on a dead connection or a
/// stalled endpoint would otherwise hold the SDK's own attempt timeout (up to 20 s) and spend the whole
/// window, where a second request on a fresh connection answers at once; and a server that is merely
/// slow still answers the first, which is never cut off early. Every attempt may land; that only extends
/// the lease on the table, while this runner's clock counts from the send of the attempt that answered.
async fn renew_before_margin(
    table: &dyn LockTable,
    environment: &str,
    fence: &Fence,
    lease: Duration,
    clock: &LeaseClock,
    hedge: Duration,
) -> Renewal {
    use futures::stream::{FuturesUnordered, StreamExt};

    let deadline = clock.safe_until();
    let attempt = || {
        let sent = tokio::time::Instant::now();
        let expires = Utc::now().timestamp() + lease.as_secs() as i64;
        async move { (sent, table.renew(environment, fence.as_str(), expires).await) }
    };
    let mut in_flight = FuturesUnordered::new();
    in_flight.push(attempt());
    let mut next_send = tokio::time::Instant::now() + hedge;
    loop {
        tokio::select! {
            Some((sent, answer)) = in_flight.next() => match answer {
                Ok(()) => {
                    *clock.valid_until.lock().expect("lease clock") = sent + lease;
                    return Renewal::Renewed;
                }
                Err(e) if e.kind == AwsErrorKind::ConditionFailed => return Renewal::TakenAway,
                Err(e) => {
                    tracing::warn!(environment = %environment, error = %e, "lock renewal failed; retrying");
                    // A refused connection answers at once: the next attempt waits a moment rather
                    // than spin, unless another is already on its way.
                    if in_flight.is_empty() {
                        next_send = next_send.min(tokio::time::Instant::now() + Duration::from_millis(200));
                    }
                }
            },
            () = tokio::time::sleep_until(next_send), if next_send < deadline => {
                tracing::warn!(environment = %environment, "lock renewal has not answered; sending another beside it");
                in_flight.push(attempt());
                next_send = tokio::time::Instant::now() + hedge;
            }
            () = tokio::time::sleep_until(deadline) => return Renewal::OutOfTime,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use suma_aws::dynamodb::{ApprovalItem, LockItem, LockTable, OperationItem};
    use suma_aws::{AwsError, AwsErrorKind};
    use suma_testkit::MemoryLockTable;

    use super::*;

    /// The memory table behind a network that loses the answer of every lock write (the write lands) and
    /// fails the first `failing_reads` reads of the lock.
    struct LostAnswers {
        table: MemoryLockTable,
        failing_reads: AtomicU32,
        release_fails: bool,
        saves_fail: bool,
        /// Fenced saves are applied, but their answer is lost (the client sees an error).
        fenced_saves_land: bool,
        /// Renews that never answer, before the table answers again.
        hanging_renews: AtomicU32,
    }

    fn unreachable(operation: &'static str) -> AwsError {
        AwsError::new(
            "DynamoDB",
            operation,
            "lock",
            AwsErrorKind::Unreachable,
            "connection reset",
        )
    }

    impl LostAnswers {
        /// A table that answers everything.
        fn answering() -> Self {
            Self {
                table: MemoryLockTable::default(),
                failing_reads: AtomicU32::new(0),
                release_fails: false,
                saves_fail: false,
                fenced_saves_land: false,
                hanging_renews: AtomicU32::new(0),
            }
        }
    }

    #[async_trait]
    impl LockTable for LostAnswers {
        async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError> {
            self.table.acquire(item, now, takeover_of).await?;
            Err(unreachable("PutItem"))
        }
        async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
            let left = self.failing_reads.load(Ordering::SeqCst);
            if left > 0 {
                self.failing_reads.store(left - 1, Ordering::SeqCst);
                return Err(unreachable("GetItem"));
            }
            self.table.get_lock(environment).await
        }
        async fn renew(&self, environment: &str, fence: &str, expires_at: i64) -> Result<(), AwsError> {
            let left = self.hanging_renews.load(Ordering::SeqCst);
            if left > 0 {
                self.hanging_renews.store(left - 1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            self.table.renew(environment, fence, expires_at).await
        }
        async fn release(&self, environment: &str, fence: &str) -> Result<(), AwsError> {
            if self.release_fails {
                return Err(unreachable("DeleteItem"));
            }
            self.table.release(environment, fence).await
        }
        async fn seize(&self, item: &LockItem, held_fence: &str) -> Result<(), AwsError> {
            self.table.seize(item, held_fence).await
        }
        async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError> {
            if self.fenced_saves_land && fence.is_some() {
                self.table.save_operation(op, fence).await?;
                return Err(unreachable("TransactWriteItems"));
            }
            if self.saves_fail {
                return Err(unreachable("TransactWriteItems"));
            }
            self.table.save_operation(op, fence).await
        }
        async fn save_sub_operation(&self, op: &OperationItem, parent: &str, fence: &str) -> Result<(), AwsError> {
            self.table.save_sub_operation(op, parent, fence).await
        }
        async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError> {
            self.table.get_operation(id).await
        }
        async fn list_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError> {
            self.table.list_operations(environment, limit).await
        }
        async fn put_control(
            &self,
            environment: &str,
            operation_id: &str,
            command: &str,
            actor: &str,
        ) -> Result<(), AwsError> {
            self.table.put_control(environment, operation_id, command, actor).await
        }
        async fn take_control(&self, environment: &str, fence: &str) -> Result<Option<(String, String)>, AwsError> {
            self.table.take_control(environment, fence).await
        }
        async fn add_approval(&self, operation_id: &str, step: &str, approval: &ApprovalItem) -> Result<(), AwsError> {
            self.table.add_approval(operation_id, step, approval).await
        }
        async fn list_approvals(&self, operation_id: &str, step: &str) -> Result<Vec<ApprovalItem>, AwsError> {
            self.table.list_approvals(operation_id, step).await
        }
    }

    fn lossy_locks(failing_reads: u32, release_fails: bool) -> (Locks, Arc<LostAnswers>) {
        let table = Arc::new(LostAnswers {
            failing_reads: AtomicU32::new(failing_reads),
            release_fails,
            ..LostAnswers::answering()
        });
        (Locks::new(table.clone(), Duration::from_secs(30)), table)
    }

    fn operation() -> Operation {
        Operation::new("secret-rotation", "staging", "ci@runner", Vec::new())
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_write_whose_answer_was_lost_is_found_by_reading_again() {
        let (locks, table) = lossy_locks(READS_AFTER_WRITE - 1, false);
        let op = operation();
        let guard = locks
            .acquire(&op, false)
            .await
            .expect("the write landed: the lock is ours");
        let held = table.table.get_lock("staging").await.unwrap().unwrap();
        assert_eq!(held.operation_id, op.id);
        guard.release().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_nobody_can_confirm_is_taken_back_so_no_journal_less_lock_remains() {
        let (locks, table) = lossy_locks(READS_AFTER_WRITE, false);
        let op = operation();
        let Err(err) = locks.acquire(&op, false).await else {
            panic!("the outcome is unknown, yet the lock was reported taken");
        };
        assert!(matches!(err, LockError::Unknown { .. }), "{err}");
        assert!(err.to_string().contains("the lock is free again"), "{err}");
        assert_eq!(table.table.get_lock("staging").await.unwrap(), None);

        // When even the release fails, the message says how to free it by hand.
        let (locks, table) = lossy_locks(READS_AFTER_WRITE, true);
        let Err(err) = locks.acquire(&op, false).await else {
            panic!("the outcome is unknown, yet the lock was reported taken");
        };
        assert!(err.to_string().contains("suma lock release --force"), "{err}");
        assert!(table.table.get_lock("staging").await.unwrap().is_some());
    }

    /// A table whose fenced saves fail for the client (applied nonetheless when `they_land`), with a
    /// journal on it and the journal's local state directory.
    fn failing_first_record(they_land: bool) -> (Arc<LostAnswers>, Journal, tempfile::TempDir) {
        let table = Arc::new(LostAnswers {
            saves_fail: !they_land,
            fenced_saves_land: they_land,
            ..LostAnswers::answering()
        });
        let state = tempfile::tempdir().unwrap();
        let journal = Journal::new(table.clone(), super::super::LocalLog::new(state.path()));
        (table, journal, state)
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_whose_first_record_cannot_be_written_gives_the_lock_back() {
        let (table, journal, _state) = failing_first_record(false);
        let op = operation();
        let locks = Locks::new(table.clone(), Duration::from_secs(30));
        let guard = locks.acquire(&op, false).await.expect("the lock is taken");
        let Err(err) = guard.begin(&journal, &op).await else {
            panic!("the first record could not be written, yet the operation began");
        };
        assert!(matches!(err, JournalError::NotStarted { .. }), "{err}");
        assert!(err.to_string().contains("did not start"), "{err}");
        assert!(err.to_string().contains("the lock is free again"), "{err}");
        assert_eq!(table.table.get_lock("staging").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_record_that_landed_though_its_answer_was_lost_is_recorded_as_never_started() {
        let (table, journal, _state) = failing_first_record(true);
        let op = operation();
        let locks = Locks::new(table.clone(), Duration::from_secs(30));
        let guard = locks.acquire(&op, false).await.expect("the lock is taken");
        assert!(guard.begin(&journal, &op).await.is_err());
        assert_eq!(table.table.get_lock("staging").await.unwrap(), None, "the lock is free");
        // No `running` record of an operation nothing runs.
        let recorded = journal.load(&op.id).await.unwrap().expect("the landed record");
        assert_eq!(recorded.status, OperationStatus::Failed);
        assert!(
            recorded.events.iter().any(|e| e.message.starts_with("never started")),
            "{:?}",
            recorded.events
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_renew_stuck_on_a_dead_connection_is_tried_again_and_the_lease_kept() {
        let table = Arc::new(LostAnswers {
            hanging_renews: AtomicU32::new(3),
            ..LostAnswers::answering()
        });
        let locks = Locks::new(table.clone(), Duration::from_secs(20));
        let guard = locks.acquire(&operation(), false).await.expect("the lock is taken");
        // Three renews hang, each sent beside the one before after an eighth of the lease: the fourth,
        // 7.5 s after the first, still answers before the margin (10 s after it).
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            !guard.lost().is_cancelled(),
            "the lease was given up over stuck requests"
        );
        guard.ensure_held().expect("still held");
        assert_eq!(
            table.hanging_renews.load(Ordering::SeqCst),
            0,
            "every hanging renew was sent"
        );
        guard.release().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_renew_that_never_answers_gives_the_lease_up_at_the_margin() {
        let table = Arc::new(LostAnswers {
            hanging_renews: AtomicU32::new(u32::MAX),
            ..LostAnswers::answering()
        });
        let locks = Locks::new(table.clone(), Duration::from_secs(20));
        let started = tokio::time::Instant::now();
        let guard = locks.acquire(&operation(), false).await.expect("the lock is taken");
        guard.lost().cancelled().await;
        // Lease 20 s, margin 5 s: the runner stops at 15 s, never later.
        assert!(started.elapsed() <= Duration::from_secs(15), "{:?}", started.elapsed());
        assert!(guard.ensure_held().is_err());
    }
}
