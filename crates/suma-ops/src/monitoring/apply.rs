//! `monitors apply`, `dashboards apply` and `slos apply` on the operation engine: one step per planned write to
//! Datadog, each journaled with the resource's id, under the environment lock. A Datadog write is not an
//! AWS change, but it changes what pages people (the canary's gate monitor among them), so it gets the
//! same guarantees: fenced lease, signals, the crash hooks.
//!
//! A write that a crash cut short may or may not have happened; the way to finish an interrupted apply
//! is to plan again from Datadog's state, which converges (a created monitor is then found by name and
//! updated, not created twice). So an apply is never resumed: the next `apply` supersedes it.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::{Action, Kind, PlanItem};
use crate::engine::{self, Facts, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::{Decision, Operation};
use crate::metrics::datadog::Datadog;

/// The writes of one apply: `items[writes[i]]` is step `i`.
struct ApplySteps<'a> {
    datadog: &'a Datadog,
    kind: Kind,
    items: Mutex<Vec<PlanItem>>,
    writes: Vec<usize>,
    environment: String,
}

#[async_trait]
impl Steps for ApplySteps<'_> {
    async fn step(&self, run: &Run<'_>, _: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let item = self.items.lock().expect("apply items")[self.writes[index]].clone();
        run.mutating()?;
        let id = write(self.datadog, self.kind, &item).await.map_err(|e| {
            StepError::failed(format!(
                "cannot {} on `{}`: {e:#}",
                describe(self.kind, &item),
                self.environment
            ))
        })?;
        self.items.lock().expect("apply items")[self.writes[index]].id = Some(id.clone());
        Ok(StepEnd::Done(Facts::from([
            ("id".to_owned(), json!(id)),
            ("name".to_owned(), json!(item.name)),
            (
                "fields".to_owned(),
                json!(item.changes.iter().map(|c| c.path.clone()).collect::<Vec<_>>()),
            ),
        ])))
    }

    /// A failed write ends the apply: the writes before it stand, and the next apply plans from there.
    fn on_failure(&self, _: &Operation, _: usize) -> OnFailure {
        OnFailure::Fail
    }

    async fn undo(&self, _: &Run<'_>, _: &mut Operation, _: &Decision) -> Result<String, StepError> {
        Ok("the writes already made stand; the next apply plans from Datadog's state".to_owned())
    }
}

/// Makes the planned writes of `items` (those at `writes`) as the steps of `op`, under `run`'s lock;
/// the items come back with the ids Datadog gave them.
pub async fn apply(
    run: &Run<'_>,
    op: &mut Operation,
    datadog: &Datadog,
    kind: Kind,
    items: Vec<PlanItem>,
    writes: Vec<usize>,
) -> Result<(RunEnd, Vec<PlanItem>), engine::EngineError> {
    let steps = ApplySteps {
        datadog,
        kind,
        items: Mutex::new(items),
        writes,
        environment: op.environment.clone(),
    };
    let end = engine::drive(&steps, run, op).await?;
    Ok((end, steps.items.into_inner().expect("apply items")))
}

/// What a step does, as the plan and errors name it.
pub fn describe(kind: Kind, item: &PlanItem) -> String {
    let what = format!("{} `{}`", kind.word(), item.name);
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
        Action::Adopt => format!("adopt {what} (#{})", item.id.as_deref().unwrap_or("?")),
        _ => what,
    }
}

/// Why one write to Datadog failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Datadog(#[from] crate::metrics::MetricError),
    #[error("`{0}` is not a Datadog monitor id\nhint: the plan read it from Datadog; plan again")]
    MonitorId(String),
    #[error("only planned writes with their body and id are written")]
    Unplanned,
}

/// One write to Datadog; the resource's id.
async fn write(datadog: &Datadog, kind: Kind, item: &PlanItem) -> Result<String, WriteError> {
    let body = item.body.as_ref();
    let id = item.id.as_deref();
    Ok(match (kind, item.action, body, id) {
        (Kind::Monitor, Action::Create, Some(body), _) => datadog.create_monitor(body).await?.id.to_string(),
        (Kind::Monitor, Action::Update | Action::Adopt, Some(body), Some(id)) => datadog
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
        (Kind::Slo, Action::Create, Some(body), _) => datadog.create_slo(body).await?,
        (Kind::Slo, Action::Update, Some(body), Some(id)) => {
            datadog.update_slo(id, body).await?;
            id.to_owned()
        }
        (Kind::Slo, Action::Delete, _, Some(id)) => {
            datadog.delete_slo(id).await?;
            id.to_owned()
        }
        _ => return Err(WriteError::Unplanned),
    })
}

fn parse_monitor_id(id: &str) -> Result<i64, WriteError> {
    id.parse().map_err(|_| WriteError::MonitorId(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn step_details_name_the_resource_and_fields() {
        let item = PlanItem {
            kind: Kind::Monitor,
            name: "m".into(),
            action: Action::Update,
            id: Some("12".into()),
            file: None,
            changes: vec![super::super::FieldChange {
                path: "options.thresholds.critical".into(),
                before: None,
                after: json!(5),
            }],
            note: None,
            body: None,
        };
        assert_eq!(
            describe(Kind::Monitor, &item),
            "update monitor `m` (#12): options.thresholds.critical"
        );
    }
}
