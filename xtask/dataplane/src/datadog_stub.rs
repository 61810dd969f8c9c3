//! A Datadog API stand-in for the sandbox (Datadog has no offline server): it answers the calls suma makes,
//! checks what Datadog checks (both keys, JSON bodies, the required fields of monitors and dashboards), and
//! keeps what it is sent in files, so the sandbox's runs and tests can read what suma did.
//!
//! - `GET /api/v1/monitor`: the monitors in the monitors file (a JSON array, read on every request, `[]`
//!   when missing), filtered by `monitor_tags` (every tag must match) and `name` (a case-insensitive
//!   substring), like Datadog; `page`/`page_size` pages;
//! - `POST /api/v1/monitor`, `GET|PUT|DELETE /api/v1/monitor/{id}`, `POST /api/v1/monitor/{id}/mute` and
//!   `/unmute` (`scope`, `end`, `all_scopes` in the query string): kept in the monitors file. A created
//!   monitor's `overall_state` is `OK`, so it never blocks a canary's monitor gate. Like Datadog, a
//!   metric monitor whose `options.thresholds.critical` is not the number its query compares with is
//!   refused;
//! - `POST /api/v1/monitor/validate`: the same checks, nothing stored, `{}` when the monitor passes;
//! - `GET /api/v1/dashboard` (summaries, `start`/`count`), `POST /api/v1/dashboard`,
//!   `GET|PUT|DELETE /api/v1/dashboard/{id}`: kept in the dashboards file;
//! - `/api/v2/downtime`: mutes as Datadog keeps them now (see `datadog_downtimes`); monitors read with
//!   `with_downtimes=true` carry the `matching_downtimes` in effect on them;
//! - `/api/v1/slo`: service level objectives as Datadog checks and keeps them (see `datadog_slos`);
//! - `POST /api/v1/events`: appended to the events file, answered `202` like Datadog;
//! - `GET /api/v1/query` (`from`, `to`, `query`): answered from the sandbox's Prometheus when the stub
//!   knows it (`datadog_metrics` translates the query), else an empty series list.
//!
//! Every write (any method but `GET`, and no validation) is appended to the writes log as `{"method", "path", "body"}`, so a
//! test can assert that a second `apply` sent nothing. Like Datadog, the server fills in what it owns (ids,
//! timestamps, creator, option defaults, widget ids), which is what clients must learn to ignore.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::{datadog_downtimes, datadog_slos};
use tokio::sync::Mutex;

/// What the stub needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_key: String,
    pub app_key: String,
    pub monitors_file: PathBuf,
    pub events_file: PathBuf,
    /// A JSON array of dashboards (created when first written).
    pub dashboards_file: PathBuf,
    /// Every write request, one JSON object per line.
    pub writes_file: PathBuf,
    /// The sandbox's Prometheus, which metric queries are answered from.
    pub prometheus_url: Option<String>,
    /// Each `env` tag's cluster.
    pub env_clusters: std::collections::BTreeMap<String, String>,
}

#[derive(Clone)]
pub(crate) struct Stub {
    pub(crate) config: Arc<Config>,
    /// Serialises appends and read-modify-writes so two requests never interleave in a file.
    pub(crate) files: Arc<Mutex<()>>,
    /// One client for every metric query sent on to Prometheus.
    prometheus: reqwest::Client,
}

/// The monitor types Datadog accepts.
const MONITOR_TYPES: &[&str] = &[
    "composite",
    "event alert",
    "log alert",
    "metric alert",
    "process alert",
    "query alert",
    "rum alert",
    "service check",
    "synthetics alert",
    "trace-analytics alert",
    "slo alert",
    "event-v2 alert",
    "audit alert",
    "ci-pipelines alert",
    "ci-tests alert",
    "error-tracking alert",
    "database-monitoring alert",
    "network-performance alert",
];

pub fn router(config: Config) -> Router {
    let stub = Stub {
        config: Arc::new(config),
        files: Arc::default(),
        prometheus: reqwest::Client::new(),
    };
    Router::new()
        .route("/api/v1/monitor", get(monitors).post(create_monitor))
        .route("/api/v1/monitor/validate", post(validate))
        .route(
            "/api/v1/monitor/{id}",
            get(get_monitor).put(update_monitor).delete(delete_monitor),
        )
        .route("/api/v1/monitor/{id}/mute", post(mute_monitor))
        .route("/api/v1/monitor/{id}/unmute", post(unmute_monitor))
        .route("/api/v2/downtime", get(downtimes).post(create_downtime))
        .route("/api/v2/downtime/{id}", axum::routing::delete(cancel_downtime))
        .route("/api/v1/dashboard", get(dashboards).post(create_dashboard))
        .route(
            "/api/v1/dashboard/{id}",
            get(get_dashboard).put(update_dashboard).delete(delete_dashboard),
        )
        .route("/api/v1/slo", get(datadog_slos::list).post(datadog_slos::create))
        .route(
            "/api/v1/slo/{id}",
            get(datadog_slos::read)
                .put(datadog_slos::update)
                .delete(datadog_slos::delete),
        )
        .route("/api/v1/events", post(event))
        .route("/api/v1/query", get(query))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "this Datadog stand-in does not serve that path") })
        .layer(middleware::from_fn_with_state(stub.clone(), record_writes))
        .with_state(stub)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": [message] }))).into_response()
}

pub(crate) fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// Datadog's answer to a request without valid keys, or `None` when the keys are right.
pub(crate) fn denied(stub: &Stub, headers: &HeaderMap, needs_app_key: bool) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if header("dd-api-key") != stub.config.api_key {
        return Some(error(
            StatusCode::FORBIDDEN,
            "Forbidden: DD-API-KEY is missing or wrong",
        ));
    }
    if needs_app_key && header("dd-application-key") != stub.config.app_key {
        return Some(error(
            StatusCode::FORBIDDEN,
            "Forbidden: DD-APPLICATION-KEY is missing or wrong",
        ));
    }
    None
}

/// Appends every request that changes something to the writes log before handling it: not `GET`, and not
/// a validation (`POST .../validate` changes nothing).
async fn record_writes(State(stub): State<Stub>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.uri().path().ends_with("/validate") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 10 << 20).await else {
        return bad_request("the body is too large");
    };
    let body_json = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let line = json!({"method": parts.method.as_str(), "path": path, "body": body_json});
    {
        let _guard = stub.files.lock().await;
        if let Err(e) = append_line(&stub.config.writes_file, &line).await {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot record the write: {e}"),
            );
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn append_line(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(format!("{value}\n").as_bytes()).await
}

/// A JSON array file, `[]` when missing.
pub(crate) async fn read_array(path: &Path) -> Result<Vec<Value>, Box<Response>> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read {}: {e}", path.display()),
            )))
        }
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{} is not a JSON array: {e}", path.display()),
        ))
    })
}

/// Replaces the file whole (write then rename), so a reader never sees half an array.
pub(crate) async fn write_array(path: &Path, items: &[Value]) -> Result<(), Box<Response>> {
    let text = serde_json::to_string_pretty(items).expect("JSON values serialize");
    let tmp = path.with_extension("json.tmp");
    let written = async {
        tokio::fs::write(&tmp, format!("{text}\n")).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    written.map_err(|e| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write {}: {e}", path.display()),
        ))
    })
}

/// A write's request as Datadog takes it: both keys, a JSON body, and what `validate` checks; else the
/// answer Datadog gives instead (`403`, or `400` with every problem).
pub(crate) fn checked_body(
    stub: &Stub,
    headers: &HeaderMap,
    body: &[u8],
    validate: impl Fn(&Value) -> Result<(), Vec<String>>,
) -> Result<Value, Box<Response>> {
    if let Some(denied) = denied(stub, headers, true) {
        return Err(Box::new(denied));
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(bad_request("the body is not JSON")));
    };
    validate(&body)
        .map_err(|problems| Box::new((StatusCode::BAD_REQUEST, Json(json!({ "errors": problems }))).into_response()))?;
    Ok(body)
}

/// Who the stand-in says created a resource.
pub(crate) fn creator() -> Value {
    json!({"email": "sandbox@example.com", "handle": "sandbox@example.com", "name": "sandbox"})
}

/// A read-modify-write of the JSON array in `file` under the files lock: `change` edits the items and
/// gives the answer, or the error answer, in which case nothing is written.
pub(crate) async fn rewrite(
    stub: &Stub,
    file: &Path,
    change: impl FnOnce(&mut Vec<Value>) -> Result<Response, Box<Response>>,
) -> Response {
    let _guard = stub.files.lock().await;
    let mut all = match read_array(file).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let answer = match change(&mut all) {
        Ok(answer) => answer,
        Err(response) => return *response,
    };
    if let Err(response) = write_array(file, &all).await {
        return *response;
    }
    answer
}

/// Removes the items `is` picks from `all`, or answers `404` naming `what` `id` when there are none.
pub(crate) fn remove(
    all: &mut Vec<Value>,
    what: &str,
    id: &str,
    is: impl Fn(&Value) -> bool,
) -> Result<(), Box<Response>> {
    let before = all.len();
    all.retain(|item| !is(item));
    if all.len() == before {
        Err(Box::new(not_found(what, id)))
    } else {
        Ok(())
    }
}

/// Whether a monitor carries every tag of Datadog's comma-separated `monitor_tags` filter.
pub fn has_tags(monitor: &Value, filter: Option<&str>) -> bool {
    let tags: Vec<&str> = monitor["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    filter
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|wanted| tags.contains(&wanted))
}

/// Datadog's `name` filter: a case-insensitive substring of the monitor's name.
pub fn name_matches(monitor: &Value, filter: Option<&str>) -> bool {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return true;
    };
    monitor["name"]
        .as_str()
        .is_some_and(|n| n.to_lowercase().contains(&filter.to_lowercase()))
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn monitors(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&stub.config.monitors_file).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let tags = param(&params, "monitor_tags");
    let name = param(&params, "name");
    let page = param(&params, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let size = param(&params, "page_size")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    let mut matching: Vec<Value> = all
        .into_iter()
        .filter(|m| has_tags(m, tags) && name_matches(m, name))
        .skip(page * size)
        .take(size)
        .collect();
    if let Err(response) = with_downtimes(&stub, &params, &mut matching).await {
        return *response;
    }
    Json(matching).into_response()
}

/// Datadog's checks of a monitor body: `{"errors": [...]}` with every problem, or `Ok`.
pub fn validate_monitor(body: &Value, partial: bool) -> Result<(), Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["the body must be a JSON object".to_owned()]);
    };
    let mut problems = Vec::new();
    let string = |key: &str| object.get(key).and_then(Value::as_str);
    for key in ["name", "type", "query", "message"] {
        match object.get(key) {
            None if partial => {}
            None => problems.push(format!("Missing required field `{key}`")),
            Some(Value::String(s)) if s.trim().is_empty() && key != "message" => {
                problems.push(format!("`{key}` must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(_) => problems.push(format!("`{key}` must be a string")),
        }
    }
    if let Some(kind) = string("type") {
        if !MONITOR_TYPES.contains(&kind) {
            problems.push(format!("Invalid monitor type `{kind}`"));
        }
    }
    if let Some(tags) = object.get("tags") {
        let ok = tags.as_array().is_some_and(|t| t.iter().all(Value::is_string));
        if !ok {
            problems.push("`tags` must be an array of strings".to_owned());
        }
    }
    if let Some(options) = object.get("options") {
        if !options.is_object() {
            problems.push("`options` must be an object".to_owned());
        } else if let Some(thresholds) = options.get("thresholds") {
            let ok = thresholds
                .as_object()
                .is_some_and(|t| t.values().all(|v| v.is_number() || v.is_null()));
            if !ok {
                problems.push("`options.thresholds` must map names to numbers".to_owned());
            }
        }
    }
    if let Some(problem) = threshold_mismatch(object) {
        problems.push(problem);
    }
    if let Some(priority) = object.get("priority") {
        let ok = priority.is_null() || priority.as_i64().is_some_and(|p| (1..=5).contains(&p));
        if !ok {
            problems.push("`priority` must be 1 to 5 or null".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Datadog refuses a metric monitor whose critical threshold is not the number its query compares with.
fn threshold_mismatch(object: &Map<String, Value>) -> Option<String> {
    let kind = object.get("type")?.as_str()?;
    if !matches!(kind, "query alert" | "metric alert") {
        return None;
    }
    let query = object.get("query")?.as_str()?;
    let critical = object.get("options")?.get("thresholds")?.get("critical")?.as_f64()?;
    let (_, compared) = query.rsplit_once(['<', '>'])?;
    let number: f64 = compared.trim_start_matches('=').trim().parse().ok()?;
    (number != critical)
        .then(|| format!("Alert threshold ({critical}) does not match that used in the query ({number})."))
}

/// `POST /api/v1/monitor/validate`: Datadog's checks of a monitor, nothing stored; `{}` when it passes.
async fn validate(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    match validate_monitor(&body, false) {
        Ok(()) => Json(json!({})).into_response(),
        Err(problems) => (StatusCode::BAD_REQUEST, Json(json!({ "errors": problems }))).into_response(),
    }
}

/// The option defaults Datadog fills in on a metric monitor.
fn fill_monitor_defaults(monitor: &mut Map<String, Value>) {
    let options = monitor
        .entry("options")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("validated as an object");
    for (key, value) in [
        ("notify_audit", json!(false)),
        ("include_tags", json!(true)),
        ("new_host_delay", json!(300)),
        ("notify_no_data", json!(false)),
        ("silenced", json!({})),
    ] {
        options.entry(key).or_insert(value);
    }
    for (key, value) in [
        ("tags", json!([])),
        ("priority", Value::Null),
        ("multi", json!(false)),
        ("deleted", Value::Null),
        ("restricted_roles", Value::Null),
    ] {
        monitor.entry(key).or_insert(value);
    }
}

fn monitor_id(monitor: &Value) -> Option<i64> {
    monitor["id"].as_i64()
}

async fn create_monitor(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match checked_body(&stub, &headers, &body, |b| validate_monitor(b, false)) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    rewrite(&stub, &stub.config.monitors_file, |all| {
        let id = all.iter().filter_map(monitor_id).max().unwrap_or(1000).max(1000) + 1;
        let now = rfc3339_now();
        let mut monitor = body.as_object().cloned().expect("validated as an object");
        for key in ["id", "created", "modified", "creator", "overall_state", "org_id"] {
            monitor.remove(key);
        }
        fill_monitor_defaults(&mut monitor);
        monitor.insert("id".into(), json!(id));
        monitor.insert("org_id".into(), json!(1));
        monitor.insert("created".into(), json!(now));
        monitor.insert("modified".into(), json!(now));
        monitor.insert("creator".into(), creator());
        // A new monitor is `OK` here: `No Data` or `Alert` would block the canary gate for nothing.
        monitor.insert("overall_state".into(), json!("OK"));
        let monitor = Value::Object(monitor);
        all.push(monitor.clone());
        tracing::info!(
            id,
            name = monitor["name"].as_str().unwrap_or_default(),
            "monitor created"
        );
        Ok(Json(monitor).into_response())
    })
    .await
}

pub(crate) fn not_found(what: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("{what} {id} not found"))
}

async fn get_monitor(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&stub.config.monitors_file).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let Some(monitor) = all.into_iter().find(|m| id.parse().ok() == monitor_id(m)) else {
        return not_found("Monitor", &id);
    };
    let mut one = vec![monitor];
    if let Err(response) = with_downtimes(&stub, &params, &mut one).await {
        return *response;
    }
    Json(one.remove(0)).into_response()
}

/// Adds to each monitor the downtimes in effect on it when the request asks `with_downtimes=true`, as
/// Datadog does.
async fn with_downtimes(stub: &Stub, params: &[(String, String)], monitors: &mut [Value]) -> Result<(), Box<Response>> {
    if param(params, "with_downtimes") != Some("true") {
        return Ok(());
    }
    let downtimes = read_array(&datadog_downtimes::file_beside(&stub.config.monitors_file)).await?;
    let now = now_secs();
    for monitor in monitors {
        let matching = datadog_downtimes::matching(monitor, &downtimes, now);
        if let Some(object) = monitor.as_object_mut() {
            object.insert("matching_downtimes".into(), matching);
        }
    }
    Ok(())
}

/// `GET /api/v2/downtime`: every downtime, or those in effect now with `current_only=true`, a page at a
/// time (`page[offset]`, `page[limit]`, 30 by default).
async fn downtimes(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&datadog_downtimes::file_beside(&stub.config.monitors_file)).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let current = param(&params, "current_only") == Some("true");
    let number = |key: &str, default: usize| param(&params, key).and_then(|v| v.parse().ok()).unwrap_or(default);
    // Datadog answers 30 at a time unless asked for another page size.
    let (offset, limit) = (number("page[offset]", 0), number("page[limit]", 30));
    let now = now_secs();
    let matching: Vec<Value> = all
        .iter()
        .filter(|d| !current || datadog_downtimes::in_effect(d, now))
        .map(datadog_downtimes::answer)
        .collect();
    let count = matching.len();
    let data: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    Json(json!({"data": data, "meta": {"page": {"total_count": count, "total_filtered_count": count}}})).into_response()
}

/// `POST /api/v2/downtime`.
async fn create_downtime(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    let file = datadog_downtimes::file_beside(&stub.config.monitors_file);
    let _guard = stub.files.lock().await;
    let (monitors, mut all) = match (read_array(&stub.config.monitors_file).await, read_array(&file).await) {
        (Ok(monitors), Ok(all)) => (monitors, all),
        (Err(response), _) | (_, Err(response)) => return *response,
    };
    let legacy_id = all.iter().filter_map(|d| d["legacy_id"].as_i64()).max().unwrap_or(0) + 1;
    match datadog_downtimes::create(&body, &monitors, now_secs(), legacy_id) {
        Err(problems) => (StatusCode::BAD_REQUEST, Json(json!({ "errors": problems }))).into_response(),
        Ok(downtime) => {
            all.push(downtime.clone());
            if let Err(response) = write_array(&file, &all).await {
                return *response;
            }
            Json(json!({"data": datadog_downtimes::answer(&downtime)})).into_response()
        }
    }
}

/// `DELETE /api/v2/downtime/{id}`: cancelled and kept, `204`.
async fn cancel_downtime(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let file = datadog_downtimes::file_beside(&stub.config.monitors_file);
    rewrite(&stub, &file, |all| {
        let Some(downtime) = all.iter_mut().find(|d| d["id"] == id.as_str()) else {
            return Err(Box::new(not_found("Downtime", &id)));
        };
        if downtime["attributes"]["canceled"].is_null() {
            downtime["attributes"]["canceled"] = json!(rfc3339_now());
            downtime["attributes"]["status"] = json!("canceled");
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// Applies `change` to the monitor `id` in the file and answers it.
async fn change_monitor(
    stub: &Stub,
    id: &str,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), Box<Response>>,
) -> Response {
    rewrite(stub, &stub.config.monitors_file, |all| {
        let Some(monitor) = all.iter_mut().find(|m| id.parse().ok() == monitor_id(m)) else {
            return Err(Box::new(not_found("Monitor", id)));
        };
        let Some(object) = monitor.as_object_mut() else {
            return Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a monitor in the file is not an object",
            )));
        };
        change(object)?;
        object.insert("modified".into(), json!(rfc3339_now()));
        Ok(Json(monitor.clone()).into_response())
    })
    .await
}

async fn update_monitor(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let body = match checked_body(&stub, &headers, &body, |b| validate_monitor(b, true)) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    change_monitor(&stub, &id, |monitor| {
        if let (Some(new), Some(old)) = (body["type"].as_str(), monitor["type"].as_str()) {
            // Datadog lets a metric monitor switch between its two spellings, nothing else.
            let metric = ["metric alert", "query alert"];
            if new != old && !(metric.contains(&new) && metric.contains(&old)) {
                return Err(Box::new(bad_request(&format!(
                    "The monitor type cannot be changed from `{old}` to `{new}`"
                ))));
            }
        }
        for (key, value) in body.as_object().expect("validated as an object") {
            if matches!(
                key.as_str(),
                "id" | "created" | "modified" | "creator" | "overall_state" | "org_id"
            ) {
                continue;
            }
            monitor.insert(key.clone(), value.clone());
        }
        fill_monitor_defaults(monitor);
        Ok(())
    })
    .await
}

async fn delete_monitor(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    rewrite(&stub, &stub.config.monitors_file, |all| {
        remove(all, "Monitor", &id, |m| id.parse().ok() == monitor_id(m))?;
        Ok(Json(json!({ "deleted_monitor_id": id.parse::<i64>().unwrap_or_default() })).into_response())
    })
    .await
}

async fn mute_monitor(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let scope = param(&params, "scope").unwrap_or("*").to_owned();
    let end = match param(&params, "end").map(str::parse::<i64>) {
        None => Value::Null,
        Some(Ok(end)) => json!(end),
        Some(Err(_)) => return bad_request("`end` must be a POSIX timestamp in seconds"),
    };
    change_monitor(&stub, &id, |monitor| {
        fill_monitor_defaults(monitor);
        monitor["options"]["silenced"]
            .as_object_mut()
            .map(|s| s.insert(scope, end))
            .ok_or_else(|| {
                Box::new(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "`options.silenced` is not an object",
                ))
            })?;
        Ok(())
    })
    .await
}

async fn unmute_monitor(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let scope = param(&params, "scope").unwrap_or("*").to_owned();
    let all_scopes = param(&params, "all_scopes") == Some("true");
    change_monitor(&stub, &id, |monitor| {
        fill_monitor_defaults(monitor);
        let silenced = monitor["options"]["silenced"].as_object_mut().ok_or_else(|| {
            Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "`options.silenced` is not an object",
            ))
        })?;
        if all_scopes {
            silenced.clear();
        } else if silenced.remove(&scope).is_none() {
            return Err(Box::new(bad_request(&format!(
                "Monitor is not muted for scope `{scope}`"
            ))));
        }
        Ok(())
    })
    .await
}

/// Datadog's checks of a dashboard body.
pub fn validate_dashboard(body: &Value) -> Result<(), Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["the body must be a JSON object".to_owned()]);
    };
    let mut problems = Vec::new();
    match object.get("title").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => {}
        _ => problems.push("Missing required field `title`".to_owned()),
    }
    match object.get("layout_type").and_then(Value::as_str) {
        Some("ordered" | "free") => {}
        Some(other) => problems.push(format!("Invalid layout_type `{other}`: expected `ordered` or `free`")),
        None => problems.push("Missing required field `layout_type`".to_owned()),
    }
    match object.get("widgets").and_then(Value::as_array) {
        Some(widgets) => {
            for (i, widget) in widgets.iter().enumerate() {
                if widget["definition"]["type"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("widgets[{i}]: `definition.type` is required"));
                }
            }
        }
        None => problems.push("Missing required field `widgets`".to_owned()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Widget ids, as Datadog assigns them to widgets (and group widgets' children) that have none.
fn assign_widget_ids(widgets: &mut [Value], next: &mut i64) {
    for widget in widgets {
        if let Some(object) = widget.as_object_mut() {
            if !object.get("id").is_some_and(Value::is_i64) {
                object.insert("id".into(), json!(*next));
                *next += 1;
            }
        }
        if let Some(children) = widget["definition"]["widgets"].as_array_mut() {
            assign_widget_ids(children, next);
        }
    }
}

fn dashboard_summary(dashboard: &Value) -> Value {
    let mut summary = Map::new();
    for key in [
        "id",
        "title",
        "description",
        "layout_type",
        "url",
        "author_handle",
        "created_at",
        "modified_at",
        "is_read_only",
    ] {
        summary.insert(key.to_owned(), dashboard.get(key).cloned().unwrap_or(Value::Null));
    }
    Value::Object(summary)
}

async fn dashboards(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&stub.config.dashboards_file).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    let start = param(&params, "start")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let count = param(&params, "count")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100);
    let page: Vec<Value> = all.iter().skip(start).take(count).map(dashboard_summary).collect();
    Json(json!({ "dashboards": page })).into_response()
}

/// A dashboard id shaped like Datadog's (`abc-def-ghi`), unused in `all`.
fn new_dashboard_id(all: &[Value]) -> String {
    let mut n = all.len() as u64 + 1;
    loop {
        let letters: String = (0..9)
            .map(|i| (b'a' + ((n.wrapping_mul(2654435761).wrapping_add(i * 7919) >> (i % 5)) % 26) as u8) as char)
            .collect();
        let id = format!("{}-{}-{}", &letters[0..3], &letters[3..6], &letters[6..9]);
        if !all.iter().any(|d| d["id"].as_str() == Some(id.as_str())) {
            return id;
        }
        n += 1;
    }
}

/// What the server owns in a dashboard, taken from `existing` (or made up for a new one).
fn complete_dashboard(body: &Value, id: &str, existing: Option<&Value>) -> Value {
    let mut dashboard = body.as_object().cloned().expect("validated as an object");
    let now = rfc3339_now();
    for key in ["id", "url", "created_at", "modified_at", "author_handle", "author_name"] {
        dashboard.remove(key);
    }
    let slug: String = body["title"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    dashboard.insert("id".into(), json!(id));
    dashboard.insert("url".into(), json!(format!("/dashboard/{id}/{slug}")));
    dashboard.insert(
        "created_at".into(),
        existing.map_or_else(|| json!(now), |e| e["created_at"].clone()),
    );
    dashboard.insert("modified_at".into(), json!(now));
    dashboard.insert("author_handle".into(), json!("sandbox@example.com"));
    dashboard.insert("author_name".into(), json!("sandbox"));
    dashboard.entry("description").or_insert(Value::Null);
    dashboard.entry("notify_list").or_insert(json!([]));
    dashboard.entry("template_variables").or_insert(json!([]));
    dashboard.entry("is_read_only").or_insert(json!(false));
    let mut next = 1_000_000_000_000_000 + (rand_seed() % 1_000_000_000) as i64;
    if let Some(widgets) = dashboard.get_mut("widgets").and_then(Value::as_array_mut) {
        assign_widget_ids(widgets, &mut next);
    }
    Value::Object(dashboard)
}

async fn create_dashboard(State(stub): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match checked_body(&stub, &headers, &body, validate_dashboard) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    rewrite(&stub, &stub.config.dashboards_file, |all| {
        let id = new_dashboard_id(all);
        let dashboard = complete_dashboard(&body, &id, None);
        all.push(dashboard.clone());
        tracing::info!(
            id,
            title = dashboard["title"].as_str().unwrap_or_default(),
            "dashboard created"
        );
        Ok(Json(dashboard).into_response())
    })
    .await
}

async fn get_dashboard(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let all = match read_array(&stub.config.dashboards_file).await {
        Ok(all) => all,
        Err(response) => return *response,
    };
    match all.into_iter().find(|d| d["id"].as_str() == Some(id.as_str())) {
        Some(dashboard) => Json(dashboard).into_response(),
        None => not_found("Dashboard", &id),
    }
}

async fn update_dashboard(
    State(stub): State<Stub>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    // A dashboard update replaces the whole definition, so it is checked like a new one.
    let body = match checked_body(&stub, &headers, &body, validate_dashboard) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    rewrite(&stub, &stub.config.dashboards_file, |all| {
        let Some(slot) = all.iter_mut().find(|d| d["id"].as_str() == Some(id.as_str())) else {
            return Err(Box::new(not_found("Dashboard", &id)));
        };
        *slot = complete_dashboard(&body, &id, Some(slot));
        Ok(Json(slot.clone()).into_response())
    })
    .await
}

async fn delete_dashboard(State(stub): State<Stub>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    rewrite(&stub, &stub.config.dashboards_file, |all| {
        remove(all, "Dashboard", &id, |d| d["id"].as_str() == Some(id.as_str()))?;
        Ok(Json(json!({ "deleted_dashboard_id": id })).into_response())
    })
    .await
}

async fn event(State(stub): State<Stub>, headers: HeaderMap, body: String) -> Response {
    if let Some(denied) = denied(&stub, &headers, false) {
        return denied;
    }
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    if event["title"].as_str().is_none_or(str::is_empty) || event["text"].as_str().is_none() {
        return bad_request("an event needs `title` and `text`");
    }
    let written = {
        let _guard = stub.files.lock().await;
        append_line(&stub.config.events_file, &event).await
    };
    if let Err(e) = written {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot record the event: {e}"),
        );
    }
    tracing::info!(title = event["title"].as_str().unwrap_or_default(), "event recorded");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "ok", "event": { "title": event["title"], "text": event["text"], "tags": event["tags"] } })),
    )
        .into_response()
}

async fn query(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let Some(prometheus) = &stub.config.prometheus_url else {
        return Json(json!({ "status": "ok", "series": [] })).into_response();
    };
    let number = |key: &str| params.get(key).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to), Some(text)) = (number("from"), number("to"), params.get("query")) else {
        return error(StatusCode::BAD_REQUEST, "`from`, `to` and `query` are required");
    };
    let step = crate::datadog_metrics::step_of(from, to);
    let promql = match crate::datadog_metrics::translate(text, step, &stub.config.env_clusters) {
        Ok(promql) => promql,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let answer = stub
        .prometheus
        .get(format!("{}/api/v1/query_range", prometheus.trim_end_matches('/')))
        .query(&[
            ("query", promql.clone()),
            ("start", from.to_string()),
            ("end", to.to_string()),
            ("step", step.to_string()),
        ])
        .send()
        .await;
    let body: Value = match answer {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(e) => return error(StatusCode::BAD_GATEWAY, &format!("Prometheus did not answer: {e}")),
    };
    match crate::datadog_metrics::series_of(&body, text) {
        Ok(series) => {
            tracing::info!(query = %text, promql = %promql, series = series.len(), "metric query answered");
            Json(json!({
                "status": "ok",
                "res_type": "time_series",
                "query": text,
                "from_date": from * 1000,
                "to_date": to * 1000,
                "series": series,
            }))
            .into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

pub(crate) fn rand_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

/// Now as `2026-11-23T01:02:03.000000+00:00`, the shape of Datadog's timestamps.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339_now() -> String {
    rfc3339(now_secs())
}

/// A Unix time as an RFC 3339 UTC timestamp (the civil-from-days algorithm; no date crate needed here).
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_tag_must_match() {
        let m = json!({"tags": ["service:auth-service", "auto-rollback:true"]});
        assert!(has_tags(&m, None));
        assert!(has_tags(&m, Some("service:auth-service,auto-rollback:true")));
        assert!(!has_tags(&m, Some("service:auth-service,env:production")));
        assert!(!has_tags(&json!({}), Some("auto-rollback:true")));
    }

    #[test]
    fn the_name_filter_is_a_case_insensitive_substring() {
        let m = json!({"name": "auth-service High error rate (staging)"});
        assert!(name_matches(&m, None));
        assert!(name_matches(&m, Some("high ERROR rate")));
        assert!(!name_matches(&m, Some("latency")));
    }

    #[test]
    fn a_critical_threshold_must_be_the_number_the_query_compares_with() {
        let monitor = |query: &str, critical: f64| {
            json!({"name": "n", "type": "query alert", "query": query, "message": "m",
                   "options": {"thresholds": {"critical": critical}}})
        };
        assert_eq!(
            validate_monitor(&monitor("avg(last_5m):avg:x{*} > 20", 20.0), false),
            Ok(())
        );
        assert_eq!(
            validate_monitor(&monitor("avg(last_5m):avg:x{a:b} <= 0.5", 0.5), false),
            Ok(())
        );
        assert_eq!(
            validate_monitor(&monitor("sum(last_5m):100 * sum:e{*} / sum:h{*} > 5", 10.0), false),
            Err(vec![
                "Alert threshold (10) does not match that used in the query (5).".to_owned()
            ])
        );
    }

    #[test]
    fn monitors_need_name_type_query_and_message() {
        let ok = json!({"name": "n", "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "message": "m"});
        assert_eq!(validate_monitor(&ok, false), Ok(()));
        let problems = validate_monitor(&json!({"type": "nonsense", "tags": [1]}), false).unwrap_err();
        assert!(
            problems.contains(&"Missing required field `name`".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"Missing required field `query`".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"Missing required field `message`".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"Invalid monitor type `nonsense`".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"`tags` must be an array of strings".to_owned()),
            "{problems:?}"
        );
        // An update may send only what changes.
        assert_eq!(validate_monitor(&json!({"message": "new"}), true), Ok(()));
    }

    #[test]
    fn dashboards_need_title_layout_and_typed_widgets() {
        let ok = json!({"title": "t", "layout_type": "ordered", "widgets": [{"definition": {"type": "note"}}]});
        assert_eq!(validate_dashboard(&ok), Ok(()));
        let problems = validate_dashboard(&json!({"layout_type": "grid", "widgets": [{}]})).unwrap_err();
        assert_eq!(
            problems,
            [
                "Missing required field `title`",
                "Invalid layout_type `grid`: expected `ordered` or `free`",
                "widgets[0]: `definition.type` is required",
            ]
        );
    }

    #[test]
    fn server_fields_are_filled_in() {
        let body = json!({"title": "Auth (staging)", "layout_type": "ordered",
                          "widgets": [{"definition": {"type": "group", "widgets": [{"definition": {"type": "note"}}]}}]});
        let d = complete_dashboard(&body, "abc-def-ghi", None);
        assert_eq!(d["id"], "abc-def-ghi");
        assert_eq!(d["url"], "/dashboard/abc-def-ghi/auth--staging-");
        assert!(d["widgets"][0]["id"].is_i64());
        assert!(d["widgets"][0]["definition"]["widgets"][0]["id"].is_i64());
        let mut m = json!({"name": "n", "options": {"thresholds": {"critical": 5}}})
            .as_object()
            .cloned()
            .unwrap();
        fill_monitor_defaults(&mut m);
        assert_eq!(m["options"]["thresholds"]["critical"], 5);
        assert_eq!(m["options"]["silenced"], json!({}));
        assert_eq!(m["tags"], json!([]));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(rfc3339(1_795_395_723), "2026-11-23T01:02:03.000000+00:00");
    }
}
