//! suma: operate the auth-service on AWS. The binary in `main.rs` only boots; [`run`] is the whole tool.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod env_vars;
pub mod exit;
pub mod journal;
pub mod logging;
pub mod probe;
pub mod render;
pub mod report;
pub mod settings;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::exit::ExitStatus;
use crate::report::Reporter;

/// Runs the parsed command line to completion or until Ctrl-C.
pub async fn run(cli: Cli) -> ExitStatus {
    let reporter: Arc<dyn Reporter> = Arc::new(render::TerminalReporter::new(cli.global.quiet));
    let cancel = CancellationToken::new();
    let interrupted = {
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    };
    let work = commands::dispatch(cli.command, &cli.global, reporter.clone(), cancel.clone());
    let result = tokio::select! {
        result = work => result,
        () = interrupted => {
            reporter.finish();
            // Commands of this build change state only through journaled single calls; dropping the
            // future leaves nothing half-done that the journal does not already show.
            eprintln!("interrupted; nothing further was changed (see `suma ops list` for recorded operations)");
            return ExitStatus::Interrupted;
        }
    };
    reporter.finish();
    match result {
        Ok(status) => status,
        Err(err) => {
            // Config problems were printed one by one already.
            if err.downcast_ref::<commands::InvalidConfig>().is_none() {
                render::error(&err);
            }
            ExitStatus::Error
        }
    }
}
