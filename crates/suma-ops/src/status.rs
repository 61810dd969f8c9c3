//! `suma status`: one screen of an environment's live state. Every AWS call runs concurrently; a section
//! whose calls fail shows its error while the others still report.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;

use crate::aws::ecs::{task_definition_label, EcsApi};
use crate::aws::elb::WeightedTarget;
use crate::aws::AwsApis;
use crate::config::{AwsRegion, Environment};
use crate::journal::lock::{LockInfo, Locks};
use crate::probe::{HttpProbe, ProbeResult};

/// The result of one part of the report: its data, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Section<T> {
    /// `ok` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<T> Section<T> {
    fn from_result<E: std::fmt::Display>(result: Result<T, E>) -> Self {
        match result {
            Ok(data) => Self {
                status: "ok",
                data: Some(data),
                error: None,
            },
            Err(e) => Self {
                status: "error",
                data: None,
                error: Some(e.to_string()),
            },
        }
    }

    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}

/// `suma status --output json`: this structure is stable; fields are only ever added.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub environment: String,
    pub primary_region: String,
    pub dr_region: String,
    pub generated_at: DateTime<Utc>,
    pub services: Section<Vec<ServiceStatus>>,
    pub traffic: Section<TrafficStatus>,
    pub databases: Section<Vec<DatabaseStatus>>,
    pub dns: Section<Vec<DnsRecordStatus>>,
    pub secrets: Section<Vec<SecretStatus>>,
    pub lock: Section<Option<LockInfo>>,
    /// Present when the environment has a `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
}

impl StatusReport {
    /// True when some section could not be read.
    pub fn has_errors(&self) -> bool {
        self.services.is_error()
            || self.traffic.is_error()
            || self.databases.is_error()
            || self.dns.is_error()
            || self.secrets.is_error()
            || self.lock.is_error()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// `stable`, `canary` or `dr`.
    pub role: &'static str,
    pub region: String,
    pub cluster: String,
    pub name: String,
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// `family:revision`.
    pub task_definition: String,
    pub image: Option<String>,
    /// Rollout state of the primary deployment.
    pub rollout_state: Option<String>,
    pub deployments: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrafficStatus {
    pub rule_arn: String,
    pub stable_weight: i32,
    pub canary_weight: i32,
    /// `stable` (100/0), `canary` (traffic split), or `unexpected` (other target groups or no weight).
    pub state: &'static str,
    pub targets: Vec<WeightedTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    /// `primary` or `replica`.
    pub role: &'static str,
    pub region: String,
    pub identifier: String,
    pub status: String,
    pub engine: String,
    pub multi_az: bool,
    pub storage_encrypted: bool,
    pub replica_source: Option<String>,
    pub read_replicas: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsRecordStatus {
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    pub failover: Option<String>,
    pub ttl: Option<i64>,
    pub targets: Vec<String>,
    pub health_check_id: Option<String>,
    /// `healthy`, `unhealthy`, `unknown` (the status could not be read) or absent without a health check.
    pub health: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretStatus {
    pub id: String,
    pub kind: &'static str,
    pub rotation_enabled: bool,
    pub last_rotated: Option<DateTime<Utc>>,
    pub age_days: Option<i64>,
    pub policy_days: u32,
    /// Older than its rotation policy.
    pub overdue: bool,
    /// A rotation was started and not finished (AWSPENDING without AWSCURRENT).
    pub rotation_pending: bool,
    pub versions: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthStatus {
    pub url: String,
    pub health: ProbeResult,
    pub version: ProbeResult,
}

/// What `gather` reads from.
pub struct StatusSources {
    pub aws: Arc<dyn AwsApis>,
    pub locks: Locks,
    pub probe: Arc<dyn HttpProbe>,
}

/// Reads everything concurrently.
pub async fn gather(name: &str, env: &Environment, sources: &StatusSources) -> StatusReport {
    let (services, traffic, databases, dns, secrets, lock, health) = tokio::join!(
        services(env, sources.aws.as_ref()),
        traffic(env, sources.aws.as_ref()),
        databases(env, sources.aws.as_ref()),
        dns(env, sources.aws.as_ref()),
        secrets(env, sources.aws.as_ref()),
        sources.locks.status(name),
        health(env, sources.probe.as_ref()),
    );
    StatusReport {
        environment: name.to_owned(),
        primary_region: env.primary_region.to_string(),
        dr_region: env.dr_region.to_string(),
        generated_at: Utc::now(),
        services: Section::from_result(services),
        traffic: Section::from_result(traffic),
        databases: Section::from_result(databases),
        dns: Section::from_result(dns),
        secrets: Section::from_result(secrets),
        lock: Section::from_result(lock),
        health,
    }
}

async fn cluster_services(
    ecs: Arc<dyn EcsApi>,
    region: &AwsRegion,
    cluster: &str,
    wanted: Vec<(&'static str, String)>,
) -> Result<Vec<ServiceStatus>, crate::aws::AwsError> {
    let names: Vec<String> = wanted.iter().map(|(_, n)| n.clone()).collect();
    let found = ecs.describe_services(cluster, &names).await?;
    let images = join_all(found.iter().map(|s| ecs.describe_task_definition(&s.task_definition))).await;
    Ok(wanted
        .iter()
        .filter_map(|(role, name)| {
            let index = found.iter().position(|s| &s.name == name)?;
            let service = &found[index];
            let primary = service.deployments.iter().find(|d| d.status == "PRIMARY");
            Some(ServiceStatus {
                role,
                region: region.to_string(),
                cluster: cluster.to_owned(),
                name: service.name.clone(),
                status: service.status.clone(),
                desired: service.desired,
                running: service.running,
                pending: service.pending,
                task_definition: task_definition_label(&service.task_definition).to_owned(),
                image: images[index]
                    .as_ref()
                    .ok()
                    .and_then(|td| td.containers.first().map(|c| c.image.clone())),
                rollout_state: primary.and_then(|d| d.rollout_state.clone()),
                deployments: service.deployments.len(),
            })
        })
        .collect())
}

async fn services(env: &Environment, aws: &dyn AwsApis) -> Result<Vec<ServiceStatus>, crate::aws::AwsError> {
    let (primary, dr) = tokio::join!(
        cluster_services(
            aws.ecs(&env.primary_region),
            &env.primary_region,
            &env.ecs.cluster,
            vec![
                ("stable", env.ecs.service.clone()),
                ("canary", env.ecs.canary_service.clone())
            ],
        ),
        cluster_services(
            aws.ecs(&env.dr_region),
            &env.dr_region,
            &env.ecs.dr.cluster,
            vec![("dr", env.ecs.dr.service.clone())],
        ),
    );
    let mut all = primary?;
    all.extend(dr?);
    Ok(all)
}

/// Classifies the rule's weights against the configured stable and canary target groups.
pub fn classify_traffic(
    rule_arn: &str,
    stable_tg: &str,
    canary_tg: &str,
    targets: Vec<WeightedTarget>,
) -> TrafficStatus {
    let weight_of = |arn: &str| {
        targets
            .iter()
            .filter(|t| t.target_group_arn == arn)
            .map(|t| t.weight)
            .sum::<i32>()
    };
    let stable_weight = weight_of(stable_tg);
    let canary_weight = weight_of(canary_tg);
    let foreign = targets
        .iter()
        .any(|t| t.target_group_arn != stable_tg && t.target_group_arn != canary_tg && t.weight > 0);
    let state = if foreign || stable_weight + canary_weight == 0 {
        "unexpected"
    } else if canary_weight == 0 {
        "stable"
    } else {
        "canary"
    };
    TrafficStatus {
        rule_arn: rule_arn.to_owned(),
        stable_weight,
        canary_weight,
        state,
        targets,
    }
}

async fn traffic(env: &Environment, aws: &dyn AwsApis) -> Result<TrafficStatus, crate::aws::AwsError> {
    let targets = aws
        .elb(&env.primary_region)
        .rule_weights(env.alb.rule_arn.as_str())
        .await?;
    Ok(classify_traffic(
        env.alb.rule_arn.as_str(),
        env.alb.stable_target_group_arn.as_str(),
        env.alb.canary_target_group_arn.as_str(),
        targets,
    ))
}

async fn databases(env: &Environment, aws: &dyn AwsApis) -> Result<Vec<DatabaseStatus>, crate::aws::AwsError> {
    let mut wanted = vec![("primary", &env.rds.primary)];
    if let Some(replica) = &env.rds.replica {
        wanted.push(("replica", replica));
    }
    let results = join_all(
        wanted
            .iter()
            .map(|(_, db)| async move { aws.rds(&db.region).describe_instance(&db.identifier).await }),
    )
    .await;
    wanted
        .iter()
        .zip(results)
        .map(|((role, db), result)| {
            let found = result?;
            Ok(DatabaseStatus {
                role,
                region: db.region.to_string(),
                identifier: found.identifier,
                status: found.status,
                engine: format!("{} {}", found.engine, found.engine_version).trim().to_owned(),
                multi_az: found.multi_az,
                storage_encrypted: found.storage_encrypted,
                replica_source: found.replica_source,
                read_replicas: found.read_replicas,
            })
        })
        .collect()
}

async fn dns(env: &Environment, aws: &dyn AwsApis) -> Result<Vec<DnsRecordStatus>, crate::aws::AwsError> {
    let route53 = aws.route53();
    let records = route53.records(&env.dns.hosted_zone_id, &env.dns.record_name).await?;
    let checks = join_all(records.iter().map(|r| {
        let route53 = route53.clone();
        let id = r.health_check_id.clone();
        async move {
            match id {
                Some(id) => Some(route53.health_check_status(&id).await),
                None => None,
            }
        }
    }))
    .await;
    Ok(records
        .into_iter()
        .zip(checks)
        .map(|(r, check)| DnsRecordStatus {
            name: r.name,
            record_type: r.record_type,
            set_identifier: r.set_identifier,
            failover: r.failover,
            ttl: r.ttl,
            targets: r.targets,
            health_check_id: r.health_check_id,
            health: check.map(|c| match c {
                Ok(s) if s.healthy => "healthy".to_owned(),
                Ok(_) => "unhealthy".to_owned(),
                Err(_) => "unknown".to_owned(),
            }),
        })
        .collect())
}

async fn secrets(env: &Environment, aws: &dyn AwsApis) -> Result<Vec<SecretStatus>, crate::aws::AwsError> {
    let api = aws.secrets(&env.primary_region);
    let now = Utc::now();
    let results = join_all(env.secrets.iter().map(|s| api.describe(&s.id))).await;
    Ok(env
        .secrets
        .iter()
        .zip(results)
        .map(|(managed, result)| match result {
            Ok(meta) => {
                let age_days = meta.current_since().map(|t| (now - t).num_days());
                SecretStatus {
                    id: managed.id.clone(),
                    kind: managed.kind.as_str(),
                    rotation_enabled: meta.rotation_enabled,
                    last_rotated: meta.last_rotated,
                    age_days,
                    policy_days: managed.rotation_days,
                    overdue: age_days.is_some_and(|d| d > i64::from(managed.rotation_days)),
                    rotation_pending: meta.rotation_pending(),
                    versions: meta.versions.len(),
                    error: None,
                }
            }
            // One missing secret should not hide the others.
            Err(e) => SecretStatus {
                id: managed.id.clone(),
                kind: managed.kind.as_str(),
                rotation_enabled: false,
                last_rotated: None,
                age_days: None,
                policy_days: managed.rotation_days,
                overdue: false,
                rotation_pending: false,
                versions: 0,
                error: Some(e.to_string()),
            },
        })
        .collect())
}

async fn health(env: &Environment, probe: &dyn HttpProbe) -> Option<HealthStatus> {
    let url = env.url.as_ref()?;
    let (health_url, version_url) = (url.join("/health"), url.join("/version"));
    let (health, version) = tokio::join!(probe.get(&health_url), probe.get(&version_url));
    Some(HealthStatus {
        url: url.to_string(),
        health,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(arn: &str, weight: i32) -> WeightedTarget {
        WeightedTarget {
            target_group_arn: arn.to_owned(),
            weight,
        }
    }

    #[test]
    fn traffic_states() {
        assert_eq!(
            classify_traffic("r", "s", "c", vec![t("s", 100), t("c", 0)]).state,
            "stable"
        );
        let split = classify_traffic("r", "s", "c", vec![t("s", 90), t("c", 10)]);
        assert_eq!(
            (split.state, split.stable_weight, split.canary_weight),
            ("canary", 90, 10)
        );
        assert_eq!(
            classify_traffic("r", "s", "c", vec![t("s", 50), t("x", 50)]).state,
            "unexpected"
        );
        assert_eq!(
            classify_traffic("r", "s", "c", vec![t("s", 0), t("c", 0)]).state,
            "unexpected"
        );
        assert_eq!(classify_traffic("r", "s", "c", vec![t("s", 1)]).state, "stable");
    }
}
