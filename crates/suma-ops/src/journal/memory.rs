//! The lock table in memory, with DynamoDB's conditional semantics: the fake the engines' tests run
//! their journals and locks on.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::aws::dynamodb::{LockItem, LockTable, OperationItem, FINISHED_STATUSES};
use crate::aws::{AwsError, AwsErrorKind};

/// The lock table in memory, with DynamoDB's conditional semantics.
#[derive(Default)]
pub(crate) struct MemoryTable {
    pub(crate) locks: Mutex<HashMap<String, LockItem>>,
    pub(crate) ops: Mutex<HashMap<String, OperationItem>>,
    pub(crate) control: Mutex<HashMap<String, (String, String)>>,
}

fn condition_failed() -> AwsError {
    AwsError::new(
        "DynamoDB",
        "PutItem",
        "memory",
        AwsErrorKind::ConditionFailed,
        "ConditionalCheckFailedException",
    )
}

#[async_trait]
impl LockTable for MemoryTable {
    async fn acquire(&self, item: &LockItem, now: i64, takeover_of: Option<&str>) -> Result<(), AwsError> {
        let mut locks = self.locks.lock().unwrap();
        if let Some(held) = locks.get(&item.environment) {
            let free = held.expires_at < now
                && (Some(held.operation_id.as_str()) == takeover_of
                    || FINISHED_STATUSES.contains(&held.operation_status.as_str()));
            if !free {
                return Err(condition_failed());
            }
        }
        locks.insert(item.environment.clone(), item.clone());
        Ok(())
    }
    async fn get_lock(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        Ok(self.locks.lock().unwrap().get(environment).cloned())
    }
    async fn renew(&self, environment: &str, operation_id: &str, _: &str, expires_at: i64) -> Result<(), AwsError> {
        match self.locks.lock().unwrap().get_mut(environment) {
            Some(l) if l.operation_id == operation_id => {
                l.expires_at = expires_at;
                Ok(())
            }
            _ => Err(condition_failed()),
        }
    }
    async fn release(&self, environment: &str, operation_id: &str) -> Result<(), AwsError> {
        let mut locks = self.locks.lock().unwrap();
        match locks.get(environment) {
            Some(l) if l.operation_id == operation_id => {
                locks.remove(environment);
                Ok(())
            }
            _ => Err(condition_failed()),
        }
    }
    async fn force_release(&self, environment: &str) -> Result<Option<LockItem>, AwsError> {
        Ok(self.locks.lock().unwrap().remove(environment))
    }
    async fn save_operation(&self, op: &OperationItem, fence: Option<&str>) -> Result<(), AwsError> {
        if let Some(holder) = fence {
            let mut locks = self.locks.lock().unwrap();
            match locks.get_mut(&op.environment) {
                Some(l) if l.operation_id == op.id && l.holder == holder => {
                    l.operation = op.document.clone();
                    l.operation_status = op.status.clone();
                }
                _ => return Err(condition_failed()),
            }
        }
        self.ops.lock().unwrap().insert(op.id.clone(), op.clone());
        Ok(())
    }
    async fn save_sub_operation(&self, op: &OperationItem, parent: &str, holder: &str) -> Result<(), AwsError> {
        match self.locks.lock().unwrap().get(&op.environment) {
            Some(l) if l.operation_id == parent && l.holder == holder => {}
            _ => return Err(condition_failed()),
        }
        self.ops.lock().unwrap().insert(op.id.clone(), op.clone());
        Ok(())
    }
    async fn get_operation(&self, id: &str) -> Result<Option<OperationItem>, AwsError> {
        Ok(self.ops.lock().unwrap().get(id).cloned())
    }
    async fn list_operations(&self, environment: &str) -> Result<Vec<OperationItem>, AwsError> {
        Ok(self
            .ops
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.environment == environment)
            .cloned()
            .collect())
    }
    async fn put_control(&self, environment: &str, command: &str, actor: &str) -> Result<(), AwsError> {
        self.control
            .lock()
            .unwrap()
            .insert(environment.to_owned(), (command.to_owned(), actor.to_owned()));
        Ok(())
    }
    async fn take_control(&self, environment: &str) -> Result<Option<(String, String)>, AwsError> {
        Ok(self.control.lock().unwrap().remove(environment))
    }
}
