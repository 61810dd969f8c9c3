//! Dashboards: listed, read, created, updated and deleted for `suma dashboards apply`.

use datadog_api_client::datadogV1::api_dashboards::ListDashboardsOptionalParams;
use datadog_api_client::datadogV1::model::Dashboard;
use serde::Serialize;
use serde_json::Value;
use suma_core::metrics::MetricError;

use crate::{failed, from_client, unfit, Datadog, MAX_MONITOR_PAGES};

/// A dashboard in Datadog's list: enough to recognise a managed one without reading it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardListing {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// `definition` put through the client's `Dashboard` model and back (see [`canonical_monitor`]).
pub fn canonical_dashboard(definition: &Value) -> Result<Value, String> {
    let dashboard: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&dashboard).map_err(|e| e.to_string())
}

impl Datadog {
    /// Every dashboard's id, title and description, page by page.
    pub async fn dashboard_listings(&self) -> Result<Vec<DashboardListing>, MetricError> {
        const PAGE: i64 = 100;
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let params = ListDashboardsOptionalParams::default().start(page * PAGE).count(PAGE);
            let summary = self
                .dashboards
                .list_dashboards(params)
                .await
                .map_err(|e| from_client(e, &format!("listing dashboards at {}", self.endpoint)))?;
            let dashboards = summary.dashboards.unwrap_or_default();
            let last_page = dashboards.len() < PAGE as usize;
            found.extend(dashboards.into_iter().map(|d| DashboardListing {
                id: d.id.unwrap_or_default(),
                title: d.title.unwrap_or_default(),
                description: d.description.flatten(),
            }));
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// The whole dashboard `id` in the API's shape.
    pub async fn dashboard(&self, id: &str) -> Result<Value, MetricError> {
        let dashboard = self
            .dashboards
            .get_dashboard(id.to_owned())
            .await
            .map_err(|e| from_client(e, &format!("reading dashboard `{id}` at {}", self.endpoint)))?;
        serde_json::to_value(&dashboard).map_err(|e| failed(format!("dashboard `{id}`: {e}")))
    }

    /// Creates a dashboard from its definition (`title`, `layout_type`, `widgets`, ...); returns its id.
    pub async fn create_dashboard(&self, definition: &Value) -> Result<String, MetricError> {
        let body: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| unfit("dashboard", e))?;
        let title = body.title.clone();
        self.dashboards
            .create_dashboard(body)
            .await
            .map(|d| d.id.unwrap_or_default())
            .map_err(|e| from_client(e, &format!("creating dashboard `{title}` at {}", self.endpoint)))
    }

    /// Replaces dashboard `id` with `definition` (Datadog's update is a whole replacement).
    pub async fn update_dashboard(&self, id: &str, definition: &Value) -> Result<(), MetricError> {
        let body: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| unfit("dashboard", e))?;
        self.dashboards
            .update_dashboard(id.to_owned(), body)
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("updating dashboard `{id}` at {}", self.endpoint)))
    }

    /// Deletes dashboard `id`.
    pub async fn delete_dashboard(&self, id: &str) -> Result<(), MetricError> {
        self.dashboards
            .delete_dashboard(id.to_owned())
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("deleting dashboard `{id}` at {}", self.endpoint)))
    }
}
