//! Request extractors: JSON bodies with our error type, client metadata, and the authenticated user.
//!
//! [`AuthUser`] is the only way a handler learns who is calling: it verifies the bearer token, then checks
//! (and slides) the session in Redis, so a logged-out, revoked or timed-out session stops working at once
//! even though its access token has not expired.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::http::error::Error;
use crate::state::AppState;
use crate::store::redis::SessionState;
use crate::store::AuditEvent;
use crate::tokens::{verify_access, TokenError};

/// `Json<T>` whose rejection is our [`Error`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

/// Who is calling, for rate limits and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// Client IP, from the socket or the trusted `X-Forwarded-For` entry.
    pub ip: Option<String>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The request id (the service's own).
    pub request_id: Option<String>,
    /// The `X-Request-Id` the client sent, if any.
    pub client_request_id: Option<String>,
}

impl ClientMeta {
    /// The IP as a rate-limit key.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

fn header_str(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// The client IP: `hops` entries from the right of `X-Forwarded-For` when behind that many proxies,
/// else the socket peer.
fn client_ip(parts: &Parts, hops: usize) -> Option<String> {
    if hops > 0 {
        let forwarded: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if !forwarded.is_empty() {
            let idx = forwarded.len().saturating_sub(hops);
            if let Ok(ip) = forwarded[idx].parse::<std::net::IpAddr>() {
                return Some(ip.to_string());
            }
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
}

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self {
            ip: client_ip(parts, state.config.trusted_proxy_hops),
            user_agent: header_str(parts, header::USER_AGENT.as_str()),
            request_id: header_str(parts, "x-request-id"),
            client_request_id: header_str(parts, crate::http::CLIENT_REQUEST_ID)
                .map(|id| id.chars().take(128).collect()),
        })
    }
}

/// A caller with a valid access token and a live session.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user.
    pub user_id: Uuid,
    /// The session the token belongs to.
    pub session_id: Uuid,
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        let keys = state.keys.current();
        let claims = verify_access(&keys, &state.jwt, token, state.now()).map_err(|e: TokenError| {
            tracing::debug!(reason = %e, "access token refused");
            Error::Unauthorized
        })?;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| Error::Unauthorized)?;
        let session_id = Uuid::parse_str(&claims.sid).map_err(|_| Error::Unauthorized)?;
        check_session(parts, state, user_id, session_id).await?;
        Ok(Self { user_id, session_id })
    }
}

/// Checks (and slides) a token's session: alive and owned by `user_id`, else `Unauthorized`. A session
/// found timed out is ended for good: its refresh tokens are revoked and the expiry audited.
pub(crate) async fn check_session(
    parts: &mut Parts,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<(), Error> {
    match state
        .cache
        .touch_session(session_id, state.now(), state.timeouts)
        .await?
    {
        SessionState::Alive { user_id: owner } if owner == user_id => Ok(()),
        ended @ (SessionState::IdleTimeout | SessionState::AbsoluteTimeout) => {
            // The session just ended; its refresh tokens must not outlive it.
            state
                .db
                .revoke_family(session_id, "session_timeout", state.now())
                .await?;
            let meta = ClientMeta::from_request_parts(parts, state).await?;
            let reason = if ended == SessionState::IdleTimeout {
                "idle_timeout"
            } else {
                "absolute_timeout"
            };
            state
                .audit(AuditEvent {
                    user_id: Some(user_id),
                    event: "session_expired",
                    result: reason,
                    ip: meta.ip,
                    user_agent: meta.user_agent,
                    request_id: meta.request_id,
                    client_request_id: meta.client_request_id,
                    metadata: serde_json::json!({ "session_id": session_id }),
                })
                .await;
            Err(Error::Unauthorized)
        }
        _ => Err(Error::Unauthorized),
    }
}
