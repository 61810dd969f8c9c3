//! Read-only inventory of the resources compliance checks judge: every DB instance, ECS service and task
//! definition, application load balancer, Route 53 failover record and secret a region holds (the account
//! view auditors take), as suma's own plain types. Every list is paginated; nothing here writes.
//!
//! [`InventoryApi`] is the narrow seam: the compliance engine sees only these types, and its tests use
//! hand-written fakes. [`AwsSession::inventory`] hands out the SDK-backed implementation for a region.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Serialize;

use super::{to_chrono, AwsError, AwsErrorKind, AwsSession};
use suma_core::config::AwsRegion;

/// How many describe calls of one kind run at once inside one listing.
const CONCURRENCY: usize = 8;

/// A DB instance with the settings compliance looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbInstanceFacts {
    pub identifier: String,
    pub arn: String,
    pub region: String,
    pub engine: String,
    pub engine_version: String,
    pub multi_az: bool,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    pub publicly_accessible: bool,
    pub iam_auth: bool,
    pub auto_minor_version_upgrade: bool,
    pub log_exports: Vec<String>,
    pub performance_insights: bool,
    /// Identifier or ARN of the instance this one replicates from.
    pub replica_source: Option<String>,
    /// Identifiers (same region) or ARNs (other regions) of this instance's read replicas.
    pub read_replicas: Vec<String>,
    pub parameter_group: Option<String>,
    /// `rds.force_ssl` as the parameter group sets it.
    pub force_ssl: ParameterValue,
}

/// A parameter as read from a DB parameter group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum ParameterValue {
    /// The group sets it to this value.
    Set(String),
    /// The group leaves it at the engine default.
    #[default]
    EngineDefault,
    /// The group could not be read.
    Unreadable(String),
}

/// An ECS service with its deployment and network settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EcsServiceFacts {
    pub arn: String,
    pub name: String,
    pub cluster: String,
    pub region: String,
    pub desired: i32,
    pub task_definition: String,
    /// `(enable, rollback)` of the deployment circuit breaker, when configured.
    pub circuit_breaker: Option<(bool, bool)>,
    pub minimum_healthy_percent: Option<i32>,
    /// `ENABLED` or `DISABLED` (awsvpc networking only).
    pub assign_public_ip: Option<String>,
}

/// A task definition and its containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskDefinitionFacts {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub region: String,
    /// Task-level CPU units and memory (MiB), as ECS returns them.
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub containers: Vec<ContainerFacts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerFacts {
    pub name: String,
    pub image: String,
    pub user: Option<String>,
    pub readonly_root_filesystem: Option<bool>,
    pub privileged: Option<bool>,
    /// Linux capabilities added with `linuxParameters.capabilities.add`.
    pub added_capabilities: Vec<String>,
    /// Plain `environment` entries (name, value).
    pub environment: Vec<(String, String)>,
    /// `secrets` entries (name, valueFrom).
    pub secrets: Vec<(String, String)>,
    pub log_driver: Option<String>,
    pub health_check: bool,
    pub cpu: i32,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
}

/// An application load balancer, its listeners and attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadBalancerFacts {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub region: String,
    pub listeners: Vec<ListenerFacts>,
    pub deletion_protection: bool,
    pub access_logs: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenerFacts {
    pub arn: String,
    pub port: Option<i32>,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub ssl_policy: Option<String>,
    /// The default action redirects to HTTPS.
    pub redirects_to_https: bool,
}

/// A Route 53 failover record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailoverRecordFacts {
    pub zone_id: String,
    /// Record name without the trailing dot.
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    /// `PRIMARY` or `SECONDARY`.
    pub failover: String,
    /// None for alias records, whose TTL is the target's.
    pub ttl: Option<i64>,
    pub alias: bool,
    pub health_check_id: Option<String>,
}

/// A secret's metadata (never its value).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecretFacts {
    pub arn: String,
    pub name: String,
    pub region: String,
    pub rotation_enabled: bool,
    /// `RotationRules.AutomaticallyAfterDays`.
    pub rotation_days: Option<i64>,
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_changed: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    pub kms_key_id: Option<String>,
}

/// What one region holds, read-only.
#[async_trait]
pub trait InventoryApi: Send + Sync {
    async fn db_instances(&self) -> Result<Vec<DbInstanceFacts>, AwsError>;
    /// Every service of every cluster.
    async fn ecs_services(&self) -> Result<Vec<EcsServiceFacts>, AwsError>;
    async fn task_definition(&self, arn: &str) -> Result<TaskDefinitionFacts, AwsError>;
    /// Application load balancers only.
    async fn load_balancers(&self) -> Result<Vec<LoadBalancerFacts>, AwsError>;
    /// Failover records of every hosted zone (Route 53 is global: any region's inventory answers).
    async fn failover_records(&self) -> Result<Vec<FailoverRecordFacts>, AwsError>;
    async fn secrets(&self) -> Result<Vec<SecretFacts>, AwsError>;
}

impl AwsSession {
    /// The read-only inventory of `region`.
    pub fn inventory(&self, region: &AwsRegion) -> Arc<dyn InventoryApi> {
        Arc::new(SdkInventory::new(self.config(region), region.as_str()))
    }
}

/// The SDK-backed inventory of one region.
pub struct SdkInventory {
    region: String,
    rds: aws_sdk_rds::Client,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    route53: aws_sdk_route53::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl SdkInventory {
    pub fn new(config: &SdkConfig, region: &str) -> Self {
        Self {
            region: region.to_owned(),
            rds: aws_sdk_rds::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }

    async fn force_ssl(&self, group: &str) -> ParameterValue {
        let mut pages = self
            .rds
            .describe_db_parameters()
            .db_parameter_group_name(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    if let Some(p) = page
                        .parameters()
                        .iter()
                        .find(|p| p.parameter_name() == Some("rds.force_ssl"))
                    {
                        return match p.parameter_value() {
                            Some(v) => ParameterValue::Set(v.to_owned()),
                            None => ParameterValue::EngineDefault,
                        };
                    }
                }
                Err(e) => {
                    let err = AwsError::from_sdk("RDS", "DescribeDBParameters", group, e);
                    // Default groups are the engine's defaults; a stand-in that cannot describe them says so.
                    if err.kind == AwsErrorKind::NotFound && group.starts_with("default.") {
                        return ParameterValue::EngineDefault;
                    }
                    return ParameterValue::Unreadable(err.to_string());
                }
            }
        }
        ParameterValue::EngineDefault
    }

    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Vec<EcsServiceFacts>, AwsError> {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeServices", cluster, e))?;
        Ok(out
            .services()
            .iter()
            .map(|s| {
                let deployment = s.deployment_configuration();
                EcsServiceFacts {
                    arn: s.service_arn().unwrap_or_default().to_owned(),
                    name: s.service_name().unwrap_or_default().to_owned(),
                    cluster: cluster_name(s.cluster_arn().unwrap_or(cluster)).to_owned(),
                    region: self.region.clone(),
                    desired: s.desired_count(),
                    task_definition: s.task_definition().unwrap_or_default().to_owned(),
                    circuit_breaker: deployment
                        .and_then(|d| d.deployment_circuit_breaker())
                        .map(|b| (b.enable(), b.rollback())),
                    minimum_healthy_percent: deployment.and_then(|d| d.minimum_healthy_percent()),
                    assign_public_ip: s
                        .network_configuration()
                        .and_then(|n| n.awsvpc_configuration())
                        .and_then(|a| a.assign_public_ip())
                        .map(|a| a.as_str().to_owned()),
                }
            })
            .collect())
    }

    async fn listeners(&self, lb_arn: &str) -> Result<Vec<ListenerFacts>, AwsError> {
        let mut listeners = Vec::new();
        let mut pages = self
            .elb
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ELBv2", "DescribeListeners", lb_arn, e))?;
            for l in page.listeners() {
                let redirects_to_https = l.default_actions().iter().any(|a| {
                    a.redirect_config()
                        .and_then(|r| r.protocol())
                        .is_some_and(|p| p.eq_ignore_ascii_case("HTTPS"))
                });
                listeners.push(ListenerFacts {
                    arn: l.listener_arn().unwrap_or_default().to_owned(),
                    port: l.port(),
                    protocol: l.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
                    ssl_policy: l.ssl_policy().map(str::to_owned),
                    redirects_to_https,
                });
            }
        }
        Ok(listeners)
    }

    async fn load_balancer(
        &self,
        (arn, name, dns_name): (String, String, String),
    ) -> Result<LoadBalancerFacts, AwsError> {
        let (listeners, attributes) = tokio::join!(
            self.listeners(&arn),
            self.elb
                .describe_load_balancer_attributes()
                .load_balancer_arn(&arn)
                .send()
        );
        let attributes =
            attributes.map_err(|e| AwsError::from_sdk("ELBv2", "DescribeLoadBalancerAttributes", &arn, e))?;
        let attribute = |key: &str| {
            attributes
                .attributes()
                .iter()
                .any(|a| a.key() == Some(key) && a.value() == Some("true"))
        };
        Ok(LoadBalancerFacts {
            deletion_protection: attribute("deletion_protection.enabled"),
            access_logs: attribute("access_logs.s3.enabled"),
            listeners: listeners?,
            arn,
            name,
            dns_name,
            region: self.region.clone(),
        })
    }

    async fn zone_failover_records(&self, zone_id: &str) -> Result<Vec<FailoverRecordFacts>, AwsError> {
        let mut records = Vec::new();
        let mut start: Option<(String, aws_sdk_route53::types::RrType, Option<String>)> = None;
        loop {
            let mut request = self.route53.list_resource_record_sets().hosted_zone_id(zone_id);
            if let Some((name, kind, id)) = start.take() {
                request = request
                    .start_record_name(name)
                    .start_record_type(kind)
                    .set_start_record_identifier(id);
            }
            let out = request
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Route53", "ListResourceRecordSets", zone_id, e))?;
            for set in out.resource_record_sets() {
                let Some(failover) = set.failover() else { continue };
                records.push(FailoverRecordFacts {
                    zone_id: zone_id.to_owned(),
                    name: set.name().trim_end_matches('.').to_ascii_lowercase(),
                    record_type: set.r#type().as_str().to_owned(),
                    set_identifier: set.set_identifier().map(str::to_owned),
                    failover: failover.as_str().to_owned(),
                    ttl: set.ttl(),
                    alias: set.alias_target().is_some(),
                    health_check_id: set.health_check_id().map(str::to_owned),
                });
            }
            match (out.is_truncated(), out.next_record_name(), out.next_record_type()) {
                (true, Some(name), Some(kind)) => {
                    start = Some((
                        name.to_owned(),
                        kind.clone(),
                        out.next_record_identifier().map(str::to_owned),
                    ))
                }
                _ => break,
            }
        }
        Ok(records)
    }
}

/// `auth` from `arn:aws:ecs:eu-west-1:123:cluster/auth`, or the name itself.
fn cluster_name(arn_or_name: &str) -> &str {
    arn_or_name.rsplit('/').next().unwrap_or(arn_or_name)
}

#[async_trait]
impl InventoryApi for SdkInventory {
    async fn db_instances(&self) -> Result<Vec<DbInstanceFacts>, AwsError> {
        let mut instances = Vec::new();
        let mut pages = self.rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("RDS", "DescribeDBInstances", &self.region, e))?;
            for db in page.db_instances() {
                instances.push(DbInstanceFacts {
                    identifier: db.db_instance_identifier().unwrap_or_default().to_owned(),
                    arn: db.db_instance_arn().unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    engine: db.engine().unwrap_or_default().to_owned(),
                    engine_version: db.engine_version().unwrap_or_default().to_owned(),
                    multi_az: db.multi_az().unwrap_or(false),
                    storage_encrypted: db.storage_encrypted().unwrap_or(false),
                    kms_key_id: db.kms_key_id().map(str::to_owned),
                    backup_retention_days: db.backup_retention_period().unwrap_or(0),
                    deletion_protection: db.deletion_protection().unwrap_or(false),
                    publicly_accessible: db.publicly_accessible().unwrap_or(false),
                    iam_auth: db.iam_database_authentication_enabled().unwrap_or(false),
                    auto_minor_version_upgrade: db.auto_minor_version_upgrade().unwrap_or(false),
                    log_exports: db.enabled_cloudwatch_logs_exports().to_vec(),
                    performance_insights: db.performance_insights_enabled().unwrap_or(false),
                    replica_source: db.read_replica_source_db_instance_identifier().map(str::to_owned),
                    read_replicas: db.read_replica_db_instance_identifiers().to_vec(),
                    parameter_group: db
                        .db_parameter_groups()
                        .first()
                        .and_then(|g| g.db_parameter_group_name())
                        .map(str::to_owned),
                    force_ssl: ParameterValue::EngineDefault,
                });
            }
        }
        // One read per distinct parameter group, concurrently.
        let mut groups: Vec<String> = instances.iter().filter_map(|i| i.parameter_group.clone()).collect();
        groups.sort();
        groups.dedup();
        let values: HashMap<String, ParameterValue> = futures::stream::iter(groups)
            .map(|g| async move {
                let value = self.force_ssl(&g).await;
                (g, value)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for instance in &mut instances {
            if let Some(value) = instance.parameter_group.as_ref().and_then(|g| values.get(g)) {
                instance.force_ssl = value.clone();
            }
        }
        Ok(instances)
    }

    async fn ecs_services(&self) -> Result<Vec<EcsServiceFacts>, AwsError> {
        let mut clusters = Vec::new();
        let mut pages = self.ecs.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECS", "ListClusters", &self.region, e))?;
            clusters.extend(page.cluster_arns().iter().cloned());
        }
        let mut batches = Vec::new();
        for cluster in &clusters {
            let mut pages = self.ecs.list_services().cluster(cluster).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| AwsError::from_sdk("ECS", "ListServices", cluster, e))?;
                // DescribeServices takes at most 10 services.
                for chunk in page.service_arns().chunks(10) {
                    batches.push((cluster.clone(), chunk.to_vec()));
                }
            }
        }
        let described: Vec<Result<Vec<EcsServiceFacts>, AwsError>> = futures::stream::iter(batches)
            .map(|(cluster, names)| async move { self.describe_services(&cluster, &names).await })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut services = Vec::new();
        for batch in described {
            services.extend(batch?);
        }
        Ok(services)
    }

    async fn task_definition(&self, arn: &str) -> Result<TaskDefinitionFacts, AwsError> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeTaskDefinition", arn, e))?;
        let td = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "DescribeTaskDefinition",
                arn,
                AwsErrorKind::NotFound,
                "task definition not found",
            )
        })?;
        Ok(TaskDefinitionFacts {
            arn: td.task_definition_arn().unwrap_or(arn).to_owned(),
            family: td.family().unwrap_or_default().to_owned(),
            revision: td.revision(),
            region: self.region.clone(),
            cpu: td.cpu().map(str::to_owned),
            memory: td.memory().map(str::to_owned),
            containers: td
                .container_definitions()
                .iter()
                .map(|c| ContainerFacts {
                    name: c.name().unwrap_or_default().to_owned(),
                    image: c.image().unwrap_or_default().to_owned(),
                    user: c.user().map(str::to_owned),
                    readonly_root_filesystem: c.readonly_root_filesystem(),
                    privileged: c.privileged(),
                    added_capabilities: c
                        .linux_parameters()
                        .and_then(|l| l.capabilities())
                        .map(|k| k.add().to_vec())
                        .unwrap_or_default(),
                    environment: c
                        .environment()
                        .iter()
                        .map(|kv| {
                            (
                                kv.name().unwrap_or_default().to_owned(),
                                kv.value().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                    secrets: c
                        .secrets()
                        .iter()
                        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
                        .collect(),
                    log_driver: c.log_configuration().map(|l| l.log_driver().as_str().to_owned()),
                    health_check: c.health_check().is_some_and(|h| !h.command().is_empty()),
                    cpu: c.cpu(),
                    memory: c.memory(),
                    memory_reservation: c.memory_reservation(),
                })
                .collect(),
        })
    }

    async fn load_balancers(&self) -> Result<Vec<LoadBalancerFacts>, AwsError> {
        let mut found = Vec::new();
        let mut pages = self.elb.describe_load_balancers().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ELBv2", "DescribeLoadBalancers", &self.region, e))?;
            for lb in page.load_balancers() {
                if lb.r#type().map(|t| t.as_str()) != Some("application") {
                    continue;
                }
                found.push((
                    lb.load_balancer_arn().unwrap_or_default().to_owned(),
                    lb.load_balancer_name().unwrap_or_default().to_owned(),
                    lb.dns_name().unwrap_or_default().to_owned(),
                ));
            }
        }
        let described: Vec<Result<LoadBalancerFacts, AwsError>> = futures::stream::iter(found)
            .map(|lb| self.load_balancer(lb))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        described.into_iter().collect()
    }

    async fn failover_records(&self) -> Result<Vec<FailoverRecordFacts>, AwsError> {
        let mut zones = Vec::new();
        let mut pages = self.route53.list_hosted_zones().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("Route53", "ListHostedZones", "account", e))?;
            zones.extend(
                page.hosted_zones()
                    .iter()
                    .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned()),
            );
        }
        let described: Vec<Result<Vec<FailoverRecordFacts>, AwsError>> = futures::stream::iter(zones)
            .map(|zone| async move { self.zone_failover_records(&zone).await })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut records = Vec::new();
        for zone in described {
            records.extend(zone?);
        }
        Ok(records)
    }

    async fn secrets(&self) -> Result<Vec<SecretFacts>, AwsError> {
        let mut secrets = Vec::new();
        let mut pages = self.secrets.list_secrets().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("SecretsManager", "ListSecrets", &self.region, e))?;
            for s in page.secret_list() {
                secrets.push(SecretFacts {
                    arn: s.arn().unwrap_or_default().to_owned(),
                    name: s.name().unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    rotation_enabled: s.rotation_enabled().unwrap_or(false),
                    rotation_days: s.rotation_rules().and_then(|r| r.automatically_after_days()),
                    last_rotated: s.last_rotated_date().and_then(to_chrono),
                    last_changed: s.last_changed_date().and_then(to_chrono),
                    created: s.created_date().and_then(to_chrono),
                    kms_key_id: s.kms_key_id().map(str::to_owned),
                });
            }
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_come_from_arns() {
        assert_eq!(cluster_name("arn:aws:ecs:eu-west-1:123456789012:cluster/auth"), "auth");
        assert_eq!(cluster_name("auth"), "auth");
    }
}
