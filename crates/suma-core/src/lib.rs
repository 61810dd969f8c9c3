//! suma's foundation, below every other crate of the workspace: the `suma.yaml` model and its located
//! errors, settings resolution (flag > env > file > default), the operation model the journal keeps,
//! the [`report::Reporter`] trait library code reports progress through, and exit codes. It depends on
//! no SDK and no HTTP client, so it builds and tests in seconds.

pub mod config;
pub mod connect_to;
pub mod contract;
pub mod env_vars;
pub mod error;
pub mod exit;
pub mod metrics;
pub mod operation;
pub mod report;
pub mod settings;
pub mod subst;
pub mod taskdef;
