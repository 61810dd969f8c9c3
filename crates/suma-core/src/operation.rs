//! The journal's model: an operation, its plan, and the record of each step (start, end, result, and the
//! facts needed to undo or resume it). The store that keeps these records lives above the AWS layer;
//! this is what every layer, from the renderer to the engines, reads and writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The statuses after which an operation no longer holds its environment (the lock table's view).
pub const FINISHED_STATUSES: [&str; 4] = ["succeeded", "failed", "aborted", "abandoned"];

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
        FINISHED_STATUSES.contains(&self.as_str())
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
