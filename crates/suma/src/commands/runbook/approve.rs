//! `suma runbook approve RUN [--step ID]`: one person's approval of a run's `approve` step, recorded under
//! the AWS identity their credentials resolve to (STS), never under the name they give. The run itself
//! counts the approvals when it reaches or resumes at the step; this command only records one, and says
//! how many the step has and needs.

use anyhow::{bail, Context as _};
use serde_json::json;

use super::{environment_regions, unfinished, Context};
use crate::aws::dynamodb::ApprovalItem;
use crate::aws::AwsErrorKind;
use crate::cli::RunbookApproveArgs;
use crate::exit::ExitStatus;
use crate::runbook::approval;

pub(super) async fn approve(ctx: &Context, args: &RunbookApproveArgs) -> anyhow::Result<ExitStatus> {
    let (_, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let (op, loaded) = unfinished(ctx, &session, &args.run_id).await?;
    let target = approval::target(&op, &loaded.runbook, args.step.as_deref()).map_err(anyhow::Error::msg)?;
    let identity = session
        .caller_identity()
        .await
        .context("who is approving: the AWS credentials must resolve to an identity (STS GetCallerIdentity)")?;
    let needed = target
        .needed
        .map_or("the count the run resolves".to_owned(), |n| n.to_string());
    if args.mutation.dry_run {
        ctx.printer.either(
            &json!({"dry_run": true, "plan": super::super::one_step_plan("approve", format!("record {identity}'s approval of step `{}` of run `{}`", target.step, op.id)), "target": target, "identity": identity}),
            || format!("would record {identity}'s approval of step `{}` of run `{}` ({}; {needed} needed)", target.step, op.id, target.summary),
        );
        return Ok(ExitStatus::Success);
    }
    if !crate::render::confirm(
        &format!(
            "approve step `{}` of run `{}` ({}) as {identity}",
            target.step, op.id, target.summary
        ),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let given = ApprovalItem::now(identity.clone(), &ctx.settings.actor.value, args.reason.clone());
    let table = ctx.journal(&session).table().clone();
    match table.add_approval(&op.id, &target.step, &given).await {
        Err(e) if e.kind == AwsErrorKind::ConditionFailed => bail!(
            "{identity} has already approved step `{}` of run `{}`; an identity counts once\nhint: another approver runs `suma runbook approve {}` with their own AWS credentials",
            target.step,
            op.id,
            op.id
        ),
        other => other.with_context(|| format!("recording the approval of step `{}` of run `{}`", target.step, op.id))?,
    }
    let approvals = table.list_approvals(&op.id, &target.step).await?;
    let enough = target.needed.is_some_and(|n| approvals.len() >= n);
    ctx.printer.either(
        &json!({"run": op.id, "step": target.step, "approval": given, "approvals": approvals, "needed": target.needed, "enough": enough}),
        || {
            let next = if enough {
                format!("`suma runbook resume {}` goes on", op.id)
            } else {
                "the run goes on once enough approved".to_owned()
            };
            format!(
                "approved step `{}` of run `{}` as {identity}: {} of {needed} approvals; {next}",
                target.step,
                op.id,
                approvals.len()
            )
        },
    );
    Ok(ExitStatus::Success)
}
