//! Table-driven cases: every check has a passing and a failing input, asserting the exact observation.

use super::*;
use crate::aws::inventory::{KmsKeyFacts, ListenerFacts, PolicyReading};

fn verdict(findings: &[Finding], check: &str) -> (Status, String) {
    let f = findings
        .iter()
        .find(|f| f.check_id == check)
        .unwrap_or_else(|| panic!("no `{check}` finding in {findings:#?}"));
    (f.status, f.observed.clone())
}

fn good_db() -> DbInstanceFacts {
    DbInstanceFacts {
        identifier: "db".into(),
        arn: "arn:aws:rds:eu-west-1:123456789012:db:db".into(),
        region: "eu-west-1".into(),
        engine: "postgres".into(),
        engine_version: "15.5".into(),
        multi_az: true,
        storage_encrypted: true,
        kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
        backup_retention_days: 30,
        deletion_protection: true,
        publicly_accessible: false,
        iam_auth: true,
        auto_minor_version_upgrade: true,
        log_exports: vec!["postgresql".into()],
        performance_insights: true,
        replica_source: None,
        read_replicas: vec!["arn:aws:rds:eu-central-1:123456789012:db:db-replica".into()],
        parameter_group: Some("auth-pg15".into()),
        force_ssl: ParameterValue::Set("1".into()),
        port: Some(5432),
        security_groups: vec!["sg-db".into()],
    }
}

/// A KMS key as KMS describes it.
fn kms_key(id: &str, customer_managed: bool) -> KmsKeyFacts {
    KmsKeyFacts {
        arn: format!("arn:aws:kms:eu-west-1:123456789012:key/{id}"),
        key_id: id.into(),
        region: "eu-west-1".into(),
        aliases: Vec::new(),
        customer_managed,
        state: "Enabled".into(),
        symmetric_encryption: true,
        rotation_enabled: Ok(Some(true)),
        policy: Ok(None),
    }
}

/// The region's keys: `k` is customer-managed, `aws-rds` is the AWS-managed `aws/rds` key (real RDS
/// names it by its key ARN), and the test contexts all know them.
fn keys() -> KeyDirectory {
    let mut aws = kms_key("aws-rds", false);
    aws.aliases = vec!["alias/aws/rds".into()];
    KeyDirectory::of(&[kms_key("k", true), aws])
}

fn context() -> EvalContext {
    EvalContext {
        keys: keys(),
        ..EvalContext::default()
    }
}

fn production() -> EvalContext {
    EvalContext {
        production: true,
        ..context()
    }
}

#[test]
fn a_compliant_production_db_passes_every_rds_check() {
    let findings = db_instance(&good_db(), &production());
    assert_eq!(findings.len(), 11);
    assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
}

#[test]
fn each_rds_check_fails_on_its_own_setting() {
    type Change = fn(&mut DbInstanceFacts);
    let cases: &[(&str, Change, &str)] = &[
        (
            "rds-storage-encrypted-cmk",
            |d| d.storage_encrypted = false,
            "not encrypted",
        ),
        (
            "rds-storage-encrypted-cmk",
            |d| d.kms_key_id = None,
            "encrypted with the AWS-managed key",
        ),
        (
            "rds-storage-encrypted-cmk",
            |d| d.kms_key_id = Some("alias/aws/rds".into()),
            "encrypted with the AWS-managed key alias/aws/rds",
        ),
        (
            "rds-storage-encrypted-cmk",
            |d| d.kms_key_id = Some("arn:aws:kms:eu-west-1:123456789012:key/aws-rds".into()),
            "encrypted with the AWS-managed key arn:aws:kms:eu-west-1:123456789012:key/aws-rds",
        ),
        ("rds-multi-az", |d| d.multi_az = false, "multi-AZ off"),
        ("rds-backup-retention", |d| d.backup_retention_days = 7, "7 days"),
        (
            "rds-deletion-protection",
            |d| d.deletion_protection = false,
            "deletion protection off",
        ),
        (
            "rds-not-public",
            |d| d.publicly_accessible = true,
            "publicly accessible",
        ),
        ("rds-iam-auth", |d| d.iam_auth = false, "IAM authentication off"),
        (
            "rds-force-ssl",
            |d| d.force_ssl = ParameterValue::Set("0".into()),
            "rds.force_ssl=0 (auth-pg15)",
        ),
        (
            "rds-force-ssl",
            |d| {
                d.force_ssl = ParameterValue::EngineDefault;
                d.engine_version = "14.10".into();
            },
            "engine default for postgres 14.10 (0) in auth-pg15",
        ),
        (
            "rds-auto-minor-upgrade",
            |d| d.auto_minor_version_upgrade = false,
            "auto minor version upgrade off",
        ),
        ("rds-log-exports", |d| d.log_exports.clear(), "no log exports"),
        (
            "rds-cross-region-replica",
            |d| d.read_replicas.clear(),
            "no read replica",
        ),
        (
            "rds-cross-region-replica",
            |d| d.read_replicas = vec!["db-local".into()],
            "replicas only in eu-west-1: db-local",
        ),
        (
            "rds-performance-insights",
            |d| d.performance_insights = false,
            "Performance Insights off",
        ),
    ];
    for (check, change, observed) in cases {
        let mut db = good_db();
        change(&mut db);
        let findings = db_instance(&db, &production());
        assert_eq!(
            verdict(&findings, check),
            (Status::Fail, observed.to_string()),
            "{check}"
        );
        let failing: Vec<&str> = findings
            .iter()
            .filter(|f| f.status != Status::Pass)
            .map(|f| f.check_id.as_str())
            .collect();
        assert_eq!(failing, [*check], "only {check} fails");
    }
    // A key nobody could describe proves nothing: an error, never a pass.
    let mut db = good_db();
    db.kms_key_id = Some("default_kms_key_id".into());
    let (status, _) = verdict(&db_instance(&db, &production()), "rds-storage-encrypted-cmk");
    assert_eq!(status, Status::Error);
}

#[test]
fn rds_rules_that_depend_on_the_environment() {
    let mut db = good_db();
    db.backup_retention_days = 7;
    db.read_replicas.clear();
    let staging = db_instance(&db, &EvalContext::default());
    assert_eq!(
        verdict(&staging, "rds-backup-retention"),
        (Status::Pass, "7 days".into())
    );
    assert!(staging.iter().all(|f| f.check_id != "rds-cross-region-replica"));
    // A replica is not asked for a replica of its own.
    db.replica_source = Some("arn:aws:rds:eu-west-1:123456789012:db:db".into());
    db.backup_retention_days = 30;
    assert!(db_instance(&db, &production())
        .iter()
        .all(|f| f.check_id != "rds-cross-region-replica"));
    // An unreadable parameter group is an error, not a failure.
    db.force_ssl = ParameterValue::Unreadable("AccessDenied".into());
    let f = db_instance(&db, &production());
    assert_eq!(verdict(&f, "rds-force-ssl").0, Status::Error);
    db.force_ssl = ParameterValue::EngineDefault;
    let f = db_instance(&db, &production());
    assert_eq!(
        verdict(&f, "rds-force-ssl"),
        (Status::Pass, "engine default for postgres 15.5 (1) in auth-pg15".into())
    );
}

fn good_container() -> ContainerFacts {
    ContainerFacts {
        name: "app".into(),
        image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2".into(),
        user: Some("10001".into()),
        readonly_root_filesystem: Some(true),
        privileged: None,
        added_capabilities: vec![],
        environment: vec![("APP_ENV".into(), "production".into()), ("PORT".into(), "8080".into())],
        secrets: vec![(
            "DB_PASSWORD".into(),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db".into(),
        )],
        log_driver: Some("awslogs".into()),
        health_check: true,
        cpu: 0,
        memory: None,
        memory_reservation: None,
    }
}

fn good_td() -> TaskDefinitionFacts {
    TaskDefinitionFacts {
        arn: "arn:aws:ecs:eu-west-1:123456789012:task-definition/auth:1".into(),
        family: "auth".into(),
        revision: 1,
        region: "eu-west-1".into(),
        cpu: Some("1024".into()),
        memory: Some("2048".into()),
        containers: vec![good_container()],
    }
}

#[test]
fn a_hardened_task_definition_passes() {
    let findings = task_definition(&good_td());
    assert_eq!(findings.len(), 10);
    assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
}

#[test]
fn each_task_definition_check_fails_on_its_own_setting() {
    type Change = fn(&mut TaskDefinitionFacts);
    let cases: &[(&str, Change, &str)] = &[
        (
            "ecs-no-plaintext-secrets",
            |t| {
                t.containers[0]
                    .environment
                    .push(("DB_PASSWORD".into(), "hunter2".into()))
            },
            "app: secret-like DB_PASSWORD (its name says PASSWORD)",
        ),
        (
            "ecs-no-plaintext-secrets",
            |t| {
                t.containers[0]
                    .environment
                    .push(("UPSTREAM".into(), "AKIAIOSFODNN7EXAMPLE".into()))
            },
            "app: secret-like UPSTREAM (its value: AWS access key id)",
        ),
        (
            "ecs-no-plaintext-secrets",
            |t| {
                t.containers[0]
                    .environment
                    .push(("DATABASE_URL".into(), "postgres://auth:s3cr3t@db:5432/auth".into()))
            },
            "app: secret-like DATABASE_URL (its value: password in URL)",
        ),
        (
            "ecs-no-plaintext-secrets",
            |t| {
                t.containers[0]
                    .environment
                    .push(("SESSION_SEED".into(), "q8Zr4NvX2bLk9TfW7pYc3HmD5sJa6Ge1".into()))
            },
            "app: secret-like SESSION_SEED (its value: high entropy)",
        ),
        (
            "ecs-secrets-from-secrets-manager",
            |t| {
                t.containers[0].secrets.push((
                    "API_KEY".into(),
                    "arn:aws:ssm:eu-west-1:123456789012:parameter/k".into(),
                ))
            },
            "app: not from Secrets Manager: API_KEY",
        ),
        (
            "ecs-non-root-user",
            |t| t.containers[0].user = None,
            "app: user unset (root)",
        ),
        (
            "ecs-non-root-user",
            |t| t.containers[0].user = Some("0:0".into()),
            "app: user 0:0",
        ),
        (
            "ecs-readonly-root-fs",
            |t| t.containers[0].readonly_root_filesystem = None,
            "app: readonlyRootFilesystem unset",
        ),
        (
            "ecs-not-privileged",
            |t| t.containers[0].privileged = Some(true),
            "app: privileged true",
        ),
        (
            "ecs-no-privilege-escalation",
            |t| t.containers[0].added_capabilities = vec!["SYS_ADMIN".into()],
            "app: adds SYS_ADMIN",
        ),
        (
            "ecs-log-configuration",
            |t| t.containers[0].log_driver = None,
            "app: no log configuration",
        ),
        (
            "ecs-image-pinned",
            |t| t.containers[0].image = "registry.example.com:5000/auth-service:latest".into(),
            "app: registry.example.com:5000/auth-service:latest",
        ),
        (
            "ecs-image-pinned",
            |t| t.containers[0].image = "registry.example.com:5000/auth-service".into(),
            "app: registry.example.com:5000/auth-service",
        ),
        ("ecs-cpu-memory-set", |t| t.memory = None, "app: cpu unset memory unset"),
        (
            "ecs-container-health-check",
            |t| t.containers[0].health_check = false,
            "app: no health check",
        ),
    ];
    for (check, change, observed) in cases {
        let mut td = good_td();
        change(&mut td);
        let findings = task_definition(&td);
        assert_eq!(
            verdict(&findings, check),
            (Status::Fail, observed.to_string()),
            "{check}"
        );
        let failing: Vec<&str> = findings
            .iter()
            .filter(|f| f.status != Status::Pass)
            .map(|f| f.check_id.as_str())
            .collect();
        assert_eq!(failing, [*check], "only {check} fails");
    }
}

fn good_service() -> EcsServiceFacts {
    EcsServiceFacts {
        arn: "arn:aws:ecs:eu-west-1:123456789012:service/c/auth".into(),
        name: "auth".into(),
        cluster: "c".into(),
        region: "eu-west-1".into(),
        desired: 4,
        task_definition: "td".into(),
        circuit_breaker: Some((true, true)),
        minimum_healthy_percent: Some(100),
        assign_public_ip: Some("DISABLED".into()),
        security_groups: vec!["sg-app".into()],
    }
}

#[test]
fn service_checks_pass_and_fail() {
    let ctx = EvalContext::default();
    let findings = ecs_service(&good_service(), &ctx);
    assert_eq!(findings.len(), 4);
    assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
    type Change = fn(&mut EcsServiceFacts);
    let cases: &[(&str, Change, &str)] = &[
        (
            "ecs-circuit-breaker-rollback",
            |s| s.circuit_breaker = None,
            "no circuit breaker",
        ),
        (
            "ecs-circuit-breaker-rollback",
            |s| s.circuit_breaker = Some((true, false)),
            "circuit breaker on, rollback off",
        ),
        ("ecs-min-healthy-100", |s| s.minimum_healthy_percent = Some(50), "50%"),
        ("ecs-min-two-tasks", |s| s.desired = 1, "1 desired"),
        (
            "ecs-no-public-ip",
            |s| s.assign_public_ip = Some("ENABLED".into()),
            "assignPublicIp ENABLED",
        ),
    ];
    for (check, change, observed) in cases {
        let mut s = good_service();
        change(&mut s);
        assert_eq!(
            verdict(&ecs_service(&s, &ctx), check),
            (Status::Fail, observed.to_string()),
            "{check}"
        );
    }
    // The canary runs 0 tasks by design.
    let mut canary = good_service();
    canary.desired = 0;
    let ctx = EvalContext {
        scaled_by_suma: vec![("eu-west-1".into(), "c".into(), "auth".into())],
        ..EvalContext::default()
    };
    assert!(ecs_service(&canary, &ctx)
        .iter()
        .all(|f| f.check_id != "ecs-min-two-tasks"));
}

fn good_lb() -> LoadBalancerFacts {
    LoadBalancerFacts {
        arn: "arn:lb".into(),
        name: "lb".into(),
        dns_name: "lb.example.com".into(),
        region: "eu-west-1".into(),
        listeners: vec![
            ListenerFacts {
                arn: "l1".into(),
                port: Some(443),
                protocol: "HTTPS".into(),
                ssl_policy: Some("ELBSecurityPolicy-TLS13-1-2-2021-06".into()),
                ssl_protocols: Some(vec!["TLSv1.2".into(), "TLSv1.3".into()]),
                redirects_to_https: false,
            },
            ListenerFacts {
                arn: "l2".into(),
                port: Some(80),
                protocol: "HTTP".into(),
                ssl_policy: None,
                ssl_protocols: None,
                redirects_to_https: true,
            },
        ],
        deletion_protection: true,
        access_logs: true,
        drop_invalid_headers: true,
    }
}

#[test]
fn tls_policies_are_judged_by_their_protocols_not_their_names() {
    let v = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // (policy, protocols ELB describes, TLS 1.2 or later)
    let cases: [(&str, Option<Vec<String>>, bool); 9] = [
        (
            "ELBSecurityPolicy-TLS13-1-2-2021-06",
            Some(v(&["TLSv1.2", "TLSv1.3"])),
            true,
        ),
        ("ELBSecurityPolicy-TLS13-1-3-2021-06", Some(v(&["TLSv1.3"])), true),
        // TLS13 in the name, TLS 1.0 in the policy: the false pass of a name match.
        (
            "ELBSecurityPolicy-TLS13-1-0-2021-06",
            Some(v(&["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])),
            false,
        ),
        (
            "ELBSecurityPolicy-2016-08",
            Some(v(&["TLSv1", "TLSv1.1", "TLSv1.2"])),
            false,
        ),
        ("custom-policy", Some(Vec::new()), false),
        // Not described: the name must say "1.2 at least".
        ("ELBSecurityPolicy-TLS13-1-0-2021-06", None, false),
        ("ELBSecurityPolicy-TLS13-1-1-2021-06", None, false),
        ("ELBSecurityPolicy-FS-1-2-Res-2020-10", None, true),
        ("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", None, true),
    ];
    for (policy, protocols, expected) in cases {
        assert_eq!(
            tls12_or_later(policy, protocols.as_deref()),
            expected,
            "{policy} {protocols:?}"
        );
    }
}

#[test]
fn load_balancer_checks_pass_and_fail() {
    let findings = load_balancer(&good_lb());
    assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
    assert_eq!(
        verdict(&findings, "alb-https-tls12").1,
        "HTTPS:443 ELBSecurityPolicy-TLS13-1-2-2021-06 (TLSv1.2, TLSv1.3)"
    );
    type Change = fn(&mut LoadBalancerFacts);
    let cases: &[(&str, Change, &str)] = &[
        (
            "alb-https-tls12",
            |l| l.listeners.remove(0).arn.clear(),
            "no HTTPS listener",
        ),
        (
            "alb-https-tls12",
            |l| {
                l.listeners[0].ssl_policy = Some("ELBSecurityPolicy-TLS13-1-0-2021-06".into());
                l.listeners[0].ssl_protocols = Some(vec!["TLSv1".into(), "TLSv1.2".into(), "TLSv1.3".into()]);
            },
            "HTTPS:443 ELBSecurityPolicy-TLS13-1-0-2021-06 (TLSv1, TLSv1.2, TLSv1.3)",
        ),
        (
            "alb-http-redirects",
            |l| l.listeners[1].redirects_to_https = false,
            "HTTP:80 forwards",
        ),
        (
            "alb-deletion-protection",
            |l| l.deletion_protection = false,
            "deletion protection off",
        ),
        ("alb-access-logs", |l| l.access_logs = false, "access logs off"),
        (
            "alb-drop-invalid-headers",
            |l| l.drop_invalid_headers = false,
            "dropping invalid header fields off",
        ),
    ];
    for (check, change, observed) in cases {
        let mut lb = good_lb();
        change(&mut lb);
        assert_eq!(
            verdict(&load_balancer(&lb), check),
            (Status::Fail, observed.to_string()),
            "{check}"
        );
    }
}

#[test]
fn failover_record_checks() {
    let good = FailoverRecordFacts {
        zone_id: "Z1".into(),
        name: "auth.example.com".into(),
        record_type: "A".into(),
        set_identifier: Some("auth-primary".into()),
        failover: "PRIMARY".into(),
        ttl: None,
        alias: true,
        evaluate_target_health: false,
        health_check_id: Some("hc-1".into()),
    };
    let f = failover_record(&good);
    assert!(f.iter().all(|f| f.status == Status::Pass));
    assert_eq!(f[0].resource, "Z1/auth.example.com A auth-primary");
    let mut bad = good.clone();
    bad.alias = false;
    bad.ttl = Some(300);
    bad.health_check_id = None;
    let f = failover_record(&bad);
    assert_eq!(
        verdict(&f, "route53-failover-health-check"),
        (Status::Fail, "PRIMARY without a health check".into())
    );
    assert_eq!(verdict(&f, "route53-failover-ttl"), (Status::Fail, "TTL 300 s".into()));
    bad.ttl = Some(60);
    assert_eq!(verdict(&failover_record(&bad), "route53-failover-ttl").0, Status::Pass);
    // An alias that evaluates its target's health needs no health check of its own; one that does not,
    // does.
    let mut alias = good.clone();
    alias.health_check_id = None;
    assert_eq!(
        verdict(&failover_record(&alias), "route53-failover-health-check").0,
        Status::Fail
    );
    alias.evaluate_target_health = true;
    assert_eq!(
        verdict(&failover_record(&alias), "route53-failover-health-check"),
        (Status::Pass, "PRIMARY alias evaluating its target's health".into())
    );
}

#[test]
fn secret_checks_follow_the_policy() {
    let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let days_ago = |d: i64| Some(now - chrono::Duration::days(d));
    let base = SecretFacts {
        arn: "arn:s".into(),
        name: "/auth/prod/db".into(),
        region: "eu-west-1".into(),
        rotation_enabled: true,
        rotation_days: None,
        last_rotated: days_ago(10),
        last_changed: None,
        created: days_ago(400),
        kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
        last_accessed: days_ago(1),
        replica_of: None,
        resource_policy: PolicyReading::Document(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/auth"},"Action":"secretsmanager:GetSecretValue"}]}"#.into(),
        ),
    };
    let ctx = EvalContext {
        now,
        rotation_days: HashMap::from([("/auth/prod/db".to_owned(), 30)]),
        ..context()
    };
    let f = secret(&base, &ctx);
    assert!(f.iter().all(|f| f.status == Status::Pass), "{f:#?}");
    assert_eq!(f.len(), 4);
    // A replica's policy is its primary's, judged there.
    let mut replica = base.clone();
    replica.replica_of = Some("eu-central-1".into());
    assert!(secret(&replica, &ctx)
        .iter()
        .all(|f| f.check_id != "secrets-policy-not-public"));
    assert_eq!(
        verdict(&f, "secrets-rotation"),
        (Status::Pass, "rotation enabled, last rotated 10 days ago".into())
    );
    assert_eq!(verdict(&f, "secrets-cmk").0, Status::Pass);
    assert_eq!(
        f[0].expected,
        "rotated within 30 days (natively, or by suma for a managed secret)"
    );
    // A secret suma rotates has no native rotation: its last change is what counts.
    let mut by_suma = base.clone();
    by_suma.rotation_enabled = false;
    by_suma.last_rotated = None;
    by_suma.last_changed = days_ago(12);
    assert_eq!(
        verdict(&secret(&by_suma, &ctx), "secrets-rotation"),
        (Status::Pass, "rotated by suma, last changed 12 days ago".into())
    );
    by_suma.last_changed = days_ago(31);
    assert_eq!(
        verdict(&secret(&by_suma, &ctx), "secrets-rotation"),
        (Status::Fail, "rotated by suma, last changed 31 days ago".into())
    );

    type Change = fn(&mut SecretFacts);
    let cases: &[(&str, Change, &str)] = &[
        (
            "secrets-rotation",
            |s| {
                s.rotation_enabled = false;
                s.name = "/not/in/the/configuration".into();
            },
            "rotation disabled, not managed by suma",
        ),
        (
            "secrets-rotation",
            |s| s.last_rotated = None,
            "rotation enabled, never rotated, created 400 days ago",
        ),
        (
            "secrets-cmk",
            |s| s.kms_key_id = None,
            "AWS-managed key aws/secretsmanager",
        ),
        (
            "secrets-cmk",
            |s| s.kms_key_id = Some("alias/aws/secretsmanager".into()),
            "AWS-managed key alias/aws/secretsmanager",
        ),
        (
            "secrets-cmk",
            |s| s.kms_key_id = Some("arn:aws:kms:eu-west-1:123456789012:key/aws-rds".into()),
            "AWS-managed key arn:aws:kms:eu-west-1:123456789012:key/aws-rds",
        ),
        (
            "secrets-unused",
            |s| s.last_accessed = Some("2026-03-02T00:00:00Z".parse().unwrap()),
            "last read 91 days ago",
        ),
        (
            "secrets-unused",
            |s| s.last_accessed = None,
            "never read, created 400 days ago",
        ),
        (
            "secrets-policy-not-public",
            |s| {
                s.resource_policy = PolicyReading::Document(
                    r#"{"Statement":[{"Sid":"Anyone","Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue"}]}"#.into(),
                )
            },
            "statement Anyone allows every principal (*) without a condition",
        ),
    ];
    for (check, change, observed) in cases {
        let mut s = base.clone();
        change(&mut s);
        assert_eq!(
            verdict(&secret_of(&s, &ctx), check),
            (Status::Fail, observed.to_string()),
            "{check}"
        );
    }
    // Without configuration the secret's own rotation rule, else 90 days, is the policy.
    let mut s = base.clone();
    s.last_rotated = days_ago(45);
    s.rotation_days = Some(60);
    let plain = EvalContext { now, ..context() };
    assert_eq!(verdict(&secret_of(&s, &plain), "secrets-rotation").0, Status::Pass);
    s.rotation_days = None;
    s.last_rotated = days_ago(91);
    assert_eq!(verdict(&secret_of(&s, &plain), "secrets-rotation").0, Status::Fail);
}

fn secret_of(s: &SecretFacts, ctx: &EvalContext) -> Vec<Finding> {
    secret(s, ctx)
}

fn monitor(id: i64, name: &str, muted: bool, notifies: &[&str]) -> MonitorSummary {
    MonitorSummary {
        id,
        name: name.into(),
        tags: vec![],
        muted,
        notifies: notifies.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn datadog_required_monitors() {
    let all = [
        monitor(1, "auth-service high error rate", false, &["@pagerduty"]),
        monitor(2, "auth-service high p95 latency", false, &["@pagerduty"]),
        monitor(3, "auth-service failed login spike", false, &["@slack-sec"]),
        monitor(4, "auth-service account lockout spike", false, &["@slack-sec"]),
        monitor(5, "auth-service database connections", false, &["@team"]),
        monitor(6, "auth-service Redis memory", false, &["@team"]),
        monitor(7, "auth-service running tasks below 2", false, &["@team"]),
    ];
    let f = datadog_monitors(&all, &["env:production".into()]);
    assert_eq!(f.len(), 21);
    assert!(f.iter().all(|f| f.status == Status::Pass), "{f:#?}");
    assert_eq!(f[0].resource, "datadog:monitor/high-error-rate [env:production]");

    let mut some = all[1..].to_vec();
    some[4].muted = true;
    some[5].notifies.clear();
    let f = datadog_monitors(&some, &[]);
    let of = |key: &str, check: &str| {
        f.iter()
            .find(|x| x.resource == format!("datadog:monitor/{key}") && x.check_id == check)
            .map(|x| (x.status, x.observed.clone()))
    };
    assert_eq!(
        of("high-error-rate", "datadog-required-monitors"),
        Some((Status::Fail, "missing".into()))
    );
    assert_eq!(of("high-error-rate", "datadog-monitors-not-muted"), None);
    assert_eq!(
        of("redis-memory", "datadog-monitors-not-muted"),
        Some((Status::Fail, "#6 auth-service Redis memory: muted".into()))
    );
    assert_eq!(
        of("ecs-task-failure", "datadog-monitors-notify"),
        Some((
            Status::Fail,
            "#7 auth-service running tasks below 2: no @-handle in the message".into()
        ))
    );
}
