//! suma's integration tests: one binary, a module per feature, run against the local sandbox
//! (`cargo xtask test`). Without the sandbox, every test that needs it returns at once with a message
//! on stderr, so `cargo test` stays green and quick on a machine without moto, PostgreSQL and Redis.

mod common;

mod canary;
mod cli;
mod compliance;
mod config_files;
mod dr;
mod lock;
mod monitoring;
mod runbook;
mod secrets;
mod taskdef;
