//! `suma runbook list|show|validate|actions|run|resume|approve|abort|timeline`. `run` validates, resolves the
//! parameters, prints the plan and takes the environment lock before the first step; the steps run through
//! `crate::runbook::engine` with `suma_ops::runbook::actions::LiveActions`, which implements every built-in
//! action against AWS, the service's admin API, PostgreSQL and Datadog.

mod approve;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use suma_core::usage;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

use super::{environment_regions, Context};
use crate::aws::AwsSession;
use crate::cli::{GlobalArgs, RunbookCommand, RunbookContinueArgs, RunbookDirArgs, RunbookRunArgs};
use crate::config::Environment;
use crate::exit::ExitStatus;
use crate::journal::lock::LockGuard;
use crate::journal::{Journal, Operation, OperationStatus};
use crate::report::Reporter;
use crate::runbook::actions::LiveActions;
use crate::runbook::engine::{self, Answer, Confirmations};
use crate::runbook::scope::scope_of;
use crate::runbook::{self, Loaded, Step};
use crate::settings::EnvSource as _;

/// The runbooks directory: `--dir`, `SUMA_RUNBOOKS_DIR`, else `runbooks/` beside the configuration file
/// when it is there, else `./runbooks`.
fn runbooks_dir(args: &RunbookDirArgs, config_path: Option<&Path>) -> PathBuf {
    if let Some(dir) = &args.dir {
        return dir.clone();
    }
    if let Some(dir) = crate::settings::ProcessEnv.var(crate::env_vars::SUMA_RUNBOOKS_DIR) {
        return PathBuf::from(dir);
    }
    match config_path {
        Some(config) => crate::settings::beside_config_or_here(config, "runbooks"),
        None => PathBuf::from("runbooks"),
    }
}

/// `NAME` in the directory, or a path.
fn runbook_path(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    if name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml") {
        return Ok(PathBuf::from(name));
    }
    let path = dir.join(format!("{name}.yaml"));
    if path.is_file() {
        return Ok(path);
    }
    let known: Vec<String> = runbook::files_in(dir)
        .unwrap_or_default()
        .iter()
        .map(|p| runbook::name_of(p))
        .collect();
    bail!(usage!(
        "no runbook `{name}` in {}\nhint: {}",
        dir.display(),
        if known.is_empty() {
            "pass `--dir DIR` or set SUMA_RUNBOOKS_DIR to the runbooks directory".to_owned()
        } else {
            format!("the runbooks there: {}", known.join(", "))
        }
    ))
}

/// The IAM actions the `aws.call` steps of the runbook `args` names need, for `suma iam-policy runbook
/// run NAME`: the built-in actions' permissions do not cover them.
pub fn aws_call_actions(
    args: &RunbookRunArgs,
    config_path: &Path,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let loaded = load(&runbook_path(&args.name, &runbooks_dir(&args.dir, Some(config_path)))?)?;
    Ok(loaded.runbook.aws_call_actions())
}

/// Loads one runbook or prints every problem in it and fails (exit 2).
fn load(path: &Path) -> anyhow::Result<Loaded> {
    runbook::load(path).map_err(|problems| {
        let count = problems.len();
        for problem in problems {
            crate::render::error(&anyhow::Error::new(problem));
        }
        super::InvalidConfig { count }.into()
    })
}

/// The subcommands that read only files: they work without `suma.yaml` (CI validation).
pub fn needs_no_config(command: &RunbookCommand) -> bool {
    matches!(
        command,
        RunbookCommand::List(_)
            | RunbookCommand::Show { .. }
            | RunbookCommand::Validate { .. }
            | RunbookCommand::Actions
    )
}

/// `list`, `show`, `validate`, `actions`.
pub fn offline(command: &RunbookCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let printer = super::offline_printer(global)?;
    let config_path = global.config.as_deref();
    match command {
        RunbookCommand::Actions => {
            printer.either(&crate::render::runbook::actions_json(), crate::render::runbook::actions);
            Ok(ExitStatus::Success)
        }
        RunbookCommand::List(dir) => {
            let dir = runbooks_dir(dir, config_path);
            let files =
                runbook::files_in(&dir).with_context(|| format!("reading the runbooks in {}", dir.display()))?;
            let mut loaded = Vec::new();
            let mut invalid = Vec::new();
            for file in files {
                match runbook::load(&file) {
                    Ok(l) => loaded.push(l),
                    Err(problems) => invalid.push((runbook::name_of(&file), problems.len())),
                }
            }
            printer.either(&crate::render::runbook::list_json(&loaded, &invalid), || {
                crate::render::runbook::list(&loaded, &invalid)
            });
            Ok(if invalid.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Usage
            })
        }
        RunbookCommand::Show { name, dir } => {
            let loaded = load(&runbook_path(name, &runbooks_dir(dir, config_path))?)?;
            printer.either(&loaded.runbook, || crate::render::runbook::show(&loaded));
            Ok(ExitStatus::Success)
        }
        RunbookCommand::Validate { names, dir } => {
            let dir = runbooks_dir(dir, config_path);
            let paths = if names.is_empty() {
                runbook::files_in(&dir).with_context(|| format!("reading the runbooks in {}", dir.display()))?
            } else {
                names
                    .iter()
                    .map(|n| runbook_path(n, &dir))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            if paths.is_empty() {
                bail!(usage!("no runbooks in {}\nhint: pass `--dir DIR`", dir.display()));
            }
            let mut problems = 0;
            let mut results = Vec::new();
            for path in &paths {
                match runbook::load(path) {
                    Ok(_) => results.push(json!({"file": path, "valid": true})),
                    Err(errors) => {
                        problems += errors.len();
                        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                        for error in errors {
                            crate::render::error(&anyhow::Error::new(error));
                        }
                        results.push(json!({"file": path, "valid": false, "problems": messages}));
                    }
                }
            }
            printer.either(&json!({"runbooks": results}), || {
                format!("{} runbook(s) checked, {} problem(s)", paths.len(), problems)
            });
            Ok(if problems == 0 {
                ExitStatus::Success
            } else {
                ExitStatus::Usage
            })
        }
        _ => unreachable!("only the offline subcommands"),
    }
}

pub async fn run(ctx: &Context, command: RunbookCommand) -> anyhow::Result<ExitStatus> {
    match command {
        RunbookCommand::Run(args) => start(ctx, &args).await,
        RunbookCommand::Resume(args) => resume(ctx, &args).await,
        RunbookCommand::Approve(args) => approve::approve(ctx, &args).await,
        RunbookCommand::Abort(args) => abort(ctx, &args.run_id, &args.reason, &args.mutation).await,
        RunbookCommand::Timeline { run_id, out } => timeline(ctx, &run_id, out.as_deref()).await,
        _ => unreachable!("handled before the configuration is loaded"),
    }
}

async fn start(ctx: &Context, args: &RunbookRunArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let path = runbook_path(
        &args.name,
        &runbooks_dir(&args.dir, Some(&ctx.settings.config_path.value)),
    )?;
    let loaded = load(&path)?;
    let params = loaded
        .runbook
        .parameters_from(&args.params)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("runbook `{}`", loaded.name))?;
    let plan = loaded.runbook.plan();
    if args.mutation.dry_run {
        ctx.printer.either(
            &json!({"dry_run": true, "runbook": loaded.name, "environment": name, "params": params, "plan": plan}),
            || crate::render::runbook::plan(&loaded, name, &params, &plan, true),
        );
        return Ok(ExitStatus::Success);
    }
    let interactive = std::io::stdin().is_terminal();
    if !interactive && !args.mutation.yes {
        return Err(crate::render::ConfirmationRequired {
            action: format!("run runbook `{}` on `{name}`", loaded.name),
        }
        .into());
    }
    ctx.reporter
        .info(&crate::render::runbook::plan(&loaded, name, &params, &plan, false));
    if !crate::render::confirm(&format!("run runbook `{}` on `{name}`", loaded.name), args.mutation.yes)? {
        return Ok(ExitStatus::No);
    }
    let mut op = Operation::new(engine::KIND, name, &ctx.settings.actor.value, plan);
    op.parameters.insert("runbook".to_owned(), json!(loaded.name));
    op.parameters.insert("title".to_owned(), json!(loaded.runbook.title));
    op.parameters.insert("params".to_owned(), json!(params));
    op.parameters.insert("source".to_owned(), json!(loaded.source));
    op.parameters.insert("file".to_owned(), json!(loaded.path));
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let journal = ctx.journal(&session);
    let guard = guard.begin(&journal, &op).await?;
    ctx.reporter
        .info(&format!("run `{}`: runbook `{}` on `{name}`", op.id, loaded.name));
    execute(
        ctx,
        name,
        env,
        &session,
        loaded,
        op,
        guard,
        args.skip_manual,
        args.mutation.yes,
    )
    .await
}

/// The run's unfinished record, and the runbook it runs (the text kept at its start).
async fn unfinished(ctx: &Context, session: &AwsSession, run_id: &str) -> anyhow::Result<(Operation, Loaded)> {
    let op =
        ctx.journal(session).load(run_id).await?.with_context(|| {
            format!("no run `{run_id}` in the journal\nhint: `suma ops list --env ENV` shows the runs")
        })?;
    if op.kind != engine::KIND {
        bail!(
            "`{run_id}` is a {} operation, not a runbook run\nhint: see `suma ops show {run_id}`",
            op.kind
        );
    }
    if op.status.is_finished() {
        bail!(
            "run `{run_id}` is {}; there is nothing to continue\nhint: `suma runbook timeline {run_id}` shows what happened",
            op.status.as_str()
        );
    }
    let source = op
        .parameters
        .get("source")
        .and_then(Value::as_str)
        .context("the run did not keep its runbook's text")?
        .to_owned();
    let name = op
        .parameters
        .get("runbook")
        .and_then(Value::as_str)
        .unwrap_or("runbook")
        .to_owned();
    let path = PathBuf::from(format!("{name}.yaml (as run by {})", op.id));
    let runbook = runbook::parse(&source, &path).map_err(|problems| {
        anyhow!(
            "the runbook kept by run `{run_id}` no longer validates: {}",
            problems.first().map(ToString::to_string).unwrap_or_default()
        )
    })?;
    Ok((
        op,
        Loaded {
            name,
            path,
            source,
            runbook,
        },
    ))
}

async fn resume(ctx: &Context, args: &RunbookContinueArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let (mut op, loaded) = unfinished(ctx, &session, &args.run_id).await?;
    if op.environment != name {
        bail!(usage!(
            "run `{}` is on `{}`, not `{name}`\nhint: pass `--env {}`",
            op.id,
            op.environment,
            op.environment
        ));
    }
    let next = op.next_step();
    let at = loaded
        .runbook
        .steps
        .get(next)
        .map_or("the end", |s| s.id.as_str())
        .to_owned();
    if args.mutation.dry_run {
        ctx.printer.either(
            &json!({"dry_run": true, "run": op.id, "resume_at": at, "plan": op.plan, "operation": op}),
            || {
                format!(
                    "would resume run `{}` at step {} `{at}`\n\n{}",
                    op.id,
                    next + 1,
                    crate::render::status::operation(&op)
                )
            },
        );
        return Ok(ExitStatus::Success);
    }
    let interactive = std::io::stdin().is_terminal();
    if !interactive && !args.mutation.yes {
        return Err(crate::render::ConfirmationRequired {
            action: format!("resume run `{}`", op.id),
        }
        .into());
    }
    if !crate::render::confirm(
        &format!(
            "resume run `{}` of `{}` at step {} `{at}`",
            op.id,
            loaded.name,
            next + 1
        ),
        args.mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let guard = ctx.locks(&session).acquire(&op, true).await?;
    let actor = ctx.settings.actor.value.clone();
    op.note(&actor, format!("resumed by {actor} at step `{at}`"));
    op.set_status(OperationStatus::Running);
    ctx.journal(&session).save(&op, Some(guard.fence())).await?;
    execute(
        ctx,
        name,
        env,
        &session,
        loaded,
        op,
        guard,
        args.skip_manual,
        args.mutation.yes,
    )
    .await
}

async fn abort(
    ctx: &Context,
    run_id: &str,
    reason: &str,
    mutation: &crate::cli::MutationArgs,
) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let (mut op, loaded) = unfinished(ctx, &session, run_id).await?;
    if mutation.dry_run {
        let plan = super::one_step_plan(
            "abort",
            format!(
                "abort run `{}`: an unfinished child operation aborted as its own `abort` would, the lock of `{}` released",
                op.id, op.environment
            ),
        );
        ctx.printer
            .either(&json!({"dry_run": true, "abort": op.id, "plan": plan}), || {
                format!(
                    "would abort run `{}` and release the lock of `{}`",
                    op.id, op.environment
                )
            });
        return Ok(ExitStatus::Success);
    }
    if !crate::render::confirm(
        &format!(
            "abort run `{}` (steps done stay done; an unfinished child operation is aborted)",
            op.id
        ),
        mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }
    let guard = ctx.locks(&session).acquire(&op, true).await?;
    let actor = ctx.settings.actor.value.clone();
    op.note(&actor, format!("aborted by {actor}: {reason}"));
    let journal = ctx.journal(&session);
    let actions = live_actions(ctx, name, env, &session, &journal, &op, &guard, &loaded);
    let people = People {
        interactive: false,
        yes: true,
        skip_manual: true,
        actor: actor.clone(),
        reporter: ctx.reporter.clone(),
    };
    let engine = runbook_engine(ctx, &loaded, &actions, &people, journal);
    let aborted = engine.abort(&mut op, &guard, &actor).await;
    ctx.reporter.finish();
    let settled = guard.settle(&op).await;
    let note = aborted?;
    settled?;
    ctx.printer
        .either(&json!({"aborted": op.id, "note": note, "operation": op}), || {
            format!(
                "run `{}` aborted; the lock of `{}` is released: {note}",
                op.id, op.environment
            )
        });
    Ok(ExitStatus::No)
}

async fn timeline(ctx: &Context, run_id: &str, out: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let (_, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let op = ctx
        .journal(&session)
        .load(run_id)
        .await?
        .with_context(|| format!("no run `{run_id}` in the journal"))?;
    if op.kind != engine::KIND {
        bail!("`{run_id}` is a {} operation, not a runbook run", op.kind);
    }
    let markdown = runbook::timeline::markdown(&op);
    match out {
        Some(path) => {
            std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
            ctx.printer.either(&json!({"run": op.id, "timeline": path}), || {
                format!("wrote {}", path.display())
            });
        }
        None if ctx.printer.is_json() => ctx.printer.json(&json!({"run": op.id, "markdown": markdown})),
        None => ctx.printer.text(&markdown),
    }
    Ok(ExitStatus::Success)
}

/// Runs the steps under `guard`, then releases or keeps the lock and prints the outcome.
#[allow(clippy::too_many_arguments)]
async fn execute(
    ctx: &Context,
    name: &str,
    env: &Environment,
    session: &AwsSession,
    loaded: Loaded,
    mut op: Operation,
    guard: LockGuard,
    skip_manual: bool,
    yes: bool,
) -> anyhow::Result<ExitStatus> {
    let journal = ctx.journal(session);
    let actions = live_actions(ctx, name, env, session, &journal, &op, &guard, &loaded);
    let people = People {
        interactive: std::io::stdin().is_terminal(),
        yes,
        skip_manual,
        actor: ctx.settings.actor.value.clone(),
        reporter: ctx.reporter.clone(),
    };
    let engine = runbook_engine(ctx, &loaded, &actions, &people, journal.clone());
    let scope = scope_of(&op, name, env);
    let outcome = engine.run(&mut op, &guard, scope).await;
    ctx.reporter.finish();
    // Half done (stopped, interrupted): the environment stays locked, but only for this run's `resume` or
    // `abort`, which may take it over at once.
    let settled = guard
        .settle(&op)
        .await
        .context("the run finished but its lock could not be released");
    let outcome = outcome?;
    settled?;
    let status = match &outcome {
        engine::Outcome::Completed => ExitStatus::Success,
        engine::Outcome::Stopped { .. } => ExitStatus::No,
        engine::Outcome::Interrupted { .. } => ExitStatus::Interrupted,
    };
    ctx.printer.either(&json!({"outcome": outcome, "operation": op}), || {
        crate::render::runbook::outcome(&loaded, &op, &outcome)
    });
    Ok(status)
}

/// The actions of run `op` against the real systems; child operations journal under the run's lock.
#[allow(clippy::too_many_arguments)]
fn live_actions<'a>(
    ctx: &'a Context,
    name: &str,
    env: &Environment,
    session: &AwsSession,
    journal: &Journal,
    op: &Operation,
    guard: &'a LockGuard,
    loaded: &Loaded,
) -> LiveActions<'a> {
    LiveActions {
        ctx,
        name: name.to_owned(),
        env: env.clone(),
        session: session.clone(),
        aws: Arc::new(session.clone()),
        journal: journal.nested(&op.id),
        guard,
        runbook: loaded.name.clone(),
        mutating_aws_calls: loaded.runbook.mutating_aws_calls,
    }
}

fn runbook_engine<'a>(
    ctx: &Context,
    loaded: &Loaded,
    actions: &'a LiveActions<'_>,
    people: &'a People,
    journal: Journal,
) -> engine::Engine<'a> {
    engine::Engine {
        runbook: loaded.runbook.clone(),
        actions,
        confirmations: people,
        journal,
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
    }
}

/// Confirmations: a prompt on a terminal, `--yes` for `confirm` steps, `--skip-manual` for manual ones.
struct People {
    interactive: bool,
    yes: bool,
    skip_manual: bool,
    actor: String,
    reporter: Arc<dyn Reporter>,
}

impl Confirmations for People {
    fn confirm(&self, _step: &Step, question: &str) -> Answer {
        if self.yes {
            return Answer::Yes(format!("{} (--yes)", self.actor));
        }
        if !self.interactive {
            return Answer::Cannot(
                "the step needs a confirmation and nobody can give it: run on a terminal or pass `--yes`".to_owned(),
            );
        }
        self.reporter.finish();
        match crate::render::confirm(question, false) {
            Ok(true) => Answer::Yes(self.actor.clone()),
            _ => Answer::No,
        }
    }

    fn manual(&self, step: &Step, instructions: &str) -> Answer {
        if !self.interactive {
            return if self.skip_manual {
                Answer::Skip
            } else {
                Answer::Cannot(format!(
                    "manual step `{}` needs a person and this run has no terminal\nhint: run it on a terminal, or pass `--skip-manual` to skip manual steps (they are recorded as skipped)",
                    step.id
                ))
            };
        }
        self.reporter.finish();
        if crate::render::runbook::manual_prompt(&step.id, instructions) {
            Answer::Yes(self.actor.clone())
        } else {
            Answer::No
        }
    }
}
