//! Service level objectives: the ones `suma slos apply` manages, matched by exact name or by tags like
//! monitors (`/api/v1/slo`).

use datadog_api_client::datadogV1::api_service_level_objectives::{DeleteSLOOptionalParams, ListSLOsOptionalParams};
use datadog_api_client::datadogV1::model::{ServiceLevelObjective, ServiceLevelObjectiveRequest};
use serde::Serialize;
use serde_json::Value;
use suma_core::metrics::MetricError;

use crate::{failed, from_client, unfit, Datadog, MAX_MONITOR_PAGES};

/// An SLO as Datadog holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteSlo {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// The whole SLO in the API's shape, server-owned fields (`id`, `created_at`, `creator`, ...) included.
    pub definition: Value,
}

/// `definition` put through the client's SLO request model and back (see `canonical_monitor`): the JSON
/// suma would send, or why it does not fit (no `thresholds`, an unknown `type`, a target that is text).
pub fn canonical_slo(definition: &Value) -> Result<Value, String> {
    let slo: ServiceLevelObjectiveRequest = serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&slo).map_err(|e| e.to_string())
}

fn remote_slo(slo: ServiceLevelObjective) -> RemoteSlo {
    let definition = serde_json::to_value(&slo).unwrap_or(Value::Null);
    RemoteSlo {
        id: slo.id.unwrap_or_default(),
        name: slo.name,
        tags: slo.tags.unwrap_or_default(),
        definition,
    }
}

/// SLOs a page: Datadog's default and largest `limit`.
const SLO_PAGE: i64 = 1000;

impl Datadog {
    /// Every SLO matching Datadog's `query` (its name search) or `tags_query` (one tag), page by page.
    async fn slo_pages(&self, query: Option<&str>, tag: Option<&str>) -> Result<Vec<RemoteSlo>, MetricError> {
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let mut params = ListSLOsOptionalParams::default()
                .limit(SLO_PAGE)
                .offset(page * SLO_PAGE);
            if let Some(query) = query {
                params = params.query(query.to_owned());
            }
            if let Some(tag) = tag {
                params = params.tags_query(tag.to_owned());
            }
            let answer = self
                .slos
                .list_slos(params)
                .await
                .map_err(|e| from_client(e, &format!("listing SLOs at {}", self.endpoint)))?;
            let slos = answer.data.unwrap_or_default();
            let last_page = slos.len() < SLO_PAGE as usize;
            found.extend(slos.into_iter().map(remote_slo));
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// SLOs named exactly `name` (Datadog's name search matches more; the rest are dropped).
    pub async fn slos_named(&self, name: &str) -> Result<Vec<RemoteSlo>, MetricError> {
        let slos = self.slo_pages(Some(name), None).await?;
        Ok(slos.into_iter().filter(|s| s.name == name).collect())
    }

    /// SLOs carrying every one of `tags`: Datadog filters by the first (its `tags_query` takes one tag),
    /// the rest are checked here.
    pub async fn slos_tagged(&self, tags: &[String]) -> Result<Vec<RemoteSlo>, MetricError> {
        let slos = self.slo_pages(None, tags.first().map(String::as_str)).await?;
        Ok(slos
            .into_iter()
            .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
            .collect())
    }

    /// Creates an SLO from its definition; returns its id.
    pub async fn create_slo(&self, definition: &Value) -> Result<String, MetricError> {
        let body: ServiceLevelObjectiveRequest =
            serde_json::from_value(definition.clone()).map_err(|e| unfit("SLO", e))?;
        let name = body.name.clone();
        let answer = self
            .slos
            .create_slo(body)
            .await
            .map_err(|e| from_client(e, &format!("creating SLO `{name}` at {}", self.endpoint)))?;
        answer
            .data
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|s| s.id)
            .ok_or_else(|| failed(format!("Datadog created SLO `{name}` without answering its id")))
    }

    /// Replaces SLO `id` with `definition` (Datadog's update takes the whole SLO).
    pub async fn update_slo(&self, id: &str, definition: &Value) -> Result<(), MetricError> {
        let body: ServiceLevelObjective = serde_json::from_value(definition.clone()).map_err(|e| unfit("SLO", e))?;
        self.slos
            .update_slo(id.to_owned(), body)
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("updating SLO `{id}` at {}", self.endpoint)))
    }

    /// Deletes SLO `id`. Datadog refuses while a dashboard widget shows it; that refusal is the error.
    pub async fn delete_slo(&self, id: &str) -> Result<(), MetricError> {
        self.slos
            .delete_slo(id.to_owned(), DeleteSLOOptionalParams::default())
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("deleting SLO `{id}` at {}", self.endpoint)))
    }
}
