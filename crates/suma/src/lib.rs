//! suma: operate the auth-service on AWS. The binary in `main.rs` only boots; [`run`] is the whole tool.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod render;
pub mod signals;

// The layers below, under the paths the command layer uses: the foundation (`suma-core`), the AWS layer
// (`suma-aws`, the only crate that links the AWS SDK), the service's HTTP client (`suma-http`) and the
// operations (`suma-ops`).
pub use suma_aws as aws;
pub use suma_core::{config, env_vars, exit, report, settings};
pub use suma_http::{admin, probe};
pub use suma_ops::{
    canary, compliance, dr, events, iam_policy, journal, lock_release, metrics, monitoring, notify, rollback, runbook,
    secrets, status, taskdef,
};

use std::sync::Arc;

use crate::settings::EnvSource as _;

use tokio_util::sync::CancellationToken;

use crate::cli::Invocation;
use crate::exit::ExitStatus;
use crate::report::Reporter;

/// Runs the parsed command line to completion or until SIGINT, SIGTERM or SIGHUP.
pub async fn run(
    Invocation {
        cli,
        mutating,
        deprecations,
    }: Invocation,
) -> ExitStatus {
    let reporter: Arc<dyn Reporter> = Arc::new(render::TerminalReporter::new(cli.global.quiet));
    for deprecation in &deprecations {
        reporter.warn(deprecation);
    }
    // Checked before any command, so a mistyped rule never surfaces halfway through an operation.
    let connect_to = settings::ProcessEnv
        .var(env_vars::SUMA_DB_CONNECT_TO)
        .unwrap_or_default();
    match suma_core::connect_to::ConnectTo::parse(&connect_to) {
        Ok(rules) => secrets::database::route_connections(rules),
        Err(e) => {
            render::error(&anyhow::anyhow!("`{}`: {e}", env_vars::SUMA_DB_CONNECT_TO));
            return ExitStatus::Usage;
        }
    }
    let cancel = CancellationToken::new();
    let mut work = std::pin::pin!(commands::dispatch(
        cli.command,
        &cli.global,
        reporter.clone(),
        cancel.clone()
    ));
    let result = tokio::select! {
        result = &mut work => result,
        signal = signals::stop_requested() => {
            cancel.cancel();
            if !mutating {
                reporter.finish();
                eprintln!("{signal}: stopped; this command changes nothing");
                return ExitStatus::Interrupted;
            }
            // A mutating command makes the environment safe and records where it stopped before returning;
            // a second signal exits at once.
            reporter.warn(&format!(
                "{signal}: stopping at a safe point and recording the state (a second signal exits at once)"
            ));
            tokio::select! {
                result = &mut work => result,
                signal = signals::stop_requested() => {
                    eprintln!("{signal}: exited before the state was recorded; `suma ops list` shows the last recorded step");
                    return ExitStatus::Interrupted;
                }
            }
        }
    };
    reporter.finish();
    match result {
        // No signal arrived, so the run stopped because its lease was lost: the lock table did not answer
        // a renewal in time, or another runner took the lock over. That is a failed run, not a Ctrl-C.
        Ok(ExitStatus::Interrupted) if !cancel.is_cancelled() => {
            render::error(&anyhow::anyhow!(
                "stopped: this run no longer holds the environment's lock (a renewal did not succeed within the \
                 lease's safety margin, or another runner took the lock over), so it changed nothing more\n\
                 hint: `suma lock status` shows who holds it; `suma ops show ID` shows where the operation \
                 stopped; resume or abort it once the lock table answers"
            ));
            ExitStatus::Error
        }
        Ok(status) => status,
        Err(err) => {
            // Config problems were printed one by one already.
            if err.downcast_ref::<commands::InvalidConfig>().is_none() {
                render::error(&err);
            }
            commands::exit_status_of(&err)
        }
    }
}
