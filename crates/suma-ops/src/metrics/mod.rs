//! Metrics that gate canaries. [`MetricSource`] is the narrow seam to a provider (`prometheus`,
//! `datadog`); [`analysis`] is the pure judgement; [`measure`] renders the policy's queries for one tick
//! and runs them concurrently.

pub mod analysis;
pub mod mann_whitney;
pub mod prometheus;
pub mod step_gate;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{CanaryPolicy, MetricProvider};
use analysis::{BaselineMeasurements, Check, Measurements};
pub use suma_core::metrics::{MetricError, MetricSource};
/// Datadog, from its own crate (the only one that imports `datadog-api-client`).
pub use suma_datadog as datadog;

/// Values substituted into query templates: `{{env}}`, `{{service}}`, `{{version}}`, `{{deployment}}`,
/// `{{window}}`.
#[derive(Debug, Clone)]
pub struct QueryVars {
    pub env: String,
    pub service: String,
    pub window: Duration,
}

/// The side of the comparison a query is rendered for.
#[derive(Debug, Clone)]
pub struct Side {
    /// `canary` or `stable`: the deployment label the service puts on its metrics.
    pub deployment: String,
    /// The image tag running on that side.
    pub version: String,
}

pub fn render(template: &str, vars: &QueryVars, side: &Side) -> String {
    template
        .replace("{{env}}", &vars.env)
        .replace("{{service}}", &vars.service)
        .replace("{{version}}", &side.version)
        .replace("{{deployment}}", &side.deployment)
        .replace("{{window}}", &format!("{}s", vars.window.as_secs().max(1)))
}

/// The query templates of a policy: configured ones, else the provider's defaults.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuerySet {
    pub samples: String,
    /// Metric name, template, maximum.
    pub checks: Vec<(String, String, f64)>,
    pub error_rate: String,
}

pub fn query_set(provider: MetricProvider, policy: &CanaryPolicy) -> QuerySet {
    let (samples, error_rate, p95) = match provider {
        MetricProvider::Prometheus => (
            r#"sum(increase(http_requests_total{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}]))"#,
            r#"(sum(rate(http_requests_total{deployment="{{deployment}}",route=~"/api/.*",status=~"5.."}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}]))"#,
            r#"1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}])))"#,
        ),
        MetricProvider::Datadog => (
            "sum:trace.http.request.hits{service:{{service}},env:{{env}},version:{{version}}}.as_count()",
            "sum:trace.http.request.errors{service:{{service}},env:{{env}},version:{{version}}}.as_count() / sum:trace.http.request.hits{service:{{service}},env:{{env}},version:{{version}}}.as_count()",
            "p95:trace.http.request{service:{{service}},env:{{env}},version:{{version}}} * 1000",
        ),
    };
    let queries = &policy.queries;
    let error_rate = queries.error_rate.clone().unwrap_or_else(|| error_rate.to_owned());
    let mut checks = vec![
        ("error_rate".to_owned(), error_rate.clone(), policy.max_error_rate),
        (
            "p95_latency_ms".to_owned(),
            queries.p95_latency_ms.clone().unwrap_or_else(|| p95.to_owned()),
            policy.max_p95_latency_ms,
        ),
    ];
    checks.extend(
        policy
            .extra_metrics
            .iter()
            .map(|m| (m.name.clone(), m.query.clone(), m.max)),
    );
    QuerySet {
        samples: queries.samples.clone().unwrap_or_else(|| samples.to_owned()),
        checks,
        error_rate,
    }
}

/// Runs one tick's queries concurrently and packages what came back.
pub async fn measure(
    source: &dyn MetricSource,
    queries: &QuerySet,
    vars: &QueryVars,
    canary: &Side,
    stable: Option<&Side>,
) -> Measurements {
    let samples_q = render(&queries.samples, vars, canary);
    let rendered: Vec<(String, String, f64)> = queries
        .checks
        .iter()
        .map(|(n, t, max)| (n.clone(), render(t, vars, canary), *max))
        .collect();
    let baseline_q = stable.map(|s| render(&queries.error_rate, vars, s));
    let (samples, values, stable_errors) = tokio::join!(
        source.scalar(&samples_q),
        futures::future::join_all(rendered.iter().map(|(_, q, _)| source.scalar(q))),
        async {
            match &baseline_q {
                Some(q) => Some(source.scalar(q).await),
                None => None,
            }
        }
    );
    let mut results = vec![samples];
    results.extend(values);
    if let Some(stable) = &stable_errors {
        results.push(stable.clone());
    }
    // A rate limit anywhere means "ask again later"; any other failure is a provider error.
    if let Some(retry) = results.iter().find_map(|r| match r {
        Err(MetricError::RateLimited { retry_after, .. }) => Some(*retry_after),
        _ => None,
    }) {
        return Measurements::RateLimited {
            retry_after_secs: retry.as_secs().max(1),
        };
    }
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Measurements::ProviderError { message: e.to_string() };
    }
    let value = |r: &Result<Option<f64>, MetricError>| r.clone().ok().flatten();
    let checks: Vec<Check> = rendered
        .iter()
        .zip(&results[1..=rendered.len()])
        .map(|((metric, query, max), r)| Check {
            metric: metric.clone(),
            query: query.clone(),
            value: value(r),
            max: *max,
        })
        .collect();
    let baseline = stable_errors.map(|stable| BaselineMeasurements {
        canary_error_rate: checks.iter().find(|c| c.metric == "error_rate").and_then(|c| c.value),
        stable_error_rate: value(&stable),
        canary_latencies: Vec::new(),
        stable_latencies: Vec::new(),
    });
    Measurements::Answered {
        samples: value(&results[0]),
        checks,
        baseline,
    }
}

/// Rendered queries of a policy, for `--dry-run`.
pub fn rendered_queries(queries: &QuerySet, vars: &QueryVars, canary: &Side) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([("samples".to_owned(), render(&queries.samples, vars, canary))]);
    for (name, template, _) in &queries.checks {
        out.insert(name.clone(), render(template, vars, canary));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Answers queries from a table, records what it was asked.
    struct Table {
        answers: Vec<(&'static str, Result<Option<f64>, MetricError>)>,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl MetricSource for Table {
        fn name(&self) -> &'static str {
            "table"
        }
        async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
            self.asked.lock().unwrap().push(query.to_owned());
            self.answers
                .iter()
                .find(|(k, _)| query.contains(k))
                .map_or(Ok(None), |(_, v)| v.clone())
        }
    }

    fn vars() -> QueryVars {
        QueryVars {
            env: "staging".into(),
            service: "auth-service".into(),
            window: Duration::from_secs(30),
        }
    }

    fn canary() -> Side {
        Side {
            deployment: "canary".into(),
            version: "1.5.0".into(),
        }
    }

    #[test]
    fn templates_are_rendered() {
        let q = render(
            "a{env:{{env}},service:{{service}},version:{{version}},d:{{deployment}}}[{{window}}]",
            &vars(),
            &canary(),
        );
        assert_eq!(q, "a{env:staging,service:auth-service,version:1.5.0,d:canary}[30s]");
        let set = query_set(MetricProvider::Datadog, &CanaryPolicy::default());
        let rendered = rendered_queries(&set, &vars(), &canary());
        assert!(rendered["error_rate"].contains("service:auth-service,env:staging,version:1.5.0"));
    }

    #[tokio::test]
    async fn measurements_are_assembled_per_metric() {
        let source = Table {
            answers: vec![
                ("increase(", Ok(Some(120.0))),
                (
                    "status=~\"5..\"}[30s])) or vector(0)) / sum(rate(http_requests_total{deployment=\"canary\"",
                    Ok(Some(0.02)),
                ),
                ("histogram_quantile", Ok(None)),
                ("deployment=\"stable\"", Ok(Some(0.001))),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let set = query_set(MetricProvider::Prometheus, &CanaryPolicy::default());
        let stable = Side {
            deployment: "stable".into(),
            version: "1.4.2".into(),
        };
        let m = measure(&source, &set, &vars(), &canary(), Some(&stable)).await;
        let Measurements::Answered {
            samples,
            checks,
            baseline,
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(samples, Some(120.0));
        assert_eq!(checks[0].value, Some(0.02));
        assert_eq!(checks[1].value, None, "no data stays no data");
        let baseline = baseline.unwrap();
        assert_eq!(
            (baseline.canary_error_rate, baseline.stable_error_rate),
            (Some(0.02), Some(0.001))
        );
        assert_eq!(source.asked.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_rate_limit_wins_over_other_errors() {
        let source = Table {
            answers: vec![
                (
                    "increase(",
                    Err(MetricError::Failed {
                        provider: "t",
                        message: "boom".into(),
                    }),
                ),
                (
                    "histogram_quantile",
                    Err(MetricError::RateLimited {
                        provider: "t",
                        retry_after: Duration::from_secs(9),
                    }),
                ),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let set = query_set(MetricProvider::Prometheus, &CanaryPolicy::default());
        let m = measure(&source, &set, &vars(), &canary(), None).await;
        assert_eq!(m, Measurements::RateLimited { retry_after_secs: 9 });
        let source = Table {
            answers: vec![(
                "increase(",
                Err(MetricError::Failed {
                    provider: "t",
                    message: "boom".into(),
                }),
            )],
            asked: Mutex::new(Vec::new()),
        };
        assert!(
            matches!(measure(&source, &set, &vars(), &canary(), None).await, Measurements::ProviderError { message } if message.contains("boom"))
        );
    }
}
