//! `suma rollback`: plans with `suma_ops::rollback`, prints the plan or asks, then runs it under the
//! environment lock and announces the outcome. What holds the lock decides how it starts:
//! - nothing: a new rollback;
//! - a deploy (canary or blue/green) in flight: the rollback takes its lock over and journals it as
//!   superseded, one operation with no moment when the environment is unlocked; its `restore-weights`
//!   step puts the deploy's traffic back on stable first. A runner that is still alive is fenced out
//!   (seized under a new fence): it stops at its next renew or journal write, and `restore-weights`
//!   checks the weights again once its lease has surely ended;
//! - a rollback whose runner died: it is resumed (`suma rollback resume`, or a new `suma rollback`), or
//!   ended with `suma rollback abort`.

use std::sync::Arc;
use std::time::Duration;
use suma_core::usage;

use anyhow::{bail, Context as _};
use serde_json::json;

use super::{check_reason, environment_regions, Context, Finish, Unfinished};
use crate::aws::{AwsApis, AwsSession};
use crate::cli::{RollbackArgs, RollbackCommand};
use crate::config::Environment;
use crate::exit::ExitStatus;
use crate::journal::lock::LockGuard;
use crate::journal::{Operation, OperationStatus};
use crate::rollback::{abort, announce, execute, prepare, KIND};

pub async fn rollback(ctx: &Context, args: &RollbackArgs) -> anyhow::Result<ExitStatus> {
    let unfinished = match &args.unfinished {
        Some(RollbackCommand::Resume(resume)) => Some(Unfinished {
            finish_with: Finish::Resume,
            timeout: resume.timeout,
            mutation: &resume.mutation,
            reason: None,
        }),
        Some(RollbackCommand::Abort(abort)) => Some(Unfinished {
            finish_with: Finish::Abort,
            timeout: abort.unfinished.timeout,
            mutation: &abort.unfinished.mutation,
            reason: abort.reason.as_deref(),
        }),
        None => None,
    };
    if let Some(unfinished) = unfinished {
        return finish_interrupted(ctx, &unfinished).await;
    }
    let (name, env) = ctx.environment()?;
    let reason = args.reason.as_deref().unwrap_or_default();
    if reason.trim().is_empty() {
        bail!(usage!(
            "`--reason` is empty\nhint: say why; it is kept in the journal and the deployment event"
        ));
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let aws: Arc<dyn AwsApis> = Arc::new(session.clone());
    let journal = ctx.journal(&session);
    let held = held_operation(ctx, &session, name).await?;
    if let Some((op, alive)) = &held {
        if op.kind == KIND {
            if *alive {
                bail!(
                    "rollback `{}` is running on `{name}` (by {})\nhint: `suma ops show {}` follows it",
                    op.id,
                    op.actor,
                    op.id
                );
            }
            // The deprecated `--abort` ends it; a new rollback resumes it (the same intent).
            let unfinished = Unfinished {
                finish_with: if args.abort { Finish::Abort } else { Finish::Resume },
                timeout: args.timeout,
                mutation: &args.mutation,
                reason: Some(reason),
            };
            return continue_interrupted(ctx, &unfinished, env, &session, op.clone()).await;
        }
    }
    if args.abort {
        bail!("there is no interrupted rollback on `{name}` to abort");
    }
    let prepared = prepare(name, env, aws.as_ref(), &journal, &args.to).await?;
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
    let canary = held.as_ref().filter(|(op, _)| crate::canary::is_deploy(&op.kind));
    let question = match canary {
        Some((op, _)) => format!(
            "take over {} `{}` and roll `{}` on `{name}` back to {target_label}",
            crate::canary::Strategy::of(&op.kind).noun(),
            op.id,
            cfg.service
        ),
        None => format!("roll `{}` on `{name}` back to {target_label}", cfg.service),
    };
    if !crate::render::confirm(&question, args.mutation.yes)? {
        return Ok(ExitStatus::No);
    }
    let actor = ctx.settings.actor.value.clone();
    let mut op = prepared.operation(name, &actor, &args.to, reason);
    let locks = ctx.locks(&session);
    let guard = match canary {
        Some((canary, true)) => {
            let held = locks.held(name).await?.with_context(|| {
                format!("the lock of `{name}` was released while the rollback started: run it again")
            })?;
            locks
                .supersede_live(&journal, &mut op, canary.clone(), &held, reason)
                .await?
        }
        Some((canary, false)) => locks.supersede(&journal, &mut op, canary.clone(), reason).await?,
        None => locks.acquire(&op, false).await?,
    };
    let guard = guard.begin(&journal, &op).await?;
    run_and_report(ctx, args.timeout, env, &session, op, guard).await
}

/// The unfinished operation holding `name`'s lock, with whether its runner is alive.
async fn held_operation(ctx: &Context, session: &AwsSession, name: &str) -> anyhow::Result<Option<(Operation, bool)>> {
    let Some(lock) = ctx.locks(session).status(name).await? else {
        return Ok(None);
    };
    let Some(op) = ctx.journal(session).load(&lock.operation_id).await? else {
        return Ok(None);
    };
    Ok((!op.status.is_finished()).then_some((op, lock.lease_active)))
}

/// `suma rollback resume|abort`: the interrupted rollback holding the lock, finished as asked.
async fn finish_interrupted(ctx: &Context, args: &Unfinished<'_>) -> anyhow::Result<ExitStatus> {
    check_reason(args.reason)?;
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let held = held_operation(ctx, &session, name).await?;
    let Some((op, alive)) = held.filter(|(op, _)| op.kind == KIND) else {
        bail!(
            "there is no interrupted rollback on `{name}` to {}\nhint: `suma ops list --env {name}` shows the recorded operations",
            args.finish_with.verb()
        );
    };
    if alive {
        bail!(
            "rollback `{}` is running on `{name}` (by {})\nhint: `suma ops show {}` follows it",
            op.id,
            op.actor,
            op.id
        );
    }
    continue_interrupted(ctx, args, env, &session, op).await
}

/// Resumes or ends the rollback whose runner died.
async fn continue_interrupted(
    ctx: &Context,
    args: &Unfinished<'_>,
    env: &Environment,
    session: &AwsSession,
    mut op: Operation,
) -> anyhow::Result<ExitStatus> {
    let what = args.finish_with.verb();
    let target = op
        .parameters
        .get("target_label")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if args.mutation.dry_run {
        ctx.printer
            .either(&json!({"dry_run": true, "plan": op.plan, what: op.id}), || {
                format!("would {what} interrupted rollback `{}` to {target}", op.id)
            });
        return Ok(ExitStatus::Success);
    }
    let question = format!(
        "{what} interrupted rollback `{}` to {target} (started by {})",
        op.id, op.actor
    );
    let Some(guard) = args.take_over(ctx, session, &mut op, &question, true).await? else {
        return Ok(ExitStatus::No);
    };
    let actor = ctx.settings.actor.value.clone();
    if args.finish_with == Finish::Resume {
        return run_and_report(ctx, args.timeout, env, session, op, guard).await;
    }
    let aws: Arc<dyn AwsApis> = Arc::new(session.clone());
    let journal = ctx.journal(session);
    let reporter = ctx.reporter.as_ref();
    let result = abort(
        env,
        aws.as_ref(),
        &journal,
        reporter,
        &ctx.cancel,
        &mut op,
        &guard,
        &actor,
    )
    .await;
    finish_lock(guard, &op).await?;
    ctx.reporter.finish();
    let note = result?;
    ctx.printer
        .either(&json!({"aborted": op.id, "note": note, "operation": op}), || {
            format!("rollback `{}` aborted: {note}", op.id)
        });
    Ok(ExitStatus::No)
}

async fn run_and_report(
    ctx: &Context,
    timeout: Duration,
    env: &Environment,
    session: &AwsSession,
    mut op: Operation,
    guard: LockGuard,
) -> anyhow::Result<ExitStatus> {
    let aws: Arc<dyn AwsApis> = Arc::new(session.clone());
    let journal = ctx.journal(session);
    let result = execute(
        env,
        aws.as_ref(),
        &journal,
        ctx.reporter.as_ref(),
        &ctx.cancel,
        &mut op,
        &guard,
        timeout,
    )
    .await;
    finish_lock(guard, &op).await?;
    ctx.reporter.finish();
    if op.status == OperationStatus::Interrupted {
        result?;
        return Ok(ExitStatus::Interrupted);
    }
    announce(&op.environment, env, ctx.reporter.as_ref(), &op, result.is_ok()).await;
    result?;
    let target_label = op
        .parameters
        .get("target_label")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    ctx.printer.either(&op, || {
        format!(
            "rolled back to {target_label}\n\n{}",
            crate::render::status::operation(&op)
        )
    });
    Ok(ExitStatus::Success)
}

/// Releases the lock of a finished rollback; an interrupted one keeps it for `suma rollback resume` or `abort`.
async fn finish_lock(guard: LockGuard, op: &Operation) -> anyhow::Result<()> {
    guard
        .settle(op)
        .await
        .context("the rollback ended but its lock could not be released")
}
