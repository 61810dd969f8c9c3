//! The seam to a metric provider (Prometheus, Datadog): an instant query answered with one number.
//! The providers live in the crates that may import their clients; the canary judges through this.

use std::time::Duration;

use async_trait::async_trait;

/// Why a provider gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{provider} rate-limited the query; retry after {retry_after:?}")]
    RateLimited {
        provider: &'static str,
        retry_after: Duration,
    },
    #[error("{provider} query failed: {message}")]
    Failed { provider: &'static str, message: String },
}

#[async_trait]
pub trait MetricSource: Send + Sync {
    fn name(&self) -> &'static str;
    /// The value of an instant query now; `None` when the query matched no data.
    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError>;

    /// Every value the query returned over the provider's window, oldest first, for callers that must
    /// see the worst point rather than a mean (replica lag, where one `-1` means broken replication).
    /// Providers that answer instant queries only return the one value.
    async fn points(&self, query: &str) -> Result<Vec<f64>, MetricError> {
        Ok(self.scalar(query).await?.into_iter().collect())
    }

    /// Every series the query answered, each its finite points over the window, oldest first: what a
    /// metric kind (`count`, `ratio`, `percentile`, `value`) reduces to one number. Providers that answer
    /// instant queries give one point per series; by default, the one value `scalar` gives.
    async fn series(&self, query: &str) -> Result<Vec<Vec<f64>>, MetricError> {
        Ok(self.scalar(query).await?.map(|v| vec![vec![v]]).unwrap_or_default())
    }
}
