//! Development automation: `cargo xtask sandbox up|down|status`, `cargo xtask test`, `cargo xtask demo`.
//! Few dependencies on purpose; everything else it needs (moto, PostgreSQL, Redis) it installs itself.

mod http;
mod process;
mod sandbox;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  sandbox up       install what is missing, start moto, PostgreSQL and Redis on loopback, seed the topology
  sandbox down     stop what `sandbox up` started and remove its state
  sandbox status   show what is running
  test             sandbox up, the whole workspace's tests, sandbox down (unless it was already up)
  demo             sandbox up, then suma end to end against it";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["sandbox", "up"] => sandbox::Sandbox::new(workspace_root()).up().map(|_| ()),
        ["sandbox", "down"] => sandbox::Sandbox::new(workspace_root()).down(),
        ["sandbox", "status"] => sandbox::Sandbox::new(workspace_root()).status(),
        ["test", rest @ ..] => sandbox::test(workspace_root(), rest),
        ["demo"] => sandbox::demo(workspace_root()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, found from this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}
