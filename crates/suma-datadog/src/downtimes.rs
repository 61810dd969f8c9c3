//! Muting a monitor through Datadog's downtimes (v2, `/api/v2/downtime`), which replaced the monitor
//! mute endpoints: a mute is a downtime on the monitor's id for a scope (`*`, or e.g. `env:staging`) from
//! now until an end (or none), with a message saying who muted it and why; an unmute cancels the current
//! downtimes of that monitor (and scope). A monitor muted the old way (`options.silenced`) is unmuted
//! the old way as well, so `unmute` leaves nothing muted whichever way it was.

use datadog_api_client::datadog;
use datadog_api_client::datadogV1::model::Monitor;
use datadog_api_client::datadogV2::api_downtimes::ListDowntimesOptionalParams;
use datadog_api_client::datadogV2::model::DowntimeCreateRequest;
use serde::Serialize;
use serde_json::{json, Value};
use suma_core::metrics::MetricError;

use crate::monitors::remote_monitor;
use crate::{error_message, failed, from_client, unfit, Datadog};

/// Which monitor a runbook means: Datadog's id, or its exact name (which must then be unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorRef {
    Id(i64),
    Name(String),
}

impl std::fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "#{id}"),
            Self::Name(name) => write!(f, "`{name}`"),
        }
    }
}

/// Downtimes asked for per page.
const DOWNTIME_PAGE: i64 = 100;

/// A mute as Datadog recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mute {
    pub monitor_id: i64,
    pub downtime_id: String,
    pub scope: String,
}

/// What an unmute lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmute {
    pub monitor_id: i64,
    /// The downtimes cancelled.
    pub downtimes: Vec<String>,
    /// Whether a mute of the old way (`options.silenced`) was lifted too.
    pub legacy: bool,
}

/// The body of `POST /api/v2/downtime` muting monitor `id` in `scope` until `end`.
fn downtime_body(id: i64, scope: &str, end: Option<chrono::DateTime<chrono::Utc>>, message: &str) -> Value {
    let mut attributes = json!({
        "monitor_identifier": {"monitor_id": id},
        "scope": scope,
        "message": message,
        "mute_first_recovery_notification": true,
    });
    if let Some(end) = end {
        attributes["schedule"] = json!({"end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    }
    json!({"data": {"type": "downtime", "attributes": attributes}})
}

impl Datadog {
    /// Mutes `monitor` (by id or exact name) so it notifies nobody: all of it (`scope` `None`, Datadog's
    /// `*`), or only the groups in `scope` (e.g. `env:staging`), until `end` (never when `None`). `reason`
    /// becomes the downtime's message, where Datadog shows who muted it and why.
    pub async fn mute_monitor(
        &self,
        monitor: &MonitorRef,
        scope: Option<&str>,
        end: Option<chrono::DateTime<chrono::Utc>>,
        reason: &str,
    ) -> Result<Mute, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let scope = scope.unwrap_or("*");
        let body: DowntimeCreateRequest =
            serde_json::from_value(downtime_body(id, scope, end, reason)).map_err(|e| unfit("downtime", e))?;
        let created = self
            .downtimes
            .create_downtime(body)
            .await
            .map_err(|e| from_client(e, &format!("muting monitor #{id} at {}", self.endpoint)))?;
        let created = serde_json::to_value(created).map_err(|e| failed(format!("a downtime Datadog answered: {e}")))?;
        let downtime_id = created["data"]["id"]
            .as_str()
            .ok_or_else(|| failed(format!("Datadog answered the downtime of monitor #{id} without an id")))?
            .to_owned();
        Ok(Mute {
            monitor_id: id,
            downtime_id,
            scope: scope.to_owned(),
        })
    }

    /// Unmutes `monitor` (by id or exact name): cancels its current downtimes in `scope`, or all of them
    /// when `scope` is `None`, and lifts a mute of the old way.
    pub async fn unmute_monitor(&self, monitor: &MonitorRef, scope: Option<&str>) -> Result<Unmute, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let mut cancelled = Vec::new();
        for downtime in self.current_downtimes().await? {
            let attributes = &downtime["attributes"];
            let on_monitor = attributes["monitor_identifier"]["monitor_id"].as_i64() == Some(id);
            let in_scope = scope.is_none_or(|s| attributes["scope"].as_str() == Some(s));
            let Some(downtime_id) = downtime["id"].as_str() else {
                continue;
            };
            if on_monitor && in_scope {
                self.downtimes
                    .cancel_downtime(downtime_id.to_owned())
                    .await
                    .map_err(|e| from_client(e, &format!("cancelling downtime {downtime_id} of monitor #{id}")))?;
                cancelled.push(downtime_id.to_owned());
            }
        }
        let legacy = self.silenced(id).await?;
        if legacy {
            let query = match scope {
                Some(scope) => vec![("scope", scope.to_owned())],
                None => vec![("all_scopes", "true".to_owned())],
            };
            self.monitor_action(id, "unmute", &query).await?;
        }
        Ok(Unmute {
            monitor_id: id,
            downtimes: cancelled,
            legacy,
        })
    }

    /// The downtimes in effect now, every page of them (Datadog answers 30 at a time unless asked for
    /// more), as the API's JSON.
    async fn current_downtimes(&self) -> Result<Vec<Value>, MetricError> {
        use futures::TryStreamExt as _;
        let params = ListDowntimesOptionalParams::default()
            .current_only(true)
            .page_limit(DOWNTIME_PAGE);
        let listed: Vec<_> = self
            .downtimes
            .list_downtimes_with_pagination(params)
            .try_collect()
            .await
            .map_err(|e| from_client(e, &format!("listing downtimes at {}", self.endpoint)))?;
        listed
            .into_iter()
            .map(|d| serde_json::to_value(d).map_err(|e| failed(format!("a downtime Datadog answered: {e}"))))
            .collect()
    }

    /// Whether monitor `id` carries a mute of the old way (`options.silenced`).
    async fn silenced(&self, id: i64) -> Result<bool, MetricError> {
        use datadog_api_client::datadogV1::api_monitors::GetMonitorOptionalParams;
        let monitor = self
            .monitors
            .get_monitor(id, GetMonitorOptionalParams::default())
            .await
            .map_err(|e| from_client(e, &format!("reading monitor #{id} at {}", self.endpoint)))?;
        let definition = remote_monitor(monitor).definition;
        Ok(definition["options"]["silenced"]
            .as_object()
            .is_some_and(|s| !s.is_empty()))
    }

    /// `POST /api/v1/monitor/{id}/{action}`, which the generated client does not offer: only to lift a
    /// mute of the old way.
    async fn monitor_action(&self, id: i64, action: &str, query: &[(&str, String)]) -> Result<(), MetricError> {
        let context = format!("{action} monitor #{id} at {}", self.endpoint);
        let response = self
            .http
            .post(format!("{}/api/v1/monitor/{id}/{action}", self.endpoint))
            .query(query)
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.app_key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| from_client::<()>(datadog::Error::ReqwestMiddleware(e), &context))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| failed(format!("{context}: {}", suma_core::error::chain(&e))))?;
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}: {} ({context})", error_message(&body))));
        }
        serde_json::from_str::<Monitor>(&body)
            .map(drop)
            .map_err(|e| failed(format!("unexpected response: {e} ({context})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_is_a_downtime_on_the_monitor_id_that_the_client_model_accepts() {
        let end = chrono::DateTime::parse_from_rfc3339("2026-12-06T07:00:00Z")
            .unwrap()
            .to_utc();
        let body = downtime_body(42, "env:staging", Some(end), "muted by run 1");
        assert_eq!(
            body,
            json!({"data": {"type": "downtime", "attributes": {
                "monitor_identifier": {"monitor_id": 42}, "scope": "env:staging", "message": "muted by run 1",
                "mute_first_recovery_notification": true, "schedule": {"end": "2026-12-06T07:00:00Z"}}}})
        );
        let typed: DowntimeCreateRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(typed).unwrap()["data"]["attributes"]["monitor_identifier"],
            json!({"monitor_id": 42})
        );
        let open: DowntimeCreateRequest = serde_json::from_value(downtime_body(42, "*", None, "m")).unwrap();
        assert!(serde_json::to_value(open).unwrap()["data"]["attributes"]
            .get("schedule")
            .is_none());
    }
}
