//! Blue/green end to end on the sandbox's real tasks: green comes up at blue's size, answers the
//! pre-traffic checks through staging's test listener, and takes all traffic in one flip; a healthy
//! release is promoted onto the stable service, a faulty one is flipped back with blue untouched. A
//! watcher reads the ALB rule all along: the traffic is never split. Both runs announce themselves to a
//! Slack-shaped receiver and to a webhook that answers 500 (a warning, never a failure, and its URL is
//! never printed). Tests here change `staging`, so they run one at a time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::canary::{
    assert_back_on_stable, datadog_events, deploy_on_staging, fresh_tag, hold_staging, sandbox_config_with,
    stable_revision, FaultyRelease,
};
use crate::common::{self, run, suma};
use suma::aws::AwsApis;

/// A Slack incoming webhook (`POST /services/T0/B0/TOKEN`, answering `ok`) that keeps what it was sent, and
/// a webhook that always answers 500; staging's configuration with both as notification receivers.
struct Receivers {
    slack: Arc<Mutex<Vec<serde_json::Value>>>,
    broken_url: String,
    config: tempfile::TempDir,
    vars: [(&'static str, String); 2],
}

impl Receivers {
    async fn start() -> Self {
        use axum::routing::post;
        let slack = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/services/T0/B0/{token}",
                post({
                    let slack = slack.clone();
                    move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                        slack.lock().unwrap().push(body);
                        "ok"
                    }
                }),
            )
            .route(
                "/broken/{token}",
                post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (dir, _) = sandbox_config_with(|config| {
            config["environments"]["staging"]["notifications"] = serde_norway::from_str(
                "[{ kind: slack, url_env: SUMA_TEST_SLACK_URL }, { kind: webhook, url_env: SUMA_TEST_HOOK_URL, events: [start, rollback] }]",
            )
            .unwrap();
        });
        let broken_url = format!("{base}/broken/hook-token-never-printed");
        Self {
            slack,
            config: dir,
            vars: [
                (
                    "SUMA_TEST_SLACK_URL",
                    format!("{base}/services/T0/B0/slack-token-never-printed"),
                ),
                ("SUMA_TEST_HOOK_URL", broken_url.clone()),
            ],
            broken_url,
        }
    }

    /// `deploy` with the configuration that names the receivers.
    fn around(&self, mut cmd: std::process::Command) -> std::process::Command {
        cmd.arg("--config").arg(self.config.path().join("suma.yaml"));
        cmd.envs(self.vars.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// The lines Slack was sent, in order.
    fn slack_lines(&self) -> Vec<String> {
        self.slack
            .lock()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The run told the broken webhook, said it failed, and never printed a receiver's URL.
    fn assert_warned_without_urls(&self, out: &common::Run) {
        assert!(
            out.stderr.contains("webhook notification") && out.stderr.contains("answered 500"),
            "{}",
            out.stderr
        );
        for (_, url) in &self.vars {
            assert!(!out.stderr.contains(url.as_str()) && !out.stdout.contains(url.as_str()));
        }
        assert!(!out.stderr.contains("token-never-printed") && !out.stdout.contains("token-never-printed"));
        assert!(self.broken_url.contains("token-never-printed"));
    }
}

fn deploy(image: &str) -> std::process::Command {
    deploy_on_staging("bluegreen", image)
}

/// Reads the rule's (stable, canary) weights every 100 ms until stopped: every state the traffic was in.
struct WeightWatch {
    stop: Arc<AtomicBool>,
    seen: tokio::task::JoinHandle<BTreeSet<(i32, i32)>>,
}

impl WeightWatch {
    fn start(aws: Arc<dyn AwsApis>, env: &suma::config::Environment) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (region, rule) = (env.primary_region.clone(), env.alb.rule_arn.to_string());
        let (stable, canary) = (
            env.alb.stable_target_group_arn.to_string(),
            env.alb.canary_target_group_arn.to_string(),
        );
        let seen = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut seen = BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(weights) = aws.elb(&region).rule_weights(&rule).await {
                        let of = |arn: &str| {
                            weights
                                .iter()
                                .find(|w| w.target_group_arn == arn)
                                .map_or(0, |w| w.weight)
                        };
                        seen.insert((of(&stable), of(&canary)));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                seen
            }
        });
        Self { stop, seen }
    }

    async fn stop(self) -> BTreeSet<(i32, i32)> {
        self.stop.store(true, Ordering::Relaxed);
        self.seen.await.unwrap()
    }
}

/// `deploy` run in the background while the rule is watched: its output and the weights it went through.
async fn watched(
    aws: Arc<dyn AwsApis>,
    env: &suma::config::Environment,
    cmd: std::process::Command,
) -> (common::Run, BTreeSet<(i32, i32)>) {
    let watch = WeightWatch::start(aws, env);
    let out = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
    (out, watch.stop().await)
}

fn step<'a>(op: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}`: {op}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_release_is_checked_through_the_test_listener_cut_over_at_once_and_promoted() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let image = fresh_tag();
    let version = image.rsplit(':').next().unwrap().to_owned();
    let receivers = Receivers::start().await;

    let (out, weights) = watched(aws.clone(), &env, receivers.around(deploy(&image))).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    receivers.assert_warned_without_urls(&out);
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "promoted", "{report}");
    let op = &report["operation"];
    assert_eq!(op["kind"], "bluegreen-deploy");
    assert_eq!(op["status"], "succeeded");
    assert_eq!(
        weights,
        BTreeSet::from([(100, 0), (0, 100)]),
        "the traffic was never split"
    );

    // Before any user reached green, the test listener reached green's tasks only, serving the release.
    let checked = step(op, "pre-traffic");
    assert_eq!(checked["status"], "succeeded", "{checked}");
    assert_eq!(checked["facts"]["version"]["version"], version.as_str());
    assert_eq!(checked["facts"]["version"]["deployment"], "canary");
    // Green came up at blue's size.
    let green_tasks = step(op, "green-up")["facts"]["green_tasks"].as_i64().unwrap();
    assert!(green_tasks >= i64::from(env.ecs.desired_count), "{green_tasks}");
    for name in ["cutover", "keep-blue"] {
        let ticks = step(op, name)["facts"]["ticks"].as_array().unwrap().clone();
        assert!(
            ticks.iter().any(|t| t["verdict"]["verdict"] == "pass"),
            "{name}: {ticks:?}"
        );
        for tick in &ticks {
            assert_ne!(tick["verdict"]["verdict"], "fail", "{name}: {tick}");
            assert_eq!(tick["weight"], 100, "{name}: {tick}");
        }
    }

    let promoted = op["steps"][0]["facts"]["release_task_definition"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(promoted, before);
    assert_eq!(stable_revision(aws.as_ref(), &env).await, promoted);
    assert_back_on_stable(aws.as_ref(), &env).await;
    for answer in crate::sandbox_agent::versions_of("auth-service").await {
        assert_eq!(answer["version"], version.as_str(), "{answer}");
        assert_eq!(answer["deployment"], "stable", "{answer}");
    }
    let event = datadog_events()
        .into_iter()
        .rev()
        .find(|e| e["title"].as_str().unwrap().contains(&version))
        .expect("a Datadog event for the deploy");
    assert_eq!(event["alert_type"], "success");
    let id = op["id"].as_str().unwrap();
    assert_eq!(
        receivers.slack_lines(),
        [
            format!("auth-service {version} blue/green deploy started on staging (operation {id}, by e2e-test)"),
            format!("auth-service {version} blue/green deploy promoted on staging (operation {id}, by e2e-test)"),
        ]
    );

    // `rollback` goes back to the revision recorded before the blue/green deploy.
    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--reason",
        "e2e: back after blue/green",
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(stable_revision(aws.as_ref(), &env).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_release_is_flipped_back_at_once_and_blue_never_changes() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let _faulty = FaultyRelease;
    let receivers = Receivers::start().await;

    // The sandbox's agent runs a tag ending in `-errors` with 5% errors: ten times the limit, so the
    // first measurement that sees them fails fast.
    let cmd = receivers.around(deploy(&format!("{}-errors", fresh_tag())));
    let (out, weights) = watched(aws.clone(), &env, cmd).await;
    assert_eq!(out.code, 1, "a rolled-back deploy exits 1: {}", out.stderr);
    receivers.assert_warned_without_urls(&out);
    let told = receivers.slack_lines();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told[0].contains(" started on staging"), "{told:?}");
    assert!(told[1].contains(" rolled back on staging: error_rate"), "{told:?}");
    let report = common::json(&out);
    assert_eq!(report["outcome"]["outcome"], "rolled-back", "{report}");
    let op = &report["operation"];
    assert_eq!(op["status"], "failed");
    assert_eq!(
        weights,
        BTreeSet::from([(100, 0), (0, 100)]),
        "the traffic was never split"
    );
    let ticks = step(op, "cutover")["facts"]["ticks"].as_array().unwrap().clone();
    let decided = ticks
        .iter()
        .position(|t| t["decision"]["decision"] == "rollback")
        .unwrap_or_else(|| panic!("the bake decided to roll back: {ticks:?}"));
    let first_bad = ticks.iter().position(|t| t["verdict"]["verdict"] == "fail").unwrap();
    // The first window after the flip may still be thin; the second failing one decides at the latest.
    assert!(
        decided <= first_bad + 1,
        "decided at tick {decided}, first failure at {first_bad}"
    );
    assert!(
        op["steps"].as_array().unwrap().iter().all(|s| s["name"] != "promote"),
        "never promoted: {op}"
    );
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(stable_revision(aws.as_ref(), &env).await, before, "blue never changed");
}
