//! `suma compliance check` and `suma compliance list`: turns flags and the configuration into a
//! [`RunPlan`], wires the SDK-backed inventory, Datadog and the HTTP probe, and decides the exit status.

use anyhow::Context as _;

use super::Context;
use crate::cli::{ComplianceCheckArgs, GlobalArgs, OutputArg, ScopeArg, SeverityArg};
use crate::compliance::run::Scope;
use crate::compliance::setup::{gather, suppressions};
use crate::compliance::{Selection, Severity, Status, CHECKS};
use crate::exit::ExitStatus;
use crate::render::compliance::ReportFormat;

/// `--output sarif|junit` given to another command.
#[derive(Debug, thiserror::Error)]
#[error("`--output {}` is only for `suma compliance check`\nhint: use `--output table` or `--output json`", match .0 { OutputArg::Sarif => "sarif", _ => "junit" })]
pub struct OutputOnlyForCheck(pub OutputArg);

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
    let printer = super::offline_printer(global)?;
    printer.either(&CHECKS, || crate::render::compliance::list(CHECKS));
    Ok(ExitStatus::Success)
}

pub async fn check(ctx: &Context, args: &ComplianceCheckArgs, output: Option<OutputArg>) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let selection = Selection {
        checks: args.checks.clone(),
        tags: args.tags.clone(),
        min_severity: args.min_severity.map(severity),
    };
    let checks = selection.select()?;
    let suppressions = suppressions(name, env, chrono::Utc::now().date_naive())?;
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
