//! DynamoDB: the table behind environment locks and the operation journal.
//!
//! Items, keyed by the string partition key `pk`:
//! - `lock#ENV`: holder, operation id/kind/status, the fencing token, lease expiry (epoch seconds), a copy
//!   of the operation document (so that any machine can show, resume or abort what the holder was doing),
//!   and at most one pending control command for that operation;
//! - `op#ID`: the operation document, kept after the operation ends, for `suma ops`, with its
//!   `environment` and `started_at`, the keys of the [`OPERATIONS_INDEX`] that lists an environment's
//!   operations newest first without reading anyone else's;
//! - `approval#ID#STEP`: the approvals of a runbook run's `approve` step, one per identity (the set of
//!   identities is the condition that refuses a second approval from the same one).
//!
//! Every acquisition, takeover included, mints a new fencing token. Every renew, journal write and control
//! read of a held operation is conditional on that token, so a runner that lost its lease (even one with
//! the same actor and operation id as its successor, which is what `resume` looks like) can never renew,
//! overwrite its successor's record or consume its commands.

use async_trait::async_trait;

use super::AwsError;

/// The lock of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockItem {
    pub environment: String,
    /// Who runs the operation (the actor), for people; the fence below is what writes are checked on.
    pub holder: String,
    /// The fencing token of this acquisition: unique per acquire or takeover.
    pub fence: String,
    pub operation_id: String,
    pub operation_kind: String,
    pub operation_status: String,
    pub acquired_at: i64,
    pub expires_at: i64,
    /// The operation document (JSON) as of its last save.
    pub operation: String,
}

/// The global secondary index of operation items: partition key `environment`, sort key `started_at`
/// (RFC 3339 with nanoseconds, so text order is time order). Listing an environment's newest operations
/// is a query of a few items instead of a scan of every environment's whole history.
pub const OPERATIONS_INDEX: &str = "environment-started_at";

/// `started_at` as the index sorts it: RFC 3339 in UTC with all nine fractional digits, so that text
/// order is time order.
pub fn started_at_key(started_at: chrono::DateTime<chrono::Utc>) -> String {
    started_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// An operation document with the attributes that list and filter it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationItem {
    pub id: String,
    pub environment: String,
    /// When the operation started, RFC 3339 with nanoseconds (`2026-12-06T15:07:22.123456789Z`): the
    /// sort key of [`OPERATIONS_INDEX`].
    pub started_at: String,
    pub status: String,
    pub document: String,
}

pub use suma_core::operation::FINISHED_STATUSES;

/// One person's approval of a step, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalItem {
    /// The authenticated AWS identity (STS caller ARN): what makes two approvals two people.
    pub identity: String,
    /// Who they said they are (`user@host`, `SUMA_ACTOR`), for people reading the record.
    pub actor: String,
    /// RFC 3339.
    pub at: String,
    pub reason: Option<String>,
}

impl ApprovalItem {
    /// An approval given now by `identity`, who says they are `actor`.
    pub fn now(identity: String, actor: &str, reason: Option<String>) -> Self {
        Self {
            identity,
            actor: actor.to_owned(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            reason,
        }
    }
}

#[async_trait]
pub trait LockTable: Send + Sync {
    /// Writes `item` as the lock when no lock exists, or when the existing lease has expired (`now`) and
    /// either its operation finished or it is `takeover_of` (a resume or abort of that operation).
    /// Fails with `ConditionFailed` otherwise.
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError>;
    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError>;
    /// Extends the lease; `ConditionFailed` means the lock is no longer held under `fence`.
    async fn renew(&self, environment: &str, fence: &str, expires_at: i64) -> Result<(), AwsError>;
    /// Deletes the lock if it is still held under `fence`.
    async fn release(&self, environment: &str, fence: &str) -> Result<(), AwsError>;
    /// Writes `item` as the lock in place of the one held under `held_fence`, whether or not its lease is
    /// live: a forced release fences the holder out (its next renew or write is refused). Fails with
    /// `ConditionFailed` when the lock changed meanwhile.
    async fn seize(&self, item: &LockItem, held_fence: &str) -> Result<(), AwsError>;
    /// Saves an operation; with `Some(fence)` also copies it into the lock item, in one transaction
    /// conditional on the lock still being held for this operation under `fence`.
    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError>;
    /// Saves an operation run inside another (a runbook step that drives a rotation or a failover): fenced
    /// like [`LockTable::save_operation`] by the lock being held for `parent` under `fence`, in one
    /// transaction, but the lock item keeps the parent's copy.
    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, fence: &str) -> Result<(), AwsError>;
    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError>;
    /// The environment's operations, newest first, at most `limit`: a query of [`OPERATIONS_INDEX`]
    /// (eventually consistent: an operation saved a moment ago may be missing), or a scan of the table
    /// when the index does not exist yet (`suma init` adds it).
    async fn list_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError>;
    /// Leaves a command (`pause`, `resume`, `abort`, `promote`) for operation `operation_id`, from any
    /// machine. `ConditionFailed` when that operation no longer holds the environment's lock: a command is
    /// never left for whatever runs next.
    async fn put_control(
        &self,
        environment: &str,
        operation_id: &str,
        command: &str,
        actor: &str,
    ) -> Result<(), AwsError>;
    /// Reads and removes the command pending for the lock held under `fence`: (command, actor).
    /// `ConditionFailed` when the lock is no longer held under `fence`.
    async fn take_control(&self, environment: &str, fence: &str) -> Result<Option<(String, String)>, AwsError>;
    /// Records `approval` of step `step` of operation `operation_id`. `ConditionFailed` when its identity
    /// already approved that step: one identity is one approver however often it asks.
    async fn add_approval(&self, operation_id: &str, step: &str, approval: &ApprovalItem) -> Result<(), AwsError>;
    /// The approvals of the step, oldest first.
    async fn list_approvals(&self, operation_id: &str, step: &str) -> Result<Vec<ApprovalItem>, AwsError>;
}

/// What `suma init` reads of the lock table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockTableFacts {
    /// `ACTIVE`, `CREATING`, `UPDATING`, ...
    pub status: String,
    /// The key schema as `(attribute, attribute type, key type)`, e.g. `("pk", "S", "HASH")`.
    pub key_schema: Vec<(String, String, String)>,
    pub deletion_protection: bool,
    pub point_in_time_recovery: bool,
    /// Whether [`OPERATIONS_INDEX`] exists.
    pub operations_index: bool,
}

/// Creating and hardening the lock table (`suma init`), apart from [`LockTable`]: no other command may
/// create or reconfigure it.
#[async_trait]
pub trait LockTableSetup: Send + Sync {
    /// The table's name, for messages.
    fn table(&self) -> &str;
    /// `None` when the table does not exist.
    async fn describe(&self) -> Result<Option<LockTableFacts>, AwsError>;
    /// Creates it keyed by the string partition key `pk`, billed per request, with deletion protection
    /// and [`OPERATIONS_INDEX`].
    async fn create(&self) -> Result<(), AwsError>;
    /// Adds [`OPERATIONS_INDEX`] to a table made before it existed.
    async fn add_operations_index(&self) -> Result<(), AwsError>;
    /// Gives every operation item without `started_at` the one its document records, so the index lists
    /// operations journaled before it existed; the number of items changed.
    async fn backfill_started_at(&self) -> Result<usize, AwsError>;
    async fn enable_point_in_time_recovery(&self) -> Result<(), AwsError>;
    async fn enable_deletion_protection(&self) -> Result<(), AwsError>;
}
