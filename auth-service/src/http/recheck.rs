//! The current password asked again before a sensitive action of a signed-in user (change the password,
//! erase the account, turn two-factor authentication off). The password is as guessable there as at
//! sign-in, so every re-check goes through sign-in's rate limits (per address and per account, the same
//! counters) and its lockout, counts a wrong password towards that lockout, and audits each refusal under
//! the action's name. Without this an attacker holding a stolen session could test passwords at the
//! erase endpoint with no limit, no lockout and no trace.

use serde_json::json;

use crate::http::auth::{account_key, audit};
use crate::http::error::{Error, Result};
use crate::http::extract::ClientMeta;
use crate::password::Password;
use crate::state::AppState;
use crate::store::postgres::User;
use crate::store::redis::Gate;

/// `Ok` when `password` is `user`'s; otherwise the answer sign-in would give (rate limited, locked, or
/// invalid credentials), with the failure counted and audited under `action` (the audit event's name,
/// e.g. `password_change`, `gdpr_delete`). The caller clears the failure count
/// ([`crate::store::redis`]'s `login_succeeded`) once everything it asks for has passed.
pub async fn recheck_password(
    state: &AppState,
    meta: &ClientMeta,
    user: &User,
    action: &'static str,
    password: &Password,
) -> Result<()> {
    let cfg = &state.config;
    let account = account_key(&user.email);
    let refused = |result: &'static str, metadata: serde_json::Value| {
        let mut event = audit(meta, action, result);
        event.user_id = Some(user.id);
        event.metadata = metadata;
        event
    };
    for (scope, id, limit) in [
        ("login_ip", meta.ip_key(), cfg.rate_limit_login_per_ip),
        ("login_account", account.as_str(), cfg.rate_limit_login_per_account),
    ] {
        if let Some(retry_after) = state.cache.rate_limit(scope, id, limit, cfg.rate_limit_window).await? {
            state.metrics.rate_limited.with_label_values(&[scope]).inc();
            state.audit(refused("rate_limited", json!({ "scope": scope }))).await;
            return Err(Error::RateLimited { retry_after });
        }
    }
    if let Gate::Locked { retry_after } = state
        .cache
        .login_gate(&account, cfg.max_login_attempts, cfg.lockout_duration)
        .await?
    {
        state.audit(refused("locked", json!({}))).await;
        return Err(Error::Locked { retry_after });
    }
    if !state.hasher.verify(password, Some(&user.password_hash)).await?.ok {
        count_failure(state, &user.email).await?;
        state
            .audit(refused("failure", json!({ "reason": "invalid_current_password" })))
            .await;
        return Err(Error::InvalidCredentials);
    }
    // The failure counter is left as it is: a caller that checks a second factor next clears it only
    // once that passed too, so a known password cannot reset the count of guessed codes.
    Ok(())
}

/// Counts a wrong password or factor of `email`'s account towards the sign-in lockout (and the lockout
/// metric when this one locks it).
async fn count_failure(state: &AppState, email: &str) -> Result<()> {
    let cfg = &state.config;
    if state
        .cache
        .login_failed(&account_key(email), cfg.max_login_attempts, cfg.lockout_duration)
        .await?
    {
        state.metrics.lockouts.inc();
    }
    Ok(())
}
