//! Rollback: fast, no analysis. The default target is the revision that was live before the last deploy
//! as the journal recorded it (not "current minus one"). [`prepare`] resolves and plans it reading only,
//! and [`Prepared::operation`] records the resolution in the operation, so a resume after a crash runs
//! exactly what was planned; [`execute`] runs it on the operation engine under the lock the caller holds
//! (the `rollback` command, or a runbook step); [`abort`] ends an interrupted one with all traffic on
//! stable; [`announce`] posts the Datadog event.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aws::ecs::{task_definition_label, Rollout, ServiceUpdate};
use crate::aws::elb::WeightedTarget;
use crate::aws::{AwsApis, AwsError};
use crate::config::Environment;
use crate::engine::{self, EngineError, Facts, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{Decision, Journal, JournalError, Operation, OperationStatus, PlannedStep};
use crate::metrics::datadog::EventAlert;
use crate::probe::HttpProbe;
use crate::report::Reporter;

pub const KIND: &str = "rollback";

/// Why a rollback could not be planned or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("service `{service}` not found in cluster `{cluster}`\nhint: check `ecs.service` and `ecs.cluster` of the environment")]
    ServiceNotFound { service: String, cluster: String },
    #[error("no successful deploy of `{environment}` is in the journal, so there is no recorded previous revision\nhint: name one with `--to family:N` or `--to repo:tag`")]
    NoPreviousDeploy { environment: String },
    #[error("deploy `{id}` recorded no previous revision\nhint: name one with `--to family:N` or `--to repo:tag`")]
    NoRecordedRevision { id: String },
    #[error("rollback target `{target}`: {source}")]
    Target { target: String, source: AwsError },
    #[error("rollback target `{label}` is {status}, not ACTIVE\nhint: pick an active revision (`aws ecs list-task-definitions --family-prefix {family}`)")]
    Inactive {
        label: String,
        status: String,
        family: String,
    },
    #[error("step `{at_step}` failed: {reason}")]
    Failed { at_step: String, reason: String },
    #[error("step `{at_step}` failed: {reason}\nthe rollback stopped there and keeps the lock\nhint: `suma rollback resume --env {environment}` tries it again; `suma rollback abort --env {environment}` ends it with all traffic on stable")]
    Stopped {
        at_step: String,
        reason: String,
        environment: String,
    },
    #[error("interrupted at `{at_step}`\nhint: `suma rollback resume --env {environment}` finishes it; `suma rollback abort --env {environment}` ends it with all traffic on stable")]
    Interrupted { at_step: String, environment: String },
    #[error("{reason}: {note}")]
    Undone { reason: String, note: String },
    #[error("the abort of rollback `{id}` stopped: {end}")]
    AbortStopped { id: String, end: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A rollback resolved before anything changes: from where, to what, and the plan.
pub struct Prepared {
    pub current: String,
    pub target: String,
    pub register_image: Option<String>,
    pub target_label: String,
    pub plan: Vec<PlannedStep>,
}

impl Prepared {
    /// A new rollback operation of `environment` carrying this resolution in its parameters.
    pub fn operation(&self, environment: &str, actor: &str, to: &str, reason: &str) -> Operation {
        let mut op = Operation::new(KIND, environment, actor, self.plan.clone());
        op.parameters.insert("to".to_owned(), json!(to));
        op.parameters.insert("reason".to_owned(), json!(reason));
        op.parameters.insert("current".to_owned(), json!(self.current));
        op.parameters.insert("target".to_owned(), json!(self.target));
        op.parameters
            .insert("register_image".to_owned(), json!(self.register_image));
        op.parameters
            .insert("target_label".to_owned(), json!(self.target_label));
        op
    }
}

/// Until when a superseded live runner may still act (`Locks::supersede_live`), if one was.
fn fenced_runner_until(op: &Operation) -> Option<chrono::DateTime<chrono::Utc>> {
    op.parameters
        .get(crate::journal::lock::FENCED_RUNNER_UNTIL)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn parameter(op: &Operation, key: &str) -> Option<String> {
    op.parameters.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Resolves `to` (`previous`, `family:N`, an ARN or an image) and plans the rollback; reads only.
pub async fn prepare(
    name: &str,
    env: &Environment,
    aws: &dyn AwsApis,
    journal: &Journal,
    to: &str,
) -> Result<Prepared, RollbackError> {
    let ecs = aws.ecs(&env.primary_region);
    let cfg = &env.ecs;

    let current = ecs
        .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| RollbackError::ServiceNotFound {
            service: cfg.service.clone(),
            cluster: cfg.cluster.clone(),
        })?
        .task_definition;

    // Resolve the target before anything changes.
    let (target, register_image) = match to {
        "previous" => {
            let last = journal
                .list(name, 100)
                .await?
                .into_iter()
                .find(|op| crate::canary::is_deploy(&op.kind) && op.status == OperationStatus::Succeeded)
                .ok_or_else(|| RollbackError::NoPreviousDeploy {
                    environment: name.to_owned(),
                })?;
            let previous = last
                .fact("stable_task_definition")
                .and_then(|v| v.as_str())
                .ok_or_else(|| RollbackError::NoRecordedRevision { id: last.id.clone() })?
                .to_owned();
            (previous, None)
        }
        to if to.starts_with("arn:")
            || to
                .rsplit_once(':')
                .is_some_and(|(f, r)| !f.contains('/') && r.parse::<u32>().is_ok()) =>
        {
            (to.to_owned(), None)
        }
        image => (String::new(), Some(image.to_owned())),
    };
    if register_image.is_none() {
        let td = ecs
            .describe_task_definition(&target)
            .await
            .map_err(|source| RollbackError::Target {
                target: target.clone(),
                source,
            })?;
        if td.status != "ACTIVE" {
            return Err(RollbackError::Inactive {
                label: task_definition_label(&td.arn).to_owned(),
                status: td.status,
                family: td.family,
            });
        }
    }
    let target_label = register_image
        .as_ref()
        .map_or_else(|| task_definition_label(&target).to_owned(), |i| format!("image {i}"));
    let plan = vec![
        PlannedStep {
            name: "record".to_owned(),
            detail: format!("record the live revision `{}`", task_definition_label(&current)),
        },
        PlannedStep {
            name: "restore-weights".to_owned(),
            detail: format!(
                "if a canary is in flight: weights stable 100 / canary 0, `{}` to 0",
                cfg.canary_service
            ),
        },
        PlannedStep {
            name: "update-stable".to_owned(),
            detail: format!("point `{}` at {target_label} and wait for the rollout", cfg.service),
        },
        PlannedStep {
            name: "verify".to_owned(),
            detail: env.url.as_ref().map_or("no URL configured: skipped".to_owned(), |u| {
                format!("GET {}/health and /version", u)
            }),
        },
    ];
    Ok(Prepared {
        current,
        target,
        register_image,
        target_label,
        plan,
    })
}

/// The steps of a rollback, as the engine runs them.
struct RollbackSteps<'a> {
    env: &'a Environment,
    aws: &'a dyn AwsApis,
    current: String,
    target: String,
    register_image: Option<String>,
    rollout_timeout: Duration,
}

#[async_trait]
impl Steps for RollbackSteps<'_> {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let ecs = self.aws.ecs(&self.env.primary_region);
        let cfg = &self.env.ecs;
        match op.plan[index].name.as_str() {
            "record" => {
                let mut facts = Facts::from([("previous_task_definition".to_owned(), json!(self.current))]);
                let target = match (&self.register_image, op.fact("target_task_definition")) {
                    // A resume reuses the revision an earlier attempt registered.
                    (Some(_), Some(registered)) => registered.as_str().unwrap_or_default().to_owned(),
                    (Some(image), None) => {
                        run.mutating()?;
                        ecs.register_revision(
                            &self.current,
                            &cfg.container,
                            &suma_core::contract::release(image, suma_core::contract::STABLE),
                        )
                        .await?
                        .arn
                    }
                    (None, _) => self.target.clone(),
                };
                facts.insert("target_task_definition".to_owned(), json!(target));
                Ok(StepEnd::Done(facts))
            }
            "restore-weights" => {
                let mut changed = self.restore_weights(run).await?;
                // A deploy's runner that was still alive when this rollback took its lock may make one last
                // change before it finds its lease gone: once it surely has, look again.
                if let Some(until) = fenced_runner_until(op) {
                    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                    if !wait.is_zero() {
                        run.reporter.info(&format!(
                            "traffic is on stable; checking it again in {}s, once the deploy's fenced-out runner has surely stopped",
                            wait.as_secs()
                        ));
                        run.sleep(wait).await?;
                    }
                    changed |= self.restore_weights(run).await?;
                }
                if changed {
                    Ok(StepEnd::Done(Facts::from([(
                        "canary_was_in_flight".to_owned(),
                        json!(true),
                    )])))
                } else {
                    Ok(StepEnd::skipped("no traffic on the canary", Facts::new()))
                }
            }
            "update-stable" => {
                let target = op
                    .fact("target_task_definition")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| StepError::failed("the journal has no rollback target"))?
                    .to_owned();
                let update = ServiceUpdate {
                    task_definition: Some(target.clone()),
                    desired_count: Some(cfg.desired_count as i32),
                    ..ServiceUpdate::default()
                };
                run.mutating()?;
                ecs.update_service(&cfg.cluster, &cfg.service, &update).await?;
                let deadline = tokio::time::Instant::now() + self.rollout_timeout;
                loop {
                    let service = ecs
                        .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
                        .await?;
                    match service.first().map(|s| s.rollout(&target)) {
                        Some(Rollout::Completed) => break,
                        Some(Rollout::Failed(reason)) => {
                            return Err(StepError::failed(format!(
                                "the rollout of `{}` failed: {reason}",
                                cfg.service
                            )))
                        }
                        _ if tokio::time::Instant::now() >= deadline => {
                            return Err(StepError::failed(format!(
                                "`{}` did not finish its rollout in time",
                                cfg.service
                            )))
                        }
                        _ => run.sleep(Duration::from_secs(5)).await?,
                    }
                }
                Ok(StepEnd::Done(Facts::new()))
            }
            "verify" => {
                let Some(url) = &self.env.url else {
                    return Ok(StepEnd::skipped("no URL configured", Facts::new()));
                };
                let probe = suma_http::ServiceClient::new(Duration::from_secs(5));
                let (health_url, version_url) = (url.join("/health"), url.join("/version"));
                let (health, version) = tokio::join!(
                    HttpProbe::get(&probe, &health_url),
                    HttpProbe::get(&probe, &version_url)
                );
                if !health.ok() {
                    return Err(StepError::Failed {
                        reason: format!(
                            "`{}` answered {} after the rollback",
                            health.url,
                            health
                                .status_code
                                .map_or_else(|| health.error.clone().unwrap_or_default(), |c| c.to_string())
                        ),
                        facts: Facts::from([("health".to_owned(), json!(health.status_code))]),
                    });
                }
                Ok(StepEnd::Done(Facts::from([
                    ("health".to_owned(), json!(health.status_code)),
                    ("version".to_owned(), json!(version.body)),
                ])))
            }
            other => Err(StepError::failed(format!("unknown step `{other}` in the journal"))),
        }
    }

    /// A rollback is itself the way back: a failed step ends it `failed`, and the person decides (another
    /// rollback target, or a fix forward). Except `restore-weights`: traffic may still be on a canary whose
    /// own operation this rollback superseded, so the rollback stops resumable and keeps the lock, and
    /// `resume` tries again or `abort` puts the traffic back; ending `failed` would leave that traffic
    /// with no operation that owns it.
    fn on_failure(&self, op: &Operation, index: usize) -> OnFailure {
        if op.plan[index].name == "restore-weights" {
            OnFailure::Stop
        } else {
            OnFailure::Fail
        }
    }

    /// A rollback is not rolled back (that would re-deploy what was rolled back from): an abort only makes
    /// sure no traffic is left on the canary, and leaves the stable service where the rollback took it.
    async fn undo(&self, run: &Run<'_>, _: &mut Operation, _: &Decision) -> Result<String, StepError> {
        let canary_had_traffic = self.restore_weights(run).await?;
        Ok(if canary_had_traffic {
            "all traffic put back on stable and the canary scaled to 0; the stable service is left as it is"
        } else {
            "no traffic was on the canary; the stable service is left as it is"
        }
        .to_owned())
    }
}

impl<'a> RollbackSteps<'a> {
    /// The steps of `op`, from what [`Prepared::operation`] recorded in it.
    fn of(env: &'a Environment, aws: &'a dyn AwsApis, op: &Operation, rollout_timeout: Duration) -> Self {
        Self {
            env,
            aws,
            current: parameter(op, "current").unwrap_or_default(),
            target: parameter(op, "target").unwrap_or_default(),
            register_image: parameter(op, "register_image"),
            rollout_timeout,
        }
    }
}

impl RollbackSteps<'_> {
    /// Weights stable 100 / canary 0 if the canary has traffic, then the canary service to 0 if it runs.
    /// Each half is judged from the world, not from the other: a crash between the two leaves weights
    /// restored and the canary up, and a resume must still scale it down. Whether anything changed.
    async fn restore_weights(&self, run: &Run<'_>) -> Result<bool, StepError> {
        let elb = self.aws.elb(&self.env.primary_region);
        let weights = elb.rule_weights(self.env.alb.rule_arn.as_str()).await?;
        let canary = self.env.alb.canary_target_group_arn.as_str();
        let mut changed = false;
        if weights.iter().any(|w| w.target_group_arn == canary && w.weight > 0) {
            let targets = [
                WeightedTarget {
                    target_group_arn: self.env.alb.stable_target_group_arn.to_string(),
                    weight: 100,
                },
                WeightedTarget {
                    target_group_arn: canary.to_owned(),
                    weight: 0,
                },
            ];
            run.held()?;
            elb.set_weights(self.env.alb.rule_arn.as_str(), &targets).await?;
            changed = true;
        }
        let cfg = &self.env.ecs;
        let ecs = self.aws.ecs(&self.env.primary_region);
        let services = ecs
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.canary_service))
            .await?;
        if services.first().is_some_and(|s| s.desired > 0) {
            let zero = ServiceUpdate {
                desired_count: Some(0),
                ..ServiceUpdate::default()
            };
            run.held()?;
            ecs.update_service(&cfg.cluster, &cfg.canary_service, &zero).await?;
            changed = true;
        }
        Ok(changed)
    }
}

/// Runs (or resumes) the rollback `op` (holding `guard`'s lock) on the operation engine; the error says
/// which step failed and why.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    env: &Environment,
    aws: &dyn AwsApis,
    journal: &Journal,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
    op: &mut Operation,
    guard: &LockGuard,
    rollout_timeout: Duration,
) -> Result<(), RollbackError> {
    let steps = RollbackSteps::of(env, aws, op, rollout_timeout);
    let run = Run::new(journal, guard, reporter, cancel);
    match engine::drive(&steps, &run, op).await? {
        RunEnd::Completed => Ok(()),
        RunEnd::Failed { at_step, reason } => Err(RollbackError::Failed { at_step, reason }),
        RunEnd::Stopped { at_step, reason } => Err(RollbackError::Stopped {
            at_step,
            reason,
            environment: op.environment.clone(),
        }),
        RunEnd::Interrupted { at_step } => Err(RollbackError::Interrupted {
            at_step,
            environment: op.environment.clone(),
        }),
        RunEnd::Undone { decision, note } => Err(RollbackError::Undone {
            reason: decision.reason,
            note,
        }),
    }
}

/// Ends an interrupted rollback: all traffic back on stable and the canary at zero; the stable service
/// is left where the rollback had taken it. Returns the journal's note.
#[allow(clippy::too_many_arguments)]
pub async fn abort(
    env: &Environment,
    aws: &dyn AwsApis,
    journal: &Journal,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
    op: &mut Operation,
    guard: &LockGuard,
    by: &str,
) -> Result<String, RollbackError> {
    let steps = RollbackSteps::of(env, aws, op, Duration::ZERO);
    let run = Run::new(journal, guard, reporter, cancel);
    match engine::abort(&steps, &run, op, by).await? {
        RunEnd::Undone { note, .. } => Ok(note),
        other => Err(RollbackError::AbortStopped {
            id: op.id.clone(),
            end: format!("{other:?}"),
        }),
    }
}

/// The Datadog event of a finished rollback (a failed post is a warning).
pub async fn announce(name: &str, env: &Environment, reporter: &dyn Reporter, op: &Operation, succeeded: bool) {
    let cfg = &env.ecs;
    let target_label = parameter(op, "target_label").unwrap_or_default();
    let reason = parameter(op, "reason").unwrap_or_default();
    let current = parameter(op, "current").unwrap_or_default();
    let target = op
        .fact("target_task_definition")
        .and_then(|v| v.as_str())
        .map_or_else(|| parameter(op, "target").unwrap_or_default(), str::to_owned);
    let (title, alert) = if succeeded {
        (
            format!("{} rolled back to {target_label} on {name}", cfg.service),
            EventAlert::Warning,
        )
    } else {
        (
            format!("{} rollback to {target_label} on {name} failed", cfg.service),
            EventAlert::Error,
        )
    };
    let text = format!(
        "reason: {reason}\nby: {}\nfrom: {}\nto: {}\noperation: {}",
        op.actor, current, target, op.id
    );
    let tags = [
        format!("service:{}", cfg.service),
        format!("env:{name}"),
        "source:suma".to_owned(),
    ];
    crate::events::post(env, reporter, &title, &text, &tags, alert).await;
}

#[cfg(test)]
mod tests;
