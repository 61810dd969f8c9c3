//! The operation journal: every mutating operation has an id, an ordered plan, and a record of each
//! step (start, end, result, and the facts needed to undo or resume it). Records go to the lock table in
//! DynamoDB, where any machine can read them, and to a local JSON-lines audit log.

mod local;
pub mod lock;

use std::path::PathBuf;
use std::sync::Arc;

use crate::aws::dynamodb::{LockTable, OperationItem};
use crate::aws::AwsError;

pub use local::LocalLog;
pub use suma_core::operation::*;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("the journal record of operation `{id}` is not valid JSON: {source}")]
    Corrupt { id: String, source: serde_json::Error },
    #[error("cannot write the local operation log `{path}`: {source}\nhint: set `--state-dir` or `SUMA_STATE_DIR` to a writable directory")]
    Local { path: PathBuf, source: std::io::Error },
    #[error("the lock on `{environment}` is no longer held by this operation; its record was not overwritten\nhint: run `suma lock status --env {environment}` to see who holds it")]
    Fenced { environment: String },
    /// The first record of an operation could not be written, so it never started.
    #[error("cannot record operation `{id}` in the journal, so it did not start: {source}\n{hint}")]
    NotStarted {
        id: String,
        source: Box<JournalError>,
        hint: String,
    },
    /// A write of a held operation failed: it stops before its next change, resumable.
    #[error("cannot record operation `{id}` in the journal: {source}\nhint: it stopped before its next change; once DynamoDB answers again, resume or abort it (`suma ops show {id}` shows where it stands)")]
    Write { id: String, source: AwsError },
}

/// The journal: the shared record in DynamoDB plus the local audit log.
#[derive(Clone)]
pub struct Journal {
    table: Arc<dyn LockTable>,
    local: LocalLog,
    /// Set for operations run inside another: fenced writes check the lock held for this one.
    parent: Option<String>,
}

impl Journal {
    pub fn new(table: Arc<dyn LockTable>, local: LocalLog) -> Self {
        Self {
            table,
            local,
            parent: None,
        }
    }

    /// The journal of operations run inside `parent` (which holds the environment's lock): their
    /// fenced writes succeed only while `parent` holds it, and the lock item keeps `parent`'s copy.
    pub fn nested(&self, parent: &str) -> Self {
        Self {
            parent: Some(parent.to_owned()),
            ..self.clone()
        }
    }

    pub fn table(&self) -> &Arc<dyn LockTable> {
        &self.table
    }

    /// Saves the operation. With `fence`, the write succeeds only while the lock is held under it (see
    /// [`LockTable::save_operation`]).
    pub async fn save(&self, op: &Operation, fence: Option<&lock::Fence>) -> Result<(), JournalError> {
        let document = serde_json::to_string(op).expect("operations always serialize");
        self.local.append(op)?;
        let item = OperationItem {
            id: op.id.clone(),
            environment: op.environment.clone(),
            started_at: crate::aws::dynamodb::started_at_key(op.started_at),
            status: op.status.as_str().to_owned(),
            document,
        };
        let saved = match (&self.parent, fence) {
            (Some(parent), Some(fence)) => self.table.save_sub_operation(&item, parent, fence.as_str()).await,
            _ => self.table.save_operation(&item, fence.map(lock::Fence::as_str)).await,
        };
        saved.map_err(|e| {
            if e.kind == crate::aws::AwsErrorKind::ConditionFailed {
                JournalError::Fenced {
                    environment: op.environment.clone(),
                }
            } else {
                JournalError::Write {
                    id: op.id.clone(),
                    source: e,
                }
            }
        })
    }

    pub async fn load(&self, id: &str) -> Result<Option<Operation>, JournalError> {
        match self.table.get_operation(id).await? {
            Some(item) => Ok(Some(parse(&item.id, &item.document)?)),
            None => Ok(None),
        }
    }

    /// The environment's operations, newest first, at most `limit` (read from the table's index, which may
    /// lag a write by a moment; the lock item is the consistent record of the operation that holds it).
    pub async fn list(&self, environment: &str, limit: usize) -> Result<Vec<Operation>, JournalError> {
        let mut ops = self
            .table
            .list_operations(environment, limit)
            .await?
            .into_iter()
            .map(|item| parse(&item.id, &item.document))
            .collect::<Result<Vec<_>, _>>()?;
        ops.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.id.cmp(&a.id)));
        ops.truncate(limit);
        Ok(ops)
    }
}

pub(crate) fn parse(id: &str, document: &str) -> Result<Operation, JournalError> {
    serde_json::from_str(document).map_err(|source| JournalError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn plan() -> Vec<PlannedStep> {
        ["register", "shift", "promote"]
            .iter()
            .map(|n| PlannedStep {
                name: (*n).to_owned(),
                detail: String::new(),
            })
            .collect()
    }

    #[test]
    fn resume_point_is_the_first_unfinished_step() {
        let mut op = Operation::new("canary-deploy", "staging", "op@host", plan());
        assert_eq!(op.next_step(), 0);
        op.start_step(0);
        op.finish_step(
            StepStatus::Succeeded,
            None,
            BTreeMap::from([("rev".to_owned(), 41.into())]),
        );
        op.start_step(1);
        assert_eq!(op.next_step(), 1, "a running step is redone on resume");
        op.finish_step(StepStatus::Failed, Some("boom".to_owned()), BTreeMap::new());
        assert_eq!(op.next_step(), 1);
        assert_eq!(op.fact("rev"), Some(&serde_json::json!(41)));
        // Restarting step 1 replaces its failed record rather than appending a second one.
        op.start_step(1);
        assert_eq!(op.steps.len(), 2);
        assert_eq!(op.steps[1].status, StepStatus::Running);
    }

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let op = Operation::new("rollback", "production", "a@b", plan());
        assert_eq!(op.id.len(), "20261122T193102-3fa9c1".len());
        let back: Operation = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn finished_statuses_match_the_lock_table() {
        assert!(OperationStatus::Succeeded.is_finished());
        assert!(OperationStatus::Abandoned.is_finished());
        assert!(!OperationStatus::Interrupted.is_finished());
        assert!(!OperationStatus::Running.is_finished());
    }
}
