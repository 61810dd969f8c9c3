//! `suma compliance check` and `suma compliance list`: turns flags and the configuration into a
//! [`RunPlan`], wires the SDK-backed inventory, Datadog and the HTTP probe, and decides the exit status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{environment_regions, Context};
use crate::cli::{ComplianceCheckArgs, GlobalArgs, OutputArg, ScopeArg, SeverityArg};
use crate::compliance::evaluate::EvalContext;
use crate::compliance::live::ReqwestServiceProbe;
use crate::compliance::run::{self, MonitorSource, RunPlan, Scope, Sources};
use crate::compliance::{Check, Selection, Severity, Status, Suppression, CHECKS};
use crate::config::Environment;
use crate::exit::ExitStatus;
use crate::render::compliance::ReportFormat;

/// `--output sarif|junit` given to another command.
#[derive(Debug, thiserror::Error)]
#[error("`--output {}` is only for `suma compliance check`\nhint: use `--output table` or `--output json`", match .0 { OutputArg::Sarif => "sarif", _ => "junit" })]
pub struct OutputOnlyForCheck(pub OutputArg);

/// A suppression naming a check that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("suppression {index} of environment `{environment}` names unknown check `{check}`\nhint: `suma compliance list` shows every check id; `*` matches all")]
pub struct UnknownSuppressedCheck {
    pub environment: String,
    pub index: usize,
    pub check: String,
}

fn severity(arg: SeverityArg) -> Severity {
    match arg {
        SeverityArg::Low => Severity::Low,
        SeverityArg::Medium => Severity::Medium,
        SeverityArg::High => Severity::High,
        SeverityArg::Critical => Severity::Critical,
    }
}

/// Prints every check's metadata.
pub fn list(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let json = matches!(global.output, Some(OutputArg::Json));
    crate::render::compliance::list(CHECKS, json, !global.no_color);
    Ok(ExitStatus::Success)
}

pub(crate) fn suppressions(name: &str, env: &Environment) -> anyhow::Result<Vec<Suppression>> {
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
                }
                .into());
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
pub(crate) fn eval_context(name: &str, env: &Environment) -> EvalContext {
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

pub async fn check(ctx: &Context, args: &ComplianceCheckArgs, output: Option<OutputArg>) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let selection = Selection {
        checks: args.checks.clone(),
        tags: args.tags.clone(),
        min_severity: args.min_severity.map(severity),
    };
    let checks = selection.select()?;
    let suppressions = suppressions(name, env)?;
    let format = match output {
        Some(OutputArg::Sarif) => ReportFormat::Sarif,
        Some(OutputArg::Junit) => ReportFormat::Junit,
        _ if ctx.printer.is_json() => ReportFormat::Json,
        _ => ReportFormat::Table,
    };
    let fail_on = severity(args.fail_on);

    let scope = match args.scope {
        ScopeArg::Account => Scope::Account,
        ScopeArg::Config => Scope::Config,
    };
    let url = args.url.clone().or_else(|| env.url.as_ref().map(|u| u.to_string()));
    let report = gather(ctx, name, env, checks, scope, url, suppressions, fail_on).await;
    ctx.reporter.finish();

    let config_uri = ctx
        .settings
        .config_path
        .value
        .file_name()
        .map_or_else(|| "suma.yaml".to_owned(), |f| f.to_string_lossy().into_owned());
    crate::render::compliance::emit(&ctx.printer, &report, format, &config_uri, args.out.as_deref())
        .with_context(|| format!("writing the compliance report of `{name}`"))?;

    Ok(if !report.passed {
        ExitStatus::No
    } else if report.findings.iter().any(|f| f.status == Status::Error) {
        ExitStatus::Error
    } else {
        ExitStatus::Success
    })
}

/// Runs `checks` against the live environment (reads only): the report `check` prints and runbooks count.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn gather(
    ctx: &Context,
    name: &str,
    env: &Environment,
    checks: Vec<&'static crate::compliance::Check>,
    scope: Scope,
    url: Option<String>,
    suppressions: Vec<Suppression>,
    fail_on: Severity,
) -> crate::compliance::ComplianceReport {
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
        probe: Arc::new(ReqwestServiceProbe::new(Duration::from_secs(10))),
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
