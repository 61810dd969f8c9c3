//! `cargo xtask bench switchover`: the zero-data-loss switchover measured where it is proven, in the
//! sandbox test `dr::a_switchover_under_continuous_registrations_loses_no_acknowledged_write` (staging's DR
//! instance a real streaming replica behind a link that delivers the WAL 8 s late, registrations at the
//! front door the whole time). The bench runs that test a few times with `SUMA_BENCH_OUT` set, where the
//! test appends its figures, and writes the `## switchover` section of `BENCHMARKS.md`: the RPO (writes
//! acknowledged and lost, goal 0) and the time suma adds beyond its waits for AWS and the databases (goal
//! under 2 s).

use std::path::PathBuf;

use crate::bench::update_section;
use crate::bench_canary::json_number;
use crate::process::{self, Result};
use crate::sandbox::Sandbox;

const RUNS: usize = 3;
const TEST: &str = "dr::a_switchover_under_continuous_registrations_loses_no_acknowledged_write";

pub fn switchover(root: PathBuf) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let vars = sandbox.up()?;
    let out = root.join("target/bench/switchover.jsonl");
    std::fs::create_dir_all(out.parent().expect("a parent"))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    for run in 1..=RUNS {
        eprintln!("bench: switchover run {run} of {RUNS}");
        let mut cmd = crate::cargo::command();
        cmd.args(["test", "-q", "-p", "suma", "--test", "it", "--", "--exact", TEST])
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SUMA_BENCH_OUT", &out)
            .current_dir(&root);
        process::run(&mut cmd)?;
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    // One JSON object per run, numbers only.
    let runs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let number = |line: &str, key: &str| json_number(line, key).unwrap_or(f64::NAN);
    let rows: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "| {} | {} | {} | {} | {:.1} s | {:.1} s | {:.2} s | {:.1} s |",
                i + 1,
                number(r, "acknowledged"),
                number(r, "lost"),
                number(r, "refused"),
                number(r, "sessions_closed_after_ms") / 1000.0,
                number(r, "caught_up_after_ms") / 1000.0,
                number(r, "orchestration_ms") / 1000.0,
                number(r, "waited_ms") / 1000.0,
            )
        })
        .collect();
    let lost: f64 = runs.iter().map(|r| number(r, "lost")).sum();
    let worst_orchestration = runs
        .iter()
        .map(|r| number(r, "orchestration_ms") / 1000.0)
        .fold(0.0, f64::max);
    let head = crate::bench::head_commit(&root);
    let generated = format!(
        "Run by `cargo xtask bench switchover` at commit `{head}`: the sandbox test `{TEST}`, {RUNS} times. \
         Staging's DR instance is a real PostgreSQL streaming replica that receives the WAL 8 s late; \
         registrations of new accounts go to staging's front door the whole time; `suma dr switchover` (debug \
         build) drains the primary, waits for its sessions to close, writes the marker, waits for the replica \
         to replay it, promotes (the sandbox promotes the replica's server), repoints, switches DNS and \
         verifies.\n\n\
         **RPO: {lost} acknowledged write(s) lost over {RUNS} runs** (goal 0). **Orchestration: at most \
         {worst_orchestration:.2} s** (goal under 2 s): the switch's wall time less the time spent waiting for \
         ECS, Route 53 and the databases.\n\n\
         | run | acknowledged | lost | refused during the switch | sessions closed after the drain | marker replayed after | orchestration | waits |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n{}",
        rows.join("\n")
    );
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(
        &path,
        update_section(&old, "switchover", "switchover-bench", &generated),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{generated}");
    eprintln!("bench: wrote the `## switchover` section of {}", path.display());
    Ok(())
}
