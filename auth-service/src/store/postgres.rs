//! PostgreSQL access: users, refresh tokens, audit log, migrations.
//!
//! Queries are runtime-checked (`sqlx::query`), so the crate builds without a database. Times come from the
//! service clock and are passed in, never taken from `now()` in SQL, so tests can move time.

use chrono::{DateTime, Duration, Utc};
use sqlx::migrate::Migrator;
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

/// The embedded migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    /// Set while an administrator's lock is on (see [`User::admin_lock`]).
    #[sqlx(default)]
    pub locked_at: Option<DateTime<Utc>>,
    /// End of an administrator's lock; `None` with `locked_at` set means until unlocked.
    #[sqlx(default)]
    pub locked_until: Option<DateTime<Utc>>,
}

/// An administrator's lock in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLock {
    /// When it ends; `None` until unlocked.
    pub until: Option<DateTime<Utc>>,
}

impl User {
    /// The administrator's lock on the account at `now`, if one is in force.
    pub fn admin_lock(&self, now: DateTime<Utc>) -> Option<AdminLock> {
        self.locked_at?;
        match self.locked_until {
            Some(until) if until <= now => None,
            until => Some(AdminLock { until }),
        }
    }
}

/// Everything recorded about an authentication event.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// The account concerned, when known.
    pub user_id: Option<Uuid>,
    /// What happened, e.g. `login`, `register`, `token_refresh`, `token_reuse_detected`.
    pub event: &'static str,
    /// `success`, `failure`, `denied`, ...
    pub result: &'static str,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The service's request id.
    pub request_id: Option<String>,
    /// The client's own `X-Request-Id`, kept apart.
    pub client_request_id: Option<String>,
    /// Event details; never a password, token or secret.
    pub metadata: serde_json::Value,
}

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    /// The SHA-256 of the emailed verification token.
    pub verification_token_hash: [u8; 32],
    pub verification_expires_at: DateTime<Utc>,
}

/// A refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub token_hash: [u8; 32],
    pub rotation_count: i32,
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What happened to a presented refresh token.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// No such token.
    Unknown,
    /// Expired, or its family is revoked.
    Dead { user_id: Uuid, family_id: Uuid },
    /// The token was valid and is now replaced by `successor`.
    Rotated {
        user_id: Uuid,
        family_id: Uuid,
        rotation_count: i32,
    },
    /// The token was already rotated within the grace window; `sealed` opens to the same successor.
    GraceRetry {
        user_id: Uuid,
        family_id: Uuid,
        sealed: Vec<u8>,
    },
    /// The token was already rotated before the grace window: the whole family was revoked.
    Reused { user_id: Uuid, family_id: Uuid },
}

/// The inputs of a rotation, all computed by the caller.
#[derive(Debug, Clone)]
pub struct RotateRequest<'a> {
    pub presented_hash: [u8; 32],
    pub successor_hash: [u8; 32],
    pub successor_sealed: &'a [u8],
    pub successor_id: Uuid,
    pub ip: Option<String>,
    pub device: Option<String>,
    pub now: DateTime<Utc>,
    pub ttl: Duration,
    pub grace: Duration,
    /// The record a rotation writes in the same statement (its user and the family's id are filled in
    /// from the presented token's row), so the rotation and its audit record commit together.
    pub audit: AuditEvent,
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Whether the database answers and every embedded migration is applied.
    pub async fn readiness(&self) -> (Result<(), sqlx::Error>, Result<bool, sqlx::Error>) {
        let ping = sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ());
        if ping.is_err() {
            return (ping, Ok(false));
        }
        let applied = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
            .map(|rows| {
                let applied: std::collections::HashSet<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
                MIGRATOR
                    .iter()
                    .filter(|m| !m.migration_type.is_down_migration())
                    .all(|m| applied.contains(&m.version))
            });
        let applied = match applied {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(false),
            other => other,
        };
        (ping, applied)
    }

    /// Creates an account with its first password-history entry and its email-verification token, in one
    /// statement: a taken address runs the same statement (which then inserts nothing), so both cases take
    /// one round trip and one commit and cannot be told apart by timing. True when it was created.
    pub async fn create_user(&self, new: &NewUser<'_>, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let created: i64 = sqlx::query_scalar(
            "WITH created AS (
                 INSERT INTO users (id, email, password_hash, created_at, updated_at, password_changed_at)
                 VALUES ($1, $2, $3, $4, $4, $4)
                 ON CONFLICT (email) WHERE deleted_at IS NULL DO NOTHING
                 RETURNING id
             ), history AS (
                 INSERT INTO password_history (id, user_id, password_hash, created_at)
                 SELECT $5, id, $3, $4 FROM created
             ), verification AS (
                 INSERT INTO email_verification_tokens (id, user_id, token_hash, created_at, expires_at)
                 SELECT $6, id, $7, $4, $8 FROM created
             )
             SELECT count(*) FROM created",
        )
        .bind(new.id)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(now)
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(&new.verification_token_hash[..])
        .bind(new.verification_expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(created == 1)
    }

    /// The live user with this (normalised) email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, email, password_hash, email_verified, created_at, locked_at, locked_until
             FROM users WHERE email = $1 AND deleted_at IS NULL",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
    }

    /// The live user with this id.
    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, email, password_hash, email_verified, created_at, locked_at, locked_until
             FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Replaces a password hash with one of the same password under current parameters.
    pub async fn rehash_password(&self, id: Uuid, old: &str, new: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        // Only if unchanged meanwhile, so a concurrent password change is never overwritten.
        sqlx::query("UPDATE users SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2")
            .bind(id)
            .bind(old)
            .bind(new)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The most recent password hashes of a user, newest first.
    pub async fn password_history(&self, user_id: Uuid, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Sets a new password, records it in the history and revokes every refresh token of the user.
    pub async fn change_password(&self, user_id: Uuid, hash: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        set_password_in(&mut tx, user_id, hash, now, "password_changed").await?;
        tx.commit().await
    }

    /// Stores a new refresh token (the first of a family, at login).
    pub async fn insert_refresh_token(&self, t: &NewRefreshToken) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO refresh_tokens
               (id, user_id, family_id, parent_id, token_hash, rotation_count, device, ip, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(t.id)
        .bind(t.user_id)
        .bind(t.family_id)
        .bind(t.parent_id)
        .bind(&t.token_hash[..])
        .bind(t.rotation_count)
        .bind(&t.device)
        .bind(&t.ip)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rotates a presented refresh token in one statement (one round trip, one commit), its audit record
    /// included: a rotation is never committed without its record, nor a record without its rotation.
    /// The record is written without its content hash, which the sealer adds (see `store::audit`): the
    /// user it names is only known inside the statement. The `FOR UPDATE` on the presented token's row
    /// serialises concurrent uses of the same token: the first rotates; a later one waits for it, then
    /// sees the row as rotated (PostgreSQL re-reads a row that changed while it waited for the lock) and
    /// gets the grace or reuse answer.
    pub async fn rotate_refresh_token(&self, r: RotateRequest<'_>) -> Result<Rotation, sqlx::Error> {
        let audit = &r.audit;
        let metadata = if audit.metadata.is_null() {
            serde_json::json!({})
        } else {
            audit.metadata.clone()
        };
        let row = sqlx::query(
            "WITH old AS (
               SELECT id, user_id, family_id, rotation_count, expires_at, rotated_at, successor_sealed, revoked_at
               FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
             ), rotated AS (
               UPDATE refresh_tokens t SET rotated_at = $2, replaced_by = $3, successor_sealed = $4
               FROM old
               WHERE t.id = old.id AND old.revoked_at IS NULL AND old.expires_at > $2 AND old.rotated_at IS NULL
               RETURNING t.id
             ), inserted AS (
               INSERT INTO refresh_tokens
                 (id, user_id, family_id, parent_id, token_hash, rotation_count, device, ip, created_at, expires_at)
               SELECT $3, old.user_id, old.family_id, old.id, $5, old.rotation_count + 1, $6, $7, $2, $8
               FROM old JOIN rotated ON rotated.id = old.id
               RETURNING id
             ), audited AS (
               INSERT INTO audit_logs
                 (id, occurred_at, user_id, event, result, ip, user_agent, request_id, client_request_id, metadata)
               SELECT $9, $2, old.user_id, $10, $11, $16, $12, $13, $14,
                      $15::jsonb || jsonb_build_object('family_id', old.family_id)
               FROM old JOIN inserted ON true
             )
             SELECT old.*, EXISTS (SELECT 1 FROM inserted) AS did_rotate FROM old",
        )
        .bind(&r.presented_hash[..])
        .bind(r.now)
        .bind(r.successor_id)
        .bind(r.successor_sealed)
        .bind(&r.successor_hash[..])
        .bind(&r.device)
        .bind(&r.ip)
        .bind(r.now + r.ttl)
        .bind(Uuid::now_v7())
        .bind(audit.event)
        .bind(audit.result)
        .bind(&audit.user_agent)
        .bind(&audit.request_id)
        .bind(&audit.client_request_id)
        .bind(metadata)
        .bind(&audit.ip)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let user_id: Uuid = row.get("user_id");
        let family_id: Uuid = row.get("family_id");
        let rotation_count: i32 = row.get("rotation_count");
        if row.get::<bool, _>("did_rotate") {
            return Ok(Rotation::Rotated {
                user_id,
                family_id,
                rotation_count: rotation_count + 1,
            });
        }
        let expires_at: DateTime<Utc> = row.get("expires_at");
        let rotated_at: Option<DateTime<Utc>> = row.get("rotated_at");
        let sealed: Option<Vec<u8>> = row.get("successor_sealed");
        let revoked_at: Option<DateTime<Utc>> = row.get("revoked_at");
        if revoked_at.is_some() || expires_at <= r.now {
            return Ok(Rotation::Dead { user_id, family_id });
        }
        let Some(rotated_at) = rotated_at else {
            // Unreachable: a live, unexpired, unrotated token is rotated above.
            return Ok(Rotation::Dead { user_id, family_id });
        };
        if r.now - rotated_at <= r.grace {
            if let Some(sealed) = sealed {
                return Ok(Rotation::GraceRetry {
                    user_id,
                    family_id,
                    sealed,
                });
            }
        }
        self.revoke_family(family_id, "reuse_detected", r.now).await?;
        Ok(Rotation::Reused { user_id, family_id })
    }

    /// Deletes up to `limit` refresh tokens that expired before `before`; how many. An expired token is
    /// refused whatever its row says, so its row is kept only for the caller's margin (see
    /// [`crate::prune_refresh_tokens`]). Rows another instance is deleting are skipped, not waited for.
    pub async fn prune_refresh_tokens(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "DELETE FROM refresh_tokens WHERE id IN (
               SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Revokes every live token of a family; returns how many.
    pub async fn revoke_family(&self, family_id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        revoke_family_in(&mut conn, family_id, reason, now).await
    }
}

/// Sets a user's password, records it in the history and revokes every live refresh token with `reason`.
pub(crate) async fn set_password_in(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    hash: &str,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn revoke_family_in(
    conn: &mut sqlx::PgConnection,
    family_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected())
}
