//! `suma secrets list|status|rotate`: the managed secrets' age against policy, and their rotation through
//! the Secrets Manager protocol (`crate::secrets`), journaled under the environment lock.

use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::Utc;
use futures::future::join_all;
use serde::Serialize;
use serde_json::json;

use super::{environment_regions, Context};
use crate::aws::secrets::{AWSPENDING, AWSPREVIOUS};
use crate::aws::{AwsApis, AwsSession};
use crate::cli::{SecretsListArgs, SecretsRetireArgs, SecretsRotateArgs};
use crate::config::{Environment, ManagedSecret, SecretKind};
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, PlannedStep, StepStatus};
use crate::secrets::kinds::{DbPasswordRotation, JwtRotation, RandomRotation};
use crate::secrets::{self, Outcome, Rotation, Rotator};

/// One row of `suma secrets list`.
#[derive(Debug, Clone, Serialize)]
pub struct SecretRow {
    pub id: String,
    pub kind: &'static str,
    pub rotation_enabled: bool,
    pub last_rotated: Option<chrono::DateTime<Utc>>,
    pub age_days: Option<i64>,
    pub policy_days: u32,
    pub due: bool,
    /// Version id to its staging labels.
    pub versions: std::collections::BTreeMap<String, Vec<String>>,
    /// A version labelled AWSPENDING: a rotation started and did not finish.
    pub rotation_half_done: bool,
    pub consumers: Vec<String>,
    pub error: Option<String>,
}

async fn rows(env: &Environment, aws: &dyn AwsApis) -> Vec<SecretRow> {
    let api = aws.secrets(&env.primary_region);
    let now = Utc::now();
    let described = join_all(env.secrets.iter().map(|s| api.describe(&s.id))).await;
    env.secrets
        .iter()
        .zip(described)
        .map(|(managed, result)| {
            let mut row = SecretRow {
                id: managed.id.clone(),
                kind: managed.kind.as_str(),
                rotation_enabled: false,
                last_rotated: None,
                age_days: None,
                policy_days: managed.rotation_days,
                due: false,
                versions: Default::default(),
                rotation_half_done: false,
                consumers: managed.consumers.clone(),
                error: None,
            };
            match result {
                Ok(meta) => {
                    row.rotation_enabled = meta.rotation_enabled;
                    row.last_rotated = meta.last_rotated;
                    row.age_days = secrets::age_days(&meta, now);
                    row.due = secrets::is_due(&meta, managed.rotation_days, now);
                    row.rotation_half_done = meta.versions.values().any(|l| l.iter().any(|l| l == AWSPENDING));
                    row.versions = meta.versions;
                }
                Err(e) => row.error = Some(e.to_string()),
            }
            row
        })
        .collect()
}

pub async fn list(ctx: &Context, args: &SecretsListArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let rows = rows(env, &session).await;
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

/// The configured secret named `name`: its full id, or its last path segment.
pub(crate) fn find<'a>(env: &'a Environment, environment: &str, name: &str) -> anyhow::Result<&'a ManagedSecret> {
    let matches: Vec<&ManagedSecret> = env
        .secrets
        .iter()
        .filter(|s| s.id == name || s.id.rsplit('/').next() == Some(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no managed secret `{name}` in `{environment}`\nhint: configured: {}",
            env.secrets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
        ),
        _ => bail!("`{name}` names several secrets in `{environment}`\nhint: use the full id"),
    }
}

pub(crate) fn rotation(
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> anyhow::Result<Box<dyn Rotation>> {
    Ok(match secret.kind {
        SecretKind::Random => Box::new(RandomRotation {
            spec: secret.random.clone(),
        }),
        SecretKind::DbPassword => Box::new(DbPasswordRotation {
            secret_id: secret.id.clone(),
            spec: secret
                .database
                .clone()
                .expect("checked in `rotate`: db-password has `database`"),
            secrets: session.secret_versions(&env.primary_region),
            rds: session.rds(&env.primary_region),
            rds_timeout: Duration::from_secs(600),
            rds_poll: Duration::from_secs(5),
        }),
        SecretKind::JwtSigningKey => {
            let url = secret
                .jwt
                .service_url
                .as_ref()
                .or(env.url.as_ref())
                .expect("validated: a URL for the JWT checks");
            Box::new(JwtRotation {
                spec: secret.jwt.clone(),
                service_url: url.as_str().parse().context("the service URL")?,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .context("cannot build the HTTP client")?,
                poll: Duration::from_secs(1),
            })
        }
    })
}

pub(crate) fn rotator(
    ctx: &Context,
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
    timeout: Duration,
) -> Rotator {
    Rotator {
        secret: secret.clone(),
        secrets: session.secret_versions(&env.primary_region),
        ecs: session.ecs(&env.primary_region),
        cluster: env.ecs.cluster.clone(),
        journal: ctx.journal(session),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
        rollout_timeout: timeout,
        rollout_poll: Duration::from_secs(5),
        crash_after_step: crate::settings::EnvSource::var(
            &crate::settings::ProcessEnv,
            crate::env_vars::SUMA_FAULT_CRASH_AFTER_STEP,
        ),
    }
}

pub async fn rotate(ctx: &Context, args: &SecretsRotateArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    // Names are checked before any AWS call.
    let named = args.name.as_deref().map(|n| find(env, name, n)).transpose()?;
    let candidates: Vec<&ManagedSecret> = named.map_or_else(|| env.secrets.iter().collect(), |s| vec![s]);
    for secret in candidates {
        if secret.kind == SecretKind::DbPassword && secret.database.is_none() {
            bail!(
                "the `db-password` secret `{}` of `{name}` has no `database` section: suma cannot set the new password\nhint: add `database: {{ admin_secret: NAME }}` (or `database: {{ rds_master: INSTANCE }}` for an RDS master user) to it in the configuration",
                secret.id
            );
        }
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    if args.resume || args.abort {
        let secret = named.expect("clap: --resume and --abort require NAME");
        return continue_rotation(ctx, name, env, secret, &session, args).await;
    }
    let targets: Vec<&ManagedSecret> = match named {
        Some(secret) => vec![secret],
        None => {
            let rows = rows(env, &session).await;
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
        ctx.printer.either(&json!({"environment": name, "rotated": []}), || {
            format!("no secret in `{name}` is past its policy")
        });
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
            &json!({"dry_run": true, "environment": name, "rotations": report}),
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
        let engine = rotator(ctx, env, secret, &session, args.rollout_timeout);
        let kind = rotation(env, secret, &session)?;
        engine.journal.save(&op, Some(guard.holder())).await?;
        ctx.reporter
            .info(&format!("operation `{}`: rotating `{}`", op.id, secret.id));
        let outcome = engine.run(&mut op, kind.as_ref(), &guard).await;
        ctx.reporter.finish();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                guard.abandon();
                return Err(e.into());
            }
        };
        if matches!(outcome, Outcome::Interrupted { .. }) {
            guard.abandon();
        } else {
            guard
                .release()
                .await
                .context("the rotation finished but its lock could not be released")?;
        }
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

/// `--resume` and `--abort`: the unfinished rotation of `secret`, from the journal.
async fn continue_rotation(
    ctx: &Context,
    name: &str,
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
    args: &SecretsRotateArgs,
) -> anyhow::Result<ExitStatus> {
    let journal = ctx.journal(session);
    let lock = ctx.locks(session).status(name).await?;
    let candidates = journal.list(name, 100).await?;
    let mut op = candidates
        .into_iter()
        .find(|op| {
            op.kind == secrets::KIND
                && op.parameters.get("secret").and_then(|v| v.as_str()) == Some(secret.id.as_str())
                && !op.status.is_finished()
        })
        .with_context(|| format!("no unfinished rotation of `{}` in `{name}`'s journal", secret.id))?;
    let verb = if args.resume { "resume" } else { "abort" };
    if let Some(lock) = &lock {
        if lock.operation_id == op.id && lock.lease_active {
            bail!(
                "the rotation `{}` is still running (its lease is live until {})\nhint: stop it first, or wait for the lease to run out",
                op.id,
                lock.expires_at.format("%H:%M:%S UTC")
            );
        }
    }
    if !crate::render::confirm(
        &format!("{verb} the rotation `{}` of `{}`", op.id, secret.id),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let takeover = lock.as_ref().is_some_and(|l| l.operation_id == op.id);
    let guard = ctx.locks(session).acquire(&op, takeover).await?;
    op.note(
        &ctx.settings.actor.value,
        format!("{verb} by {}", ctx.settings.actor.value),
    );
    op.set_status(OperationStatus::Running);
    let engine = rotator(ctx, env, secret, session, args.rollout_timeout);
    let kind = rotation(env, secret, session)?;
    let outcome = if args.resume {
        engine.run(&mut op, kind.as_ref(), &guard).await
    } else {
        match engine.undo(&mut op, kind.as_ref(), guard.holder()).await {
            Ok(()) => {
                op.set_status(OperationStatus::Aborted);
                engine.journal.save(&op, Some(guard.holder())).await?;
                Ok(Outcome::Aborted)
            }
            Err(e) => Err(e),
        }
    };
    ctx.reporter.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            guard.abandon();
            return Err(e.into());
        }
    };
    if matches!(outcome, Outcome::Interrupted { .. }) {
        guard.abandon();
    } else {
        guard.release().await?;
    }
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

/// When the previous JWT key of `secret` may stop verifying: recorded by the last rotation's `finish` step
/// (the longest access-token lifetime plus clock skew after the new key started signing).
async fn retirable_at(
    ctx: &Context,
    environment: &str,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
    let ops = ctx.journal(session).list(environment, 200).await?;
    Ok(ops
        .iter()
        .filter(|op| {
            op.kind == secrets::KIND && op.parameters.get("secret").and_then(|v| v.as_str()) == Some(secret.id.as_str())
        })
        .find(|op| op.status == OperationStatus::Succeeded)
        .and_then(|op| op.fact("previous_key_retirable_at"))
        .and_then(|v| serde_json::from_value(v.clone()).ok()))
}

/// A new JWT rotation moves AWSPREVIOUS off the key before the last one: refused while tokens that key
/// signed may still be valid, so no valid token is ever rejected.
pub(crate) async fn refuse_during_overlap(
    ctx: &Context,
    environment: &str,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> anyhow::Result<()> {
    if let Some(at) = retirable_at(ctx, environment, secret, session).await? {
        if at > Utc::now() {
            bail!(
                "`{}` was rotated recently: tokens signed by the key before it stay valid until {}; rotating now would drop that key while they are\nhint: wait until then (the key's overlap is `jwt.access_token_ttl` + `jwt.clock_skew`)",
                secret.id,
                at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    Ok(())
}

/// `suma secrets retire NAME`: removes AWSPREVIOUS from the previous JWT key once its overlap has passed; the
/// service drops it from its key set at its next reload.
pub async fn retire(ctx: &Context, args: &SecretsRetireArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let secret = find(env, name, &args.name)?;
    if secret.kind != SecretKind::JwtSigningKey {
        bail!(
            "`{}` is a {} secret: only a `jwt-signing-key` keeps a verify-only previous version to retire",
            secret.id,
            secret.kind.as_str()
        );
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
    let plan = vec![PlannedStep {
        name: "retire".to_owned(),
        detail: format!("remove AWSPREVIOUS from version `{previous}` of `{}`", secret.id),
    }];
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
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let journal = ctx.journal(&session);
    op.start_step(0);
    journal.save(&op, Some(guard.holder())).await?;
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
    journal.save(&op, Some(guard.holder())).await?;
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
