//! `suma secrets list|status|rotate`: the managed secrets' age against policy, and their rotation through
//! the Secrets Manager protocol (`crate::secrets`), journaled under the environment lock.

use anyhow::{bail, Context as _};
use chrono::Utc;
use serde_json::json;
use suma_core::usage;

use super::{check_reason, environment_regions, Context, Finish, Unfinished};
use crate::aws::secrets::AWSPREVIOUS;
use crate::aws::AwsSession;
use crate::cli::{SecretsAbortArgs, SecretsContinueArgs, SecretsListArgs, SecretsRetireArgs, SecretsRotateArgs};
use crate::config::{Environment, ManagedSecret, SecretKind};
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, StepStatus};
use crate::secrets::setup::{find, refuse_during_overlap, retirable_at, rotation, rotator};
use crate::secrets::{self, Outcome};

pub async fn list(ctx: &Context, args: &SecretsListArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let rows = secrets::listing::rows(env, &session).await;
    ctx.printer.either(&json!({"environment": name, "secrets": rows}), || {
        crate::render::secrets::list(&rows)
    });
    if rows.iter().any(|r| r.error.is_some()) {
        return Ok(ExitStatus::Error);
    }
    if args.fail_on_due && rows.iter().any(|r| r.due) {
        return Ok(ExitStatus::No);
    }
    Ok(ExitStatus::Success)
}

pub async fn rotate(ctx: &Context, args: &SecretsRotateArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    // Names are checked before any AWS call.
    let named = args.name.as_deref().map(|n| find(env, name, n)).transpose()?;
    let candidates: Vec<&ManagedSecret> = named.map_or_else(|| env.secrets.iter().collect(), |s| vec![s]);
    for secret in candidates {
        if secret.kind.is_database() && secret.database.is_none() {
            bail!(usage!(
                "the `{}` secret `{}` of `{name}` has no `database` section: suma cannot set the new password\nhint: add `database: {{ admin_secret: NAME }}` (or `database: {{ rds_master: INSTANCE }}` for an RDS master user) to it in the configuration",
                secret.kind.as_str(),
                secret.id
            ));
        }
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    if args.resume || args.abort {
        // The deprecated spellings `rotate NAME --resume` and `--abort` (a warning was printed).
        let secret = named.expect("clap: the deprecated --resume and --abort require NAME");
        let finish_with = if args.abort { Finish::Abort } else { Finish::Resume };
        let unfinished = Unfinished {
            finish_with,
            timeout: args.timeout,
            mutation: &args.mutation,
            reason: None,
        };
        return continue_rotation(ctx, name, env, secret, &session, &unfinished).await;
    }
    let targets: Vec<&ManagedSecret> = match named {
        Some(secret) => vec![secret],
        None => {
            let rows = secrets::listing::rows(env, &session).await;
            if let Some(row) = rows.iter().find(|r| r.error.is_some()) {
                bail!(
                    "cannot tell whether `{}` is due: {}",
                    row.id,
                    row.error.as_deref().unwrap_or_default()
                );
            }
            env.secrets
                .iter()
                .filter(|s| rows.iter().any(|r| r.id == s.id && r.due))
                .collect()
        }
    };
    if targets.is_empty() {
        // A dry run says so in the one dry-run shape even when there is nothing to plan.
        let report = if args.mutation.dry_run {
            json!({"dry_run": true, "environment": name, "secrets": [], "plan": []})
        } else {
            json!({"environment": name, "rotated": []})
        };
        ctx.printer
            .either(&report, || format!("no secret in `{name}` is past its policy"));
        return Ok(ExitStatus::Success);
    }
    let plans: Vec<(&ManagedSecret, Vec<crate::journal::PlannedStep>)> = targets
        .iter()
        .map(|s| (*s, secrets::plan(s, &env.ecs.cluster)))
        .collect();
    if args.mutation.dry_run {
        let report: Vec<_> = plans
            .iter()
            .map(|(s, p)| json!({"secret": s.id, "kind": s.kind.as_str(), "plan": p}))
            .collect();
        ctx.printer.either(
            &json!({"dry_run": true, "environment": name, "secrets": report,
                "plan": super::joined_plans(plans.iter().map(|(s, p)| (s.id.as_str(), &p[..])))}),
            || {
                plans
                    .iter()
                    .map(|(s, p)| crate::render::secrets::plan(&s.id, p))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
        return Ok(ExitStatus::Success);
    }
    for (secret, plan) in &plans {
        ctx.reporter.info(&crate::render::secrets::plan(&secret.id, plan));
    }
    let ids: Vec<&str> = targets.iter().map(|s| s.id.as_str()).collect();
    if !crate::render::confirm(&format!("rotate {} on `{name}`", ids.join(", ")), args.mutation.yes)? {
        return Ok(ExitStatus::No);
    }
    for secret in &targets {
        if secret.kind == SecretKind::JwtSigningKey {
            refuse_during_overlap(ctx, name, secret, &session).await?;
        }
    }
    let mut reports = Vec::new();
    let mut exit = ExitStatus::Success;
    for (secret, plan) in plans {
        let mut op = Operation::new(secrets::KIND, name, &ctx.settings.actor.value, plan);
        op.parameters.insert("secret".to_owned(), json!(secret.id));
        op.parameters.insert("kind".to_owned(), json!(secret.kind.as_str()));
        // The client request token: the new version's id, fixed before anything is written.
        op.parameters
            .insert("token".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
        let guard = ctx.locks(&session).acquire(&op, false).await?;
        let engine = rotator(ctx, env, secret, &session, args.timeout);
        let kind = rotation(env, secret, &session)?;
        let guard = guard.begin(&engine.journal, &op).await?;
        ctx.reporter
            .info(&format!("operation `{}`: rotating `{}`", op.id, secret.id));
        let outcome = engine.run(&mut op, kind.as_ref(), &guard).await;
        ctx.reporter.finish();
        let settled = guard
            .settle(&op)
            .await
            .context("the rotation finished but its lock could not be released");
        let outcome = outcome?;
        settled?;
        let this_exit = match &outcome {
            Outcome::Rotated { .. } => ExitStatus::Success,
            Outcome::Failed { .. } | Outcome::Aborted => ExitStatus::No,
            Outcome::Interrupted { .. } => ExitStatus::Interrupted,
        };
        reports.push(json!({"secret": secret.id, "outcome": outcome, "operation": op}));
        if this_exit != ExitStatus::Success {
            exit = this_exit;
            break;
        }
    }
    ctx.printer
        .either(&json!({"environment": name, "rotations": reports}), || {
            crate::render::secrets::outcomes(&reports)
        });
    Ok(exit)
}

/// `suma secrets resume NAME`.
pub async fn resume(ctx: &Context, args: &SecretsContinueArgs) -> anyhow::Result<ExitStatus> {
    let unfinished = Unfinished {
        finish_with: Finish::Resume,
        timeout: args.timeout,
        mutation: &args.mutation,
        reason: None,
    };
    continue_named(ctx, &args.name, &unfinished).await
}

/// `suma secrets abort NAME`.
pub async fn abort(ctx: &Context, args: &SecretsAbortArgs) -> anyhow::Result<ExitStatus> {
    check_reason(args.reason.as_deref())?;
    let unfinished = Unfinished {
        finish_with: Finish::Abort,
        timeout: args.unfinished.timeout,
        mutation: &args.unfinished.mutation,
        reason: args.reason.as_deref(),
    };
    continue_named(ctx, &args.unfinished.name, &unfinished).await
}

async fn continue_named(ctx: &Context, secret: &str, unfinished: &Unfinished<'_>) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let secret = find(env, name, secret)?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    continue_rotation(ctx, name, env, secret, &session, unfinished).await
}

/// `resume` and `abort`: the unfinished rotation of `secret`, from the journal.
async fn continue_rotation(
    ctx: &Context,
    name: &str,
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
    args: &Unfinished<'_>,
) -> anyhow::Result<ExitStatus> {
    let journal = ctx.journal(session);
    let lock = ctx.locks(session).status(name).await?;
    let candidates = journal.list(name, 100).await?;
    let found = candidates
        .into_iter()
        .find(|op| {
            op.kind == secrets::KIND
                && op.parameters.get("secret").and_then(|v| v.as_str()) == Some(secret.id.as_str())
                && !op.status.is_finished()
        })
        .with_context(|| format!("no unfinished rotation of `{}` in `{name}`'s journal", secret.id))?;
    // The listing may lag the last save by a moment: what resumes is the record read consistently.
    let mut op = journal.load(&found.id).await?.unwrap_or(found);
    let verb = args.finish_with.verb();
    if let Some(lock) = &lock {
        if lock.operation_id == op.id && lock.lease_active {
            bail!(
                "the rotation `{}` is still running (its lease is live until {})\nhint: stop it first, or wait for the lease to run out",
                op.id,
                lock.expires_at.format("%H:%M:%S UTC")
            );
        }
    }
    if args.mutation.dry_run {
        return Ok(super::print_unfinished(ctx, &op));
    }
    let question = format!("{verb} the rotation `{}` of `{}`", op.id, secret.id);
    let takeover = lock.as_ref().is_some_and(|l| l.operation_id == op.id);
    let Some(guard) = args.take_over(ctx, session, &mut op, &question, takeover).await? else {
        return Ok(ExitStatus::No);
    };
    let engine = rotator(ctx, env, secret, session, args.timeout);
    let kind = rotation(env, secret, session)?;
    let outcome = if args.finish_with == Finish::Resume {
        engine.run(&mut op, kind.as_ref(), &guard).await
    } else {
        let actor = ctx.settings.actor.value.clone();
        engine.abort(&mut op, kind.as_ref(), &guard, &actor).await
    };
    ctx.reporter.finish();
    let settled = guard.settle(&op).await;
    let outcome = outcome?;
    settled?;
    let exit = match &outcome {
        Outcome::Rotated { .. } | Outcome::Aborted => ExitStatus::Success,
        Outcome::Failed { .. } => ExitStatus::No,
        Outcome::Interrupted { .. } => ExitStatus::Interrupted,
    };
    let reports = vec![json!({"secret": secret.id, "outcome": outcome, "operation": op})];
    ctx.printer
        .either(&json!({"environment": name, "rotations": reports}), || {
            crate::render::secrets::outcomes(&reports)
        });
    Ok(exit)
}

/// `suma secrets retire NAME`: removes AWSPREVIOUS from the previous JWT key once its overlap has passed; the
/// service drops it from its key set at its next reload.
pub async fn retire(ctx: &Context, args: &SecretsRetireArgs) -> anyhow::Result<ExitStatus> {
    check_reason(args.reason.as_deref())?;
    let (name, env) = ctx.environment()?;
    let secret = find(env, name, &args.name)?;
    if secret.kind != SecretKind::JwtSigningKey {
        bail!(usage!(
            "`{}` is a {} secret: only a `jwt-signing-key` keeps a verify-only previous version to retire",
            secret.id,
            secret.kind.as_str()
        ));
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let api = session.secret_versions(&env.primary_region);
    let meta = api.describe(&secret.id).await?;
    let Some(previous) = meta
        .versions
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == AWSPREVIOUS))
        .map(|(v, _)| v.clone())
    else {
        ctx.printer.either(&json!({"secret": secret.id, "retired": null}), || {
            format!("`{}` has no AWSPREVIOUS version: nothing to retire", secret.id)
        });
        return Ok(ExitStatus::Success);
    };
    if let Some(at) = retirable_at(ctx, name, secret, &session).await? {
        if at > Utc::now() && !args.force {
            bail!(
                "tokens signed by the previous key of `{}` may be valid until {}\nhint: retire after that, or pass `--force` to reject them now",
                secret.id,
                at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    let plan = super::one_step_plan(
        "retire",
        format!("remove AWSPREVIOUS from version `{previous}` of `{}`", secret.id),
    );
    if args.mutation.dry_run {
        ctx.printer.either(&json!({"dry_run": true, "plan": plan}), || {
            crate::render::secrets::plan(&secret.id, &plan)
        });
        return Ok(ExitStatus::Success);
    }
    if !crate::render::confirm(
        &format!("retire version `{previous}` of `{}`", secret.id),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let mut op = Operation::new("secret-retire", name, &ctx.settings.actor.value, plan);
    op.parameters.insert("secret".to_owned(), json!(secret.id));
    op.parameters.insert("force".to_owned(), json!(args.force));
    if args.force {
        op.parameters.insert("force_reason".to_owned(), json!(args.reason));
    }
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let journal = ctx.journal(&session);
    op.start_step(0);
    let guard = guard.begin(&journal, &op).await?;
    let result = api.remove_stage(&secret.id, AWSPREVIOUS, &previous).await;
    let status = if result.is_ok() {
        StepStatus::Succeeded
    } else {
        StepStatus::Failed
    };
    op.finish_step(
        status,
        result.as_ref().err().map(ToString::to_string),
        [("retired_version".to_owned(), json!(previous))].into(),
    );
    op.set_status(if result.is_ok() {
        OperationStatus::Succeeded
    } else {
        OperationStatus::Failed
    });
    journal.save(&op, Some(guard.fence())).await?;
    guard.release().await?;
    result?;
    ctx.printer.either(
        &json!({"secret": secret.id, "retired": previous, "operation": op.id}),
        || {
            format!(
                "retired version `{previous}` of `{}`: the service drops it at its next key reload",
                secret.id
            )
        },
    );
    Ok(ExitStatus::Success)
}
