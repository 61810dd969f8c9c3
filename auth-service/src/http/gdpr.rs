//! `/api/gdpr`: consent records (append-only), the export of everything held about the caller (JSON, or CSV
//! with `?format=csv`), and erasure (soft delete at once; `auth-service purge` hard-deletes after the
//! retention period). Every request is audited as `gdpr_request`.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::http::auth::audit;
use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{ApiJson, AuthUser, ClientMeta};
use crate::password::Password;
use crate::state::AppState;
use crate::store::accounts::Device;
use crate::store::gdpr::{AuditRecord, Consent};

/// Consent purposes.
pub const PURPOSES: [&str; 4] = ["terms", "privacy", "marketing", "data_processing"];

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/gdpr/consent", post(record_consent).get(list_consents))
        .route("/api/gdpr/export", get(export))
        .route("/api/gdpr/delete", post(delete_account))
}

/// A consent given or withdrawn.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentRequest {
    /// `terms`, `privacy`, `marketing` or `data_processing`.
    pub purpose: String,
    /// Version of the document.
    pub version: String,
    /// true to grant, false to withdraw.
    pub granted: bool,
}

/// The caller's consent history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentsResponse {
    /// Every record, oldest first; the latest per purpose is in force.
    pub records: Vec<Consent>,
}

/// A session in the export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportSession {
    /// Session id.
    pub id: uuid::Uuid,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last activity.
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// IP at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
}

/// Everything the service holds about the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    /// Account.
    #[schema(value_type = Object)]
    pub profile: serde_json::Value,
    /// Consent records.
    pub consents: Vec<Consent>,
    /// Live sessions.
    pub sessions: Vec<ExportSession>,
    /// Devices.
    pub devices: Vec<Device>,
    /// Audit events about the account.
    pub audit_events: Vec<AuditRecord>,
}

/// Export format.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Erasure request: the password, so a stolen session alone cannot erase an account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteRequest {
    /// The current password.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
}

async fn gdpr_audit(state: &AppState, meta: &ClientMeta, user: uuid::Uuid, kind: &str) {
    let mut event = audit(meta, "gdpr_request", "success");
    event.user_id = Some(user);
    event.metadata = json!({ "request": kind });
    state.audit(event).await;
}

/// Record a consent or its withdrawal (a new record either way).
#[utoipa::path(post, path = "/api/gdpr/consent", tag = "gdpr", security(("bearer" = [])),
    request_body = ConsentRequest,
    responses(
        (status = 201, description = "Recorded", body = Consent),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Unknown purpose or empty version", body = ErrorBody),
    ))]
pub async fn record_consent(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> Result<(StatusCode, Json<Consent>)> {
    if !PURPOSES.contains(&req.purpose.as_str()) {
        return Err(Error::Unprocessable {
            code: "invalid_purpose",
            message: format!("purpose must be one of {}", PURPOSES.join(", ")),
        });
    }
    let version = req.version.trim();
    if version.is_empty() || version.len() > 64 {
        return Err(Error::Unprocessable {
            code: "invalid_version",
            message: "version must be 1 to 64 characters".into(),
        });
    }
    let now = state.now();
    let id = state
        .db
        .record_consent(
            user.user_id,
            &req.purpose,
            version,
            req.granted,
            meta.ip.as_deref(),
            meta.user_agent.as_deref(),
            now,
        )
        .await?;
    gdpr_audit(&state, &meta, user.user_id, "consent").await;
    Ok((
        StatusCode::CREATED,
        Json(Consent {
            id,
            purpose: req.purpose,
            policy_version: version.to_owned(),
            granted: req.granted,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            recorded_at: now,
        }),
    ))
}

/// The caller's consent records.
#[utoipa::path(get, path = "/api/gdpr/consent", tag = "gdpr", security(("bearer" = [])),
    responses(
        (status = 200, description = "History", body = ConsentsResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn list_consents(State(state): State<AppState>, user: AuthUser) -> Result<Json<ConsentsResponse>> {
    Ok(Json(ConsentsResponse {
        records: state.db.consents(user.user_id).await?,
    }))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Flattens the export into `section,index,field,value` rows.
fn to_csv(export: &ExportResponse) -> Result<String> {
    let value = serde_json::to_value(export).map_err(|e| Error::Internal(e.into()))?;
    let mut out = String::from("section,index,field,value\n");
    let mut row = |section: &str, index: usize, field: &str, v: &serde_json::Value| {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "{},{index},{},{}\n",
            csv_field(section),
            csv_field(field),
            csv_field(&v)
        ));
    };
    if let Some(profile) = value["profile"].as_object() {
        for (k, v) in profile {
            row("profile", 0, k, v);
        }
    }
    for section in ["consents", "sessions", "devices", "audit_events"] {
        for (i, item) in value[section].as_array().into_iter().flatten().enumerate() {
            for (k, v) in item.as_object().into_iter().flatten() {
                row(section, i, k, v);
            }
        }
    }
    Ok(out)
}

/// Everything held about the caller, as JSON or (`?format=csv`) CSV.
#[utoipa::path(get, path = "/api/gdpr/export", tag = "gdpr", security(("bearer" = [])),
    params(("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses(
        (status = 200, description = "The export", body = ExportResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    let sessions = state
        .cache
        .list_sessions(user.user_id, state.now(), state.timeouts)
        .await?
        .into_iter()
        .map(|s| ExportSession {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    let export = ExportResponse {
        profile: json!({
            "id": row.id,
            "email": row.email,
            "email_verified": row.email_verified,
            "created_at": row.created_at,
            "phone": state.db.phone(user.user_id).await?,
            "two_factor_enabled": state.db.totp_credential(user.user_id).await?.is_some_and(|c| c.confirmed),
        }),
        consents: state.db.consents(user.user_id).await?,
        sessions,
        devices: state.db.devices(user.user_id).await?,
        audit_events: state.db.audit_of(user.user_id).await?,
    };
    gdpr_audit(&state, &meta, user.user_id, "export").await;
    if q.format.as_deref() == Some("csv") {
        let csv = to_csv(&export)?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"export.csv\""),
            ],
            csv,
        )
            .into_response());
    }
    Ok(Json(export).into_response())
}

/// Erase the account: at once, login becomes impossible, sessions end, tokens are revoked and nothing is
/// returned any more; `auth-service purge` removes the data after the retention period.
#[utoipa::path(post, path = "/api/gdpr/delete", tag = "gdpr", security(("bearer" = [])),
    request_body = DeleteRequest,
    responses(
        (status = 202, description = "Deleted; purged after the retention period"),
        (status = 401, description = "Not authenticated or wrong password", body = ErrorBody),
        (status = 429, description = "Rate limited or account locked, as at sign-in; see Retry-After", body = ErrorBody),
    ))]
pub async fn delete_account(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<StatusCode> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    crate::http::recheck::recheck_password(&state, &meta, &row, "gdpr_delete", &req.password).await?;
    state.db.soft_delete_user(user.user_id, state.now()).await?;
    state.cache.delete_all_sessions(user.user_id).await?;
    state.cache.forget_profile(user.user_id).await?;
    gdpr_audit(&state, &meta, user.user_id, "delete").await;
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
