//! The estimated time to recover, from what this environment's past failovers took: each step of the
//! failover plan is estimated by the longest time it took over the last few failovers that succeeded
//! (drills included; the journal keeps every step's start and end), and by the documented default for a
//! step never measured. The longest rather than the mean, because an RTO is a promise about the bad
//! day, and the recent runs rather than all, because the estimate should follow the environment as it is
//! now (a warm standby added, a bigger database). Pure; the callers read the journal.

use std::time::Duration;

use serde::Serialize;

use super::{is_away_kind, plan, step_estimate, Direction};
use crate::config::Environment;
use crate::journal::{Operation, OperationStatus, StepStatus};

/// Past failovers a step's estimate looks at, newest first.
pub const RECENT_RUNS: usize = 5;

/// The estimate and where each step's figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RtoEstimate {
    pub total: Duration,
    /// Succeeded failovers the measurements come from.
    pub measured_runs: usize,
    pub steps: Vec<StepEstimate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepEstimate {
    pub step: String,
    pub secs: u64,
    /// Whether the figure was measured in a past failover (else the documented default).
    pub measured: bool,
}

impl RtoEstimate {
    /// How the figure was arrived at, for reports.
    pub fn basis(&self) -> String {
        let measured = self.steps.iter().filter(|s| s.measured).count();
        match (self.measured_runs, measured) {
            (0, _) | (_, 0) => "documented step defaults: no failover of this environment on record".to_owned(),
            (runs, n) if n == self.steps.len() => format!("the longest of each step over the last {runs} failover(s)"),
            (runs, n) => format!(
                "{n} of {} steps measured over the last {runs} failover(s), the rest documented defaults",
                self.steps.len()
            ),
        }
    }
}

/// Estimates the failover of `environment` from `history` (its journaled operations, any order).
pub fn estimate(environment: &str, env: &Environment, history: &[Operation]) -> RtoEstimate {
    let mut runs: Vec<&Operation> = history
        .iter()
        .filter(|op| is_away_kind(&op.kind) && op.environment == environment && op.status == OperationStatus::Succeeded)
        .collect();
    runs.sort_by_key(|op| std::cmp::Reverse(op.started_at));
    runs.truncate(RECENT_RUNS);
    let steps: Vec<StepEstimate> = plan(Direction::Failover, environment, env)
        .iter()
        .map(|planned| {
            let measured = runs
                .iter()
                .filter_map(|op| {
                    let record = op
                        .steps
                        .iter()
                        .rev()
                        .find(|s| s.name == planned.name && s.status == StepStatus::Succeeded)?;
                    let took = record.ended_at? - record.started_at;
                    u64::try_from(took.num_seconds()).ok()
                })
                .max();
            StepEstimate {
                step: planned.name.clone(),
                secs: measured.unwrap_or_else(|| step_estimate(&planned.name, env).as_secs()),
                measured: measured.is_some(),
            }
        })
        .collect();
    RtoEstimate {
        total: Duration::from_secs(steps.iter().map(|s| s.secs).sum()),
        measured_runs: runs.len(),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as Span, Utc};

    use super::*;
    use crate::dr::FAILOVER;
    use crate::journal::StepRecord;

    fn env() -> Environment {
        suma_testkit::environment("dr: { rto: 15m, rpo: 5m }\n")
    }

    /// A failover of `environment` started `days_ago`, each of its planned steps taking `secs(step)`.
    fn failover(environment: &str, days_ago: i64, status: OperationStatus, secs: impl Fn(&str) -> i64) -> Operation {
        let mut op = Operation::new(
            FAILOVER,
            environment,
            "sre@host",
            plan(Direction::Failover, environment, &env()),
        );
        op.started_at = Utc::now() - Span::days(days_ago);
        let mut at = op.started_at;
        op.steps = op
            .plan
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let started_at = at;
                at += Span::seconds(secs(&p.name));
                StepRecord {
                    index,
                    name: p.name.clone(),
                    started_at,
                    ended_at: Some(at),
                    status: StepStatus::Succeeded,
                    error: None,
                    facts: Default::default(),
                    attempts: Vec::new(),
                }
            })
            .collect();
        op.set_status(status);
        op
    }

    #[test]
    fn each_step_is_its_longest_over_the_recent_succeeded_failovers() {
        let env = env();
        let defaults = estimate("staging", &env, &[]);
        assert_eq!(defaults.measured_runs, 0);
        assert!(defaults.steps.iter().all(|s| !s.measured));
        assert_eq!(
            defaults.total,
            plan(Direction::Failover, "staging", &env)
                .iter()
                .map(|s| step_estimate(&s.name, &env))
                .sum::<Duration>()
        );
        assert!(
            defaults.basis().starts_with("documented step defaults"),
            "{}",
            defaults.basis()
        );

        let steps = plan(Direction::Failover, "staging", &env).len() as u64;
        let history = vec![
            // The promotion took 200 s once, 90 s otherwise; every other step 10 s.
            failover("staging", 3, OperationStatus::Succeeded, |s| {
                if s == "promote-and-scale" {
                    200
                } else {
                    10
                }
            }),
            failover("staging", 2, OperationStatus::Succeeded, |s| {
                if s == "promote-and-scale" {
                    90
                } else {
                    10
                }
            }),
            // Neither a failed run, another environment's, nor one older than the recent ones counts.
            failover("staging", 1, OperationStatus::Failed, |_| 5000),
            failover("production", 1, OperationStatus::Succeeded, |_| 5000),
        ];
        let measured = estimate("staging", &env, &history);
        assert_eq!(measured.measured_runs, 2);
        assert!(measured.steps.iter().all(|s| s.measured), "{:?}", measured.steps);
        assert_eq!(measured.total, Duration::from_secs(200 + 10 * (steps - 1)));
        assert!(
            measured.basis().starts_with("the longest of each step over the last 2"),
            "{}",
            measured.basis()
        );

        let mut many: Vec<Operation> = (10..10 + RECENT_RUNS as i64)
            .map(|d| failover("staging", d, OperationStatus::Succeeded, |_| 10))
            .collect();
        many.push(failover("staging", 100, OperationStatus::Succeeded, |_| 9000));
        assert_eq!(
            estimate("staging", &env, &many).total,
            Duration::from_secs(10 * steps),
            "only the last {RECENT_RUNS} runs count"
        );
    }

    #[test]
    fn a_step_never_measured_keeps_its_default() {
        let env = env();
        let mut partial = failover("staging", 1, OperationStatus::Succeeded, |_| 10);
        partial.steps.retain(|s| s.name != "switch-dns");
        let estimate = estimate("staging", &env, &[partial]);
        let dns = estimate.steps.iter().find(|s| s.step == "switch-dns").unwrap();
        assert!(!dns.measured);
        assert_eq!(dns.secs, step_estimate("switch-dns", &env).as_secs());
        assert!(
            estimate.basis().contains("steps measured over the last 1"),
            "{}",
            estimate.basis()
        );
    }
}
