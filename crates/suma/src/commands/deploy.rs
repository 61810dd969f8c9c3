//! `suma deploy canary|bluegreen|status|pause|resume|abort|promote`: the CLI side of the deploy engine
//! (`crate::canary`, blue/green included): preflight, plan, confirmation, lock, and rendering of the
//! outcome.

use std::sync::Arc;
use std::time::Duration;
use suma_core::usage;

use anyhow::{bail, Context as _};
use serde_json::json;

use super::{environment_regions, Context};
use crate::aws::{AwsApis, AwsSession};
use crate::canary::{self, Engine, Outcome, Strategy};
use crate::cli::{AbortArgs, CanaryArgs, ControlArgs, PromoteArgs, TakeoverArgs};
use crate::config::{Environment, MetricProvider, NotificationEvent};
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, StepStatus};
use crate::metrics::datadog::EventAlert;
use crate::metrics::{query_set, rendered_queries, MetricSource, QueryVars, Side};
use crate::notify::{DeployEvent, Notifier};
use crate::runbook::hook::{hook_problems, LiveRunbookHooks};
use crate::status::classify_traffic;

/// The environment's metric provider.
pub fn metric_source(env: &Environment) -> anyhow::Result<Arc<dyn MetricSource>> {
    match env.metrics.provider {
        MetricProvider::Prometheus => {
            let url = env
                .metrics
                .prometheus_url
                .as_ref()
                .expect("validated: prometheus_url is set");
            Ok(Arc::new(crate::metrics::prometheus::Prometheus::new(
                url.as_str(),
                Duration::from_secs(10),
            )))
        }
        MetricProvider::Datadog => {
            let datadog = env
                .datadog
                .as_ref()
                .context("`metrics.provider: datadog` needs a `datadog` section")?;
            Ok(Arc::new(crate::metrics::datadog::Datadog::from_env(
                datadog,
                env.canary.window,
                &crate::settings::ProcessEnv,
            )?))
        }
    }
}

fn engine(
    ctx: &Context,
    name: &str,
    env: &Environment,
    session: &AwsSession,
    rollout_timeout: Duration,
) -> anyhow::Result<Engine> {
    Ok(Engine {
        environment: name.to_owned(),
        env: env.clone(),
        aws: Arc::new(session.clone()),
        metrics: metric_source(env)?,
        journal: ctx.journal(session),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
        rollout_timeout,
        rollout_poll: Duration::from_secs(5),
        // A new deploy's preflight already refused a Datadog it cannot reach; a resume or abort goes on
        // without the watch rather than strand the operation.
        gates: suma_ops::events::gate_watch(env).unwrap_or_else(|e| {
            ctx.reporter
                .warn(&format!("the gating monitors will not be watched: {e}"));
            None
        }),
        // Read once the deploy is going ahead (a dry run or a refusal reads no secret).
        notifier: Notifier::default(),
        runbook_hooks: Some(Arc::new(LiveRunbookHooks {
            ctx: ctx.ops.clone(),
            name: name.to_owned(),
            env: env.clone(),
            session: session.clone(),
            config_dir: config_dir(ctx),
        })),
    })
}

/// The directory of the configuration file, where a hook's relative runbook path starts.
fn config_dir(ctx: &Context) -> std::path::PathBuf {
    ctx.settings
        .config_path
        .value
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// The environment's notification receivers, their URLs read now.
async fn notifier(ctx: &Context, env: &Environment, session: &AwsSession) -> Notifier {
    let secrets = session.secret_versions(&env.primary_region);
    Notifier::resolve(
        env,
        secrets.as_ref(),
        &crate::settings::ProcessEnv,
        ctx.reporter.clone(),
    )
    .await
}

/// Refuses to start unless the environment is in a state a canary can start from.
async fn preflight(name: &str, env: &Environment, aws: &dyn AwsApis, metrics: &dyn MetricSource) -> anyhow::Result<()> {
    let ecs = &env.ecs;
    let found = aws
        .ecs(&env.primary_region)
        .describe_services(&ecs.cluster, &[ecs.service.clone(), ecs.canary_service.clone()])
        .await
        .context("preflight: the stable and canary services must exist")?;
    if found.len() != 2 {
        bail!(
            "preflight: expected services `{}` and `{}` in cluster `{}`",
            ecs.service,
            ecs.canary_service,
            ecs.cluster
        );
    }
    let weights = aws
        .elb(&env.primary_region)
        .rule_weights(env.alb.rule_arn.as_str())
        .await
        .context("preflight: cannot read the ALB rule")?;
    let traffic = classify_traffic(
        env.alb.rule_arn.as_str(),
        env.alb.stable_target_group_arn.as_str(),
        env.alb.canary_target_group_arn.as_str(),
        weights,
    );
    if traffic.state != "stable" || traffic.stable_weight == 0 {
        bail!(
            "preflight: the ALB rule is at stable {} / canary {}, not 100/0: a canary is in flight on `{name}`\nhint: see `suma deploy status --env {name}`, then `suma deploy resume` or `suma deploy abort`",
            traffic.stable_weight,
            traffic.canary_weight
        );
    }
    let queries = query_set(env.metrics.provider, &env.canary);
    let vars = QueryVars {
        env: name.to_owned(),
        service: ecs.service.clone(),
        window: env.canary.window,
    };
    let stable = Side {
        deployment: "stable".to_owned(),
        version: String::new(),
    };
    crate::metrics::read(metrics, &crate::metrics::render_kind(&queries.samples, &vars, &stable))
        .await
        .context("preflight: the metric provider does not answer")?;
    Ok(())
}

/// `suma deploy canary|bluegreen`: a new deploy of `args.image` with `strategy`.
pub async fn start(ctx: &Context, args: &CanaryArgs, strategy: Strategy) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    if !args.image.contains(':') || args.image.ends_with(":latest") {
        bail!(usage!("`--image {}` must name a pinned tag, e.g. `repo/auth-service:1.5.0`\nhint: `latest` cannot be rolled back to reliably", args.image));
    }
    // A template is rendered and validated before any AWS call, with the canary's image.
    let template = args
        .taskdef_template
        .as_ref()
        .map(|path| crate::taskdef::template_path(path.as_deref(), &ctx.settings.config_path.value));
    let rendered_td = match &template {
        Some(path) => Some(crate::taskdef::render_spec(name, env, path, Some(&args.image), &[])?),
        None => None,
    };
    // The hooks' runbooks too: each must load, only read, and have its parameters.
    let hook_problems = hook_problems(env, &config_dir(ctx));
    if !hook_problems.is_empty() {
        bail!(usage!(
            "the runbook hooks of `{name}` cannot run:\n  {}\nhint: a hook's runbook only checks (no `manual`, `confirm` or changing action) and gets its parameters from the hook's `params`",
            hook_problems.join("\n  ")
        ));
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let mut engine = engine(ctx, name, env, &session, args.timeout)?;
    let plan = strategy.plan(name, env, &args.image, template.as_deref());
    let queries = query_set(env.metrics.provider, &env.canary);
    let vars = QueryVars {
        env: name.to_owned(),
        service: env.ecs.service.clone(),
        window: env.canary.window,
    };
    let canary_side = Side {
        deployment: "canary".to_owned(),
        version: canary::version_of(&args.image),
    };
    let rendered = rendered_queries(&queries, &vars, &canary_side);
    let mut op = Operation::new(strategy.kind(), name, &ctx.settings.actor.value, plan.clone());
    op.parameters.insert("image".to_owned(), json!(args.image));
    if args.force {
        // Why the alerting-monitor gate was overridden, kept with the operation.
        op.parameters.insert("force_reason".to_owned(), json!(args.reason));
    }
    if let (Some(path), Some(spec)) = (&template, &rendered_td) {
        op.parameters.insert("taskdef_template".to_owned(), json!(path));
        op.parameters.insert(canary::TEMPLATE_PARAMETER.to_owned(), json!(spec));
    }

    // The lock comes first, so a second deploy is refused by it rather than by the first one's traffic
    // split; a dry run changes nothing and takes no lock.
    let guard = if args.mutation.dry_run {
        None
    } else {
        ctx.reporter.phase(&format!("locking `{name}`"));
        Some(ctx.locks(&session).acquire(&op, false).await?)
    };
    ctx.reporter.phase(&format!("preflight on `{name}`"));
    let ready = async {
        preflight(name, env, engine.aws.as_ref(), engine.metrics.as_ref()).await?;
        suma_ops::events::refuse_if_gates_alerting(name, env, args.force, ctx.reporter.as_ref()).await?;
        ctx.reporter.finish();
        if guard.is_none() {
            return Ok(false);
        }
        ctx.reporter
            .info(&crate::render::deploy::plan(&plan, &rendered, &env.canary));
        let confirmed = crate::render::confirm(
            &format!("start a {} of `{}` on `{name}`", strategy.noun(), args.image),
            args.mutation.yes,
        )?;
        anyhow::Ok(confirmed)
    }
    .await;
    ctx.reporter.finish();
    let guard = match (ready, guard) {
        (Ok(true), Some(guard)) => guard,
        (ready, guard) => {
            if let Some(guard) = guard {
                guard
                    .release()
                    .await
                    .with_context(|| format!("cannot release the lock of `{name}` after the preflight"))?;
            }
            if !ready? {
                if args.mutation.dry_run {
                    let report = json!({
                        "dry_run": true,
                        "environment": name,
                        "strategy": strategy,
                        "image": args.image,
                        "plan": plan,
                        "task_definition": rendered_td,
                        "queries": rendered,
                        "thresholds": {"max_error_rate": env.canary.max_error_rate, "max_p95_latency_ms": env.canary.max_p95_latency_ms,
                            "min_samples": env.canary.min_samples, "failure_limit": env.canary.failure_limit,
                            "consecutive_error_limit": env.canary.consecutive_error_limit, "no_data": env.canary.no_data},
                    });
                    ctx.printer
                        .either(&report, || crate::render::deploy::plan(&plan, &rendered, &env.canary));
                    return Ok(ExitStatus::Success);
                }
                ctx.reporter.info("not confirmed; nothing changed");
            }
            return Ok(ExitStatus::No);
        }
    };
    let guard = guard.begin(&engine.journal, &op).await?;
    ctx.reporter.info(&format!("operation `{}` started", op.id));
    engine.notifier = notifier(ctx, env, &session).await;
    engine
        .notifier
        .send(&DeployEvent::of(env, &op, NotificationEvent::Start, None))
        .await;
    let outcome = engine.run(&mut op, &guard).await;
    finish(ctx, env, &engine.notifier, guard, &op, outcome).await
}

/// The Datadog event of a finished canary: service, environment, version, who, and how long it took.
async fn record_event(ctx: &Context, env: &Environment, op: &Operation, outcome: &Outcome) {
    let image = op.parameters.get("image").and_then(|v| v.as_str()).unwrap_or_default();
    let version = canary::version_of(image);
    let service = &env.ecs.service;
    let (title, alert) = match outcome {
        Outcome::Promoted => (
            format!("{service} {version} promoted on {}", op.environment),
            EventAlert::Success,
        ),
        Outcome::RolledBack { reason } => (
            format!("{service} {version} rolled back on {}: {reason}", op.environment),
            EventAlert::Error,
        ),
        Outcome::Aborted { by } => (
            format!(
                "{service} {version} {} aborted on {} by {by}",
                Strategy::of(&op.kind).noun(),
                op.environment
            ),
            EventAlert::Info,
        ),
        Outcome::Interrupted { .. } => return,
    };
    let took = (op.updated_at - op.started_at).to_std().unwrap_or_default();
    let text = format!(
        "service: {service}\nenvironment: {}\nimage: {image}\nstarted by: {}\nduration: {}\noperation: {}",
        op.environment,
        op.actor,
        humantime::format_duration(std::time::Duration::from_secs(took.as_secs())),
        op.id
    );
    let tags = [
        format!("service:{service}"),
        format!("env:{}", op.environment),
        format!("version:{version}"),
        "source:suma".to_owned(),
    ];
    suma_ops::events::post(env, ctx.reporter.as_ref(), &title, &text, &tags, alert).await;
}

async fn finish(
    ctx: &Context,
    env: &Environment,
    notifier: &Notifier,
    guard: crate::journal::lock::LockGuard,
    op: &Operation,
    outcome: Result<Outcome, canary::EngineError>,
) -> anyhow::Result<ExitStatus> {
    ctx.reporter.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // Keep the lock for `resume` or `abort`, which may take it over at once.
            guard.settle(op).await?;
            let finish = crate::render::deploy::how_to_finish(op);
            let noun = Strategy::of(&op.kind).noun();
            return Err(
                anyhow::Error::from(e).context(format!("{noun} `{}` is unfinished; finish it with {finish}", op.id))
            );
        }
    };
    let status = match &outcome {
        Outcome::Promoted => ExitStatus::Success,
        Outcome::RolledBack { .. } | Outcome::Aborted { .. } => ExitStatus::No,
        Outcome::Interrupted { .. } => ExitStatus::Interrupted,
    };
    record_event(ctx, env, op, &outcome).await;
    let told = match &outcome {
        Outcome::Promoted => Some((NotificationEvent::Promote, None)),
        Outcome::RolledBack { reason } => Some((NotificationEvent::Rollback, Some(reason.clone()))),
        Outcome::Aborted { by } => Some((NotificationEvent::Abort, Some(format!("aborted by {by}")))),
        Outcome::Interrupted { .. } => None,
    };
    if let Some((event, reason)) = told {
        notifier.send(&DeployEvent::of(env, op, event, reason)).await;
    }
    guard
        .settle(op)
        .await
        .context("the operation finished but its lock could not be released")?;
    let summary = canary::summary(op);
    ctx.printer.either(
        &json!({"outcome": outcome, "summary": summary, "operation": op}),
        || crate::render::deploy::outcome(&outcome, op),
    );
    Ok(status)
}

/// The operation holding the environment's lock, with whether its runner is alive.
async fn current(ctx: &Context, name: &str, session: &AwsSession) -> anyhow::Result<Option<(Operation, bool)>> {
    let Some(lock) = ctx.locks(session).status(name).await? else {
        return Ok(None);
    };
    let op = ctx.journal(session).load(&lock.operation_id).await?.with_context(|| {
        format!(
            "the lock names operation `{}`, which is not in the journal",
            lock.operation_id
        )
    })?;
    Ok(Some((op, lock.lease_active)))
}

pub async fn status(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let op = match current(ctx, name, &session).await? {
        Some((op, alive)) => Some((op, alive)),
        None => ctx
            .journal(&session)
            .list(name, 50)
            .await?
            .into_iter()
            .find(|op| canary::is_deploy(&op.kind))
            .map(|op| (op, false)),
    };
    let weights = session
        .elb(&env.primary_region)
        .rule_weights(env.alb.rule_arn.as_str())
        .await?;
    let traffic = classify_traffic(
        env.alb.rule_arn.as_str(),
        env.alb.stable_target_group_arn.as_str(),
        env.alb.canary_target_group_arn.as_str(),
        weights,
    );
    let report = json!({"environment": name, "traffic": traffic, "operation": op.as_ref().map(|(o, _)| o),
        "runner_alive": op.as_ref().map(|(_, alive)| alive)});
    ctx.printer
        .either(&report, || crate::render::deploy::status(name, &traffic, op.as_ref()));
    Ok(ExitStatus::Success)
}

/// `pause`, `resume`, `abort`, `promote`: sent to a live runner, or carried out here when it died.
pub async fn control(ctx: &Context, command: &str, args: &ControlArgs) -> anyhow::Result<ExitStatus> {
    control_with(ctx, command, args.yes, None, &args.takeover).await
}

pub async fn abort(ctx: &Context, args: &AbortArgs) -> anyhow::Result<ExitStatus> {
    control_with(
        ctx,
        "abort",
        args.control.yes,
        args.reason.as_deref(),
        &args.control.takeover,
    )
    .await
}

pub async fn promote(ctx: &Context, args: &PromoteArgs) -> anyhow::Result<ExitStatus> {
    control_with(ctx, "promote", args.yes, args.reason.as_deref(), &args.takeover).await
}

/// Sends `command` to the canary's runner, or carries it out here when the runner died. The journal
/// attributes it to the actor, with the reason when one was given.
async fn control_with(
    ctx: &Context,
    command: &str,
    yes: bool,
    reason: Option<&str>,
    takeover: &TakeoverArgs,
) -> anyhow::Result<ExitStatus> {
    super::check_reason(reason)?;
    let attribution = match reason {
        Some(reason) => format!("{} ({reason})", ctx.settings.actor.value),
        None => ctx.settings.actor.value.clone(),
    };
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let Some((mut op, alive)) = current(ctx, name, &session).await? else {
        bail!("no operation holds the lock of `{name}`: there is no canary to {command}\nhint: `suma deploy status --env {name}` shows the last one");
    };
    if !canary::is_deploy(&op.kind) {
        bail!(
            "`{name}` is locked by a {} operation (`{}`), not a deploy",
            op.kind,
            op.id
        );
    }
    let noun = Strategy::of(&op.kind).noun();
    if !crate::render::confirm(&format!("{command} {noun} `{}` on `{name}`", op.id), yes)? {
        return Ok(ExitStatus::No);
    }
    if alive {
        ctx.journal(&session)
            .table()
            .put_control(name, &op.id, command, &attribution)
            .await
            .with_context(|| format!("operation `{}` no longer holds `{name}`; nothing was sent", op.id))?;
        ctx.printer.either(&json!({"sent": command, "operation": op.id}), || {
            format!(
                "sent `{command}` to operation `{}`; its runner acts on it at the next analysis tick",
                op.id
            )
        });
        return Ok(ExitStatus::Success);
    }
    if command == "pause" {
        bail!("the runner of `{}` is not running (its lease expired): nothing to pause\nhint: `suma deploy resume` or `suma deploy abort`", op.id);
    }
    if command == "promote" {
        if let Some(decision) = &op.decision {
            bail!("{noun} `{}` decided to roll back ({}): it cannot be promoted\nhint: `suma deploy resume --env {name}` finishes the rollback", op.id, decision.reason);
        }
        if !canary::came_up(&op) {
            bail!("{noun} `{}` never came up: there is nothing to promote\nhint: `suma deploy resume --env {name}` continues it, `suma deploy abort --env {name}` ends it", op.id);
        }
    }
    // The runner died: take its lease over and finish here.
    let mut engine = engine(ctx, name, env, &session, takeover.timeout)?;
    engine.notifier = notifier(ctx, env, &session).await;
    let guard = ctx.locks(&session).acquire(&op, true).await?;
    op.note(
        &ctx.settings.actor.value,
        format!("{command} taken over by {attribution}"),
    );
    op.set_status(OperationStatus::Running);
    let outcome = match command {
        "abort" => engine.abort(&mut op, &guard, &ctx.settings.actor.value).await,
        "promote" => {
            // Skip what is left of the analysis; the promotion step runs next.
            let promote_index = canary::promote_index(&op);
            let mut index = op.next_step();
            while index < promote_index {
                op.start_step(index);
                op.finish_step(
                    StepStatus::Skipped,
                    Some(format!("skipped by {}", ctx.settings.actor.value)),
                    Default::default(),
                );
                index += 1;
            }
            engine.run(&mut op, &guard).await
        }
        _ => engine.run(&mut op, &guard).await,
    };
    finish(ctx, env, &engine.notifier, guard, &op, outcome).await
}
