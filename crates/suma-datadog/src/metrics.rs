//! Metric queries that gate a canary: `/api/v1/query`, the mean of the last series over the window, or
//! its every point for callers that judge the worst one.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use datadog_api_client::datadogV1::model::MetricsQueryResponse;
use suma_core::metrics::{MetricError, MetricSource};

use crate::{failed, from_client, Datadog, PROVIDER};

#[async_trait]
impl MetricSource for Datadog {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// The mean of the last series' points over the last `window`.
    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
        let values = self.points(query).await?;
        if values.is_empty() {
            return Ok(None);
        }
        Ok(Some(values.iter().sum::<f64>() / values.len() as f64))
    }

    /// The last series' non-null points over the last `window`.
    async fn points(&self, query: &str) -> Result<Vec<f64>, MetricError> {
        let to = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs() as i64;
        let from = to - self.window.as_secs().max(1) as i64;
        let response = self
            .metrics
            .query_metrics(from, to, query.to_owned())
            .await
            .map_err(|e| from_client(e, &format!("{} (query: {query})", self.endpoint)))?;
        points_of_last_series(&response).map_err(|message| failed(format!("{message} (query: {query})")))
    }
}

/// The last series' finite, non-null points, oldest first; empty when there is no series. A query
/// without an aggregation returns a series per tag group; the last one is taken, so gating queries should
/// aggregate (`sum:`, `avg:`, `max:`, ...).
fn points_of_last_series(response: &MetricsQueryResponse) -> Result<Vec<f64>, String> {
    if response.status.as_deref() == Some("error") {
        return Err(response.error.clone().unwrap_or_else(|| "query failed".to_owned()));
    }
    let Some(series) = response.series.as_ref().and_then(|s| s.last()) else {
        return Ok(Vec::new());
    };
    Ok(series
        .pointlist
        .iter()
        .flatten()
        .filter_map(|point| point.get(1).copied().flatten())
        .filter(|v| v.is_finite())
        .collect())
}
