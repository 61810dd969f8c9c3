//! suma's integration tests: one binary, a module per feature, run against the local sandbox
//! (`cargo xtask test`). Without the sandbox, every test that needs it returns at once with a message
//! on stderr, so `cargo test` stays green and quick on a machine without moto, PostgreSQL and Redis.

// The tests hold `common`'s staging locks across awaits on purpose: each `#[tokio::test]` runs its own
// runtime on its own thread, and the locks order whole tests, never tasks within one.
#![allow(clippy::await_holding_lock)]

mod common;

mod baseline;
mod bluegreen;
mod canary;
mod cli;
mod compliance;
mod config_files;
mod contract;
mod crash_matrix;
mod datadog_gating;
mod docs;
mod dr;
mod hooks;
mod iam;
mod init;
mod lock;
mod monitoring;
mod rollback;
mod runbook;
mod sandbox_agent;
mod secrets;
mod taskdef;
