//! `aws.call` against moto: JSON (ECS, Secrets Manager) and query (RDS, STS, ELBv2) protocols signed
//! with SigV4, answers read back as JSON that later steps select from, a change allowed by the runbook's
//! `mutating_aws_calls` (a tag whose value holds quotes stays one value), and AWS's error as the step's.

use super::{json, run, secrets_client, step, unique, Fleet};
use serde_json::json as j;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_read_what_no_action_reads_and_tag_a_secret_the_runbook_allows() {
    crate::require_sandbox!();
    let secret = format!("/suma-test/awscall/{}", unique("s"));
    secrets_client()
        .await
        .create_secret()
        .name(&secret)
        .secret_string("not read by the run")
        .send()
        .await
        .unwrap();
    let fleet = Fleet::new(j!([]));
    let note = r#"said "roll back", then } and ] and ${x}"#;
    let recorder = crate::crash_matrix::faults::FaultProxy::recorder().expect("the fault proxy is built");
    let mut command = fleet.fixture("aws-call.yaml", &[format!("secret={secret}"), format!("note={note}")]);
    let out = run(command.env("AWS_ENDPOINT_URL", &recorder.url));
    assert_eq!(out.code, 1, "the last step names a missing instance: {}", out.stderr);
    // Every request, the `aws.call`s' included, is in the policy `suma iam-policy` gives this runbook.
    let fixture = crate::common::fixture("runbooks/aws-call.yaml");
    let policy = crate::iam::policy_actions(
        &["runbook", "run", fixture.to_str().unwrap()],
        &["--config", fleet.path.to_str().unwrap(), "--env", &fleet.env],
    );
    let calls = recorder.take_calls().await;
    assert!(
        calls.contains("secretsmanager:TagResource") && calls.contains("rds:DescribeDBInstances"),
        "the recorder saw the calls: {calls:?}"
    );
    let beyond: Vec<_> = calls.difference(&policy).collect();
    assert!(beyond.is_empty(), "requests beyond `suma iam-policy`: {beyond:?}");
    let report = json(&out);
    let op = &report["operation"];
    let response = |id: &str| step(op, id)["facts"]["outputs"]["response"].clone();

    let service = response("service");
    assert_eq!(service["status"], "ACTIVE", "{service}");
    assert!(service["runningCount"].as_u64().unwrap() >= 1, "{service}");
    let database = response("database");
    let instances = database["DBInstances"]
        .as_array()
        .expect("a list even with one instance");
    assert_eq!(instances.len(), 1, "{database}");
    assert_eq!(instances[0]["DBInstanceStatus"], "available", "{database}");
    assert!(
        response("caller")["Arn"].as_str().unwrap().starts_with("arn:aws:"),
        "{op}"
    );

    let tags = response("tags");
    assert!(
        tags.as_array()
            .unwrap()
            .contains(&j!({"Key": "incident-note", "Value": note})),
        "{tags}"
    );
    assert!(
        tags.as_array()
            .unwrap()
            .contains(&j!({"Key": "service-status", "Value": "ACTIVE"})),
        "{tags}"
    );
    let available = step(op, "available");
    assert_eq!(
        available["status"], "succeeded",
        "its `when` held on a selected value: {available}"
    );
    assert!(response("available")["LoadBalancers"].is_array(), "{available}");

    let missing = step(op, "missing");
    assert_eq!(missing["status"], "failed", "{missing}");
    let error = missing["error"].as_str().unwrap();
    assert!(
        error.contains("RDS call on `DescribeDBInstances` failed") && error.contains("DBInstanceNotFound"),
        "{error}"
    );
    let journaled = serde_json::to_string(op).unwrap();
    assert!(
        !journaled.contains("not read by the run"),
        "no secret value is journaled"
    );
}
