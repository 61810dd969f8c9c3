//! Human rendering of canary plans, progress summaries and outcomes.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::tables::{heading, table};
use crate::canary::Outcome;
use crate::config::CanaryPolicy;
use crate::journal::{Operation, PlannedStep};
use crate::status::TrafficStatus;

pub fn plan(steps: &[PlannedStep], queries: &BTreeMap<String, String>, policy: &CanaryPolicy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", heading("Plan"));
    let _ = writeln!(
        out,
        "{}",
        table(
            ["#", "STEP", "WHAT"],
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| [(i + 1).to_string(), s.name.clone(), s.detail.clone()])
        )
    );
    let _ = writeln!(
        out,
        "Gates: error rate <= {}, p95 <= {} ms, at least {} requests per window, {} failed analyses tolerated, {} provider errors in a row tolerated, no data: {:?}",
        policy.max_error_rate, policy.max_p95_latency_ms, policy.min_samples, policy.failure_limit, policy.consecutive_error_limit, policy.no_data
    );
    if let Some(template) = &policy.analysis {
        let _ = writeln!(
            out,
            "Analysis from template `{template}`, with this environment's own keys"
        );
    }
    if let Some(b) = &policy.baseline {
        let compared: Vec<String> = b.compare.iter().map(|c| format!("{} ({})", c.name, c.weight)).collect();
        let _ = writeln!(
            out,
            "Baseline against stable: error rate ({}), latency ({}){}{}; score passes at {}, fails below {}, Mann-Whitney alpha {}",
            b.error_rate_weight,
            b.latency_weight,
            if compared.is_empty() { "" } else { ", " },
            compared.join(", "),
            b.score.pass,
            b.score.marginal,
            b.alpha
        );
    }
    for (name, query) in queries {
        let _ = writeln!(out, "  {name}: {query}");
    }
    out
}

/// The commands that finish an unfinished canary, from any machine.
pub fn how_to_finish(op: &Operation) -> String {
    let env = &op.environment;
    format!("`suma deploy resume --env {env}` or `suma deploy abort --env {env}`")
}

pub fn outcome(outcome: &Outcome, op: &Operation) -> String {
    let head = match outcome {
        Outcome::Promoted => console::style("promoted").green().bold().to_string(),
        Outcome::RolledBack { reason } => format!("{}: {reason}", console::style("rolled back").red().bold()),
        Outcome::Aborted { by } => format!("{} by {by}", console::style("aborted").yellow().bold()),
        Outcome::Interrupted { at_step } => format!(
            "{} at step `{at_step}`; finish with {}",
            console::style("interrupted").yellow().bold(),
            how_to_finish(op)
        ),
    };
    format!("{head}\n\n{}", super::status::operation(op))
}

pub fn status(env: &str, traffic: &TrafficStatus, op: Option<&(Operation, bool)>) -> String {
    let mut out = format!(
        "{env}: stable {}% / canary {}% ({})\n",
        traffic.stable_weight, traffic.canary_weight, traffic.state
    );
    match op {
        None => out.push_str("no canary recorded\n"),
        Some((op, alive)) => {
            let runner = if *alive { "runner alive" } else { "no runner" };
            let _ = writeln!(out, "{runner}\n");
            out.push_str(&super::status::operation(op));
        }
    }
    out
}
