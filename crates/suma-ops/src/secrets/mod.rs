//! Secret rotation: suma drives the Secrets Manager rotation protocol itself. Each rotation is an operation
//! in the journal, under the environment lock, with five steps:
//!
//! 1. `create`: a new value stored as `AWSPENDING`, its version id being the operation's client request
//!    token (recorded before anything is written), so a retry never makes a second version;
//! 2. `set`: the downstream system accepts the new value (a role's password, the service's key set);
//! 3. `test`: the new value proven against the real system;
//! 4. `finish`: `AWSCURRENT` moved to the new version (the old one becomes `AWSPREVIOUS`), `AWSPENDING`
//!    removed, and the kind's own wait for consumers (the service signing with the new key);
//! 5. `consumers`: ECS services that receive the secret at task start get a forced new deployment.
//!
//! A failure before `finish` undoes `set` and removes `AWSPENDING`: `AWSCURRENT` never stops working.
//! `resume` continues from the journal; `abort` undoes whatever was done, including a finished step 4.
//! What differs per kind lives behind [`Rotation`] (`kinds.rs`); the engine only moves labels.

pub mod database;
pub mod kinds;
pub mod listing;
pub mod redis_auth;
#[cfg(feature = "sdk")]
pub mod setup;
pub mod totp_key;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aws::ecs::{EcsApi, Rollout, ServiceUpdate};
use crate::aws::secrets::{SecretMetadata, SecretVersionsApi, VersionRef, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::aws::AwsError;
use crate::config::ManagedSecret;
use crate::engine::{self, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{Decision, DecisionKind, Journal, Operation, PlannedStep, StepStatus};
use crate::report::Reporter;

/// The journal's name for a rotation.
pub const KIND: &str = "secret-rotation";

/// Facts a step records: never a secret value, only ids, times and observations.
pub type Facts = BTreeMap<String, serde_json::Value>;

/// Why a kind's step failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// What one kind of secret does at each step of the protocol.
#[async_trait]
pub trait Rotation: Send + Sync {
    /// A new value, derived from nothing but fresh randomness and the current value's shape.
    async fn generate(&self, current: &str) -> Result<String, RotationError>;
    /// Makes the downstream system accept `pending` (still alongside `current`).
    async fn set(&self, current: &str, pending: &str) -> Result<Facts, RotationError>;
    /// Proves `pending` works against the real system.
    async fn test(&self, pending: &str) -> Result<Facts, RotationError>;
    /// After `AWSCURRENT` moved: waits until the system uses the new value where it has to tell us.
    async fn finished(&self, new: &str) -> Result<Facts, RotationError>;
    /// Undoes `set`, so `current` is again the only value the system accepts where that matters.
    async fn undo_set(&self, current: &str, pending: &str) -> Result<(), RotationError>;
    /// After the consumers moved to `new`: stops the system accepting the previous value, for kinds whose
    /// `set` left both accepted (the plan then has a `revoke` step).
    async fn revoke(&self, new: &str) -> Result<Facts, RotationError> {
        let _ = new;
        Ok(Facts::new())
    }
}

pub use crate::engine::EngineError;

/// How a rotation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Rotated {
        version: String,
    },
    /// A step before `finish` failed: undone, `AWSCURRENT` unchanged.
    Failed {
        step: String,
        reason: String,
    },
    Aborted,
    /// Ctrl-C or a lost lease: `suma secrets resume` or `suma secrets abort` finishes it.
    Interrupted {
        at_step: String,
    },
}

/// The plan of a rotation of `secret`.
pub fn plan(secret: &ManagedSecret, cluster: &str) -> Vec<PlannedStep> {
    let kind = secret.kind.as_str();
    let what = |s: &str| s.to_owned();
    let set = match secret.kind {
        crate::config::SecretKind::JwtSigningKey => what("wait until the service's JWKS publishes the new kid"),
        crate::config::SecretKind::DbPassword | crate::config::SecretKind::DatabaseUrl => {
            what("set the new password on the role (admin connection)")
        }
        crate::config::SecretKind::Keyring | crate::config::SecretKind::TotpKey | crate::config::SecretKind::Random => {
            what("nothing downstream: consumers read the secret")
        }
        crate::config::SecretKind::RedisAuth => what(
            "ElastiCache ModifyReplicationGroup: the new AUTH token with strategy ROTATE (both accepted), wait until available",
        ),
    };
    let test = match secret.kind {
        crate::config::SecretKind::JwtSigningKey => what("a token signed with the new key verifies at the service"),
        crate::config::SecretKind::DbPassword | crate::config::SecretKind::DatabaseUrl => {
            what("connect with the new credentials and run a query")
        }
        crate::config::SecretKind::Keyring => what("parse the pending keyring as the service does"),
        crate::config::SecretKind::TotpKey => {
            what("parse the pending keys as the service does (base64 of 32 bytes each)")
        }
        crate::config::SecretKind::RedisAuth => what("AUTH and PING on the primary endpoint with the new URL"),
        crate::config::SecretKind::Random => what("read the pending value back and check its shape"),
    };
    let consumers = if secret.consumers.is_empty() {
        "no consumers configured".to_owned()
    } else {
        format!(
            "force a new deployment of {} in `{cluster}` and wait",
            secret.consumers.join(", ")
        )
    };
    let mut steps = vec![
        PlannedStep {
            name: "create".to_owned(),
            detail: format!("new {kind} value as AWSPENDING of `{}`", secret.id),
        },
        PlannedStep {
            name: "set".to_owned(),
            detail: set,
        },
        PlannedStep {
            name: "test".to_owned(),
            detail: test,
        },
        PlannedStep {
            name: "finish".to_owned(),
            detail: format!(
                "move AWSCURRENT to the new version of `{}` (old becomes AWSPREVIOUS)",
                secret.id
            ),
        },
        PlannedStep {
            name: "consumers".to_owned(),
            detail: consumers,
        },
    ];
    if secret.kind == crate::config::SecretKind::RedisAuth {
        steps.push(PlannedStep {
            name: "revoke".to_owned(),
            detail: "ElastiCache ModifyReplicationGroup: the new token with strategy SET (the old one refused from now on), wait until available".to_owned(),
        });
    }
    steps
}

/// Whether a secret is past its policy: its current value is older than `rotation_days`.
pub fn is_due(meta: &SecretMetadata, rotation_days: u32, now: DateTime<Utc>) -> bool {
    age_days(meta, now).is_none_or(|age| age >= i64::from(rotation_days))
}

/// Whole days since the current value was set; `None` when Secrets Manager gives no date at all.
pub fn age_days(meta: &SecretMetadata, now: DateTime<Utc>) -> Option<i64> {
    meta.current_since().map(|since| (now - since).num_days())
}

/// The rotation engine for one secret.
pub struct Rotator {
    pub secret: ManagedSecret,
    pub secrets: Arc<dyn SecretVersionsApi>,
    pub ecs: Arc<dyn EcsApi>,
    pub cluster: String,
    pub journal: Journal,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: CancellationToken,
    pub rollout_timeout: Duration,
    pub rollout_poll: Duration,
}

impl From<RotationError> for StepError {
    fn from(e: RotationError) -> Self {
        StepError::failed(e.to_string())
    }
}

/// One rotation as the engine runs it: the rotator and the kind's protocol.
struct RotationSteps<'a> {
    rotator: &'a Rotator,
    rotation: &'a dyn Rotation,
}

#[async_trait]
impl Steps for RotationSteps<'_> {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let name = op.plan[index].name.clone();
        self.rotator.step(run, &name, op, self.rotation).await
    }

    fn on_failure(&self, op: &Operation, index: usize) -> OnFailure {
        after_failure(op, index)
    }

    async fn undo(&self, run: &Run<'_>, op: &mut Operation, _: &Decision) -> Result<String, StepError> {
        self.rotator.undo(run, op, self.rotation).await
    }
}

/// Before `finish`, a failure is undone at once: `AWSCURRENT` never moved. After it, a consumer whose
/// new deployment failed (its tasks cannot work with the new value: the circuit breaker stopped it) is
/// a verdict on the value, so it is undone too: `AWSCURRENT` back and the consumers redeployed on the
/// previous value. Any other failure once `finish` has started (a timeout, AWS unreachable) says
/// nothing about the value, and undoing would be a second change under pressure: stop, and the person
/// chooses between `suma secrets resume` and `suma secrets abort`.
pub fn after_failure(op: &Operation, index: usize) -> OnFailure {
    let consumers_rejected = op.plan[index].name == "consumers"
        && op
            .steps
            .iter()
            .rev()
            .find(|s| s.name == "consumers")
            .is_some_and(|s| s.facts.contains_key(CONSUMER_ROLLOUT_FAILED));
    if consumers_rejected || !op.steps.iter().any(|s| s.name == "finish") {
        OnFailure::RollBack
    } else {
        OnFailure::Stop
    }
}

/// The fact a `consumers` step records when a consumer's new deployment failed (the rotation is undone).
pub const CONSUMER_ROLLOUT_FAILED: &str = "rollout_failed";

impl Rotator {
    /// The version id of this rotation's new value: the operation's client request token.
    pub fn token(op: &Operation) -> String {
        op.parameters
            .get("token")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    async fn read(&self, version: &VersionRef) -> Result<Option<String>, AwsError> {
        Ok(self.secrets.value(&self.secret.id, version).await?.map(|v| v.value))
    }

    async fn current_value(&self, op: &Operation) -> Result<String, StepError> {
        let version = op
            .fact("previous_version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| StepError::failed("the journal has no previous version".to_owned()))?;
        self.read(&VersionRef::Id(version.to_owned()))
            .await?
            .ok_or_else(|| StepError::failed(format!("version `{version}` of `{}` is gone", self.secret.id)))
    }

    async fn pending_value(&self, op: &Operation) -> Result<String, StepError> {
        let token = Self::token(op);
        self.read(&VersionRef::Id(token.clone()))
            .await?
            .ok_or_else(|| StepError::failed(format!("the new version `{token}` of `{}` is gone", self.secret.id)))
    }

    fn run_with<'a>(&'a self, guard: &'a LockGuard) -> Run<'a> {
        Run::new(&self.journal, guard, self.reporter.as_ref(), &self.cancel)
    }

    /// Runs (or resumes) the rotation from the first step not yet done, or finishes the undo it decided.
    pub async fn run(
        &self,
        op: &mut Operation,
        rotation: &dyn Rotation,
        guard: &LockGuard,
    ) -> Result<Outcome, EngineError> {
        let steps = RotationSteps {
            rotator: self,
            rotation,
        };
        let end = engine::drive(&steps, &self.run_with(guard), op).await?;
        Ok(self.outcome(op, end))
    }

    /// Undoes whatever the rotation did, including a finished step 4.
    pub async fn abort(
        &self,
        op: &mut Operation,
        rotation: &dyn Rotation,
        guard: &LockGuard,
        by: &str,
    ) -> Result<Outcome, EngineError> {
        let steps = RotationSteps {
            rotator: self,
            rotation,
        };
        let end = engine::abort(&steps, &self.run_with(guard), op, by).await?;
        Ok(self.outcome(op, end))
    }

    fn outcome(&self, op: &Operation, end: RunEnd) -> Outcome {
        match end {
            RunEnd::Completed => Outcome::Rotated {
                version: Self::token(op),
            },
            RunEnd::Undone { decision, .. } if decision.kind == DecisionKind::Abort => Outcome::Aborted,
            RunEnd::Undone { decision, .. } => Outcome::Failed {
                step: op
                    .steps
                    .iter()
                    .rev()
                    .find(|s| s.status == StepStatus::Failed)
                    .map_or_else(String::new, |s| s.name.clone()),
                reason: decision.reason,
            },
            RunEnd::Failed { at_step, reason } => Outcome::Failed { step: at_step, reason },
            RunEnd::Stopped { at_step, .. } | RunEnd::Interrupted { at_step } => Outcome::Interrupted { at_step },
        }
    }

    async fn step(
        &self,
        run: &Run<'_>,
        name: &str,
        op: &mut Operation,
        rotation: &dyn Rotation,
    ) -> Result<StepEnd, StepError> {
        let id = self.secret.id.clone();
        let token = Self::token(op);
        match name {
            "create" => {
                let current = self
                    .secrets
                    .value(&id, &VersionRef::Stage(AWSCURRENT))
                    .await?
                    .ok_or_else(|| StepError::failed(format!("`{id}` has no AWSCURRENT version")))?;
                if current.version_id == token {
                    return Err(StepError::failed(format!(
                        "version `{token}` of `{id}` is already AWSCURRENT"
                    )));
                }
                // What undo needs is journaled before anything is written; a restart keeps the first
                // attempt's record (by then AWSCURRENT is still the previous version, so it agrees).
                let facts = Facts::from([
                    ("previous_version".to_owned(), json!(current.version_id)),
                    ("version".to_owned(), json!(token)),
                ]);
                run.record(op, facts).await?;
                if self.read(&VersionRef::Id(token.clone())).await?.is_some() {
                    return Ok(StepEnd::Done(Facts::from([(
                        "created".to_owned(),
                        json!("already stored by an earlier attempt"),
                    )])));
                }
                let value = rotation.generate(&current.value).await?;
                run.mutating()?;
                self.secrets.put_pending(&id, &token, &value).await?;
                Ok(StepEnd::Done(Facts::new()))
            }
            "set" => {
                let (current, pending) = (self.current_value(op).await?, self.pending_value(op).await?);
                run.mutating()?;
                Ok(StepEnd::Done(rotation.set(&current, &pending).await?))
            }
            "test" => {
                let pending = self.pending_value(op).await?;
                Ok(StepEnd::Done(rotation.test(&pending).await?))
            }
            "finish" => {
                let previous = op
                    .fact("previous_version")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let meta = self.secrets.describe(&id).await?;
                let has = |version: &str, label: &str| {
                    meta.versions
                        .get(version)
                        .is_some_and(|labels| labels.iter().any(|l| l == label))
                };
                if !has(&token, AWSCURRENT) {
                    run.mutating()?;
                    self.secrets
                        .move_stage(&id, AWSCURRENT, &token, Some(&previous))
                        .await?;
                }
                // Moving AWSCURRENT moves AWSPREVIOUS too: look again before repairing anything.
                let meta = self.secrets.describe(&id).await?;
                let has = |version: &str, label: &str| {
                    meta.versions
                        .get(version)
                        .is_some_and(|labels| labels.iter().any(|l| l == label))
                };
                if !has(&previous, AWSPREVIOUS) {
                    // Secrets Manager moves AWSPREVIOUS itself; this only repairs a partial earlier attempt.
                    let holder = meta
                        .versions
                        .iter()
                        .find(|(_, labels)| labels.iter().any(|l| l == AWSPREVIOUS))
                        .map(|(v, _)| v.clone());
                    if holder.as_deref() != Some(previous.as_str()) {
                        run.mutating()?;
                        self.secrets
                            .move_stage(&id, AWSPREVIOUS, &previous, holder.as_deref())
                            .await?;
                    }
                }
                if self.describe_has(&id, &token, AWSPENDING).await? {
                    run.mutating()?;
                    self.secrets.remove_stage(&id, AWSPENDING, &token).await?;
                }
                let new = self.pending_value(op).await?;
                let mut facts = rotation.finished(&new).await?;
                facts.insert("finished_at".to_owned(), json!(Utc::now()));
                Ok(StepEnd::Done(facts))
            }
            "consumers" => self.redeploy_consumers(run).await,
            "revoke" => {
                let new = self.pending_value(op).await?;
                run.mutating()?;
                Ok(StepEnd::Done(rotation.revoke(&new).await?))
            }
            other => Err(StepError::failed(format!("unknown step `{other}`"))),
        }
    }

    async fn describe_has(&self, id: &str, version: &str, label: &str) -> Result<bool, AwsError> {
        Ok(self
            .secrets
            .describe(id)
            .await?
            .versions
            .get(version)
            .is_some_and(|labels| labels.iter().any(|l| l == label)))
    }

    /// Services resolve task-definition `secrets` only when a task starts: each consumer gets a forced new
    /// deployment, and the step waits until it completes.
    async fn redeploy_consumers(&self, run: &Run<'_>) -> Result<StepEnd, StepError> {
        if self.secret.consumers.is_empty() {
            return Ok(StepEnd::skipped("no consumers configured", Facts::new()));
        }
        let force = ServiceUpdate {
            force_new_deployment: true,
            ..ServiceUpdate::default()
        };
        for service in &self.secret.consumers {
            run.held()?;
            self.ecs.update_service(&self.cluster, service, &force).await?;
        }
        let deadline = tokio::time::Instant::now() + self.rollout_timeout;
        let mut pending: Vec<String> = self.secret.consumers.clone();
        while !pending.is_empty() {
            let states = self.ecs.describe_services(&self.cluster, &pending).await?;
            let mut still = Vec::new();
            for state in &states {
                match state.rollout(&state.task_definition) {
                    Rollout::Completed => {}
                    Rollout::Failed(reason) => {
                        return Err(StepError::Failed {
                            reason: format!("the new deployment of `{}` failed: {reason}", state.name),
                            facts: Facts::from([(CONSUMER_ROLLOUT_FAILED.to_owned(), json!(state.name))]),
                        })
                    }
                    Rollout::InProgress => still.push(state.name.clone()),
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "{} did not finish redeploying in {}",
                    pending.join(", "),
                    humantime::format_duration(self.rollout_timeout)
                )));
            }
            run.sleep(self.rollout_poll).await?;
        }
        Ok(StepEnd::Done(Facts::from([(
            "redeployed".to_owned(),
            json!(self.secret.consumers),
        )])))
    }

    /// Puts everything back as it was before the rotation: `AWSCURRENT` on the previous version, the
    /// downstream system on the previous value, no `AWSPENDING`, and consumers redeployed if they could
    /// have picked the new value up. Each change re-reads the labels first, so a resume of an interrupted
    /// undo converges.
    async fn undo(&self, run: &Run<'_>, op: &mut Operation, rotation: &dyn Rotation) -> Result<String, StepError> {
        let id = self.secret.id.clone();
        let token = Self::token(op);
        let undo_failed = |e: &dyn std::fmt::Display| {
            StepError::failed(format!(
                "undoing the rotation of `{id}` failed: {e}\nhint: `suma secrets status` shows the labels"
            ))
        };
        let Some(previous) = op.fact("previous_version").and_then(|v| v.as_str()).map(str::to_owned) else {
            // Nothing was created: `create` journals the previous version before it writes.
            return Ok("undone: nothing had been written".to_owned());
        };
        let meta = self.secrets.describe(&id).await.map_err(|e| undo_failed(&e))?;
        let labels = |v: &str| meta.versions.get(v).cloned().unwrap_or_default();
        let finished = labels(&token).iter().any(|l| l == AWSCURRENT);
        if finished {
            run.held()?;
            self.secrets
                .move_stage(&id, AWSCURRENT, &previous, Some(&token))
                .await
                .map_err(|e| undo_failed(&e))?;
        }
        // A `set` that failed at once changed nothing; one that succeeded must be undone; one a crash cut
        // short (in this attempt or an earlier one) may or may not have applied, so undoing it is attempted
        // and a failure only noted.
        let set = op.steps.iter().find(|s| s.name == "set");
        let succeeded = set.is_some_and(|s| s.status == StepStatus::Succeeded);
        let cut_short = set.is_some_and(|s| {
            s.status == StepStatus::Running || s.attempts.iter().any(|a| a.status != StepStatus::Failed)
        });
        let mut notes = Vec::new();
        if succeeded || cut_short {
            let current = self
                .read(&VersionRef::Id(previous.clone()))
                .await
                .map_err(|e| undo_failed(&e))?;
            let pending = self
                .read(&VersionRef::Id(token.clone()))
                .await
                .map_err(|e| undo_failed(&e))?;
            if let (Some(current), Some(pending)) = (current, pending) {
                run.held()?;
                match rotation.undo_set(&current, &pending).await {
                    Ok(()) => {}
                    Err(e) if !succeeded => {
                        notes.push(format!(
                            "undoing an interrupted `set` failed (it may not have applied): {e}"
                        ));
                    }
                    Err(e) => return Err(undo_failed(&e)),
                }
            }
        }
        if self
            .describe_has(&id, &token, AWSPENDING)
            .await
            .map_err(|e| undo_failed(&e))?
        {
            run.held()?;
            self.secrets
                .remove_stage(&id, AWSPENDING, &token)
                .await
                .map_err(|e| undo_failed(&e))?;
        }
        // Consumers may have started with the new value once it was current (in this run or one before).
        let was_current = finished || op.steps.iter().any(|s| s.name == "finish");
        if was_current {
            if let Err(StepError::Failed { reason, .. }) = self.redeploy_consumers(run).await {
                return Err(undo_failed(&reason));
            }
        }
        notes.push(format!(
            "undone: AWSCURRENT on `{previous}`, no AWSPENDING{}",
            if was_current { ", consumers redeployed" } else { "" }
        ));
        Ok(notes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_after(steps: &[(&str, Option<&str>)]) -> Operation {
        let secret: ManagedSecret =
            serde_json::from_value(json!({"id": "s", "kind": "random", "consumers": ["auth-service"]})).unwrap();
        let mut op = Operation::new(KIND, "staging", "t", plan(&secret, "c"));
        for (name, fact) in steps {
            let index = op.plan.iter().position(|p| p.name == *name).unwrap();
            op.start_step(index);
            if let Some(fact) = fact {
                op.steps
                    .last_mut()
                    .unwrap()
                    .facts
                    .insert((*fact).to_owned(), json!("auth-service"));
            }
        }
        op
    }

    #[test]
    fn what_follows_a_failure() {
        let index = |op: &Operation, name: &str| op.plan.iter().position(|p| p.name == name).unwrap();
        let before_finish = op_after(&[("create", None), ("set", None)]);
        assert_eq!(
            after_failure(&before_finish, index(&before_finish, "set")),
            OnFailure::RollBack
        );
        let rejected = op_after(&[
            ("create", None),
            ("finish", None),
            ("consumers", Some(CONSUMER_ROLLOUT_FAILED)),
        ]);
        assert_eq!(
            after_failure(&rejected, index(&rejected, "consumers")),
            OnFailure::RollBack,
            "the consumers cannot work with the new value: put the old one back"
        );
        let timed_out = op_after(&[("create", None), ("finish", None), ("consumers", None)]);
        assert_eq!(
            after_failure(&timed_out, index(&timed_out, "consumers")),
            OnFailure::Stop
        );
        let finish_failed = op_after(&[("create", None), ("finish", None)]);
        assert_eq!(
            after_failure(&finish_failed, index(&finish_failed, "finish")),
            OnFailure::Stop
        );
    }
}
