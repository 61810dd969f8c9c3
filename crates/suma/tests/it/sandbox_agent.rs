//! The sandbox runs what ships: the ECS agent turns a desired count set through the AWS API into live
//! `auth-service` processes started from the rendered template, and suma sees them through the ECS API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use common::{run, suma};
use suma::aws::ecs::ServiceUpdate;

/// The agent's tasks of one staging service in the primary region.
pub async fn tasks_of(service: &str) -> Vec<serde_json::Value> {
    staging_tasks_in("eu-west-1", service).await
}

/// The agent's tasks of one staging service in `region`.
pub async fn staging_tasks_in(region: &str, service: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/_agent/tasks", common::sandbox_var("SUMA_SANDBOX_AGENT_URL"));
    let view: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    view["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["service"] == service && t["cluster"] == "suma-finance-staging" && t["region"] == region)
        .cloned()
        .collect()
}

/// Waits until `service` has exactly `count` healthy tasks and nothing else.
pub async fn wait_for_tasks(service: &str, count: usize) -> Vec<serde_json::Value> {
    wait_for_tasks_in("eu-west-1", service, count).await
}

/// Waits until staging's `service` in `region` has exactly `count` healthy tasks and nothing else.
pub async fn wait_for_tasks_in(region: &str, service: &str, count: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let tasks = staging_tasks_in(region, service).await;
        if tasks.len() == count && tasks.iter().all(|t| t["healthy"] == true) {
            return tasks;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "`{service}` ({region}) did not reach {count} healthy tasks: {tasks:#?}"
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

/// Logins through the front door until stopped: (answered 200, anything else).
pub struct LoginTraffic {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl LoginTraffic {
    pub async fn start() -> Self {
        let base = common::sandbox_var("AUTH_URL");
        let http = reqwest::Client::new();
        let body = common::register_account(&http, &base, "traffic").await;
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.is_cancelled() {
                    match http.post(format!("{base}/api/auth/login")).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        answer => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            failures.push(match answer {
                                Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                                Err(e) => e.to_string(),
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                failures
            })
        };
        Self { ok, failed, stop, task }
    }

    /// Stops the logins: (answered 200, anything else, what the others answered).
    pub async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.cancel();
        let failures = self.task.await.unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            failures,
        )
    }
}
