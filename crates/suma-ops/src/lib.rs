//! suma's operations: what each command does, below the command line and above the systems it drives.
//! The engines (canary, DR, secret rotation, runbooks, monitors and dashboards, task definitions), the
//! compliance checks, the metric analysis that gates a canary, and the journal store with its lock. The
//! decision logic in each is pure and table-tested; the systems are reached only through the narrow
//! traits of `suma-aws`, `suma-datadog` and `suma-http`, injected by the binary.

pub mod canary;
pub mod compliance;
#[cfg(feature = "sdk")]
pub mod context;
pub mod dr;
pub mod engine;
pub mod events;
pub mod iam_policy;
pub mod init;
pub mod journal;
pub mod lock_release;
pub mod metrics;
pub mod monitoring;
pub mod notify;
pub mod plaintext_secret;
pub mod rollback;
pub mod runbook;
pub mod secrets;
pub mod status;
pub mod taskdef;

// The layers below, under the paths the modules above use.
pub use suma_aws as aws;
pub use suma_core::{config, env_vars, exit, report, settings};
pub use suma_http::{admin, probe};

/// The repository the tests run in (its shipped `deploy/`, `runbooks/`, `templates/`). Cargo's run-time
/// value wins: a target directory shared by checkouts at different paths may hold a test binary built in
/// another one, whose compiled-in path names a tree that is gone or stale.
#[cfg(test)]
pub(crate) fn checkout_root() -> std::path::PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../..")
}
