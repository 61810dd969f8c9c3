//! Compliance checks of the live environment: the registry of checks ([`registry`]), pure evaluations of
//! suma's inventory types ([`evaluate`]), the run that gathers the inventory concurrently and turns one API
//! error into `error` findings of the checks it feeds ([`run`]), suppressions, selection, the exit
//! decision, and the report formats for people and CI ([`report`]).
//!
//! A check has an id, a severity and the controls it maps to; a [`Finding`] is one check's verdict on one
//! resource with the observed value against the expected one.

pub mod cache;
mod ecs;
pub mod evaluate;
pub mod keys;
pub mod legacy_tls;
pub mod live;
pub mod network;
pub mod policy;
pub mod posture;
pub mod registry;
pub mod report;
pub mod run;
mod scope;
#[cfg(feature = "sdk")]
pub mod setup;
pub mod snapshots;
pub mod waf;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use registry::{Check, Controls, CHECKS};

/// How bad a failure of a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check's verdict on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The check could not read what it judges (an API error); the run goes on.
    Error,
    /// A failure covered by a suppression that has not expired.
    Muted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
            Self::Muted => "muted",
        }
    }
}

/// One check's verdict on one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check_id: String,
    pub severity: Severity,
    /// ARN, or the name when the resource has no ARN (a record, a monitor, a URL).
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub status: Status,
    pub observed: String,
    pub expected: String,
    /// The API error of an `error` finding, or the suppression's reason of a `muted` one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A suppression from the configuration: a check on a resource, accepted for a reason until a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub check: String,
    /// A resource ARN or name; `*` at the end matches a prefix; `*` alone every resource.
    pub resource: String,
    pub reason: String,
    pub ticket: String,
    pub expires: NaiveDate,
}

impl Suppression {
    fn matches(&self, finding: &Finding) -> bool {
        if self.check != finding.check_id && self.check != "*" {
            return false;
        }
        match self.resource.strip_suffix('*') {
            Some(prefix) => finding.resource.starts_with(prefix),
            None => self.resource == finding.resource,
        }
    }
}

/// The id of the finding an expired suppression produces.
pub const EXPIRED_SUPPRESSION: &str = "suppression-expired";

/// Mutes the failures that an unexpired suppression covers, and turns every expired suppression into a
/// failure of its own, so an exception cannot outlive its date silently.
pub fn apply_suppressions(findings: &mut Vec<Finding>, suppressions: &[Suppression], today: NaiveDate) {
    for finding in findings.iter_mut() {
        if finding.status != Status::Fail {
            continue;
        }
        if let Some(s) = suppressions.iter().find(|s| s.expires >= today && s.matches(finding)) {
            finding.status = Status::Muted;
            finding.detail = Some(format!("suppressed until {} ({}): {}", s.expires, s.ticket, s.reason));
        }
    }
    for s in suppressions.iter().filter(|s| s.expires < today) {
        findings.push(Finding {
            check_id: EXPIRED_SUPPRESSION.to_owned(),
            severity: Severity::High,
            resource: format!("{} on {}", s.check, s.resource),
            region: None,
            status: Status::Fail,
            observed: format!("expired {}", s.expires),
            expected: format!("expires on or after {today}"),
            detail: Some(format!("{} ({})", s.reason, s.ticket)),
        });
    }
}

/// Which checks to run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Check ids; empty means all.
    pub checks: Vec<String>,
    /// A check runs when it carries any of these tags; empty means all.
    pub tags: Vec<String>,
    pub min_severity: Option<Severity>,
}

/// A selection naming a check or tag that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown check `{0}`\nhint: `suma compliance list` shows every check id")]
    UnknownCheck(String),
    #[error("unknown tag `{0}`\nhint: tags are services (rds, ecs, alb, route53, secrets, datadog, service), frameworks (pci-dss, soc2, gdpr, cis) and topics; `suma compliance list` shows them")]
    UnknownTag(String),
}

impl Selection {
    /// The selected checks, in registry order.
    pub fn select(&self) -> Result<Vec<&'static Check>, SelectionError> {
        for id in &self.checks {
            if !CHECKS.iter().any(|c| c.id == id) {
                return Err(SelectionError::UnknownCheck(id.clone()));
            }
        }
        for tag in &self.tags {
            if !CHECKS.iter().any(|c| c.tags().any(|t| t == tag)) {
                return Err(SelectionError::UnknownTag(tag.clone()));
            }
        }
        Ok(CHECKS
            .iter()
            .filter(|c| self.checks.is_empty() || self.checks.iter().any(|id| id == c.id))
            .filter(|c| self.tags.is_empty() || c.tags().any(|t| self.tags.iter().any(|w| w == t)))
            .filter(|c| self.min_severity.is_none_or(|min| c.severity >= min))
            .collect())
    }
}

/// Counts by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checks: usize,
    pub resources: usize,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub muted: usize,
    /// Failures by severity.
    pub fail_by_severity: BTreeMap<Severity, usize>,
}

impl Summary {
    pub fn of(checks: usize, findings: &[Finding]) -> Self {
        let mut s = Summary {
            checks,
            resources: findings
                .iter()
                .map(|f| f.resource.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            ..Summary::default()
        };
        for f in findings {
            match f.status {
                Status::Pass => s.pass += 1,
                Status::Fail => {
                    s.fail += 1;
                    *s.fail_by_severity.entry(f.severity).or_default() += 1;
                }
                Status::Error => s.error += 1,
                Status::Muted => s.muted += 1,
            }
        }
        s
    }
}

/// Whether the run answers "no": a failure at or above `fail_on`. Errors and muted findings never fail it
/// on their own; errors are reported and make the run's exit depend on the caller (see `commands`).
pub fn fails(findings: &[Finding], fail_on: Severity) -> bool {
    findings
        .iter()
        .any(|f| f.status == Status::Fail && f.severity >= fail_on)
}

/// The whole result of a run, as `--output json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ComplianceReport {
    /// Version of this JSON document's shape; fields are only ever added.
    pub schema_version: u32,
    pub environment: String,
    /// `account` or `config`.
    pub scope: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub fail_on: Severity,
    pub passed: bool,
    pub summary: Summary,
    /// The checks that ran, with their metadata.
    pub checks: Vec<&'static Check>,
    pub findings: Vec<Finding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &str, resource: &str, status: Status, severity: Severity) -> Finding {
        Finding {
            check_id: check.into(),
            severity,
            resource: resource.into(),
            region: None,
            status,
            observed: "x".into(),
            expected: "y".into(),
            detail: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn suppressions_mute_failures_until_they_expire() {
        let today = day("2026-06-01");
        let cases = [
            // (check, resource pattern, expires, finding resource, status after)
            ("rds-multi-az", "db-a", "2026-06-01", "db-a", Status::Muted),
            ("rds-multi-az", "db-a", "2026-05-31", "db-a", Status::Fail),
            ("rds-multi-az", "db-*", "2026-07-01", "db-b", Status::Muted),
            ("rds-multi-az", "db-a", "2026-07-01", "db-b", Status::Fail),
            ("rds-iam-auth", "db-a", "2026-07-01", "db-a", Status::Fail),
            ("*", "*", "2026-07-01", "anything", Status::Muted),
        ];
        for (check, pattern, expires, resource, want) in cases {
            let mut findings = vec![finding("rds-multi-az", resource, Status::Fail, Severity::High)];
            let s = Suppression {
                check: check.into(),
                resource: pattern.into(),
                reason: "accepted".into(),
                ticket: "SEC-1".into(),
                expires: day(expires),
            };
            apply_suppressions(&mut findings, &[s], today);
            assert_eq!(findings[0].status, want, "{check} {pattern} {expires} {resource}");
            let expired = findings.iter().any(|f| f.check_id == EXPIRED_SUPPRESSION);
            assert_eq!(expired, day(expires) < today, "{check} {pattern} {expires}");
        }
    }

    #[test]
    fn a_pass_is_never_muted() {
        let mut findings = vec![finding("rds-multi-az", "db-a", Status::Pass, Severity::High)];
        let s = Suppression {
            check: "rds-multi-az".into(),
            resource: "db-a".into(),
            reason: "r".into(),
            ticket: "SEC-2".into(),
            expires: day("2030-01-01"),
        };
        apply_suppressions(&mut findings, &[s], day("2026-01-01"));
        assert_eq!(findings[0].status, Status::Pass);
    }

    #[test]
    fn fail_on_compares_severities() {
        let cases = [
            (Status::Fail, Severity::High, Severity::High, true),
            (Status::Fail, Severity::Medium, Severity::High, false),
            (Status::Fail, Severity::Critical, Severity::Low, true),
            (Status::Error, Severity::Critical, Severity::Low, false),
            (Status::Muted, Severity::Critical, Severity::Low, false),
            (Status::Pass, Severity::Critical, Severity::Low, false),
        ];
        for (status, severity, fail_on, want) in cases {
            let findings = [finding("c", "r", status, severity)];
            assert_eq!(
                fails(&findings, fail_on),
                want,
                "{status:?} {severity} --fail-on {fail_on}"
            );
        }
    }

    #[test]
    fn selection_by_ids_tags_and_severity() {
        let ids = |s: &Selection| s.select().unwrap().iter().map(|c| c.id).collect::<Vec<_>>();
        let all = Selection::default();
        assert_eq!(ids(&all).len(), CHECKS.len());
        let two = Selection {
            checks: vec!["rds-multi-az".into(), "alb-access-logs".into()],
            ..Selection::default()
        };
        assert_eq!(ids(&two), ["rds-multi-az", "alb-access-logs"]);
        let rds = Selection {
            tags: vec!["rds".into()],
            ..Selection::default()
        };
        assert!(ids(&rds).iter().all(|id| id.starts_with("rds-")));
        let critical = Selection {
            min_severity: Some(Severity::Critical),
            ..Selection::default()
        };
        assert!(critical
            .select()
            .unwrap()
            .iter()
            .all(|c| c.severity == Severity::Critical));
        assert!(!ids(&critical).is_empty());
        let gdpr = Selection {
            tags: vec!["gdpr".into()],
            ..Selection::default()
        };
        assert!(gdpr.select().unwrap().iter().all(|c| !c.controls.gdpr.is_empty()));
        assert_eq!(
            Selection {
                checks: vec!["nope".into()],
                ..Selection::default()
            }
            .select(),
            Err(SelectionError::UnknownCheck("nope".into()))
        );
        assert_eq!(
            Selection {
                tags: vec!["nope".into()],
                ..Selection::default()
            }
            .select(),
            Err(SelectionError::UnknownTag("nope".into()))
        );
    }

    #[test]
    fn summary_counts_statuses_and_failures_by_severity() {
        let findings = [
            finding("a", "r1", Status::Pass, Severity::High),
            finding("b", "r1", Status::Fail, Severity::High),
            finding("c", "r2", Status::Fail, Severity::Low),
            finding("d", "r2", Status::Error, Severity::Low),
            finding("e", "r3", Status::Muted, Severity::Low),
        ];
        let s = Summary::of(5, &findings);
        assert_eq!((s.resources, s.pass, s.fail, s.error, s.muted), (3, 1, 2, 1, 1));
        assert_eq!(s.fail_by_severity[&Severity::High], 1);
        assert_eq!(s.fail_by_severity[&Severity::Low], 1);
    }
}
