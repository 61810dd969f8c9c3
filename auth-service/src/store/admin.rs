//! Storage behind the admin API: the audit-log query (keyset paging on `(occurred_at, id)`), the
//! administrator's account lock (PostgreSQL, so it survives the loss of Redis), and bulk revocation of
//! refresh tokens. Ending every Redis session lives with the other session code in `store::redis`.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::store::postgres::Db;

/// Which audit events to read, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only these accounts' events (an email can name several accounts over time); `None` for all.
    pub user_ids: Option<Vec<Uuid>>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Strictly after this position (the cursor of the previous page).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: i64,
}

/// One audit record as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Record id (UUID v7).
    pub id: Uuid,
    /// The account concerned, when known.
    pub user_id: Option<Uuid>,
    /// What happened: `login`, `token_refresh`, `admin_action`, ...
    pub event_type: String,
    /// `success`, `failure`, `locked`, ...
    pub result: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Event details.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl Db {
    /// One page of audit records matching `filter`, ordered by `(occurred_at, id)`; at most `limit + 1`
    /// rows, so the caller can tell whether another page follows.
    pub async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, sqlx::Error> {
        // Built per request rather than one statement with `$n IS NULL OR …` guards, so that each shape
        // gets a plan that uses the matching index ((user_id, occurred_at) or (event, occurred_at)).
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT id, user_id, event AS event_type, result, ip, user_agent, metadata, occurred_at AS created_at
             FROM audit_logs WHERE TRUE",
        );
        if let Some(ids) = &filter.user_ids {
            q.push(" AND user_id = ANY(").push_bind(ids.clone()).push(")");
        }
        if let Some(event) = &filter.event_type {
            q.push(" AND event = ").push_bind(event.clone());
        }
        if let Some(since) = filter.since {
            q.push(" AND occurred_at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            q.push(" AND occurred_at < ").push_bind(until);
        }
        if let Some((at, id)) = filter.after {
            q.push(" AND (occurred_at, id) > (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY occurred_at, id LIMIT ").push_bind(filter.limit + 1);
        q.build_query_as().fetch_all(self.pool()).await
    }

    /// Every account (live or erased but not yet purged) that has had this email address.
    pub async fn user_ids_by_email(&self, email: &str) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_all(self.pool())
            .await
    }

    /// Whether an account row exists (live or erased but not yet purged).
    pub async fn user_exists(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(id)
            .fetch_one(self.pool())
            .await
    }

    /// Puts an administrator's lock on a live account (replacing any) and revokes every live refresh
    /// token of it, in one transaction; the account's email, or `None` when there is no live account.
    pub async fn admin_lock(
        &self,
        user_id: Uuid,
        until: Option<DateTime<Utc>>,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, u64)>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE users SET locked_at = $2, locked_until = $3, lock_reason = $4, locked_by = $5, updated_at = $2
             WHERE id = $1 AND deleted_at IS NULL RETURNING email",
        )
        .bind(user_id)
        .bind(now)
        .bind(until)
        .bind(reason)
        .bind(actor)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(email) = email else {
            return Ok(None);
        };
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = 'admin_lock'
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some((email, revoked)))
    }

    /// Lifts an administrator's lock (a no-op when none is on); the account's email, or `None` when
    /// there is no live account.
    pub async fn admin_unlock(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE users SET locked_at = NULL, locked_until = NULL, lock_reason = NULL, locked_by = NULL,
               updated_at = $2
             WHERE id = $1 AND deleted_at IS NULL RETURNING email",
        )
        .bind(user_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await
    }

    /// Revokes every unrevoked refresh token, of one user or of everyone; returns how many.
    pub async fn revoke_all_refresh_tokens(
        &self,
        user_id: Option<Uuid>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let result = match user_id {
            Some(user_id) => {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3
                     WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(now)
                .bind(reason)
                .execute(self.pool())
                .await?
            }
            None => {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1, revoked_reason = $2 WHERE revoked_at IS NULL")
                    .bind(now)
                    .bind(reason)
                    .execute(self.pool())
                    .await?
            }
        };
        Ok(result.rows_affected())
    }
}
