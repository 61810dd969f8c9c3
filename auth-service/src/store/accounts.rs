//! PostgreSQL access for the account lifecycle: email verification and password-reset tokens (stored as
//! SHA-256, consumed atomically so each works once), and device fingerprints.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::postgres::{set_password_in, Db};

/// A device that signed in to an account.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// User agent when first seen.
    pub user_agent: Option<String>,
    /// First sign-in from it.
    pub first_seen_at: DateTime<Utc>,
    /// Latest sign-in from it.
    pub last_seen_at: DateTime<Utc>,
    /// IP of the latest sign-in.
    pub last_ip: Option<String>,
}

impl Db {
    /// Stores a new email-verification token for a user; earlier unused ones stop working.
    pub async fn insert_email_verification(
        &self,
        user_id: Uuid,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM email_verification_tokens WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO email_verification_tokens (id, user_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(&token_hash[..])
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Consumes a verification token and marks the address verified, clearing the second factors enrolled
    /// before (see [`clear_second_factors`]): the user and whether there were any, or `None` when the token
    /// is unknown, used, expired or its account deleted.
    pub async fn consume_email_verification(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let user: Option<Uuid> = sqlx::query_scalar(
            "UPDATE email_verification_tokens SET used_at = $2
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
             RETURNING user_id",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let updated =
            sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let cleared = clear_second_factors(&mut tx, user, now).await?;
        tx.commit().await?;
        Ok(Some((user, cleared)))
    }

    /// Marks `user_id`'s address verified after a reset proved control of the mailbox, and clears the
    /// second factors enrolled while it was unverified; true when there were any.
    pub async fn verify_by_reset(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let unverified = sqlx::query(
            "UPDATE users SET email_verified = TRUE, updated_at = $2
             WHERE id = $1 AND NOT email_verified AND deleted_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let cleared = unverified && clear_second_factors(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(cleared)
    }

    /// Stores a password-reset token (its hash); earlier unused ones of the user stop working.
    pub async fn insert_password_reset(
        &self,
        id: Uuid,
        user_id: Uuid,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        ip: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE password_reset_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, created_at, expires_at, ip)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(user_id)
        .bind(&token_hash[..])
        .bind(now)
        .bind(expires_at)
        .bind(ip)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The live user a usable reset token belongs to, without consuming it.
    pub async fn password_reset_user(
        &self,
        id: Uuid,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT t.user_id FROM password_reset_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = $1 AND t.token_hash = $2 AND t.used_at IS NULL AND t.expires_at > $3
               AND u.deleted_at IS NULL",
        )
        .bind(id)
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(self.pool())
        .await
    }

    /// Consumes a reset token and sets the new password in one transaction (history recorded, every
    /// refresh token revoked); false when the token was used meanwhile.
    pub async fn reset_password(
        &self,
        id: Uuid,
        token_hash: &[u8; 32],
        user_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let consumed = sqlx::query(
            "UPDATE password_reset_tokens SET used_at = $4
             WHERE id = $1 AND token_hash = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > $4",
        )
        .bind(id)
        .bind(&token_hash[..])
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if consumed != 1 {
            return Ok(false);
        }
        set_password_in(&mut tx, user_id, password_hash, now, "password_reset").await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a sign-in from a device; returns (whether the device is new, whether the user had other
    /// devices before).
    pub async fn record_device(
        &self,
        user_id: Uuid,
        fingerprint_hash: &[u8; 32],
        user_agent: Option<&str>,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(bool, bool), sqlx::Error> {
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO device_fingerprints
               (id, user_id, fingerprint_hash, user_agent, first_seen_at, last_seen_at, last_ip)
             VALUES ($1, $2, $3, $4, $5, $5, $6)
             ON CONFLICT (user_id, fingerprint_hash)
             DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, last_ip = EXCLUDED.last_ip
             RETURNING (xmax = 0)",
        )
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(&fingerprint_hash[..])
        .bind(user_agent)
        .bind(now)
        .bind(ip)
        .fetch_one(self.pool())
        .await?;
        if !inserted {
            return Ok((false, true));
        }
        let others: i64 = sqlx::query_scalar("SELECT count(*) FROM device_fingerprints WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(self.pool())
            .await?;
        Ok((true, others > 1))
    }

    /// A user's devices, most recent first.
    pub async fn devices(&self, user_id: Uuid) -> Result<Vec<Device>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, user_agent, first_seen_at, last_seen_at, last_ip FROM device_fingerprints
             WHERE user_id = $1 ORDER BY last_seen_at DESC",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
    }

    /// Forgets one of a user's devices; whether it existed.
    pub async fn delete_device(&self, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM device_fingerprints WHERE user_id = $1 AND id = $2")
                .bind(user_id)
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected()
                == 1,
        )
    }
}

/// A user's TOTP credential as stored.
#[derive(Debug, Clone)]
pub struct TotpCredential {
    /// The shared secret as stored: sealed, or in clear for rows from before encryption (see `format`).
    pub stored_secret: Vec<u8>,
    /// `secret_format`: 0 in clear, 1 sealed ([`crate::totp_seal::SecretFormat`]).
    pub format: i16,
    /// Whether a first valid code confirmed it (only then is it enforced).
    pub confirmed: bool,
    /// The last accepted time step.
    pub last_used_step: Option<i64>,
}

/// `secret, secret_format, confirmed_at, last_used_step` of `totp_credentials`.
type TotpRow = (Vec<u8>, i16, Option<DateTime<Utc>>, Option<i64>);

impl Db {
    /// The TOTP credential of a user, if any.
    pub async fn totp_credential(&self, user_id: Uuid) -> Result<Option<TotpCredential>, sqlx::Error> {
        let row: Option<TotpRow> = sqlx::query_as(
            "SELECT secret, secret_format, confirmed_at, last_used_step FROM totp_credentials WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(stored_secret, format, confirmed_at, last_used_step)| TotpCredential {
                stored_secret,
                format,
                confirmed: confirmed_at.is_some(),
                last_used_step,
            }),
        )
    }

    /// Starts (or restarts) an enrolment with a new secret, already sealed; false when a confirmed
    /// credential exists.
    pub async fn begin_totp(&self, user_id: Uuid, sealed: &[u8], now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "INSERT INTO totp_credentials (user_id, secret, secret_format, created_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, secret_format = 1,
               created_at = EXCLUDED.created_at, last_used_step = NULL
             WHERE totp_credentials.confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Replaces a stored secret (in clear, or sealed with an older key) with the same secret sealed under
    /// the newest key; only if the row still holds `old`, so a concurrent re-enrolment is never undone.
    pub async fn reseal_totp(&self, user_id: Uuid, old: &[u8], sealed: &[u8]) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query(
                "UPDATE totp_credentials SET secret = $3, secret_format = 1 WHERE user_id = $1 AND secret = $2",
            )
            .bind(user_id)
            .bind(old)
            .bind(sealed)
            .execute(self.pool())
            .await?
            .rows_affected()
                == 1,
        )
    }

    /// Confirms an enrolment at `step` and stores the recovery codes' hashes (replacing any); false when
    /// there is no pending enrolment.
    pub async fn confirm_totp(
        &self,
        user_id: Uuid,
        step: i64,
        recovery_hashes: &[[u8; 32]],
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let confirmed = sqlx::query(
            "UPDATE totp_credentials SET confirmed_at = $3, last_used_step = $2
             WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(step)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !confirmed {
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(&hash[..])
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records that the code of `step` was used; false when that step (or a later one) was used already,
    /// so each code works once even under concurrent requests.
    pub async fn use_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE totp_credentials SET last_used_step = $2
             WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < $2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Spends a recovery code; false when unknown or already used.
    pub async fn use_recovery_code(
        &self,
        user_id: Uuid,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(&hash[..])
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Unused recovery codes left.
    pub async fn recovery_codes_left(&self, user_id: Uuid) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(self.pool())
            .await
    }

    /// Removes the TOTP credential and the recovery codes.
    pub async fn disable_totp(&self, user_id: Uuid) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Sets (or clears) the phone number used for SMS codes.
    pub async fn set_phone(&self, user_id: Uuid, phone: Option<&str>, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET phone = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(phone)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The phone number of a user, if set.
    pub async fn phone(&self, user_id: Uuid) -> Result<Option<String>, sqlx::Error> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT phone FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }
}

/// Deletes every second factor of `user_id` (TOTP, recovery codes, the SMS phone): factors enrolled while
/// the address was unverified may be a pre-registrant's, not the owner's. True when there were any.
async fn clear_second_factors(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let totp = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let phone = sqlx::query("UPDATE users SET phone = NULL, updated_at = $2 WHERE id = $1 AND phone IS NOT NULL")
        .bind(user_id)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(totp + phone > 0)
}
