//! The audit log: append-only and hash-chained (the migration `audit_chain` holds the rules the database
//! enforces). A request appends its record with the SHA-256 of its content and takes no lock, so the hot
//! path costs one insert (a refresh writes its record inside the rotation's statement, where the user it
//! names is only known to the database: that record gets its content hash from the sealer, as stored); [`Db::seal_audit`], run every second by one instance at a time (a PostgreSQL
//! advisory lock), links the records appended since into the chain. [`Db::verify_audit`] recomputes the
//! chain and every unredacted record's content hash: a changed, removed or reordered record breaks it.
//! Erasure redacts personal data and keeps the content hash, so the chain stays verifiable.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::postgres::{AuditEvent, Db};

/// The advisory lock that makes one sealer at a time, across every instance.
const SEALER_LOCK: i64 = 0x5EA1_A0D1;
/// Records read per verification page.
const VERIFY_PAGE: i64 = 5_000;

/// The content of a record as hashed: every field as written, in a fixed order, each length-prefixed so
/// that no two contents encode alike.
#[allow(clippy::too_many_arguments)]
fn content_hash(
    id: Uuid,
    occurred_at: DateTime<Utc>,
    user_id: Option<Uuid>,
    event: &str,
    result: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
    request_id: Option<&str>,
    client_request_id: Option<&str>,
    metadata: &serde_json::Value,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(id.as_bytes());
    field(&occurred_at.timestamp_micros().to_be_bytes());
    field(user_id.as_ref().map_or(&[][..], |u| u.as_bytes()));
    field(event.as_bytes());
    field(result.as_bytes());
    for text in [ip, user_agent, request_id, client_request_id] {
        // `None` and `Some("")` differ: a marker byte first.
        match text {
            None => field(&[0]),
            Some(t) => field(&[&[1u8][..], t.as_bytes()].concat()),
        }
    }
    // serde_json's map is ordered by key, so the encoding does not depend on how PostgreSQL's JSONB
    // orders it when read back.
    field(metadata.to_string().as_bytes());
    hash.finalize().into()
}

fn chained(previous: &[u8], content: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(previous);
    hash.update(content);
    hash.finalize().into()
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditVerification {
    /// Whether every sealed record's hashes check out.
    pub intact: bool,
    pub sealed: u64,
    /// Appended and not sealed yet (the last second's).
    pub unsealed: u64,
    /// Sealed records whose personal data was erased: their content is vouched for by its hash only.
    pub redacted: u64,
    /// The first broken link: the chain position and what is wrong there.
    pub first_break: Option<ChainBreak>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainBreak {
    pub chain_index: i64,
    pub record_id: Uuid,
    pub reason: String,
}

impl Db {
    /// Appends an audit record (not sealed yet).
    pub async fn audit(&self, e: &AuditEvent, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let id = Uuid::now_v7();
        // Stored with microseconds, as the hash covers it.
        let occurred_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let metadata = if e.metadata.is_null() {
            serde_json::json!({})
        } else {
            e.metadata.clone()
        };
        let hash = content_hash(
            id,
            occurred_at,
            e.user_id,
            e.event,
            e.result,
            e.ip.as_deref(),
            e.user_agent.as_deref(),
            e.request_id.as_deref(),
            e.client_request_id.as_deref(),
            &metadata,
        );
        sqlx::query(
            "INSERT INTO audit_logs (id, occurred_at, user_id, event, result, ip, user_agent, request_id,
                                     client_request_id, metadata, content_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(occurred_at)
        .bind(e.user_id)
        .bind(e.event)
        .bind(e.result)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(&e.request_id)
        .bind(&e.client_request_id)
        .bind(metadata)
        .bind(&hash[..])
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Links up to `limit` unsealed records into the chain, oldest first; how many. Another instance
    /// sealing at the same time makes this one return 0.
    pub async fn seal_audit(&self, limit: i64) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEALER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(0);
        }
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT chain_index, record_hash FROM audit_logs WHERE chain_index IS NOT NULL
             ORDER BY chain_index DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT id, occurred_at, user_id, event, result, ip, user_agent, request_id, client_request_id,
                    metadata, content_hash
             FROM audit_logs WHERE chain_index IS NULL ORDER BY occurred_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (mut index, mut previous) = head.unwrap_or((0, vec![0u8; 32]));
        let (mut ids, mut indexes, mut contents, mut hashes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            // Records from before the chain, and those written inside another statement (a refresh's
            // rotation), have no content hash yet: it is taken from them as they are.
            let content = match row.get::<Option<Vec<u8>>, _>("content_hash") {
                Some(stored) => stored,
                None => stored_content_hash(row).to_vec(),
            };
            index += 1;
            let hash = chained(&previous, &content);
            ids.push(row.get::<Uuid, _>("id"));
            indexes.push(index);
            contents.push(content);
            hashes.push(hash.to_vec());
            previous = hash.to_vec();
        }
        sqlx::query(
            "UPDATE audit_logs a SET chain_index = v.chain_index, record_hash = v.record_hash,
                                     content_hash = v.content_hash
             FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[], $4::bytea[])
                  AS v(id, chain_index, content_hash, record_hash)
             WHERE a.id = v.id",
        )
        .bind(&ids)
        .bind(&indexes)
        .bind(&contents)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Recomputes the whole chain: each record's link to the one before, and the content hash of every
    /// record not redacted.
    pub async fn verify_audit(&self) -> Result<AuditVerification, sqlx::Error> {
        let unsealed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE chain_index IS NULL")
            .fetch_one(self.pool())
            .await?;
        let mut report = AuditVerification {
            intact: true,
            sealed: 0,
            unsealed: unsealed as u64,
            redacted: 0,
            first_break: None,
        };
        let (mut expected_index, mut previous) = (1i64, vec![0u8; 32]);
        loop {
            let rows = sqlx::query(
                "SELECT id, occurred_at, user_id, event, result, ip, user_agent, request_id, client_request_id,
                        metadata, content_hash, chain_index, record_hash, redacted_at
                 FROM audit_logs WHERE chain_index >= $1 ORDER BY chain_index LIMIT $2",
            )
            .bind(expected_index)
            .bind(VERIFY_PAGE)
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                return Ok(report);
            }
            for row in &rows {
                let index: i64 = row.get("chain_index");
                let broken = |reason: String| ChainBreak {
                    chain_index: index,
                    record_id: row.get("id"),
                    reason,
                };
                let content: Vec<u8> = row.get::<Option<Vec<u8>>, _>("content_hash").unwrap_or_default();
                let redacted = row.get::<Option<DateTime<Utc>>, _>("redacted_at").is_some();
                let record_hash = row.get::<Option<Vec<u8>>, _>("record_hash");
                let problem = if index != expected_index {
                    Some(format!("position {expected_index} is missing"))
                } else if record_hash.as_deref() != Some(&chained(&previous, &content)[..]) {
                    Some("its chain hash does not follow from the record before".to_owned())
                } else if !redacted && stored_content_hash(row)[..] != content[..] {
                    Some("its content differs from what was written".to_owned())
                } else {
                    None
                };
                if let Some(reason) = problem {
                    report.intact = false;
                    report.first_break = Some(broken(reason));
                    return Ok(report);
                }
                report.sealed += 1;
                report.redacted += u64::from(redacted);
                previous = record_hash.unwrap_or_default();
                expected_index += 1;
            }
            // A short page was the last: no need to ask for an empty one.
            if (rows.len() as i64) < VERIFY_PAGE {
                return Ok(report);
            }
        }
    }
}

/// The content hash of a row as it is stored now.
fn stored_content_hash(row: &sqlx::postgres::PgRow) -> [u8; 32] {
    content_hash(
        row.get("id"),
        row.get("occurred_at"),
        row.get("user_id"),
        row.get("event"),
        row.get("result"),
        row.get("ip"),
        row.get("user_agent"),
        row.get("request_id"),
        row.get("client_request_id"),
        &row.get::<serde_json::Value, _>("metadata"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_content_hash() {
        let id = Uuid::now_v7();
        let at = Utc::now();
        let base = |ip: Option<&str>, meta: serde_json::Value| {
            content_hash(id, at, None, "login", "success", ip, None, Some("r"), None, &meta)
        };
        let reference = base(Some("10.0.0.1"), serde_json::json!({"a": 1}));
        assert_ne!(reference, base(Some("10.0.0.2"), serde_json::json!({"a": 1})));
        assert_ne!(reference, base(Some("10.0.0.1"), serde_json::json!({"a": 2})));
        assert_ne!(base(None, serde_json::json!({})), base(Some(""), serde_json::json!({})));
        // Key order does not matter (JSONB reorders keys).
        let ab: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let ba: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(base(None, ab), base(None, ba));
    }
}
