//! Integration tests of the auth-service against real PostgreSQL (`DATABASE_URL`, a superuser URL:
//! `#[sqlx::test]` creates a fresh, migrated database per test) and Redis (`REDIS_URL`, isolated by a
//! random key prefix per test).

mod common;

mod accounts;
mod admin;
mod audit;
mod cli;
mod gdpr;
mod jwt;
mod lifecycle;
mod ops;
mod refresh;
mod secret_keys;
mod sessions;
mod twofactor;
