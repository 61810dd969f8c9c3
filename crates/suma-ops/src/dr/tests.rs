//! The DR engine against hand-written fakes of ECS, RDS, Route 53 and the lock table: a full failover and
//! failback, the states moto cannot produce (lag beyond the RPO, no lag value, an unreachable primary
//! region, a promotion stuck in `modifying`, a DNS change stuck PENDING, a failing verification), and a
//! kill after every single AWS mutation followed by `--resume`, which must end in the same state as an
//! uninterrupted run. Time is paused, so waits and timeouts take no wall time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::check::{self, CheckStatus, Observed, ServiceView};
use super::lag::{LagError, ReplicaLag};
use super::*;
use crate::aws::ecs::{ContainerChange, ContainerImage, EcsApi, EcsDeployment, EcsService, TaskDefinition};
use crate::aws::elb::{LoadBalancerApi, WeightedTarget};
use crate::aws::rds::DatabaseApi;
use crate::aws::route53::{DnsApi, DnsRecord, HealthCheckStatus};
use crate::aws::secrets::{SecretMetadata, SecretsApi};
use crate::aws::AwsError;
use crate::journal::lock::Locks;
use crate::journal::{LocalLog, StepStatus};
use crate::report::SilentReporter;
use suma_testkit::MemoryLockTable as MemoryTable;

const PRIMARY: &str = "eu-west-1";
const DR: &str = "eu-central-1";
const PRIMARY_LB: &str = "auth-primary.eu-west-1.elb.amazonaws.com";
const DR_LB: &str = "auth-dr.eu-central-1.elb.amazonaws.com";

#[derive(Debug, Clone, PartialEq)]
struct Db {
    arn: String,
    status: String,
    source: Option<String>,
    multi_az: bool,
    backup: i32,
    /// Describes left before a transition (`modifying` or `creating`) completes.
    settling: u32,
}

#[derive(Default)]
struct Behaviour {
    primary_unreachable: bool,
    promotion_stuck: bool,
    dns_stuck: bool,
    lag: Option<Option<f64>>,
    ready_fails: bool,
    gate_declines: bool,
    /// Cancel the run right after this many mutations (a kill after the call reached AWS).
    crash_after: Option<usize>,
}

#[derive(Default)]
struct World {
    /// (region, service) -> (task definition, desired)
    services: Mutex<BTreeMap<(String, String), (String, i32)>>,
    /// task definition -> its database host variable
    task_definitions: Mutex<BTreeMap<String, Option<String>>>,
    dbs: Mutex<BTreeMap<(String, String), Db>>,
    primary_record: Mutex<Option<FailoverAlias>>,
    secondary_record: Mutex<Option<FailoverAlias>>,
    changes: Mutex<HashMap<String, u32>>,
    mutations: Mutex<Vec<String>>,
    events: Mutex<Vec<String>>,
    behaviour: Mutex<Behaviour>,
    cancel: Mutex<Option<CancellationToken>>,
}

/// What a finished run leaves, with task-definition revisions replaced by what they point at.
#[derive(Debug, PartialEq)]
struct Snapshot {
    services: BTreeMap<(String, String), (Option<String>, i32)>,
    dbs: BTreeMap<(String, String), (String, bool, bool, i32)>,
    primary_target: String,
}

fn endpoint(region: &str, id: &str) -> String {
    format!("{id}.abc.{region}.rds.amazonaws.com")
}

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:1:db:{id}")
}

impl World {
    fn new() -> Arc<Self> {
        let world = Self::default();
        {
            let mut services = world.services.lock().unwrap();
            services.insert((PRIMARY.into(), "auth-service".into()), ("td-primary:1".into(), 4));
            services.insert(
                (PRIMARY.into(), "auth-service-canary".into()),
                ("td-primary:1".into(), 0),
            );
            services.insert((DR.into(), "auth-service".into()), ("td-dr:1".into(), 0));
            let mut tds = world.task_definitions.lock().unwrap();
            tds.insert("td-primary:1".into(), None);
            tds.insert("td-dr:1".into(), None);
            let mut dbs = world.dbs.lock().unwrap();
            dbs.insert(
                (PRIMARY.into(), "db".into()),
                Db {
                    arn: arn(PRIMARY, "db"),
                    status: "available".into(),
                    source: None,
                    multi_az: true,
                    backup: 30,
                    settling: 0,
                },
            );
            dbs.insert(
                (DR.into(), "db-replica".into()),
                Db {
                    arn: arn(DR, "db-replica"),
                    status: "available".into(),
                    source: Some(arn(PRIMARY, "db")),
                    multi_az: false,
                    backup: 0,
                    settling: 0,
                },
            );
            *world.primary_record.lock().unwrap() = Some(alias("PRIMARY", PRIMARY_LB, "ZPRIMARY", Some("hc-primary")));
            *world.secondary_record.lock().unwrap() = Some(alias("SECONDARY", DR_LB, "ZDR", Some("hc-dr")));
        }
        world.behaviour.lock().unwrap().lag = Some(Some(2.0));
        Arc::new(world)
    }

    fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    /// Records a mutation; cancels the run if the crash point is reached.
    fn mutated(&self, what: String) {
        let mut log = self.mutations.lock().unwrap();
        log.push(what);
        if self.behaviour.lock().unwrap().crash_after == Some(log.len()) {
            if let Some(cancel) = self.cancel.lock().unwrap().as_ref() {
                cancel.cancel();
            }
        }
    }

    fn mutations(&self) -> Vec<String> {
        self.mutations.lock().unwrap().clone()
    }

    fn unreachable(&self, region: &str) -> Result<(), AwsError> {
        if region == PRIMARY && self.behaviour.lock().unwrap().primary_unreachable {
            return Err(AwsError::new(
                "ECS",
                "Any",
                region,
                AwsErrorKind::Unreachable,
                "connection refused",
            ));
        }
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let tds = self.task_definitions.lock().unwrap();
        Snapshot {
            services: self
                .services
                .lock()
                .unwrap()
                .iter()
                .map(|(k, (td, desired))| (k.clone(), (tds[td].clone(), *desired)))
                .collect(),
            dbs: self
                .dbs
                .lock()
                .unwrap()
                .iter()
                .map(|(k, db)| {
                    // Renamed instances carry the operation's random suffix.
                    let name = match k.1.split_once("-stale-") {
                        Some((base, _)) => format!("{base}-stale"),
                        None => k.1.clone(),
                    };
                    (
                        (k.0.clone(), name),
                        (
                            db.source.clone().unwrap_or_else(|| "standalone".into()),
                            db.multi_az,
                            db.status == "available",
                            db.backup.min(1),
                        ),
                    )
                })
                .collect(),
            primary_target: self.primary_record.lock().unwrap().as_ref().unwrap().target_dns.clone(),
        }
    }
}

fn alias(failover: &str, target: &str, zone: &str, check: Option<&str>) -> FailoverAlias {
    FailoverAlias {
        name: "auth.example.com".into(),
        record_type: "A".into(),
        set_identifier: format!("auth-{}", failover.to_lowercase()),
        failover: failover.into(),
        target_dns: target.into(),
        target_zone_id: zone.into(),
        evaluate_target_health: true,
        health_check_id: check.map(Into::into),
    }
}

struct Region(Arc<World>, String);

#[async_trait]
impl EcsApi for Region {
    async fn describe_services(&self, _: &str, names: &[String]) -> Result<Vec<EcsService>, AwsError> {
        self.0.unreachable(&self.1)?;
        let services = self.0.services.lock().unwrap();
        Ok(names
            .iter()
            .filter_map(|n| services.get(&(self.1.clone(), n.clone())).map(|s| (n, s)))
            .map(|(name, (td, desired))| EcsService {
                name: name.clone(),
                status: "ACTIVE".into(),
                desired: *desired,
                running: *desired,
                pending: 0,
                task_definition: td.clone(),
                deployments: vec![EcsDeployment {
                    id: "d".into(),
                    status: "PRIMARY".into(),
                    task_definition: td.clone(),
                    desired: *desired,
                    running: *desired,
                    pending: 0,
                    rollout_state: Some("COMPLETED".into()),
                    rollout_reason: None,
                    created_at: None,
                }],
            })
            .collect())
    }

    async fn describe_task_definition(&self, reference: &str) -> Result<TaskDefinition, AwsError> {
        Ok(TaskDefinition {
            arn: reference.to_owned(),
            family: "auth-service".into(),
            revision: 1,
            status: "ACTIVE".into(),
            containers: vec![ContainerImage {
                name: "auth-service".into(),
                image: "repo/auth-service:1.4.2".into(),
            }],
        })
    }

    async fn update_service(&self, _: &str, service: &str, update: &ServiceUpdate) -> Result<(), AwsError> {
        self.0.unreachable(&self.1)?;
        {
            let mut services = self.0.services.lock().unwrap();
            let entry = services
                .get_mut(&(self.1.clone(), service.to_owned()))
                .expect("the service exists");
            if let Some(td) = &update.task_definition {
                entry.0 = td.clone();
            }
            if let Some(n) = update.desired_count {
                entry.1 = n;
            }
        }
        self.0.mutated(format!("ecs {} {service} {update:?}", self.1));
        Ok(())
    }

    async fn register_revision(
        &self,
        base: &str,
        _: &str,
        change: &ContainerChange,
    ) -> Result<TaskDefinition, AwsError> {
        let [(name, value)] = change.environment.as_slice() else {
            return self.describe_task_definition(base).await;
        };
        assert_eq!(name, "DATABASE_HOST");
        let arn = {
            let mut tds = self.0.task_definitions.lock().unwrap();
            let arn = format!("{}:{}", base.split(':').next().unwrap(), tds.len() + 1);
            tds.insert(arn.clone(), Some(value.to_owned()));
            arn
        };
        self.0.mutated(format!("register {arn}"));
        self.describe_task_definition(&arn).await
    }
}

fn not_found(id: &str) -> AwsError {
    AwsError::new(
        "RDS",
        "DescribeDBInstances",
        id,
        AwsErrorKind::NotFound,
        "DBInstanceNotFound",
    )
}

impl Region {
    fn view(&self, id: &str, db: &Db) -> DbInstance {
        DbInstance {
            identifier: id.to_owned(),
            arn: db.arn.clone(),
            status: db.status.clone(),
            engine: "postgres".into(),
            engine_version: "15.5".into(),
            instance_class: "db.r6g.large".into(),
            multi_az: db.multi_az,
            storage_encrypted: true,
            kms_key_id: None,
            deletion_protection: true,
            backup_retention_days: db.backup,
            replica_source: db.source.clone(),
            read_replicas: Vec::new(),
            endpoint: Some(endpoint(&self.1, id)),
            port: Some(5432),
        }
    }
}

#[async_trait]
impl DatabaseApi for Region {
    async fn describe_instance(&self, identifier: &str) -> Result<DbInstance, AwsError> {
        self.0.unreachable(&self.1)?;
        let stuck = self.0.behaviour.lock().unwrap().promotion_stuck;
        let mut dbs = self.0.dbs.lock().unwrap();
        let db = dbs
            .get_mut(&(self.1.clone(), identifier.to_owned()))
            .ok_or_else(|| not_found(identifier))?;
        if db.settling > 0 && !(stuck && db.status == "modifying") {
            db.settling -= 1;
            if db.settling == 0 {
                if db.status == "modifying" {
                    db.source = None;
                }
                db.status = "available".into();
            }
        }
        Ok(self.view(identifier, db))
    }

    async fn promote_read_replica(&self, identifier: &str, backup: i32) -> Result<DbInstance, AwsError> {
        let view = {
            let mut dbs = self.0.dbs.lock().unwrap();
            let db = dbs
                .get_mut(&(self.1.clone(), identifier.to_owned()))
                .ok_or_else(|| not_found(identifier))?;
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
            db.backup = backup;
            db.settling = 2;
            self.view(identifier, db)
        };
        self.0.mutated(format!("promote {} {identifier}", self.1));
        Ok(view)
    }

    async fn modify_instance(&self, identifier: &str, change: &DbModification) -> Result<DbInstance, AwsError> {
        let key = (self.1.clone(), identifier.to_owned());
        let view = {
            let mut dbs = self.0.dbs.lock().unwrap();
            let mut db = dbs.remove(&key).ok_or_else(|| not_found(identifier))?;
            if let Some(m) = change.multi_az {
                db.multi_az = m;
            }
            if let Some(b) = change.backup_retention_days {
                db.backup = b;
            }
            let id = change.new_identifier.clone().unwrap_or_else(|| identifier.to_owned());
            if change.new_identifier.is_some() {
                db.arn = arn(&self.1, &id);
            }
            let view = self.view(&id, &db);
            dbs.insert((self.1.clone(), id), db);
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
    ) -> Result<DbInstance, AwsError> {
        let view = {
            let mut dbs = self.0.dbs.lock().unwrap();
            let key = (self.1.clone(), identifier.to_owned());
            assert!(!dbs.contains_key(&key), "{identifier} exists already");
            let db = Db {
                arn: arn(&self.1, identifier),
                status: "creating".into(),
                source: Some(source_arn.to_owned()),
                multi_az: false,
                backup: 0,
                settling: 2,
            };
            let view = self.view(identifier, &db);
            dbs.insert(key, db);
            view
        };
        self.0
            .mutated(format!("create-replica {} {identifier} of {source_arn}", self.1));
        Ok(view)
    }
}

#[async_trait]
impl DnsApi for Region {
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
        Ok([&self.0.primary_record, &self.0.secondary_record]
            .iter()
            .filter_map(|r| r.lock().unwrap().clone())
            .collect())
    }
    async fn upsert_failover_alias(&self, _: &str, record: &FailoverAlias) -> Result<String, AwsError> {
        let slot = if record.failover == "PRIMARY" {
            &self.0.primary_record
        } else {
            &self.0.secondary_record
        };
        *slot.lock().unwrap() = Some(record.clone());
        let id = format!("C{}", self.0.changes.lock().unwrap().len() + 1);
        self.0.changes.lock().unwrap().insert(id.clone(), 2);
        self.0
            .mutated(format!("dns {} -> {}", record.failover, record.target_dns));
        Ok(id)
    }
    async fn change_status(&self, id: &str) -> Result<String, AwsError> {
        let stuck = self.0.behaviour.lock().unwrap().dns_stuck;
        let mut changes = self.0.changes.lock().unwrap();
        let left = changes.get_mut(id).expect("a known change");
        if *left > 0 && !stuck {
            *left -= 1;
        }
        Ok(if *left == 0 { "INSYNC" } else { "PENDING" }.to_owned())
    }
}

#[async_trait]
impl SecretsApi for Region {
    async fn describe(&self, id: &str) -> Result<SecretMetadata, AwsError> {
        Ok(SecretMetadata {
            name: id.to_owned(),
            arn: format!("arn:aws:secretsmanager:{}:1:secret:{id}", self.1),
            rotation_enabled: false,
            last_rotated: None,
            last_changed: None,
            created: None,
            kms_key_id: None,
            versions: BTreeMap::new(),
            replica_regions: vec![DR.to_owned()],
        })
    }
}

#[async_trait]
impl LoadBalancerApi for Region {
    async fn rule_weights(&self, _: &str) -> Result<Vec<WeightedTarget>, AwsError> {
        unreachable!("DR does not touch the ALB rule")
    }
    async fn set_weights(&self, _: &str, _: &[WeightedTarget]) -> Result<(), AwsError> {
        unreachable!("DR does not touch the ALB rule")
    }
}

struct Fakes(Arc<World>);

impl AwsApis for Fakes {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn EcsApi> {
        Arc::new(Region(self.0.clone(), region.to_string()))
    }
    fn elb(&self, region: &AwsRegion) -> Arc<dyn LoadBalancerApi> {
        Arc::new(Region(self.0.clone(), region.to_string()))
    }
    fn rds(&self, region: &AwsRegion) -> Arc<dyn DatabaseApi> {
        Arc::new(Region(self.0.clone(), region.to_string()))
    }
    fn route53(&self) -> Arc<dyn DnsApi> {
        Arc::new(Region(self.0.clone(), "global".into()))
    }
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn SecretsApi> {
        Arc::new(Region(self.0.clone(), region.to_string()))
    }
}

#[async_trait]
impl ReplicaLag for Region {
    fn source(&self) -> &'static str {
        "fake"
    }
    async fn lag_seconds(&self) -> Result<Option<f64>, LagError> {
        Ok(self.0.behaviour.lock().unwrap().lag.unwrap_or(None))
    }
}

#[async_trait]
impl ServiceProbe for Region {
    async fn ready(&self, _: &str) -> Result<u16, String> {
        if self.0.behaviour.lock().unwrap().ready_fails {
            Err("answered 503".into())
        } else {
            Ok(200)
        }
    }
    async fn write(&self, _: &str) -> Result<u16, String> {
        Ok(202)
    }
}

#[async_trait]
impl EventSink for Region {
    async fn event(&self, title: &str, _: &str, _: bool) -> Result<(), String> {
        self.0.events.lock().unwrap().push(title.to_owned());
        Ok(())
    }
}

impl Gate for Region {
    fn confirm(&self, _: &str) -> bool {
        !self.0.behaviour.lock().unwrap().gate_declines
    }
}

fn environment() -> Environment {
    let yaml = format!(
        "primary_region: {PRIMARY}\ndr_region: {DR}\nurl: 'http://primary.example'\necs: {{ cluster: c, service: auth-service, canary_service: auth-service-canary, container: auth-service, container_port: 8080, desired_count: 4, dr: {{ cluster: c, service: auth-service }} }}\nalb: {{ listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/x/1/2', rule_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/x/1/2/3', stable_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/s/1', canary_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/c/1', dr_load_balancer_dns: '{DR_LB}' }}\nrds: {{ primary: {{ identifier: db, region: {PRIMARY} }}, replica: {{ identifier: db-replica, region: {DR} }} }}\ndns: {{ hosted_zone_id: Z, record_name: auth.example.com, primary_health_check_id: hc-primary, secondary_health_check_id: hc-dr }}\nsecrets: [{{ id: app/db-password, kind: db-password }}]\nmetrics: {{ provider: prometheus, prometheus_url: 'http://127.0.0.1:9' }}\ndr: {{ rto: 15m, rpo: 5m, replica_lag: postgres, dr_url: 'http://dr.example' }}\n"
    );
    serde_yaml::from_str(&yaml).unwrap()
}

struct Harness {
    world: Arc<World>,
    table: Arc<MemoryTable>,
    journal: Journal,
    locks: Locks,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(MemoryTable::default());
        Self {
            world: World::new(),
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            locks: Locks::new(table.clone(), Duration::from_secs(60)),
            table,
            _dir: dir,
        }
    }

    fn engine(&self) -> Engine {
        let cancel = CancellationToken::new();
        *self.world.cancel.lock().unwrap() = Some(cancel.clone());
        let region = || Arc::new(Region(self.world.clone(), "x".into()));
        Engine {
            environment: "drill".into(),
            env: environment(),
            aws: Arc::new(Fakes(self.world.clone())),
            lag: region(),
            probe: region(),
            events: Some(region()),
            gate: region(),
            journal: self.journal.clone(),
            reporter: Arc::new(SilentReporter),
            cancel,
            wait_timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
        }
    }

    fn op(&self, direction: Direction) -> Operation {
        Operation::new(
            direction.kind(),
            "drill",
            "tester@host",
            plan(direction, "drill", &environment()),
        )
    }

    /// A run or a resume; the lock is released when the operation finished, kept (and its lease run out,
    /// as after a dead process) otherwise.
    async fn run(&self, op: &mut Operation, takeover: bool) -> Outcome {
        let engine = self.engine();
        let guard = self.locks.acquire(op, takeover).await.unwrap();
        if takeover {
            op.set_status(OperationStatus::Running);
        }
        let outcome = engine.run(op, &guard).await.unwrap();
        match outcome {
            Outcome::Interrupted { .. } | Outcome::Stopped { .. } => {
                guard.abandon();
                self.expire_lease();
            }
            _ => guard.release().await.unwrap(),
        }
        outcome
    }

    fn expire_lease(&self) {
        self.table.expire("drill", 0);
    }

    async fn failover(&self) -> Operation {
        let mut op = self.op(Direction::Failover);
        assert_eq!(self.run(&mut op, false).await, Outcome::Completed);
        op
    }
}

fn failed_over_state(world: &World) {
    let s = world.snapshot();
    let key = |r: &str, n: &str| (r.to_owned(), n.to_owned());
    assert_eq!(s.services[&key(PRIMARY, "auth-service")].1, 0, "primary drained");
    assert_eq!(s.services[&key(PRIMARY, "auth-service-canary")].1, 0);
    assert_eq!(
        s.services[&key(DR, "auth-service")],
        (Some(format!("{}:5432", endpoint(DR, "db-replica"))), 4),
        "DR at production capacity on the promoted database"
    );
    assert_eq!(
        s.dbs[&key(DR, "db-replica")],
        ("standalone".into(), true, true, 1),
        "promoted, multi-AZ, backups"
    );
    assert_eq!(
        s.dbs[&key(PRIMARY, "db")],
        (("standalone".into()), true, true, 1),
        "the old primary is untouched"
    );
    assert_eq!(s.primary_target, DR_LB, "DNS on the DR load balancer");
}

#[tokio::test(start_paused = true)]
async fn a_failover_changes_what_it_should_and_nothing_else() {
    let h = Harness::new();
    let op = h.failover().await;
    failed_over_state(&h.world);
    let record = h.world.primary_record.lock().unwrap().clone().unwrap();
    assert_eq!(record.target_zone_id, "ZDR");
    assert_eq!(record.health_check_id.as_deref(), Some("hc-dr"));
    assert_eq!(
        record.set_identifier, "auth-primary",
        "the PRIMARY record is replaced, not added"
    );
    assert_eq!(h.world.events.lock().unwrap().as_slice(), ["DR failover of drill"]);
    // Exactly these calls changed anything, in this order (the scale-up may interleave with the promotion).
    let mutations = h.world.mutations();
    // The canary already runs 0 tasks, so only the stable service is drained.
    let expected = [
        "ecs eu-west-1 auth-service ",
        "promote eu-central-1 db-replica",
        "ecs eu-central-1 auth-service ",
        "modify eu-central-1 db-replica ",
        "register td-dr:",
        "ecs eu-central-1 auth-service ",
        "dns PRIMARY -> auth-dr",
    ];
    assert_eq!(mutations.len(), expected.len(), "{mutations:#?}");
    for (seen, wanted) in mutations.iter().zip(expected) {
        assert!(seen.starts_with(wanted), "{seen} is not {wanted}: {mutations:#?}");
    }
    let recorded = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(recorded.status, OperationStatus::Succeeded);
    assert_eq!(recorded.fact("promoted"), Some(&json!("db-replica")));
    let t = timings(&recorded, Duration::from_secs(900));
    assert!(t.within_rto, "{t:?}");
    assert_eq!(t.steps.len(), 7);
}

#[tokio::test(start_paused = true)]
async fn lag_beyond_the_rpo_refuses_and_changes_nothing() {
    for lag in [Some(600.0), Some(-1.0), None] {
        let h = Harness::new();
        h.world.behave(|b| b.lag = Some(lag));
        let mut op = h.op(Direction::Failover);
        let outcome = h.run(&mut op, false).await;
        assert!(
            matches!(&outcome, Outcome::Refused { reason } if reason.contains("RPO")),
            "{lag:?}: {outcome:?}"
        );
        assert!(h.world.mutations().is_empty(), "{lag:?}");
        assert_eq!(op.status, OperationStatus::Failed);
        assert!(h.locks.status("drill").await.unwrap().is_none(), "the lock is released");
    }
}

#[tokio::test(start_paused = true)]
async fn accepted_data_loss_is_journaled_with_who_and_why() {
    let h = Harness::new();
    h.world.behave(|b| b.lag = Some(Some(900.0)));
    let mut op = h.op(Direction::Failover);
    op.parameters.insert("accept_data_loss".into(), json!(true));
    op.parameters.insert("reason".into(), json!("eu-west-1 is down"));
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    failed_over_state(&h.world);
    let note = &op.events[0].message;
    assert!(
        note.contains("data loss accepted by tester@host")
            && note.contains("900.0s")
            && note.contains("eu-west-1 is down"),
        "{note}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_primary_region_is_not_drained_but_the_failover_completes() {
    let h = Harness::new();
    h.world.behave(|b| b.primary_unreachable = true);
    let mut op = h.op(Direction::Failover);
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    assert_eq!(op.steps[1].status, StepStatus::Skipped);
    assert_eq!(op.fact("primary_unreachable"), Some(&json!(true)));
    assert_eq!(h.world.snapshot().primary_target, DR_LB);
}

#[tokio::test(start_paused = true)]
async fn a_promotion_stuck_in_modifying_stops_and_resumes() {
    let h = Harness::new();
    h.world.behave(|b| b.promotion_stuck = true);
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "promote-and-scale" && reason.contains("still `modifying`")),
        "{outcome:?}"
    );
    let recorded = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(
        recorded.status,
        OperationStatus::Interrupted,
        "resumable, and the lock still protects it"
    );
    assert_eq!(h.world.snapshot().primary_target, PRIMARY_LB, "DNS not touched");
    // Another deploy cannot start meanwhile.
    let other = Operation::new("canary-deploy", "drill", "someone@else", Vec::new());
    assert!(h.locks.acquire(&other, false).await.is_err());

    h.world.behave(|b| b.promotion_stuck = false);
    let mut resumed = recorded;
    assert_eq!(h.run(&mut resumed, true).await, Outcome::Completed);
    failed_over_state(&h.world);
}

#[tokio::test(start_paused = true)]
async fn a_dns_change_stuck_pending_stops_and_resumes() {
    let h = Harness::new();
    h.world.behave(|b| b.dns_stuck = true);
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "switch-dns" && reason.contains("PENDING")),
        "{outcome:?}"
    );
    h.world.behave(|b| b.dns_stuck = false);
    let mut resumed = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(h.run(&mut resumed, true).await, Outcome::Completed);
    failed_over_state(&h.world);
    // The record was already right: the resume waited on the change without writing it again.
    assert_eq!(h.world.mutations().iter().filter(|m| m.starts_with("dns")).count(), 1);
    let switch = resumed.steps.iter().find(|s| s.name == "switch-dns").unwrap();
    assert!(
        switch.facts["dns_change_id"].is_string(),
        "the first attempt's change, journaled when Route 53 answered, is what the resume waited on: {:?}",
        switch.facts
    );
    assert_eq!(switch.attempts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_verification_stops_after_the_switch() {
    let h = Harness::new();
    h.world.behave(|b| b.ready_fails = true);
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, .. } if at_step == "verify"),
        "{outcome:?}"
    );
    h.world.behave(|b| b.ready_fails = false);
    let mut resumed = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(h.run(&mut resumed, true).await, Outcome::Completed);
    failed_over_state(&h.world);
}

#[tokio::test(start_paused = true)]
async fn abort_before_the_promotion_gives_the_primary_its_capacity_back() {
    let h = Harness::new();
    // Killed right after the first drain call.
    h.world.behave(|b| b.crash_after = Some(1));
    let mut op = h.op(Direction::Failover);
    assert!(matches!(h.run(&mut op, false).await, Outcome::Interrupted { .. }));
    h.world.behave(|b| b.crash_after = None);
    let mut recorded = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(
        h.world.snapshot().services[&(PRIMARY.to_owned(), "auth-service".to_owned())].1,
        0
    );
    // The drain journaled the capacity it found before draining, so abort knows what to restore.
    assert_eq!(recorded.fact("primary_desired"), Some(&json!(4)));
    let engine = h.engine();
    let guard = h.locks.acquire(&recorded, true).await.unwrap();
    let outcome = engine.abort(&mut recorded, &guard, "ops@host").await.unwrap();
    guard.release().await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Aborted { note, .. } if note.contains("scaled back to 4")),
        "{outcome:?}"
    );
    assert_eq!(
        h.world.snapshot().services[&(PRIMARY.to_owned(), "auth-service".to_owned())].1,
        4
    );
    assert_eq!(h.world.snapshot().primary_target, PRIMARY_LB);
    assert_eq!(recorded.status, OperationStatus::Aborted);
}

#[tokio::test(start_paused = true)]
async fn abort_of_a_failback_killed_after_draining_dr_gives_dr_its_tasks_back() {
    let dr_service = (DR.to_owned(), "auth-service".to_owned());
    // The failback's mutations in turn, until the kill lands right after the DR drain.
    for k in 1..10 {
        let h = Harness::new();
        h.failover().await;
        assert_eq!(h.world.snapshot().services[&dr_service].1, 4);
        let base = h.world.mutations().len();
        h.world.behave(|b| b.crash_after = Some(base + k));
        let mut op = h.op(Direction::Failback);
        assert!(matches!(h.run(&mut op, false).await, Outcome::Interrupted { .. }));
        h.world.behave(|b| b.crash_after = None);
        if h.world.snapshot().services[&dr_service].1 != 0 {
            continue;
        }
        assert_eq!(h.world.snapshot().primary_target, DR_LB, "DNS still names DR");
        let mut recorded = h.journal.load(&op.id).await.unwrap().unwrap();
        assert_eq!(
            recorded.fact("dr_desired"),
            Some(&json!(4)),
            "journaled before the drain"
        );
        let engine = h.engine();
        let guard = h.locks.acquire(&recorded, true).await.unwrap();
        let outcome = engine.abort(&mut recorded, &guard, "ops@host").await.unwrap();
        guard.release().await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Aborted { note, .. } if note.contains("scaled back to 4") && note.contains("DR region serves again")),
            "{outcome:?}"
        );
        assert_eq!(h.world.snapshot().services[&dr_service].1, 4);
        return;
    }
    panic!("no kill point left DR drained");
}

/// Kills the run after each AWS mutation of an uninterrupted run in turn, resumes it from the journal in
/// a new process, and compares the final state with the uninterrupted run's.
async fn kill_after_every_mutation(direction: Direction) {
    let clean = Harness::new();
    if direction == Direction::Failback {
        clean.failover().await;
    }
    let before = clean.world.mutations().len();
    let mut op = clean.op(direction);
    assert_eq!(clean.run(&mut op, false).await, Outcome::Completed);
    let expected = clean.world.snapshot();
    let total = clean.world.mutations().len() - before;
    assert!(total >= 5, "{direction:?}: {total} mutations");

    for k in 1..=total {
        let h = Harness::new();
        if direction == Direction::Failback {
            h.failover().await;
        }
        let offset = h.world.mutations().len();
        h.world.behave(|b| b.crash_after = Some(offset + k));
        let mut op = h.op(direction);
        let outcome = h.run(&mut op, false).await;
        assert!(
            matches!(outcome, Outcome::Interrupted { .. }),
            "{direction:?} kill {k}: {outcome:?}"
        );
        h.world.behave(|b| b.crash_after = None);
        let mut recorded = h.journal.load(&op.id).await.unwrap().unwrap();
        assert_eq!(recorded.status, OperationStatus::Interrupted, "{direction:?} kill {k}");
        assert_eq!(
            h.run(&mut recorded, true).await,
            Outcome::Completed,
            "{direction:?} kill {k}"
        );
        assert_eq!(h.world.snapshot(), expected, "{direction:?} kill after mutation {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_kill_after_any_failover_mutation_resumes_to_the_same_state() {
    kill_after_every_mutation(Direction::Failover).await;
}

#[tokio::test(start_paused = true)]
async fn a_kill_after_any_failback_mutation_resumes_to_the_same_state() {
    kill_after_every_mutation(Direction::Failback).await;
}

#[tokio::test(start_paused = true)]
async fn a_failback_restores_the_normal_topology() {
    let h = Harness::new();
    h.failover().await;
    let mut op = h.op(Direction::Failback);
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    let s = h.world.snapshot();
    let key = |r: &str, n: &str| (r.to_owned(), n.to_owned());
    assert_eq!(s.primary_target, PRIMARY_LB);
    assert_eq!(
        s.services[&key(PRIMARY, "auth-service")],
        (Some(format!("{}:5432", endpoint(PRIMARY, "db"))), 4)
    );
    assert_eq!(s.services[&key(DR, "auth-service")].1, 0, "DR back to its standby");
    assert_eq!(s.dbs[&key(PRIMARY, "db")], ("standalone".into(), true, true, 1));
    assert_eq!(
        s.dbs[&key(DR, "db-replica")].0,
        arn(PRIMARY, "db"),
        "the DR replica follows the primary again"
    );
    assert!(
        s.dbs.contains_key(&key(PRIMARY, "db-stale")),
        "the stale primary is kept"
    );
    assert!(s.dbs.contains_key(&key(DR, "db-replica-stale")));
    let suffix = suffix(&op);
    assert_eq!(op.fact("stale_primary"), Some(&json!(format!("db-stale-{suffix}"))));
    assert_eq!(
        h.world.primary_record.lock().unwrap().clone().unwrap(),
        alias("PRIMARY", PRIMARY_LB, "ZPRIMARY", Some("hc-primary"))
    );
    assert_eq!(h.world.events.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failback_needs_a_recorded_failover_and_the_confirmation() {
    let h = Harness::new();
    let mut op = h.op(Direction::Failback);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("no completed failover")),
        "{outcome:?}"
    );

    h.failover().await;
    h.world.behave(|b| b.gate_declines = true);
    let mut op = h.op(Direction::Failback);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, .. } if at_step == "confirm"),
        "{outcome:?}"
    );
    assert_eq!(h.world.snapshot().primary_target, DR_LB, "traffic did not move");
    assert_eq!(
        h.world.snapshot().services[&(DR.to_owned(), "auth-service".to_owned())].1,
        4
    );
    assert!(
        !h.world.snapshot().dbs.keys().any(|(_, id)| id.contains("stale")),
        "nothing is renamed before the confirmation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_failback_is_refused_before_it_changes_anything() {
    let h = Harness::new();
    h.failover().await;
    let mut op = h.op(Direction::Failback);
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    let before = h.world.snapshot();
    let mutations = h.world.mutations().len();

    let mut again = h.op(Direction::Failback);
    let outcome = h.run(&mut again, false).await;
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains(&format!("failback `{}` already brought", op.id))),
        "{outcome:?}"
    );
    assert_eq!(h.world.mutations().len(), mutations, "no AWS call changed anything");
    assert_eq!(
        h.world.snapshot(),
        before,
        "the live primary keeps its name and endpoint"
    );
}

#[test]
fn a_window_of_lag_points_counts_its_worst_and_any_broken_one() {
    use super::lag::worst_lag;
    let cases: [(&[f64], Option<f64>); 5] = [
        (&[], None),
        (&[0.0, 2.0, 1.0], Some(2.0)),
        (&[300.0, -1.0], Some(-1.0)),
        (&[-1.0, 0.0, 0.0, 0.0], Some(-1.0)),
        (&[4.0], Some(4.0)),
    ];
    for (points, expected) in cases {
        assert_eq!(worst_lag(points), expected, "{points:?}");
    }
}

#[test]
fn dr_capacity_is_judged_against_what_the_primary_runs() {
    use super::check::capacity_status;
    use CheckStatus::{Fail, Pass, Warn};
    // (failover count, primary running, ratio, expected)
    let cases = [
        (4, Some(4), 1.0, Pass),
        (4, Some(6), 1.0, Fail),
        (4, Some(8), 0.5, Pass),
        (4, Some(9), 0.5, Fail),
        (0, Some(0), 1.0, Fail),
        (2, Some(0), 1.0, Pass),
        (4, None, 1.0, Warn),
        (0, None, 1.0, Fail),
    ];
    for (count, running, ratio, expected) in cases {
        assert_eq!(
            capacity_status(count, running, ratio).0,
            expected,
            "{count} {running:?} {ratio}"
        );
    }
}

#[test]
fn lag_against_the_rpo() {
    let rpo = Duration::from_secs(300);
    assert_eq!(check::lag_status(Some(3.0), rpo).0, CheckStatus::Pass);
    assert_eq!(check::lag_status(Some(200.0), rpo).0, CheckStatus::Warn);
    assert_eq!(check::lag_status(Some(301.0), rpo).0, CheckStatus::Fail);
    assert_eq!(
        check::lag_status(Some(-1.0), rpo),
        (CheckStatus::Fail, "-1: not replicating".into())
    );
    assert_eq!(
        check::lag_status(None, rpo),
        (CheckStatus::Fail, "no value: not replicating".into())
    );
}

#[test]
fn promotion_is_judged_by_source_or_by_a_stand_in_that_answered_available() {
    let db = |status: &str, source: Option<&str>| DbInstance {
        identifier: "r".into(),
        arn: String::new(),
        status: status.into(),
        engine: String::new(),
        engine_version: String::new(),
        instance_class: String::new(),
        multi_az: false,
        storage_encrypted: false,
        kms_key_id: None,
        deletion_protection: false,
        backup_retention_days: 0,
        replica_source: source.map(Into::into),
        read_replicas: Vec::new(),
        endpoint: None,
        port: None,
    };
    assert!(promoted(&db("available", None), None));
    assert!(!promoted(&db("modifying", None), None));
    assert!(
        !promoted(&db("available", Some("p")), Some("modifying")),
        "RDS: still replicating"
    );
    assert!(
        promoted(&db("available", Some("p")), Some("available")),
        "moto: instant promotion"
    );
}

fn observed() -> Observed {
    let td = |family: &str, image: &str| TaskDefinition {
        arn: format!("{family}:1"),
        family: family.into(),
        revision: 1,
        status: "ACTIVE".into(),
        containers: vec![ContainerImage {
            name: "auth-service".into(),
            image: image.into(),
        }],
    };
    let record = |failover: &str, target: &str, ttl: Option<i64>, check: Option<&str>| DnsRecord {
        name: "auth.example.com".into(),
        record_type: "A".into(),
        set_identifier: Some(failover.to_lowercase()),
        failover: Some(failover.into()),
        ttl,
        targets: vec![target.into()],
        health_check_id: check.map(Into::into),
    };
    let region = Region(World::new(), DR.into());
    let replica = region.view(
        "db-replica",
        &region.0.dbs.lock().unwrap()[&(DR.to_owned(), "db-replica".to_owned())],
    );
    let primary = Region(region.0.clone(), PRIMARY.into());
    let primary_db = primary.view(
        "db",
        &region.0.dbs.lock().unwrap()[&(PRIMARY.to_owned(), "db".to_owned())],
    );
    Observed {
        primary_service: Ok(ServiceView {
            desired: 4,
            running: 4,
            task_definition: td("auth-service", "repo/auth-service:1.4.2"),
        }),
        dr_service: Ok(ServiceView {
            desired: 0,
            running: 0,
            task_definition: td("auth-service", "repo/auth-service:1.4.2"),
        }),
        primary_db: Ok(primary_db),
        replica: Some(Ok(replica)),
        lag_source: "postgres",
        lag: Ok(Some(1.5)),
        dns: Ok(vec![
            record("PRIMARY", PRIMARY_LB, None, Some("hc-primary")),
            record("SECONDARY", DR_LB, None, Some("hc-dr")),
        ]),
        secrets: vec![(
            "app/db-password".into(),
            Ok(SecretMetadata {
                name: "app/db-password".into(),
                arn: String::new(),
                rotation_enabled: false,
                last_rotated: None,
                last_changed: None,
                created: None,
                kms_key_id: None,
                versions: BTreeMap::new(),
                replica_regions: vec![DR.into()],
            }),
            Ok(()),
        )],
    }
}

fn status_of(report: &check::Readiness, check_name: &str) -> CheckStatus {
    report
        .items
        .iter()
        .find(|i| i.check.starts_with(check_name))
        .unwrap_or_else(|| panic!("no `{check_name}` in {:#?}", report.items))
        .status
}

#[test]
fn a_ready_environment_passes_every_check() {
    let env = environment();
    let report = check::evaluate("drill", &env, &observed(), estimated_rto("drill", &env));
    assert!(!report.failed(), "{:#?}", report.items);
    assert!(report.estimated_rto_secs <= 900);
    // A pilot light (no standby tasks) starts cold: within the RTO but close to it.
    assert_eq!(status_of(&report, "estimated failover time"), CheckStatus::Warn);
    assert_eq!(report.status, CheckStatus::Warn);
    let mut warm = environment();
    warm.ecs.dr.standby_count = 2;
    let report = check::evaluate("drill", &warm, &observed(), estimated_rto("drill", &warm));
    assert_eq!(report.status, CheckStatus::Pass, "{:#?}", report.items);
    assert_eq!(report.items.len(), 13, "{:#?}", report.items);
}

#[test]
fn each_readiness_problem_fails_its_own_check() {
    let env = environment();
    let rto = estimated_rto("drill", &env);
    let eval = |seen: &Observed| check::evaluate("drill", &env, seen, rto);

    let mut seen = observed();
    seen.dr_service.as_mut().unwrap().task_definition.containers[0].image = "repo/auth-service:1.3.0".into();
    assert_eq!(
        status_of(&eval(&seen), "DR runs the primary's image"),
        CheckStatus::Fail
    );

    let mut seen = observed();
    seen.dr_service = Err("service `auth-service` MISSING".into());
    assert_eq!(status_of(&eval(&seen), "DR service exists"), CheckStatus::Fail);

    let mut seen = observed();
    seen.replica.as_mut().unwrap().as_mut().unwrap().status = "storage-full".into();
    assert_eq!(status_of(&eval(&seen), "replica is available"), CheckStatus::Fail);

    let mut seen = observed();
    seen.replica.as_mut().unwrap().as_mut().unwrap().replica_source = None;
    assert_eq!(
        status_of(&eval(&seen), "replicates from the primary"),
        CheckStatus::Fail
    );

    let mut seen = observed();
    seen.lag = Ok(Some(-1.0));
    let report = eval(&seen);
    assert_eq!(status_of(&report, "replica lag"), CheckStatus::Fail);
    assert!(report.failed());

    let mut seen = observed();
    seen.dns.as_mut().unwrap().pop();
    assert_eq!(status_of(&eval(&seen), "failover records"), CheckStatus::Fail);

    let mut seen = observed();
    seen.dns.as_mut().unwrap()[0].health_check_id = None;
    assert_eq!(status_of(&eval(&seen), "primary has a health check"), CheckStatus::Fail);

    let mut seen = observed();
    seen.dns.as_mut().unwrap()[0].ttl = Some(300);
    assert_eq!(status_of(&eval(&seen), "TTL"), CheckStatus::Fail);

    let mut seen = observed();
    seen.dns.as_mut().unwrap()[1].targets = vec!["elsewhere.elb.amazonaws.com".into()];
    assert_eq!(
        status_of(&eval(&seen), "secondary points at the DR load balancer"),
        CheckStatus::Fail
    );

    let mut seen = observed();
    seen.secrets[0].2 = Err("ResourceNotFoundException".into());
    assert_eq!(status_of(&eval(&seen), "`app/db-password`"), CheckStatus::Fail);

    let mut slow = environment();
    slow.dr.rto = Duration::from_secs(300);
    let report = check::evaluate("drill", &slow, &observed(), estimated_rto("drill", &slow));
    assert_eq!(status_of(&report, "estimated failover time"), CheckStatus::Fail);
}

#[test]
fn a_failed_over_environment_warns_where_traffic_is() {
    let env = environment();
    let mut seen = observed();
    seen.dns.as_mut().unwrap()[0].targets = vec![DR_LB.into()];
    let report = check::evaluate("drill", &env, &seen, estimated_rto("drill", &env));
    assert_eq!(status_of(&report, "traffic served by"), CheckStatus::Warn);
}
