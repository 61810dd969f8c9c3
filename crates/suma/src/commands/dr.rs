//! `suma dr check|switchover|failover|failback|drill`: the CLI side of the DR engine (`crate::dr`): building its
//! sources, the readiness report, plan and confirmation, the lock, resume and abort, and the outcome.

use std::sync::Arc;
use suma_core::usage;

use anyhow::{bail, Context as _};
use serde_json::json;

use super::{check_reason, environment_regions, Context, Finish, Unfinished};
use crate::aws::AwsSession;
use crate::cli::{DrAbortArgs, DrContinueArgs, DrDrillArgs, DrFailoverArgs, DrSwitchArgs};
use crate::dr::setup::{engine, readiness};
use crate::dr::{self, Direction, Engine, Gate, Outcome};
use crate::exit::ExitStatus;
use crate::journal::lock::LockGuard;
use crate::journal::Operation;
use crate::report::Reporter;

/// The failback gate on the terminal.
struct PromptGate {
    reporter: Arc<dyn Reporter>,
}

impl Gate for PromptGate {
    fn confirm(&self, question: &str) -> bool {
        self.reporter.finish();
        crate::render::confirm(question, false).unwrap_or(false)
    }
}

/// `--yes` answers the failback's question; otherwise the terminal does.
fn gate(ctx: &Context, yes: bool) -> Arc<dyn Gate> {
    if yes {
        Arc::new(dr::Yes)
    } else {
        Arc::new(PromptGate {
            reporter: ctx.reporter.clone(),
        })
    }
}

pub async fn check(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    ctx.reporter.phase(&format!("checking DR readiness of `{name}`"));
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let report = readiness(name, env, &session, &ctx.journal(&session)).await;
    ctx.reporter.finish();
    ctx.printer.either(&report, || crate::render::dr::readiness(&report));
    Ok(if report.failed() {
        ExitStatus::No
    } else {
        ExitStatus::Success
    })
}

pub async fn failover(ctx: &Context, args: &DrFailoverArgs) -> anyhow::Result<ExitStatus> {
    let mut parameters = serde_json::Map::new();
    parameters.insert("accept_data_loss".to_owned(), json!(args.accept_data_loss));
    if let Some(reason) = &args.reason {
        if reason.trim().is_empty() {
            bail!(usage!(
                "`--reason` is empty\nhint: say why; it is kept in the journal and the event"
            ));
        }
        parameters.insert("reason".to_owned(), json!(reason));
    }
    switch(ctx, Direction::Failover, &args.switch, parameters).await
}

pub async fn switchover(ctx: &Context, args: &DrSwitchArgs) -> anyhow::Result<ExitStatus> {
    switch(ctx, Direction::Switchover, args, serde_json::Map::new()).await
}

pub async fn failback(ctx: &Context, args: &DrSwitchArgs) -> anyhow::Result<ExitStatus> {
    switch(ctx, Direction::Failback, args, serde_json::Map::new()).await
}

/// `suma dr resume`: continues the unfinished switchover, failover or failback.
pub async fn resume(ctx: &Context, args: &DrContinueArgs) -> anyhow::Result<ExitStatus> {
    let kinds = Direction::ALL.map(Direction::kind);
    let unfinished = Unfinished {
        finish_with: Finish::Resume,
        timeout: args.timeout,
        mutation: &args.mutation,
        reason: None,
    };
    finish_unfinished(ctx, &kinds, &unfinished).await
}

/// `suma dr abort`: ends the unfinished switchover, failover or failback.
pub async fn abort(ctx: &Context, args: &DrAbortArgs) -> anyhow::Result<ExitStatus> {
    let kinds = Direction::ALL.map(Direction::kind);
    let unfinished = Unfinished {
        finish_with: Finish::Abort,
        timeout: args.unfinished.timeout,
        mutation: &args.unfinished.mutation,
        reason: args.reason.as_deref(),
    };
    finish_unfinished(ctx, &kinds, &unfinished).await
}

/// Resumes or aborts the unfinished operation of one of `kinds` that holds the environment's lock.
async fn finish_unfinished(ctx: &Context, kinds: &[&str], args: &Unfinished<'_>) -> anyhow::Result<ExitStatus> {
    let Unfinished {
        finish_with, reason, ..
    } = *args;
    check_reason(reason)?;
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let engine = engine(ctx, name, env, &session, args.timeout, gate(ctx, args.mutation.yes));
    let actor = ctx.settings.actor.value.clone();
    let mut op = unfinished(ctx, name, kinds, &session).await?;
    let what = finish_with.verb();
    if args.mutation.dry_run {
        return Ok(super::print_unfinished(ctx, &op));
    }
    let question = format!("{what} {} `{}` on `{name}`", op.kind, op.id);
    let Some(guard) = args.take_over(ctx, &session, &mut op, &question, true).await? else {
        return Ok(ExitStatus::No);
    };
    let outcome = match finish_with {
        Finish::Abort => engine.abort(&mut op, &guard, &actor).await,
        Finish::Resume => {
            ctx.reporter
                .info(&format!("resuming `{}` at step {}", op.id, op.next_step() + 1));
            engine.run(&mut op, &guard).await
        }
    };
    // A drill's switch to DR, resumed to its end, goes on to the failback the drill intended: a resumed
    // drill ends home, as a drill that never crashed does.
    if is_drill_switch(&op) && matches!(outcome, Ok(Outcome::Completed)) {
        ctx.reporter.finish();
        ctx.reporter
            .info(&format!("drill: {} `{}` completed; failing back", op.kind, op.id));
        let (guard, mut failback) = hand_over_to_failback(ctx, &engine, &session, name, guard, &op).await?;
        let outcome = engine.run(&mut failback, &guard).await;
        return finish(ctx, &engine, guard, &failback, outcome).await;
    }
    finish(ctx, &engine, guard, &op, outcome).await
}

/// Whether `op` is the first half of a drill (a switchover; a failover in drills journaled before
/// drills switched over).
fn is_drill_switch(op: &Operation) -> bool {
    dr::is_away_kind(&op.kind) && op.parameters.get("drill") == Some(&json!(true))
}

/// Starts a drill's failback under the lock its completed failover `failover` holds (`guard`), taken over
/// under a new fence rather than released and taken again: no other command can take the environment
/// while it is failed over between the two halves.
async fn hand_over_to_failback(
    ctx: &Context,
    engine: &Engine,
    session: &AwsSession,
    name: &str,
    guard: LockGuard,
    failover: &Operation,
) -> anyhow::Result<(LockGuard, Operation)> {
    let locks = ctx.locks(session);
    let mut failback = Operation::new(
        Direction::Failback.kind(),
        name,
        &ctx.settings.actor.value,
        dr::plan(Direction::Failback, name, &engine.env),
    );
    failback.parameters.insert("drill".to_owned(), json!(true));
    failback
        .parameters
        .insert("drill_failover".to_owned(), json!(failover.id));
    let seized = match locks.held(name).await {
        Ok(Some(held)) if held.operation_id == failover.id => {
            locks.seize(&failback, &held).await.map_err(anyhow::Error::from)
        }
        Ok(_) => Err(anyhow::anyhow!(
            "the lock of `{name}` no longer names the drill's failover `{}`",
            failover.id
        )),
        Err(e) => Err(e.into()),
    };
    let next = match seized {
        Ok(next) => next,
        Err(e) => {
            // The failover is finished: its lock is released rather than left naming it.
            let _ = guard.settle(failover).await;
            return Err(e.context(format!(
                "the drill's failover `{}` completed but its failback could not start\nhint: `suma dr failback --env {name}` brings `{name}` home",
                failover.id
            )));
        }
    };
    // The failover's guard holds nothing now; it must not renew or release what is the failback's.
    guard.abandon();
    let next = next.begin(&engine.journal, &failback).await?;
    ctx.reporter
        .info(&format!("{} `{}` started", Direction::Failback.kind(), failback.id));
    Ok((next, failback))
}

/// The unfinished operation of one of `kinds` holding the environment's lock, for `resume` and `abort`.
async fn unfinished(ctx: &Context, name: &str, kinds: &[&str], session: &AwsSession) -> anyhow::Result<Operation> {
    let verb = kinds
        .iter()
        .map(|k| k.trim_start_matches("dr-"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some(lock) = ctx.locks(session).status(name).await? else {
        bail!("no unfinished {verb} holds the lock of `{name}`\nhint: `suma ops list --env {name}` shows the recorded operations");
    };
    let op = ctx.journal(session).load(&lock.operation_id).await?.with_context(|| {
        format!(
            "the lock names operation `{}`, which is not in the journal",
            lock.operation_id
        )
    })?;
    if !kinds.contains(&op.kind.as_str()) {
        bail!(
            "`{name}` is locked by a {} operation (`{}`), not a {verb}\nhint: see `suma ops show {}`",
            op.kind,
            op.id,
            op.id
        );
    }
    if lock.lease_active {
        bail!(
            "{verb} `{}` is still running ({}, lease until {})\nhint: wait for it, or stop it there with Ctrl-C first",
            op.id,
            lock.holder,
            lock.expires_at.format("%H:%M:%S UTC")
        );
    }
    Ok(op)
}

async fn switch(
    ctx: &Context,
    direction: Direction,
    args: &DrSwitchArgs,
    parameters: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<ExitStatus> {
    if args.resume || args.abort {
        // The deprecated spellings `dr failover --resume` and `--abort` (a warning was printed).
        let finish_with = if args.abort { Finish::Abort } else { Finish::Resume };
        let unfinished = Unfinished {
            finish_with,
            timeout: args.timeout,
            mutation: &args.mutation,
            reason: None,
        };
        return finish_unfinished(ctx, &[direction.kind()], &unfinished).await;
    }
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let engine = engine(ctx, name, env, &session, args.timeout, gate(ctx, args.mutation.yes));
    let actor = ctx.settings.actor.value.clone();

    let plan = dr::plan(direction, name, env);
    let estimate = dr::setup::rto_estimate(name, env, &ctx.journal(&session)).await;
    if args.mutation.dry_run {
        let report = json!({
            "dry_run": true,
            "environment": name,
            "direction": direction,
            "plan": plan,
            "estimated_rto_secs": estimate.total.as_secs(),
            "rto_basis": estimate.basis(),
            "rto_secs": env.dr.rto.as_secs(),
        });
        ctx.printer
            .either(&report, || crate::render::dr::plan(&plan, env, direction));
        return Ok(ExitStatus::Success);
    }
    ctx.reporter.info(&crate::render::dr::plan(&plan, env, direction));
    let (verb, target) = match direction {
        Direction::Failover => ("fail over", &env.dr_region),
        Direction::Switchover => ("switch over", &env.dr_region),
        Direction::Failback => ("fail back", &env.primary_region),
    };
    if !crate::render::confirm(&format!("{verb} `{name}` to {target}"), args.mutation.yes)? {
        ctx.reporter.info("not confirmed; nothing changed");
        return Ok(ExitStatus::No);
    }
    let mut op = Operation::new(direction.kind(), name, &actor, plan);
    op.parameters.extend(parameters);
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let guard = guard.begin(&engine.journal, &op).await?;
    ctx.reporter.info(&format!("operation `{}` started", op.id));
    let outcome = engine.run(&mut op, &guard).await;
    finish(ctx, &engine, guard, &op, outcome).await
}

/// Releases or keeps the lock as the outcome requires, prints the summary, maps the exit status.
async fn finish(
    ctx: &Context,
    engine: &Engine,
    guard: LockGuard,
    op: &Operation,
    outcome: Result<Outcome, dr::EngineError>,
) -> anyhow::Result<ExitStatus> {
    ctx.reporter.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // Unfinished: the lock stays, ready for `suma dr resume` or `suma dr abort` at once.
            guard.settle(op).await?;
            let finish = crate::render::dr::how_to_finish(op);
            return Err(anyhow::Error::from(e).context(format!("`{}` is unfinished; finish it with {finish}", op.id)));
        }
    };
    let status = match &outcome {
        Outcome::Completed => ExitStatus::Success,
        Outcome::Refused { .. } | Outcome::Aborted { .. } => ExitStatus::No,
        Outcome::Stopped { .. } => ExitStatus::No,
        Outcome::Interrupted { .. } => ExitStatus::Interrupted,
    };
    // Half switched (stopped, interrupted): the environment stays locked until `suma dr resume` or `suma dr abort`.
    guard
        .settle(op)
        .await
        .context("the operation finished but its lock could not be released")?;
    let timings = dr::timings(op, engine.env.dr.rto);
    ctx.printer.either(
        &json!({"outcome": outcome, "timings": timings, "operation": op}),
        || crate::render::dr::outcome(&outcome, op, &timings),
    );
    Ok(status)
}

pub async fn drill(ctx: &Context, args: &DrDrillArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    if env.is_production() {
        bail!(usage!("a drill fails `{name}` (tier production) over and back\nhint: rehearse on a non-production environment, e.g. `--env staging`; a real failover is `suma dr failover`"));
    }
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    // A rehearsal is planned: it switches over (zero data loss), as a planned move to DR would.
    let failover_plan = dr::plan(Direction::Switchover, name, env);
    let failback_plan = dr::plan(Direction::Failback, name, env);
    if args.mutation.dry_run {
        let estimate = dr::setup::rto_estimate(name, env, &ctx.journal(&session)).await;
        let report = json!({"dry_run": true, "environment": name, "plan": super::joined_plans([("switchover", &failover_plan[..]), ("failback", &failback_plan[..])]),
            "estimated_rto_secs": estimate.total.as_secs(), "rto_basis": estimate.basis(), "rto_secs": env.dr.rto.as_secs()});
        ctx.printer.either(&report, || {
            format!(
                "{}\n{}",
                crate::render::dr::plan(&failover_plan, env, Direction::Switchover),
                crate::render::dr::plan(&failback_plan, env, Direction::Failback)
            )
        });
        return Ok(ExitStatus::Success);
    }
    ctx.reporter.phase(&format!("checking DR readiness of `{name}`"));
    let report = readiness(name, env, &session, &ctx.journal(&session)).await;
    ctx.reporter.finish();
    if report.failed() {
        ctx.printer
            .either(&json!({"readiness": report, "drill": "not started"}), || {
                format!(
                    "{}\ndrill not started: the readiness check failed",
                    crate::render::dr::readiness(&report)
                )
            });
        return Ok(ExitStatus::No);
    }
    if !crate::render::confirm(
        &format!("drill on `{name}`: switch over to {} and back", env.dr_region),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let actor = ctx.settings.actor.value.clone();
    let engine = engine(ctx, name, env, &session, args.timeout, Arc::new(dr::Yes));
    let mut results = Vec::new();
    // One lock from the failover's start to the failback's end: handed from one half to the other, never
    // released between them.
    let mut failover = Operation::new(Direction::Switchover.kind(), name, &actor, failover_plan);
    failover.parameters.insert("drill".to_owned(), json!(true));
    let guard = ctx.locks(&session).acquire(&failover, false).await?;
    let guard = guard.begin(&engine.journal, &failover).await?;
    ctx.reporter
        .info(&format!("{} `{}` started", Direction::Switchover.kind(), failover.id));
    let outcome = engine.run(&mut failover, &guard).await;
    ctx.reporter.finish();
    if !matches!(outcome, Ok(Outcome::Completed)) {
        let settled = guard.settle(&failover).await.context("cannot release the lock");
        let outcome = outcome?;
        settled?;
        results.push((
            Direction::Switchover,
            outcome,
            dr::timings(&failover, env.dr.rto),
            failover,
        ));
    } else {
        let (guard, mut failback) = hand_over_to_failback(ctx, &engine, &session, name, guard, &failover).await?;
        results.push((
            Direction::Switchover,
            Outcome::Completed,
            dr::timings(&failover, env.dr.rto),
            failover,
        ));
        let outcome = engine.run(&mut failback, &guard).await;
        ctx.reporter.finish();
        let settled = guard.settle(&failback).await.context("cannot release the lock");
        let outcome = outcome?;
        settled?;
        results.push((
            Direction::Failback,
            outcome,
            dr::timings(&failback, env.dr.rto),
            failback,
        ));
    }
    let completed = results.len() == 2 && results.iter().all(|(_, o, _, _)| *o == Outcome::Completed);
    let within_rto = results.first().is_some_and(|(_, _, t, _)| t.within_rto);
    let json_results: Vec<_> = results
        .iter()
        .map(|(d, o, t, op)| json!({"direction": d, "outcome": o, "timings": t, "operation_id": op.id}))
        .collect();
    ctx.printer.either(
        &json!({"environment": name, "completed": completed, "failover_within_rto": within_rto, "runs": json_results}),
        || crate::render::dr::drill(name, &results, env.dr.rto),
    );
    Ok(if completed && within_rto {
        ExitStatus::Success
    } else if results
        .iter()
        .any(|(_, o, _, _)| matches!(o, Outcome::Interrupted { .. }))
    {
        ExitStatus::Interrupted
    } else {
        ExitStatus::No
    })
}
