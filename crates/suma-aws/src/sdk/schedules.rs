//! The ECS tasks EventBridge rules start (scheduled jobs, migrations run on an event), for compliance: an
//! auditor judges every task definition revision something can run, and a rule may name an older revision
//! than a family's latest.

use super::inventory::SdkInventory;
use crate::inventory::ScheduledTaskFacts;
use crate::AwsError;

impl SdkInventory {
    pub(super) async fn list_scheduled_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError> {
        // Schedules live on the default bus; rules on custom buses start tasks on events. Both run code.
        let mut buses = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .events
                .list_event_buses()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("EventBridge", "ListEventBuses", &self.region, e))?;
            buses.extend(page.event_buses().iter().filter_map(|b| b.name().map(str::to_owned)));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        let mut rules = Vec::new();
        for bus in &buses {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .events
                    .list_rules()
                    .event_bus_name(bus)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("EventBridge", "ListRules", bus, e))?;
                rules.extend(page.rules().iter().filter_map(|r| {
                    Some((
                        bus.clone(),
                        r.name()?.to_owned(),
                        r.state().map(|s| s.as_str().to_owned()),
                    ))
                }));
                match page.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        let mut tasks = Vec::new();
        for (bus, rule, state) in rules {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .events
                    .list_targets_by_rule()
                    .rule(&rule)
                    .event_bus_name(&bus)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("EventBridge", "ListTargetsByRule", &rule, e))?;
                for target in page.targets() {
                    if let Some(ecs) = target.ecs_parameters() {
                        tasks.push(ScheduledTaskFacts {
                            rule: rule.clone(),
                            region: self.region.clone(),
                            state: state.clone().unwrap_or_default(),
                            cluster_arn: target.arn().to_owned(),
                            task_definition: ecs.task_definition_arn().to_owned(),
                        });
                    }
                }
                match page.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(tasks)
    }
}
