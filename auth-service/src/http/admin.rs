//! `/api/admin`: what the security-incident runbook calls. The audit-log query, locking and unlocking an
//! account, and revoking every refresh token or every session, globally or of one user.
//!
//! Callers present `Authorization: Bearer <JWT>` whose `roles` claim contains `admin` ([`AdminCaller`]).
//! The token is verified like an access token (a kid of the live key set and its algorithm, issuer, audience, times)
//! and must not live longer than 15 minutes (`exp - iat`). suma mints *operator tokens* itself with the
//! environment's current signing key: `sub` = `ops:<actor>`, no `sid`, so no session is checked. A token
//! that does carry a `sid` (a user's own token, should a user ever hold the role) must still belong to a
//! live session of its `sub`. Every other endpoint keeps requiring a session (`AuthUser`), so an operator
//! token opens the admin API only.
//!
//! Every call is audited (`admin_action`, metadata `action`, `actor`, `target`, `count`), refused ones
//! included, and counted in `auth_admin_actions_total{action,result}`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::{account_key, normalize_email};
use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{bearer, check_session, ApiJson, ClientMeta};
use crate::state::AppState;
use crate::store::admin::{AuditFilter, AuditRecord};
use crate::store::AuditEvent;
use crate::tokens::verify_admin;

/// The actions of the admin API, as they appear in metrics and audit records.
pub const ACTIONS: [&str; 5] = [
    "audit_query",
    "lock_user",
    "unlock_user",
    "revoke_refresh_tokens",
    "revoke_sessions",
];

/// Largest page of the audit query.
pub const MAX_AUDIT_LIMIT: i64 = 1000;
/// Page size of the audit query when `limit` is absent.
pub const DEFAULT_AUDIT_LIMIT: i64 = 100;
/// Longest timed lock, in minutes (one year); longer means until unlocked.
pub const MAX_LOCK_MINUTES: u32 = 525_600;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/audit", get(audit))
        .route("/api/admin/audit/verify", get(audit_verify))
        .route("/api/admin/users/{user_id}/lock", post(lock))
        .route("/api/admin/users/{user_id}/unlock", post(unlock))
        .route("/api/admin/refresh-tokens/revoke", post(revoke_refresh_tokens))
        .route("/api/admin/sessions/revoke", post(revoke_sessions))
}

/// The action a path of this module performs.
fn action_of(path: &str) -> &'static str {
    if path == "/api/admin/audit" {
        "audit_query"
    } else if path.ends_with("/unlock") {
        "unlock_user"
    } else if path.ends_with("/lock") {
        "lock_user"
    } else if path.starts_with("/api/admin/refresh-tokens") {
        "revoke_refresh_tokens"
    } else if path.starts_with("/api/admin/sessions") {
        "revoke_sessions"
    } else if path == "/api/auth/introspect" {
        "introspect"
    } else {
        "unknown"
    }
}

/// A caller of the admin API: a valid token with the `admin` role (and, when it names a session, a live
/// one).
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// `sub` of the token: `ops:<actor>` for an operator token, a user id otherwise.
    pub actor: String,
    /// `jti` of the token, when present.
    pub token_id: Option<String>,
    /// The session of a user's token; `None` for an operator token.
    pub session_id: Option<Uuid>,
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let action = action_of(parts.uri.path());
        let mut actor = None;
        let outcome = authenticate(parts, state, &mut actor).await;
        if let Err(error) = &outcome {
            state.metrics.admin_actions.with_label_values(&[action, "denied"]).inc();
            let meta = ClientMeta::from_request_parts(parts, state).await?;
            let (result, reason) = match error {
                Error::Forbidden { .. } => ("forbidden", "no admin role"),
                _ => ("unauthorized", "missing or invalid token"),
            };
            state
                .audit(AuditEvent {
                    user_id: None,
                    event: "admin_action",
                    result,
                    ip: meta.ip,
                    user_agent: meta.user_agent,
                    request_id: meta.request_id,
                    client_request_id: meta.client_request_id,
                    metadata: json!({ "action": action, "actor": actor, "reason": reason }),
                })
                .await;
        }
        outcome
    }
}

/// Verifies the caller; `actor` is set as soon as a valid token names one.
async fn authenticate(parts: &mut Parts, state: &AppState, actor: &mut Option<String>) -> Result<AdminCaller> {
    let token = bearer(parts).ok_or(Error::Unauthorized)?;
    let keys = state.keys.current();
    let claims = verify_admin(&keys, &state.jwt, token, state.now()).map_err(|e| {
        tracing::info!(reason = crate::http::ops::reason(&e), "admin token refused");
        Error::Unauthorized
    })?;
    *actor = Some(claims.sub.clone());
    if !claims.is_admin() {
        return Err(Error::Forbidden {
            code: "forbidden",
            message: "the token does not carry the `admin` role".into(),
        });
    }
    let session_id = match &claims.sid {
        None => None,
        Some(sid) => {
            let user_id = Uuid::parse_str(&claims.sub).map_err(|_| Error::Unauthorized)?;
            let session_id = Uuid::parse_str(sid).map_err(|_| Error::Unauthorized)?;
            check_session(parts, state, user_id, session_id).await?;
            Some(session_id)
        }
    };
    Ok(AdminCaller {
        actor: claims.sub,
        token_id: claims.jti,
        session_id,
    })
}

/// What an action did, for its audit record.
struct Done<T> {
    body: T,
    /// The account acted on, when one.
    user_id: Option<Uuid>,
    /// How many things it affected (events returned, tokens or sessions revoked, accounts locked).
    count: u64,
    /// Further details for the audit record.
    details: Value,
}

/// Audits and counts an action's outcome, then answers it.
async fn finish<T: Serialize>(
    state: &AppState,
    meta: ClientMeta,
    caller: &AdminCaller,
    action: &'static str,
    target: String,
    outcome: Result<Done<T>>,
) -> Result<Json<T>> {
    let (result, user_id, count, details) = match &outcome {
        Ok(done) => ("success", done.user_id, done.count, done.details.clone()),
        Err(error) => (error_result(error), None, 0, json!({ "error": error.to_string() })),
    };
    let mut metadata = json!({
        "action": action,
        "actor": caller.actor,
        "target": target,
        "count": count,
        "token_id": caller.token_id,
    });
    if let (Some(m), Value::Object(d)) = (metadata.as_object_mut(), details) {
        m.extend(d);
    }
    state
        .metrics
        .admin_actions
        .with_label_values(&[action, if outcome.is_ok() { "success" } else { "failed" }])
        .inc();
    state
        .audit(AuditEvent {
            user_id,
            event: "admin_action",
            result,
            ip: meta.ip,
            user_agent: meta.user_agent,
            request_id: meta.request_id,
            client_request_id: meta.client_request_id,
            metadata,
        })
        .await;
    outcome.map(|done| Json(done.body))
}

fn error_result(error: &Error) -> &'static str {
    match error {
        Error::BadRequest(_) => "bad_request",
        Error::NotFound => "not_found",
        _ => "error",
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

/// The query string of `GET /api/admin/audit`; every field is text so that each bad value gets its own
/// message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    user: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// A page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first, by (`created_at`, `id`).
    pub events: Vec<AuditRecord>,
    /// Pass as `after` for the next page; null when this page is the last (for now).
    pub next: Option<String>,
}

/// Encodes a page position: base64url of `<microseconds since the epoch>.<id>`.
fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", at.timestamp_micros(), id.simple()))
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?).ok()?;
    let (micros, id) = text.split_once('.')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::parse_str(id).ok()?,
    ))
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad(format!(
                "`{name}` must be an RFC 3339 time such as 2026-11-23T00:00:00Z, not `{value}`"
            ))
        })
}

/// What the audit query's parameters ask for: the filter, and the `user` as given.
enum UserFilter {
    All,
    Id(Uuid),
    Email(String),
}

fn parse_audit_params(p: &AuditParams) -> Result<(UserFilter, AuditFilter)> {
    let user = match p.user.as_deref().map(str::trim) {
        None | Some("") => UserFilter::All,
        Some(text) => match Uuid::parse_str(text) {
            Ok(id) => UserFilter::Id(id),
            Err(_) if text.contains('@') => UserFilter::Email(normalize_email(text)),
            Err(_) => return Err(bad("`user` must be a user id (UUID) or an email address")),
        },
    };
    let event_type = match p.event_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t)
            if t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(t.to_owned())
        }
        Some(t) => {
            return Err(bad(format!(
                "`type` must be an event type such as `login` or `admin_action` (lower case, digits, `_`), not `{t}`"
            )))
        }
    };
    let since = p.since.as_deref().map(|v| parse_time("since", v)).transpose()?;
    let until = p.until.as_deref().map(|v| parse_time("until", v)).transpose()?;
    if let (Some(since), Some(until)) = (since, until) {
        if since >= until {
            return Err(bad("`since` must be earlier than `until`"));
        }
    }
    let limit = match p.limit.as_deref() {
        None => DEFAULT_AUDIT_LIMIT,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "`limit` must be an integer from 1 to {MAX_AUDIT_LIMIT}, not `{v}`"
                )))
            }
        },
    };
    let after = match p.after.as_deref() {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| bad("`after` is not a cursor from a previous page's `next`"))?),
    };
    Ok((
        user,
        AuditFilter {
            user_ids: None,
            event_type,
            since,
            until,
            after,
            limit,
        },
    ))
}

/// Query the audit log (admin role).
/// Verify the audit log's hash chain (everything written so far is sealed first): each record's link to
/// the one before and the content of every record not redacted by an erasure.
#[utoipa::path(get, path = "/api/admin/audit/verify", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "What the verification found; with `intact` false, `first_break` names the first broken link", body = crate::store::audit::AuditVerification),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
    ))]
pub async fn audit_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
) -> Result<Json<crate::store::audit::AuditVerification>> {
    let outcome = async {
        crate::seal_audit(&state).await;
        let report = state.db.verify_audit().await?;
        Ok(Done {
            count: report.sealed,
            user_id: None,
            details: json!({ "intact": report.intact, "first_break": report.first_break }),
            body: report,
        })
    }
    .await;
    finish(&state, meta, &caller, "audit_verify", "all".into(), outcome).await
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])),
    params(
        ("user" = Option<String>, Query, description = "A user id (UUID) or an email address (every account that has had it)"),
        ("type" = Option<String>, Query, description = "Event type, e.g. `login`, `token_reuse_detected`, `admin_action`"),
        ("since" = Option<String>, Query, description = "RFC 3339; events at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; events before"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of events, oldest first by (created_at, id); `next` pages forward", body = AuditPage),
        (status = 400, description = "A parameter is invalid (the message names it)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
    ))]
pub async fn audit(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>> {
    let params = params.ok().map(|Query(p)| p);
    let target = params
        .as_ref()
        .and_then(|p| p.user.clone())
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "all".into());
    let outcome = async {
        let params = params.ok_or_else(|| {
            bad("unknown or malformed query parameter; accepted: user, type, since, until, limit, after")
        })?;
        let (user, mut filter) = parse_audit_params(&params)?;
        filter.user_ids = match &user {
            UserFilter::All => None,
            UserFilter::Id(id) => Some(vec![*id]),
            UserFilter::Email(email) => Some(state.db.user_ids_by_email(email).await?),
        };
        let mut events = if filter.user_ids.as_ref().is_some_and(Vec::is_empty) {
            Vec::new()
        } else {
            state.db.audit_page(&filter).await?
        };
        let next = if events.len() as i64 > filter.limit {
            events.truncate(filter.limit as usize);
            events.last().map(|e| encode_cursor(e.created_at, e.id))
        } else {
            None
        };
        // A query by address names the person in the trail with no user id to find it by: the account
        // key lets an erasure's purge find and redact it like the account's own records.
        let account = match &user {
            UserFilter::Email(email) => Some(crate::http::auth::account_key(email)),
            _ => None,
        };
        Ok(Done {
            count: events.len() as u64,
            // Not attributed to the account looked at (the target says which): a query must not change
            // the trail it reads, or paging through one account's events would never reach the end.
            user_id: None,
            details: json!({
                "account": account,
                "filter": {
                    "type": filter.event_type,
                    "since": filter.since,
                    "until": filter.until,
                    "limit": filter.limit,
                    "paged": filter.after.is_some(),
                },
            }),
            body: AuditPage { events, next },
        })
    }
    .await;
    finish(&state, meta, &caller, "audit_query", target, outcome).await
}

/// Lock request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LockRequest {
    /// Why (kept with the lock and in the audit log); 1 to 500 characters.
    pub reason: String,
    /// Minutes the lock lasts (1 to 525600); absent or null: until unlocked.
    pub minutes: Option<u32>,
}

/// A lock in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockResponse {
    /// The account.
    pub user_id: Uuid,
    /// When the lock ends; null until unlocked.
    pub locked_until: Option<DateTime<Utc>>,
    /// Always true.
    pub locked: bool,
}

/// An unlocked account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlockResponse {
    /// The account.
    pub user_id: Uuid,
    /// Always false.
    pub locked: bool,
}

fn path_user(path: std::result::Result<Path<Uuid>, PathRejection>) -> Result<Uuid> {
    path.map(|Path(id)| id)
        .map_err(|_| bad("the user id in the path must be a UUID"))
}

fn path_target(path: &std::result::Result<Path<Uuid>, PathRejection>) -> String {
    match path {
        Ok(Path(id)) => id.to_string(),
        Err(_) => "invalid".into(),
    }
}

/// Lock an account (admin role): login is refused, its sessions end and its refresh tokens are revoked.
#[utoipa::path(post, path = "/api/admin/users/{user_id}/lock", tag = "admin", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The account")),
    request_body = LockRequest,
    responses(
        (status = 200, description = "Locked; sessions ended, refresh tokens revoked", body = LockResponse),
        (status = 400, description = "Invalid id, reason or minutes", body = ErrorBody),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn lock(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
    path: std::result::Result<Path<Uuid>, PathRejection>,
    body: std::result::Result<ApiJson<LockRequest>, Error>,
) -> Result<Json<LockResponse>> {
    let target = path_target(&path);
    let outcome = async {
        let user_id = path_user(path)?;
        let ApiJson(req) = body?;
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(bad("`reason` must be 1 to 500 characters"));
        }
        if req.minutes.is_some_and(|m| m == 0 || m > MAX_LOCK_MINUTES) {
            return Err(bad(format!(
                "`minutes` must be from 1 to {MAX_LOCK_MINUTES}; leave it out to lock until unlocked"
            )));
        }
        let now = state.now();
        let until = req.minutes.map(|m| now + chrono::Duration::minutes(i64::from(m)));
        let (_, tokens) = state
            .db
            .admin_lock(user_id, until, reason, &caller.actor, now)
            .await?
            .ok_or(Error::NotFound)?;
        let sessions = state.cache.delete_all_sessions(user_id).await?;
        state.cache.forget_profile(user_id).await?;
        Ok(Done {
            body: LockResponse {
                user_id,
                locked_until: until,
                locked: true,
            },
            user_id: Some(user_id),
            count: 1,
            details: json!({
                "reason": reason,
                "locked_until": until,
                "sessions_ended": sessions,
                "refresh_tokens_revoked": tokens,
            }),
        })
    }
    .await;
    finish(&state, meta, &caller, "lock_user", target, outcome).await
}

/// Unlock an account (admin role): lifts an administrator's lock and clears the failed-login counters.
#[utoipa::path(post, path = "/api/admin/users/{user_id}/unlock", tag = "admin", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The account")),
    responses(
        (status = 200, description = "Unlocked", body = UnlockResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn unlock(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
    path: std::result::Result<Path<Uuid>, PathRejection>,
) -> Result<Json<UnlockResponse>> {
    let target = path_target(&path);
    let outcome = async {
        let user_id = path_user(path)?;
        let email = state
            .db
            .admin_unlock(user_id, state.now())
            .await?
            .ok_or(Error::NotFound)?;
        // The failed-login lockout (Redis) is lifted too, so the account can sign in at once.
        state.cache.login_succeeded(&account_key(&email)).await?;
        Ok(Done {
            body: UnlockResponse { user_id, locked: false },
            user_id: Some(user_id),
            count: 1,
            details: json!({}),
        })
    }
    .await;
    finish(&state, meta, &caller, "unlock_user", target, outcome).await
}

/// Which accounts a bulk revocation covers.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// One account; absent or null: every account.
    pub user_id: Option<Uuid>,
}

/// How many were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeResponse {
    /// Refresh tokens revoked, or sessions ended.
    pub revoked: u64,
}

fn revoke_target(body: &std::result::Result<ApiJson<RevokeRequest>, Error>) -> String {
    match body {
        Ok(ApiJson(RevokeRequest { user_id: Some(id) })) => id.to_string(),
        Ok(_) => "all".into(),
        Err(_) => "invalid".into(),
    }
}

/// Checks the account of a per-user revocation exists; 404 otherwise.
async fn known_user(state: &AppState, user_id: Option<Uuid>) -> Result<()> {
    if let Some(id) = user_id {
        if !state.db.user_exists(id).await? {
            return Err(Error::NotFound);
        }
    }
    Ok(())
}

/// Revoke every refresh token, of one account or of all (admin role).
#[utoipa::path(post, path = "/api/admin/refresh-tokens/revoke", tag = "admin", security(("bearer" = [])),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Every unrevoked refresh token (of the account, or of all) is revoked; a later refresh with any fails", body = RevokeResponse),
        (status = 400, description = "Not a JSON body with an optional `user_id`", body = ErrorBody),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn revoke_refresh_tokens(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
    body: std::result::Result<ApiJson<RevokeRequest>, Error>,
) -> Result<Json<RevokeResponse>> {
    let target = revoke_target(&body);
    let outcome = async {
        let ApiJson(req) = body?;
        known_user(&state, req.user_id).await?;
        let revoked = state
            .db
            .revoke_all_refresh_tokens(req.user_id, "admin_revoke", state.now())
            .await?;
        Ok(Done {
            body: RevokeResponse { revoked },
            user_id: req.user_id,
            count: revoked,
            details: json!({}),
        })
    }
    .await;
    finish(&state, meta, &caller, "revoke_refresh_tokens", target, outcome).await
}

/// End every session, of one account or of all (admin role).
#[utoipa::path(post, path = "/api/admin/sessions/revoke", tag = "admin", security(("bearer" = [])),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Every session (of the account, or of all) is ended and its refresh tokens revoked; access tokens of those sessions stop working at once", body = RevokeResponse),
        (status = 400, description = "Not a JSON body with an optional `user_id`", body = ErrorBody),
        (status = 401, description = "Missing or invalid token, or a lifetime over 15 minutes", body = ErrorBody),
        (status = 403, description = "The token has no `admin` role (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    meta: ClientMeta,
    caller: AdminCaller,
    body: std::result::Result<ApiJson<RevokeRequest>, Error>,
) -> Result<Json<RevokeResponse>> {
    let target = revoke_target(&body);
    let outcome = async {
        let ApiJson(req) = body?;
        known_user(&state, req.user_id).await?;
        let now = state.now();
        let ended = match req.user_id {
            Some(id) => state.cache.delete_all_sessions(id).await?,
            None => state.cache.delete_every_session().await?.len() as u64,
        };
        // A refresh-token family is a session: ending the sessions revokes their families (a family whose
        // session is gone could not refresh anyway; this keeps the database saying so).
        let tokens = state
            .db
            .revoke_all_refresh_tokens(req.user_id, "admin_sessions_revoked", now)
            .await?;
        Ok(Done {
            body: RevokeResponse { revoked: ended },
            user_id: req.user_id,
            count: ended,
            details: json!({ "refresh_tokens_revoked": tokens }),
        })
    }
    .await;
    finish(&state, meta, &caller, "revoke_sessions", target, outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12.nope")), None);
    }

    #[test]
    fn audit_params_are_validated_with_named_messages() {
        let parse = |p: AuditParams| parse_audit_params(&p).err().map(|e| e.to_string());
        let ok = AuditParams {
            user: Some("Alice@Example.com".into()),
            event_type: Some("login".into()),
            since: Some("2026-11-23T00:00:00Z".into()),
            until: Some("2026-11-24T00:00:00+01:00".into()),
            limit: Some("1000".into()),
            after: None,
        };
        let (user, filter) = parse_audit_params(&ok).unwrap();
        assert!(matches!(user, UserFilter::Email(e) if e == "alice@example.com"));
        assert_eq!(filter.limit, 1000);
        for (params, named) in [
            (
                AuditParams {
                    limit: Some("0".into()),
                    ..Default::default()
                },
                "`limit`",
            ),
            (
                AuditParams {
                    limit: Some("1001".into()),
                    ..Default::default()
                },
                "`limit`",
            ),
            (
                AuditParams {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
                "`since`",
            ),
            (
                AuditParams {
                    user: Some("bob".into()),
                    ..Default::default()
                },
                "`user`",
            ),
            (
                AuditParams {
                    event_type: Some("Login;".into()),
                    ..Default::default()
                },
                "`type`",
            ),
            (
                AuditParams {
                    after: Some("x".into()),
                    ..Default::default()
                },
                "`after`",
            ),
            (
                AuditParams {
                    since: Some("2026-11-24T00:00:00Z".into()),
                    until: Some("2026-11-23T00:00:00Z".into()),
                    ..Default::default()
                },
                "`since`",
            ),
        ] {
            let message = parse(params).expect("refused");
            assert!(message.contains(named), "{message}");
        }
    }

    #[test]
    fn every_route_has_its_action() {
        assert_eq!(action_of("/api/admin/audit"), "audit_query");
        assert_eq!(action_of("/api/admin/users/x/lock"), "lock_user");
        assert_eq!(action_of("/api/admin/users/x/unlock"), "unlock_user");
        assert_eq!(action_of("/api/admin/refresh-tokens/revoke"), "revoke_refresh_tokens");
        assert_eq!(action_of("/api/admin/sessions/revoke"), "revoke_sessions");
    }
}
