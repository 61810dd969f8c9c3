//! `cargo xtask bench canary`: in the sandbox (real moto, Prometheus, weighted proxy, load at 40 req/s),
//! how fast a bad canary is taken out of traffic, and what suma itself costs while it supervises a canary.
//!
//! - reaction: `RUNS` canaries of a build with 5% errors; for each, suma's own report gives the time from the
//!   first failed analysis to the weights restored (`summary.failure_to_restore_ms`, from journal timestamps);
//!   the same for `RUNS` blue/green deploys of that build, where the restore is one flip back to blue;
//! - cost: one healthy canary and one healthy blue/green deploy supervised end to end: wall time, CPU time
//!   (user + system) and peak resident memory of the `suma` process, sampled from `/proc` every 50 ms.
//!
//! The `## canary` section of BENCHMARKS.md is rewritten between its markers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::update_section;
use crate::process::Result;
use crate::sandbox::{target_dir, Sandbox};

/// Faulty canaries measured; each takes about 15 s in the sandbox.
const RUNS: usize = 3;

/// What one `suma deploy canary` run cost and answered.
struct Run {
    exit: Option<i32>,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    stdout: String,
}

pub fn canary(root: PathBuf) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let vars = sandbox.up()?;
    let suma = target_dir(&root).join("debug/suma");
    let tag = |kind: &str| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("registry.example/auth-service:bench-{kind}-{secs}")
    };

    let mut rows = Vec::new();
    let mut reactions = Vec::new();
    for strategy in ["canary", "bluegreen"] {
        eprintln!("bench: a healthy {strategy} deploy, supervised end to end");
        let healthy = deploy(&suma, &vars, strategy, &tag(&format!("{strategy}-healthy")))?;
        if healthy.exit != Some(0) {
            return Err(format!(
                "the healthy {strategy} deploy was not promoted (exit {:?})",
                healthy.exit
            ));
        }
        rows.push(row(&format!("{strategy}: healthy, promoted"), &healthy));
        let mut times = Vec::new();
        // A faulty release is a faulty image: the agent runs a tag ending in `-errors` with 5% errors.
        for i in 0..RUNS {
            eprintln!("bench: faulty {strategy} deploy {}/{RUNS}", i + 1);
            let run = deploy(
                &suma,
                &vars,
                strategy,
                &format!("{}-errors", tag(&format!("{strategy}-faulty{i}"))),
            )?;
            if run.exit != Some(1) {
                return Err(format!(
                    "the faulty {strategy} deploy was not rolled back (exit {:?})",
                    run.exit
                ));
            }
            let ms = json_number(&run.stdout, "failure_to_restore_ms")
                .ok_or("suma's report has no `failure_to_restore_ms`")?;
            times.push(ms);
            rows.push(row(&format!("{strategy}: faulty (5% errors), rolled back"), &run));
        }
        times.sort_by(f64::total_cmp);
        reactions.push((strategy, times));
    }
    let reaction_lines: Vec<String> = reactions
        .iter()
        .map(|(strategy, times)| {
            format!(
                "- {strategy}: median {:.1} s, min {:.1} s, max {:.1} s",
                times[times.len() / 2] / 1000.0,
                times[0] / 1000.0,
                times[times.len() - 1] / 1000.0
            )
        })
        .collect();
    let head = crate::bench::head_commit(&root);
    let generated = format!(
        "Run by `cargo xtask bench canary` at commit `{head}`, in the sandbox: moto, real Prometheus scraping \
         both services every second, the weighted proxy following the ALB rule, 40 req/s of load; canary policy \
         of the sandbox (steps 10% and 50% of 20 s, analysis every 5 s over 15 s, failure budget 1; blue/green \
         bakes 20 s and keeps blue 10 s more). `suma` is the debug build the sandbox uses, so CPU and memory are \
         upper bounds.\n\n\
         **From the first failed analysis to all traffic back on stable** (journal timestamps, {RUNS} runs each):\n\n{}\n\n\
         With a failure budget of 1 the second failed analysis, one interval (5 s) after the first, decides \
         unless the first fails fast (10× the limit); the rollback itself (weights first, for blue/green one \
         flip back to blue) takes the rest.\n\n\
         | run | wall | suma CPU (user+sys) | CPU share | suma peak RSS |\n| --- | --- | --- | --- | --- |\n{}",
        reaction_lines.join("\n"),
        rows.join("\n")
    );
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, update_section(&old, "canary", "canary-bench", &generated))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{generated}");
    eprintln!("bench: wrote the `## canary` section of {}", path.display());
    Ok(())
}

/// One table row: what a run cost.
fn row(what: &str, r: &Run) -> String {
    format!(
        "| {what} | {:.1} s | {:.2} s | {:.1}% | {} MiB |",
        r.wall.as_secs_f64(),
        r.cpu.as_secs_f64(),
        100.0 * r.cpu.as_secs_f64() / r.wall.as_secs_f64(),
        r.peak_rss_kib / 1024
    )
}

/// `suma deploy STRATEGY` on staging, sampling its CPU time and peak memory until it exits.
fn deploy(suma: &Path, vars: &[(String, String)], strategy: &str, image: &str) -> Result<Run> {
    let out_path = std::env::temp_dir().join(format!("suma-bench-canary-{}.json", std::process::id()));
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(suma)
        .args([
            "deploy", strategy, "--env", "staging", "--image", image, "--yes", "--output", "json", "-q",
        ])
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SUMA_ACTOR", "bench")
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", suma.display()))?;
    let pid = child.id();
    let (mut cpu, mut peak) = (Duration::ZERO, 0);
    let status = loop {
        if let Some(sample) = cpu_time(pid) {
            cpu = sample;
        }
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let wall = start.elapsed();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    Ok(Run {
        exit: status.code(),
        wall,
        cpu,
        peak_rss_kib: peak,
        stdout,
    })
}

/// User + system CPU time of a live process, from `/proc/PID/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s, which is `CLK_TCK` on Linux).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow the last `)`.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Peak resident memory (`VmHWM`) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The first number after `"key":` in a JSON text (enough for suma's own report; xtask has no JSON parser).
pub(crate) fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{cpu_time, json_number, peak_rss_kib};

    #[test]
    fn numbers_are_found_by_key() {
        let report = "{\n  \"summary\": {\n    \"duration_ms\": 15200,\n    \"failure_to_restore_ms\": 5312\n  }\n}";
        assert_eq!(json_number(report, "failure_to_restore_ms"), Some(5312.0));
        assert_eq!(json_number(report, "duration_ms"), Some(15200.0));
        assert_eq!(
            json_number("{\"failure_to_restore_ms\": null}", "failure_to_restore_ms"),
            None
        );
        assert_eq!(json_number("{}", "failure_to_restore_ms"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(peak_rss_kib(pid).unwrap() > 0);
    }
}
