//! `suma iam-policy` checked against what commands really ask of AWS: the fault proxy without faults
//! records the IAM action of every request a command makes through it, and each must be in the policy
//! `suma iam-policy` prints for that command. The crash matrix's fault runs check the mutating commands the
//! same way (`crash_matrix::faults`); this file covers the reading ones and `init`.

use std::collections::BTreeSet;

use crate::common;
use crate::crash_matrix::faults::FaultProxy;

use common::{json, run, suma, unique};

/// The actions of the policy `suma iam-policy` prints for the command `args` starts with (its words up to
/// the first flag), run with `extra` (configuration and environment flags).
pub fn policy_actions(args: &[&str], extra: &[&str]) -> BTreeSet<String> {
    let words: Vec<&str> = args.iter().copied().take_while(|a| !a.starts_with('-')).collect();
    let mut full = vec!["iam-policy"];
    full.extend(extra);
    full.push("--");
    full.extend(words);
    // `runbook run NAME` reads the runbook for its `aws.call` steps: the shipped ones, as the commands ran.
    let out = run(suma(&full).env("SUMA_RUNBOOKS_DIR", common::workspace_root().join("runbooks")));
    assert_eq!(out.code, 0, "{full:?}: {}", out.stderr);
    suma::iam_policy::actions(&json(&out))
}

/// The requests beyond the policy of the command a crash-matrix environment ran.
pub async fn beyond_policy(env: &crate::crash_matrix::Env, args: &[&str], calls: &BTreeSet<String>) -> Vec<String> {
    let config = env.config.to_string_lossy().into_owned();
    let allowed = policy_actions(args, &["--config", &config, "--env", &env.name]);
    calls.difference(&allowed).cloned().collect()
}

#[tokio::test]
async fn every_request_of_a_reading_command_is_in_its_policy() {
    crate::require_sandbox!();
    let recorder = FaultProxy::recorder().expect("the fault proxy is built with the sandbox");
    let _staging = common::staging_shared();
    let template = common::workspace_root()
        .join("templates/ecs/auth-service.taskdef.yaml")
        .to_string_lossy()
        .into_owned();
    let commands: [&[&str]; 12] = [
        &["status", "--env", "production"],
        &["dr", "check", "--env", "production"],
        &["secrets", "list", "--env", "staging"],
        &["lock", "status", "--env", "staging"],
        &["ops", "list", "--env", "staging"],
        &["deploy", "status", "--env", "staging"],
        &["taskdef", "diff", "--env", "staging", "--template", &template],
        // Every check: RDS and snapshots, ECS, ALB and TLS policies, WAF, security groups, ElastiCache, KMS,
        // CloudTrail, ECR, ACM, Application Auto Scaling, Route 53, Secrets Manager.
        &["compliance", "check", "--env", "production"],
        &["dr", "drill", "--env", "staging", "--dry-run"],
        &[
            "taskdef",
            "register",
            "--env",
            "staging",
            "--template",
            &template,
            "--image",
            "registry.example/auth-service:9.9.9",
            "--dry-run",
        ],
        &[
            "rollback",
            "--env",
            "staging",
            "--reason",
            "policy check",
            "--to",
            "registry.example/auth-service:9.9.8",
            "--dry-run",
        ],
        &[
            "deploy",
            "canary",
            "--env",
            "staging",
            "--image",
            "registry.example/auth-service:9.9.9",
            "--dry-run",
        ],
    ];
    let mut seen = BTreeSet::new();
    for args in commands {
        let out = run(suma(args).env("AWS_ENDPOINT_URL", &recorder.url));
        assert!([0, 1].contains(&out.code), "{args:?}: {}", out.stderr);
        let calls = recorder.take_calls().await;
        assert!(!calls.is_empty(), "{args:?} asked nothing of AWS");
        let allowed = policy_actions(args, &[]);
        let beyond: Vec<&String> = calls.difference(&allowed).collect();
        assert!(beyond.is_empty(), "{args:?} asked for {beyond:?} beyond its policy");
        seen.extend(calls);
    }
    // The recorder names the calls as IAM does.
    for action in [
        "dynamodb:GetItem",
        "ecs:DescribeServices",
        "rds:DescribeDBInstances",
        "route53:ListResourceRecordSets",
        "wafv2:GetWebACLForResource",
        "kms:DescribeKey",
        "cloudtrail:DescribeTrails",
        "elasticache:DescribeReplicationGroups",
    ] {
        assert!(seen.contains(action), "{action} in {seen:?}");
    }
}

#[tokio::test]
async fn init_asks_for_nothing_beyond_its_policy() {
    crate::require_sandbox!();
    let recorder = FaultProxy::recorder().expect("the fault proxy is built with the sandbox");
    let text = std::fs::read_to_string(common::sandbox_config()).unwrap();
    let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    config["lock"]["table"] = serde_norway::Value::String(unique("suma-iam"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    let config = path.to_str().unwrap();
    let out = run(suma(&["--config", config, "init", "--yes"]).env("AWS_ENDPOINT_URL", &recorder.url));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let calls = recorder.take_calls().await;
    let allowed = policy_actions(&["init"], &["--config", config]);
    assert!(calls.contains("dynamodb:CreateTable"), "{calls:?}");
    let beyond: Vec<&String> = calls.difference(&allowed).collect();
    assert!(beyond.is_empty(), "init asked for {beyond:?} beyond its policy");
}

#[test]
fn the_policy_is_narrowed_to_the_configuration() {
    crate::require_sandbox!();
    let out = run(suma(&[
        "iam-policy",
        "--env",
        "staging",
        "--",
        "secrets",
        "rotate",
        "db-password",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let policy = json(&out);
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().unwrap();
    let lock = statements.iter().find(|s| s["Sid"] == "LockWrite").unwrap();
    let tables: Vec<&str> = lock["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        tables.len() == 2
            && tables.iter().all(|r| r.starts_with("arn:aws:dynamodb:eu-west-1:"))
            && tables[1] == format!("{}/index/*", tables[0]),
        "the table and its indexes: {lock}"
    );
    let secrets = statements.iter().find(|s| s["Sid"] == "SecretsRotate").unwrap();
    assert!(
        secrets["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_str().unwrap().contains(":secretsmanager:*:") && r.as_str().unwrap().contains("staging")),
        "{secrets}"
    );
    let out = run(suma(&["iam-policy", "--", "deploy", "canry"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a suma command"), "{}", out.stderr);
}
