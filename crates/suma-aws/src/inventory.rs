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
    /// The port it listens on.
    pub port: Option<i32>,
    /// Its VPC security groups.
    pub security_groups: Vec<String>,
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
    /// Its tasks' security groups (awsvpc networking).
    pub security_groups: Vec<String>,
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
    /// `routing.http.drop_invalid_header_fields.enabled`: requests with malformed header names are not
    /// passed to the service.
    pub drop_invalid_headers: bool,
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
    /// When a caller last read the value (`LastAccessedDate`, a day); `None` if never, as far as AWS knows.
    pub last_accessed: Option<DateTime<Utc>>,
    /// The secret's resource policy (not read for a replica: it is the primary's).
    pub resource_policy: PolicyReading,
    /// The region of the primary when this is a replica (`PrimaryRegion`).
    pub replica_of: Option<String>,
}

/// A resource policy as read: none, a document, or why it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum PolicyReading {
    #[default]
    None,
    Document(String),
    Unreadable(String),
}

/// A manual or automated RDS snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbSnapshotFacts {
    pub arn: String,
    pub id: String,
    pub region: String,
    /// The instance it was taken of.
    pub instance: String,
    /// `manual` or `automated` (only manual snapshots can be shared).
    pub snapshot_type: String,
    pub encrypted: bool,
    /// Who may restore it (the `restore` attribute): account ids, or `all` for everyone. `Err` when the
    /// attributes could not be read.
    pub restorable_by: Result<Vec<String>, String>,
}

/// An ElastiCache (Redis OSS or Valkey) replication group with the settings compliance looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheGroupFacts {
    pub arn: String,
    pub id: String,
    pub region: String,
    pub at_rest_encryption: bool,
    pub transit_encryption: bool,
    /// `preferred` accepts plain connections beside TLS; `required` (or unset with encryption on) does not.
    pub transit_encryption_mode: Option<String>,
    pub auth_token_enabled: bool,
    /// RBAC user groups (the alternative to an AUTH token).
    pub user_group_ids: Vec<String>,
    /// `enabled`, `disabled`, `enabling`, `disabling`.
    pub automatic_failover: String,
    pub multi_az: bool,
    pub snapshot_retention_days: i32,
}

/// An ECR repository's image hygiene.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EcrRepositoryFacts {
    pub arn: String,
    pub name: String,
    pub region: String,
    /// Images are scanned when pushed, by the repository's setting or a registry rule that covers it.
    pub scan_on_push: bool,
    /// `IMMUTABLE` (or with exclusions): a tag, once pushed, always names the same image.
    pub immutable_tags: bool,
}

/// An ACM certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CertificateFacts {
    pub arn: String,
    pub domain: String,
    pub region: String,
    /// `ISSUED`, `EXPIRED`, `PENDING_VALIDATION`, ...
    pub status: String,
    pub not_after: Option<DateTime<Utc>>,
    pub in_use: bool,
}

/// A CloudTrail trail as seen from a region (multi-region trails of other home regions included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrailFacts {
    pub arn: String,
    pub name: String,
    pub home_region: String,
    pub multi_region: bool,
    pub log_file_validation: bool,
    pub kms_key_id: Option<String>,
    /// Whether it is logging now (`GetTrailStatus`); `Err` when that could not be read.
    pub logging: Result<bool, String>,
}

/// A VPC security group and what it lets in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityGroupFacts {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub region: String,
    pub ingress: Vec<IngressRule>,
}

/// One ingress permission.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp`, or `-1` (all traffic).
    pub protocol: String,
    /// The port range; `None` for all ports.
    pub ports: Option<(i32, i32)>,
    /// IPv4 and IPv6 ranges it admits.
    pub cidrs: Vec<String>,
    /// Security groups it admits.
    pub groups: Vec<String>,
    /// Managed prefix lists it admits.
    pub prefix_lists: Vec<String>,
}

/// An Application Auto Scaling target of an ECS service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScalableTargetFacts {
    /// `service/CLUSTER/SERVICE`.
    pub resource_id: String,
    pub region: String,
    pub min: i32,
    pub max: i32,
    /// Scale-in, scale-out or scheduled scaling suspended.
    pub suspended: bool,
}

/// A KMS key: who manages it, whether it rotates, and what its policy allows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmsKeyFacts {
    pub arn: String,
    pub key_id: String,
    pub region: String,
    /// The alias names (`alias/...`) that point at the key.
    pub aliases: Vec<String>,
    /// `KeyManager` is `CUSTOMER`; AWS-managed keys (`aws/rds`, `aws/secretsmanager`) say `AWS`.
    pub customer_managed: bool,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    /// A symmetric encryption key (`SYMMETRIC_DEFAULT`), the only kind automatic rotation applies to.
    pub symmetric_encryption: bool,
    /// Automatic rotation, for an enabled customer-managed symmetric key (`None` where it does not
    /// apply); `Err` when it could not be read.
    pub rotation_enabled: Result<Option<bool>, String>,
    /// The key's `default` policy document, for a customer-managed key; `Err` when it could not be read.
    pub policy: Result<Option<String>, String>,
}

/// An AWS WAF web ACL as compliance judges it: what it does with requests no rule matches, which managed
/// rule groups it runs and with what overrides, and its rate-based rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebAclFacts {
    pub arn: String,
    pub name: String,
    /// `allow` or `block`: what happens to a request no rule matches.
    pub default_action: String,
    /// The managed rule groups it references, its own and those Firewall Manager adds.
    pub managed_rule_groups: Vec<ManagedRuleGroupUse>,
    /// Its rate-based rules.
    pub rate_limits: Vec<RateLimitRule>,
    /// Where it logs the requests it sees, if anywhere (`GetLoggingConfiguration`); `Err` when that could
    /// not be read.
    pub logging: Result<Option<WafLogging>, String>,
}

/// A web ACL's logging configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WafLogging {
    /// CloudWatch Logs groups, S3 buckets or Firehose streams (`aws-waf-logs-*`).
    pub destinations: Vec<String>,
    /// The request headers kept out of the logs, lower-cased (`authorization`, `cookie`, ...).
    pub redacted_headers: Vec<String>,
}

/// One managed rule group referenced by a web ACL.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ManagedRuleGroupUse {
    /// `AWS` for AWS Managed Rules, or the Marketplace seller.
    pub vendor: String,
    /// `AWSManagedRulesCommonRuleSet`, ...
    pub name: String,
    /// The group's override action is `Count`: its rules match and are logged, but nothing is blocked.
    pub count_only: bool,
    /// Rules of the group that do not block: excluded, or overridden to `Count` or `Allow`.
    pub rules_not_blocking: Vec<String>,
}

/// A rate-based rule of a web ACL.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RateLimitRule {
    pub name: String,
    /// Requests per evaluation window (5 minutes by default) per aggregation key.
    pub limit: i64,
    /// `block`, `count`, `captcha`, `challenge` or `allow`.
    pub action: String,
}

/// An EventBridge rule that starts an ECS task (a scheduled job, a migration run on an event).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScheduledTaskFacts {
    /// The rule's name, or `schedule GROUP/NAME` for an EventBridge Scheduler schedule.
    pub rule: String,
    pub region: String,
    /// `ENABLED` or `DISABLED`: a disabled rule is judged too, as it can be enabled at any time.
    pub state: String,
    /// The cluster the task runs in (the target's ARN).
    pub cluster_arn: String,
    /// The task definition it starts: an ARN with or without revision, or a `family[:revision]`.
    pub task_definition: String,
}

/// What one region holds, read-only.
#[async_trait]
pub trait InventoryApi: Send + Sync {
    async fn db_instances(&self) -> Result<Vec<DbInstanceFacts>, AwsError>;
    /// Every service of every cluster.
    async fn ecs_services(&self) -> Result<Vec<EcsServiceFacts>, AwsError>;
    async fn task_definition(&self, arn: &str) -> Result<TaskDefinitionFacts, AwsError>;
    /// The ARN of every ACTIVE task definition revision (one-off and scheduled tasks and migrations run
    /// definitions no service references; [`latest_revisions`] keeps what an auditor judges).
    async fn active_task_definitions(&self) -> Result<Vec<String>, AwsError>;
    /// Application load balancers only.
    async fn load_balancers(&self) -> Result<Vec<LoadBalancerFacts>, AwsError>;
    /// Failover records of every hosted zone (Route 53 is global: any region's inventory answers).
    async fn failover_records(&self) -> Result<Vec<FailoverRecordFacts>, AwsError>;
    async fn secrets(&self) -> Result<Vec<SecretFacts>, AwsError>;
    /// Every DB snapshot (manual and automated) with who may restore it.
    async fn db_snapshots(&self) -> Result<Vec<DbSnapshotFacts>, AwsError>;
    /// Every ECR repository, with the registry's scan-on-push rules applied.
    async fn ecr_repositories(&self) -> Result<Vec<EcrRepositoryFacts>, AwsError>;
    /// Every ACM certificate.
    async fn certificates(&self) -> Result<Vec<CertificateFacts>, AwsError>;
    /// Every trail that applies to the region, with its logging status.
    async fn trails(&self) -> Result<Vec<TrailFacts>, AwsError>;
    /// Every VPC security group with its ingress rules.
    async fn security_groups(&self) -> Result<Vec<SecurityGroupFacts>, AwsError>;
    /// The Application Auto Scaling targets of ECS services.
    async fn ecs_scalable_targets(&self) -> Result<Vec<ScalableTargetFacts>, AwsError>;
    /// Every ElastiCache replication group.
    async fn cache_groups(&self) -> Result<Vec<CacheGroupFacts>, AwsError>;
    /// Every KMS key of the region with its aliases, AWS-managed ones included.
    async fn kms_keys(&self) -> Result<Vec<KmsKeyFacts>, AwsError>;
    /// One key by id, ARN or alias (one another account shares, which the listing does not hold).
    async fn kms_key(&self, reference: &str) -> Result<KmsKeyFacts, AwsError>;
    /// The web ACL associated with a resource (a load balancer's ARN), if any.
    async fn web_acl_for(&self, resource_arn: &str) -> Result<Option<WebAclFacts>, AwsError>;
    /// The ECS tasks the rules of every EventBridge bus and every EventBridge Scheduler schedule start.
    async fn scheduled_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError>;
}

/// The latest revision of each family among task definition ARNs
/// (`arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION`), sorted. An ARN that does not end in a
/// revision is kept as it is: it names something to judge, and dropping it would hide it.
pub fn latest_revisions(arns: &[String]) -> Vec<String> {
    let mut latest: std::collections::BTreeMap<&str, (i64, &str)> = std::collections::BTreeMap::new();
    let mut unparsed = Vec::new();
    for arn in arns {
        let parsed = arn
            .rsplit_once(':')
            .and_then(|(family, revision)| revision.parse::<i64>().ok().map(|r| (family, r)));
        match parsed {
            Some((family, revision)) => {
                let entry = latest.entry(family).or_insert((revision, arn));
                if revision > entry.0 {
                    *entry = (revision, arn);
                }
            }
            None => unparsed.push(arn.clone()),
        }
    }
    let mut out: Vec<String> = latest.into_values().map(|(_, arn)| arn.to_owned()).collect();
    out.extend(unparsed);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_revisions_keep_one_per_family() {
        let td = |family: &str, revision: &str| {
            format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:{revision}")
        };
        let cases: &[(&[String], &[String])] = &[
            (&[], &[]),
            (
                &[td("auth", "3"), td("auth", "12"), td("auth", "9")],
                &[td("auth", "12")],
            ),
            (
                &[
                    td("auth", "2"),
                    td("auth-migrate", "1"),
                    td("auth-migrate", "4"),
                    td("auth", "1"),
                ],
                &[td("auth-migrate", "4"), td("auth", "2")],
            ),
            // A family whose name starts with another family's name is a family of its own.
            (&[td("a", "5"), td("ab", "1")], &[td("a", "5"), td("ab", "1")]),
            (
                &["not-an-arn".to_owned(), td("x", "1")],
                &[td("x", "1"), "not-an-arn".to_owned()],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(latest_revisions(input), expected.to_vec(), "{input:?}");
        }
    }
}
