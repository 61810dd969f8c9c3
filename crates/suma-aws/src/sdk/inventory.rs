//! The `aws-sdk` implementation of [`crate::inventory`]'s trait.

#[allow(unused_imports)]
use crate::inventory::*;
use crate::sdk::to_chrono;
use crate::{AwsError, AwsErrorKind, AwsSession};
use async_trait::async_trait;
use aws_config::SdkConfig;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use suma_core::config::AwsRegion;

/// How many describe calls of one kind run at once inside one listing.
const CONCURRENCY: usize = 8;

impl AwsSession {
    /// The read-only inventory of `region`.
    pub fn inventory(&self, region: &AwsRegion) -> Arc<dyn InventoryApi> {
        Arc::new(SdkInventory::new(self.config(region), region.as_str()))
    }
}

/// The SDK-backed inventory of one region.
pub struct SdkInventory {
    pub(super) region: String,
    pub(super) rds: aws_sdk_rds::Client,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    route53: aws_sdk_route53::Client,
    secrets: aws_sdk_secretsmanager::Client,
    pub(super) kms: aws_sdk_kms::Client,
    cache: aws_sdk_elasticache::Client,
    pub(super) ecr: aws_sdk_ecr::Client,
    pub(super) acm: aws_sdk_acm::Client,
    pub(super) cloudtrail: aws_sdk_cloudtrail::Client,
    pub(super) autoscaling: aws_sdk_applicationautoscaling::Client,
    pub(super) ec2: aws_sdk_ec2::Client,
    pub(super) waf: aws_sdk_wafv2::Client,
    pub(super) events: aws_sdk_eventbridge::Client,
    pub(super) scheduler: aws_sdk_scheduler::Client,
}

impl SdkInventory {
    /// A secret's resource policy (`GetResourcePolicy`).
    async fn secret_policy(&self, arn: &str) -> PolicyReading {
        match self.secrets.get_resource_policy().secret_id(arn).send().await {
            Ok(out) => out
                .resource_policy()
                .filter(|p| !p.trim().is_empty())
                .map_or(PolicyReading::None, |p| PolicyReading::Document(p.to_owned())),
            Err(e) => {
                PolicyReading::Unreadable(AwsError::from_sdk("SecretsManager", "GetResourcePolicy", arn, e).to_string())
            }
        }
    }

    pub fn new(config: &SdkConfig, region: &str) -> Self {
        Self {
            region: region.to_owned(),
            rds: aws_sdk_rds::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            cache: aws_sdk_elasticache::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            acm: aws_sdk_acm::Client::new(config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(config),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            waf: aws_sdk_wafv2::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
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
                    security_groups: s
                        .network_configuration()
                        .and_then(|n| n.awsvpc_configuration())
                        .map(|a| a.security_groups().to_vec())
                        .unwrap_or_default(),
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
                    ssl_protocols: None,
                    redirects_to_https,
                });
            }
        }
        for listener in &mut listeners {
            if let Some(policy) = listener.ssl_policy.clone() {
                listener.ssl_protocols = self.ssl_protocols(&policy).await;
            }
        }
        Ok(listeners)
    }

    /// The protocols an SSL policy allows; `None` when ELB does not describe it (the judgement then
    /// falls back to the policy's name).
    async fn ssl_protocols(&self, policy: &str) -> Option<Vec<String>> {
        // A failed describe is not an error of the check: the name still judges, conservatively.
        let out = self.elb.describe_ssl_policies().names(policy).send().await.ok()?;
        out.ssl_policies().first().map(|p| p.ssl_protocols().to_vec())
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
            drop_invalid_headers: attribute("routing.http.drop_invalid_header_fields.enabled"),
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
                    evaluate_target_health: set.alias_target().is_some_and(|a| a.evaluate_target_health()),
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
                    port: db.endpoint().and_then(|e| e.port()).or(db.db_instance_port()),
                    security_groups: db
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                        .collect(),
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

    async fn active_task_definitions(&self) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_task_definitions()
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECS", "ListTaskDefinitions", &self.region, e))?;
            arns.extend(page.task_definition_arns().iter().cloned());
        }
        Ok(arns)
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
                    last_accessed: s.last_accessed_date().and_then(to_chrono),
                    resource_policy: PolicyReading::None,
                    replica_of: s
                        .primary_region()
                        .filter(|primary| *primary != self.region)
                        .map(str::to_owned),
                });
            }
        }
        Ok(futures::stream::iter(secrets)
            .map(|mut secret| async move {
                if secret.replica_of.is_none() {
                    secret.resource_policy = self.secret_policy(&secret.arn).await;
                }
                secret
            })
            .buffered(CONCURRENCY)
            .collect()
            .await)
    }

    async fn db_snapshots(&self) -> Result<Vec<DbSnapshotFacts>, AwsError> {
        self.list_db_snapshots().await
    }

    async fn ecr_repositories(&self) -> Result<Vec<EcrRepositoryFacts>, AwsError> {
        self.list_ecr_repositories().await
    }

    async fn certificates(&self) -> Result<Vec<CertificateFacts>, AwsError> {
        self.list_certificates().await
    }

    async fn trails(&self) -> Result<Vec<TrailFacts>, AwsError> {
        self.list_trails().await
    }

    async fn security_groups(&self) -> Result<Vec<SecurityGroupFacts>, AwsError> {
        self.list_security_groups().await
    }

    async fn ecs_scalable_targets(&self) -> Result<Vec<ScalableTargetFacts>, AwsError> {
        self.list_ecs_scalable_targets().await
    }

    async fn cache_groups(&self) -> Result<Vec<CacheGroupFacts>, AwsError> {
        super::elasticache::inventory_groups(&self.cache, &self.region).await
    }

    async fn kms_keys(&self) -> Result<Vec<KmsKeyFacts>, AwsError> {
        self.list_kms_keys().await
    }

    async fn kms_key(&self, reference: &str) -> Result<KmsKeyFacts, AwsError> {
        self.describe_kms_key(reference, Vec::new()).await
    }

    async fn web_acl_for(&self, resource_arn: &str) -> Result<Option<WebAclFacts>, AwsError> {
        self.read_web_acl_for(resource_arn).await
    }

    async fn scheduled_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError> {
        self.list_scheduled_tasks().await
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
