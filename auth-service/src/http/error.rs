//! The API error type and its mapping to responses.
//!
//! Every handler returns [`Error`]; its `IntoResponse` gives a JSON body `{"error": code, "message": text}`.
//! 5xx details are logged with their cause chain and never sent to the client.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: &'static str,
    /// Human-readable text.
    pub message: String,
}

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong email or password, or no such account: one answer for both.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Missing, invalid or expired bearer token, or an ended session.
    #[error("authentication required")]
    Unauthorized,
    /// The refresh token is unknown, expired, revoked or reused.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// A single-use token (verification, reset) that is unknown, used, expired or forged.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Authenticated but not allowed, e.g. `email_not_verified`.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// A second factor is missing (`second_factor_required`) or wrong (`invalid_code`).
    #[error("{}", if *.0 == "invalid_code" { "invalid second-factor code" } else { "a second factor is required" })]
    SecondFactor(&'static str),
    /// The request body is not what the endpoint expects.
    #[error("{0}")]
    BadRequest(String),
    /// A field fails validation.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// No such resource (or not the caller's).
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write.
    #[error("conflict")]
    Conflict,
    /// A rate limit is exceeded.
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    /// Too many failed logins; the account is locked for a while.
    #[error("too many failed attempts; try again later")]
    Locked { retry_after: u64 },
    /// A dependency (Redis) is unavailable.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A check the request needs cannot be made now (e.g. `breach_check_unavailable`): 503, try again.
    #[error("{message}")]
    TryLater { code: &'static str, message: String },
    /// Anything else; logged, never shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::Conflict;
            }
        }
        Error::Internal(anyhow::Error::new(e).context("database error"))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Unavailable(anyhow::Error::new(e).context("redis error"))
    }
}

impl From<crate::password::HashError> for Error {
    fn from(e: crate::password::HashError) -> Self {
        Error::Internal(anyhow::Error::new(e))
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::InvalidGrant => (StatusCode::UNAUTHORIZED, "invalid_grant"),
            Error::InvalidToken => (StatusCode::BAD_REQUEST, "invalid_token"),
            Error::SecondFactor(code) => (StatusCode::UNAUTHORIZED, code),
            Error::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict => (StatusCode::CONFLICT, "conflict"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::TryLater { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Error::Internal(e) | Error::Unavailable(e) => {
                tracing::error!(error = format!("{e:#}"), status = status.as_u16(), "request failed");
            }
            _ => {}
        }
        let body = ErrorBody {
            error: code,
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Error::RateLimited { retry_after } | Error::Locked { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Error::TryLater { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(60));
            }
            Error::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// Handler result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
