//! Boots the auth-service: parses the command line, sets up JSON logging, runs the subcommand and maps
//! the outcome to an exit code (0 ok, 2 configuration or runtime error; `healthcheck` exits 1 when unhealthy).
//!
//! Log lines are formatted on the thread that logs ([`auth_service::logging::JsonLines`]) and written to
//! stderr by a thread of their own, so a slow reader of stderr (a log driver under pressure) delays no
//! request until the queue of lines is full; then logging waits rather than dropping lines. That thread
//! writes whatever lines are queued in one write and flushes as soon as the queue is empty.

use std::process::ExitCode;

use auth_service::config::Cli;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The most the log writer gathers before a write: a few hundred request lines.
const LOG_BATCH_BYTES: usize = 64 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse_with_default();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (stderr, flush_logs) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(LOG_BATCH_BYTES, std::io::stderr()));
    tracing_subscriber::fmt()
        .fmt_fields(auth_service::logging::JsonSpanFields)
        .event_format(auth_service::logging::JsonLines)
        .with_env_filter(filter)
        .with_writer(stderr)
        .init();
    // aws-lc-rs is the only provider linked, which rustls would pick by itself; named here so that a
    // dependency bringing ring back cannot leave `rediss://` connections without a default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // A failed check exits 1 (a container health check: "unhealthy" to Docker and ECS; a broken audit
    // chain); other failures 2.
    let failure = if matches!(
        cli.command,
        auth_service::config::Command::Healthcheck(_) | auth_service::config::Command::Audit(_)
    ) {
        1
    } else {
        2
    };
    let outcome = runtime.block_on(auth_service::run(cli.command));
    if let Err(e) = &outcome {
        tracing::error!(error = format!("{e:#}"), "auth-service failed");
    }
    // Every line logged is written before the process says anything more or exits.
    drop(flush_logs);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, one cause per line, then any `hint:` carried by a message.
            let mut hints = Vec::new();
            for (i, cause) in e.chain().enumerate() {
                let text = cause.to_string();
                let (message, hint) = match text.split_once("\nhint: ") {
                    Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
                    None => (text, None),
                };
                hints.extend(hint);
                if i == 0 {
                    eprintln!("error: {message}");
                } else {
                    eprintln!("  caused by: {message}");
                }
            }
            for hint in hints {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(failure)
        }
    }
}
