//! Every environment variable suma reads, in one place, so that `--help`, the README and the code agree.

/// Path of the configuration file (below `--config`, above `./suma.yaml`).
pub const SUMA_CONFIG: &str = "SUMA_CONFIG";
/// Environment to operate on (below `--env`, above `defaults.environment`).
pub const SUMA_ENV: &str = "SUMA_ENV";
/// `table` or `json` (below `--output`, above `defaults.output`).
pub const SUMA_OUTPUT: &str = "SUMA_OUTPUT";
/// Directory of the local operation log (below `--state-dir`, above `defaults.state_dir`).
pub const SUMA_STATE_DIR: &str = "SUMA_STATE_DIR";
/// Where the runbooks are (`suma runbook`); `./runbooks` by default.
pub const SUMA_RUNBOOKS_DIR: &str = "SUMA_RUNBOOKS_DIR";
/// Who is running suma, recorded in locks and journals (default `$USER@$HOSTNAME`).
pub const SUMA_ACTOR: &str = "SUMA_ACTOR";
/// Base URL of the Datadog API (`http://127.0.0.1:PORT`) instead of the configured site's; for tests.
pub const SUMA_DATADOG_URL: &str = "SUMA_DATADOG_URL";
/// PostgreSQL URL of the DR replica, for `dr.replica_lag: postgres` (read-only use).
pub const SUMA_DR_REPLICA_URL: &str = "SUMA_DR_REPLICA_URL";
/// PostgreSQL URL of the service's database on the primary, for `dr switchover`: the sessions still
/// connected to that database are the writers it waits for, and the marker is written there.
pub const SUMA_DR_PRIMARY_URL: &str = "SUMA_DR_PRIMARY_URL";
/// `SUFFIX=HOST:PORT[,…]`: suma's own database connections to a host ending in SUFFIX go to HOST:PORT
/// (a port forward to a private RDS endpoint); see `suma_core::connect_to`.
pub const SUMA_DB_CONNECT_TO: &str = "SUMA_DB_CONNECT_TO";
/// Crash tests, read only by builds with the `fault-hooks` feature (never release builds): every mutating
/// command is killed (SIGKILL) right after this step's end is journaled.
pub const SUMA_FAULT_CRASH_AFTER_STEP: &str = "SUMA_FAULT_CRASH_AFTER_STEP";
/// Crash matrix, `fault-hooks` builds only: SIGKILL at the n-th kill point (before an AWS change, before
/// or after a step's end is journaled), 1-based.
pub const SUMA_FAULT_CRASH_AT: &str = "SUMA_FAULT_CRASH_AT";
/// Any value disables colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Base directory for state files when `SUMA_STATE_DIR` is unset.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
pub const HOME: &str = "HOME";
pub const USER: &str = "USER";
/// Log filter; overrides `-v`/`-q`.
pub const RUST_LOG: &str = "RUST_LOG";
