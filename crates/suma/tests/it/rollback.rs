//! `suma rollback` over a deploy whose runner is alive but stalled (SIGSTOP, as a hung CI runner or a
//! paused laptop would be): one journaled operation takes the lock over under a new fence, puts the
//! canary's traffic back at once, and ends with the stable service on the target; the deploy is journaled
//! as superseded. When the stalled runner wakes it finds its lease gone and changes nothing. Changes
//! `staging`, so it runs alone.

use std::time::{Duration, Instant};

use crate::canary::{fresh_tag, hold_staging, stable_revision};
use crate::common::{self, run, suma};
use suma::aws::AwsApis;

async fn weights(aws: &dyn AwsApis, env: &suma::config::Environment) -> (i32, i32) {
    let rule = aws
        .elb(&env.primary_region)
        .rule_weights(env.alb.rule_arn.as_str())
        .await
        .unwrap();
    let of = |arn: &str| rule.iter().find(|w| w.target_group_arn == arn).map_or(0, |w| w.weight);
    (
        of(env.alb.stable_target_group_arn.as_str()),
        of(env.alb.canary_target_group_arn.as_str()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_takes_over_a_stalled_canary_as_one_operation_and_the_runner_changes_nothing_after() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;

    let mut deploy = suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        &fresh_tag(),
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ]);
    deploy.env("SUMA_ACTOR", "e2e-canary");
    let canary = common::start(deploy);
    let pid = canary.id().to_string();
    // Wait for the first traffic step, then stall the runner where it stands.
    let deadline = Instant::now() + Duration::from_secs(90);
    while weights(aws.as_ref(), &env).await != (90, 10) {
        assert!(Instant::now() < deadline, "the canary never reached 10%");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    common::send_signal(&pid, "STOP");

    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--to",
        &before,
        "--reason",
        "e2e: take over a stalled canary",
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ])
    .env("SUMA_ACTOR", "e2e-oncall"));
    common::send_signal(&pid, "CONT");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rollback = common::json(&out);
    let superseded = rollback["parameters"]["superseded"].as_str().unwrap().to_owned();
    assert!(rollback["parameters"]["fenced_runner_until"].is_string(), "{rollback}");
    let restore = rollback["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "restore-weights")
        .unwrap();
    assert_eq!(restore["facts"]["canary_was_in_flight"], true, "{restore}");

    // The stalled runner wakes to a lease that is no longer its own: it stops without changing anything.
    let woke = tokio::task::spawn_blocking(move || common::finish(canary))
        .await
        .unwrap();
    assert_eq!(
        woke.code, 3,
        "the fenced-out runner fails as a run that lost its lock, not as a Ctrl-C: {}",
        woke.stderr
    );
    assert!(
        woke.stderr.contains("no longer holds the environment's lock"),
        "{}",
        woke.stderr
    );
    assert_eq!(weights(aws.as_ref(), &env).await, (100, 0));
    let canary_service = aws
        .ecs(&env.primary_region)
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.canary_service))
        .await
        .unwrap();
    assert_eq!(canary_service[0].desired, 0, "the canary is scaled to zero");
    assert_eq!(stable_revision(aws.as_ref(), &env).await, before);

    // One operation held the environment throughout; the deploy is on record as superseded by it.
    let shown = run(suma(&[
        "ops",
        "show",
        &superseded,
        "--env",
        "staging",
        "--output",
        "json",
    ]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let deploy = common::json(&shown);
    assert_eq!(deploy["status"], "aborted", "{deploy}");
    let notes = deploy["events"].to_string();
    assert!(notes.contains("superseded by"), "{notes}");
    let lock = run(suma(&["lock", "status", "--env", "staging", "--output", "json"]));
    assert_eq!(lock.code, 0, "{}", lock.stderr);
    assert!(!lock.stdout.contains(&superseded), "the lock is free: {}", lock.stdout);
}
