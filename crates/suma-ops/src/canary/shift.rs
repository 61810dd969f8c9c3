//! A traffic step of the canary: the canary sized for its share, the weights moved, then an analysis
//! every interval (the metrics judged, the gating monitors read, the operation's failure budget rebuilt
//! from the journal, control commands read) until the step may advance, rolls back, or is promoted or
//! aborted by a person.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::hooks::{Stage, HOOKS};
use super::report::{live_line, tick_line};
use super::{ticks_of, Engine, TICKS};
use crate::config::NotificationEvent;
use crate::engine::{Control, Run, StepEnd, StepError};
use crate::journal::{DecisionKind, Operation};
use crate::metrics::analysis::{decide, judge_scored, with_alerting_monitors, AnalysisState, Decision, TickVerdict};
use crate::metrics::step_gate::{step_ending, StepEnding, StepProgress};
use crate::metrics::{measure, query_set, QueryVars, Side};
use crate::notify::DeployEvent;

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

/// A decision to roll back, by the operation's actor (the analysis decided, not a person).
fn roll_back(op: &Operation, reason: String) -> StepError {
    StepError::Decided(crate::journal::Decision::new(DecisionKind::RollBack, reason, &op.actor))
}

impl Engine {
    pub(super) async fn shift(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        weight: u8,
        duration: Duration,
    ) -> Result<StepEnd, StepError> {
        self.scale_canary_for(run, op, weight).await?;
        run.mutating()?;
        self.set_weights(weight).await?;
        let duration_text = humantime::format_duration(duration);
        self.reporter.info(&if weight == 100 {
            format!("all traffic on green for {duration_text}")
        } else {
            format!("canary at {weight}% for {duration_text}")
        });
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
            version: super::version_of(&Self::image(op)),
        };
        let stable_image = op
            .fact("stable_image")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let stable = Side {
            deployment: "stable".to_owned(),
            version: super::version_of(&stable_image),
        };
        // The failure budget is the operation's: every analysis journaled so far (earlier steps, and
        // this step's earlier attempts, whose facts a restart keeps) has spent its share.
        let journaled: Vec<serde_json::Value> = op.steps.iter().flat_map(ticks_of).cloned().collect();
        let mut state = AnalysisState::replay(&analysis, &verdicts_of(&journaled));
        let step_name = op.steps.last().map_or(String::new(), |s| s.name.clone());
        let mut ticks: Vec<serde_json::Value> = op.steps.last().map_or(Vec::new(), |s| ticks_of(s).to_vec());
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
                    StepEnding::RollBack { reason } => return Err(roll_back(op, reason)),
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
                    let facts =
                        BTreeMap::from([(TICKS.to_owned(), json!(ticks)), ("promoted_by".to_owned(), json!(by))]);
                    return Ok(StepEnd::JumpTo {
                        index: super::promote_index(op),
                        why: format!("promoted by {by}"),
                        facts,
                    });
                }
                Some(Control::Pause { by }) => {
                    paused = true;
                    op.note(&by, "paused");
                    self.notify_pause(op, format!("paused by {by}")).await;
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
                // At 100% stable serves nothing (a blue/green cutover): there is no baseline to compare.
                policy.baseline.as_ref().filter(|_| weight < 100).map(|_| &stable),
            )
            .await;
            let (verdict, baseline) = judge_scored(&analysis, &measurements);
            let verdict = with_alerting_monitors(verdict, &self.alerting_gates().await);
            let decision = decide(&analysis, &mut state, &verdict);
            progress.observe(&verdict);
            self.reporter.info(&tick_line(
                weight,
                &measurements,
                baseline.as_ref(),
                &verdict,
                &decision,
            ));
            let left = duration.saturating_sub(started.elapsed());
            self.reporter
                .live(&live_line(&step_name, weight, left, &measurements, &verdict));
            let mut tick = json!({
                "at": chrono::Utc::now(),
                "weight": weight,
                "measurements": measurements,
                "verdict": verdict,
                "decision": decision,
            });
            if let Some(baseline) = &baseline {
                // Every comparison's outcome and p-value, with the score they made.
                tick["baseline"] = json!(baseline);
            }
            ticks.push(tick);
            // Every measurement is in the journal before anything acts on it. A failed write is retried
            // with the next tick; a fenced one means the lock is gone, and the run stops.
            match run.record(op, BTreeMap::from([(TICKS.to_owned(), json!(ticks))])).await {
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
                    self.notify_pause(op, reason.clone()).await;
                    self.reporter.warn(&format!(
                        "{reason}: paused; decide with `suma deploy resume|abort|promote --env {}`",
                        self.environment
                    ));
                }
                Decision::Rollback { reason } => return Err(roll_back(op, reason)),
            }
        }
        let mut facts = BTreeMap::from([(TICKS.to_owned(), json!(ticks))]);
        let hooks = self.run_hooks(run, op, Stage::PostStep).await?;
        if !hooks.results.is_empty() {
            facts.insert(HOOKS.to_owned(), json!(hooks.results));
        }
        if let Some(reason) = hooks.failure {
            // The ticks stay on record with the hooks' results; the failure decides like an analysis.
            run.record(op, facts).await?;
            return Err(roll_back(op, reason));
        }
        Ok(StepEnd::Done(facts))
    }

    async fn notify_pause(&self, op: &Operation, reason: String) {
        let event = DeployEvent::of(&self.env, op, NotificationEvent::Pause, Some(reason));
        self.notifier.send(&event).await;
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
}
