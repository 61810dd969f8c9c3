//! `cargo xtask bench cli`: the release `suma` binary (the workspace's release profile: thin LTO, stripped)
//! and its cold start. Each command runs 50 times after 5 warm-up runs; the median and the 95th percentile
//! of the wall time of the whole process (exec to exit) are reported, with the binary's size. Goal:
//! `suma --version` under 5 ms. The `## cli` section of BENCHMARKS.md is rewritten between its markers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::update_section;
use crate::process::{self, Result};
use crate::sandbox::target_dir;

const RUNS: usize = 50;
const WARM_UP: usize = 5;
const GOAL: Duration = Duration::from_millis(5);

/// Median and 95th percentile of `RUNS` runs of `suma ARGS`.
fn time(binary: &Path, args: &[&str], root: &Path) -> Result<(Duration, Duration)> {
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..WARM_UP + RUNS {
        let started = Instant::now();
        let status = Command::new(binary)
            .args(args)
            .current_dir(root)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let elapsed = started.elapsed();
        if !status.success() {
            return Err(format!("`suma {}` failed: {status}", args.join(" ")));
        }
        if run >= WARM_UP {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.95)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub fn cli(root: PathBuf) -> Result<()> {
    crate::bench::build_release(&root, "suma", &["--bin", "suma"])?;
    let binary = target_dir(&root).join("release/suma");
    let size = std::fs::metadata(&binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    let config = root.join("deploy/suma.yaml");
    let config = config.to_string_lossy();
    let commands: [(&str, Vec<&str>); 4] = [
        ("suma --version", vec!["--version"]),
        ("suma --help", vec!["--help"]),
        ("suma completion bash", vec!["completion", "bash"]),
        (
            "suma config validate (example configuration)",
            vec!["--config", &config, "config", "validate"],
        ),
    ];
    let mut rows = Vec::new();
    let mut version_median = Duration::MAX;
    for (label, args) in &commands {
        let (median, p95) = time(&binary, args, &root)?;
        if args == &["--version"] {
            version_median = median;
        }
        rows.push(format!("| `{label}` | {} | {} |", ms(median), ms(p95)));
    }
    let version = process::run(Command::new(&binary).arg("--version"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let date = process::run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let generated = format!(
        "Run by `cargo xtask bench cli` on {date}: `{version}`, release profile, {:.1} MiB. {RUNS} runs of each \
         after {WARM_UP} warm-up runs, wall time of the whole process; load average before: {load}.\n\n\
         | command | median | p95 |\n| --- | --- | --- |\n{}\n\nGoal: `suma --version` under {}: {}.",
        size as f64 / (1024.0 * 1024.0),
        rows.join("\n"),
        ms(GOAL),
        if version_median < GOAL { "met" } else { "not met" }
    );
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = update_section(&old, "cli", "bench-cli", &generated);
    std::fs::write(&path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("bench: wrote the `## cli` section of {}", path.display());
    println!("{generated}");
    Ok(())
}
