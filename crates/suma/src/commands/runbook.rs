//! `suma runbook list|show|validate|actions|run|resume|abort|timeline`. `run` validates, resolves the
//! parameters, prints the plan and takes the environment lock before the first step; the steps run through
//! `crate::runbook::engine` with [`LiveActions`], which implements every built-in action against AWS, the
//! service's admin API, PostgreSQL and Datadog. Actions that are whole operations of their own (a secret
//! rotation, a DR failover, a rollback) run as child operations journaled under the run's lock, so a resume
//! of the run resumes them where they stopped.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use async_trait::async_trait;
use serde_json::{json, Value};

use super::{environment_regions, Context};
use crate::admin::{AdminApi, AuditQuery, HttpAdmin};
use crate::aws::ecs::{Rollout, ServiceUpdate};
use crate::aws::secrets::VersionRef;
use crate::aws::{AwsApis, AwsSession};
use crate::cli::{GlobalArgs, RunbookCommand, RunbookContinueArgs, RunbookDirArgs, RunbookRunArgs};
use crate::config::{AwsRegion, Environment, SecretKind};
use crate::exit::ExitStatus;
use crate::journal::lock::LockGuard;
use crate::journal::{Journal, Operation, OperationStatus};
use crate::metrics::datadog::{EventAlert, MonitorRef};
use crate::report::Reporter;
use crate::runbook::engine::{self, ActionError, Actions, Answer, Confirmations, Done, Outputs, StepContext};
use crate::runbook::expr::Scope;
use crate::runbook::{self, Loaded, Step};
use crate::settings::EnvSource as _;

/// The runbooks directory: `--dir`, `SUMA_RUNBOOKS_DIR`, `./runbooks`, else `runbooks/` beside the config.
fn runbooks_dir(args: &RunbookDirArgs, config_path: Option<&Path>) -> PathBuf {
    if let Some(dir) = &args.dir {
        return dir.clone();
    }
    if let Some(dir) = crate::settings::ProcessEnv.var(crate::env_vars::SUMA_RUNBOOKS_DIR) {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("runbooks");
    if here.is_dir() {
        return here;
    }
    config_path.and_then(Path::parent).map_or(here, |p| p.join("runbooks"))
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
    bail!(
        "no runbook `{name}` in {}\nhint: {}",
        dir.display(),
        if known.is_empty() {
            "pass `--dir DIR` or set SUMA_RUNBOOKS_DIR to the runbooks directory".to_owned()
        } else {
            format!("the runbooks there: {}", known.join(", "))
        }
    )
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

fn printer(global: &GlobalArgs) -> crate::render::Printer {
    let format = match global.output {
        Some(crate::cli::OutputArg::Json) => crate::config::OutputFormat::Json,
        _ => crate::config::OutputFormat::Table,
    };
    crate::render::Printer::new(format, !global.no_color)
}

/// `list`, `show`, `validate`, `actions`.
pub fn offline(command: &RunbookCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let printer = printer(global);
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
                ExitStatus::Error
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
                bail!("no runbooks in {}\nhint: pass `--dir DIR`", dir.display());
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
                ExitStatus::Error
            })
        }
        _ => unreachable!("only the offline subcommands"),
    }
}

pub async fn run(ctx: &Context, command: RunbookCommand) -> anyhow::Result<ExitStatus> {
    match command {
        RunbookCommand::Run(args) => start(ctx, &args).await,
        RunbookCommand::Resume(args) => resume(ctx, &args).await,
        RunbookCommand::Abort(args) => abort(ctx, &args.run_id, &args.reason, &args.mutation).await,
        RunbookCommand::Timeline { run_id, out } => timeline(ctx, &run_id, out.as_deref()).await,
        _ => unreachable!("handled before the configuration is loaded"),
    }
}

pub fn is_mutating(command: &RunbookCommand) -> bool {
    matches!(
        command,
        RunbookCommand::Run(_) | RunbookCommand::Resume(_) | RunbookCommand::Abort(_)
    )
}

/// The environment values runbooks reference as `${env.NAME}`.
fn env_scope(name: &str, env: &Environment) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::from([
        ("name".to_owned(), json!(name)),
        ("primary_region".to_owned(), json!(env.primary_region.as_str())),
        ("dr_region".to_owned(), json!(env.dr_region.as_str())),
        ("cluster".to_owned(), json!(env.ecs.cluster)),
        ("service".to_owned(), json!(env.ecs.service)),
        ("canary_service".to_owned(), json!(env.ecs.canary_service)),
        ("database".to_owned(), json!(env.rds.primary.identifier)),
        (
            "database_host_variable".to_owned(),
            json!(env.dr.database_host_variable),
        ),
    ]);
    if let Some(url) = &env.url {
        values.insert("url".to_owned(), json!(url.to_string().trim_end_matches('/')));
    }
    if let Some(url) = &env.dr.dr_url {
        values.insert("dr_url".to_owned(), json!(url.to_string().trim_end_matches('/')));
    }
    if let Some(replica) = &env.rds.replica {
        values.insert("replica".to_owned(), json!(replica.identifier));
    }
    values
}

fn scope_of(op: &Operation, name: &str, env: &Environment) -> Scope {
    let params = op
        .parameters
        .get("params")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Scope {
        params,
        outputs: BTreeMap::new(),
        env: env_scope(name, env),
        run: BTreeMap::from([
            ("id".to_owned(), json!(op.id)),
            ("actor".to_owned(), json!(op.actor)),
            ("started_at".to_owned(), json!(op.started_at.to_rfc3339())),
            (
                "runbook".to_owned(),
                op.parameters.get("runbook").cloned().unwrap_or(Value::Null),
            ),
        ]),
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
    journal.save(&op, Some(guard.holder())).await?;
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
        bail!(
            "run `{}` is on `{}`, not `{name}`\nhint: pass `--env {}`",
            op.id,
            op.environment,
            op.environment
        );
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
            &json!({"dry_run": true, "run": op.id, "resume_at": at, "operation": op}),
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
    ctx.journal(&session).save(&op, Some(guard.holder())).await?;
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
    let (_, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let (mut op, _) = unfinished(ctx, &session, run_id).await?;
    if mutation.dry_run {
        ctx.printer.either(&json!({"dry_run": true, "abort": op.id}), || {
            format!(
                "would abort run `{}` and release the lock of `{}`",
                op.id, op.environment
            )
        });
        return Ok(ExitStatus::Success);
    }
    if !crate::render::confirm(&format!("abort run `{}` (nothing is undone)", op.id), mutation.yes)? {
        return Ok(ExitStatus::No);
    }
    let guard = ctx.locks(&session).acquire(&op, true).await?;
    let actor = ctx.settings.actor.value.clone();
    op.note(&actor, format!("aborted by {actor}: {reason}"));
    op.set_status(OperationStatus::Aborted);
    ctx.journal(&session).save(&op, Some(guard.holder())).await?;
    guard.release().await?;
    ctx.printer.either(&op, || {
        format!(
            "run `{}` aborted; the lock of `{}` is released. Steps already done stay done.",
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
    let actions = LiveActions {
        ctx,
        name: name.to_owned(),
        env: env.clone(),
        session: session.clone(),
        aws: Arc::new(session.clone()),
        journal: journal.nested(&op.id),
        guard: &guard,
        runbook: loaded.name.clone(),
    };
    let people = People {
        interactive: std::io::stdin().is_terminal(),
        yes,
        skip_manual,
        actor: ctx.settings.actor.value.clone(),
        reporter: ctx.reporter.clone(),
    };
    let engine = engine::Engine {
        runbook: loaded.runbook.clone(),
        actions: &actions,
        confirmations: &people,
        journal: journal.clone(),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
    };
    let scope = scope_of(&op, name, env);
    let outcome = engine.run(&mut op, guard.holder(), scope, guard.lost()).await;
    ctx.reporter.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            guard.abandon();
            return Err(e.into());
        }
    };
    let status = match &outcome {
        engine::Outcome::Completed => {
            guard
                .release()
                .await
                .context("the run finished but its lock could not be released")?;
            ExitStatus::Success
        }
        engine::Outcome::Stopped { .. } => {
            // Half done: the environment stays locked, but only for this run's `resume` or `abort`, which
            // may take it over at once.
            if let Err(e) = guard.hand_back().await {
                ctx.reporter.warn(&format!(
                    "the lease could not be ended early ({e}); `resume` works once it runs out"
                ));
            }
            ExitStatus::No
        }
        engine::Outcome::Interrupted { .. } => {
            guard.abandon();
            ExitStatus::Interrupted
        }
    };
    ctx.printer.either(&json!({"outcome": outcome, "operation": op}), || {
        crate::render::runbook::outcome(&loaded, &op, &outcome)
    });
    Ok(status)
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

/// Every built-in action against the real systems.
struct LiveActions<'a> {
    ctx: &'a Context,
    name: String,
    env: Environment,
    session: AwsSession,
    aws: Arc<dyn AwsApis>,
    /// Child operations' journal: fenced by the run's lock.
    journal: Journal,
    guard: &'a LockGuard,
    runbook: String,
}

fn arg<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    args.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, ActionError> {
    arg(args, name).ok_or_else(|| ActionError::new(format!("argument `{name}` is empty")))
}

fn duration_arg(args: &BTreeMap<String, String>, name: &str, default: Duration) -> Result<Duration, ActionError> {
    arg(args, name).map_or(Ok(default), |text| {
        humantime::parse_duration(text).map_err(|e| ActionError::new(format!("`{name}`: {e}")))
    })
}

fn outputs<const N: usize>(pairs: [(&str, Value); N]) -> Done {
    Done::from(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Outputs>())
}

const POLL: Duration = Duration::from_secs(5);

/// A result row with its columns in the query's order (`value` is the first column as written).
struct OrderedRow(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedRow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> serde::de::Visitor<'de> for Columns {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a row as a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedRow, A::Error> {
                let mut columns = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    columns.push(entry);
                }
                Ok(OrderedRow(columns))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

impl LiveActions<'_> {
    /// (region, cluster, service) of `stable`, `canary` or `dr`.
    fn service(&self, which: Option<&str>) -> (&AwsRegion, &str, &str) {
        let ecs = &self.env.ecs;
        match which.unwrap_or("stable") {
            "canary" => (&self.env.primary_region, &ecs.cluster, &ecs.canary_service),
            "dr" => (&self.env.dr_region, &ecs.dr.cluster, &ecs.dr.service),
            _ => (&self.env.primary_region, &ecs.cluster, &ecs.service),
        }
    }

    async fn describe_service(&self, which: Option<&str>) -> Result<crate::aws::ecs::EcsService, ActionError> {
        let (region, cluster, service) = self.service(which);
        self.aws
            .ecs(region)
            .describe_services(cluster, &[service.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ActionError::new(format!("service `{service}` not found in `{cluster}`")))
    }

    /// Polls until `done` holds for the service.
    async fn wait_service(
        &self,
        which: Option<&str>,
        what: &str,
        done: impl Fn(&crate::aws::ecs::EcsService) -> Result<bool, String>,
    ) -> Result<crate::aws::ecs::EcsService, ActionError> {
        loop {
            let service = self.describe_service(which).await?;
            match done(&service) {
                Ok(true) => return Ok(service),
                Ok(false) => {
                    self.ctx.reporter.live(&format!(
                        "waiting for {what}: running {} / desired {}",
                        service.running, service.desired
                    ));
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(ActionError::new(e)),
            }
        }
    }

    /// Polls until the service's rollout to `task_definition` completed; its failure is the step's.
    async fn wait_rollout(&self, which: Option<&str>, task_definition: &str) -> Result<(), ActionError> {
        let (_, _, service) = self.service(which);
        self.wait_service(which, &format!("`{service}` to roll out"), |s| {
            match s.rollout(task_definition) {
                Rollout::Completed => Ok(true),
                Rollout::Failed(reason) => Err(format!("the rollout of `{}` failed: {reason}", s.name)),
                Rollout::InProgress => Ok(false),
            }
        })
        .await
        .map(drop)
    }

    /// (region, identifier) of `primary`, `replica` or an identifier (primary region).
    fn instance(&self, which: Option<&str>, default: &str) -> Result<(AwsRegion, String), ActionError> {
        let rds = &self.env.rds;
        match which.unwrap_or(default) {
            "primary" => Ok((rds.primary.region.clone(), rds.primary.identifier.clone())),
            "replica" => rds
                .replica
                .as_ref()
                .map(|r| (r.region.clone(), r.identifier.clone()))
                .ok_or_else(|| ActionError::new(format!("environment `{}` has no `rds.replica`", self.name))),
            id => Ok((rds.primary.region.clone(), id.to_owned())),
        }
    }

    async fn wait_available(&self, region: &AwsRegion, id: &str) -> Result<crate::aws::rds::DbInstance, ActionError> {
        loop {
            let db = self.aws.rds(region).describe_instance(id).await?;
            if db.status == "available" {
                return Ok(db);
            }
            self.ctx
                .reporter
                .live(&format!("waiting for `{id}` to be available: {}", db.status));
            tokio::time::sleep(POLL).await;
        }
    }

    /// The environment's secret of `kind`, or the one named.
    fn secret(&self, named: Option<&str>, kind: SecretKind) -> Result<&crate::config::ManagedSecret, ActionError> {
        match named {
            Some(n) => super::secrets::find(&self.env, &self.name, n).map_err(|e| ActionError::new(format!("{e:#}"))),
            None => self.env.secrets.iter().find(|s| s.kind == kind).ok_or_else(|| {
                ActionError::new(format!(
                    "environment `{}` has no `{}` secret\nhint: add it under `secrets:` in the configuration",
                    self.name,
                    kind.as_str()
                ))
            }),
        }
    }

    async fn current_value(&self, id: &str) -> Result<String, ActionError> {
        self.session
            .secret_versions(&self.env.primary_region)
            .value(id, &VersionRef::Stage("AWSCURRENT"))
            .await?
            .map(|v| v.value)
            .ok_or_else(|| ActionError::new(format!("secret `{id}` has no AWSCURRENT version")))
    }

    /// The admin API, with an operator token signed by the current JWT signing key.
    async fn admin(&self) -> Result<HttpAdmin, ActionError> {
        let secret = self.secret(None, SecretKind::JwtSigningKey)?;
        let pem = self.current_value(&secret.id).await?;
        let kid = crate::secrets::kinds::kid_of_pem(&pem)?;
        let token = crate::admin::operator_token(
            &pem,
            &kid,
            &secret.jwt.issuer,
            &secret.jwt.audience,
            &self.ctx.settings.actor.value,
        )?;
        let base = secret
            .jwt
            .service_url
            .as_ref()
            .or(self.env.url.as_ref())
            .ok_or_else(|| ActionError::new(format!("environment `{}` has no `url` for the admin API", self.name)))?;
        Ok(HttpAdmin::new(&base.to_string(), token))
    }

    /// A child operation: the one an earlier attempt of this step started, or a new one.
    async fn child(
        &self,
        step: &StepContext<'_>,
        create: impl FnOnce() -> Operation,
    ) -> Result<Operation, ActionError> {
        if let Some(id) = step.previous_facts.get("child_operation").and_then(Value::as_str) {
            if let Some(mut op) = self.journal.load(id).await? {
                if !op.status.is_finished() || op.status == OperationStatus::Succeeded {
                    self.ctx
                        .reporter
                        .info(&format!("continuing operation `{id}` started by an earlier attempt"));
                    if op.status != OperationStatus::Succeeded {
                        op.set_status(OperationStatus::Running);
                    }
                    return Ok(op);
                }
            }
        }
        let op = create();
        self.journal.save(&op, Some(self.guard.holder())).await?;
        Ok(op)
    }

    fn child_failed(op: &Operation, message: String) -> ActionError {
        ActionError {
            message,
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        }
    }

    async fn secret_rotate(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let secret = self
            .secret(Some(required(args, "secret")?), SecretKind::Random)?
            .clone();
        let session = &self.session;
        let kind =
            super::secrets::rotation(&self.env, &secret, session).map_err(|e| ActionError::new(format!("{e:#}")))?;
        let mut rotator = super::secrets::rotator(self.ctx, &self.env, &secret, session, Duration::from_secs(600));
        rotator.journal = self.journal.clone();
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(
                    crate::secrets::KIND,
                    &self.name,
                    &self.ctx.settings.actor.value,
                    crate::secrets::plan(&secret, &self.env.ecs.cluster),
                );
                op.parameters.insert("secret".to_owned(), json!(secret.id));
                op.parameters.insert("kind".to_owned(), json!(secret.kind.as_str()));
                op.parameters
                    .insert("token".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            if secret.kind == SecretKind::JwtSigningKey && op.steps.is_empty() && arg(args, "force") != Some("true") {
                super::secrets::refuse_during_overlap(self.ctx, &self.name, &secret, session)
                    .await
                    .map_err(|e| Self::child_failed(&op, format!("{e:#}")))?;
            }
            let outcome = rotator
                .run(&mut op, kind.as_ref(), self.guard)
                .await
                .map_err(|e| Self::child_failed(&op, e.to_string()))?;
            if !matches!(outcome, crate::secrets::Outcome::Rotated { .. }) {
                return Err(Self::child_failed(
                    &op,
                    format!("rotation `{}` of `{}` ended {}", op.id, secret.id, json!(outcome)),
                ));
            }
        }
        let version = op.parameters.get("token").cloned().unwrap_or(Value::Null);
        Ok(Done {
            outputs: Outputs::from([("operation".to_owned(), json!(op.id)), ("version".to_owned(), version)]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    /// Points the PRIMARY failover record at `to` and waits until Route 53 has it everywhere. A
    /// record already in place is left alone, so a resumed step does not write it twice.
    async fn dns_failover(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        use crate::dr::dns::{self, DnsSide, HealthChecks};
        let side = DnsSide::parse(required(args, "to")?)
            .ok_or_else(|| ActionError::new("`to` must be `primary` or `dr`".to_owned()))?;
        let zone = &self.env.dns.hosted_zone_id;
        let name = &self.env.dns.record_name;
        let primary_target = match side {
            DnsSide::Primary => Some(
                self.aws
                    .elb(&self.env.primary_region)
                    .listener_alias_target(self.env.alb.listener_arn.as_str())
                    .await?,
            ),
            DnsSide::Dr => None,
        };
        let route53 = self.aws.route53();
        let records = route53.failover_aliases(zone, name).await?;
        let checks = HealthChecks {
            primary: self.env.dns.primary_health_check_id.as_deref(),
            secondary: self.env.dns.secondary_health_check_id.as_deref(),
        };
        let switch = dns::plan(name, &records, side, primary_target.as_ref(), checks).map_err(ActionError::new)?;
        let change_id = if switch.in_place() {
            self.ctx.reporter.info(&format!(
                "`{name}` already points at {}: not changing it",
                switch.wanted.target_dns
            ));
            None
        } else {
            let id = route53.upsert_failover_alias(zone, &switch.wanted).await?;
            loop {
                let status = route53.change_status(&id).await?;
                if status == "INSYNC" {
                    break;
                }
                self.ctx
                    .reporter
                    .live(&format!("waiting for Route 53 change `{id}` to be INSYNC: {status}"));
                tokio::time::sleep(POLL).await;
            }
            Some(id)
        };
        Ok(outputs([
            ("target", json!(switch.wanted.target_dns)),
            ("previous_target", json!(switch.current.target_dns)),
            ("changed", json!(change_id.is_some())),
            ("change_id", json!(change_id.unwrap_or_default())),
        ]))
    }

    async fn dr_failover(&self, args: &BTreeMap<String, String>, step: &StepContext<'_>) -> Result<Done, ActionError> {
        let mut engine = super::dr::engine(
            self.ctx,
            &self.name,
            &self.env,
            &self.session,
            Duration::from_secs(1800),
            true,
        );
        engine.journal = self.journal.clone();
        let reason = required(args, "reason")?.to_owned();
        let accept = arg(args, "accept_data_loss") == Some("true");
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(
                    crate::dr::Direction::Failover.kind(),
                    &self.name,
                    &self.ctx.settings.actor.value,
                    crate::dr::plan(crate::dr::Direction::Failover, &self.name, &self.env),
                );
                op.parameters.insert("accept_data_loss".to_owned(), json!(accept));
                op.parameters.insert("reason".to_owned(), json!(reason));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            let outcome = engine
                .run(&mut op, self.guard)
                .await
                .map_err(|e| Self::child_failed(&op, e.to_string()))?;
            if outcome != crate::dr::Outcome::Completed {
                return Err(Self::child_failed(
                    &op,
                    format!("failover `{}` ended {}", op.id, json!(outcome)),
                ));
            }
        }
        let timings = crate::dr::timings(&op, self.env.dr.rto);
        Ok(Done {
            outputs: Outputs::from([
                ("operation".to_owned(), json!(op.id)),
                ("rto_secs".to_owned(), json!(timings.total_secs)),
            ]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    async fn rollback(&self, args: &BTreeMap<String, String>, step: &StepContext<'_>) -> Result<Done, ActionError> {
        let reason = required(args, "reason")?.to_owned();
        let to = arg(args, "to").unwrap_or("previous").to_owned();
        let journal = self.ctx.journal(&self.session);
        let mut prepared = super::rollback::prepare(&self.name, &self.env, self.aws.as_ref(), &journal, &to)
            .await
            .map_err(|e| ActionError::new(format!("{e:#}")))?;
        let plan = prepared.plan.clone();
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(super::rollback::KIND, &self.name, &self.ctx.settings.actor.value, plan);
                op.parameters.insert("to".to_owned(), json!(to));
                op.parameters.insert("reason".to_owned(), json!(reason));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            let result = super::rollback::execute(
                &self.env,
                self.aws.as_ref(),
                &self.journal,
                self.ctx.reporter.as_ref(),
                &mut op,
                self.guard.holder(),
                &mut prepared,
                Duration::from_secs(900),
            )
            .await;
            super::rollback::announce(
                &self.name,
                &self.env,
                self.ctx.reporter.as_ref(),
                &op,
                &prepared,
                &reason,
                result.is_ok(),
            )
            .await;
            result.map_err(|e| Self::child_failed(&op, format!("{e:#}")))?;
        }
        Ok(Done {
            outputs: Outputs::from([
                ("operation".to_owned(), json!(op.id)),
                ("task_definition".to_owned(), json!(prepared.target)),
            ]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    async fn sql_query(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let query = required(args, "query")?.trim().trim_end_matches(';');
        if query.contains(';') {
            return Err(ActionError::new("`query` must be a single statement"));
        }
        let secret = self.secret(arg(args, "secret"), SecretKind::DbPassword)?;
        let value = self.current_value(&secret.id).await?;
        let mut credentials = crate::secrets::kinds::DbCredentials::parse(&value, &format!("secret `{}`", secret.id))?;
        if let Some(host) = arg(args, "host") {
            credentials.host = host.to_owned();
        }
        let mut conn = credentials.connect().await?;
        // The session refuses writes whatever the query says.
        sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| ActionError::new(format!("cannot make the session read-only: {e}")))?;
        let wrapped = format!("SELECT coalesce(json_agg(row_to_json(q)), '[]')::text FROM ({query}) AS q");
        let (text,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(wrapped))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| ActionError::new(format!("the query failed on {}: {e}", credentials.host)))?;
        let rows: Vec<OrderedRow> = serde_json::from_str(&text)?;
        let mut out = Outputs::from([("rows".to_owned(), json!(rows.len()))]);
        if let Some(OrderedRow(first)) = rows.first() {
            out.insert(
                "columns".to_owned(),
                json!(first.iter().map(|(k, _)| k).collect::<Vec<_>>()),
            );
            out.insert(
                "value".to_owned(),
                first.first().map_or(Value::Null, |(_, v)| v.clone()),
            );
            for (k, v) in first {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok(out.into())
    }

    async fn http_check(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let url = required(args, "url")?;
        let expect: u16 = arg(args, "expect_status").map_or(Ok(200), str::parse)?;
        let attempts: u32 = arg(args, "attempts").map_or(Ok(1), str::parse)?;
        let interval = duration_arg(args, "interval", POLL)?;
        let require = arg(args, "require") != Some("false");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let mut last = String::new();
        let mut status = Value::Null;
        let mut latency = 0u128;
        for attempt in 1..=attempts.max(1) {
            let start = std::time::Instant::now();
            match client.get(url).send().await {
                Ok(response) => {
                    latency = start.elapsed().as_millis();
                    status = json!(response.status().as_u16());
                    if response.status().as_u16() == expect {
                        return Ok(outputs([("status", status), ("latency_ms", json!(latency))]));
                    }
                    last = format!("answered {}", response.status());
                }
                Err(e) => last = format!("failed: {e}"),
            }
            if attempt < attempts {
                self.ctx
                    .reporter
                    .live(&format!("GET {url} {last}; try {}/{attempts}", attempt + 1));
                tokio::time::sleep(interval).await;
            }
        }
        if require {
            return Err(ActionError::new(format!(
                "GET {url} {last} (expected {expect}) after {attempts} attempt(s)"
            )));
        }
        Ok(outputs([("status", status), ("latency_ms", json!(latency))]))
    }

    async fn dispatch(&self, args: &BTreeMap<String, String>, step: &StepContext<'_>) -> Result<Done, ActionError> {
        let which = arg(args, "service");
        match step.step.action.as_str() {
            "service.status" => {
                let s = self.describe_service(which).await?;
                Ok(outputs([
                    ("running", json!(s.running)),
                    ("desired", json!(s.desired)),
                    ("pending", json!(s.pending)),
                    ("task_definition", json!(s.task_definition)),
                ]))
            }
            "service.scale" => {
                let count: i32 = required(args, "count")?.parse()?;
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                let update = ServiceUpdate {
                    desired_count: Some(count),
                    ..ServiceUpdate::default()
                };
                self.aws.ecs(region).update_service(cluster, service, &update).await?;
                let after = self
                    .wait_service(which, &format!("`{service}` to run {count} tasks"), |s| {
                        Ok(s.running == count && s.desired == count)
                    })
                    .await?;
                Ok(outputs([
                    ("previous_count", json!(before.desired)),
                    ("desired_count", json!(count)),
                    ("running", json!(after.running)),
                ]))
            }
            "service.force-redeploy" => {
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                // The count as it is: a no-op on ECS, and what makes moto recount the service's tasks.
                let update = ServiceUpdate {
                    force_new_deployment: true,
                    desired_count: Some(before.desired),
                    ..ServiceUpdate::default()
                };
                self.aws.ecs(region).update_service(cluster, service, &update).await?;
                let td = before.task_definition.clone();
                self.wait_rollout(which, &td).await?;
                Ok(outputs([("task_definition", json!(td))]))
            }
            "service.set-env" => {
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                let ecs = self.aws.ecs(region);
                let td = ecs
                    .register_with_environment(
                        &before.task_definition,
                        &self.env.ecs.container,
                        required(args, "name")?,
                        arg(args, "value").unwrap_or_default(),
                    )
                    .await?;
                let update = ServiceUpdate {
                    task_definition: Some(td.arn.clone()),
                    desired_count: Some(before.desired),
                    ..ServiceUpdate::default()
                };
                ecs.update_service(cluster, service, &update).await?;
                let arn = td.arn.clone();
                self.wait_rollout(which, &arn).await?;
                Ok(outputs([
                    ("task_definition", json!(td.arn)),
                    ("previous_task_definition", json!(before.task_definition)),
                ]))
            }
            "service.rollback" => self.rollback(args, step).await,
            "database.describe" => {
                let (region, id) = self.instance(arg(args, "instance"), "primary")?;
                let rds = self.aws.rds(&region);
                let db = rds.describe_instance(&id).await?;
                let latest = rds
                    .snapshots(&id)
                    .await?
                    .into_iter()
                    .find(|s| s.status == "available")
                    .map(|s| s.identifier);
                Ok(outputs([
                    ("identifier", json!(db.identifier)),
                    ("status", json!(db.status)),
                    ("multi_az", json!(db.multi_az)),
                    ("endpoint", json!(db.endpoint)),
                    ("latest_snapshot", json!(latest.unwrap_or_default())),
                ]))
            }
            "database.failover" => {
                let (region, id) = self.instance(arg(args, "instance"), "primary")?;
                let db = self.aws.rds(&region).describe_instance(&id).await?;
                if !db.multi_az {
                    return Err(ActionError::new(format!(
                        "`{id}` is not Multi-AZ: there is no standby to fail over to\nhint: restore from a snapshot (`database.restore-snapshot`) or promote a replica"
                    )));
                }
                self.aws.rds(&region).reboot_with_failover(&id).await?;
                let db = self.wait_available(&region, &id).await?;
                Ok(outputs([("status", json!(db.status))]))
            }
            "database.restore-snapshot" => {
                let (region, id) = self.instance(arg(args, "instance"), "primary")?;
                let target = required(args, "target")?;
                let rds = self.aws.rds(&region);
                let source = rds.describe_instance(&id).await?;
                let snapshot = match arg(args, "snapshot").unwrap_or("latest") {
                    "latest" => rds
                        .snapshots(&id)
                        .await?
                        .into_iter()
                        .find(|s| s.status == "available")
                        .map(|s| s.identifier)
                        .ok_or_else(|| ActionError::new(format!("`{id}` has no available snapshot to restore")))?,
                    named => named.to_owned(),
                };
                // A resumed step finds the instance it already restored.
                match rds.describe_instance(target).await {
                    Ok(_) => self
                        .ctx
                        .reporter
                        .info(&format!("`{target}` exists already: not restoring again")),
                    Err(e) if e.kind == crate::aws::AwsErrorKind::NotFound => {
                        rds.restore_from_snapshot(&snapshot, target, &source).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                let db = self.wait_available(&region, target).await?;
                Ok(outputs([
                    ("identifier", json!(db.identifier)),
                    ("endpoint", json!(db.endpoint)),
                    ("snapshot", json!(snapshot)),
                ]))
            }
            "database.promote-replica" => {
                let (region, id) = self.instance(arg(args, "instance"), "replica")?;
                let rds = self.aws.rds(&region);
                let db = rds.describe_instance(&id).await?;
                if db.replica_source.is_some() {
                    rds.promote_read_replica(&id, db.backup_retention_days.max(7)).await?;
                }
                let db = self.wait_available(&region, &id).await?;
                Ok(outputs([
                    ("identifier", json!(db.identifier)),
                    ("status", json!(db.status)),
                    ("endpoint", json!(db.endpoint)),
                ]))
            }
            "sql.query" => self.sql_query(args).await,
            "dr.check" => {
                let report = super::dr::readiness(&self.name, &self.env, &self.session).await;
                let failed = report
                    .items
                    .iter()
                    .filter(|i| i.status == crate::dr::check::CheckStatus::Fail)
                    .count();
                Ok(outputs([
                    ("ready", json!(!report.failed())),
                    ("failed_checks", json!(failed)),
                    ("estimated_rto_secs", json!(report.estimated_rto_secs)),
                ]))
            }
            "dr.failover" => self.dr_failover(args, step).await,
            "dns.failover" => self.dns_failover(args).await,
            "secret.rotate" => self.secret_rotate(args, step).await,
            "auth.revoke-refresh-tokens" => {
                let revoked = self.admin().await?.revoke_refresh_tokens(arg(args, "user_id")).await?;
                Ok(outputs([("revoked", json!(revoked))]))
            }
            "auth.invalidate-sessions" => {
                let revoked = self.admin().await?.revoke_sessions(arg(args, "user_id")).await?;
                Ok(outputs([("revoked", json!(revoked))]))
            }
            "auth.export-audit" => {
                let since = duration_arg(args, "since", Duration::from_secs(72 * 3600))?;
                let path = arg(args, "path").map_or_else(
                    || {
                        self.ctx
                            .settings
                            .state_dir()
                            .join("audit")
                            .join(format!("{}-{}.jsonl", step.operation.id, step.step.id))
                    },
                    PathBuf::from,
                );
                let query = AuditQuery {
                    since: Some(chrono::Utc::now() - chrono::Duration::from_std(since)?),
                    event_type: arg(args, "type").map(str::to_owned),
                    after: None,
                    limit: 1000,
                };
                let (count, sha) = crate::admin::export_audit(&self.admin().await?, query, &path).await?;
                Ok(outputs([
                    ("count", json!(count)),
                    ("path", json!(path)),
                    ("sha256", json!(sha)),
                ]))
            }
            "http.check" => self.http_check(args).await,
            "compliance.check" => {
                let fail_on = match arg(args, "fail_on").unwrap_or("high") {
                    "critical" => crate::compliance::Severity::Critical,
                    "medium" => crate::compliance::Severity::Medium,
                    "low" => crate::compliance::Severity::Low,
                    _ => crate::compliance::Severity::High,
                };
                let checks = crate::compliance::Selection::default()
                    .select()
                    .map_err(|e| ActionError::new(e.to_string()))?;
                let suppressions = super::compliance::suppressions(&self.name, &self.env)
                    .map_err(|e| ActionError::new(format!("{e:#}")))?;
                let report = super::compliance::gather(
                    self.ctx,
                    &self.name,
                    &self.env,
                    checks,
                    crate::compliance::run::Scope::Config,
                    self.env.url.as_ref().map(ToString::to_string),
                    suppressions,
                    fail_on,
                )
                .await;
                let count = |status| report.findings.iter().filter(|f| f.status == status).count();
                let (passed, failed, errors) = (
                    count(crate::compliance::Status::Pass),
                    count(crate::compliance::Status::Fail),
                    count(crate::compliance::Status::Error),
                );
                if !report.passed {
                    return Err(ActionError::new(format!(
                        "compliance failed at `{}` or above: {failed} failing finding(s); `suma compliance check --env {}` shows them",
                        fail_on.as_str(),
                        self.name
                    )));
                }
                Ok(outputs([
                    ("passed", json!(passed)),
                    ("failed", json!(failed)),
                    ("errors", json!(errors)),
                ]))
            }
            "datadog.event" => {
                let alert = match arg(args, "alert_type").unwrap_or("info") {
                    "warning" => EventAlert::Warning,
                    "error" => EventAlert::Error,
                    "success" => EventAlert::Success,
                    _ => EventAlert::Info,
                };
                let mut tags = self.env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
                tags.extend([
                    format!("env:{}", self.name),
                    format!("runbook:{}", self.runbook),
                    format!("run:{}", step.operation.id),
                    "source:suma".to_owned(),
                ]);
                super::events::post(
                    &self.env,
                    self.ctx.reporter.as_ref(),
                    required(args, "title")?,
                    arg(args, "text").unwrap_or_default(),
                    &tags,
                    alert,
                )
                .await;
                Ok(Done::default())
            }
            "datadog.mute" | "datadog.unmute" => {
                let datadog = super::events::datadog(&self.env)
                    .map_err(|e| ActionError::new(format!("{e:#}")))?
                    .ok_or_else(|| ActionError::new(format!("environment `{}` has no `datadog` section", self.name)))?;
                let monitor = MonitorRef::Name(required(args, "monitor")?.to_owned());
                if step.step.action == "datadog.mute" {
                    let until = chrono::Utc::now()
                        + chrono::Duration::from_std(duration_arg(args, "duration", Duration::from_secs(3600))?)?;
                    let muted = datadog.mute_monitor(&monitor, None, Some(until)).await?;
                    Ok(outputs([
                        ("monitor_id", json!(muted.id)),
                        ("until", json!(until.to_rfc3339())),
                    ]))
                } else {
                    let unmuted = datadog.unmute_monitor(&monitor, None).await?;
                    Ok(outputs([("monitor_id", json!(unmuted.id))]))
                }
            }
            "clock.deadline" => {
                let within = duration_arg(args, "within", Duration::from_secs(72 * 3600))?;
                let at = step.operation.started_at + chrono::Duration::from_std(within)?;
                Ok(outputs([("at", json!(at.format("%Y-%m-%d %H:%M UTC").to_string()))]))
            }
            other => Err(ActionError::new(format!("action `{other}` has no implementation"))),
        }
    }
}

#[async_trait]
impl Actions for LiveActions<'_> {
    async fn run(&self, args: &BTreeMap<String, String>, step: &StepContext<'_>) -> Result<Done, ActionError> {
        self.dispatch(args, step).await
    }
}
