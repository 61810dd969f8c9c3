//! Development automation: `cargo xtask sandbox up|down|status`, `cargo xtask test`,
//! `cargo xtask crash-matrix`, `cargo xtask demo`, `cargo xtask bench <name>`, `cargo xtask man`. No dependencies on
//! purpose; what it needs at run time (moto, PostgreSQL, Redis, Prometheus) it installs itself, and the
//! data plane's binaries live in the `dataplane` crate.

mod bench;
mod bench_canary;
mod bench_cli;
mod bench_compliance;
mod bench_switchover;
mod cargo;
mod crash_matrix;
mod demo_ops;
mod demo_runbooks;
mod http;
mod process;
mod sandbox;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  sandbox up       install what is missing; start on loopback moto (seeded with the topology and the task
                   definition rendered from the shipped template), PostgreSQL, Redis, the ECS agent that runs
                   the services' tasks as auth-service processes, the weighted proxy (AUTH_URL), a steady
                   load and Prometheus scraping every task
  sandbox down     stop what `sandbox up` started and remove its state
  sandbox status   show every component and the tasks
  test             sandbox up, the whole workspace's tests, sandbox down (unless it was already up)
  crash-matrix     sandbox up, then each mutating command killed (SIGKILL) at every kill point and
                   finished by resume and by abort, with the invariants checked; one line per kill point
  demo             sandbox up, then suma end to end against it
  bench auth [--algorithm ES256|EdDSA|PS256|RS256] [auth-bench flags]
                   release auth-service against the sandbox's PostgreSQL and Redis, load it with auth-bench,
                   write the `## auth-service` section of BENCHMARKS.md (bare sign/verify rates of every
                   algorithm; the service signs with ALG, ES256 by default)
  bench canary     in the sandbox: time from a bad canary's first failed analysis to weights restored, and
                   suma's CPU and memory while supervising a canary; the `## canary` section of BENCHMARKS.md
  bench compliance 1,000 resources on a moto of its own: time and memory of `suma compliance check`
  bench switchover in the sandbox, 3 switchovers of staging under continuous registrations: writes lost
                   (RPO) and the time suma adds beyond its waits; the `## switchover` section of BENCHMARKS.md
  bench cli        the release suma binary: size, and the cold start of `suma --version` and a few
                   other commands (median and p95 of 50 runs); the `## cli` section of BENCHMARKS.md
  man [DIR]        a man page per suma command into DIR (default target/man), from its command-line
                   definition";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["sandbox", "up"] => sandbox::Sandbox::new(workspace_root()).up().map(|_| ()),
        ["sandbox", "down"] => sandbox::Sandbox::new(workspace_root()).down(),
        ["sandbox", "status"] => sandbox::Sandbox::new(workspace_root()).status(),
        ["test", rest @ ..] => sandbox::test(workspace_root(), rest),
        ["crash-matrix"] => crash_matrix::run(workspace_root()),
        ["demo"] => sandbox::demo(workspace_root()),
        ["bench", "auth", rest @ ..] => bench::auth(workspace_root(), rest),
        ["bench", "canary"] => bench_canary::canary(workspace_root()),
        ["bench", "compliance"] => bench_compliance::compliance(workspace_root()),
        ["bench", "cli"] => bench_cli::cli(workspace_root()),
        ["bench", "switchover"] => bench_switchover::switchover(workspace_root()),
        ["bench", name, ..] => Err(bench::unknown(name)),
        ["man"] => man(&workspace_root().join("target/man")),
        ["man", dir] => man(&PathBuf::from(dir)),
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

/// `cargo xtask man`: suma writes its own pages (`suma man --out DIR`, hidden), so they come from the
/// same definition the binary parses with.
fn man(dir: &std::path::Path) -> Result<(), String> {
    let status = cargo::command()
        .args(["run", "--quiet", "--bin", "suma", "--", "man", "--out"])
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`suma man` failed: {status}"));
    }
    let pages = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .count();
    println!("{pages} man pages in {}", dir.display());
    Ok(())
}

/// The workspace root, found from this crate's manifest directory.
///
/// The value cargo sets at run time wins over the compiled-in one: a cached target directory shared by
/// checkouts at different paths (CI's clone, a developer's tree) would otherwise point at the wrong tree.
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}
