//! The ECS tasks EventBridge starts, for compliance: its rules' (scheduled jobs, migrations run on an
//! event, on every bus) and EventBridge Scheduler's schedules' (the newer way to run a job on a
//! timetable). An auditor judges every task definition revision something can run, and a rule or a
//! schedule may name an older revision than its family's latest.

use super::inventory::SdkInventory;
use crate::inventory::ScheduledTaskFacts;
use crate::AwsError;

/// Every item of a listing EventBridge pages with `NextToken` (its listings have no paginator): `page`
/// reads one page from a token and returns its items and the next token.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (mut more, next) = page(token.take()).await?;
        items.append(&mut more);
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(items),
        }
    }
}

impl SdkInventory {
    pub(super) async fn list_scheduled_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError> {
        // Schedules live on the default bus; rules on custom buses start tasks on events. Both run code.
        let buses = all_pages(|token| async move {
            let page = self
                .events
                .list_event_buses()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("EventBridge", "ListEventBuses", &self.region, e))?;
            let names = page
                .event_buses()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned))
                .collect();
            Ok((names, page.next_token().map(str::to_owned)))
        })
        .await?;
        let mut tasks = Vec::new();
        for bus in &buses {
            let rules = all_pages(|token| async move {
                let page = self
                    .events
                    .list_rules()
                    .event_bus_name(bus)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("EventBridge", "ListRules", bus, e))?;
                let rules = page
                    .rules()
                    .iter()
                    .filter_map(|r| Some((r.name()?.to_owned(), r.state().map(|s| s.as_str().to_owned()))))
                    .collect();
                Ok((rules, page.next_token().map(str::to_owned)))
            })
            .await?;
            for (rule, state) in rules {
                let rule = &rule;
                let targets = all_pages(|token| async move {
                    let page = self
                        .events
                        .list_targets_by_rule()
                        .rule(rule)
                        .event_bus_name(bus)
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("EventBridge", "ListTargetsByRule", rule, e))?;
                    let ecs = page
                        .targets()
                        .iter()
                        .filter_map(|t| {
                            let ecs = t.ecs_parameters()?;
                            Some((t.arn().to_owned(), ecs.task_definition_arn().to_owned()))
                        })
                        .collect();
                    Ok((ecs, page.next_token().map(str::to_owned)))
                })
                .await?;
                tasks.extend(
                    targets
                        .into_iter()
                        .map(|(cluster_arn, task_definition)| ScheduledTaskFacts {
                            rule: rule.clone(),
                            region: self.region.clone(),
                            state: state.clone().unwrap_or_default(),
                            cluster_arn,
                            task_definition,
                        }),
                );
            }
        }
        tasks.extend(self.list_schedule_tasks().await?);
        Ok(tasks)
    }

    /// The ECS tasks of EventBridge Scheduler's schedules, every group. A listing shows a target's ARN
    /// only; the task definition is in the schedule itself (`GetSchedule`), read for ECS targets only.
    async fn list_schedule_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError> {
        use futures::StreamExt as _;
        let mut ecs_schedules = Vec::new();
        let mut pages = self.scheduler.list_schedules().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("Scheduler", "ListSchedules", &self.region, e))?;
            for s in page.schedules() {
                let ecs = s.target().is_some_and(|t| t.arn().contains(":cluster/"));
                if let (true, Some(name)) = (ecs, s.name()) {
                    ecs_schedules.push((
                        name.to_owned(),
                        s.group_name().unwrap_or("default").to_owned(),
                        s.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    ));
                }
            }
        }
        let read = futures::stream::iter(ecs_schedules)
            .map(|(name, group, state)| async move {
                let out = self
                    .scheduler
                    .get_schedule()
                    .name(&name)
                    .group_name(&group)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("Scheduler", "GetSchedule", &name, e))?;
                Ok::<_, AwsError>(out.target().and_then(|t| {
                    t.ecs_parameters().map(|ecs| ScheduledTaskFacts {
                        rule: format!("schedule {group}/{name}"),
                        region: self.region.clone(),
                        state: state.clone(),
                        cluster_arn: t.arn().to_owned(),
                        task_definition: ecs.task_definition_arn().to_owned(),
                    })
                }))
            })
            .buffer_unordered(SCHEDULE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut tasks = Vec::new();
        for one in read {
            tasks.extend(one?);
        }
        Ok(tasks)
    }
}

/// Schedules read at once.
const SCHEDULE_CONCURRENCY: usize = 8;
