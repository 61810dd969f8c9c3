//! Downtimes the old way: a monitor muted (all of it, or one scope) and unmuted by runbooks. The client
//! has no call for `/api/v1/monitor/{id}/mute`, so it goes over the client's own HTTP stack.

use datadog_api_client::datadog;
use datadog_api_client::datadogV1::model::Monitor;
use suma_core::metrics::MetricError;

use crate::monitors::{remote_monitor, RemoteMonitor};
use crate::{error_message, failed, from_client, Datadog};

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

impl Datadog {
    /// Mutes `monitor` (by id or exact name) so it notifies nobody: all of it, or only the groups in
    /// `scope` (e.g. `env:staging`), until `end` (never when `None`). Returns the monitor as muted.
    pub async fn mute_monitor(
        &self,
        monitor: &MonitorRef,
        scope: Option<&str>,
        end: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<RemoteMonitor, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let mut query = Vec::new();
        if let Some(scope) = scope {
            query.push(("scope", scope.to_owned()));
        }
        if let Some(end) = end {
            query.push(("end", end.timestamp().to_string()));
        }
        self.monitor_action(id, "mute", &query).await
    }

    /// Unmutes `monitor` (by id or exact name): the mute of `scope`, or every mute when `scope` is `None`.
    /// Returns the monitor as unmuted.
    pub async fn unmute_monitor(
        &self,
        monitor: &MonitorRef,
        scope: Option<&str>,
    ) -> Result<RemoteMonitor, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let query = match scope {
            Some(scope) => vec![("scope", scope.to_owned())],
            None => vec![("all_scopes", "true".to_owned())],
        };
        self.monitor_action(id, "unmute", &query).await
    }

    /// `POST /api/v1/monitor/{id}/{action}`, which the generated client does not offer.
    async fn monitor_action(
        &self,
        id: i64,
        action: &str,
        query: &[(&str, String)],
    ) -> Result<RemoteMonitor, MetricError> {
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
        let monitor: Monitor =
            serde_json::from_str(&body).map_err(|e| failed(format!("unexpected response: {e} ({context})")))?;
        Ok(remote_monitor(monitor))
    }
}
