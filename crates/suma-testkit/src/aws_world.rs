//! One AWS account in memory, across regions: ECS services and task-definition revisions, ALB listener
//! rules, RDS instances with their replication, Route 53 failover records and changes, and Secrets
//! Manager metadata. Every engine test (canary, DR, rollback) drives the same world, so a semantic they
//! rely on is written once and kept close to AWS's: a registered revision is a new `family:N` carrying
//! its base's variables, a promotion is `modifying` for a few describes before the instance stands
//! alone, a DNS change is `PENDING` before `INSYNC`, an unknown resource is `NotFound`.
//!
//! Each change is appended to a mutation log in one format (`update REGION SERVICE TASKDEF DESIRED`,
//! `register ARN IMAGE`, `weights W1/W2`, `promote REGION ID`, `modify REGION ID …`,
//! `create-replica REGION ID of SOURCE`, `dns FAILOVER -> TARGET`), which tests read for order; a hook
//! after each mutation lets a test kill the run right after a call reached AWS. Faults are the states
//! moto cannot produce on demand: an unreachable region, a rollout the circuit breaker stops, a
//! promotion or a DNS change that never settles, a throttled call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use suma_aws::ecs::{
    ContainerChange, ContainerImage, EcrImage, EcsApi, EcsDeployment, EcsService, ImageReference, ScalingSuspension,
    ServiceUpdate, TaskDefinition,
};
use suma_aws::elb::{LoadBalancerApi, WeightedTarget};
use suma_aws::rds::{DatabaseApi, DbInstance, DbModification, Placement};
use suma_aws::route53::{DnsApi, DnsRecord, FailoverAlias, HealthCheckStatus};
use suma_aws::secrets::{SecretMetadata, SecretsApi};
use suma_aws::{AwsApis, AwsError, AwsErrorKind};
use suma_core::config::AwsRegion;

/// An ECS service: the revision it runs and its desired count (its tasks run at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub task_definition: String,
    pub desired: i32,
}

/// A registered task-definition revision, reduced to what the engines change: the image and the
/// container's plain variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub image: String,
    pub environment: BTreeMap<String, String>,
}

/// An RDS instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub arn: String,
    pub status: String,
    /// The ARN it replicates from, if it is a read replica.
    pub source: Option<String>,
    pub multi_az: bool,
    pub backup_retention_days: i32,
    /// Describes left before a transition (`modifying` or `creating`) completes.
    pub settling: u32,
    pub placement: Placement,
}

impl Database {
    /// An `available` instance in `region`, standalone unless `source` names what it replicates.
    pub fn available(region: &str, identifier: &str, source: Option<String>) -> Self {
        Self {
            arn: rds_arn(region, identifier),
            status: "available".into(),
            multi_az: source.is_none(),
            backup_retention_days: if source.is_none() { 30 } else { 0 },
            source,
            settling: 0,
            placement: Self::placed_in(region),
        }
    }

    /// Where an instance of `region` lives: the region's customer key, DB subnet group and security
    /// group, the service's parameter group, protected, with IAM authentication.
    pub fn placed_in(region: &str) -> Placement {
        Placement {
            kms_key_id: Some(format!("arn:aws:kms:{region}:123456789012:key/db-{region}")),
            subnet_group: Some(format!("auth-db-{region}")),
            security_group_ids: vec![format!("sg-db-{region}")],
            parameter_group: Some("auth-postgres15".into()),
            deletion_protection: true,
            iam_auth: true,
        }
    }
}

/// How ECS rollouts end (the deployment circuit breaker's verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolloutEnd {
    #[default]
    Completes,
    CircuitBreaker,
    Never,
}

/// Faults on demand.
#[derive(Debug, Default)]
pub struct Faults {
    /// Regions whose ECS and RDS endpoints refuse connections.
    pub unreachable_regions: BTreeSet<String>,
    /// Regions whose ECS and RDS endpoints answer 503 (a degraded region: up, but failing).
    pub degraded_regions: BTreeSet<String>,
    pub rollout: RolloutEnd,
    /// A promotion stays `modifying`.
    pub promotion_stuck: bool,
    /// A DNS change stays `PENDING`.
    pub dns_stuck: bool,
    /// The next mutation whose log line starts with this is throttled instead (once).
    pub throttle_next: Option<String>,
}

/// What `DescribeDBInstances` answers for `db`.
pub fn db_instance(region: &str, identifier: &str, db: &Database) -> DbInstance {
    DbInstance {
        identifier: identifier.to_owned(),
        arn: db.arn.clone(),
        status: db.status.clone(),
        engine: "postgres".into(),
        engine_version: "15.5".into(),
        instance_class: "db.r6g.large".into(),
        multi_az: db.multi_az,
        storage_encrypted: true,
        kms_key_id: db.placement.kms_key_id.clone(),
        deletion_protection: true,
        backup_retention_days: db.backup_retention_days,
        replica_source: db.source.clone(),
        read_replicas: Vec::new(),
        endpoint: Some(rds_endpoint(region, identifier)),
        port: Some(5432),
        availability_zone: Some(format!("{region}a")),
        placement: db.placement.clone(),
    }
}

/// The account's state; tests seed and inspect it through [`AwsWorld::with`].
#[derive(Debug, Default)]
pub struct State {
    /// (region, service name) → service.
    pub services: BTreeMap<(String, String), Service>,
    /// (region, service name) → the suspension of the service's Application Auto Scaling target, for
    /// the services that have one.
    pub scaling: BTreeMap<(String, String), ScalingSuspension>,
    /// `family:revision` → revision.
    pub task_definitions: BTreeMap<String, Revision>,
    /// Listener rule ARN → its forward action's target groups, in the rule's order.
    pub rules: BTreeMap<String, Vec<WeightedTarget>>,
    /// (region, identifier) → instance.
    pub databases: BTreeMap<(String, String), Database>,
    /// (`PRIMARY` / `SECONDARY`, record type) → that failover alias.
    pub failover_records: BTreeMap<(String, String), FailoverAlias>,
    /// Change id → polls left before `INSYNC`.
    pub dns_changes: BTreeMap<String, u32>,
    /// (region, secret id) → its metadata.
    pub secrets: BTreeMap<(String, String), SecretMetadata>,
    pub faults: Faults,
}

type MutationHook = Box<dyn Fn(usize) + Send + Sync>;

/// The account. Hand [`AwsWorld::apis`] to an engine; seed and inspect the state with [`AwsWorld::with`].
#[derive(Default)]
pub struct AwsWorld {
    state: Mutex<State>,
    mutations: Mutex<Vec<String>>,
    after_mutation: Mutex<Option<MutationHook>>,
}

/// The ARN RDS gives an instance.
pub fn rds_arn(region: &str, identifier: &str) -> String {
    format!("arn:aws:rds:{region}:1:db:{identifier}")
}

/// The endpoint address RDS gives an instance.
pub fn rds_endpoint(region: &str, identifier: &str) -> String {
    format!("{identifier}.abc.{region}.rds.amazonaws.com")
}

fn not_found(service: &'static str, operation: &'static str, resource: &str) -> AwsError {
    AwsError::new(service, operation, resource, AwsErrorKind::NotFound, "not found")
}

impl AwsWorld {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reads or changes the state (seeding, faults, assertions). Not logged as a mutation.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state())
    }

    /// The engines' view of the account.
    pub fn apis(self: &Arc<Self>) -> Arc<dyn AwsApis> {
        Arc::new(Apis(self.clone()))
    }

    /// Every mutation so far, in order.
    pub fn mutations(&self) -> Vec<String> {
        self.mutations.lock().unwrap().clone()
    }

    /// Called with the mutation count after each mutation reached the account (a test's kill point).
    pub fn after_each_mutation(&self, hook: impl Fn(usize) + Send + Sync + 'static) {
        *self.after_mutation.lock().unwrap() = Some(Box::new(hook));
    }

    /// Seeds a revision `family:revision` running `image`.
    pub fn register(&self, arn: &str, image: &str) {
        self.state().task_definitions.insert(
            arn.to_owned(),
            Revision {
                image: image.to_owned(),
                environment: BTreeMap::new(),
            },
        );
    }

    /// Seeds a service in `region`.
    pub fn run_service(&self, region: &str, name: &str, task_definition: &str, desired: i32) {
        self.state().services.insert(
            (region.to_owned(), name.to_owned()),
            Service {
                task_definition: task_definition.to_owned(),
                desired,
            },
        );
    }

    /// A service's state. Panics if there is none: a test asking for it expects it.
    pub fn service(&self, region: &str, name: &str) -> Service {
        self.state().services[&(region.to_owned(), name.to_owned())].clone()
    }

    /// What `DescribeDBInstances` answers now, without letting a transition progress.
    pub fn db(&self, region: &str, identifier: &str) -> DbInstance {
        db_instance(
            region,
            identifier,
            &self.state().databases[&(region.to_owned(), identifier.to_owned())],
        )
    }

    /// A rule's weights, in its target groups' order.
    pub fn weights(&self, rule_arn: &str) -> Vec<i32> {
        self.state().rules[rule_arn].iter().map(|t| t.weight).collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Throttles the call if a fault asks to; otherwise nothing.
    fn admit(&self, service: &'static str, operation: &'static str, line: &str) -> Result<(), AwsError> {
        let mut state = self.state();
        if state
            .faults
            .throttle_next
            .as_deref()
            .is_some_and(|p| line.starts_with(p))
        {
            state.faults.throttle_next = None;
            return Err(AwsError::new(
                service,
                operation,
                line,
                AwsErrorKind::Throttled,
                "Rate exceeded",
            ));
        }
        Ok(())
    }

    fn mutated(&self, line: String) {
        let count = {
            let mut log = self.mutations.lock().unwrap();
            log.push(line);
            log.len()
        };
        if let Some(hook) = self.after_mutation.lock().unwrap().as_ref() {
            hook(count);
        }
    }

    fn reachable(&self, service: &'static str, region: &str) -> Result<(), AwsError> {
        let faults = &self.state().faults;
        if faults.unreachable_regions.contains(region) {
            return Err(AwsError::new(
                service,
                "Any",
                region,
                AwsErrorKind::Unreachable,
                "connection refused",
            ));
        }
        if faults.degraded_regions.contains(region) {
            return Err(AwsError::new(
                service,
                "Any",
                region,
                AwsErrorKind::ServerError,
                "503 Service Unavailable",
            ));
        }
        Ok(())
    }
}

struct Apis(Arc<AwsWorld>);

impl AwsApis for Apis {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn EcsApi> {
        Arc::new(InRegion(self.0.clone(), region.to_string()))
    }
    fn elb(&self, region: &AwsRegion) -> Arc<dyn LoadBalancerApi> {
        Arc::new(InRegion(self.0.clone(), region.to_string()))
    }
    fn rds(&self, region: &AwsRegion) -> Arc<dyn DatabaseApi> {
        Arc::new(InRegion(self.0.clone(), region.to_string()))
    }
    fn route53(&self) -> Arc<dyn DnsApi> {
        Arc::new(InRegion(self.0.clone(), "us-east-1".into()))
    }
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn SecretsApi> {
        Arc::new(InRegion(self.0.clone(), region.to_string()))
    }
}

/// The account seen through one region's endpoints.
struct InRegion(Arc<AwsWorld>, String);

impl InRegion {
    fn key(&self, name: &str) -> (String, String) {
        (self.1.clone(), name.to_owned())
    }

    fn task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError> {
        let state = self.0.state();
        let revision = state
            .task_definitions
            .get(arn)
            .ok_or_else(|| not_found("ECS", "DescribeTaskDefinition", arn))?;
        let (family, number) = arn.rsplit_once(':').unwrap_or((arn, "1"));
        Ok(TaskDefinition {
            arn: arn.to_owned(),
            family: family.to_owned(),
            revision: number.parse().unwrap_or(1),
            status: "ACTIVE".into(),
            containers: vec![ContainerImage {
                name: "auth-service".into(),
                image: revision.image.clone(),
            }],
        })
    }

    fn instance(&self, identifier: &str, db: &Database) -> DbInstance {
        db_instance(&self.1, identifier, db)
    }
}

#[async_trait]
impl EcsApi for InRegion {
    async fn describe_services(&self, _: &str, names: &[String]) -> Result<Vec<EcsService>, AwsError> {
        self.0.reachable("ECS", &self.1)?;
        let state = self.0.state();
        let rollout = match state.faults.rollout {
            RolloutEnd::Completes => "COMPLETED",
            RolloutEnd::CircuitBreaker => "FAILED",
            RolloutEnd::Never => "IN_PROGRESS",
        };
        Ok(names
            .iter()
            .filter_map(|name| state.services.get(&self.key(name)).map(|s| (name, s)))
            .map(|(name, service)| EcsService {
                name: name.clone(),
                status: "ACTIVE".into(),
                desired: service.desired,
                running: service.desired,
                pending: 0,
                task_definition: service.task_definition.clone(),
                deployments: vec![EcsDeployment {
                    id: "d".into(),
                    status: "PRIMARY".into(),
                    task_definition: service.task_definition.clone(),
                    desired: service.desired,
                    running: service.desired,
                    pending: 0,
                    rollout_state: Some(rollout.into()),
                    rollout_reason: (rollout == "FAILED").then(|| "tasks failed to start".into()),
                    created_at: None,
                }],
            })
            .collect())
    }

    async fn describe_task_definition(&self, reference: &str) -> Result<TaskDefinition, AwsError> {
        self.0.reachable("ECS", &self.1)?;
        self.task_definition(reference)
    }

    async fn register_revision(
        &self,
        base: &str,
        _: &str,
        change: &ContainerChange,
    ) -> Result<TaskDefinition, AwsError> {
        self.0.reachable("ECS", &self.1)?;
        let arn = {
            let mut state = self.0.state();
            let mut revision = state
                .task_definitions
                .get(base)
                .cloned()
                .ok_or_else(|| not_found("ECS", "RegisterTaskDefinition", base))?;
            if let Some(image) = &change.image {
                revision.image = image.clone();
            }
            revision.environment.extend(change.environment.iter().cloned());
            let family = base.rsplit_once(':').map_or(base, |(family, _)| family);
            let newest = state
                .task_definitions
                .keys()
                .filter_map(|arn| arn.strip_prefix(family)?.strip_prefix(':')?.parse::<u32>().ok())
                .max()
                .unwrap_or(0);
            let arn = format!("{family}:{}", newest + 1);
            let line = format!("register {arn} {}", revision.image);
            state.task_definitions.insert(arn.clone(), revision);
            drop(state);
            self.0.mutated(line);
            arn
        };
        self.task_definition(&arn)
    }

    /// The world runs no tasks: a service's image is known by its registry's digest only.
    async fn running_image_digests(&self, _: &str, _: &str, _: &str) -> Result<Vec<String>, AwsError> {
        self.0.reachable("ECS", &self.1)?;
        Ok(Vec::new())
    }

    /// Every repository holds every tag, and a tag names the same image in every region (replication):
    /// the digest is a hash of repository and tag.
    async fn registry_image_digest(&self, image: &EcrImage) -> Result<Option<String>, AwsError> {
        use std::hash::{Hash, Hasher};
        self.0.reachable("ECR", &self.1)?;
        Ok(Some(match &image.reference {
            ImageReference::Digest(digest) => digest.clone(),
            ImageReference::Tag(tag) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (&image.repository, tag).hash(&mut hasher);
                format!("sha256:{:016x}", hasher.finish())
            }
        }))
    }

    async fn scaling_suspension(&self, _: &str, service: &str) -> Result<Option<ScalingSuspension>, AwsError> {
        self.0.reachable("ApplicationAutoScaling", &self.1)?;
        Ok(self.0.state().scaling.get(&self.key(service)).copied())
    }

    async fn set_scaling_suspension(
        &self,
        _: &str,
        service: &str,
        suspension: ScalingSuspension,
    ) -> Result<(), AwsError> {
        self.0.reachable("ApplicationAutoScaling", &self.1)?;
        let line = {
            let mut state = self.0.state();
            let target = state
                .scaling
                .get_mut(&self.key(service))
                .ok_or_else(|| not_found("ApplicationAutoScaling", "RegisterScalableTarget", service))?;
            *target = suspension;
            format!(
                "scaling {} {service} suspended in={} out={} scheduled={}",
                self.1, suspension.dynamic_in, suspension.dynamic_out, suspension.scheduled
            )
        };
        self.0.mutated(line);
        Ok(())
    }

    async fn update_service(&self, _: &str, service: &str, update: &ServiceUpdate) -> Result<(), AwsError> {
        self.0.reachable("ECS", &self.1)?;
        let line = {
            let state = self.0.state();
            let current = state
                .services
                .get(&self.key(service))
                .ok_or_else(|| not_found("ECS", "UpdateService", service))?;
            let td = update.task_definition.as_deref().unwrap_or(&current.task_definition);
            let desired = update.desired_count.unwrap_or(current.desired);
            format!("update {} {service} {td} {desired}", self.1)
        };
        self.0.admit("ECS", "UpdateService", &line)?;
        {
            let mut state = self.0.state();
            let entry = state.services.get_mut(&self.key(service)).expect("checked above");
            if let Some(td) = &update.task_definition {
                entry.task_definition = td.clone();
            }
            if let Some(n) = update.desired_count {
                entry.desired = n;
            }
        }
        self.0.mutated(line);
        Ok(())
    }
}

#[async_trait]
impl LoadBalancerApi for InRegion {
    async fn rule_weights(&self, rule_arn: &str) -> Result<Vec<WeightedTarget>, AwsError> {
        self.0
            .state()
            .rules
            .get(rule_arn)
            .cloned()
            .ok_or_else(|| not_found("ELBv2", "DescribeRules", rule_arn))
    }

    async fn set_weights(&self, rule_arn: &str, targets: &[WeightedTarget]) -> Result<(), AwsError> {
        // Only the forward action's weights change; a target group the call leaves out gets 0.
        let weight_of = |arn: &str| {
            targets
                .iter()
                .find(|t| t.target_group_arn == arn)
                .map_or(0, |t| t.weight)
        };
        let line = {
            let state = self.0.state();
            let rule = state
                .rules
                .get(rule_arn)
                .ok_or_else(|| not_found("ELBv2", "ModifyRule", rule_arn))?;
            let weights: Vec<String> = rule
                .iter()
                .map(|t| weight_of(&t.target_group_arn).to_string())
                .collect();
            format!("weights {}", weights.join("/"))
        };
        self.0.admit("ELBv2", "ModifyRule", &line)?;
        if let Some(rule) = self.0.state().rules.get_mut(rule_arn) {
            for target in rule.iter_mut() {
                target.weight = weight_of(&target.target_group_arn);
            }
        }
        self.0.mutated(line);
        Ok(())
    }
}

#[async_trait]
impl DatabaseApi for InRegion {
    async fn describe_instance(&self, identifier: &str) -> Result<DbInstance, AwsError> {
        self.0.reachable("RDS", &self.1)?;
        let mut state = self.0.state();
        let stuck = state.faults.promotion_stuck;
        let db = state
            .databases
            .get_mut(&self.key(identifier))
            .ok_or_else(|| not_found("RDS", "DescribeDBInstances", identifier))?;
        if db.settling > 0 && !(stuck && db.status == "modifying") {
            db.settling -= 1;
            if db.settling == 0 {
                if db.status == "modifying" {
                    db.source = None;
                }
                db.status = "available".into();
            }
        }
        Ok(self.instance(identifier, db))
    }

    async fn promote_read_replica(&self, identifier: &str, backup: i32) -> Result<DbInstance, AwsError> {
        self.0.reachable("RDS", &self.1)?;
        let view = {
            let mut state = self.0.state();
            let db = state
                .databases
                .get_mut(&self.key(identifier))
                .ok_or_else(|| not_found("RDS", "PromoteReadReplica", identifier))?;
            if db.source.is_none() {
                return Err(AwsError::new(
                    "RDS",
                    "PromoteReadReplica",
                    identifier,
                    AwsErrorKind::Other,
                    "InvalidDBInstanceState: not a read replica",
                ));
            }
            // Like RDS: `modifying` at once, still a replica until the promotion finishes.
            db.status = "modifying".into();
            db.backup_retention_days = backup;
            db.settling = 2;
            self.instance(identifier, db)
        };
        self.0.mutated(format!("promote {} {identifier}", self.1));
        Ok(view)
    }

    async fn modify_instance(&self, identifier: &str, change: &DbModification) -> Result<DbInstance, AwsError> {
        self.0.reachable("RDS", &self.1)?;
        let view = {
            let mut state = self.0.state();
            let mut db = state
                .databases
                .remove(&self.key(identifier))
                .ok_or_else(|| not_found("RDS", "ModifyDBInstance", identifier))?;
            if let Some(multi_az) = change.multi_az {
                db.multi_az = multi_az;
            }
            if let Some(days) = change.backup_retention_days {
                db.backup_retention_days = days;
            }
            let id = change.new_identifier.clone().unwrap_or_else(|| identifier.to_owned());
            if change.new_identifier.is_some() {
                db.arn = rds_arn(&self.1, &id);
            }
            let view = self.instance(&id, &db);
            state.databases.insert(self.key(&id), db);
            view
        };
        self.0.mutated(format!("modify {} {identifier} {change:?}", self.1));
        Ok(view)
    }

    async fn create_read_replica(
        &self,
        identifier: &str,
        source_arn: &str,
        _: &str,
        _: &str,
        placement: &Placement,
    ) -> Result<DbInstance, AwsError> {
        self.0.reachable("RDS", &self.1)?;
        let view = {
            let mut state = self.0.state();
            if state.databases.contains_key(&self.key(identifier)) {
                return Err(AwsError::new(
                    "RDS",
                    "CreateDBInstanceReadReplica",
                    identifier,
                    AwsErrorKind::Other,
                    "DBInstanceAlreadyExists",
                ));
            }
            let db = Database {
                status: "creating".into(),
                settling: 2,
                placement: placement.clone(),
                ..Database::available(&self.1, identifier, Some(source_arn.to_owned()))
            };
            let view = self.instance(identifier, &db);
            state.databases.insert(self.key(identifier), db);
            view
        };
        self.0.mutated(format!(
            "create-replica {} {identifier} of {source_arn} key={} subnets={} groups={} parameters={} protected={} iam={}",
            self.1,
            placement.kms_key_id.as_deref().unwrap_or("-"),
            placement.subnet_group.as_deref().unwrap_or("-"),
            placement.security_group_ids.join(","),
            placement.parameter_group.as_deref().unwrap_or("-"),
            placement.deletion_protection,
            placement.iam_auth
        ));
        Ok(view)
    }
}

#[async_trait]
impl DnsApi for InRegion {
    async fn records(&self, _: &str, _: &str) -> Result<Vec<DnsRecord>, AwsError> {
        Ok(Vec::new())
    }

    async fn health_check_status(&self, id: &str) -> Result<HealthCheckStatus, AwsError> {
        Ok(HealthCheckStatus {
            id: id.to_owned(),
            healthy: true,
            checkers: 1,
            failing: 0,
        })
    }

    async fn failover_aliases(&self, _: &str, _: &str) -> Result<Vec<FailoverAlias>, AwsError> {
        Ok(self.0.state().failover_records.values().cloned().collect())
    }

    async fn upsert_failover_aliases(&self, _: &str, records: &[FailoverAlias]) -> Result<String, AwsError> {
        let id = {
            let mut state = self.0.state();
            for record in records {
                state
                    .failover_records
                    .insert((record.failover.clone(), record.record_type.clone()), record.clone());
            }
            let id = format!("C{}", state.dns_changes.len() + 1);
            state.dns_changes.insert(id.clone(), 2);
            id
        };
        let moved: Vec<String> = records
            .iter()
            .map(|r| format!("{} {} -> {}", r.failover, r.record_type, r.target_dns))
            .collect();
        self.0.mutated(format!("dns {}", moved.join(", ")));
        Ok(id)
    }

    async fn change_status(&self, id: &str) -> Result<String, AwsError> {
        let mut state = self.0.state();
        let stuck = state.faults.dns_stuck;
        let left = state
            .dns_changes
            .get_mut(id)
            .ok_or_else(|| not_found("Route53", "GetChange", id))?;
        if *left > 0 && !stuck {
            *left -= 1;
        }
        Ok(if *left == 0 { "INSYNC" } else { "PENDING" }.to_owned())
    }
}

#[async_trait]
impl SecretsApi for InRegion {
    async fn describe(&self, id: &str) -> Result<SecretMetadata, AwsError> {
        self.0
            .state()
            .secrets
            .get(&self.key(id))
            .cloned()
            .ok_or_else(|| not_found("SecretsManager", "DescribeSecret", id))
    }
}
