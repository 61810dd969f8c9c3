//! `/api/auth/sessions`: a user lists and revokes their own sessions.
//!
//! Another user's session id answers 404, exactly like an unknown one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::end_session;
use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{AuthUser, ClientMeta};
use crate::state::AppState;
use crate::store::AuditEvent;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/sessions", get(list))
        .route("/api/auth/sessions/{id}", delete(revoke))
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: Uuid,
    /// Login time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last activity.
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// IP at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Whether this is the session of the presented token.
    pub current: bool,
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions, oldest first", body = [SessionView]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<SessionView>>> {
    let sessions = state
        .cache
        .list_sessions(user.user_id, state.now(), state.timeouts)
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.id == user.session_id,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    ))
}

/// End one of the caller's sessions and revoke its refresh tokens.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such session of the caller", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    if state.cache.session_owner(id).await? != Some(user.user_id) {
        return Err(Error::NotFound);
    }
    end_session(&state, user.user_id, id, "session_revoked").await?;
    state
        .audit(AuditEvent {
            user_id: Some(user.user_id),
            event: "session_revoked",
            result: "success",
            ip: meta.ip,
            user_agent: meta.user_agent,
            request_id: meta.request_id,
            client_request_id: meta.client_request_id,
            metadata: json!({ "session_id": id, "current": id == user.session_id }),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}
