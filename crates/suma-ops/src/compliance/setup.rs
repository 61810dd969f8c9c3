//! A compliance run built from the configuration: its suppressions, what the evaluations need to know
//! about the environment, and the SDK-backed inventory, Datadog and service probe wired into
//! [`run::run`]. Shared by `suma compliance check` and the runbook actions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::evaluate::EvalContext;
use super::live::LiveProbe;
use super::run::{self, MonitorSource, RunPlan, Scope, Sources};
use super::{Check, ComplianceReport, Severity, Suppression};
use crate::config::Environment;
use crate::context::{environment_regions, OpsContext};

/// A suppression the configuration may not hold; found before any AWS call.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("suppression {index} of environment `{environment}` names unknown check `{check}`\nhint: `suma compliance list` shows every check id; `*` matches all")]
    UnknownCheck {
        environment: String,
        index: usize,
        check: String,
    },
    #[error("suppression {index} of environment `{environment}` mutes every check on every resource\nhint: name the check or the resource; an exception covers one known risk")]
    Everything { environment: String, index: usize },
    #[error("suppression {index} of environment `{environment}` has no `ticket`\nhint: add the ticket that tracks the exception, e.g. `ticket: SEC-1234`")]
    NoTicket { environment: String, index: usize },
    #[error("suppression {index} of environment `{environment}` runs until {expires}, more than {max_days} days from {today}\nhint: set `expires` to {latest} at the latest and review the exception then (`compliance.max_suppression_days`)")]
    TooLong {
        environment: String,
        index: usize,
        expires: chrono::NaiveDate,
        today: chrono::NaiveDate,
        latest: chrono::NaiveDate,
        max_days: u32,
    },
}

/// The environment's suppressions, each checked on `today`: a known check (or `*`), not `*` on `*`, a
/// ticket, and an expiry at most `compliance.max_suppression_days` ahead. An expiry in the past is allowed:
/// the check turns it into a failure of its own.
pub fn suppressions(
    name: &str,
    env: &Environment,
    today: chrono::NaiveDate,
) -> Result<Vec<Suppression>, SuppressionError> {
    let max_days = env.compliance.max_suppression_days;
    let latest = today + chrono::Days::new(u64::from(max_days));
    env.compliance
        .suppressions
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let environment = name.to_owned();
            if s.check != "*" && Check::get(&s.check).is_none() {
                return Err(SuppressionError::UnknownCheck {
                    environment,
                    index,
                    check: s.check.clone(),
                });
            }
            if s.check == "*" && s.resource.trim() == "*" {
                return Err(SuppressionError::Everything { environment, index });
            }
            if s.ticket.trim().is_empty() {
                return Err(SuppressionError::NoTicket { environment, index });
            }
            if s.expires > latest {
                return Err(SuppressionError::TooLong {
                    environment,
                    index,
                    expires: s.expires,
                    today,
                    latest,
                    max_days,
                });
            }
            Ok(Suppression {
                check: s.check.clone(),
                resource: s.resource.clone(),
                reason: s.reason.clone(),
                ticket: s.ticket.clone(),
                expires: s.expires,
            })
        })
        .collect()
}

/// What the evaluations need from the configuration.
pub fn eval_context(env: &Environment) -> EvalContext {
    let mut rotation_days = HashMap::new();
    for s in &env.secrets {
        rotation_days.insert(s.id.clone(), s.rotation_days);
    }
    let mut scaled_by_suma = vec![(
        env.primary_region.to_string(),
        env.ecs.cluster.clone(),
        env.ecs.canary_service.clone(),
    )];
    if env.ecs.dr.standby_count < 2 {
        scaled_by_suma.push((
            env.dr_region.to_string(),
            env.ecs.dr.cluster.clone(),
            env.ecs.dr.service.clone(),
        ));
    }
    EvalContext {
        production: env.is_production(),
        now: chrono::Utc::now(),
        rotation_days,
        scaled_by_suma,
        // Filled per region by the run, from the region's KMS keys.
        keys: Default::default(),
        waf_rule_groups: env.compliance.waf_rule_groups.clone(),
    }
}

/// Runs `checks` against the live environment (reads only): the report `check` prints and runbooks count.
#[allow(clippy::too_many_arguments)]
pub async fn gather(
    ctx: &OpsContext,
    name: &str,
    env: &Environment,
    checks: Vec<&'static Check>,
    scope: Scope,
    url: Option<String>,
    suppressions: Vec<Suppression>,
    fail_on: Severity,
) -> ComplianceReport {
    ctx.reporter
        .phase(&format!("checking `{name}`: {} checks", checks.len()));
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    // One inventory per distinct region; the primary region's comes first and also reads Route 53.
    let mut inventories = Vec::new();
    for region in environment_regions(env) {
        if !inventories.iter().any(|(r, _)| r == region.as_str()) {
            inventories.push((region.to_string(), session.inventory(region)));
        }
    }
    let monitors: Result<Arc<dyn MonitorSource>, String> = match &env.datadog {
        None => Err(format!(
            "environment `{name}` has no `datadog` section: the required monitors cannot be checked"
        )),
        Some(dd) => {
            crate::metrics::datadog::Datadog::from_env(dd, Duration::from_secs(300), &crate::settings::ProcessEnv)
                .map(|d| Arc::new(d) as Arc<dyn MonitorSource>)
                .map_err(|e| e.to_string())
        }
    };
    let sources = Sources {
        inventories,
        monitors,
        probe: Arc::new(LiveProbe::new(Duration::from_secs(10))),
    };
    let plan = RunPlan {
        environment: name,
        env,
        scope,
        checks,
        url,
        suppressions,
        fail_on,
        context: eval_context(env),
    };
    run::run(&plan, &sources, ctx.reporter.as_ref()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SuppressionConfig;

    fn day(text: &str) -> chrono::NaiveDate {
        text.parse().unwrap()
    }

    fn with(suppression: SuppressionConfig) -> Environment {
        let path = crate::checkout_root().join("deploy/suma.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut env = crate::config::parse_str(&text, &path)
            .unwrap()
            .environment("staging")
            .unwrap()
            .clone();
        env.compliance.suppressions = vec![suppression];
        env
    }

    fn suppression(check: &str, resource: &str, ticket: &str, expires: &str) -> SuppressionConfig {
        SuppressionConfig {
            check: check.to_owned(),
            resource: resource.to_owned(),
            reason: "accepted by the security team".to_owned(),
            ticket: ticket.to_owned(),
            expires: day(expires),
        }
    }

    #[test]
    fn a_suppression_is_known_narrow_tracked_and_short() {
        let today = day("2026-12-05");
        let cases = [
            (suppression("rds-multi-az", "db-a", "SEC-1", "2027-03-05"), None),
            (suppression("*", "db-a", "SEC-1", "2027-01-01"), None),
            (suppression("rds-multi-az", "*", "SEC-1", "2027-01-01"), None),
            // Expired: allowed here, reported as a failure by the check.
            (suppression("rds-multi-az", "db-a", "SEC-1", "2020-01-01"), None),
            (
                suppression("rds-nope", "db-a", "SEC-1", "2027-01-01"),
                Some("unknown check `rds-nope`"),
            ),
            (
                suppression("*", "*", "SEC-1", "2027-01-01"),
                Some("mutes every check on every resource"),
            ),
            (
                suppression("rds-multi-az", "db-a", " ", "2027-01-01"),
                Some("has no `ticket`"),
            ),
            (
                suppression("rds-multi-az", "db-a", "SEC-1", "2027-03-06"),
                Some("more than 90 days from 2026-12-05"),
            ),
        ];
        for (given, refused) in cases {
            let result = suppressions("staging", &with(given.clone()), today);
            match refused {
                None => assert_eq!(result.unwrap()[0].ticket, "SEC-1", "{given:?}"),
                Some(text) => {
                    let err = result.unwrap_err().to_string();
                    assert!(err.contains(text), "{given:?}: {err}");
                    assert!(err.contains("\nhint: "), "{err}");
                }
            }
        }
    }

    #[test]
    fn the_longest_exception_is_configurable() {
        let mut env = with(suppression("rds-multi-az", "db-a", "SEC-1", "2027-12-01"));
        assert!(suppressions("staging", &env, day("2026-12-05")).is_err());
        env.compliance.max_suppression_days = 365;
        assert!(suppressions("staging", &env, day("2026-12-05")).is_ok());
    }
}
