//! The ECS findings of a region: its services judged while the task definitions to judge are found
//! (from the services, the ACTIVE families and the rules that start tasks; [`scope::find_task_definitions`])
//! and described, each as soon as one of its sources names it.

use std::collections::BTreeSet;
use std::future::Future;

use futures::{FutureExt as _, StreamExt as _};

use super::evaluate::{self, error_finding, EvalContext};
use super::run::{errors, errors_of, wants};
use super::scope::{self, Configured};
use super::{posture, Check, Finding};
use crate::aws::inventory::{EcsServiceFacts, InventoryApi};
use crate::aws::AwsError;
use crate::report::Reporter;

/// Task definitions described at once.
const TASK_DEFINITION_CONCURRENCY: usize = 16;

/// The findings of the selected ECS checks in `region`; `services` is the region's one read of its
/// services, which the network checks share, awaited once here.
pub(super) async fn findings(
    region: &str,
    inventory: &dyn InventoryApi,
    checks: &[&'static Check],
    ctx: &EvalContext,
    configured: Option<&Configured>,
    services: impl Future<Output = Result<Vec<EcsServiceFacts>, AwsError>>,
    reporter: &dyn Reporter,
) -> Vec<Finding> {
    if !wants(checks, "ecs") {
        return Vec::new();
    }
    let in_scope = |s: &EcsServiceFacts| configured.is_none_or(|c| c.has_service(region, &s.cluster, &s.name));
    // The services are judged while their task definitions, and the others found meanwhile, are
    // described: each task definition as soon as one of its sources names it. The services' own go to
    // the finder as soon as they are read; when they cannot be, the sender is dropped and the finder goes
    // on without them (the services' checks report the error).
    let (services_read, services_task_definitions) = futures::channel::oneshot::channel::<Vec<String>>();
    let judge_services = async {
        let services: Vec<_> = services.await?.into_iter().filter(in_scope).collect();
        let _ = services_read.send(services.iter().map(|s| s.task_definition.clone()).collect());
        let mut out: Vec<Finding> = services.iter().flat_map(|s| evaluate::ecs_service(s, ctx)).collect();
        if checks.iter().any(|c| c.id == "ecs-autoscaling") {
            // The canary and a DR standby are scaled by suma, not by Application Auto Scaling.
            let scaled = services.iter().filter(|s| {
                !ctx.scaled_by_suma
                    .contains(&(s.region.clone(), s.cluster.clone(), s.name.clone()))
            });
            match inventory.ecs_scalable_targets().await {
                Ok(targets) => out.extend(scaled.map(|s| posture::service_scaling(s, &targets))),
                Err(e) => {
                    out.extend(scaled.map(|s| error_finding("ecs-autoscaling", &s.arn, Some(region), &e.to_string())))
                }
            }
        }
        Ok::<_, AwsError>((out, services.len()))
    };
    let services_task_definitions = services_task_definitions.map(Result::unwrap_or_default);
    let (found, to_describe) = futures::channel::mpsc::unbounded();
    let find = scope::find_task_definitions(region, inventory, services_task_definitions, configured, found);
    let describe = to_describe
        .map(|arn: String| async move {
            let td = inventory.task_definition(&arn).await;
            (arn, td)
        })
        .buffer_unordered(TASK_DEFINITION_CONCURRENCY)
        .collect::<Vec<_>>();
    let (judged_services, unread, described) = tokio::join!(judge_services, find, describe);
    let (mut out, service_count) = match judged_services {
        Ok(judged) => judged,
        Err(e) => {
            return errors(
                checks,
                "ecs",
                &format!("ECS services in {region}"),
                Some(region),
                &e.to_string(),
            )
        }
    };
    for (what, error) in unread {
        out.extend(task_definition_errors(checks, &what, region, &error));
    }
    reporter.info(&format!(
        "{region}: {service_count} ECS services, {} task definitions",
        described.len()
    ));
    // A rule may name a revision as `family:revision` that a service names by ARN: judged once.
    let mut judged = BTreeSet::new();
    for (arn, td) in described {
        match td {
            Ok(td) if judged.insert(td.arn.clone()) => out.extend(evaluate::task_definition(&td)),
            Ok(_) => {}
            Err(e) => out.extend(task_definition_errors(checks, &arn, region, &e.to_string())),
        }
    }
    out
}

/// `error` findings for every selected check of task definitions, about what could not be read.
fn task_definition_errors(checks: &[&'static Check], resource: &str, region: &str, error: &str) -> Vec<Finding> {
    errors_of(
        checks,
        |c| c.service == "ecs" && !SERVICE_LEVEL_ECS.contains(&c.id),
        resource,
        Some(region),
        error,
    )
}

/// ECS checks about services rather than task definitions.
const SERVICE_LEVEL_ECS: &[&str] = &[
    "ecs-circuit-breaker-rollback",
    "ecs-min-healthy-100",
    "ecs-min-two-tasks",
    "ecs-no-public-ip",
    "ecs-autoscaling",
];
