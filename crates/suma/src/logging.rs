//! tracing to stderr: `-v` raises the level, `-q` lowers it, `RUST_LOG` overrides both.

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;
use crate::env_vars;

pub fn init(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = std::env::var(env_vars::RUST_LOG)
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "suma={level},aws_config=error,aws_smithy_runtime=error,{level}"
            ))
        });
    let color = !global.no_color && std::env::var_os(env_vars::NO_COLOR).is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
