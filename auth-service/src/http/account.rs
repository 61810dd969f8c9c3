//! The account lifecycle: email verification (and resend), forgotten-password reset, and the user's
//! devices.
//!
//! Enumeration: resend and forgot-password answer 202 with one body whatever the address, and do their
//! work (lookup, token, email) in a background task, so neither the answer nor its timing depends on
//! whether an account exists. Every token is single use: stored as SHA-256 and consumed by one
//! conditional `UPDATE`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::{account_key, audit, check_new_password, normalize_email, AcceptedResponse};
use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{ApiJson, AuthUser, ClientMeta};
use crate::notify::{self, SecurityEvent};
use crate::password::Password;
use crate::state::AppState;
use crate::store::accounts::Device;
use crate::tokens;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/verify-email", post(verify_email))
        .route("/api/auth/verify-email/resend", post(resend_verification))
        .route("/api/auth/password/forgot", post(forgot_password))
        .route("/api/auth/password/reset", post(reset_password))
        .route("/api/auth/devices", get(list_devices))
        .route("/api/auth/devices/{id}", delete(delete_device))
}

/// A single-use token from an email.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The token from the link.
    pub token: String,
}

/// An email address.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailRequest {
    /// Email address.
    pub email: String,
}

/// Password reset.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The token from the reset email.
    pub token: String,
    /// The new password (policy, not one of the last five, not breached).
    #[schema(value_type = String, format = Password)]
    pub new_password: Password,
    /// With two-factor authentication enabled: a current TOTP code or an unused recovery code.
    #[serde(default)]
    pub code: Option<String>,
}

/// A user's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesResponse {
    /// Most recent first.
    pub devices: Vec<Device>,
}

fn accepted() -> (StatusCode, Json<AcceptedResponse>) {
    (
        StatusCode::ACCEPTED,
        Json(AcceptedResponse {
            status: "accepted",
            message: "If the address has an account, a message is on its way.",
        }),
    )
}

/// Creates a verification token for a user and sends the link.
pub async fn send_verification(state: &AppState, user_id: Uuid, email: &str) -> Result<()> {
    let (token, hash) = tokens::new_refresh_token();
    let now = state.now();
    let ttl = state.config.email_verification_ttl;
    state
        .db
        .insert_email_verification(user_id, &hash, now, now + Duration::seconds(ttl as i64))
        .await?;
    state.send_email(
        "verify_email",
        notify::verify_email(email, &state.config.public_base_url, &token, ttl.div_ceil(3600)),
    );
    Ok(())
}

/// Fixed-window limits per client IP and per address; 429 when exceeded (the same for every address).
async fn limit_email_requests(state: &AppState, meta: &ClientMeta, scope: &'static str, email: &str) -> Result<()> {
    let cfg = &state.config;
    let account = account_key(email);
    for (scope, id, limit, window) in [
        (
            scope,
            meta.ip_key(),
            cfg.rate_limit_forgot_per_ip,
            cfg.rate_limit_window,
        ),
        (
            "emails_address",
            account.as_str(),
            cfg.rate_limit_emails_per_address,
            3600,
        ),
    ] {
        if let Some(retry_after) = state.cache.rate_limit(scope, id, limit, window).await? {
            state.metrics.rate_limited.with_label_values(&[scope]).inc();
            return Err(Error::RateLimited { retry_after });
        }
    }
    Ok(())
}

/// Confirm an email address with the token from the verification email.
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "account", request_body = TokenRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "Unknown, used or expired token", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<StatusCode> {
    let token = req.token.trim();
    let user = if tokens::looks_like_refresh_token(token) {
        state
            .db
            .consume_email_verification(&tokens::hash_refresh_token(token), state.now())
            .await?
    } else {
        None
    };
    let Some((user_id, cleared)) = user else {
        state.audit(audit(&meta, "email_verification", "invalid_token")).await;
        return Err(Error::InvalidToken);
    };
    state.cache.forget_profile(user_id).await?;
    let mut event = audit(&meta, "email_verification", "success");
    event.user_id = Some(user_id);
    event.metadata = json!({ "second_factors_cleared": cleared });
    state.audit(event).await;
    if cleared {
        // Enrolled before the owner proved the address: possibly by whoever registered it first, who may
        // also hold sessions. Both go; the owner signs in again and enrols their own factor.
        second_factors_cleared(&state, &meta, user_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of a user whose second factors were cleared when the address was first proven,
/// audits it and tells the owner.
async fn second_factors_cleared(state: &AppState, meta: &ClientMeta, user_id: Uuid) -> Result<()> {
    let ended = state.cache.delete_all_sessions(user_id).await?;
    state.cache.forget_profile(user_id).await?;
    let mut event = audit(meta, "two_factor", "cleared_unverified");
    event.user_id = Some(user_id);
    event.metadata = json!({ "sessions_ended": ended });
    state.audit(event).await;
    if let Some(user) = state.db.user_by_id(user_id).await? {
        state.send_email(
            "security_notification",
            notify::security(
                &user.email,
                SecurityEvent::TwoFactorChanged,
                "Two-factor settings made before this address was verified were removed, and every session was signed out. Sign in and enrol your own authenticator.",
            ),
        );
    }
    Ok(())
}

/// Send a new verification link (rate-limited; same answer for every address).
#[utoipa::path(post, path = "/api/auth/verify-email/resend", tag = "account", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the address has an unverified account", body = AcceptedResponse),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>)> {
    let email = normalize_email(&req.email);
    limit_email_requests(&state, &meta, "resend_ip", &email).await?;
    let task_state = state.clone();
    tokio::spawn(async move {
        let state = task_state;
        let result = async {
            if let Some(user) = state.db.user_by_email(&email).await? {
                if !user.email_verified {
                    send_verification(&state, user.id, &user.email).await?;
                    let mut event = audit(&meta, "email_verification", "resent");
                    event.user_id = Some(user.id);
                    state.audit(event).await;
                }
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(error = %e, "cannot resend a verification email");
        }
    });
    Ok(accepted())
}

/// Ask for a password-reset link (rate-limited per IP and per address; same answer for every address).
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "account", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the address has an account", body = AcceptedResponse),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>)> {
    let email = normalize_email(&req.email);
    limit_email_requests(&state, &meta, "forgot_ip", &email).await?;
    let task_state = state.clone();
    tokio::spawn(async move {
        let state = task_state;
        let result = async {
            let Some(user) = state.db.user_by_email(&email).await? else {
                let mut event = audit(&meta, "password_reset_request", "unknown_account");
                event.metadata = json!({ "account": account_key(&email) });
                state.audit(event).await;
                return Ok(());
            };
            let now = state.now();
            let ttl = state.config.reset_token_ttl;
            let expires_at = now + Duration::seconds(ttl as i64);
            let id = Uuid::new_v4();
            let token = state
                .reset_keys
                .issue(id, expires_at)
                .map_err(|e| Error::Internal(anyhow::Error::new(e)))?;
            let hash = tokens::hash_refresh_token(&token);
            state
                .db
                .insert_password_reset(id, user.id, &hash, now, expires_at, meta.ip.as_deref())
                .await?;
            state.send_email(
                "reset_password",
                notify::reset_password(&user.email, &state.config.public_base_url, &token, ttl.div_ceil(60)),
            );
            let mut event = audit(&meta, "password_reset_request", "sent");
            event.user_id = Some(user.id);
            state.audit(event).await;
            Ok::<_, Error>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(error = %e, "cannot send a password reset email");
        }
    });
    Ok(accepted())
}

/// Set a new password with the token from the reset email; ends every session and revokes every refresh
/// token. With two-factor authentication on, `code` must be a valid second factor.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "account", request_body = ResetRequest,
    responses(
        (status = 204, description = "Password reset; every session ended"),
        (status = 400, description = "Unknown, used, expired or forged token", body = ErrorBody),
        (status = 401, description = "Second factor required or wrong (`second_factor_required`, `invalid_code`)", body = ErrorBody),
        (status = 422, description = "New password refused (policy, reused, breached)", body = ErrorBody),
        (status = 429, description = "Too many wrong second-factor codes", body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode> {
    let now = state.now();
    let token = req.token.trim();
    let id = state.reset_keys.verify(token, now).map_err(|e| match e {
        crate::reset_tokens::ResetTokenError::Invalid => Error::InvalidToken,
        keys => Error::Internal(anyhow::Error::new(keys)),
    });
    let hash = tokens::hash_refresh_token(token);
    let user_id = match id {
        Ok(id) => state.db.password_reset_user(id, &hash, now).await?.map(|u| (id, u)),
        Err(Error::InvalidToken) => None,
        Err(e) => return Err(e),
    };
    let Some((id, user_id)) = user_id else {
        state.audit(audit(&meta, "password_reset", "invalid_token")).await;
        return Err(Error::InvalidToken);
    };
    let user = state.db.user_by_id(user_id).await?.ok_or(Error::InvalidToken)?;

    // A reset proves control of the mailbox only: with 2FA on, the second factor is still required, unless
    // the address was never verified. Then the reset is its verification, and factors enrolled before it
    // may be a pre-registrant's: they are cleared, not asked for.
    if user.email_verified {
        crate::http::twofactor::require_second_factor(&state, &meta, &user, req.code.as_deref(), "password_reset")
            .await?;
    } else if state.db.verify_by_reset(user_id, now).await? {
        second_factors_cleared(&state, &meta, user_id).await?;
    }

    check_new_password(&state, user_id, &user.email, &req.new_password).await?;
    let new_hash = state.hasher.hash(&req.new_password).await?;
    if !state.db.reset_password(id, &hash, user_id, &new_hash, now).await? {
        return Err(Error::InvalidToken);
    }
    let ended = state.cache.delete_all_sessions(user_id).await?;
    // Whoever holds the mailbox may sign in again at once.
    state.cache.login_succeeded(&account_key(&user.email)).await?;
    state.send_email(
        "security_notification",
        notify::security(
            &user.email,
            SecurityEvent::PasswordChanged,
            "The password was reset with an emailed link.",
        ),
    );
    let mut event = audit(&meta, "password_reset", "success");
    event.user_id = Some(user_id);
    event.metadata = json!({ "sessions_ended": ended });
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The devices that signed in to the caller's account.
#[utoipa::path(get, path = "/api/auth/devices", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, description = "Devices", body = DevicesResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn list_devices(State(state): State<AppState>, user: AuthUser) -> Result<Json<DevicesResponse>> {
    Ok(Json(DevicesResponse {
        devices: state.db.devices(user.user_id).await?,
    }))
}

/// Forget a device: its next sign-in counts as new again (and is notified).
#[utoipa::path(delete, path = "/api/auth/devices/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Device id")),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "Not one of the caller's devices", body = ErrorBody),
    ))]
pub async fn delete_device(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    if !state.db.delete_device(user.user_id, id).await? {
        return Err(Error::NotFound);
    }
    let mut event = audit(&meta, "device_revoked", "success");
    event.user_id = Some(user.user_id);
    event.metadata = json!({ "device_id": id });
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}
