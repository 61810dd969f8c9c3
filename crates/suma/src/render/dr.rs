//! Human rendering of DR readiness reports, plans, outcomes with step timings, and drill reports.

use std::fmt::Write;
use std::time::Duration;

use super::tables::{heading, table};
use crate::config::Environment;
use crate::dr::check::{CheckStatus, Readiness};
use crate::dr::{step_estimate, Direction, Outcome, Timings};
use crate::journal::{Operation, PlannedStep};

fn mark(status: CheckStatus) -> String {
    match status {
        CheckStatus::Pass => console::style("pass").green().to_string(),
        CheckStatus::Warn => console::style("warn").yellow().bold().to_string(),
        CheckStatus::Fail => console::style("FAIL").red().bold().to_string(),
    }
}

fn secs(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

pub fn readiness(report: &Readiness) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} of `{}`: {}",
        heading("DR readiness"),
        report.environment,
        mark(report.status)
    );
    let _ = writeln!(
        out,
        "{}",
        table(
            ["AREA", "CHECK", "STATUS", "VALUE", "TARGET"],
            report.items.iter().map(|i| {
                [
                    i.area.to_owned(),
                    i.check.clone(),
                    mark(i.status),
                    i.value.clone(),
                    i.target.clone(),
                ]
            })
        )
    );
    let failing = report.items.iter().filter(|i| i.status == CheckStatus::Fail).count();
    let warning = report.items.iter().filter(|i| i.status == CheckStatus::Warn).count();
    let _ = writeln!(
        out,
        "{} check(s): {failing} failing, {warning} warning; RTO {}, RPO {}, estimated failover {} ({})",
        report.items.len(),
        secs(report.rto_secs),
        secs(report.rpo_secs),
        secs(report.estimated_rto_secs),
        report.rto_basis
    );
    out
}

pub fn plan(steps: &[PlannedStep], env: &Environment, direction: Direction) -> String {
    let mut out = String::new();
    let title = match direction {
        Direction::Failover => format!("Failover plan ({} -> {})", env.primary_region, env.dr_region),
        Direction::Switchover => format!(
            "Switchover plan ({} -> {}, zero data loss)",
            env.primary_region, env.dr_region
        ),
        Direction::Failback => format!("Failback plan ({} -> {})", env.dr_region, env.primary_region),
    };
    let _ = writeln!(out, "{}", heading(&title));
    let _ = writeln!(
        out,
        "{}",
        table(
            ["#", "STEP", "WHAT", "ESTIMATE"],
            steps.iter().enumerate().map(|(i, s)| {
                [
                    (i + 1).to_string(),
                    s.name.clone(),
                    s.detail.clone(),
                    humantime::format_duration(step_estimate(&s.name, env)).to_string(),
                ]
            })
        )
    );
    let total: Duration = steps.iter().map(|s| step_estimate(&s.name, env)).sum();
    let _ = writeln!(
        out,
        "estimated {} against an RTO of {}",
        humantime::format_duration(total),
        humantime::format_duration(env.dr.rto)
    );
    out
}

fn timing_table(t: &Timings) -> String {
    let rows = t.steps.iter().map(|s| {
        [
            s.name.clone(),
            s.status.clone(),
            s.secs.map_or("-".to_owned(), |v| format!("{v:.1}s")),
        ]
    });
    let verdict = if t.within_rto {
        console::style("within RTO").green().to_string()
    } else {
        console::style("OVER RTO").red().bold().to_string()
    };
    format!(
        "{}\ntotal {} against an RTO of {}: {verdict}\n",
        table(["STEP", "STATUS", "TIME"], rows),
        secs(t.total_secs),
        secs(t.rto_secs)
    )
}

/// The commands that finish an unfinished failover or failback.
pub fn how_to_finish(op: &Operation) -> String {
    format!(
        "`suma dr resume --env {}` (or `suma dr abort --env {}`)",
        op.environment, op.environment
    )
}

pub fn outcome(outcome: &Outcome, op: &Operation, timings: &Timings) -> String {
    let verb = op.kind.trim_start_matches("dr-");
    let env = &op.environment;
    let head = match outcome {
        Outcome::Completed => format!("{} {verb} of `{env}`", console::style("completed").green().bold()),
        Outcome::Refused { reason } => format!(
            "{}: {reason}\nnothing was changed",
            console::style("refused").red().bold()
        ),
        Outcome::Stopped { at_step, reason } => format!(
            "{} at step `{at_step}`: {reason}\nthe steps before it stand; fix the cause, then {}",
            console::style("stopped").red().bold(),
            how_to_finish(op)
        ),
        Outcome::Aborted { by, note } => format!("{} by {by}: {note}", console::style("aborted").yellow().bold()),
        Outcome::Interrupted { at_step } => format!(
            "{} at step `{at_step}`; continue with `suma dr resume --env {env}` or end it with `suma dr abort --env {env}`",
            console::style("interrupted").yellow().bold()
        ),
    };
    format!("{head}\n\n{}\n{}", timing_table(timings), super::status::operation(op))
}

pub fn drill(env: &str, runs: &[(Direction, Outcome, Timings, Operation)], rto: Duration) -> String {
    let mut out = format!(
        "{} on `{env}` (RTO {})\n",
        heading("DR drill"),
        humantime::format_duration(rto)
    );
    for (direction, outcome, timings, op) in runs {
        let state = match outcome {
            Outcome::Completed => console::style("completed").green().to_string(),
            other => console::style(format!("{other:?}")).red().to_string(),
        };
        let _ = writeln!(out, "\n{direction:?} `{}`: {state}", op.id);
        out.push_str(&timing_table(timings));
    }
    if runs.len() < 2 {
        let _ = writeln!(
            out,
            "\nthe drill stopped early; see `suma ops show ID` and resume or abort it"
        );
    }
    out
}
