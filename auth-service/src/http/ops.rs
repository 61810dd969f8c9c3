//! Operational endpoints: `/health`, `/ready`, `/metrics`, `/version`, the JWKS and token introspection.
//!
//! `/health` only says the process answers; `/ready` checks PostgreSQL, the migrations and Redis, each
//! with a short timeout, and answers 503 when any of them fails so a load balancer stops routing here.
//! `/version` names the signing kid and every kid that verifies, and `POST /api/auth/introspect` says
//! whether the live key set accepts a token: together they let a key rotation prove each of its steps.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{Error, ErrorBody};
use crate::http::extract::{ApiJson, ClientMeta};
use crate::state::AppState;
use crate::tokens::{self, TokenError};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/auth/introspect", post(introspect))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Process liveness; no dependencies are checked.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness and the result of each check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok` or what failed, for PostgreSQL.
    pub postgres: String,
    /// `ok`, `pending` or `unknown`, for the migrations.
    pub migrations: String,
    /// `ok` or what failed, for Redis.
    pub redis: String,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// PostgreSQL reachable, migrations applied, Redis reachable.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = Ready), (status = 503, description = "A dependency is down", body = Ready)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let pg = tokio::time::timeout(CHECK_TIMEOUT, state.db.readiness());
    let redis = tokio::time::timeout(CHECK_TIMEOUT, state.cache.ping());
    let (pg, redis) = tokio::join!(pg, redis);
    let (postgres, migrations) = match pg {
        Err(_) => ("timeout".to_owned(), "unknown".to_owned()),
        Ok((Err(e), _)) => {
            tracing::warn!(error = %e, "readiness: postgres");
            ("unreachable".to_owned(), "unknown".to_owned())
        }
        Ok((Ok(()), Ok(true))) => ("ok".to_owned(), "ok".to_owned()),
        Ok((Ok(()), Ok(false))) => ("ok".to_owned(), "pending".to_owned()),
        Ok((Ok(()), Err(e))) => {
            tracing::warn!(error = %e, "readiness: migrations");
            ("ok".to_owned(), "unknown".to_owned())
        }
    };
    let redis = match redis {
        Err(_) => "timeout".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: redis");
            "unreachable".to_owned()
        }
        Ok(Ok(())) => "ok".to_owned(),
    };
    let ok = postgres == "ok" && migrations == "ok" && redis == "ok";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            status: if ok { "ready" } else { "not_ready" },
            postgres,
            migrations,
            redis,
        }),
    )
}

/// Prometheus text exposition; with `METRICS_TOKEN` set, only for a scraper presenting it as a bearer token.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, content_type = "text/plain"),
    (status = 401, description = "`METRICS_TOKEN` is set and the request does not carry it", body = ErrorBody),
))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = state.config.metrics_token.as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !tokens::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Error::Unauthorized.into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Build and deployment identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// The release: `SERVICE_VERSION` (the image tag the deployment runs), else the build's version.
    pub version: String,
    /// The version the binary was built as.
    pub build_version: &'static str,
    /// Git commit, when the build recorded one (`AUTH_SERVICE_GIT_SHA` at build time).
    pub git_sha: Option<&'static str>,
    /// `DEPLOYMENT_LABEL`, e.g. `stable` or `canary`.
    pub deployment: String,
    /// `APP_ENV`.
    pub environment: String,
    /// The kid of the key that signs new access tokens.
    pub signing_kid: String,
    /// Every kid in the JWKS: the signing key and the verify-only keys.
    pub verify_kids: Vec<String>,
}

/// Build version, deployment label and the active signing key id.
#[utoipa::path(get, path = "/version", tag = "ops", responses((status = 200, body = Version)))]
pub async fn version(State(state): State<AppState>) -> Json<Version> {
    let keys = state.keys.current();
    Json(Version {
        version: state
            .config
            .service_version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        build_version: env!("CARGO_PKG_VERSION"),
        git_sha: option_env!("AUTH_SERVICE_GIT_SHA"),
        deployment: state.config.deployment_label.clone(),
        environment: state.config.app_env.clone(),
        signing_kid: keys.signing_kid().to_owned(),
        verify_kids: keys.verify_kids().map(str::to_owned).collect(),
    })
}

/// The public keys that verify access tokens (signing key and verify-only keys).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "ops",
    responses((status = 200, description = "JWK set", content_type = "application/json")))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let cache = format!("public, max-age={}", state.config.jwks_max_age);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("max-age=60")),
            ),
        ],
        state.keys.current().jwks_json().to_string(),
    )
        .into_response()
}

/// A token to check.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// A compact JWS (ES256, EdDSA, PS256 or RS256, by its key).
    pub token: String,
}

/// Whether the live key set accepts a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the signature verifies under a key of the set and iss, aud, exp and nbf are valid.
    pub active: bool,
    /// The kid that verified it (active tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The token's subject (active tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The token's expiry, seconds since the epoch (active tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Why it is refused (inactive tokens only): `malformed`, `algorithm_not_accepted`, `unknown_kid`,
    /// `invalid_signature`, `invalid_issuer`, `invalid_audience`, `missing_claim`, `invalid`, `expired`
    /// or `not_yet_valid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Checks a token's signature against the live key set (any kid in it, with that key's algorithm) and its iss, aud, exp and
/// nbf, with the configured leeway, and for a user's token (one with a `sid`) that its session is still
/// live. A token without a session (a key rotation's test token, whose subject is no user) is judged by
/// its signature and claims alone. The caller authenticates (RFC 7662): an operator token, as for the admin
/// API, so the endpoint is no oracle for whoever holds a token.
#[utoipa::path(post, path = "/api/auth/introspect", tag = "ops", request_body = IntrospectRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "Active, with kid, sub and exp; or inactive, with the reason", body = Introspection),
        (status = 400, description = "Not a JSON body with a `token` string", body = ErrorBody),
        (status = 401, description = "The caller did not authenticate (an operator token, as for the admin API)", body = ErrorBody),
        (status = 403, description = "The caller's token has no `admin` role", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    meta: ClientMeta,
    _caller: crate::http::admin::AdminCaller,
    ApiJson(req): ApiJson<IntrospectRequest>,
) -> Result<Json<Introspection>, Error> {
    let cfg = &state.config;
    if let Some(retry_after) = state
        .cache
        .rate_limit(
            "introspect_ip",
            meta.ip_key(),
            cfg.rate_limit_introspect_per_ip,
            cfg.rate_limit_window,
        )
        .await?
    {
        state.metrics.rate_limited.with_label_values(&["introspect_ip"]).inc();
        return Err(Error::RateLimited { retry_after });
    }
    let keys = state.keys.current();
    let inactive = |reason: &'static str| Introspection {
        active: false,
        kid: None,
        sub: None,
        exp: None,
        reason: Some(reason),
    };
    let answer = match tokens::introspect(&keys, &state.jwt, req.token.trim(), state.now()) {
        Ok((kid, claims)) => {
            // A user's token is only as live as its session: after logout or revocation it is inactive
            // though its signature and expiry still hold.
            let session = claims.sid.as_deref().map(|sid| uuid::Uuid::parse_str(sid).ok());
            let revoked = match session {
                None => false,
                Some(None) => true,
                Some(Some(sid)) => state.cache.session_owner(sid).await?.is_none(),
            };
            if revoked {
                inactive("session_revoked")
            } else {
                Introspection {
                    active: true,
                    kid: Some(kid),
                    sub: Some(claims.sub),
                    exp: Some(claims.exp),
                    reason: None,
                }
            }
        }
        Err(e) => inactive(reason(&e)),
    };
    Ok(Json(answer))
}

pub(crate) fn reason(error: &TokenError) -> &'static str {
    match error {
        TokenError::Malformed => "malformed",
        TokenError::Algorithm => "algorithm_not_accepted",
        TokenError::Type => "invalid",
        TokenError::UnknownKid => "unknown_kid",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::LifetimeTooLong => "lifetime_too_long",
        TokenError::Invalid(kind) => match kind.split('(').next().unwrap_or_default() {
            "InvalidSignature" => "invalid_signature",
            "InvalidIssuer" => "invalid_issuer",
            "InvalidAudience" => "invalid_audience",
            "MissingRequiredClaim" => "missing_claim",
            _ => "invalid",
        },
    }
}
