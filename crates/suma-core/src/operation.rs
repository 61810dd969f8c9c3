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
    /// Failed, and the operation went on as its definition allows (a runbook step with
    /// `on_failure: continue`): done as far as a resume is concerned, its error kept.
    Tolerated,
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
    /// Facts for undo or resume, e.g. `{"previous_task_definition": "auth-service:41"}`. Kept when the
    /// step restarts: what an earlier attempt did (or was about to do) is what undo needs to know.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, serde_json::Value>,
    /// The earlier attempts of this step (a crash, an interruption or a failure, then a resume), oldest
    /// first; the current attempt is the record itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<StepAttempt>,
}

/// An earlier attempt of a step, as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAttempt {
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `running` when the attempt was cut off (a crash or a kill) before it could record an end.
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an operation decided to do instead of going on: journaled before it is acted on, so a resume
/// after a crash continues the decision rather than the step that was running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// A step failed (or the analysis said no): put the environment back; the operation ends `failed`.
    RollBack,
    /// A person asked to stop: put the environment back; the operation ends `aborted`.
    Abort,
}

impl Decision {
    pub fn new(kind: DecisionKind, reason: impl Into<String>, by: &str) -> Self {
        Self {
            kind,
            reason: reason.into(),
            by: by.to_owned(),
            at: Utc::now(),
        }
    }
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
    /// Set once the operation decided to roll back or abort; from then on it only carries that out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
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
            decision: None,
        }
    }

    /// Index of the first planned step that has not succeeded: where a resume starts.
    pub fn next_step(&self) -> usize {
        self.steps
            .iter()
            .take_while(|s| {
                matches!(
                    s.status,
                    StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Tolerated
                )
            })
            .count()
    }

    /// The most recent value of a fact recorded by any step.
    pub fn fact(&self, key: &str) -> Option<&serde_json::Value> {
        self.steps.iter().rev().find_map(|s| s.facts.get(key))
    }

    /// Starts (or restarts) step `index`. A restart keeps the step's facts and moves the earlier attempt
    /// into [`StepRecord::attempts`].
    pub fn start_step(&mut self, index: usize) {
        let now = Utc::now();
        let name = self
            .plan
            .get(index)
            .map_or_else(|| format!("step {index}"), |p| p.name.clone());
        self.steps.truncate(index + 1);
        if let Some(earlier) = self.steps.get_mut(index) {
            earlier.attempts.push(StepAttempt {
                started_at: earlier.started_at,
                ended_at: earlier.ended_at,
                status: earlier.status,
                error: earlier.error.take(),
            });
            earlier.started_at = now;
            earlier.ended_at = None;
            earlier.status = StepStatus::Running;
        } else {
            self.steps.truncate(index);
            self.steps.push(StepRecord {
                index,
                name,
                started_at: now,
                ended_at: None,
                status: StepStatus::Running,
                error: None,
                facts: BTreeMap::new(),
                attempts: Vec::new(),
            });
        }
        self.updated_at = now;
    }

    /// Adds facts to the running step without ending it: what the step is about to do, journaled (by the
    /// caller's save) before it does it.
    pub fn record_facts(&mut self, facts: BTreeMap<String, serde_json::Value>) {
        if let Some(step) = self.steps.last_mut() {
            step.facts.extend(facts);
        }
        self.updated_at = Utc::now();
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
