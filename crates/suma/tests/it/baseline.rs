//! The canary judged against stable on the sandbox's real traffic: a release 300 ms slower on `/api/*`
//! (the agent's `-slow` image) under an absolute latency bound it never reaches is caught by the
//! comparison with stable alone, each side's per-interval p95 read from Prometheus and compared by
//! Mann-Whitney, and the journal keeps the score and every comparison's p-value. Changes `staging`, so
//! it runs alone.

use crate::canary::{
    assert_back_on_stable, deploy_on_staging, fresh_tag, hold_staging, sandbox_config_with, stable_revision, ticks,
    FaultyRelease,
};
use crate::common::{self, run};

#[tokio::test]
async fn a_slower_canary_under_loose_thresholds_is_rolled_back_by_its_score_against_stable() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let _faulty = FaultyRelease;
    let (_dir, config) = sandbox_config_with(|config| {
        let canary = &mut config["environments"]["staging"]["canary"];
        // Loose enough that only the comparison can see 300 ms; a window of six 5 s intervals per side.
        canary["max_p95_latency_ms"] = 5000.into();
        canary["window"] = "30s".into();
        canary["baseline"] = serde_norway::from_str("{ error_rate_weight: 50, latency_weight: 50 }").unwrap();
    });

    let out = run(deploy_on_staging("canary", &format!("{}-slow", fresh_tag()))
        .arg("--config")
        .arg(&config));
    assert_eq!(out.code, 1, "a rolled-back canary exits 1: {}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "rolled-back", "{report}");
    let ticks = ticks(&report["operation"]);
    let failed = ticks
        .iter()
        .find(|t| t["verdict"]["verdict"] == "fail")
        .unwrap_or_else(|| panic!("no failed analysis: {ticks:?}"));
    let reasons = failed["verdict"]["reasons"].to_string();
    assert!(reasons.contains("latency higher than stable"), "{reasons}");
    assert!(reasons.contains("baseline score 50 below the marginal 75"), "{reasons}");
    assert!(
        !reasons.contains("p95_latency_ms ="),
        "the absolute bound held: {reasons}"
    );

    // The journal keeps the score and each comparison with its p-value and both sides' figures.
    let baseline = &failed["baseline"];
    assert_eq!(baseline["score"], 50.0, "{baseline}");
    let comparisons = baseline["comparisons"].as_array().unwrap();
    let latency = comparisons.iter().find(|c| c["metric"] == "latency").unwrap();
    assert_eq!(latency["outcome"], "high", "{latency}");
    assert!(latency["p_value"].as_f64().unwrap() < 0.05, "{latency}");
    let (canary_ms, stable_ms) = (latency["canary"].as_f64().unwrap(), latency["stable"].as_f64().unwrap());
    assert!(
        canary_ms > stable_ms + 200.0,
        "the canary's median p95 is the slow one: {latency}"
    );
    let error_rate = comparisons.iter().find(|c| c["metric"] == "error_rate").unwrap();
    assert_eq!(error_rate["outcome"], "pass", "{error_rate}");

    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(
        stable_revision(aws.as_ref(), &env).await,
        before,
        "stable never changed"
    );
}
