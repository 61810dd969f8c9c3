//! Metric queries that gate a canary: `/api/v1/query` over the analysis window, every series' points
//! (which the metric kinds reduce), the mean of the last series, or its every point for callers that
//! judge the worst one.

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
        Ok(self.series(query).await?.pop().unwrap_or_default())
    }

    /// Every series' non-null points over the last `window`.
    async fn series(&self, query: &str) -> Result<Vec<Vec<f64>>, MetricError> {
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
        series_of(&response).map_err(|message| failed(format!("{message} (query: {query})")))
    }
}

/// Every series' finite, non-null points, oldest first; none when the query matched nothing. A query
/// without an aggregation returns a series per tag group; how they are combined is the metric kind's
/// business (`count` sums them, the others refuse several).
fn series_of(response: &MetricsQueryResponse) -> Result<Vec<Vec<f64>>, String> {
    if response.status.as_deref() == Some("error") {
        return Err(response.error.clone().unwrap_or_else(|| "query failed".to_owned()));
    }
    Ok(response
        .series
        .iter()
        .flatten()
        .map(|series| {
            series
                .pointlist
                .iter()
                .flatten()
                .filter_map(|point| point.get(1).copied().flatten())
                .filter(|v| v.is_finite())
                .collect()
        })
        .collect())
}
