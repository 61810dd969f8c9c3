//! Signals on the real binary: SIGTERM (a CI runner cancelling the job) in the middle of a canary's
//! traffic step puts all traffic back on stable before the process exits 130, journals the operation as
//! interrupted, and hands the lock back at once, so `abort` (or `resume`) can take over immediately.

use std::time::Duration;

use super::scenarios::weights;
use super::{run_async, Env};
use suma::journal::OperationStatus;

const IMAGE: &str = "registry.local/auth-service:3.0.0-signal";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_a_traffic_step_restores_stable_and_exits_resumable() {
    crate::require_sandbox!();
    let env = Env::seed("signal", &|e| {
        e["canary"] = serde_norway::from_str(
            "{ steps: [{ weight: 50, duration: 10m }], interval: 1s, window: 15s, min_samples: 1, failure_limit: 0, \
               no_data: fail, queries: { error_rate: 'vector(0)', p95_latency_ms: 'vector(10)', samples: 'vector(100)' } }",
        )
        .unwrap();
    })
    .await;
    let child = crate::common::start(env.suma(&["deploy", "canary", "--image", IMAGE, "--yes"]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while weights(&env).await != (50, 50) {
        assert!(tokio::time::Instant::now() < deadline, "the canary never reached 50%");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    crate::common::send_signal(&child.id().to_string(), "TERM");
    let out = tokio::task::spawn_blocking(move || crate::common::finish(child))
        .await
        .unwrap();
    let stderr = &out.stderr;
    assert_eq!(out.code, 130, "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(
        weights(&env).await,
        (100, 0),
        "all traffic back on stable before the exit"
    );

    let op = env.last_operation(suma::canary::KIND).await.expect("journaled");
    assert_eq!(op.status, OperationStatus::Interrupted);
    assert!(
        op.events
            .iter()
            .any(|e| e.message.contains(suma::canary::WEIGHTS_RESTORED)),
        "{:?}",
        op.events
    );

    // The lock was handed back: abort takes over at once, no lease to wait out.
    let aborted = run_async(env.suma(&["deploy", "abort", "--yes"])).await;
    assert_eq!(aborted.code, 1, "{}", aborted.stderr);
    assert_eq!(weights(&env).await, (100, 0));
    let op = env.last_operation(suma::canary::KIND).await.unwrap();
    assert_eq!(op.status, OperationStatus::Aborted);
}
