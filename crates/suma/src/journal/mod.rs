//! The operation journal: every mutating operation has an id, an ordered plan, and a record of each
//! step (start, end, result, and the facts needed to undo or resume it). Records go to the lock table in
//! DynamoDB, where any machine can read them, and to a local JSON-lines audit log.

mod local;
pub mod lock;
#[cfg(test)]
pub(crate) mod memory;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aws::dynamodb::{LockTable, OperationItem};
use crate::aws::AwsError;

pub use local::LocalLog;

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationStatus {
    Running,
    Succeeded,
    /// Ran and ended in the "no" answer or an error; the journal says which step and why.
    Failed,
    /// Stopped by Ctrl-C or a lost lease; can be resumed or aborted.
    Interrupted,
    Aborted,
    /// Its lock was force-released while it was unfinished.
    Abandoned,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Aborted => "aborted",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn is_finished(self) -> bool {
        crate::aws::dynamodb::FINISHED_STATUSES.contains(&self.as_str())
    }
}

/// A step of the plan, known before anything changes (what `--dry-run` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub name: String,
    /// What the step will do, on which resource.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// The record of one executed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Facts for undo or resume, e.g. `{"previous_task_definition": "auth-service:41"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, serde_json::Value>,
}

/// A note on the operation that is not a step (a force release, a confirmation, who accepted a risk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub message: String,
}

/// One mutating operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    /// e.g. `canary-deploy`, `rollback`, `dr-failover`, `lock-force-release`.
    pub kind: String,
    pub environment: String,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: OperationStatus,
    /// Parameters the operation was started with.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub plan: Vec<PlannedStep>,
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub events: Vec<OperationEvent>,
}

impl Operation {
    pub fn new(kind: &str, environment: &str, actor: &str, plan: Vec<PlannedStep>) -> Self {
        let now = Utc::now();
        Self {
            id: new_operation_id(now),
            kind: kind.to_owned(),
            environment: environment.to_owned(),
            actor: actor.to_owned(),
            started_at: now,
            updated_at: now,
            status: OperationStatus::Running,
            parameters: BTreeMap::new(),
            plan,
            steps: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Index of the first planned step that has not succeeded: where a resume starts.
    pub fn next_step(&self) -> usize {
        self.steps
            .iter()
            .take_while(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
            .count()
    }

    /// The most recent value of a fact recorded by any step.
    pub fn fact(&self, key: &str) -> Option<&serde_json::Value> {
        self.steps.iter().rev().find_map(|s| s.facts.get(key))
    }

    pub fn start_step(&mut self, index: usize) {
        let now = Utc::now();
        let name = self
            .plan
            .get(index)
            .map_or_else(|| format!("step {index}"), |p| p.name.clone());
        self.steps.truncate(index);
        self.steps.push(StepRecord {
            index,
            name,
            started_at: now,
            ended_at: None,
            status: StepStatus::Running,
            error: None,
            facts: BTreeMap::new(),
        });
        self.updated_at = now;
    }

    pub fn finish_step(
        &mut self,
        status: StepStatus,
        error: Option<String>,
        facts: BTreeMap<String, serde_json::Value>,
    ) {
        let now = Utc::now();
        if let Some(step) = self.steps.last_mut() {
            step.ended_at = Some(now);
            step.status = status;
            step.error = error;
            step.facts.extend(facts);
        }
        self.updated_at = now;
    }

    pub fn note(&mut self, actor: &str, message: impl Into<String>) {
        let now = Utc::now();
        self.events.push(OperationEvent {
            at: now,
            actor: actor.to_owned(),
            message: message.into(),
        });
        self.updated_at = now;
    }

    pub fn set_status(&mut self, status: OperationStatus) {
        self.status = status;
        self.updated_at = Utc::now();
    }
}

/// `20261122T193102-3fa9c1`: sortable by start time, short enough to type.
fn new_operation_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%S"), &random[..6])
}

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

    /// Saves the operation. With `holder`, the write is fenced by the lock (see [`LockTable::save_operation`]).
    pub async fn save(&self, op: &Operation, holder: Option<&str>) -> Result<(), JournalError> {
        let document = serde_json::to_string(op).expect("operations always serialize");
        self.local.append(op)?;
        let item = OperationItem {
            id: op.id.clone(),
            environment: op.environment.clone(),
            status: op.status.as_str().to_owned(),
            document,
        };
        let saved = match (&self.parent, holder) {
            (Some(parent), Some(holder)) => self.table.save_sub_operation(&item, parent, holder).await,
            _ => self.table.save_operation(&item, holder).await,
        };
        saved.map_err(|e| {
            if e.kind == crate::aws::AwsErrorKind::ConditionFailed {
                JournalError::Fenced {
                    environment: op.environment.clone(),
                }
            } else {
                JournalError::Aws(e)
            }
        })
    }

    pub async fn load(&self, id: &str) -> Result<Option<Operation>, JournalError> {
        match self.table.get_operation(id).await? {
            Some(item) => Ok(Some(parse(&item.id, &item.document)?)),
            None => Ok(None),
        }
    }

    /// The environment's operations, newest first.
    pub async fn list(&self, environment: &str, limit: usize) -> Result<Vec<Operation>, JournalError> {
        let mut ops = self
            .table
            .list_operations(environment)
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
