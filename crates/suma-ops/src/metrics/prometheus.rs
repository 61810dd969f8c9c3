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
    /// What a subquery (`(...)[5m:5s]`) answers: per-interval points, as the baseline's latency buckets.
    Matrix(Vec<Range>),
    String(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct Range {
    values: Vec<(f64, String)>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    value: (f64, String),
}

/// Every series an instant query returned, oldest point first: one point each for a vector (a scalar is
/// one series), every interval's for a subquery's matrix; NaN (0/0) is no point.
fn series_of(body: &str) -> Result<Vec<Vec<f64>>, String> {
    answer_of(body).map(|(series, _)| series)
}

/// The series of an answer, and whether it was a range (a matrix).
fn answer_of(body: &str) -> Result<(Vec<Vec<f64>>, bool), String> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| format!("unexpected response: {e}"))?;
    if envelope.status != "success" {
        return Err(envelope.error.unwrap_or_else(|| "query failed".to_owned()));
    }
    let parse = |s: &str| s.parse::<f64>().map_err(|e| format!("bad sample value `{s}`: {e}"));
    let finite = |values: Vec<f64>| values.into_iter().filter(|v| !v.is_nan()).collect::<Vec<f64>>();
    let range = matches!(envelope.data, Some(Data::Matrix(_)));
    let series = match envelope.data {
        Some(Data::Scalar((_, v))) => vec![finite(vec![parse(&v)?])],
        Some(Data::Vector(samples)) => samples
            .iter()
            .map(|s| Ok(finite(vec![parse(&s.value.1)?])))
            .collect::<Result<_, String>>()?,
        Some(Data::Matrix(ranges)) => ranges
            .iter()
            .map(|r| {
                Ok(finite(
                    r.values.iter().map(|(_, v)| parse(v)).collect::<Result<_, _>>()?,
                ))
            })
            .collect::<Result<_, String>>()?,
        Some(Data::String(_)) => return Err("the query must return numbers".to_owned()),
        None => Vec::new(),
    };
    Ok((series, range))
}

/// The single number an instant query returned: a scalar, or a one-element vector. Several series are
/// summed (a query without an aggregation), none is "no data", and NaN (0/0) is no data too. A range
/// (a subquery) is not one number.
fn scalar_of(body: &str) -> Result<Option<f64>, String> {
    let (series, range) = answer_of(body)?;
    if range {
        return Err("the query must return an instant vector or scalar".to_owned());
    }
    let points: Vec<f64> = series.into_iter().flatten().collect();
    Ok((!points.is_empty()).then(|| points.iter().sum()))
}

#[async_trait]
impl MetricSource for Prometheus {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
        let (status, body) = self.ask(query).await?;
        // Prometheus answers 400/422 with a JSON error body that says what is wrong with the query.
        scalar_of(&body).map_err(|e| self.failed(format!("HTTP {status}: {e} (query: {query})")))
    }

    async fn series(&self, query: &str) -> Result<Vec<Vec<f64>>, MetricError> {
        let (status, body) = self.ask(query).await?;
        series_of(&body).map_err(|e| self.failed(format!("HTTP {status}: {e} (query: {query})")))
    }
}

impl Prometheus {
    fn failed(&self, message: String) -> MetricError {
        MetricError::Failed {
            provider: PROVIDER,
            message,
        }
    }

    /// One instant query: the HTTP status and the body, or a rate limit.
    async fn ask(&self, query: &str) -> Result<(reqwest::StatusCode, String), MetricError> {
        let response = self
            .client
            .get(format!("{}/api/v1/query", self.base_url))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| self.failed(format!("{}: {e}", self.base_url)))?;
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
        let body = response.text().await.map_err(|e| self.failed(e.to_string()))?;
        Ok((status, body))
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
        assert_eq!(
            series_of(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"NaN"]}]}}"#
            ),
            Ok(vec![vec![1.0], vec![]]),
            "each series apart, NaN no point"
        );
        assert_eq!(
            series_of(
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"120"],[6,"NaN"],[11,"95"]]}]}}"#
            ),
            Ok(vec![vec![120.0, 95.0]]),
            "a subquery's intervals"
        );
    }
}
