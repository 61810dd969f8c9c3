//! The Datadog stand-in's metric queries (`GET /api/v1/query`), answered from the sandbox's real traffic:
//! a Datadog query is translated to PromQL over the metrics the sandbox's Prometheus scrapes from the
//! tasks, run as a range query over `from`..`to` in buckets, and returned as Datadog returns series. So a
//! Datadog-gated canary is judged on the same requests as a Prometheus-gated one.
//!
//! What is understood (the APM trace metrics suma's defaults and the shipped monitors use):
//! - `AGG:METRIC{TAG:VALUE,...}[.as_count()]`, with `sum`, `avg`, `max`, `min`, or `p50`..`p99` for the
//!   latency distribution; terms joined by `/` or `*`, or a term times a number (`* 1000`);
//! - `trace.http.request.hits` and `.errors` (5xx): `http_requests_total` of the API routes, per bucket with
//!   `.as_count()`, per second without; `trace.http.request`: the request duration in seconds from
//!   `http_request_duration_seconds`;
//! - tags: `env` (its cluster, from `--env-cluster`), `version` (the task's image tag, the agent's
//!   `ecs_version` target label), `deployment` (`stable` or `canary`); `service` is every task's own.
//!
//! Anything else is refused with the 400 Datadog gives a query it cannot parse, naming what is missing.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The buckets of one answer: at least 5 s (the sandbox scrapes every second), about 20 per window.
pub fn step_of(from: i64, to: i64) -> i64 {
    ((to - from) / 20).max(5)
}

/// A Datadog query as PromQL with buckets of `step` seconds; `env_clusters` maps `env` tags to clusters.
pub fn translate(query: &str, step: i64, env_clusters: &BTreeMap<String, String>) -> Result<String, String> {
    let query = query.trim();
    // One operator at most between two terms, or a term and a number.
    let split = ['/', '*']
        .iter()
        .filter_map(|op| outside_braces(query, *op).map(|at| (at, *op)))
        .min_by_key(|(at, _)| *at);
    match split {
        None => term(query, step, env_clusters),
        Some((at, op)) => {
            let (left, right) = (query[..at].trim(), query[at + 1..].trim());
            let left = term(left, step, env_clusters)?;
            let right = match right.parse::<f64>() {
                Ok(number) => number.to_string(),
                Err(_) => term(right, step, env_clusters)?,
            };
            Ok(format!("({left}) {op} ({right})"))
        }
    }
}

/// Where `op` first occurs outside `{...}`.
fn outside_braces(text: &str, op: char) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if c == op && depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// One `AGG:METRIC{tags}[.as_count()]` term.
fn term(text: &str, step: i64, env_clusters: &BTreeMap<String, String>) -> Result<String, String> {
    let (aggregation, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected `aggregation:metric{{tags}}`"))?;
    let (metric, rest) = rest
        .split_once('{')
        .ok_or_else(|| format!("`{text}`: expected a `{{...}}` tag scope"))?;
    let (scope, modifier) = rest
        .split_once('}')
        .ok_or_else(|| format!("`{text}`: the tag scope is not closed"))?;
    let as_count = match modifier.trim() {
        "" => false,
        ".as_count()" => true,
        other => return Err(format!("`{text}`: `{other}` is not understood by the sandbox stand-in")),
    };
    let mut selector = vec![r#"route=~"/api/.*""#.to_owned()];
    for tag in scope.split(',').map(str::trim).filter(|t| !t.is_empty() && *t != "*") {
        let (key, value) = tag
            .split_once(':')
            .ok_or_else(|| format!("`{tag}`: expected `key:value`"))?;
        match key {
            "env" => {
                let cluster = env_clusters
                    .get(value)
                    .ok_or_else(|| format!("`env:{value}`: no such environment in the sandbox"))?;
                selector.push(format!(r#"ecs_cluster="{cluster}""#));
            }
            "version" => selector.push(format!(r#"ecs_version="{value}""#)),
            "deployment" => selector.push(format!(r#"deployment="{value}""#)),
            "service" => {}
            other => return Err(format!("tag `{other}` has no counterpart in the sandbox's metrics")),
        }
    }
    let counter = |extra: &str| {
        let selector = format!("{}{extra}", selector.join(","));
        if as_count {
            format!("increase(http_requests_total{{{selector}}}[{step}s])")
        } else {
            format!("rate(http_requests_total{{{selector}}}[{step}s])")
        }
    };
    let series = match metric {
        "trace.http.request.hits" => counter(""),
        "trace.http.request.errors" => counter(r#",status=~"5..""#),
        "trace.http.request" => {
            let quantile = aggregation
                .strip_prefix('p')
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| (1..100).contains(p))
                .ok_or_else(|| format!("`{text}`: the latency distribution takes `p50:` .. `p99:`"))?;
            return Ok(format!(
                "histogram_quantile(0.{quantile:02}, sum by (le) (rate(http_request_duration_seconds_bucket{{{}}}[{step}s])))",
                selector.join(",")
            ));
        }
        other => return Err(format!("metric `{other}` is not in the sandbox's metrics")),
    };
    match aggregation {
        "sum" | "avg" | "max" | "min" => Ok(format!("{aggregation}({series})")),
        other => Err(format!("`{other}:` does not apply to `{metric}`")),
    }
}

/// Prometheus's range answer as Datadog's `series`: each result a series of `[ms, value]` points (NaN as
/// null, as Datadog leaves a bucket without data).
pub fn series_of(prometheus: &Value, query: &str) -> Result<Vec<Value>, String> {
    if prometheus["status"] != "success" {
        return Err(prometheus["error"]
            .as_str()
            .unwrap_or("the range query failed")
            .to_owned());
    }
    let results = prometheus["data"]["result"].as_array().cloned().unwrap_or_default();
    Ok(results
        .iter()
        .map(|result| {
            let points: Vec<Value> = result["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|point| {
                    let at = point[0].as_f64().unwrap_or_default();
                    let value = point[1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|v| v.is_finite());
                    json!([at * 1000.0, value])
                })
                .collect();
            json!({
                "metric": query,
                "expression": query,
                "scope": "sandbox",
                "display_name": query,
                "length": points.len(),
                "pointlist": points,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters() -> BTreeMap<String, String> {
        BTreeMap::from([("staging".to_owned(), "suma-finance-staging".to_owned())])
    }

    #[test]
    fn suma_default_queries_become_promql_on_the_sandbox_metrics() {
        let hits = "sum:trace.http.request.hits{service:auth-service,env:staging,version:2.0.0}.as_count()";
        assert_eq!(
            translate(hits, 5, &clusters()).unwrap(),
            r#"sum(increase(http_requests_total{route=~"/api/.*",ecs_cluster="suma-finance-staging",ecs_version="2.0.0"}[5s]))"#
        );
        let errors = "sum:trace.http.request.errors{env:staging,deployment:canary}.as_count()";
        assert!(translate(errors, 5, &clusters())
            .unwrap()
            .contains(r#"deployment="canary",status=~"5..""#));
        let p95 = "p95:trace.http.request{env:staging,version:2.0.0} * 1000";
        assert_eq!(
            translate(p95, 5, &clusters()).unwrap(),
            r#"(histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{route=~"/api/.*",ecs_cluster="suma-finance-staging",ecs_version="2.0.0"}[5s])))) * (1000)"#
        );
        let ratio = format!("{} / {hits}", errors);
        let promql = translate(&ratio, 5, &clusters()).unwrap();
        assert!(
            promql.starts_with("(sum(increase(") && promql.contains(") / (sum(increase("),
            "{promql}"
        );
    }

    #[test]
    fn what_the_sandbox_cannot_answer_is_named() {
        for (query, needle) in [
            ("sum:system.cpu.user{*}", "metric `system.cpu.user`"),
            ("sum:trace.http.request.hits{host:a}", "tag `host`"),
            ("sum:trace.http.request.hits{env:qa}", "`env:qa`"),
            ("p95:trace.http.request.hits{*}", "`p95:` does not apply"),
            ("avg:trace.http.request{*}", "`p50:` .. `p99:`"),
            ("trace.http.request.hits", "expected `aggregation:metric{tags}`"),
        ] {
            let err = translate(query, 5, &clusters()).unwrap_err();
            assert!(err.contains(needle), "{query}: {err}");
        }
    }

    #[test]
    fn buckets_are_a_twentieth_of_the_window_and_never_under_five_seconds() {
        assert_eq!(step_of(0, 15), 5);
        assert_eq!(step_of(0, 300), 15);
    }

    #[test]
    fn range_answers_become_datadog_series() {
        let answer = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1700000000, "3"], [1700000005, "NaN"]]}
        ]}});
        let series = series_of(&answer, "q").unwrap();
        assert_eq!(
            series[0]["pointlist"],
            json!([[1700000000000.0, 3.0], [1700000005000.0, null]])
        );
        assert!(series_of(&json!({"status": "error", "error": "bad"}), "q").is_err());
    }
}
