//! How `auth-bench` drives load and states it: closed loops of concurrent workers (alone, or two in
//! alternating turns so both see the machine over the same stretch of time) and the step each gives
//! (throughput and latency percentiles).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    pub(crate) seconds: f64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) throughput: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

pub(crate) fn step(
    name: &str,
    concurrency: usize,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
    errors: u64,
) -> Step {
    latencies.sort();
    let ok = latencies.len() as u64;
    Step {
        name: name.to_owned(),
        concurrency,
        seconds: elapsed.as_secs_f64(),
        ok,
        errors,
        throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        p99_ms: percentile(&latencies, 0.99),
    }
}

/// Runs `concurrency` closed-loop workers for `duration`; worker `i` calls `op(i)` repeatedly.
pub(crate) async fn closed_loop<F, Fut>(name: &str, concurrency: usize, duration: Duration, op: F) -> Step
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let (latencies, errors, elapsed) = closed_loop_raw(concurrency, duration, Arc::new(op)).await;
    step(name, concurrency, elapsed, latencies, errors)
}

/// Two closed loops of `concurrency` workers in turns of `duration / slices` each, `slices` times, so
/// that both see the machine as it is over the same stretch of time (a shared machine's speed drifts
/// by tens of percent over seconds: two steps one after the other compare two machines). `/me` and
/// the HTTP ceiling it is stated against run this way.
pub(crate) async fn alternating<A, AF, B, BF>(
    (name_a, op_a): (&str, A),
    (name_b, op_b): (&str, B),
    concurrency: usize,
    duration: Duration,
    slices: u32,
) -> [Step; 2]
where
    A: Fn(usize) -> AF + Send + Sync + 'static,
    AF: std::future::Future<Output = anyhow::Result<()>> + Send,
    B: Fn(usize) -> BF + Send + Sync + 'static,
    BF: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let slice = duration / slices.max(1);
    let (op_a, op_b) = (Arc::new(op_a), Arc::new(op_b));
    let mut a = (Vec::new(), 0, Duration::ZERO);
    let mut b = (Vec::new(), 0, Duration::ZERO);
    let add = |total: &mut (Vec<Duration>, u64, Duration), (latencies, errors, elapsed)| {
        total.0.extend(latencies);
        total.1 += errors;
        total.2 += elapsed;
    };
    for _ in 0..slices.max(1) {
        add(&mut a, closed_loop_raw(concurrency, slice, op_a.clone()).await);
        add(&mut b, closed_loop_raw(concurrency, slice, op_b.clone()).await);
    }
    [
        step(name_a, concurrency, a.2, a.0, a.1),
        step(name_b, concurrency, b.2, b.0, b.1),
    ]
}

/// The workers of [`closed_loop`]: every latency, the errors, and the time they took.
async fn closed_loop_raw<F, Fut>(concurrency: usize, duration: Duration, op: Arc<F>) -> (Vec<Duration>, u64, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let op = op.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(Ok((lat, e))) = tasks.join_next().await {
        all.extend(lat);
        errors += e;
    }
    (all, errors, start.elapsed())
}
