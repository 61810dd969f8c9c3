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
#[derive(Debug, Clone)]
pub struct ClientMeta {
    /// Client IP, from the socket or the trusted `X-Forwarded-For` entry.
    pub ip: Option<String>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The request id (the service's own).
    pub request_id: Option<String>,
    /// The `X-Request-Id` the client sent, if any.
    pub client_request_id: Option<String>,
    /// The address as rate limits key it (see [`rate_key`]).
    pub rate_key: String,
}

impl ClientMeta {
    /// The client's address as a rate-limit key.
    pub fn ip_key(&self) -> &str {
        &self.rate_key
    }
}

/// The rate-limit key of an address: an IPv6 client is keyed by its /64, the block one subscriber gets
/// (a host picks any address in it, so keying each address would multiply every limit by 2^64).
pub fn rate_key(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
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
        let ip = client_ip(parts, state.config.trusted_proxy_hops.unwrap_or(0));
        Ok(Self {
            rate_key: rate_key(ip.as_deref()),
            ip,
            user_agent: header_str(parts, header::USER_AGENT.as_str()),
            request_id: header_str(parts, "x-request-id"),
            client_request_id: header_str(parts, crate::http::CLIENT_REQUEST_ID)
                .map(|id| id.chars().take(128).collect()),
        })
    }
}

/// A caller with a valid access token and a live session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user.
    pub user_id: Uuid,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// The user's cached profile (JSON), read with the session check; `None` when not cached.
    pub cached_profile: Option<String>,
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
        let cached_profile = check_session(parts, state, user_id, session_id).await?;
        Ok(Self {
            user_id,
            session_id,
            cached_profile,
        })
    }
}

/// Checks (and slides) a token's session: alive and owned by `user_id`, else `Unauthorized`; returns the
/// user's cached profile, read in the same round trip. A session found timed out is ended for good: its
/// refresh tokens are revoked and the expiry audited.
pub(crate) async fn check_session(
    parts: &mut Parts,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<String>, Error> {
    match state
        .cache
        .touch_session(session_id, user_id, state.now(), state.timeouts)
        .await?
    {
        SessionState::Alive {
            user_id: owner,
            profile,
        } if owner == user_id => Ok(profile),
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

#[cfg(test)]
mod rate_key_tests {
    use super::rate_key;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_by_address() {
        assert_eq!(rate_key(Some("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_eq!(rate_key(Some("2001:db8:1:2:ffff:1:2:3")), "2001:db8:1:2::/64");
        assert_eq!(rate_key(Some("::ffff:203.0.113.7")), "203.0.113.7", "IPv4-mapped");
        assert_eq!(rate_key(Some("203.0.113.7")), "203.0.113.7");
        assert_eq!(rate_key(None), "unknown");
        assert_eq!(rate_key(Some("not an address")), "unknown");
    }
}
