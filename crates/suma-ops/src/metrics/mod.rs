//! Metrics that gate canaries. [`MetricSource`] is the narrow seam to a provider (`prometheus`,
//! `datadog`); [`analysis`] is the pure judgement; [`measure`] renders the policy's queries for one tick
//! and runs them concurrently.

pub mod analysis;
pub mod baseline;
pub mod mann_whitney;
pub mod prometheus;
pub mod step_gate;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{CanaryPolicy, MetricProvider, MetricQuery, MetricQueryKind};
use analysis::{Check, Measurements};
use baseline::{BaselineMeasurements, ComparedSamples};
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

/// The query templates of a policy, each with its kind: configured ones, else the provider's defaults.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuerySet {
    pub samples: MetricQueryKind,
    /// Metric name, query, maximum.
    pub checks: Vec<(String, MetricQueryKind, f64)>,
    pub error_rate: MetricQueryKind,
    /// Per-interval p95 latencies of one side over the window (a PromQL subquery, Datadog's buckets): the
    /// samples the baseline's Mann-Whitney test compares. `None` for a custom PromQL p95, whose buckets
    /// suma cannot derive.
    pub latency_buckets: Option<String>,
    /// The baseline's configured comparisons: name and the template of one side's per-interval values.
    pub compared: Vec<(String, String)>,
}

/// The provider's default queries. Prometheus computes each number in PromQL (one series each, a count
/// summed over series); Datadog answers buckets, so the error rate is the counted errors over the
/// counted requests and the p95 the window's worst bucket.
fn defaults(provider: MetricProvider) -> (MetricQueryKind, MetricQueryKind, MetricQueryKind) {
    match provider {
        MetricProvider::Prometheus => (
            MetricQueryKind::Count(
                r#"sum(increase(http_requests_total{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}]))"#.into(),
            ),
            MetricQueryKind::Value(r#"(sum(rate(http_requests_total{deployment="{{deployment}}",route=~"/api/.*",status=~"5.."}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}]))"#.into()),
            MetricQueryKind::Value(r#"1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{deployment="{{deployment}}",route=~"/api/.*"}[{{window}}])))"#.into()),
        ),
        MetricProvider::Datadog => (
            MetricQueryKind::Count(
                "sum:trace.http.request.hits{service:{{service}},env:{{env}},version:{{version}}}.as_count()".into(),
            ),
            MetricQueryKind::Ratio {
                numerator: "sum:trace.http.request.errors{service:{{service}},env:{{env}},version:{{version}}}.as_count()"
                    .into(),
                denominator: "sum:trace.http.request.hits{service:{{service}},env:{{env}},version:{{version}}}.as_count()"
                    .into(),
            },
            MetricQueryKind::Percentile("p95:trace.http.request{service:{{service}},env:{{env}},version:{{version}}} * 1000".into()),
        ),
    }
}

/// The per-interval p95 of the provider's default latency metric, as a PromQL subquery (5 s intervals
/// over the window).
const PROMETHEUS_LATENCY_BUCKETS: &str = r#"(1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{deployment="{{deployment}}",route=~"/api/.*"}[5s]))))[{{window}}:5s]"#;

pub fn query_set(provider: MetricProvider, policy: &CanaryPolicy) -> QuerySet {
    let (samples, error_rate, p95) = defaults(provider);
    let queries = &policy.queries;
    let configured = |q: &Option<MetricQuery>, default: MetricQueryKind, plain: fn(String) -> MetricQueryKind| {
        q.as_ref().map_or(default, |q| q.kind(plain))
    };
    let error_rate = configured(&queries.error_rate, error_rate, MetricQueryKind::Value);
    let p95 = configured(&queries.p95_latency_ms, p95, MetricQueryKind::Value);
    let latency_buckets = match (provider, &p95) {
        (MetricProvider::Prometheus, _) if queries.p95_latency_ms.is_none() => {
            Some(PROMETHEUS_LATENCY_BUCKETS.to_owned())
        }
        (MetricProvider::Prometheus, _) => None,
        // Datadog answers buckets: the p95 query's own points are the intervals.
        (MetricProvider::Datadog, MetricQueryKind::Percentile(q) | MetricQueryKind::Value(q)) => Some(q.clone()),
        (MetricProvider::Datadog, _) => None,
    };
    let mut checks = vec![
        ("error_rate".to_owned(), error_rate.clone(), policy.max_error_rate),
        ("p95_latency_ms".to_owned(), p95, policy.max_p95_latency_ms),
    ];
    checks.extend(
        policy
            .extra_metrics
            .iter()
            .map(|m| (m.name.clone(), m.query.kind(MetricQueryKind::Value), m.max)),
    );
    QuerySet {
        samples: configured(&queries.samples, samples, MetricQueryKind::Count),
        checks,
        error_rate,
        latency_buckets,
        compared: policy
            .baseline
            .iter()
            .flat_map(|b| &b.compare)
            .map(|c| (c.name.clone(), c.query.clone()))
            .collect(),
    }
}

/// One number from what a query of `kind` answered (its series, each its points over the window).
/// `Err` says why the answer cannot be read as that kind. Pure.
pub fn reduce(kind: &MetricQueryKind, answered: &[Vec<Vec<f64>>]) -> Result<Option<f64>, String> {
    let one_series = |series: &[Vec<f64>]| -> Result<Option<Vec<f64>>, String> {
        match series {
            [] => Ok(None),
            [one] if one.is_empty() => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => Err(format!(
                "answered {} series where one was expected: aggregate the query (PromQL `sum(...)`, Datadog `sum:`/`max:`) or make it a `count`",
                many.len()
            )),
        }
    };
    let count = |series: &[Vec<f64>]| {
        let points: Vec<f64> = series.iter().flatten().copied().collect();
        (!points.is_empty()).then(|| points.iter().sum::<f64>())
    };
    let first = answered.first().map_or(&[][..], Vec::as_slice);
    Ok(match kind {
        MetricQueryKind::Value(_) => one_series(first)?.map(|p| p.iter().sum::<f64>() / p.len() as f64),
        MetricQueryKind::Percentile(_) => one_series(first)?.map(|p| p.iter().copied().fold(f64::MIN, f64::max)),
        MetricQueryKind::Count(_) => count(first),
        MetricQueryKind::Ratio { .. } => {
            let denominator = answered.get(1).map_or(&[][..], Vec::as_slice);
            match count(denominator) {
                None => None,
                Some(0.0) => None,
                // No error series at all while requests were counted: no errors.
                Some(d) => Some(count(first).unwrap_or(0.0) / d),
            }
        }
    })
}

/// The queries a kind sends: one, or a ratio's numerator and denominator.
fn queries_of(kind: &MetricQueryKind) -> Vec<&str> {
    match kind {
        MetricQueryKind::Value(q) | MetricQueryKind::Count(q) | MetricQueryKind::Percentile(q) => vec![q],
        MetricQueryKind::Ratio { numerator, denominator } => vec![numerator, denominator],
    }
}

/// Runs a rendered query of any kind and reduces its answer to one number.
pub async fn read(source: &dyn MetricSource, kind: &MetricQueryKind) -> Result<Option<f64>, MetricError> {
    let answers = futures::future::join_all(queries_of(kind).into_iter().map(|q| source.series(q))).await;
    let answers = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
    reduce(kind, &answers).map_err(|message| MetricError::Failed {
        provider: source.name(),
        message: format!("{message} (query: {})", kind.describe()),
    })
}

/// `kind` with its templates rendered for `side`.
pub fn render_kind(kind: &MetricQueryKind, vars: &QueryVars, side: &Side) -> MetricQueryKind {
    kind.map(|q| render(q, vars, side))
}

/// Runs one tick's queries concurrently and packages what came back.
pub async fn measure(
    source: &dyn MetricSource,
    queries: &QuerySet,
    vars: &QueryVars,
    canary: &Side,
    stable: Option<&Side>,
) -> Measurements {
    let samples_q = render_kind(&queries.samples, vars, canary);
    let rendered: Vec<(String, MetricQueryKind, f64)> = queries
        .checks
        .iter()
        .map(|(n, t, max)| (n.clone(), render_kind(t, vars, canary), *max))
        .collect();
    let baseline_q = stable.map(|s| render_kind(&queries.error_rate, vars, s));
    // The baseline's latency samples: each side's per-interval p95 over the window.
    let buckets_q = stable
        .zip(queries.latency_buckets.as_ref())
        .map(|(stable_side, template)| (render(template, vars, canary), render(template, vars, stable_side)));
    // Each configured comparison: both sides' per-interval values.
    let compared_q: Vec<(&String, String, String)> = stable
        .map(|stable_side| {
            queries
                .compared
                .iter()
                .map(|(name, template)| {
                    (
                        name,
                        render(template, vars, canary),
                        render(template, vars, stable_side),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (samples, values, stable_errors, buckets, compared) = tokio::join!(
        read(source, &samples_q),
        futures::future::join_all(rendered.iter().map(|(_, q, _)| read(source, q))),
        async {
            match &baseline_q {
                Some(q) => Some(read(source, q).await),
                None => None,
            }
        },
        async {
            match &buckets_q {
                Some((c, s)) => {
                    let (c, s) = tokio::join!(source.series(c), source.series(s));
                    Some(c.and_then(|c| s.map(|s| (c, s))))
                }
                None => None,
            }
        },
        futures::future::join_all(compared_q.iter().map(|(name, c, s)| async move {
            let (c, s) = tokio::join!(source.series(c), source.series(s));
            c.and_then(|c| s.map(|s| (name, c, s)))
        }))
    );
    let points = |series: Vec<Vec<f64>>| series.into_iter().flatten().collect::<Vec<f64>>();
    let buckets = match buckets {
        Some(Err(e)) => return error_measurements(e),
        Some(Ok((c, s))) => Some((points(c), points(s))),
        None => None,
    };
    let compared = match compared.into_iter().collect::<Result<Vec<_>, _>>() {
        Err(e) => return error_measurements(e),
        Ok(answers) => answers
            .into_iter()
            .map(|(name, c, s)| ComparedSamples {
                name: (*name).clone(),
                canary: points(c),
                stable: points(s),
            })
            .collect(),
    };
    let mut results = vec![samples];
    results.extend(values);
    if let Some(stable) = &stable_errors {
        results.push(stable.clone());
    }
    // A rate limit anywhere means "ask again later"; any other failure is a provider error.
    if let Some(limited) = results
        .iter()
        .find(|r| matches!(r, Err(MetricError::RateLimited { .. })))
    {
        return error_measurements(limited.clone().unwrap_err());
    }
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return error_measurements(e.clone());
    }
    let value = |r: &Result<Option<f64>, MetricError>| r.clone().ok().flatten();
    let checks: Vec<Check> = rendered
        .iter()
        .zip(&results[1..=rendered.len()])
        .map(|((metric, query, max), r)| Check {
            metric: metric.clone(),
            query: query.describe(),
            value: value(r),
            max: *max,
        })
        .collect();
    let (canary_latencies, stable_latencies) = buckets.unwrap_or_default();
    let baseline = stable_errors.map(|stable| BaselineMeasurements {
        canary_error_rate: checks.iter().find(|c| c.metric == "error_rate").and_then(|c| c.value),
        stable_error_rate: value(&stable),
        canary_latencies,
        stable_latencies,
        compared,
    });
    Measurements::Answered {
        samples: value(&results[0]),
        checks,
        baseline,
    }
}

/// A failed measurement: a rate limit is "ask again later", anything else a provider error.
fn error_measurements(e: MetricError) -> Measurements {
    match e {
        MetricError::RateLimited { retry_after, .. } => Measurements::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        },
        other => Measurements::ProviderError {
            message: other.to_string(),
        },
    }
}

/// Rendered queries of a policy, for `--dry-run`.
pub fn rendered_queries(queries: &QuerySet, vars: &QueryVars, canary: &Side) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(
        "samples".to_owned(),
        render_kind(&queries.samples, vars, canary).describe(),
    )]);
    for (name, template, _) in &queries.checks {
        out.insert(name.clone(), render_kind(template, vars, canary).describe());
    }
    for (name, template) in &queries.compared {
        out.insert(format!("baseline.{name}"), render(template, vars, canary));
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
        // Samples, two checks, stable's error rate, and each side's latency buckets for the baseline.
        assert_eq!(source.asked.lock().unwrap().len(), 6);
        assert!(source.asked.lock().unwrap().iter().any(|q| q.ends_with("[30s:5s]")));
    }

    #[test]
    fn each_kind_reduces_the_windows_series_to_one_number() {
        let value = MetricQueryKind::Value("q".into());
        let count = MetricQueryKind::Count("q".into());
        let p95 = MetricQueryKind::Percentile("q".into());
        let ratio = MetricQueryKind::Ratio {
            numerator: "e".into(),
            denominator: "h".into(),
        };
        let buckets = vec![vec![10.0, 30.0, 20.0]];
        let two = vec![vec![1.0], vec![2.0]];
        /// A kind, the queries' answers (series of points), and the number or the error's words.
        type Case<'a> = (&'a MetricQueryKind, Vec<Vec<Vec<f64>>>, Result<Option<f64>, &'a str>);
        let cases: Vec<Case<'_>> = vec![
            // A gauge's buckets average; a count's add up, over every series.
            (&value, vec![buckets.clone()], Ok(Some(20.0))),
            (&count, vec![buckets.clone()], Ok(Some(60.0))),
            (&count, vec![two.clone()], Ok(Some(3.0))),
            // The worst bucket of a percentile, never the mean of bucket percentiles.
            (&p95, vec![buckets.clone()], Ok(Some(30.0))),
            // Several series cannot be one value or one percentile.
            (&value, vec![two.clone()], Err("answered 2 series")),
            (&p95, vec![two], Err("answered 2 series")),
            (&value, vec![vec![]], Ok(None)),
            (&value, vec![vec![vec![]]], Ok(None)),
            (&count, vec![vec![]], Ok(None)),
            // Summed errors over summed requests: 1+5 / 100+100, not the mean of 1% and 5%.
            (
                &ratio,
                vec![vec![vec![1.0, 5.0]], vec![vec![100.0, 100.0]]],
                Ok(Some(0.03)),
            ),
            // No error series while requests were counted is 0 errors; no requests is no data.
            (&ratio, vec![vec![], vec![vec![100.0]]], Ok(Some(0.0))),
            (&ratio, vec![vec![vec![3.0]], vec![]], Ok(None)),
            (&ratio, vec![vec![vec![3.0]], vec![vec![0.0]]], Ok(None)),
        ];
        for (kind, answered, expected) in cases {
            let got = reduce(kind, &answered);
            match expected {
                Ok(v) => assert_eq!(got, Ok(v), "{kind:?} {answered:?}"),
                Err(needle) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(needle)),
                    "{kind:?} {answered:?}: {got:?}"
                ),
            }
        }
    }

    /// Datadog-shaped answers: buckets per series, by query.
    struct Buckets(Vec<(&'static str, Vec<Vec<f64>>)>);

    #[async_trait]
    impl MetricSource for Buckets {
        fn name(&self) -> &'static str {
            "buckets"
        }
        async fn scalar(&self, _: &str) -> Result<Option<f64>, MetricError> {
            unreachable!("kinds read series")
        }
        async fn series(&self, query: &str) -> Result<Vec<Vec<f64>>, MetricError> {
            Ok(self
                .0
                .iter()
                .find(|(k, _)| query.contains(k))
                .map_or_else(Vec::new, |(_, v)| v.clone()))
        }
    }

    #[tokio::test]
    async fn datadog_defaults_count_the_window_and_judge_its_worst_p95() {
        let source = Buckets(vec![
            ("trace.http.request.hits", vec![vec![50.0, 150.0]]),
            ("trace.http.request.errors", vec![vec![0.0, 10.0]]),
            ("p95:trace.http.request", vec![vec![120.0, 380.0, 90.0]]),
        ]);
        let set = query_set(MetricProvider::Datadog, &CanaryPolicy::default());
        let Measurements::Answered { samples, checks, .. } = measure(&source, &set, &vars(), &canary(), None).await
        else {
            panic!("answered")
        };
        assert_eq!(samples, Some(200.0), "the window's total, not a bucket's mean");
        assert_eq!(checks[0].value, Some(0.05), "10 errors of 200 requests");
        assert_eq!(checks[1].value, Some(380.0), "the worst bucket");
        assert!(checks[0].query.contains(") / ("), "{}", checks[0].query);
    }

    #[tokio::test]
    async fn the_baseline_compares_each_sides_latency_buckets_and_each_configured_metric() {
        let source = Buckets(vec![
            ("cpu{version:1.5.0}", vec![vec![30.0, 31.0], vec![29.0]]),
            ("cpu{version:1.4.2}", vec![vec![20.0, 21.0, 22.0]]),
            ("version:1.5.0}", vec![vec![200.0, 210.0, 190.0, 205.0]]),
            ("version:1.4.2}", vec![vec![100.0, 110.0, 95.0, 105.0]]),
            ("trace.http.request.hits", vec![vec![100.0]]),
        ]);
        let policy = CanaryPolicy {
            baseline: Some(crate::config::BaselineConfig {
                compare: vec![crate::config::ComparedMetric {
                    name: "cpu_ms".into(),
                    query: "avg:cpu{version:{{version}}}".into(),
                    weight: 20.0,
                    direction: crate::config::Direction::Increase,
                }],
                ..Default::default()
            }),
            ..CanaryPolicy::default()
        };
        let set = query_set(MetricProvider::Datadog, &policy);
        let stable = Side {
            deployment: "stable".into(),
            version: "1.4.2".into(),
        };
        let Measurements::Answered { baseline, .. } = measure(&source, &set, &vars(), &canary(), Some(&stable)).await
        else {
            panic!("answered")
        };
        let baseline = baseline.unwrap();
        assert_eq!(baseline.canary_latencies, [200.0, 210.0, 190.0, 205.0]);
        assert_eq!(baseline.stable_latencies, [100.0, 110.0, 95.0, 105.0]);
        // Every series' points are the side's per-interval values.
        assert_eq!(
            baseline.compared,
            [ComparedSamples {
                name: "cpu_ms".into(),
                canary: vec![30.0, 31.0, 29.0],
                stable: vec![20.0, 21.0, 22.0],
            }]
        );
        // Without stable (a blue/green cutover) nothing is compared, and nothing asked.
        let Measurements::Answered { baseline, .. } = measure(&source, &set, &vars(), &canary(), None).await else {
            panic!("answered")
        };
        assert_eq!(baseline, None);
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
