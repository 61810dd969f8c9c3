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

/// A suppression naming a check that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("suppression {index} of environment `{environment}` names unknown check `{check}`\nhint: `suma compliance list` shows every check id; `*` matches all")]
pub struct UnknownSuppressedCheck {
    pub environment: String,
    pub index: usize,
    pub check: String,
}

pub fn suppressions(name: &str, env: &Environment) -> Result<Vec<Suppression>, UnknownSuppressedCheck> {
    env.compliance
        .suppressions
        .iter()
        .enumerate()
        .map(|(index, s)| {
            if s.check != "*" && Check::get(&s.check).is_none() {
                return Err(UnknownSuppressedCheck {
                    environment: name.to_owned(),
                    index,
                    check: s.check.clone(),
                });
            }
            Ok(Suppression {
                check: s.check.clone(),
                resource: s.resource.clone(),
                reason: s.reason.clone(),
                expires: s.expires,
            })
        })
        .collect()
}

/// What the evaluations need from the configuration.
pub fn eval_context(name: &str, env: &Environment) -> EvalContext {
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
        production: name == "production" || name.starts_with("prod"),
        now: chrono::Utc::now(),
        rotation_days,
        scaled_by_suma,
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
        context: eval_context(name, env),
    };
    run::run(&plan, &sources, ctx.reporter.as_ref()).await
}
