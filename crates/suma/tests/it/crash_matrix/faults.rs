//! The fault runs: each mutating command of the matrix runs with the AWS fault proxy between it and moto,
//! 30% of its AWS requests (its lock's DynamoDB calls included) answered with throttling, 500, 503, an
//! answer slower than its operation timeout, or a reset. Each run must either complete (the SDK's retries
//! absorb the faults), end safely (rolled back or undone), fail with a message before it began (nothing
//! journaled, and the scenario's `untouched` state), or stop resumable with a message, and then a
//! fault-free `resume` finishes it; in every case the lock ends free, the operation finished, and the
//! kind's `safe` invariant holds. One line per run, with the faults injected, then a total.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::scenarios::all;
use super::{run_async, Env, Finish, Scenario};
use crate::common::sandbox_var;

/// Share of AWS requests that fail.
const RATE: &str = "0.3";
/// Seeds per operation kind: each a different sequence of faults.
const SEEDS: [u64; 3] = [11, 23, 37];
/// The client's per-operation timeout in the fault runs; a slow answer takes longer.
const OPERATION_TIMEOUT: &str = "4s";
const SLOW: &str = "6s";

/// The proxy process, killed when dropped.
pub struct FaultProxy {
    child: Child,
    pub url: String,
}

impl FaultProxy {
    fn start(seed: u64) -> Option<Self> {
        Self::start_at(RATE, seed)
    }

    /// The proxy without faults: a recorder of the IAM actions of every request.
    pub fn recorder() -> Option<Self> {
        Self::start_at("0", 1)
    }

    fn start_at(rate: &str, seed: u64) -> Option<Self> {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_suma")).with_file_name("aws-fault-proxy");
        if !binary.exists() {
            eprintln!(
                "skipped: {} is not built (`cargo build -p dataplane`)",
                binary.display()
            );
            return None;
        }
        let mut child = Command::new(binary)
            .args([
                "--upstream",
                &sandbox_var("AWS_ENDPOINT_URL"),
                "--rate",
                rate,
                "--slow",
                SLOW,
            ])
            .args(["--seed", &seed.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fault proxy starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Some(Self {
            child,
            url: format!("http://{}", line.trim()),
        })
    }

    /// The IAM actions requested since the last call, and the record cleared.
    pub async fn take_calls(&self) -> std::collections::BTreeSet<String> {
        let url = format!("{}/__calls", self.url);
        let calls: std::collections::BTreeMap<String, u64> = reqwest::get(&url).await.unwrap().json().await.unwrap();
        reqwest::Client::new().delete(&url).send().await.unwrap();
        calls.into_keys().collect()
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/__faults", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How one run under faults ended.
struct FaultRun {
    seed: u64,
    outcome: String,
    faults: serde_json::Value,
    result: Result<(), String>,
}

async fn under_faults(scenario: &dyn Scenario, seed: u64) -> Option<FaultRun> {
    let proxy = FaultProxy::start(seed)?;
    let mut env = Env::seed("fault", &|e| scenario.tweak(e)).await;
    env.vars = scenario.vars(&env);
    env.set_default("aws_operation_timeout", OPERATION_TIMEOUT);
    let prepared = scenario.prepare(&env).await;
    let mut cmd = env.suma(&scenario.command());
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let out = run_async(cmd).await;
    let faults = proxy.stats().await;
    let calls = proxy.take_calls().await;
    drop(proxy);
    // What the command asked of AWS, retries included, is all in the policy `suma iam-policy` gives it.
    let beyond = crate::iam::beyond_policy(&env, &scenario.command(), &calls).await;
    let mut outcome = match out.code {
        0 => "completed".to_owned(),
        1 => "exit 1: a step failed or was rolled back".to_owned(),
        code => format!("exit {code}"),
    };
    let mut result = if beyond.is_empty() {
        Ok(())
    } else {
        Err(format!("requests beyond `suma iam-policy`: {beyond:?}"))
    };
    if env.locked().await {
        // Stopped resumable: the message must say something, and a fault-free resume must finish it.
        outcome = format!("stopped resumable ({outcome}), then resumed without faults");
        let said = format!("{}\n{}", out.stdout, out.stderr).contains("resume");
        if !said && result.is_ok() {
            result = Err(format!("stopped without saying how to go on: {}", out.stderr.trim()));
        }
        env.expire_lease().await;
        let args = scenario.finish(&env, Finish::Resume).await;
        let resumed = run_async(env.suma(&args.iter().map(String::as_str).collect::<Vec<_>>())).await;
        if result.is_ok() && ![0, 1].contains(&resumed.code) {
            result = Err(format!("the resume exited {}: {}", resumed.code, resumed.stderr.trim()));
        }
        if result.is_ok() && env.locked().await {
            result = Err(format!(
                "the environment is still locked after the resume (exit {}): {}\n{}",
                resumed.code,
                resumed.stdout.trim(),
                resumed.stderr.trim()
            ));
        }
    } else if result.is_ok() && [2, 3].contains(&out.code) && !out.stderr.contains("error:") {
        result = Err(format!("failed without a message: {}", out.stderr.trim()));
    }
    if result.is_ok() && env.locked().await {
        result = Err("the environment is still locked".to_owned());
    }
    if result.is_ok() {
        // Nothing began when no operation was journaled, or when the one journaled never started a
        // step (every change happens inside a step whose start is journaled first).
        let began = env
            .last_operation(scenario.kind())
            .await
            .is_some_and(|op| !op.steps.is_empty());
        result = if out.code != 0 && !began {
            outcome = format!("{outcome} before it began");
            scenario.untouched(&env, &prepared).await
        } else {
            scenario.safe(&env, &prepared).await
        };
        // What the command said, so that an inconsistent run can be told from the run alone.
        result = result.map_err(|e| format!("{e}\n  the command said:\n{}", out.stderr.trim()));
    }
    Some(FaultRun {
        seed,
        outcome,
        faults,
        result,
    })
}

async fn fault_runs(scenario: Arc<dyn Scenario>) {
    let mut runs = Vec::new();
    for seed in SEEDS {
        match under_faults(scenario.as_ref(), seed).await {
            Some(run) => runs.push(run),
            None => return,
        }
    }
    let mut consistent = 0;
    for run in &runs {
        consistent += usize::from(run.result.is_ok());
        eprintln!(
            "fault-run {:<16} seed {:>2}: {} with faults {}: {}",
            scenario.kind(),
            run.seed,
            run.outcome,
            run.faults,
            match &run.result {
                Ok(()) => "consistent".to_owned(),
                Err(e) => format!("INCONSISTENT: {e}"),
            }
        );
    }
    eprintln!(
        "fault-run {:<16} {} runs at {RATE} faults, {consistent} consistent",
        scenario.kind(),
        runs.len()
    );
    assert_eq!(
        consistent,
        runs.len(),
        "`{}`: inconsistent fault runs above",
        scenario.kind()
    );
}

/// `SUMA_FAULT_ONLY=KIND` (an operation kind: `runbook`, `secret-rotation`, ...) runs one scenario's
/// fault runs alone, to look into one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_under_aws_faults_completes_or_stops_resumable() {
    crate::require_sandbox!();
    let only = std::env::var("SUMA_FAULT_ONLY").ok();
    let runs = all()
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|k| k == s.kind()))
        .map(|scenario| tokio::spawn(fault_runs(scenario)));
    for run in futures::future::join_all(runs).await {
        run.unwrap();
    }
}
