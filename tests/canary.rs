//! Canary deployment and rollback against the sandbox: the SDK wiring on moto (task-definition
//! registration, service updates, rule weights), and end to end with the real binary. Tests here change
//! the `staging` environment, so they run one at a time.

mod common;

use std::sync::Arc;

use common::{run, sandbox_config, sandbox_session, suma};
use suma::aws::ecs::{Rollout, ServiceUpdate};
use suma::aws::elb::WeightedTarget;
use suma::aws::AwsApis;
use tokio::sync::Mutex;

/// One test at a time may change `staging`.
static STAGING: Mutex<()> = Mutex::const_new(());

fn staging() -> suma::config::Environment {
    let path = sandbox_config();
    let text = std::fs::read_to_string(&path).unwrap();
    let config = suma::config::parse_str(&text, &path).unwrap();
    config.environment("staging").unwrap().clone()
}

async fn session(env: &suma::config::Environment) -> Arc<dyn AwsApis> {
    let _ = sandbox_session().await;
    let options = suma::aws::AwsOptions {
        profile: None,
        operation_timeout: std::time::Duration::from_secs(20),
    };
    Arc::new(suma::aws::AwsSession::connect(&options, [&env.primary_region, &env.dr_region]).await)
}

#[tokio::test]
async fn registering_a_revision_changes_only_the_image() {
    let _staging = STAGING.lock().await;
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
        .register_with_image(base, &env.ecs.container, "registry.example/auth-service:9.9.9")
        .await
        .unwrap();
    assert_eq!(registered.family, before.family);
    assert!(registered.revision > before.revision);
    assert_eq!(registered.status, "ACTIVE");
    assert_eq!(registered.containers.len(), before.containers.len());
    assert_eq!(registered.containers[0].name, "auth-service");
    assert_eq!(registered.containers[0].image, "registry.example/auth-service:9.9.9");

    let err = ecs
        .register_with_image(base, "no-such-container", "x:1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has no container `no-such-container`"),
        "{err}"
    );
}

#[tokio::test]
async fn service_updates_roll_out_and_weights_round_trip() {
    let _staging = STAGING.lock().await;
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
        .register_with_image(&base, &env.ecs.container, "registry.example/auth-service:9.9.8")
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
    assert_eq!(after[0].rollout(&canary.arn), Rollout::Completed);
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
    let _staging = STAGING.lock().await;
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
    let _staging = STAGING.lock().await;
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
    let _staging = STAGING.lock().await;
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
        "--rollout-timeout",
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
        "--rollout-timeout",
        "60s",
    ]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("auth-service:999"), "{}", out.stderr);
}
