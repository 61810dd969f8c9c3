//! `suma rollback`: plans with `suma_ops::rollback`, prints the plan or asks, then runs it under the
//! environment lock and announces the outcome.

use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use super::{environment_regions, Context};
use crate::aws::AwsApis;
use crate::cli::RollbackArgs;
use crate::exit::ExitStatus;
use crate::journal::Operation;
use crate::rollback::{announce, execute, prepare, KIND};

pub async fn rollback(ctx: &Context, args: &RollbackArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    if args.reason.trim().is_empty() {
        bail!("`--reason` is empty\nhint: say why; it is kept in the journal and the deployment event");
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let aws: Arc<dyn AwsApis> = Arc::new(session.clone());
    let journal = ctx.journal(&session);
    let mut prepared = prepare(name, env, aws.as_ref(), &journal, &args.to).await?;
    let plan = prepared.plan.clone();
    let target_label = prepared.target_label.clone();
    let cfg = &env.ecs;
    if args.mutation.dry_run {
        ctx.printer.either(&json!({"dry_run": true, "plan": plan}), || {
            let rows = plan
                .iter()
                .enumerate()
                .map(|(i, s)| [(i + 1).to_string(), s.name.clone(), s.detail.clone()]);
            format!(
                "plan (dry run, nothing changed):\n{}",
                crate::render::tables::table(["#", "STEP", "WHAT"], rows)
            )
        });
        return Ok(ExitStatus::Success);
    }
    if !crate::render::confirm(
        &format!("roll `{}` on `{name}` back to {target_label}", cfg.service),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let mut op = Operation::new(KIND, name, &ctx.settings.actor.value, plan);
    op.parameters.insert("to".to_owned(), json!(args.to));
    op.parameters.insert("reason".to_owned(), json!(args.reason));
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let result = execute(
        env,
        aws.as_ref(),
        &journal,
        ctx.reporter.as_ref(),
        &ctx.cancel,
        &mut op,
        &guard,
        &mut prepared,
        args.rollout_timeout,
    )
    .await;
    guard.release().await?;
    ctx.reporter.finish();
    announce(
        name,
        env,
        ctx.reporter.as_ref(),
        &op,
        &prepared,
        &args.reason,
        result.is_ok(),
    )
    .await;
    result?;
    ctx.printer.either(&op, || {
        format!(
            "rolled back to {target_label}\n\n{}",
            crate::render::status::operation(&op)
        )
    });
    Ok(ExitStatus::Success)
}
