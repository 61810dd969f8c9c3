//! The HTTP layer: one module per resource, each with its own `router()`, assembled here with the
//! cross-cutting middleware: request ids, JSON request logs, security headers, metrics, a body size limit,
//! and (only when enabled) fault injection on the API routes.
//!
//! Only what needs the matched route (metrics) or applies to some routes (fault injection) is a layer of
//! the router; the rest wraps the routed application once, as one tower stack. axum's `Router::layer`
//! wraps every route in a boxed service of its own, and a request clones each box it passes through:
//! with a dozen layers that was a dozen allocations and a sixth of `/me`'s CPU (measured with `perf`).

pub mod account;
pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod gdpr;
pub mod openapi;
pub mod ops;
pub mod recheck;
pub mod sessions;
pub mod twofactor;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rand::Rng as _;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::http::error::ErrorBody;
use crate::state::AppState;

/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024;

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::router())
        .merge(sessions::router())
        .merge(account::router())
        .merge(twofactor::router())
        .merge(gdpr::router());
    // Only a process started with fault injection pays for its middleware (the configuration is fixed at
    // start; production refuses it).
    let api = if state.config.fault_injection_active() {
        api.layer(middleware::from_fn_with_state(state.clone(), inject_faults))
    } else {
        api
    };
    let routed = Router::new()
        .merge(api)
        // Outside fault injection: the incident runbook must work while a canary drill injects faults.
        .merge(admin::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .with_state(state);
    let application = ServiceBuilder::new()
        // Synchronous maps (tower's): no boxed future per request, unlike axum's `map_request`.
        .map_request(set_aside_client_request_id)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: query strings are not logged, they could carry secrets.
                    tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .map_response(security_headers)
        // Bounds how long a request may wait (e.g. queued for the password hasher) before it is abandoned.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(routed);
    // A router again (what `axum::serve` and the tests take), whose every request goes to the stack.
    Router::new().fallback_service(application)
}

/// What every answer says about itself to browsers and caches.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
    (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
];

/// Sets [`SECURITY_HEADERS`] on every answer, and `Cache-Control: no-store` where the handler set none:
/// tokens and personal data must not be cached (the JWKS sets its own short max-age).
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The header a client's own `X-Request-Id` moves to: every request gets an id of the service's making,
/// so a client cannot choose the id its records are filed under; its own stays in the audit record apart.
pub const CLIENT_REQUEST_ID: &str = "x-client-request-id";

fn set_aside_client_request_id(mut req: Request<Body>) -> Request<Body> {
    let headers = req.headers_mut();
    headers.remove(CLIENT_REQUEST_ID);
    if let Some(theirs) = headers.remove("x-request-id") {
        headers.insert(CLIENT_REQUEST_ID, theirs);
    }
    req
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: "not_found",
            message: "not found".into(),
        }),
    )
}

async fn track_metrics(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, &method, &status])
        .inc();
    state
        .metrics
        .http_duration
        .with_label_values(&[&route, &method])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Adds latency and/or answers 500 for a fraction of API requests; a no-op unless the process was started
/// with `--enable-fault-injection` (which configuration refuses in production).
async fn inject_faults(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let cfg = &state.config;
    if !cfg.fault_injection_active() {
        return next.run(req).await;
    }
    if cfg.fault_latency_ms > 0 {
        state.metrics.faults.with_label_values(&["latency"]).inc();
        tokio::time::sleep(Duration::from_millis(cfg.fault_latency_ms)).await;
    }
    if cfg.fault_error_rate > 0.0 && rand::thread_rng().gen_bool(cfg.fault_error_rate) {
        state.metrics.faults.with_label_values(&["error"]).inc();
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(ErrorBody {
                error: "injected_fault",
                message: "fault injected for a canary drill".into(),
            }),
        )
            .into_response();
    }
    next.run(req).await
}
