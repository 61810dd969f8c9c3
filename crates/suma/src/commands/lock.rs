//! `suma lock status|release --force`.

use anyhow::Context as _;
use serde::Serialize;
use suma_core::usage;

use super::Context;
use crate::cli::MutationArgs;
use crate::exit::ExitStatus;

pub async fn status(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), []).await;
    let lock = ctx
        .locks(&session)
        .status(name)
        .await
        .with_context(|| format!("cannot read the lock of `{name}`"))?;
    #[derive(Serialize)]
    struct LockStatus<'a> {
        environment: &'a str,
        locked: bool,
        lock: Option<crate::journal::lock::LockInfo>,
    }
    let report = LockStatus {
        environment: name,
        locked: lock.is_some(),
        lock,
    };
    ctx.printer.either(&report, || {
        format!("{name}: {}", crate::render::status::lock_line(report.lock.as_ref()))
    });
    Ok(ExitStatus::Success)
}

pub async fn release(ctx: &Context, reason: &str, mutation: &MutationArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    if reason.trim().is_empty() {
        anyhow::bail!(usage!(
            "`--reason` is empty\nhint: say why the lock is being broken; it is kept in the journal"
        ));
    }
    let session = ctx.aws(env.aws_profile.as_deref(), []).await;
    let locks = ctx.locks(&session);
    let current = locks
        .status(name)
        .await
        .with_context(|| format!("cannot read the lock of `{name}`"))?;
    let Some(current) = current else {
        return Ok(nothing_to_release(ctx, name, "not locked"));
    };
    let plan = format!(
        "force-release the lock of `{name}` held by {} for {} `{}` ({}); the operation is marked abandoned if unfinished",
        current.holder, current.operation_kind, current.operation_id, current.operation_status
    );
    if mutation.dry_run {
        ctx.printer.either(
            &serde_json::json!({"dry_run": true, "plan": super::one_step_plan("force-release", plan.clone())}),
            || format!("plan (dry run, nothing changed):\n  1. {plan}"),
        );
        return Ok(ExitStatus::Success);
    }
    ctx.reporter.info(&format!("plan: {plan}"));
    if !crate::render::confirm(&format!("force-release the lock of `{name}`"), mutation.yes)? {
        ctx.reporter.info("not confirmed; nothing changed");
        return Ok(ExitStatus::No);
    }
    let journal = ctx.journal(&session);
    let released = crate::lock_release::force_release(
        &locks,
        &journal,
        ctx.reporter.as_ref(),
        &ctx.cancel,
        name,
        &ctx.settings.actor.value,
        reason,
    )
    .await
    .with_context(|| format!("cannot force-release the lock of `{name}`"))?;
    let Some(released) = released else {
        return Ok(nothing_to_release(ctx, name, "released meanwhile"));
    };
    ctx.printer.either(&released, || {
        let mut text = format!("{name}: lock released (journal record `{}`)", released.record_id);
        if let Some(op) = &released.abandoned_operation {
            text.push_str(&format!(
                "\noperation `{op}` is marked abandoned; check the environment with `suma status`"
            ));
        }
        text
    });
    Ok(ExitStatus::Success)
}

/// The answer when there is no lock to release (`why`: not locked, or released meanwhile by its holder).
fn nothing_to_release(ctx: &Context, name: &str, why: &str) -> ExitStatus {
    ctx.printer.either(
        &serde_json::json!({"environment": name, "released": false, "reason": "not locked"}),
        || format!("{name}: {why}; nothing to release"),
    );
    ExitStatus::Success
}
