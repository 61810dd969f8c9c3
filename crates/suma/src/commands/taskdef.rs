//! `suma taskdef render|diff|register`: the task definition from its template, for one environment.
//!
//! Every template problem (unknown variable, missing value, shape, validation) is reported before any AWS
//! call. `register` creates a revision and touches no service, so it takes no environment lock (a revision
//! nobody runs changes nothing, and it may be prepared while a canary holds the lock); it is journaled,
//! has `--dry-run`, and needs `--yes` without a terminal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use suma_core::usage;

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::aws::ecs::RegisteredTaskDefinition;
use crate::aws::{AwsApis, AwsSession};
use crate::cli::{TaskdefCommand, TaskdefDiffArgs, TaskdefRegisterArgs, TaskdefRenderArgs, TemplateArgs};
use crate::exit::ExitStatus;
use crate::journal::{Operation, OperationStatus, StepStatus};
use crate::taskdef::{self, Change, TaskDefinitionSpec};

/// The journal's kind for `suma taskdef register`.
pub const KIND: &str = "taskdef-register";

pub async fn run(ctx: &Context, command: TaskdefCommand) -> anyhow::Result<ExitStatus> {
    match command {
        TaskdefCommand::Render(args) => render(ctx, &args),
        TaskdefCommand::Diff(args) => diff(ctx, &args).await,
        TaskdefCommand::Register(args) => register(ctx, &args).await,
    }
}

/// `--var NAME=VALUE` flags as pairs.
pub fn parse_vars(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|flag| {
            let Some((name, value)) = flag.split_once('=') else {
                bail!(usage!("`--var {flag}` has no `=`\nhint: write `--var NAME=VALUE`"));
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!(usage!(
                    "`--var {flag}`: `{name}` is not a variable name\nhint: names are letters, digits and `_`"
                ));
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The template path of `args` for this configuration.
pub fn template_path(ctx: &Context, args: &TemplateArgs) -> PathBuf {
    taskdef::template_path(args.template.as_deref(), &ctx.settings.config_path.value)
}

fn render(ctx: &Context, args: &TaskdefRenderArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let path = template_path(ctx, &args.template);
    let vars = parse_vars(&args.template.vars)?;
    let spec = taskdef::render_spec(name, env, &path, args.template.image.as_deref(), &vars)?;
    // JSON in both formats: it is what `aws ecs register-task-definition --cli-input-json` takes.
    ctx.printer.json(&spec);
    Ok(ExitStatus::Success)
}

/// The rendered template next to the stable service's live revision.
#[derive(Debug, Serialize)]
struct Comparison {
    environment: String,
    template: PathBuf,
    /// `--image`, or the image the stable service runs.
    image: String,
    live: LiveRevision,
    identical: bool,
    changes: Vec<Change>,
    #[serde(skip)]
    rendered: TaskDefinitionSpec,
}

#[derive(Debug, Serialize)]
struct LiveRevision {
    service: String,
    task_definition: String,
    revision: i32,
}

/// Checks the template offline, then reads the live revision and compares.
async fn compare(ctx: &Context, args: &TemplateArgs) -> anyhow::Result<(Comparison, AwsSession)> {
    let (name, env) = ctx.environment()?;
    let path = template_path(ctx, args);
    let vars = parse_vars(&args.vars)?;
    // Everything but the live image is known now: fail on the template before calling AWS.
    let placeholder = format!("{}:live-stable-image", env.ecs.container);
    taskdef::render_spec(
        name,
        env,
        &path,
        Some(args.image.as_deref().unwrap_or(&placeholder)),
        &vars,
    )?;

    ctx.reporter
        .phase(&format!("reading `{}`'s task definition", env.ecs.service));
    let session = ctx.aws(env.aws_profile.as_deref(), [&env.primary_region]).await;
    let ecs = session.ecs(&env.primary_region);
    let services = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .with_context(|| format!("cannot read the stable service `{}`", env.ecs.service))?;
    let service = services.first().with_context(|| {
        format!(
            "the stable service `{}` was not found in `{}`",
            env.ecs.service, env.ecs.cluster
        )
    })?;
    let live: RegisteredTaskDefinition = ecs
        .describe_task_definition_spec(&service.task_definition)
        .await
        .context("cannot read the live task definition")?;
    ctx.reporter.finish();
    let image = match &args.image {
        Some(image) => image.clone(),
        None => live
            .spec
            .container(&env.ecs.container)
            .map(|c| c.image.clone())
            .with_context(|| {
                format!(
                    "the live task definition `{}` has no container `{}` to take the image from\nhint: pass `--image REPO:TAG`",
                    live.summary.arn, env.ecs.container
                )
            })?,
    };
    let rendered = taskdef::render_spec(name, env, &path, Some(&image), &vars)?;
    let changes = taskdef::diff(&live.spec, &rendered);
    let comparison = Comparison {
        environment: name.to_owned(),
        template: path,
        image,
        live: LiveRevision {
            service: env.ecs.service.clone(),
            task_definition: live.summary.arn.clone(),
            revision: live.summary.revision,
        },
        identical: changes.is_empty(),
        changes,
        rendered,
    };
    Ok((comparison, session))
}

async fn diff(ctx: &Context, args: &TaskdefDiffArgs) -> anyhow::Result<ExitStatus> {
    let (comparison, _) = compare(ctx, &args.template).await?;
    ctx.printer.either(&comparison, || {
        crate::render::taskdef::diff(
            &comparison.changes,
            &comparison.live.task_definition,
            &comparison.template,
        )
    });
    Ok(if args.exit_code && !comparison.identical {
        ExitStatus::No
    } else {
        ExitStatus::Success
    })
}

async fn register(ctx: &Context, args: &TaskdefRegisterArgs) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let (comparison, session) = compare(ctx, &args.template).await?;
    let live = crate::aws::ecs::task_definition_label(&comparison.live.task_definition).to_owned();
    if comparison.identical && !args.force {
        let report = json!({"registered": false, "identical": true, "live": comparison.live,
            "reason": "the live task definition already matches the template"});
        ctx.printer.either(&report, || {
            format!(
                "`{live}` already matches the template; nothing registered\n(`--force --reason TEXT` registers anyway)"
            )
        });
        return Ok(ExitStatus::Success);
    }
    let plan = super::one_step_plan(
        "register",
        format!(
            "register a revision of `{}` from `{}` with image `{}` ({} field(s) differ from `{live}`)",
            comparison.rendered.family,
            comparison.template.display(),
            comparison.image,
            comparison.changes.len()
        ),
    );
    if args.mutation.dry_run {
        let report = json!({"dry_run": true, "environment": name, "plan": plan, "changes": comparison.changes,
            "task_definition": comparison.rendered});
        ctx.printer.either(&report, || {
            crate::render::taskdef::register_plan(&plan, &comparison.changes, &comparison.live.task_definition)
        });
        return Ok(ExitStatus::Success);
    }
    ctx.reporter.info(&crate::render::taskdef::register_plan(
        &plan,
        &comparison.changes,
        &comparison.live.task_definition,
    ));
    if !crate::render::confirm(
        &format!("register a new `{}` revision for `{name}`", comparison.rendered.family),
        args.mutation.yes,
    )? {
        ctx.reporter.info("not confirmed; nothing changed");
        return Ok(ExitStatus::No);
    }
    let journal = ctx.journal(&session);
    let mut op = Operation::new(KIND, name, &ctx.settings.actor.value, plan);
    op.parameters.insert("template".to_owned(), json!(comparison.template));
    op.parameters.insert("image".to_owned(), json!(comparison.image));
    if args.force {
        op.parameters.insert("force_reason".to_owned(), json!(args.reason));
    }
    op.parameters.insert(
        "live_task_definition".to_owned(),
        json!(comparison.live.task_definition),
    );
    op.parameters
        .insert("task_definition".to_owned(), json!(comparison.rendered));
    op.start_step(0);
    journal.save(&op, None).await?;
    ctx.reporter.phase("registering");
    let result = session
        .ecs(&env.primary_region)
        .register_task_definition(&comparison.rendered)
        .await;
    ctx.reporter.finish();
    match result {
        Ok(registered) => {
            op.finish_step(
                StepStatus::Succeeded,
                None,
                BTreeMap::from([("task_definition".to_owned(), json!(registered.arn))]),
            );
            op.set_status(OperationStatus::Succeeded);
            journal.save(&op, None).await?;
            ctx.printer.either(
                &json!({"registered": true, "task_definition": registered.arn, "revision": registered.revision,
                    "operation": op.id, "changes": comparison.changes}),
                || {
                    format!(
                        "registered `{}`\n{}\nroll it out with `suma deploy canary --env {name} --taskdef-template`",
                        registered.arn,
                        crate::aws::ecs::task_definition_label(&registered.arn)
                    )
                },
            );
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            op.finish_step(StepStatus::Failed, Some(e.to_string()), BTreeMap::new());
            op.set_status(OperationStatus::Failed);
            journal.save(&op, None).await?;
            Err(anyhow::Error::new(e).context(format!("cannot register the task definition (operation `{}`)", op.id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_flags() {
        assert_eq!(
            parse_vars(&["a=b=c".into(), "log_level=".into()]).unwrap(),
            [
                ("a".to_owned(), "b=c".to_owned()),
                ("log_level".to_owned(), String::new())
            ]
        );
        assert!(parse_vars(&["nope".into()])
            .unwrap_err()
            .to_string()
            .contains("has no `=`"));
        assert!(parse_vars(&["a-b=1".into()]).is_err());
    }
}
