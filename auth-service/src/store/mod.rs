//! Persistence: PostgreSQL for accounts, refresh tokens and the audit log; Redis for sessions, rate limits
//! and lockout counters.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod gdpr;
pub mod postgres;
pub mod redis;
mod session_read;

pub use self::postgres::{AuditEvent, Db};
pub use self::redis::Cache;
