//! Pure evaluations: each function takes one resource as suma's inventory types describe it and returns
//! the findings of every check about that kind of resource. No I/O; [`super::run`] gathers the inputs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::keys::{KeyDirectory, KeyOwner};
use super::policy::{not_public, NOT_PUBLIC};
use super::{Check, Finding, Status};
use crate::aws::inventory::{
    ContainerFacts, DbInstanceFacts, EcsServiceFacts, FailoverRecordFacts, LoadBalancerFacts, ParameterValue,
    PolicyReading, SecretFacts, TaskDefinitionFacts,
};
use crate::metrics::datadog::MonitorSummary;

/// What evaluations need to know about the environment.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// Production has stricter backup retention and needs a cross-region replica.
    pub production: bool,
    pub now: DateTime<Utc>,
    /// Rotation policy in days of the secrets the configuration manages, by name and by ARN.
    pub rotation_days: HashMap<String, u32>,
    /// Services that legitimately run fewer than 2 tasks (the canary, the DR standby): (region, cluster,
    /// name).
    pub scaled_by_suma: Vec<(String, String, String)>,
    /// The KMS keys of the region being judged, to tell customer-managed keys from AWS-managed ones.
    pub keys: KeyDirectory,
    /// The AWS managed rule groups a load balancer's web ACL must run (`compliance.waf_rule_groups`).
    pub waf_rule_groups: Vec<String>,
}

impl Default for EvalContext {
    fn default() -> Self {
        Self {
            production: false,
            now: Utc::now(),
            rotation_days: HashMap::new(),
            scaled_by_suma: Vec::new(),
            keys: KeyDirectory::default(),
            waf_rule_groups: crate::config::ComplianceConfig::default().waf_rule_groups,
        }
    }
}

/// A secret not read for longer than this is unused (CIS and AWS Config's `secretsmanager-secret-unused`
/// default).
pub const UNUSED_SECRET_DAYS: i64 = 90;

/// Rotation policy of a secret no configuration names and no rotation rule sets.
pub const DEFAULT_ROTATION_DAYS: u32 = 90;

/// A finding of a registered check.
pub fn finding(
    check_id: &str,
    resource: &str,
    region: Option<&str>,
    pass: bool,
    observed: impl Into<String>,
    expected: impl Into<String>,
) -> Finding {
    let check = Check::get(check_id).unwrap_or_else(|| panic!("check `{check_id}` is not registered"));
    Finding {
        check_id: check.id.to_owned(),
        severity: check.severity,
        resource: resource.to_owned(),
        region: region.map(str::to_owned),
        status: if pass { Status::Pass } else { Status::Fail },
        observed: observed.into(),
        expected: expected.into(),
        detail: None,
    }
}

/// An `error` finding: the check could not read what it judges.
pub fn error_finding(check_id: &str, resource: &str, region: Option<&str>, error: &str) -> Finding {
    let mut f = finding(check_id, resource, region, false, "unreadable", "readable");
    f.status = Status::Error;
    f.detail = Some(error.to_owned());
    f
}

/// `on` or `off`, as observations say a setting.
pub(super) fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

pub fn db_instance(db: &DbInstanceFacts, ctx: &EvalContext) -> Vec<Finding> {
    let r = db.arn.as_str();
    let region = Some(db.region.as_str());
    let mut out = Vec::new();
    const CMK: &str = "encrypted with a customer-managed KMS key";
    let encryption = match (db.storage_encrypted, db.kms_key_id.as_deref()) {
        (false, _) => Ok((false, "not encrypted".to_owned())),
        (true, None) => Ok((false, "encrypted with the AWS-managed key".to_owned())),
        (true, Some(k)) => match ctx.keys.owner(k) {
            KeyOwner::Customer => Ok((true, format!("encrypted with {k}"))),
            KeyOwner::Aws => Ok((false, format!("encrypted with the AWS-managed key {k}"))),
            KeyOwner::Unreadable(e) => Err(e),
        },
    };
    out.push(match encryption {
        Ok((pass, observed)) => finding("rds-storage-encrypted-cmk", r, region, pass, observed, CMK),
        Err(e) => error_finding("rds-storage-encrypted-cmk", r, region, &e),
    });
    out.push(finding(
        "rds-multi-az",
        r,
        region,
        db.multi_az,
        format!("multi-AZ {}", on_off(db.multi_az)),
        "multi-AZ on",
    ));
    let min_days = if ctx.production { 30 } else { 7 };
    out.push(finding(
        "rds-backup-retention",
        r,
        region,
        db.backup_retention_days >= min_days,
        format!("{} days", db.backup_retention_days),
        format!("at least {min_days} days"),
    ));
    out.push(finding(
        "rds-deletion-protection",
        r,
        region,
        db.deletion_protection,
        format!("deletion protection {}", on_off(db.deletion_protection)),
        "deletion protection on",
    ));
    out.push(finding(
        "rds-not-public",
        r,
        region,
        !db.publicly_accessible,
        if db.publicly_accessible {
            "publicly accessible"
        } else {
            "private"
        },
        "private",
    ));
    out.push(finding(
        "rds-iam-auth",
        r,
        region,
        db.iam_auth,
        format!("IAM authentication {}", on_off(db.iam_auth)),
        "IAM authentication on",
    ));
    let group = db.parameter_group.as_deref().unwrap_or("no parameter group");
    match &db.force_ssl {
        ParameterValue::Unreadable(e) => out.push(error_finding("rds-force-ssl", r, region, e)),
        ParameterValue::Set(v) => out.push(finding(
            "rds-force-ssl",
            r,
            region,
            v.trim() == "1",
            format!("rds.force_ssl={v} ({group})"),
            "rds.force_ssl=1",
        )),
        ParameterValue::EngineDefault => {
            // PostgreSQL 15 and later default `rds.force_ssl` to 1 on RDS; earlier versions and other
            // engines default to off.
            let major: u32 = db
                .engine_version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            let on = db.engine.contains("postgres") && major >= 15;
            out.push(finding(
                "rds-force-ssl",
                r,
                region,
                on,
                format!(
                    "engine default for {} {} ({}) in {group}",
                    db.engine,
                    db.engine_version,
                    if on { "1" } else { "0" }
                ),
                "rds.force_ssl=1",
            ));
        }
    }
    out.push(finding(
        "rds-auto-minor-upgrade",
        r,
        region,
        db.auto_minor_version_upgrade,
        format!("auto minor version upgrade {}", on_off(db.auto_minor_version_upgrade)),
        "auto minor version upgrade on",
    ));
    out.push(finding(
        "rds-log-exports",
        r,
        region,
        !db.log_exports.is_empty(),
        if db.log_exports.is_empty() {
            "no log exports".to_owned()
        } else {
            format!("exports {}", db.log_exports.join(", "))
        },
        "logs exported to CloudWatch",
    ));
    // Only a production primary needs a replica elsewhere; a replica is the DR copy itself.
    if ctx.production && db.replica_source.is_none() {
        let other_region = db.read_replicas.iter().find(|r| {
            // Replicas in another region are listed by ARN: arn:aws:rds:REGION:...
            r.starts_with("arn:") && r.split(':').nth(3).is_some_and(|reg| reg != db.region)
        });
        out.push(finding(
            "rds-cross-region-replica",
            r,
            region,
            other_region.is_some(),
            match other_region {
                Some(replica) => format!("replica {replica}"),
                None if db.read_replicas.is_empty() => "no read replica".to_owned(),
                None => format!("replicas only in {}: {}", db.region, db.read_replicas.join(", ")),
            },
            "a read replica in another region",
        ));
    }
    out.push(finding(
        "rds-performance-insights",
        r,
        region,
        db.performance_insights,
        format!("Performance Insights {}", on_off(db.performance_insights)),
        "Performance Insights on",
    ));
    out
}

fn image_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

fn root_user(user: Option<&str>) -> bool {
    match user.map(str::trim) {
        None | Some("") => true,
        Some(u) => {
            let who = u.split(':').next().unwrap_or(u);
            who == "0" || who == "root"
        }
    }
}

/// One finding per check for the whole task definition; `observed` names the offending containers.
fn per_container(
    out: &mut Vec<Finding>,
    td: &TaskDefinitionFacts,
    check: &str,
    expected: &str,
    judge: impl Fn(&ContainerFacts) -> Result<String, String>,
) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for c in &td.containers {
        match judge(c) {
            Ok(o) => good.push(format!("{}: {o}", c.name)),
            Err(o) => bad.push(format!("{}: {o}", c.name)),
        }
    }
    let pass = bad.is_empty();
    let observed = if pass { good.join("; ") } else { bad.join("; ") };
    out.push(finding(check, &td.arn, Some(&td.region), pass, observed, expected));
}

pub fn task_definition(td: &TaskDefinitionFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    per_container(
        &mut out,
        td,
        "ecs-no-plaintext-secrets",
        "no secret-like environment values",
        |c| {
            let hits: Vec<String> = c
                .environment
                .iter()
                .filter_map(|(n, v)| crate::plaintext_secret::judge(n, v).map(|why| format!("{n} ({why})")))
                .collect();
            if hits.is_empty() {
                Ok(format!("{} plain variables, none secret-like", c.environment.len()))
            } else {
                Err(format!("secret-like {}", hits.join(", ")))
            }
        },
    );
    per_container(
        &mut out,
        td,
        "ecs-secrets-from-secrets-manager",
        "every secret from Secrets Manager",
        |c| {
            let elsewhere: Vec<&str> = c
                .secrets
                .iter()
                .filter(|(_, from)| !(from.starts_with("arn:aws") && from.split(':').nth(2) == Some("secretsmanager")))
                .map(|(n, _)| n.as_str())
                .collect();
            if elsewhere.is_empty() {
                Ok(format!("{} secrets from Secrets Manager", c.secrets.len()))
            } else {
                Err(format!("not from Secrets Manager: {}", elsewhere.join(", ")))
            }
        },
    );
    per_container(&mut out, td, "ecs-non-root-user", "a non-root user", |c| {
        let shown = c.user.clone().unwrap_or_else(|| "unset (root)".to_owned());
        if root_user(c.user.as_deref()) {
            Err(format!("user {shown}"))
        } else {
            Ok(format!("user {shown}"))
        }
    });
    per_container(
        &mut out,
        td,
        "ecs-readonly-root-fs",
        "readonlyRootFilesystem true",
        |c| match c.readonly_root_filesystem {
            Some(true) => Ok("readonlyRootFilesystem true".to_owned()),
            Some(false) => Err("readonlyRootFilesystem false".to_owned()),
            None => Err("readonlyRootFilesystem unset".to_owned()),
        },
    );
    per_container(&mut out, td, "ecs-not-privileged", "privileged false", |c| {
        if c.privileged == Some(true) {
            Err("privileged true".to_owned())
        } else {
            Ok("privileged false".to_owned())
        }
    });
    per_container(
        &mut out,
        td,
        "ecs-no-privilege-escalation",
        "no added capabilities",
        |c| {
            if c.added_capabilities.is_empty() {
                Ok("no added capabilities".to_owned())
            } else {
                Err(format!("adds {}", c.added_capabilities.join(", ")))
            }
        },
    );
    per_container(&mut out, td, "ecs-log-configuration", "a log driver", |c| {
        match &c.log_driver {
            Some(d) => Ok(format!("log driver {d}")),
            None => Err("no log configuration".to_owned()),
        }
    });
    per_container(&mut out, td, "ecs-image-pinned", "a version tag or digest", |c| {
        if image_pinned(&c.image) {
            Ok(c.image.clone())
        } else {
            Err(c.image.clone())
        }
    });
    let task_level =
        td.cpu.as_deref().is_some_and(|v| !v.is_empty()) && td.memory.as_deref().is_some_and(|v| !v.is_empty());
    if task_level {
        out.push(finding(
            "ecs-cpu-memory-set",
            &td.arn,
            Some(&td.region),
            true,
            format!(
                "task cpu {} memory {}",
                td.cpu.as_deref().unwrap_or(""),
                td.memory.as_deref().unwrap_or("")
            ),
            "cpu and memory set",
        ));
    } else {
        per_container(&mut out, td, "ecs-cpu-memory-set", "cpu and memory set", |c| {
            let memory = c.memory.or(c.memory_reservation);
            match (c.cpu > 0, memory) {
                (true, Some(m)) => Ok(format!("cpu {} memory {m}", c.cpu)),
                _ => Err(format!(
                    "cpu {} memory {}",
                    if c.cpu > 0 {
                        c.cpu.to_string()
                    } else {
                        "unset".to_owned()
                    },
                    memory.map_or_else(|| "unset".to_owned(), |m| m.to_string())
                )),
            }
        });
    }
    per_container(
        &mut out,
        td,
        "ecs-container-health-check",
        "a container health check",
        |c| {
            if c.health_check {
                Ok("health check set".to_owned())
            } else {
                Err("no health check".to_owned())
            }
        },
    );
    out
}

pub fn ecs_service(s: &EcsServiceFacts, ctx: &EvalContext) -> Vec<Finding> {
    let r = s.arn.as_str();
    let region = Some(s.region.as_str());
    let mut out = Vec::new();
    let (enable, rollback) = s.circuit_breaker.unwrap_or((false, false));
    out.push(finding(
        "ecs-circuit-breaker-rollback",
        r,
        region,
        enable && rollback,
        match s.circuit_breaker {
            None => "no circuit breaker".to_owned(),
            Some(_) => format!("circuit breaker {}, rollback {}", on_off(enable), on_off(rollback)),
        },
        "circuit breaker on, rollback on",
    ));
    out.push(finding(
        "ecs-min-healthy-100",
        r,
        region,
        s.minimum_healthy_percent.is_some_and(|p| p >= 100),
        match s.minimum_healthy_percent {
            Some(p) => format!("{p}%"),
            None => "unset".to_owned(),
        },
        "100%",
    ));
    // The canary and the DR standby run 0 tasks by design; suma scales them.
    let exempt = ctx
        .scaled_by_suma
        .iter()
        .any(|(r, c, n)| *r == s.region && *c == s.cluster && *n == s.name);
    if !exempt {
        out.push(finding(
            "ecs-min-two-tasks",
            r,
            region,
            s.desired >= 2,
            format!("{} desired", s.desired),
            "at least 2 desired",
        ));
    }
    let public = s.assign_public_ip.as_deref() == Some("ENABLED");
    out.push(finding(
        "ecs-no-public-ip",
        r,
        region,
        !public,
        match s.assign_public_ip.as_deref() {
            Some(a) => format!("assignPublicIp {a}"),
            None => "no awsvpc public IP setting".to_owned(),
        },
        "assignPublicIp DISABLED",
    ));
    out
}

/// Whether a listener allows only TLS 1.2 and later: judged from the protocols ELB says its policy
/// allows; by the policy's name only when ELB could not describe it, and then only names that say
/// "1.2 at least" (`TLS13-1-0-2021-06` carries TLS13 in its name and still allows TLS 1.0).
pub fn tls12_or_later(policy: &str, protocols: Option<&[String]>) -> bool {
    match protocols {
        Some(protocols) => {
            !protocols.is_empty() && protocols.iter().all(|p| matches!(p.as_str(), "TLSv1.2" | "TLSv1.3"))
        }
        None => ["TLS13-1-2", "TLS13-1-3", "TLS-1-2", "FS-1-2"]
            .iter()
            .any(|p| policy.contains(p)),
    }
}

pub fn load_balancer(lb: &LoadBalancerFacts) -> Vec<Finding> {
    let r = lb.arn.as_str();
    let region = Some(lb.region.as_str());
    let mut out = Vec::new();
    let https: Vec<_> = lb.listeners.iter().filter(|l| l.protocol == "HTTPS").collect();
    let describe = |l: &crate::aws::inventory::ListenerFacts| {
        format!(
            "{}:{} {}{}",
            l.protocol,
            l.port.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            l.ssl_policy.as_deref().unwrap_or("no policy"),
            l.ssl_protocols
                .as_ref()
                .map(|p| format!(" ({})", p.join(", ")))
                .unwrap_or_default()
        )
    };
    out.push(finding(
        "alb-https-tls12",
        r,
        region,
        !https.is_empty()
            && https.iter().all(|l| {
                l.ssl_policy
                    .as_deref()
                    .is_some_and(|p| tls12_or_later(p, l.ssl_protocols.as_deref()))
            }),
        if https.is_empty() {
            "no HTTPS listener".to_owned()
        } else {
            https.iter().map(|l| describe(l)).collect::<Vec<_>>().join(", ")
        },
        "HTTPS listener with a TLS 1.2+ policy (TLS 1.3 preferred)",
    ));
    let http: Vec<_> = lb.listeners.iter().filter(|l| l.protocol == "HTTP").collect();
    let not_redirecting: Vec<String> = http
        .iter()
        .filter(|l| !l.redirects_to_https)
        .map(|l| format!("HTTP:{} forwards", l.port.unwrap_or_default()))
        .collect();
    out.push(finding(
        "alb-http-redirects",
        r,
        region,
        not_redirecting.is_empty(),
        if http.is_empty() {
            "no HTTP listener".to_owned()
        } else if not_redirecting.is_empty() {
            "every HTTP listener redirects to HTTPS".to_owned()
        } else {
            not_redirecting.join(", ")
        },
        "HTTP listeners redirect to HTTPS",
    ));
    out.push(finding(
        "alb-deletion-protection",
        r,
        region,
        lb.deletion_protection,
        format!("deletion protection {}", on_off(lb.deletion_protection)),
        "deletion protection on",
    ));
    out.push(finding(
        "alb-access-logs",
        r,
        region,
        lb.access_logs,
        format!("access logs {}", on_off(lb.access_logs)),
        "access logs on",
    ));
    out.push(finding(
        "alb-drop-invalid-headers",
        r,
        region,
        lb.drop_invalid_headers,
        format!("dropping invalid header fields {}", on_off(lb.drop_invalid_headers)),
        "dropping invalid header fields on",
    ));
    out
}

/// `zone/name type set-identifier`: a record has no ARN.
pub fn record_resource(r: &FailoverRecordFacts) -> String {
    format!(
        "{}/{} {} {}",
        r.zone_id,
        r.name,
        r.record_type,
        r.set_identifier.as_deref().unwrap_or(&r.failover)
    )
}

pub fn failover_record(rec: &FailoverRecordFacts) -> Vec<Finding> {
    let r = record_resource(rec);
    vec![
        // An alias with EvaluateTargetHealth is health-checked by Route 53 through its target (the load
        // balancer's healthy targets): as good as a health check of its own.
        finding(
            "route53-failover-health-check",
            &r,
            None,
            rec.health_check_id.is_some() || (rec.alias && rec.evaluate_target_health),
            match &rec.health_check_id {
                Some(id) => format!("{} with health check {id}", rec.failover),
                None if rec.alias && rec.evaluate_target_health => {
                    format!("{} alias evaluating its target's health", rec.failover)
                }
                None => format!("{} without a health check", rec.failover),
            },
            "a health check, or an alias evaluating its target's health",
        ),
        finding(
            "route53-failover-ttl",
            &r,
            None,
            rec.alias || rec.ttl.is_some_and(|t| t <= 60),
            match rec.ttl {
                _ if rec.alias => "alias (the target's TTL)".to_owned(),
                Some(t) => format!("TTL {t} s"),
                None => "no TTL".to_owned(),
            },
            "TTL at most 60 s",
        ),
    ]
}

pub fn secret(s: &SecretFacts, ctx: &EvalContext) -> Vec<Finding> {
    let r = s.arn.as_str();
    let region = Some(s.region.as_str());
    let policy = ctx
        .rotation_days
        .get(&s.name)
        .or_else(|| ctx.rotation_days.get(&s.arn))
        .copied()
        .or_else(|| s.rotation_days.and_then(|d| u32::try_from(d).ok()))
        .unwrap_or(DEFAULT_ROTATION_DAYS);
    // Rotated by Secrets Manager (native rotation) or by `suma secrets rotate` (a secret the
    // configuration manages: its value changes, and with it LastChangedDate, without native rotation).
    let managed_by_suma = ctx.rotation_days.contains_key(&s.name) || ctx.rotation_days.contains_key(&s.arn);
    let since = if s.rotation_enabled {
        s.last_rotated.or(s.created)
    } else {
        s.last_rotated.max(s.last_changed).or(s.created)
    };
    let age_days = since.map(|t| (ctx.now - t).num_days());
    let rotated_in_time = age_days.is_some_and(|d| d <= i64::from(policy));
    let observed = match (s.rotation_enabled, managed_by_suma, s.last_rotated, age_days) {
        (false, false, _, _) => "rotation disabled, not managed by suma".to_owned(),
        (false, true, _, Some(d)) => format!("rotated by suma, last changed {d} days ago"),
        (false, true, _, None) => "rotated by suma, no change or creation date".to_owned(),
        (true, _, Some(_), Some(d)) => format!("rotation enabled, last rotated {d} days ago"),
        (true, _, None, Some(d)) => format!("rotation enabled, never rotated, created {d} days ago"),
        (true, _, _, None) => "rotation enabled, no rotation or creation date".to_owned(),
    };
    let mut out = vec![
        finding(
            "secrets-rotation",
            r,
            region,
            (s.rotation_enabled || managed_by_suma) && rotated_in_time,
            observed,
            format!("rotated within {policy} days (natively, or by suma for a managed secret)"),
        ),
        {
            const CMK: &str = "a customer-managed KMS key";
            match s.kms_key_id.as_deref().map(|k| (k, ctx.keys.owner(k))) {
                None => finding(
                    "secrets-cmk",
                    r,
                    region,
                    false,
                    "AWS-managed key aws/secretsmanager",
                    CMK,
                ),
                Some((k, KeyOwner::Customer)) => finding("secrets-cmk", r, region, true, format!("key {k}"), CMK),
                Some((k, KeyOwner::Aws)) => {
                    finding("secrets-cmk", r, region, false, format!("AWS-managed key {k}"), CMK)
                }
                Some((_, KeyOwner::Unreadable(e))) => error_finding("secrets-cmk", r, region, &e),
            }
        },
        {
            // Never read, or not for longer than the unused limit: a credential nobody uses is one to
            // delete, not to keep rotating.
            let read = s.last_accessed.or(s.created);
            let days = read.map(|t| (ctx.now - t).num_days());
            let observed = match (s.last_accessed, days) {
                (Some(_), Some(d)) => format!("last read {d} days ago"),
                (None, Some(d)) => format!("never read, created {d} days ago"),
                (_, None) => "no read or creation date".to_owned(),
            };
            finding(
                "secrets-unused",
                r,
                region,
                days.is_some_and(|d| d <= UNUSED_SECRET_DAYS),
                observed,
                format!("read within {UNUSED_SECRET_DAYS} days"),
            )
        },
    ];
    // A replica carries its primary's policy, judged in the primary's region.
    if s.replica_of.is_none() {
        out.push(secret_policy(r, region, &s.resource_policy));
    }
    out
}

fn secret_policy(r: &str, region: Option<&str>, policy: &PolicyReading) -> Finding {
    match policy {
        PolicyReading::None => finding(
            "secrets-policy-not-public",
            r,
            region,
            true,
            "no resource policy",
            NOT_PUBLIC,
        ),
        PolicyReading::Document(doc) => not_public("secrets-policy-not-public", r, region, "", doc),
        PolicyReading::Unreadable(e) => error_finding("secrets-policy-not-public", r, region, e),
    }
}

/// A monitor the service must have, recognised by words in its name.
#[derive(Debug, Clone, Copy)]
pub struct RequiredMonitor {
    pub key: &'static str,
    pub title: &'static str,
    /// Lower-case name fragments; any one identifies the monitor.
    pub name_contains: &'static [&'static str],
}

pub const REQUIRED_MONITORS: &[RequiredMonitor] = &[
    RequiredMonitor {
        key: "high-error-rate",
        title: "high error rate",
        name_contains: &["error rate"],
    },
    RequiredMonitor {
        key: "high-latency",
        title: "high latency",
        name_contains: &["latency", "response time"],
    },
    RequiredMonitor {
        key: "failed-login-spike",
        title: "failed-login spike",
        name_contains: &["failed login", "failed-login"],
    },
    RequiredMonitor {
        key: "account-lockout-spike",
        title: "account-lockout spike",
        name_contains: &["lockout"],
    },
    RequiredMonitor {
        key: "database-connections",
        title: "database connections",
        name_contains: &["database connection", "db connection"],
    },
    RequiredMonitor {
        key: "redis-memory",
        title: "Redis memory",
        name_contains: &["redis memory"],
    },
    RequiredMonitor {
        key: "ecs-task-failure",
        title: "ECS task failure",
        name_contains: &["running tasks", "task failure", "ecs task"],
    },
];

/// The required monitors among `monitors` (those carrying the environment's tags).
pub fn datadog_monitors(monitors: &[MonitorSummary], env_tags: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    let scope = if env_tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", env_tags.join(","))
    };
    for required in REQUIRED_MONITORS {
        let resource = format!("datadog:monitor/{}{scope}", required.key);
        let found = monitors.iter().find(|m| {
            let name = m.name.to_ascii_lowercase();
            required.name_contains.iter().any(|n| name.contains(n))
        });
        let Some(m) = found else {
            out.push(finding(
                "datadog-required-monitors",
                &resource,
                None,
                false,
                "missing",
                format!("a monitor for {}", required.title),
            ));
            continue;
        };
        let shown = format!("#{} {}", m.id, m.name);
        out.push(finding(
            "datadog-required-monitors",
            &resource,
            None,
            true,
            shown.clone(),
            format!("a monitor for {}", required.title),
        ));
        out.push(finding(
            "datadog-monitors-not-muted",
            &resource,
            None,
            !m.muted,
            format!("{shown}: {}", if m.muted { "muted" } else { "not muted" }),
            "not muted",
        ));
        out.push(finding(
            "datadog-monitors-notify",
            &resource,
            None,
            !m.notifies.is_empty(),
            if m.notifies.is_empty() {
                format!("{shown}: no @-handle in the message")
            } else {
                format!("{shown}: notifies {}", m.notifies.join(", "))
            },
            "at least one @-handle",
        ));
    }
    out
}

#[cfg(test)]
mod tests;
