//! The sandbox runs what ships: the ECS agent turns a desired count set through the AWS API into live
//! `auth-service` processes started from the rendered template, and suma sees them through the ECS API.

use std::time::{Duration, Instant};

use crate::common;
use common::{run, suma};
use suma::aws::ecs::ServiceUpdate;

/// The agent's tasks of one staging service in the primary region.
pub async fn tasks_of(service: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/_agent/tasks", common::sandbox_var("SUMA_SANDBOX_AGENT_URL"));
    let view: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    view["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["service"] == service && t["cluster"] == "suma-finance-staging" && t["region"] == "eu-west-1")
        .cloned()
        .collect()
}

/// Waits until `service` has exactly `count` healthy tasks and nothing else.
pub async fn wait_for_tasks(service: &str, count: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let tasks = tasks_of(service).await;
        if tasks.len() == count && tasks.iter().all(|t| t["healthy"] == true) {
            return tasks;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "`{service}` did not reach {count} healthy tasks: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `/version` of every healthy task of a staging service, asked on the task's own address.
pub async fn versions_of(service: &str) -> Vec<serde_json::Value> {
    let mut answers = Vec::new();
    for task in tasks_of(service).await.iter().filter(|t| t["healthy"] == true) {
        let address = task["address"].as_str().unwrap();
        let answer = reqwest::get(format!("http://{address}/version"))
            .await
            .unwrap_or_else(|e| panic!("task {address} does not answer: {e}"));
        answers.push(answer.json().await.unwrap());
    }
    assert!(!answers.is_empty(), "`{service}` has no healthy task");
    answers
}

/// Sets the staging stable service's desired count through the AWS API and waits for the agent's tasks.
pub async fn scale_staging(count: i32) -> Vec<serde_json::Value> {
    let aws = common::sandbox_session().await;
    let update = ServiceUpdate {
        desired_count: Some(count),
        ..ServiceUpdate::default()
    };
    suma::aws::AwsApis::ecs(&aws, &common::lock_region())
        .update_service("suma-finance-staging", "auth-service", &update)
        .await
        .unwrap();
    wait_for_tasks("auth-service", count as usize).await
}

fn stable_row(status: &serde_json::Value) -> serde_json::Value {
    status["services"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["role"] == "stable")
        .cloned()
        .unwrap_or_else(|| panic!("no stable row in {status}"))
}

#[tokio::test]
async fn scaling_through_the_aws_api_starts_live_processes_that_suma_status_counts() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let before = wait_for_tasks("auth-service", 2).await;

    let tasks = scale_staging(3).await;
    // Each task is a live process on its own address, started from the rendered template.
    let versions = versions_of("auth-service").await;
    assert_eq!(versions.len(), 3);
    for version in versions {
        assert_eq!(version["deployment"], "stable", "{version}");
        assert_eq!(
            version["environment"], "staging",
            "APP_ENV from the template: {version}"
        );
    }
    let kept = before
        .iter()
        .filter(|b| tasks.iter().any(|t| t["id"] == b["id"]))
        .count();
    assert_eq!(kept, 2, "scaling out adds a task and keeps the others");

    let out = run(suma(&["status", "--env", "staging", "--output", "json"]));
    let status = common::json(&out);
    let stable = stable_row(&status);
    assert_eq!(stable["running"], 3, "{stable}");
    assert_eq!(stable["desired"], 3, "{stable}");

    scale_staging(2).await;
    let out = run(suma(&["status", "--env", "staging", "--output", "json"]));
    assert_eq!(stable_row(&common::json(&out))["running"], 2);
}
