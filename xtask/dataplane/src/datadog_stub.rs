//! A Datadog API stand-in for the sandbox (Datadog has no offline server): it answers the three calls suma
//! makes, checks what Datadog checks (both keys, JSON bodies), and records every event it receives, one JSON
//! object per line, so the sandbox's runs and tests can read what suma reported.
//!
//! - `GET /api/v1/monitor`: the monitors in the monitors file (a JSON array, read on every request, `[]`
//!   when missing), filtered by `monitor_tags` like Datadog does (every tag must match);
//! - `POST /api/v1/events`: appended to the events file, answered `202` like Datadog;
//! - `GET /api/v1/query`: an empty series list (the sandbox gates canaries with Prometheus).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// What the stub needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_key: String,
    pub app_key: String,
    pub monitors_file: PathBuf,
    pub events_file: PathBuf,
}

#[derive(Clone)]
struct Stub {
    config: Arc<Config>,
    /// Serialises appends so two events never interleave in the file.
    events: Arc<Mutex<()>>,
}

pub fn router(config: Config) -> Router {
    let stub = Stub {
        config: Arc::new(config),
        events: Arc::default(),
    };
    Router::new()
        .route("/api/v1/monitor", get(monitors))
        .route("/api/v1/events", post(event))
        .route("/api/v1/query", get(query))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "this Datadog stand-in does not serve that path") })
        .with_state(stub)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": [message] }))).into_response()
}

/// Datadog's answer to a request without valid keys, or `None` when the keys are right.
fn denied(stub: &Stub, headers: &HeaderMap, needs_app_key: bool) -> Option<Response> {
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

async fn monitors(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    let text = tokio::fs::read_to_string(&stub.config.monitors_file)
        .await
        .unwrap_or_else(|_| "[]".to_owned());
    let all: Vec<Value> = match serde_json::from_str(&text) {
        Ok(all) => all,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "{} is not a JSON array of monitors: {e}",
                    stub.config.monitors_file.display()
                ),
            )
        }
    };
    let filter = params
        .iter()
        .find(|(k, _)| k == "monitor_tags")
        .map(|(_, v)| v.as_str());
    let page = params
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let size = params
        .iter()
        .find(|(k, _)| k == "page_size")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|m| has_tags(m, filter))
        .skip(page * size)
        .take(size)
        .collect();
    Json(matching).into_response()
}

async fn event(State(stub): State<Stub>, headers: HeaderMap, body: String) -> Response {
    if let Some(denied) = denied(&stub, &headers, false) {
        return denied;
    }
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    if event["title"].as_str().is_none_or(str::is_empty) || event["text"].as_str().is_none() {
        return error(StatusCode::BAD_REQUEST, "an event needs `title` and `text`");
    }
    let _guard = stub.events.lock().await;
    let line = format!("{event}\n");
    let written = async {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stub.config.events_file)
            .await?;
        file.write_all(line.as_bytes()).await
    }
    .await;
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

async fn query(State(stub): State<Stub>, headers: HeaderMap) -> Response {
    if let Some(denied) = denied(&stub, &headers, true) {
        return denied;
    }
    Json(json!({ "status": "ok", "series": [] })).into_response()
}

#[cfg(test)]
mod tests {
    use super::has_tags;
    use serde_json::json;

    #[test]
    fn every_filter_tag_must_match() {
        let m = json!({"tags": ["service:auth-service", "auto-rollback:true"]});
        assert!(has_tags(&m, None));
        assert!(has_tags(&m, Some("service:auth-service,auto-rollback:true")));
        assert!(!has_tags(&m, Some("service:auth-service,env:production")));
        assert!(!has_tags(&json!({}), Some("auto-rollback:true")));
    }
}
