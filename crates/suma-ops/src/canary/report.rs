//! What a canary run says about itself: the line of each analysis tick, the live view of a step, and
//! the summary of a finished run (duration, analyses, and the time from the first failed analysis to all
//! traffic back on stable), all read from the journal record and the measurements.

use std::time::Duration;

use serde::Serialize;

use super::WEIGHTS_RESTORED;
use crate::journal::Operation;
use crate::metrics::analysis::{BaselineScore, Decision, TickVerdict};

pub(super) fn tick_line(
    weight: u8,
    m: &crate::metrics::analysis::Measurements,
    baseline: Option<&BaselineScore>,
    verdict: &TickVerdict,
    decision: &Decision,
) -> String {
    use crate::metrics::analysis::Measurements;
    let values = match m {
        Measurements::Answered { samples, checks, .. } => {
            let mut parts = vec![format!(
                "samples {}",
                samples.map_or("-".to_owned(), |s| format!("{s:.0}"))
            )];
            for c in checks {
                let v = c.value.map_or("no data".to_owned(), |v| format!("{v:.4}"));
                parts.push(format!("{} {v} (max {})", c.metric, c.max));
            }
            if let Some(score) = baseline.and_then(|b| b.score.map(|s| (s, b.pass))) {
                parts.push(format!("baseline score {:.0} (pass {})", score.0, score.1));
            }
            parts.join(", ")
        }
        Measurements::RateLimited { retry_after_secs } => format!("rate-limited, retry in {retry_after_secs}s"),
        Measurements::ProviderError { message } => format!("provider error: {message}"),
    };
    let verdict = match verdict {
        TickVerdict::Pass => "pass".to_owned(),
        TickVerdict::Fail { reasons, .. } => format!("FAIL: {}", reasons.join("; ")),
        TickVerdict::Marginal { reasons, .. } => format!("marginal: {}", reasons.join("; ")),
        TickVerdict::NoData { reason } => format!("no data: {reason}"),
        TickVerdict::RateLimited { .. } => "rate-limited".to_owned(),
        TickVerdict::ProviderError { .. } => "provider error".to_owned(),
    };
    let decision = match decision {
        Decision::Continue => String::new(),
        Decision::Pause { .. } => " -> pause".to_owned(),
        Decision::Rollback { .. } => " -> ROLLBACK".to_owned(),
    };
    format!("[canary {weight}%] {values} => {verdict}{decision}")
}

/// The figures of a canary run for its final report: how long it took, how many analyses ran and failed,
/// and, after a rollback, the time from the first failed analysis to all traffic back on stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub duration_ms: i64,
    pub analyses: usize,
    pub failed_analyses: usize,
    pub first_failed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub weights_restored_at: Option<chrono::DateTime<chrono::Utc>>,
    /// From the first failed analysis to the weights restored: the rollback's reaction time.
    pub failure_to_restore_ms: Option<i64>,
}

/// Summarises a canary operation from its journal record.
pub fn summary(op: &Operation) -> RunSummary {
    let ticks: Vec<&serde_json::Value> = op.steps.iter().flat_map(super::ticks_of).collect();
    let failed: Vec<&&serde_json::Value> = ticks.iter().filter(|t| t["verdict"]["verdict"] == "fail").collect();
    let first_failed_at = failed
        .first()
        .and_then(|t| serde_json::from_value::<chrono::DateTime<chrono::Utc>>(t["at"].clone()).ok());
    let weights_restored_at = op.events.iter().find(|e| e.message == WEIGHTS_RESTORED).map(|e| e.at);
    let failure_to_restore_ms = match (first_failed_at, weights_restored_at) {
        (Some(bad), Some(restored)) if restored >= bad => Some((restored - bad).num_milliseconds()),
        _ => None,
    };
    RunSummary {
        duration_ms: (op.updated_at - op.started_at).num_milliseconds(),
        analyses: ticks.len(),
        failed_analyses: failed.len(),
        first_failed_at,
        weights_restored_at,
        failure_to_restore_ms,
    }
}

/// The live view of a step: where the canary is, how long is left, and the last measurement against its
/// threshold (`error_rate 0.0012 < 0.005`).
pub(super) fn live_line(
    step: &str,
    weight: u8,
    left: Duration,
    m: &crate::metrics::analysis::Measurements,
    verdict: &TickVerdict,
) -> String {
    use crate::metrics::analysis::Measurements;
    let left = humantime::format_duration(Duration::from_secs(left.as_secs()));
    let last = match m {
        Measurements::Answered { samples, checks, .. } => {
            let mut parts = vec![format!(
                "{} samples",
                samples.map_or("-".to_owned(), |s| format!("{s:.0}"))
            )];
            for c in checks {
                let part = match c.value {
                    Some(v) if v <= c.max => format!("{} {v:.4} < {}", c.metric, c.max),
                    Some(v) => format!("{} {v:.4} > {} !", c.metric, c.max),
                    None => format!("{} no data", c.metric),
                };
                parts.push(part);
            }
            parts.join(" · ")
        }
        Measurements::RateLimited { retry_after_secs } => format!("rate-limited for {retry_after_secs}s"),
        Measurements::ProviderError { message } => format!("provider error: {message}"),
    };
    let verdict = match verdict {
        TickVerdict::Pass => "pass",
        TickVerdict::Fail { .. } => "FAIL",
        TickVerdict::Marginal { .. } => "marginal",
        TickVerdict::NoData { .. } => "no data",
        TickVerdict::RateLimited { .. } => "rate-limited",
        TickVerdict::ProviderError { .. } => "provider error",
    };
    format!("{step} · canary {weight}% · {left} left · {last} · {verdict}")
}
