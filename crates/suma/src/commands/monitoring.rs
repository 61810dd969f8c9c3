//! `suma monitors diff|apply|import`, `suma dashboards diff|apply` and `suma slos diff|apply`: the
//! environment's Datadog monitors, dashboards and service level objectives kept in line with
//! `templates/datadog`. Templates are rendered and checked before any call;
//! `diff` reads Datadog and shows the plan; `apply` writes only what differs, one journaled step per write,
//! under the environment lock (the canary gate's monitor is among what it changes). Resources suma does not
//! manage are never written, even when they share a name; managed ones no template names any more are
//! reported, and deleted only with `--prune`. `import` adopts the monitors apply refuses as conflicts,
//! through the same journaled steps.

use std::path::{Path, PathBuf};
use suma_core::usage;

use anyhow::bail;
use serde_json::json;

use super::Context;
use crate::cli::{MonitorsCommand, MutationArgs, TemplatedCommand};
use crate::config::Environment;
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, PlannedStep};
use crate::metrics::datadog::{canonical_dashboard, canonical_monitor, canonical_slo, Datadog};
use crate::monitoring::report::Report;
use crate::monitoring::{self, Action, Desired, Kind, PlanItem, Remote, MANAGED_BY_TAG};
use suma_ops::engine::RunEnd;

pub async fn monitors(ctx: &Context, command: MonitorsCommand) -> anyhow::Result<ExitStatus> {
    match command {
        MonitorsCommand::Diff(args) => {
            diff(ctx, Kind::Monitor, args.templates.templates.as_deref(), args.exit_code).await
        }
        MonitorsCommand::Apply(args) => {
            apply(
                ctx,
                Kind::Monitor,
                args.templates.templates.as_deref(),
                Mode::Apply { prune: args.prune },
                &args.mutation,
            )
            .await
        }
        MonitorsCommand::Import(args) => {
            apply(
                ctx,
                Kind::Monitor,
                args.templates.templates.as_deref(),
                Mode::Import,
                &args.mutation,
            )
            .await
        }
    }
}

/// `suma dashboards` and `suma slos`: `kind`'s templates diffed or applied.
pub async fn templated(ctx: &Context, kind: Kind, command: TemplatedCommand) -> anyhow::Result<ExitStatus> {
    match command {
        TemplatedCommand::Diff(args) => diff(ctx, kind, args.templates.templates.as_deref(), args.exit_code).await,
        TemplatedCommand::Apply(args) => {
            apply(
                ctx,
                kind,
                args.templates.templates.as_deref(),
                Mode::Apply { prune: args.prune },
                &args.mutation,
            )
            .await
        }
    }
}

/// `--templates`, else `templates/datadog` beside the configuration file when it exists there, else
/// `templates/datadog` in the current directory.
pub fn templates_dir(flag: Option<&Path>, config_path: &Path) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_owned();
    }
    suma_core::settings::beside_config_or_here(config_path, Path::new("templates").join("datadog"))
}

/// Everything `diff` and `apply` share: the environment's client, identity and rendered templates.
struct Prepared<'a> {
    name: &'a str,
    datadog: Datadog,
    /// `managed-by:suma` and the environment's own tag (`suma-env:NAME`): what owned monitors carry.
    identity: Vec<String>,
    /// The environment's Datadog tags.
    env_tags: Vec<String>,
    dir: PathBuf,
    desired: Vec<Desired>,
}

async fn prepare<'a>(ctx: &'a Context, kind: Kind, templates: Option<&Path>) -> anyhow::Result<Prepared<'a>> {
    let (name, env) = ctx.environment()?;
    let env_tags = identity_tags(name, env)?;
    let dir = templates_dir(templates, &ctx.settings.config_path.value);
    let vars = monitoring::vars_for(name, env);
    let check: &dyn Fn(&serde_json::Value) -> Result<serde_json::Value, String> = match kind {
        Kind::Monitor => &canonical_monitor,
        Kind::Dashboard => &canonical_dashboard,
        Kind::Slo => &checked_slo,
    };
    let desired = monitoring::load(kind, &dir.join(kind.plural()), &vars, name, &env_tags, check)?;
    let datadog = suma_ops::events::datadog(env)?.expect("checked by identity_tags");
    // One tag only this environment carries: a subset of tags never selects another environment's.
    let identity = vec![MANAGED_BY_TAG.to_owned(), monitoring::environment_tag(name)];
    Ok(Prepared {
        name,
        datadog,
        identity,
        env_tags,
        dir,
        desired,
    })
}

/// An SLO template through the client's model, then through what Datadog refuses (it has no validate
/// endpoint for SLOs), so a bad threshold fails before any call.
fn checked_slo(body: &serde_json::Value) -> Result<serde_json::Value, String> {
    let body = canonical_slo(body)?;
    let problems = monitoring::slo_problems(&body);
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems.join("; "))
    }
}

/// The environment's Datadog tags, which tell its monitors from other environments'.
fn identity_tags(name: &str, env: &Environment) -> anyhow::Result<Vec<String>> {
    let Some(datadog) = &env.datadog else {
        bail!(usage!("environment `{name}` has no `datadog` section, so it has no Datadog monitors or dashboards\nhint: add `datadog: {{site: datadoghq.eu, tags: [\"service:auth-service\", \"env:{name}\"]}}` to it in suma.yaml"));
    };
    if datadog.tags.is_empty() {
        bail!(usage!("`environments.{name}.datadog.tags` is empty: suma tells one environment's monitors from another's by these tags\nhint: add e.g. `env:{name}` and `service:auth-service`"));
    }
    Ok(datadog.tags.clone())
}

/// What an apply writes: the templates' plan, or (`monitors import`) the adoption of conflicts.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Apply { prune: bool },
    Import,
}

/// Reads what Datadog holds under the templates' names and the environment's identity, and plans.
async fn plan(ctx: &Context, kind: Kind, p: &Prepared<'_>, mode: Mode) -> anyhow::Result<Vec<PlanItem>> {
    let remote = read_remote(ctx, kind, p).await?;
    let items = match mode {
        Mode::Apply { prune } => monitoring::plan(&p.desired, &remote, prune),
        Mode::Import => monitoring::adoptions(&p.desired, &remote),
    };
    if kind == Kind::Monitor {
        validate_writes(ctx, p, &items).await?;
    }
    for item in &items {
        if item.action == Action::Conflict {
            ctx.reporter.warn(&format!(
                "{} `{}`: {}",
                kind.word(),
                item.name,
                item.note
                    .as_deref()
                    .and_then(|n| n.lines().next())
                    .unwrap_or("not touched")
            ));
        }
    }
    Ok(items)
}

/// The Datadog resources a plan looks at: those under the templates' names, and (monitors, SLOs) every
/// one carrying the environment's identity.
async fn read_remote(ctx: &Context, kind: Kind, p: &Prepared<'_>) -> anyhow::Result<Vec<Remote>> {
    ctx.reporter.phase(&format!("reading Datadog {}", kind.plural()));
    let mut remote: Vec<Remote> = Vec::new();
    let managed_monitor =
        |tags: &[String]| monitoring::monitor_owner(tags, p.name, &p.env_tags) != monitoring::Ownership::NotOurs;
    match kind {
        Kind::Monitor => {
            for d in &p.desired {
                for m in p.datadog.monitors_named(&d.name).await? {
                    remote.push(Remote {
                        id: m.id.to_string(),
                        name: m.name.clone(),
                        managed: managed_monitor(&m.tags),
                        template: monitoring::template_of(m.tags.iter().map(String::as_str)),
                        body: monitoring::normalise_monitor(&m.definition),
                    });
                }
            }
            for m in p.datadog.monitors_tagged(&p.identity).await? {
                if !remote.iter().any(|r| r.id == m.id.to_string()) {
                    remote.push(Remote {
                        id: m.id.to_string(),
                        name: m.name.clone(),
                        managed: true,
                        template: monitoring::template_of(m.tags.iter().map(String::as_str)),
                        body: monitoring::normalise_monitor(&m.definition),
                    });
                }
            }
        }
        Kind::Slo => {
            for d in &p.desired {
                for s in p.datadog.slos_named(&d.name).await? {
                    remote.push(remote_slo(&s, managed_monitor(&s.tags)));
                }
            }
            for s in p.datadog.slos_tagged(&p.identity).await? {
                if !remote.iter().any(|r| r.id == s.id) {
                    remote.push(remote_slo(&s, true));
                }
            }
        }
        Kind::Dashboard => {
            for listing in p.datadog.dashboard_listings().await? {
                let managed = monitoring::dashboard_is_managed(listing.description.as_deref(), p.name);
                let template = monitoring::template_of(listing.description.as_deref().unwrap_or_default().lines());
                let templated = p
                    .desired
                    .iter()
                    .any(|d| d.name == listing.title || template.as_deref() == Some(d.key.as_str()));
                if !managed && !templated {
                    continue;
                }
                // Only a managed dashboard a template names (by title or by key) is compared, so only it
                // is read whole.
                let body = if managed && templated {
                    monitoring::normalise_dashboard(&p.datadog.dashboard(&listing.id).await?)
                } else {
                    serde_json::Value::Null
                };
                remote.push(Remote {
                    id: listing.id,
                    name: listing.title,
                    managed,
                    template,
                    body,
                });
            }
        }
    }
    Ok(remote)
}

fn remote_slo(slo: &crate::metrics::datadog::RemoteSlo, managed: bool) -> Remote {
    Remote {
        id: slo.id.clone(),
        name: slo.name.clone(),
        managed,
        template: monitoring::template_of(slo.tags.iter().map(String::as_str)),
        body: monitoring::normalise_slo(&slo.definition),
    }
}

/// Asks Datadog to validate every monitor the plan would create or update, before anything is written:
/// what only Datadog knows (a query it cannot parse, a threshold that is not the query's) fails `diff`
/// and `apply` with the template's file, not the third write of an apply.
async fn validate_writes(ctx: &Context, p: &Prepared<'_>, items: &[PlanItem]) -> anyhow::Result<()> {
    let writes: Vec<&PlanItem> = items
        .iter()
        .filter(|i| matches!(i.action, Action::Create | Action::Update | Action::Adopt))
        .collect();
    if writes.is_empty() {
        return Ok(());
    }
    ctx.reporter
        .phase(&format!("validating {} monitor(s) with Datadog", writes.len()));
    let mut refused = Vec::new();
    for item in writes {
        let Some(body) = &item.body else { continue };
        if let Err(problems) = p.datadog.validate_monitor(body).await? {
            let file = item.file.as_deref().unwrap_or(&item.name);
            refused.push(format!("{file}: monitor `{}`: {}", item.name, problems.join("; ")));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    bail!(usage!(
        "Datadog refuses {} monitor template(s); nothing was written:\n  {}\nhint: fix the template (`suma monitors diff` checks again)",
        refused.len(),
        refused.join("\n  ")
    ))
}

fn report(p: &Prepared<'_>, kind: Kind, items: Vec<PlanItem>, dry_run: bool, operation: Option<String>) -> Report {
    Report {
        environment: p.name.to_owned(),
        kind: kind.plural(),
        templates: p.dir.display().to_string(),
        dry_run,
        summary: monitoring::summary(&items),
        items,
        operation,
    }
}

async fn diff(ctx: &Context, kind: Kind, templates: Option<&Path>, exit_code: bool) -> anyhow::Result<ExitStatus> {
    let p = prepare(ctx, kind, templates).await?;
    let items = plan(ctx, kind, &p, Mode::Apply { prune: false }).await?;
    ctx.reporter.finish();
    let differs = items.iter().any(|i| i.action != Action::Unchanged);
    let report = report(&p, kind, items, true, None);
    ctx.printer.either(&report, || crate::render::monitoring::diff(&report));
    Ok(if exit_code && differs {
        ExitStatus::No
    } else {
        ExitStatus::Success
    })
}

async fn apply(
    ctx: &Context,
    kind: Kind,
    templates: Option<&Path>,
    mode: Mode,
    mutation: &MutationArgs,
) -> anyhow::Result<ExitStatus> {
    let p = prepare(ctx, kind, templates).await?;
    let items = plan(ctx, kind, &p, mode).await?;
    ctx.reporter.finish();
    let conflicts = items.iter().any(|i| i.action == Action::Conflict);
    let writes: Vec<usize> = (0..items.len()).filter(|&i| items[i].action.writes()).collect();
    if writes.is_empty() && !mutation.dry_run {
        // Nothing left to write, but an apply that died part-way may still hold the lock: its work is
        // done (Datadog is in line), so it is superseded and the lock freed.
        clear_dead_apply(ctx, kind, p.name).await?;
    }
    if writes.is_empty() || mutation.dry_run {
        let report = report(&p, kind, items, true, None);
        ctx.printer.either(&report, || {
            crate::render::monitoring::applied(&report, mutation.dry_run)
        });
        return Ok(if conflicts { ExitStatus::No } else { ExitStatus::Success });
    }
    if !ctx.printer.is_json() {
        let preview = report(&p, kind, items.clone(), true, None);
        ctx.reporter.info(&crate::render::monitoring::diff(&preview));
    }
    if !crate::render::confirm(
        &format!(
            "write {} Datadog {} of `{}` ({})",
            writes.len(),
            kind.plural(),
            p.name,
            writes
                .iter()
                .map(|&i| items[i].action.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        mutation.yes,
    )? {
        return Ok(ExitStatus::No);
    }

    let (_, env) = ctx.environment()?;
    let plan_steps: Vec<PlannedStep> = writes
        .iter()
        .map(|&i| PlannedStep {
            name: format!("{}-{}", items[i].action.as_str(), kind.word().to_lowercase()),
            detail: monitoring::apply::describe(kind, &items[i]),
        })
        .collect();
    let session = ctx.aws(env.aws_profile.as_deref(), std::iter::empty()).await;
    let journal = ctx.journal(&session);
    let mut op = Operation::new(
        &format!("{}-apply", kind.plural()),
        p.name,
        &ctx.settings.actor.value,
        plan_steps,
    );
    op.parameters
        .insert("templates".to_owned(), json!(p.dir.display().to_string()));
    match mode {
        Mode::Apply { prune } => op.parameters.insert("prune".to_owned(), json!(prune)),
        Mode::Import => op.parameters.insert("import".to_owned(), json!(true)),
    };
    let guard = lock(ctx, &session, &mut op).await?;
    let guard = guard.begin(&journal, &op).await?;
    let run = suma_ops::engine::Run::new(&journal, &guard, ctx.reporter.as_ref(), &ctx.cancel);
    let applied = monitoring::apply::apply(&run, &mut op, &p.datadog, kind, items, writes).await;
    ctx.reporter.finish();
    let settled = guard.settle(&op).await;
    let (end, items) = applied?;
    settled?;
    match end {
        RunEnd::Completed => {}
        RunEnd::Interrupted { at_step } => {
            ctx.reporter.warn(&format!(
                "interrupted at `{at_step}`; the writes before it stand, and the next `apply` plans from there"
            ));
            return Ok(ExitStatus::Interrupted);
        }
        RunEnd::Failed { reason, .. } | RunEnd::Stopped { reason, .. } => bail!("{reason}"),
        RunEnd::Undone { note, .. } => bail!("{note}"),
    }
    let report = report(&p, kind, items, false, Some(op.id.clone()));
    ctx.printer
        .either(&report, || crate::render::monitoring::applied(&report, false));
    Ok(if conflicts { ExitStatus::No } else { ExitStatus::Success })
}

/// Frees the lock of `environment` if a dead apply of `kind` holds it, journaling an empty apply that
/// supersedes it.
async fn clear_dead_apply(ctx: &Context, kind: Kind, environment: &str) -> anyhow::Result<()> {
    let (_, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), std::iter::empty()).await;
    let Some(held) = ctx.locks(&session).status(environment).await? else {
        return Ok(());
    };
    let apply_kind = format!("{}-apply", kind.plural());
    if held.lease_active || held.operation_kind != apply_kind {
        return Ok(());
    }
    let mut op = Operation::new(&apply_kind, environment, &ctx.settings.actor.value, Vec::new());
    let guard = lock(ctx, &session, &mut op).await?;
    op.set_status(OperationStatus::Succeeded);
    ctx.journal(&session).save(&op, Some(guard.fence())).await?;
    guard.settle(&op).await?;
    ctx.reporter.info(&format!(
        "the interrupted apply `{}` is superseded: Datadog is already in line",
        held.operation_id
    ));
    Ok(())
}

/// Takes the environment's lock for the apply `op`. An earlier apply of the same kind whose runner died
/// is superseded rather than resumed: planning again from Datadog's state finishes what it left.
async fn lock(
    ctx: &Context,
    session: &crate::aws::AwsSession,
    op: &mut Operation,
) -> anyhow::Result<crate::journal::lock::LockGuard> {
    let locks = ctx.locks(session);
    let journal = ctx.journal(session);
    if let Some(held) = locks.status(&op.environment).await? {
        let previous = journal.load(&held.operation_id).await?;
        if let Some(previous) = previous.filter(|p| p.kind == op.kind && !p.status.is_finished()) {
            if !held.lease_active {
                let why = "planned again from Datadog's state";
                return Ok(locks.supersede(&journal, op, previous, why).await?);
            }
        }
    }
    Ok(locks.acquire(op, false).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_directory_is_the_flag_else_beside_the_config_else_here() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("suma.yaml");
        let flag = PathBuf::from("/x/templates");
        assert_eq!(templates_dir(Some(&flag), &config), flag);
        assert_eq!(templates_dir(None, &config), PathBuf::from("templates/datadog"));
        std::fs::create_dir_all(dir.path().join("templates/datadog")).unwrap();
        assert_eq!(templates_dir(None, &config), dir.path().join("templates/datadog"));
    }
}
