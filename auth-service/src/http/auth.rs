//! `/api/auth`: register, login, refresh, logout, me, password change.
//!
//! Login never tells an unknown email from a wrong password: same status, same body, and the unknown path
//! verifies against a dummy hash so it costs the same. Registration answers the same whether or not the
//! email is taken. Every outcome is written to the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{ApiJson, AuthUser, ClientMeta};
use crate::password::{check_policy, Password, PolicyError};
use crate::state::AppState;
use crate::store::postgres::{NewRefreshToken, RotateRequest, Rotation};
use crate::store::redis::{Gate, Session, SessionState};
use crate::store::AuditEvent;
use crate::tokens;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/password", post(change_password))
}

/// Previous passwords a new one must differ from.
const PASSWORD_HISTORY: i64 = 5;

/// Registration request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Email address; stored lower-case.
    pub email: String,
    /// 12 to 128 characters; not a common password; not containing the email's local part.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
}

/// Registration answer; the same whether or not the address already had an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// Always `accepted`.
    pub status: &'static str,
    /// What happens next.
    pub message: &'static str,
}

/// The answer of requests that must not reveal whether an address has an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    /// Always `accepted`.
    pub status: &'static str,
    /// What happens next.
    pub message: &'static str,
}

/// Login request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
}

/// Tokens for a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`, signed with the signing key's algorithm (ES256 by default).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque refresh token; single use.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session these tokens belong to.
    pub session_id: Uuid,
    /// At login: whether the account's email address is verified (unverified accounts are flagged, or
    /// refused when `EMAIL_VERIFICATION=required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// The answer to a correct password: tokens, or a second-factor challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Signed in.
    Tokens(TokenResponse),
    /// Two-factor authentication is on: complete the challenge.
    SecondFactor(crate::http::twofactor::ChallengeResponse),
}

/// Refresh request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// The calling user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// User id.
    pub id: Uuid,
    /// Email address.
    pub email: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The session of the presented token.
    pub session_id: Uuid,
}

/// Normalises an email: trimmed, lower-case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    (3..=254).contains(&email.len())
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A pseudonymous id of an email (truncated SHA-256): the Redis key of its counters, and how audit records
/// of attempts against unknown accounts can be correlated without storing the address.
pub(crate) fn account_key(email: &str) -> String {
    hex::encode(&Sha256::digest(email.as_bytes())[..16])
}

pub(crate) fn audit(meta: &ClientMeta, event: &'static str, result: &'static str) -> AuditEvent {
    AuditEvent {
        event,
        result,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        request_id: meta.request_id.clone(),
        client_request_id: meta.client_request_id.clone(),
        metadata: json!({}),
        user_id: None,
    }
}

/// Register an account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Accepted (also when the address is taken)", body = RegisterResponse),
        (status = 422, description = "Invalid email or password", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>)> {
    let cfg = &state.config;
    if let Some(retry_after) = state
        .cache
        .rate_limit(
            "register_ip",
            meta.ip_key(),
            cfg.rate_limit_register_per_ip,
            cfg.rate_limit_window,
        )
        .await?
    {
        state.metrics.rate_limited.with_label_values(&["register_ip"]).inc();
        return Err(Error::RateLimited { retry_after });
    }
    let email = normalize_email(&req.email);
    if !valid_email(&email) {
        return Err(Error::Unprocessable {
            code: "invalid_email",
            message: "email address is not valid".into(),
        });
    }
    // Per address too: each registration emails the address (the same answer whether or not it is taken).
    let account = account_key(&email);
    if let Some(retry_after) = state
        .cache
        .rate_limit(
            "register_account",
            &account,
            cfg.rate_limit_register_per_account,
            cfg.rate_limit_window,
        )
        .await?
    {
        state
            .metrics
            .rate_limited
            .with_label_values(&["register_account"])
            .inc();
        return Err(Error::RateLimited { retry_after });
    }
    check_policy(&req.password, &email).map_err(policy_error)?;
    check_breached(&state, &req.password).await?;
    // Hashed before the existence check, so a taken address costs the same time as a free one.
    let hash = state.hasher.hash(&req.password).await?;
    let id = Uuid::now_v7();
    // The same work whether or not the address is taken: a token made, one statement, one email queued.
    let (token, token_hash) = crate::tokens::new_refresh_token();
    let now = state.now();
    let ttl = cfg.email_verification_ttl;
    let new = crate::store::postgres::NewUser {
        id,
        email: &email,
        password_hash: &hash,
        verification_token_hash: token_hash,
        verification_expires_at: now + chrono::Duration::seconds(ttl as i64),
    };
    let created = state.db.create_user(&new, now).await?;
    state.metrics.registrations.inc();
    // Either way a message goes to the address, so the owner learns of the attempt and the two cases
    // look alike from outside.
    if created {
        state.send_email(
            "verify_email",
            crate::notify::verify_email(&email, &cfg.public_base_url, &token, ttl.div_ceil(3600)),
        );
    } else {
        state.send_email("already_registered", crate::notify::already_registered(&email));
    }
    let mut event = audit(&meta, "register", if created { "success" } else { "duplicate" });
    if created {
        event.user_id = Some(id);
    } else {
        event.metadata = json!({ "email_domain": email.split('@').nth(1) });
    }
    state.audit(event).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RegisterResponse {
            status: "accepted",
            message: "If the address can be registered, the account is ready; check your email to verify it.",
        }),
    ))
}

async fn issue_session_tokens(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    refresh_token: String,
) -> Result<TokenResponse> {
    let keys = state.keys.current();
    let (access_token, _) = tokens::issue_access(&keys, &state.jwt, user_id, session_id, state.now())
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("cannot sign access token")))?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.config.access_token_ttl,
        refresh_token,
        refresh_expires_in: state.config.refresh_token_ttl,
        session_id,
        email_verified: None,
    })
}

/// Log in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in (tokens of a new session), or, with two-factor authentication on, a challenge to complete at `/api/auth/2fa/verify`", body = LoginResponse),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        (status = 429, description = "Rate limited or account locked; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    let cfg = &state.config;
    let m = &state.metrics;
    m.login_attempts.inc();
    let email = normalize_email(&req.email);
    let account = account_key(&email);

    for (scope, id, limit) in [
        ("login_ip", meta.ip_key(), cfg.rate_limit_login_per_ip),
        ("login_account", account.as_str(), cfg.rate_limit_login_per_account),
    ] {
        if let Some(retry_after) = state.cache.rate_limit(scope, id, limit, cfg.rate_limit_window).await? {
            m.rate_limited.with_label_values(&[scope]).inc();
            m.login_failures.with_label_values(&["rate_limited"]).inc();
            let mut event = audit(&meta, "login", "rate_limited");
            event.metadata = json!({ "scope": scope, "account": account });
            state.audit(event).await;
            return Err(Error::RateLimited { retry_after });
        }
    }

    if let Gate::Locked { retry_after } = state
        .cache
        .login_gate(&account, cfg.max_login_attempts, cfg.lockout_duration)
        .await?
    {
        m.login_failures.with_label_values(&["locked"]).inc();
        let mut event = audit(&meta, "login", "locked");
        event.metadata = json!({ "account": account });
        state.audit(event).await;
        return Err(Error::Locked { retry_after });
    }

    let user = state.db.user_by_email(&email).await?;
    let verified = state
        .hasher
        .verify(&req.password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let user = match user {
        Some(user) if verified.ok => user,
        user => {
            m.login_failures.with_label_values(&["invalid_credentials"]).inc();
            let locked_now = state
                .cache
                .login_failed(&account, cfg.max_login_attempts, cfg.lockout_duration)
                .await?;
            let user_id = user.map(|u| u.id);
            let mut event = audit(&meta, "login", "failure");
            event.user_id = user_id;
            event.metadata = json!({
                "reason": "invalid_credentials",
                "known_account": user_id.is_some(),
                "account": account,
            });
            state.audit(event).await;
            if locked_now {
                m.lockouts.inc();
                let mut event = audit(&meta, "account_locked", "locked");
                event.user_id = user_id;
                event.metadata = json!({ "lockout_seconds": cfg.lockout_duration });
                state.audit(event).await;
                if user_id.is_some() {
                    state.send_email(
                        "security_notification",
                        crate::notify::security(
                            &email,
                            crate::notify::SecurityEvent::AccountLocked,
                            &format!("Sign-in is blocked for {} minutes.", cfg.lockout_duration.div_ceil(60)),
                        ),
                    );
                }
            }
            return Err(Error::InvalidCredentials);
        }
    };
    refuse_if_admin_locked(&state, &meta, &user).await?;
    state.cache.login_succeeded(&account).await?;
    if !user.email_verified && cfg.email_verification() == crate::config::EmailVerification::Required {
        m.login_failures.with_label_values(&["email_not_verified"]).inc();
        let mut event = audit(&meta, "login", "email_not_verified");
        event.user_id = Some(user.id);
        state.audit(event).await;
        return Err(Error::Forbidden {
            code: "email_not_verified",
            message: "verify your email address first; a new link can be requested".into(),
        });
    }

    if verified.needs_rehash {
        let (state, password, user) = (state.clone(), req.password.clone(), user.clone());
        tokio::spawn(async move {
            let result = async {
                let new = state.hasher.hash(&password).await?;
                state
                    .db
                    .rehash_password(user.id, &user.password_hash, &new, state.now())
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = result.await {
                tracing::warn!(error = format!("{e:#}"), "cannot upgrade password hash");
            }
        });
    }

    if let Some(cred) = state.db.totp_credential(user.id).await? {
        if cred.confirmed {
            crate::http::twofactor::refuse_if_second_factor_locked(&state, &meta, &user).await?;
            let challenge = crate::http::twofactor::open_challenge(&state, &meta, &user).await?;
            return Ok(Json(LoginResponse::SecondFactor(challenge)));
        }
    }
    let response = start_session(&state, &meta, &user).await?;
    Ok(Json(LoginResponse::Tokens(response)))
}

/// Refuses a user under an administrator's lock with the answer of the failed-login lockout (429
/// `account_locked`). Called only once the password is verified, so the lock reveals nothing to whoever
/// does not hold the password: a wrong password gets the usual 401.
pub(crate) async fn refuse_if_admin_locked(
    state: &AppState,
    meta: &ClientMeta,
    user: &crate::store::postgres::User,
) -> Result<()> {
    let now = state.now();
    let Some(lock) = user.admin_lock(now) else {
        return Ok(());
    };
    let retry_after = match lock.until {
        // Rounded up: a client that waits this long finds the lock over.
        Some(until) => ((until - now).num_milliseconds() + 999).div_euclid(1000).max(1) as u64,
        // Until unlocked: the failed-login lockout's duration, so the answer looks like any lockout.
        None => state.config.lockout_duration,
    };
    state.metrics.login_failures.with_label_values(&["locked"]).inc();
    let mut event = audit(meta, "login", "locked");
    event.user_id = Some(user.id);
    event.metadata = json!({ "account": account_key(&user.email), "admin_lock": true });
    state.audit(event).await;
    Err(Error::Locked { retry_after })
}

/// Creates a session for a user who passed every factor: Redis session, first refresh token of its
/// family, access token, device record (new devices are notified), metrics and audit.
pub(crate) async fn start_session(
    state: &AppState,
    meta: &ClientMeta,
    user: &crate::store::postgres::User,
) -> Result<TokenResponse> {
    let cfg = &state.config;
    let m = &state.metrics;
    let now = state.now();
    // A fresh random id for every login: a session id is never reused or chosen by the client.
    let session_id = Uuid::new_v4();
    let session = Session {
        id: session_id,
        user_id: user.id,
        created_at: now,
        last_seen_at: now,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    state.cache.create_session(&session, state.timeouts).await?;
    m.sessions_created.inc();

    let (refresh_token, hash) = tokens::new_refresh_token();
    state
        .db
        .insert_refresh_token(&NewRefreshToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id: session_id,
            parent_id: None,
            token_hash: hash,
            rotation_count: 0,
            device: meta.user_agent.clone(),
            ip: meta.ip.clone(),
            created_at: now,
            expires_at: now + Duration::seconds(cfg.refresh_token_ttl as i64),
        })
        .await?;
    let mut response = issue_session_tokens(state, user.id, session_id, refresh_token).await?;
    response.email_verified = Some(user.email_verified);
    note_device(state, meta, user).await?;
    m.login_success.inc();
    let mut event = audit(meta, "login", "success");
    event.user_id = Some(user.id);
    event.metadata = json!({ "session_id": session_id });
    state.audit(event).await;
    Ok(response)
}

/// Exchange a refresh token for new tokens.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "Rotated; the old refresh token is spent", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused token", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>> {
    let cfg = &state.config;
    let m = &state.metrics;
    if let Some(retry_after) = state
        .cache
        .rate_limit(
            "refresh_ip",
            meta.ip_key(),
            cfg.rate_limit_refresh_per_ip,
            cfg.rate_limit_window,
        )
        .await?
    {
        m.rate_limited.with_label_values(&["refresh_ip"]).inc();
        return Err(Error::RateLimited { retry_after });
    }
    let presented = req.refresh_token.trim();
    if !tokens::looks_like_refresh_token(presented) {
        m.token_refresh.with_label_values(&["invalid"]).inc();
        return Err(Error::InvalidGrant);
    }
    let (successor, successor_hash) = tokens::new_refresh_token();
    let sealed = tokens::seal_successor(presented, &successor);
    let now = state.now();
    let rotation = state
        .db
        .rotate_refresh_token(RotateRequest {
            presented_hash: tokens::hash_refresh_token(presented),
            successor_hash,
            successor_sealed: &sealed,
            successor_id: Uuid::now_v7(),
            ip: meta.ip.clone(),
            device: meta.user_agent.clone(),
            now,
            ttl: Duration::seconds(cfg.refresh_token_ttl as i64),
            grace: Duration::seconds(cfg.refresh_reuse_grace as i64),
            audit: AuditEvent {
                metadata: json!({ "kind": "rotated" }),
                ..audit(&meta, "token_refresh", "success")
            },
        })
        .await?;

    let (user_id, family_id, token, result) = match rotation {
        Rotation::Unknown => {
            m.token_refresh.with_label_values(&["invalid"]).inc();
            state.audit(audit(&meta, "token_refresh", "unknown_token")).await;
            return Err(Error::InvalidGrant);
        }
        Rotation::Dead { user_id, family_id } => {
            m.token_refresh.with_label_values(&["invalid"]).inc();
            let mut event = audit(&meta, "token_refresh", "revoked_or_expired");
            event.user_id = Some(user_id);
            event.metadata = json!({ "family_id": family_id });
            state.audit(event).await;
            return Err(Error::InvalidGrant);
        }
        Rotation::Reused { user_id, family_id } => {
            m.token_refresh.with_label_values(&["reuse"]).inc();
            m.token_reuse.inc();
            state.cache.delete_session(family_id, user_id).await?;
            let mut event = audit(&meta, "token_reuse_detected", "family_revoked");
            event.user_id = Some(user_id);
            event.metadata = json!({ "family_id": family_id });
            state.audit(event).await;
            tracing::warn!(user_id = %user_id, family_id = %family_id, "refresh token reuse; family revoked");
            return Err(Error::InvalidGrant);
        }
        Rotation::GraceRetry {
            user_id,
            family_id,
            sealed,
        } => {
            let token = tokens::open_successor(presented, &sealed).ok_or(Error::InvalidGrant)?;
            (user_id, family_id, token, "grace_retry")
        }
        Rotation::Rotated { user_id, family_id, .. } => (user_id, family_id, successor, "rotated"),
    };

    // A refresh is activity on the session: it must still be alive, and it slides the idle timeout. (A
    // rotation committed before a session found ended is followed by the family's revocation and its
    // record: the audit log shows both.)
    match state
        .cache
        .touch_session(family_id, user_id, now, state.timeouts)
        .await?
    {
        SessionState::Alive { user_id: owner, .. } if owner == user_id => {}
        other => {
            state.db.revoke_family(family_id, "session_ended", now).await?;
            m.token_refresh.with_label_values(&["session_ended"]).inc();
            let mut event = audit(&meta, "token_refresh", "session_ended");
            event.user_id = Some(user_id);
            event.metadata = json!({ "family_id": family_id, "session": format!("{other:?}") });
            state.audit(event).await;
            return Err(Error::InvalidGrant);
        }
    }

    let response = issue_session_tokens(&state, user_id, family_id, token).await?;
    m.token_refresh.with_label_values(&[result]).inc();
    // A rotation's record was written with it; a grace retry rotated nothing, so it is recorded here.
    if result == "grace_retry" {
        let mut event = audit(&meta, "token_refresh", "success");
        event.user_id = Some(user_id);
        event.metadata = json!({ "family_id": family_id, "kind": result });
        state.audit(event).await;
    }
    Ok(Json(response))
}

/// End the caller's session and revoke its refresh tokens.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn logout(State(state): State<AppState>, meta: ClientMeta, user: AuthUser) -> Result<StatusCode> {
    end_session(&state, user.user_id, user.session_id, "logout").await?;
    let mut event = audit(&meta, "logout", "success");
    event.user_id = Some(user.user_id);
    event.metadata = json!({ "session_id": user.session_id });
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a session and revokes its refresh token family.
pub async fn end_session(state: &AppState, user_id: Uuid, session_id: Uuid, reason: &str) -> Result<()> {
    state.cache.delete_session(session_id, user_id).await?;
    state.db.revoke_family(session_id, reason, state.now()).await?;
    Ok(())
}

/// The calling user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = MeResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<MeResponse>> {
    // The session was checked by `AuthUser`, and ending an account ends its sessions, so the profile may
    // come from the cache (dropped on every write to the user's row; see `Cache::forget_profile`).
    // Read with the session check, in the same Redis round trip.
    let cached = user
        .cached_profile
        .and_then(|json| serde_json::from_str::<Profile>(&json).ok())
        .filter(|p| p.id == user.user_id);
    let profile = match cached {
        Some(profile) => profile,
        None => {
            let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
            let profile = Profile {
                id: row.id,
                email: row.email,
                email_verified: row.email_verified,
                created_at: row.created_at,
            };
            let json = serde_json::to_string(&profile).map_err(|e| Error::Internal(e.into()))?;
            state.cache.cache_profile(user.user_id, &json).await?;
            profile
        }
    };
    Ok(Json(MeResponse {
        id: profile.id,
        email: profile.email,
        email_verified: profile.email_verified,
        created_at: profile.created_at,
        session_id: user.session_id,
    }))
}

/// What `/me` shows of a user, as cached in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    id: Uuid,
    email: String,
    email_verified: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Password change request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password.
    #[schema(value_type = String, format = Password)]
    pub current_password: Password,
    /// The new password; same policy as registration, and not one of the last five.
    #[schema(value_type = String, format = Password)]
    pub new_password: Password,
}

fn policy_error(e: PolicyError) -> Error {
    let code = match e {
        PolicyError::TooShort | PolicyError::TooLong => "password_length",
        PolicyError::Common => "password_common",
        PolicyError::ContainsEmail => "password_contains_email",
    };
    Error::Unprocessable {
        code,
        message: e.to_string(),
    }
}

/// Change the password; ends every session of the user (including the caller's).
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every session ended, log in again"),
        (status = 401, description = "Not authenticated, or wrong current password", body = ErrorBody),
        (status = 422, description = "New password refused by the policy or reused", body = ErrorBody),
        (status = 429, description = "Account locked", body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    crate::http::recheck::recheck_password(&state, &meta, &row, "password_change", &req.current_password).await?;
    state.cache.login_succeeded(&account_key(&row.email)).await?;
    check_new_password(&state, user.user_id, &row.email, &req.new_password).await?;
    let hash = state.hasher.hash(&req.new_password).await?;
    state.db.change_password(user.user_id, &hash, state.now()).await?;
    let ended = state.cache.delete_all_sessions(user.user_id).await?;
    state.send_email(
        "security_notification",
        crate::notify::security(
            &row.email,
            crate::notify::SecurityEvent::PasswordChanged,
            "The password was changed while signed in.",
        ),
    );
    let mut event = audit(&meta, "password_change", "success");
    event.user_id = Some(user.user_id);
    event.metadata = json!({ "sessions_ended": ended });
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses a breached password (when the check is configured and answers).
async fn check_breached(state: &AppState, password: &Password) -> Result<()> {
    let Some(checker) = &state.breach else {
        return Ok(());
    };
    match checker.check(password.expose()).await {
        crate::breach::Verdict::Breached(count) => Err(Error::Unprocessable {
            code: "password_breached",
            message: format!("this password appeared in {count} data breaches; choose another"),
        }),
        crate::breach::Verdict::Clean => Ok(()),
        crate::breach::Verdict::Unknown => {
            state.metrics.breach_check_unavailable.inc();
            match state.config.breached_password_unavailable {
                crate::config::BreachUnavailable::Accept => {
                    tracing::warn!("breached-password check unavailable; password accepted unchecked (degraded mode)");
                    Ok(())
                }
                crate::config::BreachUnavailable::Refuse => Err(Error::TryLater {
                    code: "breach_check_unavailable",
                    message: "new passwords cannot be checked against known breaches right now; try again in a minute"
                        .into(),
                }),
            }
        }
    }
}

/// The checks of a new password for an existing account: policy, breaches, and the last
/// [`PASSWORD_HISTORY`] passwords.
pub(crate) async fn check_new_password(
    state: &AppState,
    user_id: Uuid,
    email: &str,
    password: &Password,
) -> Result<()> {
    check_policy(password, email).map_err(policy_error)?;
    check_breached(state, password).await?;
    for old in state.db.password_history(user_id, PASSWORD_HISTORY).await? {
        if state.hasher.verify(password, Some(&old)).await?.ok {
            return Err(Error::Unprocessable {
                code: "password_reused",
                message: format!("password must differ from the last {PASSWORD_HISTORY}"),
            });
        }
    }
    Ok(())
}

/// Records the device of a successful sign-in; a new one (for an account that had others) is notified by
/// email. The fingerprint is SHA-256 of the user agent: coarse, but it needs no client cooperation.
async fn note_device(state: &AppState, meta: &ClientMeta, user: &crate::store::postgres::User) -> Result<()> {
    let ua = meta.user_agent.as_deref().unwrap_or("");
    let fingerprint: [u8; 32] = Sha256::digest(format!("ua:{ua}").as_bytes()).into();
    let (new, had_others) = state
        .db
        .record_device(
            user.id,
            &fingerprint,
            meta.user_agent.as_deref(),
            meta.ip.as_deref(),
            state.now(),
        )
        .await?;
    if new && had_others {
        state.send_email(
            "security_notification",
            crate::notify::security(
                &user.email,
                crate::notify::SecurityEvent::NewDevice,
                &format!(
                    "Device: {}\nIP address: {}",
                    if ua.is_empty() { "unknown" } else { ua },
                    meta.ip.as_deref().unwrap_or("unknown")
                ),
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(normalize_email("  Alice@Example.COM "), "alice@example.com");
        assert!(valid_email("alice@example.com"));
        assert!(!valid_email("alice"));
        assert!(!valid_email("alice@localhost"));
        assert!(!valid_email("a b@example.com"));
        assert!(!valid_email("@example.com"));
    }
}
