//! DynamoDB: the table behind environment locks and the operation journal.
//!
//! Items, keyed by the string partition key `pk`:
//! - `lock#ENV`: holder, operation id/kind/status, lease expiry (epoch seconds), and a copy of the
//!   operation document, so that any machine can show, resume or abort what the holder was doing;
//! - `op#ID`: the operation document, kept after the operation ends, for `suma ops`.
//!
//! Every change to a held operation is one transaction that is conditional on the lock still being held
//! by the writer, so a holder that lost its lease can never overwrite its successor's record.

use async_trait::async_trait;

use super::AwsError;

/// The lock of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockItem {
    pub environment: String,
    pub holder: String,
    pub operation_id: String,
    pub operation_kind: String,
    pub operation_status: String,
    pub acquired_at: i64,
    pub expires_at: i64,
    /// The operation document (JSON) as of its last save.
    pub operation: String,
}

/// An operation document with the attributes that list and filter it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationItem {
    pub id: String,
    pub environment: String,
    pub status: String,
    pub document: String,
}

pub use suma_core::operation::FINISHED_STATUSES;

#[async_trait]
pub trait LockTable: Send + Sync {
    /// Writes `item` as the lock when no lock exists, or when the existing lease has expired (`now`) and
    /// either its operation finished or it is `takeover_of` (a resume or abort of that operation).
    /// Fails with `ConditionFailed` otherwise.
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError>;
    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError>;
    /// Extends the lease; `ConditionFailed` means the lock is no longer ours.
    async fn renew(&self, environment: &str, operation_id: &str, holder: &str, expires_at: i64)
        -> Result<(), AwsError>;
    /// Deletes the lock if `operation_id` holds it.
    async fn release(&self, environment: &str, operation_id: &str) -> Result<(), AwsError>;
    /// Deletes the lock whoever holds it, returning what it was.
    async fn force_release(&self, environment: &str) -> Result<Option<LockItem>, AwsError>;
    /// Saves an operation; with `fence = Some(holder)` also copies it into the lock item, in one
    /// transaction conditional on `holder` still holding the lock for this operation.
    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError>;
    /// Saves an operation run inside another (a runbook step that drives a rotation or a failover): fenced
    /// like [`LockTable::save_operation`] by `holder` holding the lock for `parent`, in one transaction,
    /// but the lock item keeps the parent's copy.
    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, holder: &str) -> Result<(), AwsError>;
    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError>;
    /// Every operation of the environment (unordered).
    async fn list_operations(&self, environment: &str) -> Result<Vec<OperationItem>, AwsError>;
    /// Leaves a command (`pause`, `resume`, `abort`, `promote`) for the operation running on the
    /// environment, from any machine.
    async fn put_control(&self, environment: &str, command: &str, actor: &str) -> Result<(), AwsError>;
    /// Reads and removes the pending command, if any: (command, actor).
    async fn take_control(&self, environment: &str) -> Result<Option<(String, String)>, AwsError>;
}
