//! PostgreSQL access for GDPR rights: versioned consent records (append-only: a withdrawal is a new row),
//! the data export, soft deletion and the purge after the retention period, which leaves no personal data
//! in any table (audit rows are kept for their security value, scrubbed of ip, user agent and account
//! hints).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;
use uuid::Uuid;

use crate::store::postgres::Db;

/// One consent record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Consent {
    /// Record id.
    pub id: Uuid,
    /// `terms`, `privacy`, `marketing` or `data_processing`.
    pub purpose: String,
    /// The version of the document consented to.
    pub policy_version: String,
    /// Granted (true) or withdrawn (false).
    pub granted: bool,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// One audit event, as exported to its subject.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRecord {
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// What.
    pub event: String,
    /// Outcome.
    pub result: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl Db {
    /// Appends a consent record.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_consent(
        &self,
        user_id: Uuid,
        purpose: &str,
        version: &str,
        granted: bool,
        ip: Option<&str>,
        user_agent: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO consent_records (id, user_id, purpose, policy_version, granted, ip, user_agent, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(user_id)
        .bind(purpose)
        .bind(version)
        .bind(granted)
        .bind(ip)
        .bind(user_agent)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Every consent record of a user, oldest first.
    pub async fn consents(&self, user_id: Uuid) -> Result<Vec<Consent>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, purpose, policy_version, granted, ip, user_agent, recorded_at FROM consent_records
             WHERE user_id = $1 ORDER BY recorded_at, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
    }

    /// The audit events about a user, oldest first.
    pub async fn audit_of(&self, user_id: Uuid) -> Result<Vec<AuditRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT occurred_at, event, result, ip, user_agent, metadata FROM audit_logs
             WHERE user_id = $1 ORDER BY occurred_at, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
    }

    /// Soft-deletes an account: login impossible, the address free again, every refresh token revoked.
    pub async fn soft_delete_user(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let deleted =
            sqlx::query("UPDATE users SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = 'account_deleted'
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Hard-deletes the accounts soft-deleted before `before`; returns the pseudonymous account keys of the
    /// purged addresses' (for the caller's Redis clean-up) and how many were purged. Audit rows of those
    /// users lose their link, ip, user agent and account hints; rows about attempts on their address
    /// (keyed by `account_key`) are scrubbed the same way; admin actions on them lose their `target` (the
    /// account id) and free-text `reason`.
    pub async fn purge_deleted(
        &self,
        before: DateTime<Utc>,
        account_key: impl Fn(&str) -> String,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let rows =
            sqlx::query("SELECT id, email FROM users WHERE deleted_at IS NOT NULL AND deleted_at < $1 FOR UPDATE")
                .bind(before)
                .fetch_all(&mut *tx)
                .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
        let keys: Vec<String> = rows.iter().map(|r| account_key(r.get::<&str, _>("email"))).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            "UPDATE audit_logs SET ip = NULL, user_agent = NULL, client_request_id = NULL,
               metadata = metadata - 'account' - 'email_domain' - 'device_id' - 'family_id' - 'session_id'
                 - 'target' - 'reason',
               redacted_at = COALESCE(redacted_at, $3)
             WHERE user_id = ANY($1) OR metadata->>'account' = ANY($2)",
        )
        .bind(&ids)
        .bind(&keys)
        .bind(Utc::now())
        .execute(&mut *tx)
        .await?;
        // audit_logs.user_id is ON DELETE SET NULL; every other table cascades.
        let purged = sqlx::query("DELETE FROM users WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }
}
