//! The canary deployment engine: register a revision with the new image, bring the canary service up,
//! shift traffic progressively (e.g. 10% → 50%) while analysing metrics, then promote; on any failure put
//! the weights back to stable first (blast radius first), then scale the canary to zero.
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
use crate::engine::{self, Control, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{DecisionKind, Journal, Operation, PlannedStep, StepStatus};
use crate::metrics::analysis::{decide, judge, with_alerting_monitors, AnalysisState, Decision, TickVerdict};
use crate::metrics::step_gate::{step_ending, StepEnding, StepProgress};
use crate::metrics::{measure, query_set, MetricSource, QueryVars, Side};
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
    steps
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

/// The canary tasks a traffic share needs, as Argo Rollouts sizes a canary: `ceil(stable running ×
/// weight)`, never below the configured canary count nor 1.
pub fn canary_tasks(stable_running: i32, weight: u8, canary_count: u32) -> i32 {
    let share = (f64::from(stable_running.max(0)) * f64::from(weight) / 100.0).ceil() as i32;
    share.max(canary_count as i32).max(1)
}

/// The longest a 429's `Retry-After` delays the next analysis: a provider asking for more must not
/// leave a canary unwatched for long.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// The verdicts of journaled analysis ticks (a step's `ticks` fact), oldest first.
fn verdicts_of(ticks: &[serde_json::Value]) -> Vec<TickVerdict> {
    ticks
        .iter()
        .filter_map(|t| serde_json::from_value(t.get("verdict")?.clone()).ok())
        .collect()
}

/// Every analysis verdict journaled by `steps`, oldest first.
fn journaled_verdicts<'a>(steps: impl Iterator<Item = &'a suma_core::operation::StepRecord>) -> Vec<TickVerdict> {
    steps
        .filter_map(|s| s.facts.get("ticks").and_then(|t| t.as_array()))
        .flat_map(|ticks| verdicts_of(ticks))
        .collect()
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

    /// Traffic goes back to stable before the run stops: nobody is watching the analysis any more.
    async fn on_interrupt(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<Option<String>, StepError> {
        let splits_traffic = op.plan[index].name.starts_with("shift-") || op.plan[index].name == "promote";
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
        let up = op
            .steps
            .iter()
            .any(|s| s.name == "canary-up" && s.status == StepStatus::Succeeded);
        up.then(|| op.plan.len() - 1)
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

    fn version_of(image: &str) -> String {
        image.rsplit_once(':').map_or("latest", |(_, tag)| tag).to_owned()
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

    async fn shift(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        weight: u8,
        duration: Duration,
    ) -> Result<StepEnd, StepError> {
        self.scale_canary_for(run, op, weight).await?;
        run.mutating()?;
        self.set_weights(weight).await?;
        self.reporter.info(&format!(
            "canary at {weight}% for {}",
            humantime::format_duration(duration)
        ));
        let policy = &self.env.canary;
        let analysis = crate::metrics::analysis::AnalysisPolicy::of(policy);
        let queries = query_set(self.env.metrics.provider, policy);
        let vars = QueryVars {
            env: self.environment.clone(),
            service: self.env.ecs.service.clone(),
            window: policy.window,
        };
        let canary = Side {
            deployment: "canary".to_owned(),
            version: Self::version_of(&Self::image(op)),
        };
        let stable_image = op
            .fact("stable_image")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let stable = Side {
            deployment: "stable".to_owned(),
            version: Self::version_of(&stable_image),
        };
        // The failure budget is the operation's: every analysis journaled so far (earlier steps, and
        // this step's earlier attempts, whose facts a restart keeps) has spent its share.
        let mut state = AnalysisState::replay(&analysis, &journaled_verdicts(op.steps.iter()));
        let step_name = op.steps.last().map_or(String::new(), |s| s.name.clone());
        let mut ticks: Vec<serde_json::Value> = op
            .steps
            .last()
            .and_then(|s| s.facts.get("ticks"))
            .and_then(|t| t.as_array())
            .cloned()
            .unwrap_or_default();
        let mut progress = StepProgress::of(&verdicts_of(&ticks));
        // Analysing on after the step's time is up: at most as many analyses again as the step holds.
        let extra_allowed = (duration.as_secs_f64() / policy.interval.as_secs_f64()).ceil().max(1.0) as u32;
        let mut extra = 0u32;
        let mut said_extra = false;
        let started = tokio::time::Instant::now();
        let mut paused = false;
        // After a 429 the next measurement waits, but control commands are still read every interval.
        let mut measure_after = tokio::time::Instant::now();
        loop {
            if !paused && started.elapsed() >= duration {
                match step_ending(&step_name, progress, analysis.min_analyses, extra >= extra_allowed) {
                    StepEnding::Advance => break,
                    StepEnding::KeepAnalysing { why } => {
                        if !said_extra {
                            said_extra = true;
                            self.reporter.warn(&format!(
                                "{step_name}: the time is up but {why}: analysing on before any more traffic"
                            ));
                        }
                    }
                    StepEnding::RollBack { reason } => {
                        return Err(StepError::Decided(crate::journal::Decision::new(
                            DecisionKind::RollBack,
                            reason,
                            &op.actor,
                        )))
                    }
                }
            }
            run.sleep(policy.interval).await?;
            match run.control().await? {
                Some(Control::Abort { by }) => {
                    return Err(StepError::Decided(crate::journal::Decision::new(
                        DecisionKind::Abort,
                        format!("aborted by {by}"),
                        &by,
                    )))
                }
                Some(Control::Promote { by }) => {
                    op.note(&by, "promoted");
                    let facts = BTreeMap::from([
                        ("ticks".to_owned(), json!(ticks)),
                        ("promoted_by".to_owned(), json!(by)),
                    ]);
                    return Ok(StepEnd::JumpTo {
                        index: op.plan.len() - 1,
                        why: format!("promoted by {by}"),
                        facts,
                    });
                }
                Some(Control::Pause { by }) => {
                    paused = true;
                    op.note(&by, "paused");
                    self.reporter.warn(&format!(
                        "paused by {by}; `suma deploy resume|abort|promote --env {}`",
                        self.environment
                    ));
                }
                Some(Control::Resume { by }) => {
                    paused = false;
                    op.note(&by, "resumed");
                    self.reporter.info(&format!("resumed by {by}"));
                }
                None => {}
            }
            if paused || tokio::time::Instant::now() < measure_after {
                continue;
            }
            if started.elapsed() >= duration {
                extra += 1;
            }
            let measurements = measure(
                self.metrics.as_ref(),
                &queries,
                &vars,
                &canary,
                policy.baseline.as_ref().map(|_| &stable),
            )
            .await;
            let verdict = with_alerting_monitors(judge(&analysis, &measurements), &self.alerting_gates().await);
            let decision = decide(&analysis, &mut state, &verdict);
            progress.observe(&verdict);
            self.reporter
                .info(&tick_line(weight, &measurements, &verdict, &decision));
            let left = duration.saturating_sub(started.elapsed());
            self.reporter
                .live(&live_line(&step_name, weight, left, &measurements, &verdict));
            ticks.push(json!({
                "at": chrono::Utc::now(),
                "weight": weight,
                "measurements": measurements,
                "verdict": verdict,
                "decision": decision,
            }));
            // Every measurement is in the journal before anything acts on it. A failed write is retried
            // with the next tick; a fenced one means the lock is gone, and the run stops.
            match run
                .record(op, BTreeMap::from([("ticks".to_owned(), json!(ticks))]))
                .await
            {
                Err(StepError::Interrupted) => return Err(StepError::Interrupted),
                Err(e) => tracing::warn!(error = ?e, "cannot record the analysis tick"),
                Ok(()) => {}
            }
            match decision {
                Decision::Continue => {
                    if let TickVerdict::RateLimited { retry_after_secs } = verdict {
                        let wait = Duration::from_secs(retry_after_secs).min(MAX_RATE_LIMIT_WAIT);
                        measure_after = tokio::time::Instant::now() + wait.saturating_sub(policy.interval);
                    }
                }
                Decision::Pause { reason } => {
                    paused = true;
                    self.reporter.warn(&format!(
                        "{reason}: paused; decide with `suma deploy resume|abort|promote --env {}`",
                        self.environment
                    ));
                }
                Decision::Rollback { reason } => {
                    return Err(StepError::Decided(crate::journal::Decision::new(
                        DecisionKind::RollBack,
                        reason,
                        &op.actor,
                    )))
                }
            }
        }
        Ok(StepEnd::Done(BTreeMap::from([("ticks".to_owned(), json!(ticks))])))
    }

    /// The gating monitors alerting now; one that cannot be read is a warning (the metrics still judge).
    async fn alerting_gates(&self) -> Vec<String> {
        let Some(gates) = &self.gates else {
            return Vec::new();
        };
        gates.alerting().await.unwrap_or_else(|e| {
            self.reporter
                .warn(&format!("cannot read the gating monitors this analysis: {e}"));
            Vec::new()
        })
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

/// The journal event recorded the moment a rollback has put all traffic back on stable.
pub const WEIGHTS_RESTORED: &str = "weights restored: stable 100 / canary 0";

mod report;
#[cfg(test)]
mod tests;

use report::{live_line, tick_line};
pub use report::{summary, RunSummary};
