//! Monitors: reading them (the canary preflight's alerting ones, the summaries compliance judges) and
//! writing the ones `suma monitors apply` manages, matched by exact name or by tags.

use std::time::{SystemTime, UNIX_EPOCH};

use datadog_api_client::datadogV1::api_monitors::ListMonitorsOptionalParams;
use datadog_api_client::datadogV1::model::{Monitor, MonitorOverallStates, MonitorUpdateRequest};
use serde::Serialize;
use serde_json::Value;
use suma_core::metrics::MetricError;

use crate::downtimes::MonitorRef;
use crate::{failed, from_client, unfit, Datadog, MAX_MONITOR_PAGES, MONITOR_PAGE_SIZE};

/// A monitor whose overall state is `Alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertingMonitor {
    pub id: i64,
    pub name: String,
    /// Datadog's overall state, `Alert`.
    pub state: String,
}

/// A monitor as compliance checks see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorSummary {
    pub id: i64,
    pub name: String,
    pub tags: Vec<String>,
    /// Silenced, or inside a downtime that is in effect.
    pub muted: bool,
    /// The `@` handles in the message (people, teams, integrations notified).
    pub notifies: Vec<String>,
}

impl Datadog {
    /// Monitors that carry every one of `tags` (e.g. `service:auth-service`, `auto-rollback:true`) and whose
    /// overall state is `Alert`.
    pub async fn alerting_monitors(&self, tags: &[String]) -> Result<Vec<AlertingMonitor>, MetricError> {
        // `monitor_tags` already filters; checking again keeps the answer right if Datadog's matching of
        // UI-created tags (which it prefixes with `service:`) ever differs from ours.
        let monitors = self.monitor_pages(None, tags).await?;
        Ok(monitors.into_iter().filter_map(|m| alerting_monitor(m, tags)).collect())
    }

    /// Every monitor that carries all of `tags`, page by page, for compliance checks.
    pub async fn monitors(&self, tags: &[String]) -> Result<Vec<MonitorSummary>, MetricError> {
        let monitors = self.monitor_pages(None, tags).await?;
        Ok(monitors
            .into_iter()
            .filter(|m| {
                tags.iter()
                    .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)))
            })
            .map(monitor_summary)
            .collect())
    }
}

/// A monitor as Datadog holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteMonitor {
    pub id: i64,
    pub name: String,
    pub tags: Vec<String>,
    /// The whole monitor in the API's shape, server-owned fields (`id`, `created`, `overall_state`, ...)
    /// included.
    pub definition: Value,
}

/// `definition` put through the client's `Monitor` model and back: the JSON suma would send, or why it does
/// not fit (a missing `query`, an unknown `type`, a threshold that is not a number...).
pub fn canonical_monitor(definition: &Value) -> Result<Value, String> {
    let monitor: Monitor = serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&monitor).map_err(|e| e.to_string())
}

pub(crate) fn remote_monitor(m: Monitor) -> RemoteMonitor {
    let definition = serde_json::to_value(&m).unwrap_or(Value::Null);
    RemoteMonitor {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        tags: m.tags.unwrap_or_default(),
        definition,
    }
}

impl Datadog {
    async fn monitor_pages(&self, name: Option<&str>, tags: &[String]) -> Result<Vec<Monitor>, MetricError> {
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            // `with_downtimes`: without it Datadog leaves out `matching_downtimes`, and a monitor muted by a
            // downtime would read as notifying.
            let mut params = ListMonitorsOptionalParams::default()
                .page(page)
                .page_size(MONITOR_PAGE_SIZE)
                .with_downtimes(true);
            if let Some(name) = name {
                params = params.name(name.to_owned());
            }
            if !tags.is_empty() {
                params = params.monitor_tags(tags.join(","));
            }
            let monitors = self
                .monitors
                .list_monitors(params)
                .await
                .map_err(|e| from_client(e, &format!("listing monitors at {}", self.endpoint)))?;
            let last_page = monitors.len() < MONITOR_PAGE_SIZE as usize;
            found.extend(monitors);
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// Monitors named exactly `name`, whatever their tags (Datadog's `name` filter matches substrings, so
    /// the list is narrowed here).
    pub async fn monitors_named(&self, name: &str) -> Result<Vec<RemoteMonitor>, MetricError> {
        let monitors = self.monitor_pages(Some(name), &[]).await?;
        Ok(monitors
            .into_iter()
            .filter(|m| m.name.as_deref() == Some(name))
            .map(remote_monitor)
            .collect())
    }

    /// Every monitor carrying all of `tags`, whole.
    pub async fn monitors_tagged(&self, tags: &[String]) -> Result<Vec<RemoteMonitor>, MetricError> {
        let monitors = self.monitor_pages(None, tags).await?;
        Ok(monitors
            .into_iter()
            .filter(|m| {
                tags.iter()
                    .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)))
            })
            .map(remote_monitor)
            .collect())
    }

    /// Creates a monitor from its definition (the API's JSON: `name`, `type`, `query`, `message`, `tags`,
    /// `options`, ...).
    pub async fn create_monitor(&self, definition: &Value) -> Result<RemoteMonitor, MetricError> {
        let body: Monitor = serde_json::from_value(definition.clone()).map_err(|e| unfit("monitor", e))?;
        let name = body.name.clone().unwrap_or_default();
        self.monitors
            .create_monitor(body)
            .await
            .map(remote_monitor)
            .map_err(|e| from_client(e, &format!("creating monitor `{name}` at {}", self.endpoint)))
    }

    /// Datadog's verdict on `definition` before it is sent (`POST /api/v1/monitor/validate`): its query,
    /// thresholds and options checked as a create would check them, nothing stored. `Ok(Err(problems))`
    /// when Datadog refuses it; `Err` when Datadog could not be asked.
    pub async fn validate_monitor(&self, definition: &Value) -> Result<Result<(), Vec<String>>, MetricError> {
        let body: Monitor = serde_json::from_value(definition.clone()).map_err(|e| unfit("monitor", e))?;
        let name = body.name.clone().unwrap_or_default();
        match self.monitors.validate_monitor(body).await {
            Ok(_) => Ok(Ok(())),
            Err(datadog_api_client::datadog::Error::ResponseError(r)) if r.status.as_u16() == 400 => {
                Ok(Err(crate::error_message(&r.content)
                    .split("; ")
                    .map(str::to_owned)
                    .collect()))
            }
            Err(e) => Err(from_client(
                e,
                &format!("validating monitor `{name}` at {}", self.endpoint),
            )),
        }
    }

    /// Replaces the fields of monitor `id` that `definition` sets.
    pub async fn update_monitor(&self, id: i64, definition: &Value) -> Result<RemoteMonitor, MetricError> {
        let body: MonitorUpdateRequest = serde_json::from_value(definition.clone()).map_err(|e| unfit("monitor", e))?;
        self.monitors
            .update_monitor(id, body)
            .await
            .map(remote_monitor)
            .map_err(|e| from_client(e, &format!("updating monitor #{id} at {}", self.endpoint)))
    }

    /// Deletes monitor `id`.
    pub async fn delete_monitor(&self, id: i64) -> Result<(), MetricError> {
        use datadog_api_client::datadogV1::api_monitors::DeleteMonitorOptionalParams;
        self.monitors
            .delete_monitor(id, DeleteMonitorOptionalParams::default())
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("deleting monitor #{id} at {}", self.endpoint)))
    }

    /// The id of `monitor`: a name must match exactly one monitor.
    pub async fn resolve_monitor(&self, monitor: &MonitorRef) -> Result<i64, MetricError> {
        match monitor {
            MonitorRef::Id(id) => Ok(*id),
            MonitorRef::Name(name) => {
                let found = self.monitors_named(name).await?;
                match found.as_slice() {
                    [one] => Ok(one.id),
                    [] => Err(failed(format!("no monitor is named `{name}` at {}", self.endpoint))),
                    many => Err(failed(format!(
                        "{} monitors are named `{name}` ({}); name one by its id",
                        many.len(),
                        many.iter().map(|m| format!("#{}", m.id)).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    }
}

// `options.silenced` is deprecated in favour of downtimes, but monitors muted the old way still carry it.
#[allow(deprecated)]
fn monitor_summary(m: Monitor) -> MonitorSummary {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let silenced = m
        .options
        .as_ref()
        .and_then(|o| o.silenced.as_ref())
        .is_some_and(|s| s.values().any(|end| end.is_none_or(|end| end > now)));
    let in_downtime = m.matching_downtimes.as_ref().is_some_and(|d| {
        d.iter()
            .any(|d| d.start.is_none_or(|s| s <= now) && d.end.flatten().is_none_or(|e| e > now))
    });
    let notifies = m
        .message
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| w.len() > 1 && w.starts_with('@'))
        .map(|w| w.trim_end_matches([',', '.', ';', ')']).to_owned())
        .collect();
    MonitorSummary {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        tags: m.tags.unwrap_or_default(),
        muted: silenced || in_downtime,
        notifies,
    }
}

fn alerting_monitor(m: Monitor, tags: &[String]) -> Option<AlertingMonitor> {
    let state = m.overall_state?;
    let carries_all = tags
        .iter()
        .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)));
    (state == MonitorOverallStates::ALERT && carries_all).then(|| AlertingMonitor {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        state: state.to_string(),
    })
}
