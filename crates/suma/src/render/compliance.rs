//! `suma compliance`: the findings table grouped by severity with a summary line, the list of checks,
//! and writing the report in the chosen format to stdout or a file.

use std::io::Write as _;
use std::path::Path;

use super::tables::{heading, table};
use super::Printer;
use crate::compliance::{report, Check, ComplianceReport, Severity, Status};

/// The format `--output` chose for a compliance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Sarif,
    Junit,
}

fn status_cell(status: Status) -> String {
    let text = status.as_str().to_ascii_uppercase();
    match status {
        Status::Pass => console::style(text).green().to_string(),
        Status::Fail => console::style(text).red().bold().to_string(),
        Status::Error => console::style(text).yellow().to_string(),
        Status::Muted => console::style(text).dim().to_string(),
    }
}

/// The human report: one table per severity, failures first within it, then the summary line.
pub fn findings_table(report: &ComplianceReport) -> String {
    let mut out = format!(
        "{} `{}` (scope: {}, {} checks, {} resources)\n",
        heading("Compliance of"),
        report.environment,
        report.scope,
        report.summary.checks,
        report.summary.resources
    );
    for severity in Severity::ALL {
        let mut rows: Vec<_> = report.findings.iter().filter(|f| f.severity == severity).collect();
        if rows.is_empty() {
            continue;
        }
        let rank = |s: Status| match s {
            Status::Fail => 0,
            Status::Error => 1,
            Status::Muted => 2,
            Status::Pass => 3,
        };
        rows.sort_by_key(|f| rank(f.status));
        out.push('\n');
        out.push_str(&heading(&format!(
            "{} ({})",
            severity.as_str().to_ascii_uppercase(),
            rows.len()
        )));
        out.push('\n');
        out.push_str(&table(
            ["status", "check", "resource", "observed", "expected"],
            rows.iter().map(|f| {
                let observed = match (&f.status, &f.detail) {
                    (Status::Error | Status::Muted, Some(d)) => format!("{} ({d})", f.observed),
                    _ => f.observed.clone(),
                };
                [
                    status_cell(f.status),
                    f.check_id.clone(),
                    f.resource.clone(),
                    observed,
                    f.expected.clone(),
                ]
            }),
        ));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&summary_line(report));
    out
}

/// `FAIL: 12 failed (3 critical, 9 high), 40 passed, 2 muted, 0 errors; --fail-on high` and the like.
pub fn summary_line(report: &ComplianceReport) -> String {
    let s = &report.summary;
    let by_severity: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|sev| s.fail_by_severity.get(sev).map(|n| format!("{n} {sev}")))
        .collect();
    let verdict = if !report.passed {
        console::style("FAIL").red().bold().to_string()
    } else if s.error > 0 {
        console::style("INCOMPLETE").yellow().bold().to_string()
    } else {
        console::style("PASS").green().bold().to_string()
    };
    format!(
        "{verdict}: {} failed{}, {} passed, {} muted, {} errors; --fail-on {} ({} ms)",
        s.fail,
        if by_severity.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_severity.join(", "))
        },
        s.pass,
        s.muted,
        s.error,
        report.fail_on,
        report.duration_ms
    )
}

/// Writes the report to stdout, or to `out` with the summary line on stderr.
pub fn emit(
    printer: &Printer,
    report: &ComplianceReport,
    format: ReportFormat,
    config_uri: &str,
    out: Option<&Path>,
) -> std::io::Result<()> {
    let text = match format {
        ReportFormat::Table => findings_table(report),
        ReportFormat::Json => serde_json::to_string_pretty(report).expect("reports always serialize"),
        ReportFormat::Sarif => report::sarif(report, config_uri),
        ReportFormat::Junit => report::junit(report),
    };
    match out {
        Some(path) => {
            let mut text = text;
            if format == ReportFormat::Table {
                // A file holds no colour codes.
                text = console::strip_ansi_codes(&text).into_owned();
            }
            if !text.ends_with('\n') {
                text.push('\n');
            }
            std::fs::write(path, text)?;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} (report written to {})",
                summary_line(report),
                path.display()
            );
        }
        None => printer.text(&text),
    }
    Ok(())
}

/// `suma compliance list`.
/// Every check as a table, for `suma compliance list`.
pub fn list(checks: &[Check]) -> String {
    let join = |l: &[&str]| if l.is_empty() { "-".to_owned() } else { l.join(", ") };
    let text = table(
        ["id", "severity", "title", "PCI-DSS", "SOC 2", "GDPR", "CIS"],
        checks.iter().map(|c| {
            [
                c.id.to_owned(),
                c.severity.to_string(),
                c.title.to_owned(),
                join(c.controls.pci_dss),
                join(c.controls.soc2),
                join(c.controls.gdpr),
                join(c.controls.cis),
            ]
        }),
    );
    format!(
        "{text}\n{} checks; `--output json` adds tags, risk and remediation",
        checks.len()
    )
}
