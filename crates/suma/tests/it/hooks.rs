//! Deploy hooks end to end on the sandbox's real tasks: a canary whose pre-traffic hook reaches the canary's
//! tasks through staging's test listener and whose post-step hook passes on the live URL, and whose
//! post-promote hook then fails: the deploy rolls back, the stable service back on the revision recorded
//! before it. Runbook hooks run the shipped `release-smoke` runbook after each step as child operations
//! of the deploy, journaled like any run, and a failing runbook rolls the deploy back; a runbook that
//! would change anything is refused before the deploy starts. Changes `staging`, so it runs alone.

use crate::canary::{
    assert_back_on_stable, deploy_on_staging, fresh_tag, hold_staging, sandbox_config_with, stable_revision,
};
use crate::common::{self, run, suma};

#[tokio::test]
async fn a_failing_post_promote_hook_rolls_a_promoted_canary_back_after_the_other_hooks_passed() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let image = fresh_tag();
    let version = image.rsplit(':').next().unwrap().to_owned();

    let (_dir, path) = sandbox_config_with(|config| {
        config["environments"]["staging"]["hooks"] = serde_norway::from_str(&format!(
            "{{ pre_traffic: [{{ name: canary-version, url: /version, body_contains: '\"version\":\"{version}\"' }}], \
               post_step: [{{ name: live-health, url: /health, max_latency: 2s }}], \
               post_promote: [{{ name: impossible, url: /version, body_contains: 'no-such-marker', attempts: 2 }}] }}"
        ))
        .unwrap();
    });

    let out = run(deploy_on_staging("canary", &image).arg("--config").arg(&path));
    assert_eq!(out.code, 1, "a rolled-back deploy exits 1: {}", out.stderr);
    let report = common::json(&out);
    let reason = report["outcome"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("post-promote hook `impossible` failed"), "{report}");
    let op = &report["operation"];
    let names: Vec<&str> = op["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "register",
            "canary-up",
            "pre-traffic",
            "shift-10",
            "shift-50",
            "promote",
            "post-promote"
        ]
    );
    let step = |name: &str| {
        op["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step `{name}`: {op}"))
            .clone()
    };
    // Before any traffic, the test listener reached the canary's tasks, which serve the release.
    let pre = step("pre-traffic");
    assert_eq!(pre["status"], "succeeded", "{pre}");
    assert_eq!(pre["facts"]["hooks"][0]["ok"], true, "{pre}");
    for shift in ["shift-10", "shift-50"] {
        let hooks = &step(shift)["facts"]["hooks"];
        assert_eq!(hooks[0]["name"], "live-health", "{hooks}");
        assert_eq!(hooks[0]["ok"], true, "{hooks}");
    }
    assert_eq!(step("promote")["status"], "succeeded");
    let post = step("post-promote");
    assert_eq!(post["facts"]["hooks"][0]["ok"], false, "{post}");
    assert_eq!(post["facts"]["hooks"][0]["attempts"], 2, "{post}");
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(
        stable_revision(aws.as_ref(), &env).await,
        before,
        "stable is back on the recorded revision"
    );
}

#[tokio::test]
async fn runbook_hooks_run_as_child_operations_and_a_failing_one_rolls_the_deploy_back() {
    crate::require_sandbox!();
    let (_staging, env, aws, before) = hold_staging().await;
    let runbooks = common::workspace_root().join("runbooks");
    let dir = tempfile::tempdir().unwrap();
    let impossible = dir.path().join("impossible.yaml");
    std::fs::write(
        &impossible,
        "title: impossible\nseverity: sev4\nowner: test\nwhen_to_use: never\nsteps:\n  - id: marker\n    action: http.check\n    with: { url: '${env.url}/version', body_contains: no-such-marker }\n",
    )
    .unwrap();
    let (_config_dir, path) = sandbox_config_with(|config| {
        config["environments"]["staging"]["hooks"] = serde_norway::from_str(&format!(
            "{{ post_step: [{{ name: smoke, runbook: '{}', params: {{ max_latency: 2s }} }}], \
               post_promote: [{{ name: impossible, runbook: '{}' }}] }}",
            runbooks.join("release-smoke.yaml").display(),
            impossible.display()
        ))
        .unwrap();
    });

    let out = run(deploy_on_staging("canary", &fresh_tag()).arg("--config").arg(&path));
    assert_eq!(out.code, 1, "a rolled-back deploy exits 1: {}", out.stderr);
    let report = common::json(&out);
    let op = &report["operation"];
    let id = op["id"].as_str().unwrap();
    let reason = report["outcome"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "post-promote hook `impossible` failed: runbook run `{id}.post-promote.impossible.1`: step `marker` failed"
        )),
        "{report}"
    );
    let hook_of = |step: &str| {
        op["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["name"] == step)
            .unwrap_or_else(|| panic!("no step `{step}`: {op}"))["facts"]["hooks"][0]
            .clone()
    };
    for step in ["shift-10", "shift-50"] {
        let hook = hook_of(step);
        assert_eq!(hook["ok"], true, "{hook}");
        let child = hook["operation"].as_str().unwrap();
        assert_eq!(child, format!("{id}.{step}.smoke.1"));
        // The child is a run like any other: journaled, each of its steps on record.
        let timeline = common::json(&run(suma(&[
            "runbook", "timeline", child, "--env", "staging", "--output", "json",
        ])
        .arg("--config")
        .arg(&path)));
        let markdown = timeline["markdown"].as_str().unwrap();
        for check in ["health", "ready", "keys", "tasks"] {
            assert!(
                markdown.contains(check),
                "{check} missing from the timeline of {child}:\n{markdown}"
            );
        }
    }
    assert_eq!(hook_of("post-promote")["ok"], false);
    assert_back_on_stable(aws.as_ref(), &env).await;
    assert_eq!(
        stable_revision(aws.as_ref(), &env).await,
        before,
        "stable is back on the recorded revision"
    );

    // A runbook that changes things is refused before anything runs.
    let (_refused_dir, refused) = sandbox_config_with(|config| {
        config["environments"]["staging"]["hooks"] = serde_norway::from_str(&format!(
            "{{ post_promote: [{{ name: undo, runbook: '{}', params: {{ reason: test }} }}] }}",
            runbooks.join("deploy-rollback.yaml").display()
        ))
        .unwrap();
    });
    let out = run(deploy_on_staging("canary", &fresh_tag())
        .arg("--config")
        .arg(&refused)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("hooks.post_promote.0 (`undo`)")
            && out.stderr.contains("calls `service.rollback`, which changes things"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("network access"),
        "refused before any AWS call: {}",
        out.stderr
    );
}
