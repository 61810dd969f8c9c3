//! A canary gated by Datadog end to end: staging's configuration with `metrics.provider: datadog`, the
//! Datadog client against the sandbox's stand-in, which answers each metric query from the sandbox's real
//! traffic (translated to PromQL over what Prometheus scrapes from the tasks). A healthy release is
//! promoted and a faulty one rolled back on Datadog's numbers, as on Prometheus's. Changes `staging`, so
//! the tests run one at a time.

use crate::canary::{
    assert_back_on_stable, deploy_on_staging, fresh_tag, hold_staging, sandbox_config_with, session, stable_revision,
    staging, ticks, FaultyRelease,
};
use crate::common::{self, run};

/// Staging's configuration gated by Datadog, written beside the test. The latency ceiling is raised:
/// these tests are about the error ratio Datadog counts, and the sandbox's debug-built tasks on a
/// loaded 2-core machine cross the template's 200 ms p95 by chance, which would decide a window before
/// the error ratio does (seen in CI: a faulty canary rolled back on `p95_latency_ms = 208.9`). The
/// latency query still runs and is reported; the Prometheus tests keep the template's ceiling.
fn datadog_gated() -> (tempfile::TempDir, std::path::PathBuf) {
    sandbox_config_with(|config| {
        config["environments"]["staging"]["metrics"] = serde_norway::from_str("{ provider: datadog }").unwrap();
        config["analysis_templates"]["sandbox"]["max_p95_latency_ms"] = serde_norway::Value::from(2000.0);
    })
}

fn deploy(image: &str, config: &std::path::Path) -> common::Run {
    run(deploy_on_staging("canary", image).arg("--config").arg(config))
}

#[tokio::test]
async fn a_healthy_canary_gated_by_datadog_is_promoted_on_the_traffic_it_served() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let (_dir, config) = datadog_gated();
    let image = fresh_tag();

    let out = deploy(&image, &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "promoted", "{report}");
    let ticks = ticks(&report["operation"]);
    let passed: Vec<&serde_json::Value> = ticks.iter().filter(|t| t["verdict"]["verdict"] == "pass").collect();
    assert!(
        !passed.is_empty(),
        "a window was judged on Datadog's numbers: {ticks:?}"
    );
    for tick in &passed {
        // Counted over the window from the canary's own requests, which Datadog tags with its version.
        let samples = tick["measurements"]["Answered"]["samples"].as_f64().unwrap();
        assert!(samples >= 20.0, "{tick}");
        let checks = tick["measurements"]["Answered"]["checks"].as_array().unwrap();
        let error_rate = checks.iter().find(|c| c["metric"] == "error_rate").unwrap();
        assert!(
            error_rate["query"]
                .as_str()
                .unwrap()
                .contains("trace.http.request.errors"),
            "{error_rate}"
        );
        assert!(error_rate["value"].as_f64().unwrap() < 0.005, "{error_rate}");
    }
    let promoted = report["operation"]["steps"][0]["facts"]["release_task_definition"]
        .as_str()
        .unwrap();
    assert_eq!(stable_revision(aws.as_ref(), &env).await, promoted);
    assert_back_on_stable(aws.as_ref(), &env).await;
}

#[tokio::test]
async fn a_faulty_canary_gated_by_datadog_is_rolled_back_on_its_error_rate() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let _faulty = FaultyRelease;
    let (_dir, config) = datadog_gated();

    let out = deploy(&format!("{}-errors", fresh_tag()), &config);
    assert_eq!(out.code, 1, "a rolled-back canary exits 1: {}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "rolled-back", "{report}");
    assert!(
        report["outcome"]["reason"].as_str().unwrap().contains("error_rate"),
        "{}",
        report["outcome"]
    );
    let failed = ticks(&report["operation"])
        .into_iter()
        .find(|t| t["verdict"]["verdict"] == "fail")
        .expect("a failed window");
    let checks = failed["measurements"]["Answered"]["checks"].as_array().unwrap().clone();
    let error_rate = checks.iter().find(|c| c["metric"] == "error_rate").unwrap();
    // The sandbox's faulty release fails 5% of its requests: Datadog's counted ratio sees it. A window
    // holds a few dozen canary requests, so the share seen varies with the draw (3 errors of 29 is 10%):
    // the band is wide, and the point is that it is a share of the window's requests, not zero.
    let value = error_rate["value"].as_f64().unwrap();
    assert!((0.01..0.3).contains(&value), "{error_rate}");
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(stable_revision(aws.as_ref(), &env).await, before);
}
