//! What a run measured and how it is told: each endpoint as a share of its limit, the goals, and the
//! same numbers on the console, as the Markdown fragment `cargo xtask bench auth` puts into BENCHMARKS.md,
//! and as JSON.

use std::time::Duration;

use serde_json::json;

use crate::bare::JwtRate;
use crate::Step;

/// One run's measurements.
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) cpu_model: String,
    pub(crate) cpus: usize,
    pub(crate) duration: Duration,
    /// Whether the bare rates and the login steps ran (not `--hot-path-only`).
    pub(crate) full: bool,
    pub(crate) threads: usize,
    pub(crate) hash_per_sec: f64,
    pub(crate) jwt: Vec<JwtRate>,
    /// The bare store limits, as steps.
    pub(crate) limits: Vec<Step>,
    pub(crate) steps: Vec<Step>,
    /// The best login throughput of the closed-loop steps.
    pub(crate) peak: f64,
    /// `refresh_tokens` rows updated during the refresh step, and how many of those were HOT.
    pub(crate) hot_updates: Option<(i64, i64)>,
}

/// A goal, whether it was met, and the figure that says so.
type Goal = (&'static str, bool, String);

impl Report {
    /// The throughput of a named step (or limit), 0 when it did not run.
    fn throughput(&self, name: &str) -> f64 {
        self.limits
            .iter()
            .chain(&self.steps)
            .find(|s| s.name == name)
            .map_or(0.0, |s| s.throughput)
    }

    /// Each endpoint against the limit of what it cannot do without: (endpoint, req/s, limit, limit/s).
    fn ratios(&self) -> Vec<(&'static str, f64, &'static str, f64)> {
        let (refresh, me) = (self.throughput("refresh"), self.throughput("me"));
        [
            ("login (peak)", self.peak, "Argon2id hash", self.hash_per_sec),
            (
                "refresh",
                refresh,
                "PostgreSQL commit",
                self.throughput("postgres_commit"),
            ),
            ("/me", me, "Redis round trip", self.throughput("redis_round_trip")),
            ("/me", me, "HTTP ceiling", self.throughput("http_ceiling")),
        ]
        .into_iter()
        .filter(|(_, rate, _, limit)| *rate > 0.0 && *limit > 0.0)
        .collect()
    }

    pub(crate) fn goals(&self) -> Vec<Goal> {
        let (peak, hash_per_sec) = (self.peak, self.hash_per_sec);
        let (refresh, me, ceiling) = (
            self.throughput("refresh"),
            self.throughput("me"),
            self.throughput("http_ceiling"),
        );
        let open = self
            .steps
            .iter()
            .find(|s| s.name == "login_open_loop_80pct")
            .map(|s| s.p99_ms);
        let mut goals = Vec::new();
        if self.full {
            goals.push((
                "login throughput >= 90% of bare hash rate",
                peak >= 0.9 * hash_per_sec,
                format!("{peak:.1}/s vs {hash_per_sec:.1}/s"),
            ));
        }
        // The hot path's goals where it ran (not in a run of the mixed step alone).
        let hot_path = self.steps.iter().any(|s| s.name == "me");
        goals.extend(
            [
                ("refresh >= 2000/s", refresh >= 2000.0, format!("{refresh:.0}/s")),
                ("/me >= 12000/s", me >= 12000.0, format!("{me:.0}/s")),
                (
                    "/me >= 50% of the HTTP ceiling",
                    ceiling > 0.0 && me >= 0.5 * ceiling,
                    format!("{:.0}% ({me:.0}/s of {ceiling:.0}/s)", 100.0 * me / ceiling.max(1.0)),
                ),
            ]
            .into_iter()
            .filter(|_| hot_path),
        );
        if self.full {
            goals.push((
                "login p99 < 250 ms at 80% of peak",
                open.is_some_and(|p| p < 250.0),
                open.map(|p| format!("{p:.1} ms")).unwrap_or_else(|| "not run".into()),
            ));
        }
        goals
    }

    fn hot_line(&self) -> Option<String> {
        self.hot_updates.map(|(updates, hot)| {
            format!(
                "`refresh_tokens` rows updated during the refresh step: {updates}, of which HOT (in place, no \
                 index touched): {hot} ({:.0}%)",
                100.0 * hot as f64 / updates.max(1) as f64
            )
        })
    }

    /// The run on the console.
    pub(crate) fn print(&self) {
        println!("auth-service benchmark against {}", self.url);
        println!("machine: {} ({} CPUs)", self.cpu_model, self.cpus);
        if self.full {
            println!(
                "bare Argon2id (m=19456,t=2,p=1) hash rate: {:.1}/s on {} threads",
                self.hash_per_sec, self.threads
            );
        }
        for rate in &self.jwt {
            println!(
                "bare {} on one thread: {:.0} signs/s, {:.0} verifies/s",
                rate.algorithm, rate.signs, rate.verifies
            );
        }
        println!();
        println!(
            "{:<24} {:>5} {:>10} {:>8} {:>9} {:>9} {:>9} {:>7}",
            "step", "conc", "req/s", "ok", "p50 ms", "p95 ms", "p99 ms", "errors"
        );
        for s in self.limits.iter().chain(&self.steps) {
            println!(
                "{:<24} {:>5} {:>10.1} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                s.name, s.concurrency, s.throughput, s.ok, s.p50_ms, s.p95_ms, s.p99_ms, s.errors
            );
        }
        println!();
        for (endpoint, rate, what, limit) in self.ratios() {
            println!(
                "{endpoint}: {rate:.0}/s is {:.0}% of one {what} ({limit:.0}/s)",
                100.0 * rate / limit
            );
        }
        if let Some(line) = self.hot_line() {
            println!("{line}");
        }
        println!();
        for (goal, met, value) in self.goals() {
            println!("{} {goal}: {value}", if met { "met   " } else { "missed" });
        }
    }

    /// The run as a Markdown fragment: machine, bare rates, steps, shares of the limits, goals.
    pub(crate) fn markdown(&self) -> String {
        let mut md = format!(
            "Machine: {} ({} CPUs). Each step runs {} s.\n\n",
            self.cpu_model,
            self.cpus,
            self.duration.as_secs()
        );
        if self.full {
            md.push_str(&format!(
                "- Bare Argon2id (m=19456 KiB, t=2, p=1) hash rate: **{:.1}/s** on {} threads\n",
                self.hash_per_sec, self.threads
            ));
        }
        for rate in &self.jwt {
            let bits = if rate.algorithm.rsa() { " (2048-bit key)" } else { "" };
            md.push_str(&format!(
                "- Bare {}{bits} on one thread: {:.0} signs/s, {:.0} verifies/s\n",
                rate.algorithm, rate.signs, rate.verifies
            ));
        }
        if self.full || !self.jwt.is_empty() {
            md.push('\n');
        }
        md.push_str("| step | concurrency | req/s | ok | p50 ms | p95 ms | p99 ms | errors |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for s in self.limits.iter().chain(&self.steps) {
            md.push_str(&format!(
                "| {} | {} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |\n",
                s.name, s.concurrency, s.throughput, s.ok, s.p50_ms, s.p95_ms, s.p99_ms, s.errors
            ));
        }
        let ratios = self.ratios();
        if !ratios.is_empty() {
            md.push_str(
                "\n| endpoint | req/s | its limit | limit/s | share of the limit |\n|---|---:|---|---:|---:|\n",
            );
            for (endpoint, rate, what, limit) in ratios {
                md.push_str(&format!(
                    "| {endpoint} | {rate:.0} | one {what} | {limit:.0} | {:.0}% |\n",
                    100.0 * rate / limit
                ));
            }
        }
        if let Some(line) = self.hot_line() {
            md.push_str(&format!("\n{line}.\n"));
        }
        let goals = self.goals();
        if !goals.is_empty() {
            md.push_str("\n| goal | result | measured |\n|---|---|---|\n");
        }
        for (goal, met, value) in goals {
            md.push_str(&format!(
                "| {goal} | {} | {value} |\n",
                if met { "met" } else { "**missed**" }
            ));
        }
        md
    }

    /// The run as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "url": self.url,
            "machine": { "cpu_model": self.cpu_model, "cpus": self.cpus },
            "duration_seconds": self.duration.as_secs(),
            "argon2id": {
                "m_cost": 19456, "t_cost": 2, "p_cost": 1,
                "threads": self.threads, "hashes_per_second": self.hash_per_sec,
            },
            "jwt_per_thread": self.jwt
                .iter()
                .map(|r| (
                    r.algorithm.name().to_owned(),
                    json!({ "signs_per_second": r.signs, "verifies_per_second": r.verifies }),
                ))
                .collect::<serde_json::Map<_, _>>(),
            "login_peak_per_second": self.peak,
            "limits": self.limits,
            "steps": self.steps,
            "refresh_token_updates": self.hot_updates.map(|(updates, hot)| json!({ "updates": updates, "hot": hot })),
            "goals": self.goals().iter().map(|(g, m, v)| json!({ "goal": g, "met": m, "value": v })).collect::<Vec<_>>(),
        })
    }
}
