//! `suma monitors diff|apply` and `suma dashboards diff|apply`: the environment's Datadog monitors and
//! dashboards kept in line with `templates/datadog`. Templates are rendered and checked before any call;
//! `diff` reads Datadog and shows the plan; `apply` writes only what differs, one journaled step per write,
//! under the environment lock (the canary gate's monitor is among what it changes). Resources suma does not
//! manage are never written, even when they share a name; managed ones no template names any more are
//! reported, and deleted only with `--prune`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::json;

use super::Context;
use crate::cli::{DashboardsCommand, MonitorsCommand, MutationArgs};
use crate::config::Environment;
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, PlannedStep, StepStatus};
use crate::metrics::datadog::{canonical_dashboard, canonical_monitor, Datadog};
use crate::monitoring::report::Report;
use crate::monitoring::{self, Action, Desired, Kind, PlanItem, Remote, MANAGED_BY_TAG};

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
                args.prune,
                &args.mutation,
            )
            .await
        }
    }
}

pub async fn dashboards(ctx: &Context, command: DashboardsCommand) -> anyhow::Result<ExitStatus> {
    match command {
        DashboardsCommand::Diff(args) => {
            diff(
                ctx,
                Kind::Dashboard,
                args.templates.templates.as_deref(),
                args.exit_code,
            )
            .await
        }
        DashboardsCommand::Apply(args) => {
            apply(
                ctx,
                Kind::Dashboard,
                args.templates.templates.as_deref(),
                args.prune,
                &args.mutation,
            )
            .await
        }
    }
}

pub fn monitors_mutating(command: &MonitorsCommand) -> bool {
    matches!(command, MonitorsCommand::Apply(_))
}

pub fn dashboards_mutating(command: &DashboardsCommand) -> bool {
    matches!(command, DashboardsCommand::Apply(_))
}

/// `--templates`, else `templates/datadog` beside the configuration file when it exists there, else
/// `templates/datadog` in the current directory.
pub fn templates_dir(flag: Option<&Path>, config_path: &Path) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_owned();
    }
    let beside = config_path
        .parent()
        .map(|p| p.join("templates").join("datadog"))
        .filter(|p| p.is_dir());
    beside.unwrap_or_else(|| PathBuf::from("templates").join("datadog"))
}

/// Everything `diff` and `apply` share: the environment's client, identity and rendered templates.
struct Prepared<'a> {
    name: &'a str,
    datadog: Datadog,
    /// `managed-by:suma` and the environment's Datadog tags.
    identity: Vec<String>,
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
    };
    let desired = monitoring::load(kind, &dir.join(kind.plural()), &vars, name, &env_tags, check)?;
    let datadog = suma_ops::events::datadog(env)?.expect("checked by identity_tags");
    let mut identity = vec![MANAGED_BY_TAG.to_owned()];
    identity.extend(env_tags);
    Ok(Prepared {
        name,
        datadog,
        identity,
        dir,
        desired,
    })
}

/// The environment's Datadog tags, which tell its monitors from other environments'.
fn identity_tags(name: &str, env: &Environment) -> anyhow::Result<Vec<String>> {
    let Some(datadog) = &env.datadog else {
        bail!("environment `{name}` has no `datadog` section, so it has no Datadog monitors or dashboards\nhint: add `datadog: {{site: datadoghq.eu, tags: [\"service:auth-service\", \"env:{name}\"]}}` to it in suma.yaml");
    };
    if datadog.tags.is_empty() {
        bail!("`environments.{name}.datadog.tags` is empty: suma tells one environment's monitors from another's by these tags\nhint: add e.g. `env:{name}` and `service:auth-service`");
    }
    Ok(datadog.tags.clone())
}

/// Reads what Datadog holds under the templates' names and the environment's identity, and plans.
async fn plan(ctx: &Context, kind: Kind, p: &Prepared<'_>, prune: bool) -> anyhow::Result<Vec<PlanItem>> {
    ctx.reporter.phase(&format!("reading Datadog {}", kind.plural()));
    let mut remote: Vec<Remote> = Vec::new();
    let managed_monitor = |tags: &[String]| p.identity.iter().all(|t| tags.contains(t));
    match kind {
        Kind::Monitor => {
            for d in &p.desired {
                for m in p.datadog.monitors_named(&d.name).await? {
                    remote.push(Remote {
                        id: m.id.to_string(),
                        name: m.name.clone(),
                        managed: managed_monitor(&m.tags),
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
                        body: monitoring::normalise_monitor(&m.definition),
                    });
                }
            }
        }
        Kind::Dashboard => {
            for listing in p.datadog.dashboard_listings().await? {
                let managed = monitoring::dashboard_is_managed(listing.description.as_deref(), p.name);
                let templated = p.desired.iter().any(|d| d.name == listing.title);
                if !managed && !templated {
                    continue;
                }
                // Only a managed dashboard a template names is compared, so only it is read whole.
                let body = if managed && templated {
                    monitoring::normalise_dashboard(&p.datadog.dashboard(&listing.id).await?)
                } else {
                    serde_json::Value::Null
                };
                remote.push(Remote {
                    id: listing.id,
                    name: listing.title,
                    managed,
                    body,
                });
            }
        }
    }
    let items = monitoring::plan(&p.desired, &remote, prune);
    for item in &items {
        if item.action == Action::Conflict {
            ctx.reporter.warn(&format!(
                "{} `{}` exists in Datadog without suma's managed-by identity for `{}`: not touched",
                kind_word(kind),
                item.name,
                p.name
            ));
        }
    }
    Ok(items)
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Monitor => "monitor",
        Kind::Dashboard => "dashboard",
    }
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
    let items = plan(ctx, kind, &p, false).await?;
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

fn step_detail(kind: Kind, item: &PlanItem) -> String {
    let what = format!("{} `{}`", kind_word(kind), item.name);
    match item.action {
        Action::Create => format!("create {what}"),
        Action::Update => format!(
            "update {what} (#{}): {}",
            item.id.as_deref().unwrap_or("?"),
            item.changes
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Action::Delete => format!("delete {what} (#{})", item.id.as_deref().unwrap_or("?")),
        _ => what,
    }
}

async fn apply(
    ctx: &Context,
    kind: Kind,
    templates: Option<&Path>,
    prune: bool,
    mutation: &MutationArgs,
) -> anyhow::Result<ExitStatus> {
    let p = prepare(ctx, kind, templates).await?;
    let mut items = plan(ctx, kind, &p, prune).await?;
    ctx.reporter.finish();
    let conflicts = items.iter().any(|i| i.action == Action::Conflict);
    let writes: Vec<usize> = (0..items.len()).filter(|&i| items[i].action.writes()).collect();
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
            name: format!("{}-{}", items[i].action.as_str(), kind_word(kind)),
            detail: step_detail(kind, &items[i]),
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
    op.parameters.insert("prune".to_owned(), json!(prune));
    let guard = ctx.locks(&session).acquire(&op, false).await?;
    let fence = guard.fence().clone();
    let total = writes.len();
    let result: anyhow::Result<()> = async {
        for (step, &i) in writes.iter().enumerate() {
            let step_name = op.plan[step].name.clone();
            op.start_step(step);
            journal.save(&op, Some(&fence)).await?;
            ctx.reporter.step_started(step, total, &step_name);
            let item = &mut items[i];
            let id = write(&p.datadog, kind, item)
                .await
                .with_context(|| format!("cannot {} on `{}`", step_detail(kind, item), p.name))?;
            item.id = Some(id.clone());
            let facts = BTreeMap::from([
                ("id".to_owned(), json!(id)),
                ("name".to_owned(), json!(item.name)),
                (
                    "fields".to_owned(),
                    json!(item.changes.iter().map(|c| c.path.clone()).collect::<Vec<_>>()),
                ),
            ]);
            op.finish_step(StepStatus::Succeeded, None, facts);
            journal.save(&op, Some(&fence)).await?;
            ctx.reporter
                .step_finished(step, total, &step_name, StepStatus::Succeeded, &format!("#{id}"));
        }
        Ok(())
    }
    .await;
    match &result {
        Ok(()) => op.set_status(OperationStatus::Succeeded),
        Err(e) => {
            op.finish_step(StepStatus::Failed, Some(format!("{e:#}")), BTreeMap::new());
            op.set_status(OperationStatus::Failed);
        }
    }
    journal.save(&op, Some(&fence)).await?;
    guard.release().await?;
    ctx.reporter.finish();
    result?;
    let report = report(&p, kind, items, false, Some(op.id.clone()));
    ctx.printer
        .either(&report, || crate::render::monitoring::applied(&report, false));
    Ok(if conflicts { ExitStatus::No } else { ExitStatus::Success })
}

/// One write to Datadog; the resource's id.
async fn write(datadog: &Datadog, kind: Kind, item: &PlanItem) -> anyhow::Result<String> {
    let body = item.body.as_ref();
    let id = item.id.as_deref();
    Ok(match (kind, item.action, body, id) {
        (Kind::Monitor, Action::Create, Some(body), _) => datadog.create_monitor(body).await?.id.to_string(),
        (Kind::Monitor, Action::Update, Some(body), Some(id)) => datadog
            .update_monitor(parse_monitor_id(id)?, body)
            .await?
            .id
            .to_string(),
        (Kind::Monitor, Action::Delete, _, Some(id)) => {
            datadog.delete_monitor(parse_monitor_id(id)?).await?;
            id.to_owned()
        }
        (Kind::Dashboard, Action::Create, Some(body), _) => datadog.create_dashboard(body).await?,
        (Kind::Dashboard, Action::Update, Some(body), Some(id)) => {
            datadog.update_dashboard(id, body).await?;
            id.to_owned()
        }
        (Kind::Dashboard, Action::Delete, _, Some(id)) => {
            datadog.delete_dashboard(id).await?;
            id.to_owned()
        }
        _ => unreachable!("only planned writes with their body and id reach here"),
    })
}

fn parse_monitor_id(id: &str) -> anyhow::Result<i64> {
    id.parse()
        .with_context(|| format!("`{id}` is not a Datadog monitor id"))
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

    #[test]
    fn step_details_name_the_resource_and_fields() {
        let item = PlanItem {
            kind: Kind::Monitor,
            name: "m".into(),
            action: Action::Update,
            id: Some("12".into()),
            file: None,
            changes: vec![monitoring::FieldChange {
                path: "options.thresholds.critical".into(),
                before: None,
                after: json!(5),
            }],
            note: None,
            body: None,
        };
        assert_eq!(
            step_detail(Kind::Monitor, &item),
            "update monitor `m` (#12): options.thresholds.critical"
        );
    }
}
