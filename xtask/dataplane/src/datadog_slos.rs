//! The Datadog stand-in's service level objectives (`/api/v1/slo`), kept beside its monitors file
//! (`monitors.json` → `monitors.slos.json`):
//! - `POST /api/v1/slo`: checked as Datadog checks it (a `name`; a `type` of `metric`, `monitor` or
//!   `time_slice` with what that type needs: a numerator and a denominator, monitor ids, an SLI
//!   specification; thresholds whose timeframe Datadog knows, whose target is between 0 and 100, and whose
//!   warning is above the target), completed with what the server owns (a 32-hex id, `created_at`,
//!   `modified_at`, `creator`, the primary threshold copied to the top, display strings) and answered
//!   `{"data": [slo]}`;
//! - `GET /api/v1/slo` (`query`: a case-insensitive substring of the name; `tags_query`: tags the SLO
//!   all carries; `ids`; `limit`, default 1000; `offset`); `GET|PUT|DELETE /api/v1/slo/{id}` (an update
//!   replaces the SLO whole and is checked like a new one).

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::datadog_stub::{
    checked_body, creator, denied, not_found, now_secs, param, rand_seed, read_array, remove, rewrite, Stub,
};

/// Where the SLOs of the stub whose monitors are in `monitors_file` are kept.
pub fn file_beside(monitors_file: &Path) -> PathBuf {
    monitors_file.with_extension("slos.json")
}

const TIMEFRAMES: &[&str] = &["7d", "30d", "90d", "custom"];

/// Every problem Datadog would answer `400` with for SLO `body`.
pub fn validate(body: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec!["the body must be a JSON object".to_owned()]);
    };
    match object.get("name").and_then(Value::as_str) {
        Some(name) if !name.trim().is_empty() => {}
        _ => problems.push("`name` is required".to_owned()),
    }
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
    };
    match object.get("type").and_then(Value::as_str) {
        Some("metric") => {
            if text("/query/numerator").is_none() || text("/query/denominator").is_none() {
                problems.push("a metric SLO needs `query.numerator` and `query.denominator`".to_owned());
            }
        }
        Some("monitor") => {
            let ids = object.get("monitor_ids").and_then(Value::as_array);
            if !ids.is_some_and(|ids| !ids.is_empty() && ids.iter().all(Value::is_i64)) {
                problems.push("a monitor SLO needs `monitor_ids`, a list of monitor ids".to_owned());
            }
        }
        Some("time_slice") => {
            if !object.get("sli_specification").is_some_and(Value::is_object) {
                problems.push("a time-slice SLO needs `sli_specification`".to_owned());
            }
        }
        Some(other) => problems.push(format!("`type` `{other}` is not one of metric, monitor, time_slice")),
        None => problems.push("`type` is required".to_owned()),
    }
    match object.get("thresholds").and_then(Value::as_array) {
        Some(thresholds) if !thresholds.is_empty() => {
            for (i, threshold) in thresholds.iter().enumerate() {
                let timeframe = threshold["timeframe"].as_str().unwrap_or_default();
                if !TIMEFRAMES.contains(&timeframe) {
                    problems.push(format!(
                        "`thresholds[{i}].timeframe` `{timeframe}` is not one of {}",
                        TIMEFRAMES.join(", ")
                    ));
                }
                match threshold["target"].as_f64() {
                    Some(target) if target > 0.0 && target < 100.0 => {
                        if let Some(warning) = threshold.get("warning").and_then(Value::as_f64) {
                            if warning <= target || warning >= 100.0 {
                                problems.push(format!(
                                    "`thresholds[{i}].warning` {warning} must be above the target {target} and below 100"
                                ));
                            }
                        }
                    }
                    _ => problems.push(format!("`thresholds[{i}].target` must be a number between 0 and 100")),
                }
            }
        }
        _ => problems.push("`thresholds` must list at least one threshold".to_owned()),
    }
    if let Some(tags) = object.get("tags") {
        if !tags.as_array().is_some_and(|t| t.iter().all(Value::is_string)) {
            problems.push("`tags` must be a list of strings".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `body` with what the server owns filled in: `id`, the creation time (kept from `existing`), the
/// modification time `now`, the creator, the primary threshold at the top and display strings.
pub fn complete(body: &Value, id: &str, existing: Option<&Value>, now: i64) -> Value {
    let mut slo: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
    for key in ["id", "created_at", "modified_at", "creator"] {
        slo.remove(key);
    }
    slo.insert("id".into(), json!(id));
    slo.insert(
        "created_at".into(),
        existing.map_or_else(|| json!(now), |e| e["created_at"].clone()),
    );
    slo.insert("modified_at".into(), json!(now));
    slo.insert("creator".into(), creator());
    slo.entry("description").or_insert(Value::Null);
    slo.entry("tags").or_insert(json!([]));
    slo.entry("monitor_tags").or_insert(json!([]));
    if let Some(thresholds) = slo.get_mut("thresholds").and_then(Value::as_array_mut) {
        for threshold in thresholds.iter_mut() {
            let display = |v: &Value| v.as_f64().map(|n| format!("{n:.1}"));
            if let Some(target) = display(&threshold["target"]) {
                threshold["target_display"] = json!(target);
            }
            if let Some(warning) = threshold.get("warning").and_then(display) {
                threshold["warning_display"] = json!(warning);
            }
        }
        if let Some(primary) = thresholds.first().cloned() {
            slo.insert("target_threshold".into(), primary["target"].clone());
            slo.insert("timeframe".into(), primary["timeframe"].clone());
            if let Some(warning) = primary.get("warning") {
                slo.insert("warning_threshold".into(), warning.clone());
            }
        }
    }
    Value::Object(slo)
}

/// Whether `slo` passes the list filters in `params`.
pub fn matches(slo: &Value, params: &[(String, String)]) -> bool {
    let name = slo["name"].as_str().unwrap_or_default().to_lowercase();
    let tags: Vec<&str> = slo["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let id = slo["id"].as_str().unwrap_or_default();
    param(params, "query").is_none_or(|q| name.contains(&q.to_lowercase()))
        && param(params, "tags_query").is_none_or(|wanted| {
            wanted
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .all(|t| tags.contains(&t))
        })
        && param(params, "ids").is_none_or(|ids| ids.split(',').any(|i| i.trim() == id))
}

fn new_id(all: &[Value]) -> String {
    let mut n = rand_seed().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ all.len() as u64;
    loop {
        let id = format!("{:016x}{:016x}", n, n.rotate_left(29) ^ 0x5bd1_e995);
        if !all.iter().any(|s| s["id"].as_str() == Some(id.as_str())) {
            return id;
        }
        n = n.wrapping_add(1);
    }
}

pub(crate) async fn list(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&file_beside(&stub.config.monitors_file)).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let offset = param(&params, "offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = param(&params, "limit").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let found: Vec<&Value> = all.iter().filter(|s| matches(s, &params)).collect();
    let page: Vec<&Value> = found.iter().skip(offset).take(limit).copied().collect();
    Json(json!({
        "data": page,
        "errors": [],
        "metadata": {"page": {"total_count": all.len(), "total_filtered_count": found.len()}},
    }))
    .into_response()
}

pub(crate) async fn create(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match checked_body(&stub, &headers, &body, validate) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    rewrite(&stub, &file_beside(&stub.config.monitors_file), |all| {
        let slo = complete(&body, &new_id(all), None, now_secs());
        all.push(slo.clone());
        tracing::info!(id = slo["id"].as_str().unwrap_or_default(), "SLO created");
        Ok(Json(json!({ "data": [slo] })).into_response())
    })
    .await
}

pub(crate) async fn read(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&file_beside(&stub.config.monitors_file)).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    match all.into_iter().find(|s| s["id"].as_str() == Some(id.as_str())) {
        Some(slo) => Json(json!({ "data": slo })).into_response(),
        None => not_found("SLO", &id),
    }
}

pub(crate) async fn update(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let body = match checked_body(&stub, &headers, &body, validate) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    rewrite(&stub, &file_beside(&stub.config.monitors_file), |all| {
        let Some(slot) = all.iter_mut().find(|s| s["id"].as_str() == Some(id.as_str())) else {
            return Err(Box::new(not_found("SLO", &id)));
        };
        *slot = complete(&body, &id, Some(slot), now_secs());
        Ok(Json(json!({ "data": [slot.clone()] })).into_response())
    })
    .await
}

pub(crate) async fn delete(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    rewrite(&stub, &file_beside(&stub.config.monitors_file), |all| {
        remove(all, "SLO", &id, |s| s["id"].as_str() == Some(id.as_str()))?;
        Ok(Json(json!({ "data": [id], "errors": {} })).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric_slo() -> Value {
        json!({
            "name": "Login availability",
            "type": "metric",
            "query": {"numerator": "sum:ok{*}.as_count()", "denominator": "sum:all{*}.as_count()"},
            "thresholds": [{"timeframe": "30d", "target": 99.9, "warning": 99.95}],
            "tags": ["env:staging"],
        })
    }

    #[test]
    fn slos_are_checked_as_datadog_checks_them() {
        assert_eq!(validate(&metric_slo()), Ok(()));
        let cases: &[(&str, Value, &str)] = &[
            ("/type", json!("uptime"), "`type` `uptime` is not one of"),
            (
                "/query/denominator",
                json!(""),
                "needs `query.numerator` and `query.denominator`",
            ),
            ("/thresholds", json!([]), "at least one threshold"),
            ("/thresholds/0/timeframe", json!("1y"), "`thresholds[0].timeframe` `1y`"),
            ("/thresholds/0/target", json!(100), "between 0 and 100"),
            ("/thresholds/0/warning", json!(99.0), "must be above the target 99.9"),
            ("/name", json!(" "), "`name` is required"),
            ("/tags", json!([1]), "`tags` must be a list of strings"),
        ];
        for (pointer, value, expected) in cases {
            let mut slo = metric_slo();
            *slo.pointer_mut(pointer).unwrap() = value.clone();
            let problems = validate(&slo).unwrap_err();
            assert!(problems.iter().any(|p| p.contains(expected)), "{pointer}: {problems:?}");
        }
        let monitor = json!({"name": "m", "type": "monitor", "monitor_ids": [], "thresholds": [{"timeframe": "7d", "target": 99}]});
        assert!(validate(&monitor).unwrap_err()[0].contains("monitor_ids"));
    }

    #[test]
    fn the_server_fills_in_what_it_owns_and_filters_as_datadog_does() {
        let created = complete(&metric_slo(), "abc", None, 100);
        assert_eq!(created["id"], "abc");
        assert_eq!(created["created_at"], 100);
        assert_eq!(created["target_threshold"], 99.9);
        assert_eq!(created["timeframe"], "30d");
        assert_eq!(created["thresholds"][0]["target_display"], "99.9");
        let updated = complete(&metric_slo(), "abc", Some(&created), 200);
        assert_eq!(
            (updated["created_at"].clone(), updated["modified_at"].clone()),
            (json!(100), json!(200))
        );
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert!(matches(&created, &params(&[("query", "login AVAIL")])));
        assert!(!matches(&created, &params(&[("query", "latency")])));
        assert!(matches(&created, &params(&[("tags_query", "env:staging")])));
        assert!(!matches(&created, &params(&[("tags_query", "env:staging,team:x")])));
        assert!(matches(&created, &params(&[("ids", "x,abc")])));
    }
}
