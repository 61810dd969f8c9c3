//! Two-factor authentication: TOTP enrolment (confirmed by a first valid code) with ten single-use
//! recovery codes, disabling with re-authentication, the phone number for SMS codes, and the login
//! challenge: a login with 2FA on answers a challenge id instead of tokens, and
//! `POST /api/auth/2fa/verify` completes it with a TOTP code, a recovery code, or a 6-digit code texted
//! to the enrolled phone for that challenge only. Email is never offered: it would reduce the second
//! factor to control of the mailbox.
//!
//! Brute force: a challenge lives 5 minutes and allows 5 attempts, and an account opens at most
//! [`OPEN_CHALLENGES`] per challenge lifetime. Every second-factor attempt counts on the account's own
//! second-factor counter, apart from the password's: a correct password does not clear it, only a complete
//! sign-in does, so signing in again buys no more guesses. [`SECOND_FACTOR_FAILURES`] wrong codes lock
//! sign-in for the lockout duration and email the owner. Replay: a TOTP step is accepted once (`last_used_step`), a recovery code is
//! spent by a conditional `UPDATE`, a texted code dies with its challenge, and a challenge
//! completes at most once (`DEL` answers 1 for one caller only).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::{account_key, audit, start_session, TokenResponse};
use crate::http::error::{Error, ErrorBody, Result};
use crate::http::extract::{ApiJson, AuthUser, ClientMeta};
use crate::notify::{self, SecurityEvent};
use crate::password::Password;
use crate::state::AppState;
use crate::store::postgres::User;
use crate::store::redis::Gate;
use crate::totp;

/// How long a login challenge (and a code sent for it) lives.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Attempts per challenge.
pub const CHALLENGE_ATTEMPTS: u32 = 5;
/// Wrong second-factor codes an account may enter, across all its challenges and sign-ins, before sign-in
/// is locked for the lockout duration. With 5 guesses per lockout (15 minutes by default) a 6-digit TOTP,
/// which accepts 3 codes at a time, holds for about 5 years on average.
pub const SECOND_FACTOR_FAILURES: u32 = 5;
/// Challenges one account may open per [`CHALLENGE_TTL`]: bounds the attempts open at once and the codes
/// that can be sent.
pub const OPEN_CHALLENGES: u32 = 5;
/// SMS limits (SMS pumping: each text costs money and a premium-rate number earns it): one per account per
/// cool-down, a few per account and per client address per hour.
pub const SMS_COOLDOWN_SECS: u64 = 30;
pub const SMS_PER_ACCOUNT_PER_HOUR: u32 = 5;
pub const SMS_PER_IP_PER_HOUR: u32 = 20;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/2fa/totp/setup", post(totp_setup))
        .route("/api/auth/2fa/totp/confirm", post(totp_confirm))
        .route("/api/auth/2fa/disable", post(disable))
        .route("/api/auth/2fa/send", post(send_code))
        .route("/api/auth/2fa/verify", post(verify))
        .route("/api/auth/phone", put(set_phone))
}

/// A login that needs its second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// Always true.
    pub two_factor_required: bool,
    /// Pass to `/api/auth/2fa/verify` (and `/api/auth/2fa/send`).
    pub challenge_id: Uuid,
    /// Seconds the challenge lives.
    pub expires_in: u64,
    /// What can complete it: `totp`, `recovery_code`, `email`, `sms`.
    pub methods: Vec<&'static str>,
}

/// TOTP enrolment material, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret, for manual entry.
    pub secret: String,
    /// `otpauth://totp/…` URI, for a QR code.
    pub otpauth_uri: String,
}

/// A code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// A 6-digit TOTP code.
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes.
    pub recovery_codes: Vec<String>,
}

/// Disabling 2FA: the password and a second factor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableRequest {
    /// The current password.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// A TOTP code or a recovery code.
    pub code: String,
}

/// Where to send a code for a challenge.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendCodeRequest {
    /// The challenge from the login.
    pub challenge_id: Uuid,
    /// `sms` (the only channel: email is not a second factor).
    pub channel: String,
}

/// Completing a challenge.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The challenge from the login.
    pub challenge_id: Uuid,
    /// A TOTP code, a recovery code, or the code sent by SMS.
    pub code: String,
}

/// A phone number for SMS codes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneRequest {
    /// E.164 (`+` and 8 to 15 digits); null removes it.
    pub phone: Option<String>,
    /// The current password: the number receives sign-in codes, so changing it is a step-up.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// With 2FA on, a TOTP code or a recovery code.
    pub code: Option<String>,
}

fn code_hash(challenge: Uuid, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{challenge}:{code}").as_bytes()))
}

fn recovery_hash(code: &str) -> [u8; 32] {
    Sha256::digest(format!("recovery:{code}").as_bytes()).into()
}

fn valid_phone(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The second-factor counter's key of an account, apart from the password's.
fn second_factor_key(email: &str) -> String {
    format!("second_factor:{}", account_key(email))
}

/// Refuses a sign-in whose second factor is locked (after the password was found right, so the answer
/// tells nothing to whoever does not hold it).
pub async fn refuse_if_second_factor_locked(state: &AppState, meta: &ClientMeta, user: &User) -> Result<()> {
    if let Some(retry_after) = state
        .cache
        .gate_closed(&second_factor_key(&user.email), SECOND_FACTOR_FAILURES)
        .await?
    {
        state.metrics.login_failures.with_label_values(&["locked"]).inc();
        let mut event = audit(meta, "login", "second_factor_locked");
        event.user_id = Some(user.id);
        state.audit(event).await;
        return Err(Error::Locked { retry_after });
    }
    Ok(())
}

/// A second factor belongs to whoever proved the address: an unverified account may be a pre-registrant's
/// (someone who signed up with the victim's address first), who must not get to enrol a factor the owner
/// would later be asked for.
fn require_verified(user: &User) -> Result<()> {
    if user.email_verified {
        return Ok(());
    }
    Err(Error::Forbidden {
        code: "email_not_verified",
        message: "verify your email address before adding a second factor; a new link can be requested".into(),
    })
}

/// Opens a challenge for a user whose password was right.
pub async fn open_challenge(state: &AppState, meta: &ClientMeta, user: &User) -> Result<ChallengeResponse> {
    let window = CHALLENGE_TTL.as_secs();
    if let Some(retry_after) = state
        .cache
        .rate_limit("second_factor_challenge", &user.id.to_string(), OPEN_CHALLENGES, window)
        .await?
    {
        state
            .metrics
            .rate_limited
            .with_label_values(&["second_factor_challenge"])
            .inc();
        let mut event = audit(meta, "login", "rate_limited");
        event.user_id = Some(user.id);
        event.metadata = json!({ "scope": "second_factor_challenge" });
        state.audit(event).await;
        return Err(Error::RateLimited { retry_after });
    }
    let id = Uuid::new_v4();
    state.cache.create_challenge(id, user.id, CHALLENGE_TTL).await?;
    // Only enrolled factors: an emailed code would reduce the authenticator to control of the mailbox
    // (which a reset already needs), and NIST SP 800-63B does not accept email as an authenticator.
    let mut methods = vec!["totp", "recovery_code"];
    if state.db.phone(user.id).await?.is_some() {
        methods.push("sms");
    }
    let mut event = audit(meta, "login", "second_factor_required");
    event.user_id = Some(user.id);
    state.audit(event).await;
    Ok(ChallengeResponse {
        two_factor_required: true,
        challenge_id: id,
        expires_in: CHALLENGE_TTL.as_secs(),
        methods,
    })
}

/// Whether `code` is a valid, unused TOTP code or recovery code of the user; spends it when it is.
async fn check_factor(state: &AppState, user_id: Uuid, code: &str) -> Result<Option<&'static str>> {
    let Some(cred) = state.db.totp_credential(user_id).await? else {
        return Ok(None);
    };
    if !cred.confirmed {
        return Ok(None);
    }
    let now = state.now();
    let secret = totp_secret(state, user_id, &cred).await?;
    if let Some(step) = totp::verify(&secret, code, now.timestamp(), cred.last_used_step) {
        if state.db.use_totp_step(user_id, step).await? {
            return Ok(Some("totp"));
        }
        return Ok(None);
    }
    if let Some(normal) = totp::normalize_recovery_code(code) {
        if state
            .db
            .use_recovery_code(user_id, &recovery_hash(&normal), now)
            .await?
        {
            return Ok(Some("recovery_code"));
        }
    }
    Ok(None)
}

/// Opens a user's stored TOTP secret. A secret stored in clear (enrolled before secrets were encrypted)
/// or sealed with an older key is sealed again with the newest key on the way, so every secret in use
/// ends up encrypted under the current key without a batch job.
pub async fn totp_secret(
    state: &AppState,
    user_id: Uuid,
    cred: &crate::store::accounts::TotpCredential,
) -> Result<Vec<u8>> {
    let (secret, reseal) = state
        .totp_sealer
        .open(user_id, &cred.stored_secret, cred.format)
        .map_err(|e| {
            Error::Internal(anyhow::Error::new(e).context(format!("cannot open the TOTP secret of user `{user_id}`")))
        })?;
    if reseal {
        let sealed = state.totp_sealer.seal(user_id, &secret);
        if state.db.reseal_totp(user_id, &cred.stored_secret, &sealed).await? {
            tracing::info!(user_id = %user_id, key_id = %state.totp_sealer.current_key_id(), "TOTP secret sealed with the current key");
        }
    }
    Ok(secret)
}

/// Counts a second-factor attempt on the account's second-factor counter; `Err(Locked)` when locked.
async fn gate(state: &AppState, email: &str) -> Result<()> {
    if let Gate::Locked { retry_after } = state
        .cache
        .login_gate(
            &second_factor_key(email),
            SECOND_FACTOR_FAILURES,
            state.config.lockout_duration,
        )
        .await?
    {
        return Err(Error::Locked { retry_after });
    }
    Ok(())
}

/// Records a wrong second-factor code; the one that locks sign-in is audited and emailed to the owner.
async fn count_second_factor_failure(state: &AppState, meta: &ClientMeta, user: &User) -> Result<()> {
    let lockout = state.config.lockout_duration;
    if !state
        .cache
        .login_failed(&second_factor_key(&user.email), SECOND_FACTOR_FAILURES, lockout)
        .await?
    {
        return Ok(());
    }
    state.metrics.lockouts.inc();
    let mut event = audit(meta, "account_locked", "second_factor");
    event.user_id = Some(user.id);
    event.metadata = json!({ "lockout_seconds": lockout });
    state.audit(event).await;
    state.send_email(
        "security_notification",
        notify::security(
            &user.email,
            SecurityEvent::AccountLocked,
            &format!(
                "{SECOND_FACTOR_FAILURES} wrong two-factor codes were entered; sign-in is blocked for {} minutes. If this was not you, change your password now.",
                lockout.div_ceil(60)
            ),
        ),
    );
    Ok(())
}

/// Clears both failure counters once a sign-in or a sensitive action passed every factor.
async fn all_factors_passed(state: &AppState, email: &str) -> Result<()> {
    state.cache.login_succeeded(&account_key(email)).await?;
    state.cache.login_succeeded(&second_factor_key(email)).await?;
    Ok(())
}

/// For sensitive operations outside login (password reset, disabling 2FA): when the user has 2FA on,
/// `code` must be a valid TOTP or recovery code; attempts count towards the lockout.
pub async fn require_second_factor(
    state: &AppState,
    meta: &ClientMeta,
    user: &User,
    code: Option<&str>,
    operation: &'static str,
) -> Result<()> {
    let enabled = state.db.totp_credential(user.id).await?.is_some_and(|c| c.confirmed);
    if !enabled {
        return Ok(());
    }
    let Some(code) = code else {
        return Err(Error::SecondFactor("second_factor_required"));
    };
    gate(state, &user.email).await?;
    if check_factor(state, user.id, code).await?.is_none() {
        count_second_factor_failure(state, meta, user).await?;
        let mut event = audit(meta, operation, "invalid_second_factor");
        event.user_id = Some(user.id);
        state.audit(event).await;
        return Err(Error::SecondFactor("invalid_code"));
    }
    Ok(())
}

/// Start TOTP enrolment: a new secret, not enforced until confirmed.
#[utoipa::path(post, path = "/api/auth/2fa/totp/setup", tag = "2fa", security(("bearer" = [])),
    responses(
        (status = 200, description = "Secret and otpauth URI", body = TotpSetupResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The address is not verified yet (`email_not_verified`)", body = ErrorBody),
        (status = 409, description = "Already enabled; disable it first", body = ErrorBody),
    ))]
pub async fn totp_setup(State(state): State<AppState>, user: AuthUser) -> Result<Json<TotpSetupResponse>> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    require_verified(&row)?;
    let secret = totp::new_secret();
    let sealed = state.totp_sealer.seal(user.user_id, &secret);
    if !state.db.begin_totp(user.user_id, &sealed, state.now()).await? {
        return Err(Error::Conflict);
    }
    Ok(Json(TotpSetupResponse {
        secret: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(&state.config.jwt_issuer, &row.email, &secret),
    }))
}

/// Confirm TOTP enrolment with a first valid code; answers the ten recovery codes (shown once).
#[utoipa::path(post, path = "/api/auth/2fa/totp/confirm", tag = "2fa", security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "Enabled", body = RecoveryCodesResponse),
        (status = 401, description = "Not authenticated, or wrong code (`invalid_code`)", body = ErrorBody),
        (status = 404, description = "No enrolment in progress", body = ErrorBody),
    ))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<Json<RecoveryCodesResponse>> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    let cred = state
        .db
        .totp_credential(user.user_id)
        .await?
        .filter(|c| !c.confirmed)
        .ok_or(Error::NotFound)?;
    gate(&state, &row.email).await?;
    let now = state.now();
    let secret = totp_secret(&state, user.user_id, &cred).await?;
    let Some(step) = totp::verify(&secret, &req.code, now.timestamp(), None) else {
        count_second_factor_failure(&state, &meta, &row).await?;
        return Err(Error::SecondFactor("invalid_code"));
    };
    // Only the second-factor count: confirming a new factor proves nothing about the password.
    state.cache.login_succeeded(&second_factor_key(&row.email)).await?;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| recovery_hash(c)).collect();
    if !state.db.confirm_totp(user.user_id, step, &hashes, now).await? {
        return Err(Error::NotFound);
    }
    state.send_email(
        "security_notification",
        notify::security(
            &row.email,
            SecurityEvent::TwoFactorChanged,
            "An authenticator app was enabled.",
        ),
    );
    let mut event = audit(&meta, "two_factor", "enabled");
    event.user_id = Some(user.user_id);
    state.audit(event).await;
    Ok(Json(RecoveryCodesResponse { recovery_codes: codes }))
}

/// Disable 2FA: needs the password and a current TOTP or recovery code.
#[utoipa::path(post, path = "/api/auth/2fa/disable", tag = "2fa", security(("bearer" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "Not authenticated, wrong password or wrong code", body = ErrorBody),
        (status = 404, description = "2FA is not enabled", body = ErrorBody),
        (status = 429, description = "Locked after too many failures", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<DisableRequest>,
) -> Result<StatusCode> {
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    if !state
        .db
        .totp_credential(user.user_id)
        .await?
        .is_some_and(|c| c.confirmed)
    {
        return Err(Error::NotFound);
    }
    crate::http::recheck::recheck_password(&state, &meta, &row, "two_factor_disable", &req.password).await?;
    gate(&state, &row.email).await?;
    if check_factor(&state, user.user_id, &req.code).await?.is_none() {
        count_second_factor_failure(&state, &meta, &row).await?;
        let mut event = audit(&meta, "two_factor", "disable_invalid_code");
        event.user_id = Some(user.user_id);
        state.audit(event).await;
        return Err(Error::SecondFactor("invalid_code"));
    }
    all_factors_passed(&state, &row.email).await?;
    state.db.disable_totp(user.user_id).await?;
    state.send_email(
        "security_notification",
        notify::security(
            &row.email,
            SecurityEvent::TwoFactorChanged,
            "Two-factor authentication was turned off.",
        ),
    );
    let mut event = audit(&meta, "two_factor", "disabled");
    event.user_id = Some(user.user_id);
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the phone number for SMS codes: a step-up (the password, and a second factor when 2FA is on), and
/// the account's email and the old number are told.
#[utoipa::path(put, path = "/api/auth/phone", tag = "2fa", security(("bearer" = [])),
    request_body = PhoneRequest,
    responses(
        (status = 204, description = "Saved"),
        (status = 401, description = "Not authenticated, wrong password, or a second factor missing or wrong", body = ErrorBody),
        (status = 403, description = "The address is not verified yet (`email_not_verified`)", body = ErrorBody),
        (status = 422, description = "Not an E.164 number (`invalid_phone`)", body = ErrorBody),
        (status = 429, description = "Rate limited or locked, as at sign-in", body = ErrorBody),
    ))]
pub async fn set_phone(
    State(state): State<AppState>,
    meta: ClientMeta,
    user: AuthUser,
    ApiJson(req): ApiJson<PhoneRequest>,
) -> Result<StatusCode> {
    let phone = req.phone.as_deref().map(str::trim);
    if phone.is_some_and(|p| !valid_phone(p)) {
        return Err(Error::Unprocessable {
            code: "invalid_phone",
            message: "phone must be E.164: + and 8 to 15 digits".into(),
        });
    }
    let row = state.db.user_by_id(user.user_id).await?.ok_or(Error::Unauthorized)?;
    require_verified(&row)?;
    crate::http::recheck::recheck_password(&state, &meta, &row, "phone", &req.password).await?;
    require_second_factor(&state, &meta, &row, req.code.as_deref(), "phone").await?;
    state.cache.login_succeeded(&account_key(&row.email)).await?;
    let old = state.db.phone(user.user_id).await?;
    state.db.set_phone(user.user_id, phone, state.now()).await?;
    let what = match phone {
        Some(_) => "The phone number for sign-in codes was changed.",
        None => "The phone number for sign-in codes was removed.",
    };
    state.send_email(
        "security_notification",
        notify::security(&row.email, SecurityEvent::TwoFactorChanged, what),
    );
    // The old number is told too: whoever took the account over may also hold the mailbox.
    if let Some(old) = old.filter(|old| Some(old.as_str()) != phone) {
        let sms = state.sms.clone();
        let body = format!("{what} If this was not you, secure your account now.");
        tokio::spawn(async move {
            if let Err(e) = sms.send(&old, &body).await {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "cannot text the old number"
                );
            }
        });
    }
    let mut event = audit(&meta, "phone", if phone.is_some() { "set" } else { "removed" });
    event.user_id = Some(user.user_id);
    state.audit(event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a 6-digit code for a login challenge by SMS to the enrolled phone (valid for that challenge only).
#[utoipa::path(post, path = "/api/auth/2fa/send", tag = "2fa", request_body = SendCodeRequest,
    responses(
        (status = 202, description = "Sent"),
        (status = 400, description = "Unknown or expired challenge, or no phone for `sms`", body = ErrorBody),
        (status = 429, description = "Sent too recently, or too many this hour for the account or the address", body = ErrorBody),
    ))]
pub async fn send_code(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<SendCodeRequest>,
) -> Result<StatusCode> {
    let user_id = state
        .cache
        .challenge_user(req.challenge_id)
        .await?
        .ok_or(Error::InvalidToken)?;
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let minutes = CHALLENGE_TTL.as_secs() / 60;
    let user_key = user_id.to_string();
    for (scope, id, limit, window) in [
        ("sms_cooldown", user_key.as_str(), 1, SMS_COOLDOWN_SECS),
        ("sms_account", user_key.as_str(), SMS_PER_ACCOUNT_PER_HOUR, 3600),
        ("sms_ip", meta.ip_key(), SMS_PER_IP_PER_HOUR, 3600),
    ] {
        if let Some(retry_after) = state.cache.rate_limit(scope, id, limit, window).await? {
            state.metrics.rate_limited.with_label_values(&[scope]).inc();
            let mut event = audit(&meta, "two_factor_code", "rate_limited");
            event.user_id = Some(user_id);
            event.metadata = json!({ "scope": scope });
            state.audit(event).await;
            return Err(Error::RateLimited { retry_after });
        }
    }
    if req.channel != "sms" {
        return Err(Error::BadRequest(
            "`channel` must be `sms`, to the enrolled phone: an emailed code is not a second factor (use the authenticator app or a recovery code)".into(),
        ));
    }
    let channel = "sms";
    let phone = state
        .db
        .phone(user_id)
        .await?
        .ok_or(Error::BadRequest("no phone number on the account".into()))?;
    if !state
        .cache
        .set_challenge_code(req.challenge_id, &code_hash(req.challenge_id, &code))
        .await?
    {
        return Err(Error::InvalidToken);
    }
    let sms = state.sms.clone();
    let body = format!("Your sign-in code is {code}. It expires in {minutes} minutes. Never share it.");
    tokio::spawn(async move {
        if let Err(e) = sms.send(&phone, &body).await {
            tracing::warn!(error = format!("{:#}", anyhow::Error::new(e)), "cannot send SMS code");
        }
    });
    let mut event = audit(&meta, "two_factor_code", "sent");
    event.user_id = Some(user_id);
    event.metadata = json!({ "channel": channel });
    state.audit(event).await;
    Ok(StatusCode::ACCEPTED)
}

/// Complete a login challenge; answers the session's tokens.
#[utoipa::path(post, path = "/api/auth/2fa/verify", tag = "2fa", request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Unknown, expired, used or exhausted challenge", body = ErrorBody),
        (status = 401, description = "Wrong code (`invalid_code`)", body = ErrorBody),
        (status = 429, description = "Account locked after too many failures", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<TokenResponse>> {
    let Some((user_id, sent_code)) = state
        .cache
        .challenge_attempt(req.challenge_id, CHALLENGE_ATTEMPTS)
        .await?
    else {
        return Err(Error::InvalidToken);
    };
    let user = state.db.user_by_id(user_id).await?.ok_or(Error::InvalidToken)?;
    gate(&state, &user.email).await?;
    let code = req.code.trim();
    let sent_ok = sent_code.as_deref().is_some_and(|h| {
        let given = code_hash(req.challenge_id, code);
        crate::tokens::constant_time_eq(given.as_bytes(), h.as_bytes())
    });
    let method = if sent_ok {
        Some("sent_code")
    } else {
        check_factor(&state, user_id, code).await?
    };
    let Some(method) = method else {
        count_second_factor_failure(&state, &meta, &user).await?;
        state
            .metrics
            .login_failures
            .with_label_values(&["invalid_second_factor"])
            .inc();
        let mut event = audit(&meta, "login", "invalid_second_factor");
        event.user_id = Some(user_id);
        state.audit(event).await;
        return Err(Error::SecondFactor("invalid_code"));
    };
    // A lock put on while the challenge was open holds.
    crate::http::auth::refuse_if_admin_locked(&state, &meta, &user).await?;
    // Exactly one request completes a challenge, even if two carry valid codes at once.
    if !state.cache.finish_challenge(req.challenge_id).await? {
        return Err(Error::InvalidToken);
    }
    all_factors_passed(&state, &user.email).await?;
    if method == "recovery_code" && state.db.recovery_codes_left(user_id).await? <= 2 {
        state.send_email(
            "security_notification",
            notify::security(
                &user.email,
                SecurityEvent::TwoFactorChanged,
                "A recovery code was used; two or fewer are left. Create new ones soon.",
            ),
        );
    }
    let mut event = audit(&meta, "two_factor", "verified");
    event.user_id = Some(user_id);
    event.metadata = json!({ "method": method });
    state.audit(event).await;
    Ok(Json(start_session(&state, &meta, &user).await?))
}
