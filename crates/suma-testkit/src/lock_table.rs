//! The lock table in memory, with DynamoDB's conditional semantics: every renew, fenced save, release
//! and control read is checked against the fencing token, as the SDK implementation's condition
//! expressions are.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use suma_aws::dynamodb::{ApprovalItem, LockItem, LockTable, OperationItem, FINISHED_STATUSES};
use suma_aws::{AwsError, AwsErrorKind};

/// A pending control command: (command, actor).
type Control = (String, String);

/// The lock table in memory.
#[derive(Default)]
pub struct MemoryLockTable {
    locks: Mutex<HashMap<String, (LockItem, Option<Control>)>>,
    ops: Mutex<HashMap<String, OperationItem>>,
    /// (operation id, step) → approvals in the order given.
    approvals: Mutex<HashMap<(String, String), Vec<ApprovalItem>>>,
}

fn condition_failed(operation: &'static str) -> AwsError {
    AwsError::new(
        "DynamoDB",
        operation,
        "memory",
        AwsErrorKind::ConditionFailed,
        "ConditionalCheckFailedException",
    )
}

impl MemoryLockTable {
    /// Moves the lease expiry of `environment`'s lock, as if time had passed: tests of takeover.
    pub fn expire(&self, environment: &str, expires_at: i64) {
        if let Some((lock, _)) = self.locks.lock().unwrap().get_mut(environment) {
            lock.expires_at = expires_at;
        }
    }

    /// The saved operation documents, for assertions.
    pub fn operation_document(&self, id: &str) -> Option<String> {
        self.ops.lock().unwrap().get(id).map(|o| o.document.clone())
    }
}

#[async_trait]
impl LockTable for MemoryLockTable {
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError> {
        let mut locks = self.locks.lock().unwrap();
        if let Some((held, _)) = locks.get(&item.environment) {
            let free = held.expires_at < now
                && (Some(held.operation_id.as_str()) == takeover_of
                    || FINISHED_STATUSES.contains(&held.operation_status.as_str()));
            if !free {
                return Err(condition_failed("PutItem"));
            }
        }
        locks.insert(item.environment.clone(), (item.clone(), None));
        Ok(())
    }

    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        Ok(self.locks.lock().unwrap().get(environment).map(|(l, _)| l.clone()))
    }

    async fn renew(&self, environment: &str, fence: &str, expires_at: i64) -> Result<(), AwsError> {
        match self.locks.lock().unwrap().get_mut(environment) {
            Some((l, _)) if l.fence == fence => {
                l.expires_at = expires_at;
                Ok(())
            }
            _ => Err(condition_failed("UpdateItem")),
        }
    }

    async fn release(&self, environment: &str, fence: &str) -> Result<(), AwsError> {
        let mut locks = self.locks.lock().unwrap();
        match locks.get(environment) {
            Some((l, _)) if l.fence == fence => {
                locks.remove(environment);
                Ok(())
            }
            _ => Err(condition_failed("DeleteItem")),
        }
    }

    async fn seize(&self, item: &LockItem, held_fence: &str) -> Result<(), AwsError> {
        let mut locks = self.locks.lock().unwrap();
        match locks.get(&item.environment) {
            Some((held, _)) if held.fence == held_fence => {
                locks.insert(item.environment.clone(), (item.clone(), None));
                Ok(())
            }
            _ => Err(condition_failed("PutItem")),
        }
    }

    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError> {
        if let Some(fence) = fence {
            let mut locks = self.locks.lock().unwrap();
            match locks.get_mut(&op.environment) {
                Some((l, _)) if l.operation_id == op.id && l.fence == fence => {
                    l.operation = op.document.clone();
                    l.operation_status = op.status.clone();
                }
                _ => return Err(condition_failed("TransactWriteItems")),
            }
        }
        self.ops.lock().unwrap().insert(op.id.clone(), op.clone());
        Ok(())
    }

    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, fence: &str) -> Result<(), AwsError> {
        match self.locks.lock().unwrap().get(&op.environment) {
            Some((l, _)) if l.operation_id == parent && l.fence == fence => {}
            _ => return Err(condition_failed("TransactWriteItems")),
        }
        self.ops.lock().unwrap().insert(op.id.clone(), op.clone());
        Ok(())
    }

    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError> {
        Ok(self.ops.lock().unwrap().get(id).cloned())
    }

    async fn list_operations(&self, environment: &str, limit: usize) -> Result<Vec<OperationItem>, AwsError> {
        let mut ops: Vec<OperationItem> = self
            .ops
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.environment == environment)
            .cloned()
            .collect();
        ops.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        ops.truncate(limit);
        Ok(ops)
    }

    async fn put_control(
        &self,
        environment: &str,
        operation_id: &str,
        command: &str,
        actor: &str,
    ) -> Result<(), AwsError> {
        match self.locks.lock().unwrap().get_mut(environment) {
            Some((l, control)) if l.operation_id == operation_id => {
                *control = Some((command.to_owned(), actor.to_owned()));
                Ok(())
            }
            _ => Err(condition_failed("UpdateItem")),
        }
    }

    async fn take_control(&self, environment: &str, fence: &str) -> Result<Option<(String, String)>, AwsError> {
        match self.locks.lock().unwrap().get_mut(environment) {
            Some((l, control)) if l.fence == fence => Ok(control.take()),
            _ => Err(condition_failed("UpdateItem")),
        }
    }

    async fn add_approval(&self, operation_id: &str, step: &str, approval: &ApprovalItem) -> Result<(), AwsError> {
        let mut approvals = self.approvals.lock().unwrap();
        let given = approvals.entry((operation_id.to_owned(), step.to_owned())).or_default();
        if given.iter().any(|a| a.identity == approval.identity) {
            return Err(condition_failed("UpdateItem"));
        }
        given.push(approval.clone());
        Ok(())
    }

    async fn list_approvals(&self, operation_id: &str, step: &str) -> Result<Vec<ApprovalItem>, AwsError> {
        Ok(self
            .approvals
            .lock()
            .unwrap()
            .get(&(operation_id.to_owned(), step.to_owned()))
            .cloned()
            .unwrap_or_default())
    }
}
