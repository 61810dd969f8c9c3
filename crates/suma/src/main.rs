//! Boots suma: parse the command line, start logging and the runtime, run, exit with its status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = suma::cli::Cli::parse();
    suma::logging::init(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return suma::exit::ExitStatus::Error.into();
        }
    };
    runtime.block_on(suma::run(cli)).into()
}
