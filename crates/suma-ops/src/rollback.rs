//! Rollback: fast, no analysis. The default target is the revision that was live before the last deploy
//! as the journal recorded it (not "current minus one"). [`prepare`] resolves and plans it reading only;
//! [`execute`] runs the plan under the lock the caller holds (the `rollback` command, or a runbook step);
//! [`announce`] posts the Datadog event.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::aws::ecs::{task_definition_label, Rollout, ServiceUpdate};
use crate::aws::elb::WeightedTarget;
use crate::aws::AwsApis;
use crate::config::Environment;
use crate::journal::{Journal, Operation, OperationStatus, PlannedStep, StepStatus};
use crate::metrics::datadog::EventAlert;
use crate::probe::HttpProbe;
use crate::report::Reporter;

pub const KIND: &str = "rollback";

/// A rollback resolved before anything changes: from where, to what, and the plan.
pub struct Prepared {
    pub current: String,
    pub target: String,
    pub register_image: Option<String>,
    pub target_label: String,
    pub plan: Vec<PlannedStep>,
}

/// Resolves `to` (`previous`, `family:N`, an ARN or an image) and plans the rollback; reads only.
pub async fn prepare(
    name: &str,
    env: &Environment,
    aws: &dyn AwsApis,
    journal: &Journal,
    to: &str,
) -> anyhow::Result<Prepared> {
    let ecs = aws.ecs(&env.primary_region);
    let cfg = &env.ecs;

    let current = ecs
        .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("service `{}` not found in `{}`", cfg.service, cfg.cluster))?
        .task_definition;

    // Resolve the target before anything changes.
    let (target, register_image) = match to {
        "previous" => {
            let last = journal
                .list(name, 100)
                .await?
                .into_iter()
                .find(|op| op.kind == crate::canary::KIND && op.status == OperationStatus::Succeeded)
                .with_context(|| format!("no successful deploy of `{name}` is in the journal, so there is no recorded previous revision\nhint: name one with `--to family:N` or `--to repo:tag`"))?;
            let previous = last
                .fact("stable_task_definition")
                .and_then(|v| v.as_str())
                .with_context(|| format!("deploy `{}` recorded no previous revision", last.id))?
                .to_owned();
            (previous, None)
        }
        to if to.starts_with("arn:")
            || to
                .rsplit_once(':')
                .is_some_and(|(f, r)| !f.contains('/') && r.parse::<u32>().is_ok()) =>
        {
            (to.to_owned(), None)
        }
        image => (String::new(), Some(image.to_owned())),
    };
    if register_image.is_none() {
        let td = ecs
            .describe_task_definition(&target)
            .await
            .with_context(|| format!("rollback target `{target}`"))?;
        if td.status != "ACTIVE" {
            bail!("rollback target `{}` is {}, not ACTIVE\nhint: pick an active revision (`aws ecs list-task-definitions --family-prefix {}`)", task_definition_label(&td.arn), td.status, td.family);
        }
    }
    let target_label = register_image
        .as_ref()
        .map_or_else(|| task_definition_label(&target).to_owned(), |i| format!("image {i}"));
    let plan = vec![
        PlannedStep {
            name: "record".to_owned(),
            detail: format!("record the live revision `{}`", task_definition_label(&current)),
        },
        PlannedStep {
            name: "restore-weights".to_owned(),
            detail: format!(
                "if a canary is in flight: weights stable 100 / canary 0, `{}` to 0",
                cfg.canary_service
            ),
        },
        PlannedStep {
            name: "update-stable".to_owned(),
            detail: format!("point `{}` at {target_label} and wait for the rollout", cfg.service),
        },
        PlannedStep {
            name: "verify".to_owned(),
            detail: env.url.as_ref().map_or("no URL configured: skipped".to_owned(), |u| {
                format!("GET {}/health and /version", u)
            }),
        },
    ];
    Ok(Prepared {
        current,
        target,
        register_image,
        target_label,
        plan,
    })
}

/// Runs the planned steps of `op` (a `rollback` operation holding the lock as `holder`) and records the
/// outcome in the journal; the error is the failed step's.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    env: &Environment,
    aws: &dyn AwsApis,
    journal: &Journal,
    reporter: &dyn Reporter,
    op: &mut Operation,
    holder: &str,
    prepared: &mut Prepared,
    rollout_timeout: Duration,
) -> anyhow::Result<()> {
    let ecs = aws.ecs(&env.primary_region);
    let cfg = &env.ecs;
    let current = prepared.current.clone();
    let register_image = prepared.register_image.clone();
    let total = op.plan.len();
    let result: anyhow::Result<()> = async {
        for index in 0..total {
            let step = op.plan[index].name.clone();
            op.start_step(index);
            journal.save(op, Some(holder)).await?;
            reporter.step_started(index, total, &step);
            let mut facts = BTreeMap::new();
            let mut status = StepStatus::Succeeded;
            match step.as_str() {
                "record" => {
                    facts.insert("previous_task_definition".to_owned(), json!(current));
                    if let Some(image) = &register_image {
                        prepared.target = ecs.register_with_image(&current, &cfg.container, image).await?.arn;
                    }
                    facts.insert("target_task_definition".to_owned(), json!(prepared.target));
                }
                "restore-weights" => {
                    let weights = aws
                        .elb(&env.primary_region)
                        .rule_weights(env.alb.rule_arn.as_str())
                        .await?;
                    let canary = env.alb.canary_target_group_arn.as_str();
                    if weights.iter().any(|w| w.target_group_arn == canary && w.weight > 0) {
                        let targets = [
                            WeightedTarget {
                                target_group_arn: env.alb.stable_target_group_arn.to_string(),
                                weight: 100,
                            },
                            WeightedTarget {
                                target_group_arn: canary.to_owned(),
                                weight: 0,
                            },
                        ];
                        aws.elb(&env.primary_region)
                            .set_weights(env.alb.rule_arn.as_str(), &targets)
                            .await?;
                        let zero = ServiceUpdate {
                            desired_count: Some(0),
                            ..ServiceUpdate::default()
                        };
                        ecs.update_service(&cfg.cluster, &cfg.canary_service, &zero).await?;
                        facts.insert("canary_was_in_flight".to_owned(), json!(true));
                    } else {
                        status = StepStatus::Skipped;
                    }
                }
                "update-stable" => {
                    let update = ServiceUpdate {
                        task_definition: Some(prepared.target.clone()),
                        desired_count: Some(cfg.desired_count as i32),
                        ..ServiceUpdate::default()
                    };
                    ecs.update_service(&cfg.cluster, &cfg.service, &update).await?;
                    let deadline = tokio::time::Instant::now() + rollout_timeout;
                    loop {
                        let service = ecs
                            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
                            .await?;
                        match service.first().map(|s| s.rollout(&prepared.target)) {
                            Some(Rollout::Completed) => break,
                            Some(Rollout::Failed(reason)) => bail!("the rollout of `{}` failed: {reason}", cfg.service),
                            _ if tokio::time::Instant::now() >= deadline => {
                                bail!("`{}` did not finish its rollout in time", cfg.service)
                            }
                            _ => tokio::time::sleep(Duration::from_secs(5)).await,
                        }
                    }
                }
                "verify" => match &env.url {
                    Some(url) => {
                        let probe = suma_http::ServiceClient::new(Duration::from_secs(5));
                        let (health_url, version_url) = (url.join("/health"), url.join("/version"));
                        let (health, version) = tokio::join!(
                            HttpProbe::get(&probe, &health_url),
                            HttpProbe::get(&probe, &version_url)
                        );
                        facts.insert("health".to_owned(), json!(health.status_code));
                        facts.insert("version".to_owned(), json!(version.body));
                        if !health.ok() {
                            bail!(
                                "`{}` answered {:?} after the rollback",
                                health.url,
                                health
                                    .status_code
                                    .map_or_else(|| health.error.clone().unwrap_or_default(), |c| c.to_string())
                            );
                        }
                    }
                    None => status = StepStatus::Skipped,
                },
                _ => unreachable!("planned above"),
            }
            op.finish_step(status, None, facts);
            journal.save(op, Some(holder)).await?;
            reporter.step_finished(index, total, &step, status, "");
        }
        Ok(())
    }
    .await;
    if let Err(e) = &result {
        op.finish_step(StepStatus::Failed, Some(format!("{e:#}")), BTreeMap::new());
        op.set_status(OperationStatus::Failed);
    } else {
        op.set_status(OperationStatus::Succeeded);
    }
    journal.save(op, Some(holder)).await?;
    result
}

/// The Datadog event of a finished rollback (a failed post is a warning).
pub async fn announce(
    name: &str,
    env: &Environment,
    reporter: &dyn Reporter,
    op: &Operation,
    prepared: &Prepared,
    reason: &str,
    succeeded: bool,
) {
    let cfg = &env.ecs;
    let target_label = &prepared.target_label;
    let (title, alert) = if succeeded {
        (
            format!("{} rolled back to {target_label} on {name}", cfg.service),
            EventAlert::Warning,
        )
    } else {
        (
            format!("{} rollback to {target_label} on {name} failed", cfg.service),
            EventAlert::Error,
        )
    };
    let text = format!(
        "reason: {reason}\nby: {}\nfrom: {}\nto: {}\noperation: {}",
        op.actor, prepared.current, prepared.target, op.id
    );
    let tags = [
        format!("service:{}", cfg.service),
        format!("env:{name}"),
        "source:suma".to_owned(),
    ];
    crate::events::post(env, reporter, &title, &text, &tags, alert).await;
}
