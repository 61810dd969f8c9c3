//! The canary deployment engine: register a revision with the new image, bring the canary service up,
//! shift traffic progressively (e.g. 10% → 50%) while analysing metrics, then promote; on any failure put
//! the weights back to stable first (blast radius first), then scale the canary to zero. Blue/green
//! ([`bluegreen`]) runs on the same engine with its own steps.
//!
//! Every step is journaled under the environment lock, so a crash leaves a record that `suma deploy
//! status` explains and `resume` or `abort` finishes from any machine. Commands from other terminals
//! (`pause`, `resume`, `abort`, `promote`) arrive through the lock table's control item between ticks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aws::ecs::{Rollout, ServiceUpdate};
use crate::aws::elb::WeightedTarget;
use async_trait::async_trait;

use crate::aws::{AwsApis, AwsError};
use crate::config::Environment;
use crate::engine::{self, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{DecisionKind, Journal, Operation, PlannedStep, StepStatus};
use crate::metrics::MetricSource;
use crate::report::Reporter;
use crate::taskdef::TaskDefinitionSpec;
use suma_core::contract;
use suma_core::taskdef::ContainerChange;

pub const KIND: &str = "canary-deploy";

/// The operation parameter holding the task definition a templated deploy registers.
pub const TEMPLATE_PARAMETER: &str = "task_definition";

/// What to deploy.
#[derive(Debug, Clone, Serialize)]
pub struct DeployRequest {
    pub image: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Promoted,
    RolledBack {
        reason: String,
    },
    Aborted {
        by: String,
    },
    /// Ctrl-C or a lost lease: the journal shows where; `resume` or `abort` finishes it.
    Interrupted {
        at_step: String,
    },
}

pub use crate::engine::EngineError;

/// The step list for a deploy of `image` on `env`.
pub fn plan(environment: &str, env: &Environment, image: &str) -> Vec<PlannedStep> {
    plan_with(environment, env, image, None)
}

/// The step list for a deploy of `image` on `env`, registering the task definition rendered from
/// `template` when given instead of a copy of the stable revision.
pub fn plan_with(
    environment: &str,
    env: &Environment,
    image: &str,
    template: Option<&std::path::Path>,
) -> Vec<PlannedStep> {
    let ecs = &env.ecs;
    let register = match template {
        None => format!(
            "register a revision of `{}`'s task definition with image `{image}`",
            ecs.service
        ),
        Some(path) => format!(
            "register the task definition rendered from `{}` with image `{image}`",
            path.display()
        ),
    };
    let mut steps = vec![
        PlannedStep {
            name: "register".to_owned(),
            detail: register,
        },
        PlannedStep {
            name: "canary-up".to_owned(),
            detail: format!(
                "point `{}` at it with {} task(s) and wait for the rollout",
                ecs.canary_service, ecs.canary_count
            ),
        },
    ];
    if let Some(hooks) = hooks::hooks_detail(env, hooks::Stage::PreTraffic) {
        steps.push(PlannedStep {
            name: "pre-traffic".to_owned(),
            detail: format!("{hooks}, before any traffic"),
        });
    }
    for step in &env.canary.steps {
        steps.push(PlannedStep {
            name: format!("shift-{}", step.weight),
            detail: format!(
                "canary {}% / stable {}% for {}, analysis every {}",
                step.weight,
                100 - step.weight,
                humantime::format_duration(step.duration),
                humantime::format_duration(env.canary.interval)
            ),
        });
    }
    steps.push(PlannedStep {
        name: "promote".to_owned(),
        detail: format!(
            "point `{}` at the new revision, wait, weights stable 100 / canary 0, `{}` to 0 ({environment})",
            ecs.service, ecs.canary_service
        ),
    });
    steps.extend(hooks::post_promote_step(env));
    steps
}

/// Whether the new release of deploy `op` came up (the canary service, or green): before, there is
/// nothing to promote.
pub fn came_up(op: &Operation) -> bool {
    op.steps
        .iter()
        .any(|s| (s.name == "canary-up" || s.name == "green-up") && s.status == StepStatus::Succeeded)
}

/// The release an image reference names: its tag (`latest` without one), as `/version` reports it and
/// metrics and events are tagged.
pub fn version_of(image: &str) -> String {
    image.rsplit_once(':').map_or("latest", |(_, tag)| tag).to_owned()
}

/// Where `op`'s promotion is in its plan: a person's `promote` jumps there.
pub fn promote_index(op: &Operation) -> usize {
    op.plan
        .iter()
        .position(|s| s.name == "promote")
        .unwrap_or(op.plan.len().saturating_sub(1))
}

/// Everything the engine talks to.
pub struct Engine {
    pub environment: String,
    pub env: Environment,
    pub aws: Arc<dyn AwsApis>,
    pub metrics: Arc<dyn MetricSource>,
    pub journal: Journal,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: CancellationToken,
    pub rollout_timeout: Duration,
    pub rollout_poll: Duration,
    /// The monitors that gate the canary, read at every analysis; `None` without Datadog.
    pub gates: Option<Arc<dyn GateWatch>>,
    /// Told when the deploy pauses (the command tells start and the outcome).
    pub notifier: crate::notify::Notifier,
    /// Runs the runbook hooks; `None` fails each with the reason.
    pub runbook_hooks: Option<Arc<dyn hooks::RunbookHooks>>,
}

/// The gating monitors (`auto-rollback:true` and the environment's tags) as the canary watches them.
#[async_trait]
pub trait GateWatch: Send + Sync {
    /// The gating monitors now alerting, each as "`name` (#id)".
    async fn alerting(&self) -> Result<Vec<String>, String>;
}

impl Engine {
    fn run_with<'a>(&'a self, guard: &'a LockGuard) -> Run<'a> {
        Run::new(&self.journal, guard, self.reporter.as_ref(), &self.cancel)
    }

    /// Runs (or resumes) `op` from its first unfinished step, or carries on the rollback it decided. The
    /// caller holds `guard`.
    pub async fn run(&self, op: &mut Operation, guard: &LockGuard) -> Result<Outcome, EngineError> {
        let end = engine::drive(self, &self.run_with(guard), op).await?;
        Ok(outcome(end))
    }

    /// Aborts `op` (weights first, then the canary to zero, then stable back if the promotion began).
    pub async fn abort(&self, op: &mut Operation, guard: &LockGuard, by: &str) -> Result<Outcome, EngineError> {
        let end = engine::abort(self, &self.run_with(guard), op, by).await?;
        Ok(outcome(end))
    }
}

fn outcome(end: RunEnd) -> Outcome {
    match end {
        RunEnd::Completed => Outcome::Promoted,
        RunEnd::Undone { decision, .. } if decision.kind == DecisionKind::Abort => Outcome::Aborted { by: decision.by },
        RunEnd::Undone { decision, .. } => Outcome::RolledBack {
            reason: decision.reason,
        },
        RunEnd::Interrupted { at_step } => Outcome::Interrupted { at_step },
        // A canary never stops half-way: its failures roll back. These two cannot happen; reported as
        // what they would mean.
        RunEnd::Stopped { reason, .. } | RunEnd::Failed { reason, .. } => Outcome::RolledBack { reason },
    }
}

#[async_trait]
impl Steps for Engine {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let name = op.plan[index].name.clone();
        match name.as_str() {
            "register" => self.register(run, op).await,
            "canary-up" => self.canary_up(run, op).await,
            "green-up" => self.green_up(run, op).await,
            "pre-traffic" => self.pre_traffic(run, op).await,
            "post-promote" => self.post_promote(run, op).await,
            "cutover" => self.shift(run, op, 100, self.env.bluegreen.bake).await,
            "keep-blue" => self.shift(run, op, 100, self.env.bluegreen.keep_blue).await,
            "promote" => self.promote(run, op).await,
            shift => {
                let weight: u8 = shift.trim_start_matches("shift-").parse().unwrap_or_default();
                let duration = self
                    .env
                    .canary
                    .steps
                    .iter()
                    .find(|s| s.weight == weight)
                    .map_or(self.env.canary.interval, |s| s.duration);
                self.shift(run, op, weight, duration).await
            }
        }
    }

    fn on_failure(&self, _: &Operation, _: usize) -> OnFailure {
        OnFailure::RollBack
    }

    async fn undo(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        decision: &crate::journal::Decision,
    ) -> Result<String, StepError> {
        self.roll_back(run, op, &decision.reason).await
    }

    /// Traffic goes back to stable before the run stops: nobody is watching the analysis any more. Except
    /// in a blue/green promotion: green serves everything at full capacity while blue is mid-rollout to
    /// the same release, so the traffic stays on green and `resume` finishes the promotion.
    async fn on_interrupt(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<Option<String>, StepError> {
        let name = op.plan[index].name.as_str();
        let splits_traffic = name.starts_with("shift-")
            || name == "cutover"
            || name == "keep-blue"
            || (name == "promote" && Strategy::of(&op.kind) == Strategy::Canary);
        if !splits_traffic {
            return Ok(None);
        }
        run.held()?;
        self.set_weights(0).await?;
        Ok(Some(format!(
            "interrupted in `{}`: {WEIGHTS_RESTORED}",
            op.plan[index].name
        )))
    }

    fn promote_index(&self, op: &Operation) -> Option<usize> {
        // Only once the canary is up: before, there is nothing to promote.
        came_up(op).then(|| promote_index(op))
    }
}

impl Engine {
    fn image(op: &Operation) -> String {
        op.parameters
            .get("image")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    async fn register(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let ecs = self.aws.ecs(&self.env.primary_region);
        let cfg = &self.env.ecs;
        let stable = ecs
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
            .await?;
        let stable_td = stable.first().map(|s| s.task_definition.clone()).unwrap_or_default();
        let image = Self::image(op);
        // Resuming after a crash: reuse the revision registered before (idempotent).
        if let Some(existing) = op.fact("canary_task_definition").and_then(|v| v.as_str()) {
            return Ok(StepEnd::Done(BTreeMap::from([(
                "canary_task_definition".to_owned(),
                json!(existing),
            )])));
        }
        // The rollback target is on record before anything is registered; a resume keeps the first one.
        if op.fact("stable_task_definition").is_none() {
            run.record(
                op,
                BTreeMap::from([("stable_task_definition".to_owned(), json!(stable_td))]),
            )
            .await?;
        }
        let stable_td = op
            .fact("stable_task_definition")
            .and_then(|v| v.as_str())
            .unwrap_or(&stable_td)
            .to_owned();
        let stable_image = ecs
            .describe_task_definition(&stable_td)
            .await?
            .containers
            .iter()
            .find(|c| c.name == cfg.container)
            .map(|c| c.image.clone())
            .unwrap_or_default();
        // Two revisions of one release: the one stable runs after promotion, and the canary's, which
        // differs only in its label (so the canary's metrics are told apart and promotion does not
        // label stable tasks `canary`). A deploy from a template carries the rendered task definition in
        // its parameters (rendered and validated before the operation started, so a resume registers
        // exactly what was planned).
        let (release, canary) = match op.parameters.get(TEMPLATE_PARAMETER) {
            Some(rendered) => {
                let spec: TaskDefinitionSpec = serde_json::from_value(rendered.clone()).map_err(|e| {
                    StepError::failed(format!("the operation's rendered task definition cannot be read: {e}"))
                })?;
                let mut canary_spec = spec.clone();
                canary_spec.change_container(
                    &cfg.container,
                    &ContainerChange::variable(contract::DEPLOYMENT_LABEL, contract::CANARY),
                );
                run.mutating()?;
                let release = ecs.register_task_definition(&spec).await?;
                run.mutating()?;
                (release, ecs.register_task_definition(&canary_spec).await?)
            }
            None => {
                run.mutating()?;
                let release = ecs
                    .register_revision(&stable_td, &cfg.container, &contract::release(&image, contract::STABLE))
                    .await?;
                run.mutating()?;
                let canary = ecs
                    .register_revision(&stable_td, &cfg.container, &contract::release(&image, contract::CANARY))
                    .await?;
                (release, canary)
            }
        };
        Ok(StepEnd::Done(BTreeMap::from([
            // The rollback target: what was live before this deploy.
            ("stable_task_definition".to_owned(), json!(stable_td)),
            ("stable_image".to_owned(), json!(stable_image)),
            ("canary_task_definition".to_owned(), json!(canary.arn)),
            ("release_task_definition".to_owned(), json!(release.arn)),
        ])))
    }

    /// The revision stable runs once promoted; a journal from before releases had their own revision
    /// promotes the canary's.
    fn release_td(op: &Operation) -> String {
        op.fact("release_task_definition")
            .and_then(|v| v.as_str())
            .map_or_else(|| Self::canary_td(op), str::to_owned)
    }

    fn canary_td(op: &Operation) -> String {
        op.fact("canary_task_definition")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    async fn canary_up(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let cfg = &self.env.ecs;
        let td = Self::canary_td(op);
        let update = ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(cfg.canary_count as i32),
            force_new_deployment: false,
        };
        run.mutating()?;
        self.aws
            .ecs(&self.env.primary_region)
            .update_service(&cfg.cluster, &cfg.canary_service, &update)
            .await?;
        self.wait_rollout(run, &cfg.canary_service, &td).await?;
        Ok(StepEnd::Done(BTreeMap::new()))
    }

    /// Gives the canary the tasks its share of traffic needs before it gets that share: as many as
    /// [`canary_tasks`] says, never fewer than it has. Re-reads both services, so a resume converges.
    async fn scale_canary_for(&self, run: &Run<'_>, op: &Operation, weight: u8) -> Result<(), StepError> {
        let cfg = &self.env.ecs;
        let ecs = self.aws.ecs(&self.env.primary_region);
        let live = ecs
            .describe_services(&cfg.cluster, &[cfg.service.clone(), cfg.canary_service.clone()])
            .await?;
        let count =
            |name: &str, f: fn(&crate::aws::ecs::EcsService) -> i32| live.iter().find(|s| s.name == name).map_or(0, f);
        let needed = canary_tasks(count(&cfg.service, |s| s.running), weight, cfg.canary_count);
        if count(&cfg.canary_service, |s| s.desired) >= needed {
            return Ok(());
        }
        let update = ServiceUpdate {
            desired_count: Some(needed),
            ..ServiceUpdate::default()
        };
        run.mutating()?;
        ecs.update_service(&cfg.cluster, &cfg.canary_service, &update).await?;
        self.reporter.info(&format!(
            "`{}` scaled to {needed} task(s) for {weight}% of the traffic",
            cfg.canary_service
        ));
        self.wait_rollout(run, &cfg.canary_service, &Self::canary_td(op)).await
    }

    async fn wait_rollout(&self, run: &Run<'_>, service: &str, td: &str) -> Result<(), StepError> {
        let ecs = self.aws.ecs(&self.env.primary_region);
        let deadline = tokio::time::Instant::now() + self.rollout_timeout;
        loop {
            let found = ecs
                .describe_services(&self.env.ecs.cluster, &[service.to_owned()])
                .await?;
            match found.first().map(|s| s.rollout(td)) {
                Some(Rollout::Completed) => return Ok(()),
                Some(Rollout::Failed(reason)) => {
                    return Err(StepError::failed(format!(
                        "the ECS deployment of `{service}` failed (circuit breaker): {reason}"
                    )))
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "`{service}` did not finish its rollout within {}",
                    humantime::format_duration(self.rollout_timeout)
                )));
            }
            run.sleep(self.rollout_poll).await?;
        }
    }

    async fn set_weights(&self, canary_weight: u8) -> Result<(), AwsError> {
        let alb = &self.env.alb;
        let targets = [
            WeightedTarget {
                target_group_arn: alb.stable_target_group_arn.to_string(),
                weight: 100 - i32::from(canary_weight),
            },
            WeightedTarget {
                target_group_arn: alb.canary_target_group_arn.to_string(),
                weight: i32::from(canary_weight),
            },
        ];
        self.aws
            .elb(&self.env.primary_region)
            .set_weights(alb.rule_arn.as_str(), &targets)
            .await
    }

    async fn promote(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let cfg = &self.env.ecs;
        let td = Self::release_td(op);
        let ecs = self.aws.ecs(&self.env.primary_region);
        // Promotion brings stable to production capacity at least, and never below what it runs now:
        // autoscaling may have grown it, and a fixed count would shrink it in the middle of a deploy.
        let live = ecs
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
            .await?;
        let desired = live.first().map_or(0, |s| s.desired).max(cfg.desired_count as i32);
        let update = ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(desired),
            force_new_deployment: false,
        };
        run.mutating()?;
        ecs.update_service(&cfg.cluster, &cfg.service, &update).await?;
        self.wait_rollout(run, &cfg.service, &td).await?;
        run.mutating()?;
        self.set_weights(0).await?;
        let scale_down = ServiceUpdate {
            task_definition: None,
            desired_count: Some(0),
            force_new_deployment: false,
        };
        run.mutating()?;
        ecs.update_service(&cfg.cluster, &cfg.canary_service, &scale_down)
            .await?;
        Ok(StepEnd::Done(BTreeMap::from([(
            "live_task_definition".to_owned(),
            json!(td),
        )])))
    }

    /// The post-promote hooks; a failure rolls back (the undo puts the recorded revision back on stable).
    async fn post_promote(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let hooks = self.run_hooks(run, op, hooks::Stage::PostPromote).await?;
        let facts = BTreeMap::from([(hooks::HOOKS.to_owned(), json!(hooks.results))]);
        match hooks.failure {
            Some(reason) => Err(StepError::Failed { reason, facts }),
            None => Ok(StepEnd::Done(facts)),
        }
    }

    /// Weights back to stable first (blast radius), then the canary to zero, then stable back to the
    /// revision recorded before the deploy if the promotion had begun. Each change re-reads the world
    /// first, so a resume of an interrupted rollback converges instead of redoing. The weights' restore is
    /// its own journal event, so its time is on record (`cargo xtask bench canary` measures up to it).
    async fn roll_back(&self, run: &Run<'_>, op: &mut Operation, reason: &str) -> Result<String, StepError> {
        let actor = run.guard.holder().to_owned();
        run.held()?;
        self.set_weights(0).await?;
        if !op.events.iter().any(|e| e.message == WEIGHTS_RESTORED) {
            op.note(&actor, WEIGHTS_RESTORED);
            run.save(op).await?;
        }
        let cfg = &self.env.ecs;
        let ecs = self.aws.ecs(&self.env.primary_region);
        let scale_down = ServiceUpdate {
            desired_count: Some(0),
            ..ServiceUpdate::default()
        };
        run.held()?;
        ecs.update_service(&cfg.cluster, &cfg.canary_service, &scale_down)
            .await?;
        let mut restored = String::new();
        if let Some(previous) = op
            .fact("stable_task_definition")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
        {
            let live = ecs
                .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
                .await?;
            if live.first().is_some_and(|s| s.task_definition != previous) {
                let restore = ServiceUpdate {
                    task_definition: Some(previous.clone()),
                    ..ServiceUpdate::default()
                };
                run.held()?;
                ecs.update_service(&cfg.cluster, &cfg.service, &restore).await?;
                restored = format!(", `{}` restored to `{previous}`", cfg.service);
            }
        }
        Ok(format!(
            "rolled back: `{}` scaled to 0{restored}; reason: {reason}",
            cfg.canary_service
        ))
    }
}

/// The fact a traffic step journals its analysis ticks under.
const TICKS: &str = "ticks";

/// The analysis ticks `step` journaled (none for a step that is not a traffic step), oldest first.
fn ticks_of(step: &suma_core::operation::StepRecord) -> &[serde_json::Value] {
    step.facts
        .get(TICKS)
        .and_then(|t| t.as_array())
        .map_or(&[], Vec::as_slice)
}

/// The journal event recorded the moment a rollback has put all traffic back on stable.
pub const WEIGHTS_RESTORED: &str = "weights restored: stable 100 / canary 0";

pub mod bluegreen;
pub mod hooks;
mod report;
mod shift;
mod strategy;
#[cfg(test)]
mod tests;

pub use report::{summary, RunSummary};
pub use shift::canary_tasks;
pub use strategy::{is_deploy, Strategy};
