//! Boots suma: parse the command line, start logging and the runtime, run, exit with its status.

use std::process::ExitCode;

fn main() -> ExitCode {
    let invocation = suma::cli::parse();
    suma::logging::init(&invocation.cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return suma::exit::ExitStatus::Error.into();
        }
    };
    runtime.block_on(suma::run(invocation)).into()
}
