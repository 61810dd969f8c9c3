//! `suma compliance` against the sandbox: a fleet of compliant ("good") and deliberately non-compliant
//! ("bad") resources created on moto by `tests/fixtures/compliance_fleet.py` under a unique prefix, two
//! environments naming them in a copy of the sandbox configuration, a Datadog stub, and the sandbox's
//! auth-service for the live checks. Nothing the seeded environments hold is changed.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{json, run, sandbox_config, sandbox_var, suma, Run};
use serde_json::Value;

struct Fleet {
    ids: Value,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

static FLEET: OnceLock<Fleet> = OnceLock::new();

fn python() -> PathBuf {
    let home = std::env::var("HOME").unwrap();
    let venv = PathBuf::from(home).join(".cache/suma-sandbox-venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// The fleet, created once per test run, and a configuration with environments `cmp-good` and `cmp-bad`.
fn fleet() -> &'static Fleet {
    FLEET.get_or_init(|| {
        let prefix = format!("cmp{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let script = common::fixture("compliance_fleet.py");
        let out = std::process::Command::new(python())
            .arg(&script)
            .arg(sandbox_var("AWS_ENDPOINT_URL"))
            .arg(&prefix)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "the fixture failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: Value = serde_json::from_slice(&out.stdout).unwrap();

        let text = std::fs::read_to_string(sandbox_config()).unwrap();
        let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let staging = config["environments"]["staging"].clone();
        let env = |kind: &str, suppressions: serde_norway::Value| {
            let mut e = staging.clone();
            let id = |k: &str| ids[format!("{kind}_{k}")].clone();
            let s = |v: &Value| serde_norway::Value::String(v.as_str().unwrap().to_owned());
            e["url"] = sandbox_var("AUTH_URL").into();
            e["rds"] = serde_norway::from_str(&format!(
                "primary: {{ identifier: {}, region: eu-west-1 }}",
                id("db")["id"].as_str().unwrap()
            ))
            .unwrap();
            e["ecs"]["cluster"] = s(&ids["cluster"]);
            e["ecs"]["service"] = format!("{kind}-svc").into();
            e["ecs"]["canary_service"] = "no-canary".into();
            e["ecs"]["dr"] = serde_norway::from_str("{ cluster: none, service: none }").unwrap();
            e["alb"]["listener_arn"] = s(&id("listener"));
            e["alb"]["dr_load_balancer_dns"] = serde_norway::Value::Null;
            e["dns"] = serde_norway::from_str(&format!(
                "{{ hosted_zone_id: {}, record_name: {kind}.{} }}",
                ids["zone"].as_str().unwrap(),
                ids["domain"].as_str().unwrap()
            ))
            .unwrap();
            // The `redis-auth` secret names the replication group `--scope config` judges.
            e["secrets"] = serde_norway::from_str(&format!(
                "[{{ id: '{}', kind: random, rotation_days: 30 }}, {{ id: '{}-redis-url', kind: redis-auth, rotation_days: 30, redis: {{ replication_group: '{}' }} }}]",
                id("secret")["name"].as_str().unwrap(),
                id("secret")["name"].as_str().unwrap(),
                id("group")["id"].as_str().unwrap()
            ))
            .unwrap();
            e["datadog"] = serde_norway::from_str(&format!(
                "{{ site: datadoghq.eu, tags: ['service:auth-service', 'env:cmp-{kind}'] }}"
            ))
            .unwrap();
            e["compliance"] = suppressions;
            e
        };
        // An exception may run at most `max_suppression_days` (90) ahead.
        let in_a_month = chrono::Utc::now().date_naive() + chrono::Days::new(30);
        let bad_suppressions = serde_norway::from_str(&format!(
            "suppressions:\n  - {{ check: rds-multi-az, resource: '{}', reason: 'single-AZ accepted for the fixture', ticket: TKT-1, expires: {in_a_month} }}\n  - {{ check: alb-access-logs, resource: '{}', reason: 'logging bucket pending', ticket: TKT-2, expires: 2020-01-31 }}",
            ids["bad_db"]["arn"].as_str().unwrap(),
            ids["bad_lb"].as_str().unwrap()
        ))
        .unwrap();
        // Only the fleet's environments: the seeded ones may need settings other work adds meanwhile.
        config["environments"] = serde_norway::from_str("{}").unwrap();
        config["defaults"]["environment"] = "cmp-good".into();
        config["environments"]["cmp-good"] = env("good", serde_norway::from_str("{}").unwrap());
        config["environments"]["cmp-bad"] = env("bad", bad_suppressions);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        Fleet {
            ids,
            config: path,
            _dir: dir,
        }
    })
}

fn id(key: &str) -> String {
    let v = &fleet().ids[key];
    v.as_str()
        .map_or_else(|| v["arn"].as_str().unwrap().to_owned(), str::to_owned)
}

/// `suma --config FLEET compliance check --env ENV ARGS`.
fn check(env: &str, args: &[&str]) -> std::process::Command {
    let config = fleet().config.to_str().unwrap().to_owned();
    let mut all = vec!["--config", &config, "compliance", "check", "--env", env];
    all.extend_from_slice(args);
    let mut cmd = suma(&all);
    cmd.env_remove("DD_API_KEY")
        .env_remove("DD_APP_KEY")
        .env_remove("SUMA_DATADOG_URL");
    cmd
}

/// (status, observed) of the finding of `check` on `resource`.
fn finding(report: &Value, check: &str, resource: &str) -> (String, String) {
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check_id"] == check && f["resource"] == resource)
        .unwrap_or_else(|| panic!("no `{check}` finding on `{resource}` in {:#}", report["findings"]));
    (
        f["status"].as_str().unwrap().to_owned(),
        f["observed"].as_str().unwrap().to_owned(),
    )
}

fn fail(observed: &str) -> (String, String) {
    ("fail".to_owned(), observed.to_owned())
}

const AWS_TAGS: &str = "rds,ecs,ec2,alb,route53,secrets,elasticache,kms";

#[test]
fn compliant_resources_pass_except_where_moto_lacks_the_setting() {
    crate::require_sandbox!();
    let out = run(check(
        "cmp-good",
        &["--scope", "config", "--tags", AWS_TAGS, "--output", "json"],
    ));
    let report = json(&out);
    assert_eq!(out.code, 1, "ecs-circuit-breaker-rollback (high) fails: {}", out.stderr);
    let not_passing: BTreeMap<String, String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "pass")
        .map(|f| {
            (
                f["check_id"].as_str().unwrap().to_owned(),
                f["observed"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // moto records neither Performance Insights, nor a service's deployment configuration, nor (without
    // running a Lambda in Docker) rotation; their passing cases are unit tests.
    assert_eq!(
        not_passing,
        BTreeMap::from([
            (
                "ecs-circuit-breaker-rollback".to_owned(),
                "no circuit breaker".to_owned()
            ),
            ("ecs-min-healthy-100".to_owned(), "unset".to_owned()),
            (
                "rds-performance-insights".to_owned(),
                "Performance Insights off".to_owned()
            ),
        ])
    );
    // The managed secret has no native rotation (suma rotates it): judged by its last change.
    let secret = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check_id"] == "secrets-rotation")
        .expect("the managed secret is judged");
    assert_eq!(secret["status"], "pass", "{secret}");
    assert!(
        secret["observed"]
            .as_str()
            .unwrap()
            .starts_with("rotated by suma, last changed"),
        "{secret}"
    );
    let db = id("good_db");
    assert_eq!(
        finding(&report, "rds-force-ssl", &db),
        (
            "pass".into(),
            format!(
                "rds.force_ssl=1 ({}-ssl)",
                id("good_db").rsplit(':').next().unwrap().trim_end_matches("-good-db")
            )
        )
    );
    assert_eq!(
        finding(&report, "rds-backup-retention", &db),
        ("pass".into(), "30 days".into())
    );
    assert_eq!(
        finding(&report, "alb-https-tls12", &id("good_lb")),
        (
            "pass".into(),
            "HTTPS:443 ELBSecurityPolicy-TLS13-1-2-2021-06 (TLSv1.3, TLSv1.2)".into()
        )
    );
    assert_eq!(
        finding(&report, "ecs-secrets-from-secrets-manager", &id("good_td")),
        ("pass".into(), "app: 1 secrets from Secrets Manager".into())
    );
    assert_eq!(report["scope"], "config");
    assert_eq!(report["summary"]["fail"], 3);
    // Every AWS check produced at least one finding.
    let checked: std::collections::BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    let selected: std::collections::BTreeSet<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .filter(|id| *id != "rds-cross-region-replica")
        .collect();
    assert_eq!(checked, selected, "rds-cross-region-replica applies to production only");

    // Nothing critical fails, so `--fail-on critical` passes.
    let out = run(check(
        "cmp-good",
        &[
            "--scope",
            "config",
            "--tags",
            AWS_TAGS,
            "--fail-on",
            "critical",
            "-o",
            "json",
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out)["passed"], true);
}

#[test]
fn non_compliant_resources_fail_with_what_was_observed() {
    crate::require_sandbox!();
    let out = run(check(
        "cmp-bad",
        &["--scope", "config", "--tags", AWS_TAGS, "--output", "json"],
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    assert_eq!(report["passed"], false);
    let (db, td, svc, lb) = (id("bad_db"), id("bad_td"), id("bad_svc"), id("bad_lb"));
    let cache = id("bad_group");
    let record = |suffix: &str| format!("{}/bad.{} CNAME bad-{suffix}", id("zone"), id("domain"));
    let expected = [
        ("rds-storage-encrypted-cmk", &db, fail("not encrypted")),
        ("rds-backup-retention", &db, fail("1 days")),
        ("rds-deletion-protection", &db, fail("deletion protection off")),
        ("rds-not-public", &db, fail("publicly accessible")),
        ("rds-iam-auth", &db, fail("IAM authentication off")),
        ("rds-auto-minor-upgrade", &db, fail("auto minor version upgrade off")),
        ("rds-log-exports", &db, fail("no log exports")),
        (
            "rds-reachable-only-from-service",
            &db,
            fail("5432 also admitted from 0.0.0.0/0"),
        ),
        (
            "ecs-no-plaintext-secrets",
            &td,
            fail("app: secret-like DB_PASSWORD (its name says PASSWORD)"),
        ),
        (
            "ecs-secrets-from-secrets-manager",
            &td,
            fail("app: not from Secrets Manager: API_KEY"),
        ),
        ("ecs-non-root-user", &td, fail("app: user unset (root)")),
        ("ecs-readonly-root-fs", &td, fail("app: readonlyRootFilesystem unset")),
        ("ecs-not-privileged", &td, fail("app: privileged true")),
        ("ecs-no-privilege-escalation", &td, fail("app: adds SYS_ADMIN")),
        ("ecs-log-configuration", &td, fail("app: no log configuration")),
        ("ecs-image-pinned", &td, fail("app: auth-service:latest")),
        ("ecs-cpu-memory-set", &td, fail("app: cpu unset memory 256")),
        ("ecs-container-health-check", &td, fail("app: no health check")),
        ("ecs-circuit-breaker-rollback", &svc, fail("no circuit breaker")),
        ("ecs-min-healthy-100", &svc, fail("unset")),
        ("ecs-min-two-tasks", &svc, fail("1 desired")),
        ("ecs-no-public-ip", &svc, fail("assignPublicIp ENABLED")),
        ("ecs-autoscaling", &svc, fail("no Application Auto Scaling target")),
        ("alb-https-tls12", &lb, fail("no HTTPS listener")),
        ("alb-http-redirects", &lb, fail("HTTP:80 forwards")),
        ("alb-deletion-protection", &lb, fail("deletion protection off")),
        ("alb-access-logs", &lb, fail("access logs off")),
        (
            "alb-waf",
            &lb,
            fail(&format!(
                "web ACL {}: AWSManagedRulesAmazonIpReputationList missing; AWSManagedRulesSQLiRuleSet in Count mode",
                id("bad_acl")
            )),
        ),
        (
            "alb-waf-rate-limit",
            &lb,
            fail(&format!("web ACL {} has no rate-based rule", id("bad_acl"))),
        ),
        (
            "alb-waf-logging",
            &lb,
            fail(&format!(
                "logged to arn:aws:logs:eu-west-1:123456789012:log-group:aws-waf-logs-{}-bad, keeping the authorization and cookie header(s)",
                id("bad_acl").trim_end_matches("-bad-acl")
            )),
        ),
        (
            "alb-drop-invalid-headers",
            &lb,
            fail("dropping invalid header fields off"),
        ),
        (
            "route53-failover-health-check",
            &record("primary"),
            fail("PRIMARY without a health check"),
        ),
        ("route53-failover-ttl", &record("secondary"), fail("TTL 300 s")),
        (
            "secrets-cmk",
            &id("bad_secret"),
            fail("AWS-managed key aws/secretsmanager"),
        ),
        (
            "secrets-policy-not-public",
            &id("bad_secret"),
            fail("statement Readers allows every principal (*) without a condition"),
        ),
        (
            "rds-snapshot-encrypted",
            &id("bad_snapshot"),
            fail(&format!(
                "manual snapshot of {}, not encrypted",
                id("bad_db").rsplit(':').next().unwrap()
            )),
        ),
        (
            "rds-snapshot-not-public",
            &id("bad_snapshot"),
            fail("restorable by all AWS accounts"),
        ),
        ("elasticache-encryption-at-rest", &cache, fail("at-rest encryption off")),
        (
            "elasticache-encryption-in-transit",
            &cache,
            fail("in-transit encryption off"),
        ),
        ("elasticache-auth", &cache, fail("no AUTH token, no RBAC user group")),
        (
            "elasticache-automatic-failover",
            &cache,
            fail("automatic failover disabled, multi-AZ off"),
        ),
        ("elasticache-snapshots", &cache, fail("snapshots kept 0 days")),
    ];
    for (check_id, resource, want) in expected {
        assert_eq!(finding(&report, check_id, resource), want, "{check_id}");
    }
    let open_sg = id("open_sg");
    let exposed = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["check_id"] == "ec2-no-public-sensitive-ports" && f["resource"].as_str().unwrap().ends_with(&open_sg)
        })
        .expect("the bad database's group is judged");
    assert_eq!(exposed["status"], "fail");
    assert!(
        exposed["observed"]
            .as_str()
            .unwrap()
            .ends_with("-open): 0.0.0.0/0 to 5432 (PostgreSQL)"),
        "{exposed}"
    );
    let ssl = finding(&report, "rds-force-ssl", &db);
    assert_eq!(ssl.0, "fail");
    assert!(ssl.1.starts_with("rds.force_ssl=0 ("), "{}", ssl.1);

    // The unexpired suppression mutes, the expired one fails on its own and mutes nothing.
    let muted = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check_id"] == "rds-multi-az" && f["resource"] == db.as_str())
        .unwrap();
    assert_eq!(muted["status"], "muted");
    let in_a_month = chrono::Utc::now().date_naive() + chrono::Days::new(30);
    assert_eq!(
        muted["detail"],
        format!("suppressed until {in_a_month} (TKT-1): single-AZ accepted for the fixture")
    );
    assert_eq!(
        finding(&report, "suppression-expired", &format!("alb-access-logs on {lb}")),
        fail("expired 2020-01-31")
    );
    assert_eq!(report["summary"]["muted"], 1);
}

#[test]
fn the_account_scope_sees_resources_the_configuration_does_not_name() {
    crate::require_sandbox!();
    // `cmp-good` names only the good DB; the account view judges every instance in its regions.
    let out = run(check(
        "cmp-good",
        &["--checks", "rds-not-public,rds-multi-az", "--output", "json"],
    ));
    assert_eq!(out.code, 1, "the bad DB is public (critical): {}", out.stderr);
    let report = json(&out);
    assert_eq!(report["scope"], "account");
    assert_eq!(
        finding(&report, "rds-not-public", &id("bad_db")),
        fail("publicly accessible")
    );
    assert_eq!(
        finding(&report, "rds-not-public", &id("good_db")),
        ("pass".into(), "private".into())
    );
    assert_eq!(
        finding(
            &report,
            "rds-multi-az",
            "arn:aws:rds:eu-west-1:123456789012:db:suma-finance-staging-db"
        ),
        ("pass".into(), "multi-AZ on".into())
    );
    let ids: std::collections::BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rds-multi-az", "rds-not-public"].into());

    // Task definitions no service runs: the latest ACTIVE revision of each family is judged, an older
    // revision and a deregistered family are not, and `--scope config` keeps to the configured services.
    let plaintext = |scope: &str| {
        let out = run(check(
            "cmp-good",
            &[
                "--checks",
                "ecs-no-plaintext-secrets",
                "--scope",
                scope,
                "--output",
                "json",
            ],
        ));
        let report = json(&out);
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["resource"].as_str().unwrap().to_owned(),
                    f["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    // A revision an EventBridge rule starts is judged even when it is not its family's latest; with
    // `--scope config`, only the rules that start tasks in the configured cluster count.
    let account = plaintext("account");
    assert_eq!(account[&id("migrate_td")], "fail", "{account:#?}");
    assert!(!account.contains_key(&id("migrate_td_old")), "{account:#?}");
    assert!(!account.contains_key(&id("retired_td")), "{account:#?}");
    assert_eq!(account[&id("good_td")], "pass");
    assert_eq!(account[&id("elsewhere_td_old")], "fail", "{account:#?}");
    assert_eq!(account[&id("elsewhere_td")], "pass", "{account:#?}");
    // EventBridge Scheduler's schedules too.
    assert_eq!(account[&id("purge_td_old")], "fail", "{account:#?}");
    assert_eq!(account[&id("purge_td")], "pass", "{account:#?}");
    assert_eq!(account[&id("nightly_td_old")], "pass", "{account:#?}");
    assert_eq!(account[&id("nightly_td")], "pass", "{account:#?}");
    let config = plaintext("config");
    assert!(!config.contains_key(&id("migrate_td")), "{config:#?}");
    assert_eq!(config[&id("good_td")], "pass");
    assert_eq!(config[&id("nightly_td_old")], "pass", "{config:#?}");
    assert!(!config.contains_key(&id("nightly_td")), "{config:#?}");
    assert!(!config.contains_key(&id("elsewhere_td_old")), "{config:#?}");
    assert!(!config.contains_key(&id("purge_td_old")), "{config:#?}");

    // KMS: every customer-managed key of the region is judged; the one that never rotates and lets
    // anyone decrypt fails both checks.
    let out = run(check("cmp-good", &["--tags", "kms", "--output", "json"]));
    let report = json(&out);
    assert_eq!(
        finding(&report, "kms-cmk-rotation", &id("weak_key")),
        fail("automatic rotation off")
    );
    assert_eq!(
        finding(&report, "kms-key-policy-not-public", &id("weak_key")),
        fail("statement Open allows every principal (*) without a condition")
    );
    assert_eq!(
        finding(&report, "kms-cmk-rotation", &id("good_key")),
        ("pass".into(), "automatic rotation on".into())
    );
    // Who manages a key is what KMS says of it: a key KMS cannot describe proves nothing (an error, the
    // run exits 3), where the key's name alone used to pass.
    let out = run(check("cmp-good", &["--checks", "secrets-cmk", "--output", "json"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = json(&out);
    assert_eq!(
        finding(&report, "secrets-cmk", &id("good_secret")),
        ("pass".into(), format!("key {}", id("good_key")))
    );
    let ghost = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["resource"] == id("ghost_secret"))
        .expect("the secret with an unknown key is judged");
    assert_eq!(ghost["status"], "error", "{ghost}");
    assert!(ghost["detail"].as_str().unwrap().contains("KMS DescribeKey"), "{ghost}");

    // The account's posture: repositories, certificates and trails (judged account-wide in any scope).
    let out = run(check("cmp-good", &["--tags", "ecr,acm,cloudtrail", "--output", "json"]));
    let report = json(&out);
    let pass = |observed: &str| ("pass".to_owned(), observed.to_owned());
    assert_eq!(
        finding(&report, "ecr-scan-on-push", &id("good_repository")),
        pass("images scanned on push")
    );
    assert_eq!(
        finding(&report, "ecr-scan-on-push", &id("bad_repository")),
        fail("no scan on push (repository or registry rule)")
    );
    assert_eq!(
        finding(&report, "ecr-immutable-tags", &id("bad_repository")),
        fail("tags mutable")
    );
    let expiry = |kind: &str| finding(&report, "acm-certificate-expiry", &id(&format!("{kind}_certificate")));
    assert_eq!(expiry("good").0, "pass", "{:?}", expiry("good"));
    assert_eq!(expiry("bad").0, "fail", "{:?}", expiry("bad"));
    assert!(
        expiry("bad").1.contains("in 9 days") || expiry("bad").1.contains("in 10 days"),
        "{:?}",
        expiry("bad")
    );
    assert_eq!(
        finding(
            &report,
            "cloudtrail-multi-region-logging",
            "CloudTrail (seen from eu-west-1)"
        )
        .0,
        "pass"
    );
    assert_eq!(
        finding(&report, "cloudtrail-log-validation", &id("bad_trail")),
        fail("log file validation off")
    );
    assert_eq!(
        finding(&report, "cloudtrail-encrypted", &id("bad_trail")),
        fail("S3-managed encryption only")
    );
    assert_eq!(
        finding(&report, "cloudtrail-encrypted", &id("good_trail")),
        pass(&format!("encrypted with {}", id("good_key")))
    );

    // A policy with TLS13 in its name that still allows TLS 1.0 fails: the protocols ELB describes
    // decide, not the name.
    let out = run(check("cmp-good", &["--checks", "alb-https-tls12", "--output", "json"]));
    let report = json(&out);
    assert_eq!(
        finding(&report, "alb-https-tls12", &id("weak_lb")),
        fail("HTTPS:443 ELBSecurityPolicy-TLS13-1-0-2021-06 (TLSv1.3, TLSv1.2, TLSv1.1, TLSv1)")
    );

    // WAF, account-wide: a load balancer without a web ACL fails every WAF check; the good one's web
    // ACL runs every required group and a blocking rate limit, and logs without credentials.
    let out = run(check(
        "cmp-good",
        &[
            "--checks",
            "alb-waf,alb-waf-rate-limit,alb-waf-logging",
            "--output",
            "json",
        ],
    ));
    let report = json(&out);
    for check_id in ["alb-waf", "alb-waf-rate-limit", "alb-waf-logging"] {
        assert_eq!(
            finding(&report, check_id, &id("weak_lb")),
            fail("no web ACL associated"),
            "{check_id}"
        );
    }
    assert_eq!(
        finding(&report, "alb-waf-rate-limit", &id("good_lb")),
        ("pass".into(), "login-rate blocks above 300 requests per window".into())
    );
    let logged = finding(&report, "alb-waf-logging", &id("good_lb"));
    assert_eq!(logged.0, "pass", "{logged:?}");
    assert!(logged.1.ends_with(", credentials redacted"), "{logged:?}");
}

#[test]
fn the_live_service_is_checked_over_http() {
    crate::require_sandbox!();
    // Staging's service answers; a test that redeploys it holds staging exclusively meanwhile.
    let _staging = crate::common::staging_shared();
    let out = run(check("cmp-good", &["--tags", "service", "--output", "json"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let url = sandbox_var("AUTH_URL");
    assert_eq!(finding(&report, "service-tls", &url), fail("plain HTTP"));
    assert_eq!(
        finding(&report, "service-security-headers", &url),
        ("pass".into(), "HSTS, nosniff, frame options and CSP present".into())
    );
    assert_eq!(
        finding(&report, "service-health-ready", &url),
        ("pass".into(), "/health 200, /ready 200".into())
    );
    assert_eq!(finding(&report, "service-jwks", &url).0, "pass");
    // The GDPR endpoints exist and refuse an unauthenticated caller.
    assert_eq!(
        finding(&report, "service-gdpr-endpoints", &url),
        (
            "pass".into(),
            "GET /api/gdpr/export 401, POST /api/gdpr/delete 401, GET /api/gdpr/consent 401".into()
        )
    );
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made with the openssl CLI: (cert, key).
fn test_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not a CA: webpki refuses a CA certificate as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// TLS in front of the sandbox's auth-service, as a load balancer terminates it: rustls with its
/// defaults (TLS 1.2 and 1.3 only), each connection copied to the service. Returns the port.
fn tls_terminator(rt: &tokio::runtime::Runtime, cert: &std::path::Path, key: &std::path::Path) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let backend = sandbox_var("AUTH_URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    // A refused handshake (the TLS 1.0/1.1 probe) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        port
    })
}

/// nginx terminating TLS in front of the sandbox's auth-service with the old protocols still on
/// (`ssl_protocols TLSv1 TLSv1.1 TLSv1.2`, security level 0 for their suites): the configuration a
/// legacy load balancer policy leaves behind.
struct LegacyTlsProxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LegacyTlsProxy {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let backend = sandbox_var("AUTH_URL");
        let conf = format!(
            "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             ssl_protocols TLSv1 TLSv1.1 TLSv1.2;\n    ssl_ciphers DEFAULT:@SECLEVEL=0;\n\
             location / {{ proxy_pass {backend}; }}\n  }}\n}}\n",
            dir = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
            backend = backend.trim_end_matches('/'),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Debian installs it in /usr/sbin, which a non-root PATH may lack.
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
            .unwrap();
        let child = std::process::Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("nginx is installed (.ci/run installs nginx-light)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port, _dir: dir }
    }
}

impl Drop for LegacyTlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tls_is_checked_against_local_https_listeners() {
    crate::require_sandbox!();
    // Behind both listeners is staging's service, whose `/ready` a redeploy of staging turns 503 for a while.
    let _staging = crate::common::staging_shared();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_certificate(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let modern = tls_terminator(&rt, &cert, &key);
    let legacy = LegacyTlsProxy::start(&cert, &key);
    let live = |url: &str| {
        let mut cmd = check("cmp-good", &["--tags", "service", "--url", url, "--output", "json"]);
        // The test certificate is the only root suma trusts here.
        cmd.env("SSL_CERT_FILE", &cert).env_remove("SSL_CERT_DIR");
        json(&run(cmd))
    };

    let url = format!("https://localhost:{modern}");
    let report = live(&url);
    assert_eq!(
        finding(&report, "service-tls", &url),
        (
            "pass".into(),
            "TLS 1.2+ handshake succeeded; TLS 1.0 and 1.1 refused".into()
        )
    );
    // Through TLS the service's own answers still decide the other checks.
    assert_eq!(
        finding(&report, "service-health-ready", &url),
        ("pass".into(), "/health 200, /ready 200".into())
    );
    assert_eq!(finding(&report, "service-security-headers", &url).0, "pass");

    // The same service behind a listener that still speaks TLS 1.0 and 1.1: only TLS fails.
    let url = format!("https://127.0.0.1:{}", legacy.port);
    let report = live(&url);
    assert_eq!(
        finding(&report, "service-tls", &url),
        fail("also accepts TLS 1.0 and TLS 1.1")
    );
    assert_eq!(report["summary"]["fail"], 1, "{report:#}");
    assert_eq!(report["summary"]["error"], 0, "{report:#}");
}

/// A Datadog stand-in answering `/api/v1/monitor` with `monitors`.
fn datadog_stub(monitors: Value) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/api/v1/monitor",
            axum::routing::get(move || {
                let m = monitors.clone();
                async move { axum::Json(m) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    (url, rt)
}

#[test]
fn datadog_monitors_are_required_unmuted_and_notifying() {
    crate::require_sandbox!();
    let monitor = |id: i64, name: &str, message: &str, extra: Value| {
        let mut m = serde_json::json!({"id": id, "name": name, "type": "metric alert", "query": "q",
            "message": message, "tags": ["service:auth-service", "env:cmp-good"]});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        m
    };
    let none = serde_json::json!({});
    let (url, _rt) = datadog_stub(serde_json::json!([
        monitor(1, "auth-service high error rate", "@pagerduty-auth", none.clone()),
        monitor(2, "auth-service high p95 latency", "@pagerduty-auth", none.clone()),
        monitor(3, "auth-service failed login spike", "@slack-security", none.clone()),
        monitor(4, "auth-service account lockout spike", "@slack-security", none.clone()),
        monitor(
            5,
            "auth-service database connections",
            "@team-identity",
            serde_json::json!({"options": {"silenced": {"*": null}}})
        ),
        monitor(6, "auth-service Redis memory", "nobody is told", none.clone()),
    ]));
    let out = run(check("cmp-good", &["--tags", "datadog", "--output", "json"])
        .env("SUMA_DATADOG_URL", &url)
        .env("DD_API_KEY", "dummy-api")
        .env("DD_APP_KEY", "dummy-app"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    let r = |key: &str| format!("datadog:monitor/{key} [service:auth-service,env:cmp-good]");
    assert_eq!(
        finding(&report, "datadog-required-monitors", &r("ecs-task-failure")),
        fail("missing")
    );
    assert_eq!(
        finding(&report, "datadog-required-monitors", &r("high-error-rate")),
        ("pass".into(), "#1 auth-service high error rate".into())
    );
    assert_eq!(
        finding(&report, "datadog-monitors-not-muted", &r("database-connections")),
        fail("#5 auth-service database connections: muted")
    );
    assert_eq!(
        finding(&report, "datadog-monitors-notify", &r("redis-memory")),
        fail("#6 auth-service Redis memory: no @-handle in the message")
    );
    assert_eq!(
        finding(&report, "datadog-monitors-notify", &r("failed-login-spike")),
        (
            "pass".into(),
            "#3 auth-service failed login spike: notifies @slack-security".into()
        )
    );

    // Without keys the Datadog checks are errors, and an incomplete run exits 3.
    let out = run(check("cmp-good", &["--tags", "datadog", "--output", "json"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = json(&out);
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "error"));
    assert!(report["findings"][0]["detail"].as_str().unwrap().contains("DD_API_KEY"));
}

fn bad_run(output: &str) -> Run {
    run(check(
        "cmp-bad",
        &["--scope", "config", "--tags", AWS_TAGS, "--output", output],
    ))
}

/// Validates against the OASIS SARIF 2.1.0 schema (tests/fixtures/sarif), listing every violation.
fn assert_valid_sarif(sarif: &Value) {
    let path = common::fixture("sarif/sarif-schema-2.1.0.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The published schema's `language` patterns (of `run` and `toolComponent`) have a stray `]` (`^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`)
    // that a strict validator refuses as a regex; it means an RFC 5646 two-letter language with an
    // optional region. suma never writes `language`.
    for component in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][component]["properties"]["language"]["pattern"];
        assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
        *language = "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$".into();
    }
    let validator = jsonschema::draft7::new(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(sarif)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the SARIF log breaks its schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_sarif_schema_check_catches_a_broken_log() {
    crate::require_sandbox!();
    // The validation above is only worth something if it rejects what GitHub would reject.
    let mut broken = serde_json::from_str::<Value>(&bad_run("sarif").stdout).unwrap();
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    broken["runs"][0]["tool"]["driver"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let outcome = std::panic::catch_unwind(|| assert_valid_sarif(&broken));
    let message = *outcome
        .expect_err("a broken log is rejected")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("/runs/0/results/0/level"), "{message}");
    assert!(message.contains("\"name\" is a required property"), "{message}");
}

#[test]
fn sarif_carries_rules_results_and_suppressions() {
    crate::require_sandbox!();
    let out = bad_run("sarif");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let sarif: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["$schema"], "https://json.schemastore.org/sarif-2.1.0.json");
    assert_valid_sarif(&sarif);
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "suma");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        // What GitHub code scanning requires of each result.
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "suma.yaml"
        );
        assert!(r["partialFingerprints"]["sumaFinding/v1"].is_string());
        assert!(["error", "warning", "note", "none"].contains(&r["level"].as_str().unwrap()));
    }
    for rule in rules {
        let score: f64 = rule["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.1..=10.0).contains(&score));
    }
    let public = results
        .iter()
        .find(|r| r["ruleId"] == "rds-not-public")
        .expect("the public DB is a result");
    assert_eq!(public["level"], "error");
    assert_eq!(
        public["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        id("bad_db").as_str()
    );
    let muted = results
        .iter()
        .find(|r| r["ruleId"] == "rds-multi-az" && r["properties"]["resource"] == id("bad_db").as_str())
        .unwrap();
    assert_eq!(muted["suppressions"][0]["kind"], "external");
}

/// The JSON report is a documented, stable interface: the whole report of the non-compliant
/// environment is pinned, with only what moto or the clock chooses masked.
#[test]
fn the_json_report_matches_its_snapshot() {
    crate::require_sandbox!();
    let out = bad_run("json");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"cmp[0-9a-f]{12}", "[FLEET]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})", "[TIME]");
    settings.add_filter(r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]");
    settings.add_filter(r#""duration_ms": \d+"#, r#""duration_ms": "[MS]""#);
    settings.add_filter(r"/[0-9a-f]{16}\b", "/[ID]");
    settings.add_filter(r#"(:secret:[^"]*)-[A-Za-z0-9]{6}""#, r#"$1-[SUFFIX]""#);
    settings.add_filter(r"\b[0-9A-Z]{14,32}/", "[ZONE]/");
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    );
    settings.add_filter(r"\b\d+ days? ago\b", "[N] days ago");
    settings.add_filter(r"\bsg-[0-9a-f]{8,17}\b", "sg-[ID]");
    // Automated snapshots are named by the hour and minute they were taken.
    settings.add_filter(r"\[DATE\]-\d{2}-\d{2}\b", "[DATE]-[HH]-[MM]");
    settings.bind(|| insta::assert_snapshot!("compliance_bad_environment_json", out.stdout));
}

#[test]
fn junit_parses_back_with_one_testcase_per_check_and_resource() {
    crate::require_sandbox!();
    let json_run = bad_run("json");
    let findings = json(&json_run)["findings"].as_array().unwrap().len();
    let out = bad_run("junit");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let mut testcases = 0;
    let mut failures = 0;
    let mut skipped = 0;
    let mut depth: i32 = 0;
    let mut root_failures = None;
    let mut element = String::new();
    for token in xmlparser::Tokenizer::from(out.stdout.as_str()) {
        match token.unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{}", out.stdout)) {
            xmlparser::Token::ElementStart { local, .. } => {
                element = local.to_string();
                depth += 1;
                match local.as_str() {
                    "testcase" => testcases += 1,
                    "failure" => failures += 1,
                    "skipped" => skipped += 1,
                    _ => {}
                }
            }
            xmlparser::Token::Attribute { local, value, .. }
                if element == "testsuites" && local.as_str() == "failures" =>
            {
                root_failures = Some(value.as_str().parse::<usize>().unwrap());
            }
            xmlparser::Token::ElementEnd { end, .. } => match end {
                xmlparser::ElementEnd::Open => {}
                xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty => depth -= 1,
            },
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element is closed");
    assert_eq!(testcases, findings);
    assert_eq!(root_failures, Some(failures));
    assert_eq!(skipped, 1, "the muted finding");
}

#[test]
fn the_table_groups_by_severity_and_out_writes_a_file() {
    crate::require_sandbox!();
    let out = bad_run("table");
    assert_eq!(out.code, 1);
    let critical = out.stdout.find("CRITICAL (").expect("a critical section");
    let low = out.stdout.find("LOW (").expect("a low section");
    assert!(critical < low);
    let last = out.stdout.trim_end().lines().last().unwrap();
    assert!(last.starts_with("FAIL: "), "{last}");
    assert!(last.contains("--fail-on high"), "{last}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.sarif");
    let out = run(check(
        "cmp-bad",
        &[
            "--scope",
            "config",
            "--tags",
            "rds",
            "-o",
            "sarif",
            "--out",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("report written to"), "{}", out.stderr);
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn usage_errors_exit_2_and_list_shows_every_check() {
    crate::require_sandbox!();
    let out = run(check("cmp-good", &["--checks", "rds-nope"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown check `rds-nope`"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: `suma compliance list`"), "{}", out.stderr);

    let config = fleet().config.to_str().unwrap().to_owned();
    let out = run(suma(&[
        "--config", &config, "status", "--env", "cmp-good", "--output", "sarif",
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("only for `suma compliance check`"),
        "{}",
        out.stderr
    );

    let out = run(check("cmp-good", &["--checks", "rds-multi-az", "--tags", "rds"]));
    assert_eq!(out.code, 2, "--checks and --tags conflict");

    let out = run(suma(&["compliance", "list", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let checks = json(&out);
    let ids: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() >= 40, "{ids:?}");
    assert!(ids.contains(&"rds-force-ssl") && ids.contains(&"service-gdpr-endpoints"));
    let first = &checks[0];
    for key in ["title", "severity", "controls", "risk", "remediation"] {
        assert!(!first[key].is_null(), "{key}");
    }
}

#[test]
fn an_unreachable_aws_turns_checks_into_errors_and_exits_3() {
    crate::require_sandbox!();
    let out = run(check(
        "cmp-good",
        &["--scope", "config", "--tags", "rds,secrets", "--output", "json"],
    )
    .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = json(&out);
    let findings = report["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    assert!(findings.iter().all(|f| f["status"] == "error"), "{findings:#?}");
    assert!(findings[0]["detail"]
        .as_str()
        .unwrap()
        .contains("network access to AWS"));
}
