//! Canary deployment and rollback against the sandbox: the SDK wiring on moto (task-definition
//! registration, service updates, rule weights), and end to end with the real binary. Tests here change
//! the `staging` environment, so they run one at a time.

use crate::common;

use std::sync::Arc;

use common::{run, sandbox_config, sandbox_session, suma};
use suma::aws::ecs::{Rollout, ServiceUpdate};
use suma::aws::elb::WeightedTarget;
use suma::aws::AwsApis;

pub(crate) fn staging() -> suma::config::Environment {
    let path = sandbox_config();
    let text = std::fs::read_to_string(&path).unwrap();
    let config = suma::config::parse_str(&text, &path).unwrap();
    config.environment("staging").unwrap().clone()
}

pub(crate) async fn session(env: &suma::config::Environment) -> Arc<dyn AwsApis> {
    let _ = sandbox_session().await;
    let options = suma::aws::AwsOptions {
        profile: None,
        operation_timeout: std::time::Duration::from_secs(20),
    };
    Arc::new(suma::aws::AwsSession::connect(&options, [&env.primary_region, &env.dr_region]).await)
}

/// Staging held for one test's deploy: the exclusive hold (kept while the test runs), the environment,
/// its AWS session and the stable service's revision before the deploy.
pub(crate) async fn hold_staging() -> (
    common::StagingExclusive,
    suma::config::Environment,
    Arc<dyn AwsApis>,
    String,
) {
    let exclusive = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let before = stable_revision(aws.as_ref(), &env).await;
    (exclusive, env, aws, before)
}

/// Every analysis tick of a finished deploy's journal record, oldest first.
pub(crate) fn ticks(op: &serde_json::Value) -> Vec<serde_json::Value> {
    op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["facts"]["ticks"].as_array())
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test]
async fn registering_a_revision_changes_only_the_image() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let ecs = aws.ecs(&env.primary_region);
    let live = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap();
    let base = &live[0].task_definition;
    let before = ecs.describe_task_definition(base).await.unwrap();
    let registered = ecs
        .register_revision(
            base,
            &env.ecs.container,
            &suma_core::contract::release("registry.example/auth-service:9.9.9", suma_core::contract::CANARY),
        )
        .await
        .unwrap();
    assert_eq!(registered.family, before.family);
    assert!(registered.revision > before.revision);
    assert_eq!(registered.status, "ACTIVE");
    assert_eq!(registered.containers.len(), before.containers.len());
    assert_eq!(registered.containers[0].name, "auth-service");
    assert_eq!(registered.containers[0].image, "registry.example/auth-service:9.9.9");
    let spec = ecs.describe_task_definition_spec(&registered.arn).await.unwrap().spec;
    let vars = &spec.container(&env.ecs.container).unwrap().environment;
    let var = |name: &str| vars.iter().find(|v| v.name == name).map(|v| v.value.as_str());
    assert_eq!(
        var("SERVICE_VERSION"),
        Some("9.9.9"),
        "the version moves with the image"
    );
    assert_eq!(var("DEPLOYMENT_LABEL"), Some("canary"));
    assert_eq!(
        vars.iter().filter(|v| v.name == "DEPLOYMENT_LABEL").count(),
        1,
        "replaced, not added twice"
    );

    let err = ecs
        .register_revision(
            base,
            "no-such-container",
            &suma_core::contract::release("x:1", "stable"),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has no container `no-such-container`"),
        "{err}"
    );
}

#[tokio::test]
async fn service_updates_roll_out_and_weights_round_trip() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let ecs = aws.ecs(&env.primary_region);
    let base = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    let canary = ecs
        .register_revision(
            &base,
            &env.ecs.container,
            &suma_core::contract::release("registry.example/auth-service:9.9.8", suma_core::contract::CANARY),
        )
        .await
        .unwrap();
    let update = ServiceUpdate {
        task_definition: Some(canary.arn.clone()),
        desired_count: Some(1),
        force_new_deployment: false,
    };
    ecs.update_service(&env.ecs.cluster, &env.ecs.canary_service, &update)
        .await
        .unwrap();
    let after = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.canary_service))
        .await
        .unwrap();
    assert_eq!(after[0].desired, 1);
    // The sandbox's ECS agent starts a real task: in progress until it is healthy, then completed.
    assert_eq!(after[0].rollout(&canary.arn), Rollout::InProgress);
    let start = std::time::Instant::now();
    let after = loop {
        let after = ecs
            .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.canary_service))
            .await
            .unwrap();
        if after[0].rollout(&canary.arn) == Rollout::Completed || start.elapsed() > std::time::Duration::from_secs(60) {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(after[0].rollout(&canary.arn), Rollout::Completed);
    assert_eq!((after[0].running, after[0].pending), (1, 0));
    assert_eq!(
        after[0].rollout(&base),
        Rollout::InProgress,
        "not the revision asked about"
    );

    let elb = aws.elb(&env.primary_region);
    let rule = env.alb.rule_arn.as_str();
    let split = [
        WeightedTarget {
            target_group_arn: env.alb.stable_target_group_arn.to_string(),
            weight: 90,
        },
        WeightedTarget {
            target_group_arn: env.alb.canary_target_group_arn.to_string(),
            weight: 10,
        },
    ];
    elb.set_weights(rule, &split).await.unwrap();
    assert_eq!(elb.rule_weights(rule).await.unwrap(), split);

    // Back to the state every other test expects.
    let restore = [
        WeightedTarget {
            target_group_arn: env.alb.stable_target_group_arn.to_string(),
            weight: 100,
        },
        WeightedTarget {
            target_group_arn: env.alb.canary_target_group_arn.to_string(),
            weight: 0,
        },
    ];
    elb.set_weights(rule, &restore).await.unwrap();
    let zero = ServiceUpdate {
        desired_count: Some(0),
        ..ServiceUpdate::default()
    };
    ecs.update_service(&env.ecs.cluster, &env.ecs.canary_service, &zero)
        .await
        .unwrap();
    assert_eq!(elb.rule_weights(rule).await.unwrap(), restore);
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let revisions_before = aws
        .ecs(&env.primary_region)
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    let out = run(suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        "registry.example/auth-service:2.0.0",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let steps: Vec<&str> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["register", "canary-up", "shift-10", "shift-50", "promote"]);
    assert!(plan["queries"]["error_rate"]
        .as_str()
        .unwrap()
        .contains("deployment=\"canary\""));
    assert_eq!(plan["thresholds"]["max_error_rate"], 0.005);
    let revisions_after = aws
        .ecs(&env.primary_region)
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    assert_eq!(revisions_before, revisions_after);
    assert!(
        aws.elb(&env.primary_region)
            .rule_weights(env.alb.rule_arn.as_str())
            .await
            .unwrap()[0]
            .weight
            == 100
    );
}

#[tokio::test]
async fn deploy_refuses_without_yes_or_with_a_floating_tag() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let out = run(suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        "registry.example/auth-service:latest",
    ]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("must name a pinned tag"), "{}", out.stderr);
    let out = run(suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        "registry.example/auth-service:2.0.1",
    ]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("without confirmation") || out.stderr.contains("preflight"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn rollback_to_a_named_revision_is_journaled() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let ecs = aws.ecs(&env.primary_region);
    let live = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    let label = suma::aws::ecs::task_definition_label(&live).to_owned();
    let state = tempfile::tempdir().unwrap();
    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--to",
        &label,
        "--reason",
        "test rollback",
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ])
    .env("SUMA_STATE_DIR", state.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let op: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(op["kind"], "rollback");
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["parameters"]["reason"], "test rollback");
    assert_eq!(op["steps"][0]["facts"]["previous_task_definition"], live.as_str());
    assert_eq!(op["steps"][1]["status"], "skipped", "no canary was in flight");
    assert_eq!(op["steps"][3]["facts"]["health"], 200, "the service answered /health");

    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--to",
        "auth-service:999",
        "--reason",
        "x",
        "--yes",
        "--timeout",
        "60s",
    ]));
    assert_eq!(out.code, 3, "AWS has no such revision: {}", out.stderr);
    assert!(out.stderr.contains("auth-service:999"), "{}", out.stderr);
}

/// Held while a faulty release runs: when dropped, waits until the faulty tasks' last requests have left
/// the analysis window (15 s in the sandbox), so the next test does not measure them.
pub(crate) struct FaultyRelease;

impl Drop for FaultyRelease {
    fn drop(&mut self) {
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
}

/// A tag no earlier run used, so every deploy registers its own revision.
pub(crate) fn fresh_tag() -> String {
    format!(
        "registry.example/auth-service:e2e-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Weights and canary count after a deploy ended: all traffic on stable, no canary task.
pub(crate) async fn assert_back_on_stable(aws: &dyn AwsApis, env: &suma::config::Environment) {
    let weights = aws
        .elb(&env.primary_region)
        .rule_weights(env.alb.rule_arn.as_str())
        .await
        .unwrap();
    let weight_of = |arn: &str| weights.iter().find(|w| w.target_group_arn == arn).unwrap().weight;
    assert_eq!(weight_of(env.alb.stable_target_group_arn.as_str()), 100);
    assert_eq!(weight_of(env.alb.canary_target_group_arn.as_str()), 0);
    let canary = aws
        .ecs(&env.primary_region)
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.canary_service))
        .await
        .unwrap();
    assert_eq!(canary[0].desired, 0, "the canary is scaled to zero");
}

pub(crate) async fn stable_revision(aws: &dyn AwsApis, env: &suma::config::Environment) -> String {
    aws.ecs(&env.primary_region)
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone()
}

/// The Datadog events the sandbox's stand-in recorded, newest last.
pub(crate) fn datadog_events() -> Vec<serde_json::Value> {
    std::fs::read_to_string(common::sandbox_var("SUMA_SANDBOX_DATADOG_EVENTS"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `suma deploy STRATEGY` (`canary`, `bluegreen`) of `image` on staging, answering yes, in JSON, as
/// `e2e-test`.
pub(crate) fn deploy_on_staging(strategy: &str, image: &str) -> std::process::Command {
    let mut cmd = suma(&[
        "deploy",
        strategy,
        "--env",
        "staging",
        "--image",
        image,
        "--yes",
        "--output",
        "json",
        "--timeout",
        "90s",
    ]);
    cmd.env("SUMA_ACTOR", "e2e-test");
    cmd
}

fn deploy(image: &str) -> std::process::Command {
    deploy_on_staging("canary", image)
}

/// The sandbox's configuration with `edit` applied, written to a file of its own (kept while the
/// directory lives).
pub(crate) fn sandbox_config_with(
    edit: impl FnOnce(&mut serde_norway::Value),
) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(common::sandbox_config()).unwrap()).unwrap();
    edit(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    (dir, path)
}

#[tokio::test]
async fn a_healthy_canary_is_promoted_and_rollback_restores_the_recorded_revision() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let image = fresh_tag();

    let out = run(deploy(&image));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "promoted");
    let op = &report["operation"];
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["steps"][0]["facts"]["stable_task_definition"], before.as_str());
    // Promotion runs the release's own revision, labelled `stable`, not the canary's copy.
    let promoted = op["steps"][0]["facts"]["release_task_definition"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(op["steps"][0]["facts"]["canary_task_definition"], promoted.as_str());
    for step in &op["steps"].as_array().unwrap()[2..4] {
        let ticks = step["facts"]["ticks"].as_array().unwrap();
        assert!(
            ticks.iter().any(|t| t["verdict"]["verdict"] == "pass"),
            "every step measured a passing window: {step}"
        );
        // A window just after a shift may hold too few requests (no data, within the budget); never a failure.
        for tick in ticks {
            assert_ne!(tick["verdict"]["verdict"], "fail", "{tick}");
        }
    }
    assert_eq!(stable_revision(aws.as_ref(), &env).await, promoted);
    assert_back_on_stable(aws.as_ref(), &env).await;
    let version = image.rsplit(':').next().unwrap();
    // The stable tasks were replaced: every one runs the release, says so, and is labelled stable.
    for answer in crate::sandbox_agent::versions_of("auth-service").await {
        assert_eq!(answer["version"], version, "{answer}");
        assert_eq!(answer["deployment"], "stable", "{answer}");
    }
    let event = datadog_events()
        .into_iter()
        .rev()
        .find(|e| e["title"].as_str().unwrap().contains(version))
        .expect("a Datadog event for the deploy");
    assert_eq!(event["alert_type"], "success");
    assert!(event["title"].as_str().unwrap().contains("promoted"), "{event}");
    assert!(
        event["text"].as_str().unwrap().contains("started by: e2e-test"),
        "{event}"
    );
    assert!(event["tags"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(format!("version:{version}"))));

    // Rollback without `--to` goes to the revision recorded before the deploy, not "current minus one".
    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--reason",
        "e2e: back to the recorded revision",
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let op = common::json(&out);
    assert_eq!(op["steps"][0]["facts"]["previous_task_definition"], promoted.as_str());
    assert_eq!(op["steps"][0]["facts"]["target_task_definition"], before.as_str());
    assert_eq!(stable_revision(aws.as_ref(), &env).await, before);
}

#[tokio::test]
async fn a_canary_with_errors_is_rolled_back_within_two_intervals_of_its_first_bad_measurement() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let _faulty = FaultyRelease;

    // A faulty release is a faulty image: the sandbox's agent runs a tag ending in `-errors` with 5% errors.
    let out = run(deploy(&format!("{}-errors", fresh_tag())));
    assert_eq!(out.code, 1, "a rolled-back canary exits 1: {}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "rolled-back", "{report}");
    let op = &report["operation"];
    assert_eq!(op["status"], "failed", "the journal says the canary failed: {op}");
    let ticks = ticks(op);
    let first_bad = ticks
        .iter()
        .position(|t| t["verdict"]["verdict"] == "fail")
        .unwrap_or_else(|| panic!("no failed measurement: {ticks:?}"));
    let rollback_at = ticks
        .iter()
        .position(|t| t["decision"]["decision"] == "rollback")
        .expect("the analysis decided to roll back");
    assert!(
        rollback_at <= first_bad + 2,
        "rolled back at tick {rollback_at}, first bad measurement at tick {first_bad}"
    );
    let reasons = ticks[first_bad]["verdict"]["reasons"].to_string();
    assert!(reasons.contains("error_rate"), "{reasons}");
    // No step hands a failing canary more traffic: a step followed by another ended on a passing
    // analysis. (At 10% a window holds a couple of dozen canary requests, so a 5% fault can go unseen
    // there by chance, 0.95^20 = 36%; it is then caught at 50%.)
    let steps = op["steps"].as_array().unwrap();
    for pair in steps.windows(2) {
        let judged: Vec<&str> = pair[0]["facts"]["ticks"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|t| t["verdict"]["verdict"].as_str().unwrap())
                    .filter(|v| matches!(*v, "pass" | "fail" | "marginal"))
                    .collect()
            })
            .unwrap_or_default();
        if pair[0]["name"].as_str().unwrap().starts_with("shift-") {
            assert_eq!(
                judged.last(),
                Some(&"pass"),
                "`{}` advanced to `{}` on {judged:?}",
                pair[0]["name"],
                pair[1]["name"]
            );
        }
    }
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(
        stable_revision(aws.as_ref(), &env).await,
        before,
        "stable never changed"
    );
    let event = datadog_events().pop().expect("a Datadog event");
    assert_eq!(event["alert_type"], "error");
    assert!(event["title"].as_str().unwrap().contains("rolled back"), "{event}");
}

/// Plays Datadog's evaluator on the sandbox's stand-in: staging's gating monitor (`auto-rollback:true`)
/// turns to `Alert`, and back to `OK` when dropped.
struct GateAlert;

impl GateAlert {
    fn set(state: &str) {
        let path = common::sandbox_var("SUMA_SANDBOX_DATADOG_MONITORS");
        let mut monitors: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let gate = monitors
            .iter_mut()
            .find(|m| {
                let tags = m["tags"].to_string();
                tags.contains("\"auto-rollback:true\"") && tags.contains("\"env:staging\"")
            })
            .expect("staging has a gating monitor (templates/datadog)");
        gate["overall_state"] = state.into();
        std::fs::write(&path, serde_json::to_string_pretty(&monitors).unwrap()).unwrap();
    }

    fn raise() -> Self {
        Self::set("Alert");
        Self
    }
}

impl Drop for GateAlert {
    fn drop(&mut self) {
        Self::set("OK");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gating_monitor_that_alerts_mid_canary_rolls_it_back_at_the_next_analysis() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;

    // A healthy release: only the monitor can stop it.
    let deploying = std::thread::spawn({
        let cmd = deploy(&fresh_tag());
        move || run(cmd)
    });
    let started = std::time::Instant::now();
    loop {
        let weights = aws
            .elb(&env.primary_region)
            .rule_weights(env.alb.rule_arn.as_str())
            .await
            .unwrap();
        let canary = weights
            .iter()
            .find(|w| w.target_group_arn == env.alb.canary_target_group_arn.as_str())
            .map_or(0, |w| w.weight);
        if canary > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120) && !deploying.is_finished(),
            "the canary never took traffic"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let alert = GateAlert::raise();
    let out = tokio::task::spawn_blocking(move || deploying.join().unwrap())
        .await
        .unwrap();
    drop(alert);
    assert_eq!(out.code, 1, "a rolled-back canary exits 1: {}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "rolled-back", "{report}");
    let reason = report["outcome"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("is alerting") && reason.contains("fail-fast"),
        "{report}"
    );
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(
        stable_revision(aws.as_ref(), &env).await,
        before,
        "stable never changed"
    );
}

#[tokio::test]
async fn a_second_concurrent_deploy_is_refused_by_the_lock() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let mut first = common::start(deploy(&fresh_tag()));
    // Wait (bounded by the deploy itself) until the first deploy holds the lock.
    let holder = loop {
        let status = run(suma(&["lock", "status", "--env", "staging", "--output", "json"]));
        let lock = common::json(&status);
        if let Some(op) = lock["lock"]["operation_id"].as_str() {
            break op.to_owned();
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first deploy ended before taking the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };

    let second = run(deploy(&fresh_tag()));
    assert_eq!(
        second.code, 3,
        "a held lock is the environment's state: {}",
        second.stderr
    );
    assert!(second.stderr.contains("is locked by"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&holder),
        "names the holder's operation: {}",
        second.stderr
    );

    // Abort the first from "another terminal"; it rolls back and exits 1.
    let abort = run(suma(&["deploy", "abort", "--env", "staging", "--yes"]));
    assert_eq!(abort.code, 0, "{}", abort.stderr);
    let out = common::finish(first);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "aborted", "{report}");
    assert_back_on_stable(aws.as_ref(), &env).await;
}
