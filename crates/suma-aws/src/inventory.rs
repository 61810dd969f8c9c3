//! Read-only inventory of the resources compliance checks judge: every DB instance, ECS service and task
//! definition, application load balancer, Route 53 failover record and secret a region holds (the account
//! view auditors take), as suma's own plain types. Every list is paginated; nothing here writes.
//!
//! [`InventoryApi`] is the narrow seam: the compliance engine sees only these types, and its tests use
//! hand-written fakes. [`AwsSession::inventory`] hands out the SDK-backed implementation for a region.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AwsError;

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
    /// The TLS protocols the policy allows (`TLSv1.2`, ...), from `DescribeSSLPolicies`; `None` when
    /// the policy could not be described (a custom or unknown name).
    pub ssl_protocols: Option<Vec<String>>,
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
    /// An alias that answers only while its target (the load balancer's own health) is healthy.
    pub evaluate_target_health: bool,
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
