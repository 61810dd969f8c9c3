//! Prometheus HTTP API (`/api/v1/query`, PromQL): for teams on Prometheus or Amazon Managed Prometheus.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{MetricError, MetricSource};

const PROVIDER: &str = "Prometheus";

pub struct Prometheus {
    base_url: String,
    client: reqwest::Client,
}

impl Prometheus {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("suma/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Sample>),
    Scalar((f64, String)),
    Matrix(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct Sample {
    value: (f64, String),
}

/// The single number an instant query returned: a scalar, or a one-element vector. Several series are
/// summed (a query without an aggregation), none is "no data", and NaN (0/0) is no data too.
fn scalar_of(body: &str) -> Result<Option<f64>, String> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| format!("unexpected response: {e}"))?;
    if envelope.status != "success" {
        return Err(envelope.error.unwrap_or_else(|| "query failed".to_owned()));
    }
    let parse = |s: &str| s.parse::<f64>().map_err(|e| format!("bad sample value `{s}`: {e}"));
    let value = match envelope.data {
        Some(Data::Scalar((_, v))) => Some(parse(&v)?),
        Some(Data::Vector(samples)) if samples.is_empty() => None,
        Some(Data::Vector(samples)) => {
            let mut sum = 0.0;
            for s in &samples {
                sum += parse(&s.value.1)?;
            }
            Some(sum)
        }
        Some(Data::Matrix(_) | Data::String(_)) => {
            return Err("the query must return an instant vector or scalar".to_owned())
        }
        None => None,
    };
    Ok(value.filter(|v| !v.is_nan()))
}

#[async_trait]
impl MetricSource for Prometheus {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
        let failed = |message: String| MetricError::Failed {
            provider: PROVIDER,
            message,
        };
        let response = self
            .client
            .get(format!("{}/api/v1/query", self.base_url))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| failed(format!("{}: {e}", self.base_url)))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(5);
            return Err(MetricError::RateLimited {
                provider: PROVIDER,
                retry_after: Duration::from_secs(retry_after),
            });
        }
        let body = response.text().await.map_err(|e| failed(e.to_string()))?;
        // Prometheus answers 400/422 with a JSON error body that says what is wrong with the query.
        scalar_of(&body).map_err(|e| failed(format!("HTTP {status}: {e} (query: {query})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_types() {
        assert_eq!(
            scalar_of(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}}"#
            ),
            Ok(Some(0.25))
        );
        assert_eq!(
            scalar_of(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#
            ),
            Ok(Some(3.0))
        );
        assert_eq!(
            scalar_of(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            Ok(None)
        );
        assert_eq!(
            scalar_of(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#),
            Ok(Some(42.0))
        );
        assert_eq!(
            scalar_of(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#
            ),
            Ok(None)
        );
        let err =
            scalar_of(r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#).unwrap_err();
        assert!(err.contains("parse error"), "{err}");
        assert!(scalar_of(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#).is_err());
    }
}
