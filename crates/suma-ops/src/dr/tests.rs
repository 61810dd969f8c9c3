//! The DR engine against the in-memory account every engine test shares (`suma_testkit::AwsWorld`: ECS,
//! RDS, Route 53, Secrets Manager) and the in-memory lock table: a full failover and
//! failback, the states moto cannot produce (lag beyond the RPO, no lag value, an unreachable primary
//! region, a promotion stuck in `modifying`, a DNS change stuck PENDING, a failing verification), and a
//! kill after every single AWS mutation followed by `suma dr resume`, which must end in the same state as an
//! uninterrupted run. Time is paused, so waits and timeouts take no wall time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::check::{self, CheckStatus, Observed, ServiceView};
use super::image_parity::ImageDigests;
use super::lag::{LagError, ReplicaLag};
use super::*;
use crate::aws::ecs::{ContainerImage, ScalingSuspension, TaskDefinition};
use crate::aws::rds::Placement;
use crate::aws::route53::{DnsRecord, FailoverAlias};
use crate::aws::secrets::{SecretMetadata, SecretReplica};
use crate::journal::lock::Locks;
use crate::journal::{LocalLog, OperationStatus, StepStatus};
use crate::report::SilentReporter;
use suma_testkit::aws_world::{rds_arn as arn, rds_endpoint as endpoint, AwsWorld, Database, Faults};
use suma_testkit::MemoryLockTable as MemoryTable;

const PRIMARY: &str = "eu-west-1";
const DR: &str = "eu-central-1";
const PRIMARY_LB: &str = "auth-primary.eu-west-1.elb.amazonaws.com";
const DR_LB: &str = "auth-dr.eu-central-1.elb.amazonaws.com";

/// What is not AWS (the lag source, the service's probe, the confirmation gate) and the kill point.
#[derive(Default)]
struct Behaviour {
    lag: Option<Option<f64>>,
    /// The primary's WAL position (`None`: unreadable).
    primary_lsn: Option<u64>,
    /// The replica's replayed positions, one per read, the last repeated (`None`: not in recovery).
    replayed: Vec<Option<u64>>,
    /// The other sessions on the primary's database, one answer per read, the last repeated.
    sessions: Vec<Vec<String>>,
    /// Each read of the replica's position: the mutations the account had seen by then, and the answer.
    replay_reads: Vec<(usize, Option<u64>)>,
    ready_fails: bool,
    gate_declines: bool,
    /// The endpoints (`DR PRIMARY`) a failback was asked to read its databases at.
    failback_endpoints: Vec<String>,
    /// A failback's databases cannot be read (their URLs are not set).
    failback_unreadable: bool,
}

/// Cancels the run right after the given mutation count (a kill after the call reached AWS).
#[derive(Default)]
struct KillPoint {
    after: Option<usize>,
    cancel: Option<CancellationToken>,
}

/// The drill environment: the shared in-memory account seeded with both regions, and the seams DR has
/// besides AWS.
struct Drill {
    aws: Arc<AwsWorld>,
    behaviour: Mutex<Behaviour>,
    kill: Arc<Mutex<KillPoint>>,
    /// Titles of the events sent.
    events: Mutex<Vec<String>>,
}

/// What a finished run leaves, with task-definition revisions replaced by the database they point at.
#[derive(Debug, PartialEq)]
struct Snapshot {
    services: BTreeMap<(String, String), (Option<String>, i32)>,
    scaling: BTreeMap<(String, String), ScalingSuspension>,
    dbs: BTreeMap<(String, String), (String, bool, bool, i32)>,
    primary_target: String,
}

impl Drill {
    fn new() -> Arc<Self> {
        let aws = AwsWorld::new();
        aws.register("td-primary:1", "repo/auth-service:1.4.2");
        aws.register("td-dr:1", "repo/auth-service:1.4.2");
        aws.run_service(PRIMARY, "auth-service", "td-primary:1", 4);
        aws.run_service(PRIMARY, "auth-service-canary", "td-primary:1", 0);
        aws.run_service(DR, "auth-service", "td-dr:1", 0);
        aws.with(|s| {
            // Both services scale with Application Auto Scaling; the DR service's scheduled scaling is
            // already suspended by its owners.
            s.scaling
                .insert((PRIMARY.into(), "auth-service".into()), ScalingSuspension::default());
            s.scaling.insert(
                (DR.into(), "auth-service".into()),
                ScalingSuspension {
                    scheduled: true,
                    ..ScalingSuspension::default()
                },
            );
            s.databases
                .insert((PRIMARY.into(), "db".into()), Database::available(PRIMARY, "db", None));
            s.databases.insert(
                (DR.into(), "db-replica".into()),
                Database::available(DR, "db-replica", Some(arn(PRIMARY, "db"))),
            );
            for record in [
                alias("PRIMARY", PRIMARY_LB, "ZPRIMARY", Some("hc-primary")),
                alias("SECONDARY", DR_LB, "ZDR", Some("hc-dr")),
            ] {
                s.failover_records
                    .insert((record.failover.clone(), record.record_type.clone()), record);
            }
            for region in [PRIMARY, DR] {
                s.secrets.insert(
                    (region.into(), "app/db-password".into()),
                    SecretMetadata {
                        name: "app/db-password".into(),
                        arn: format!("arn:aws:secretsmanager:{region}:1:secret:app/db-password"),
                        rotation_enabled: false,
                        last_rotated: None,
                        last_changed: None,
                        created: None,
                        kms_key_id: None,
                        versions: BTreeMap::new(),
                        replicas: vec![SecretReplica {
                            region: DR.to_owned(),
                            status: "InSync".to_owned(),
                            message: None,
                        }],
                    },
                );
            }
        });
        let kill = Arc::new(Mutex::new(KillPoint::default()));
        let at = kill.clone();
        aws.after_each_mutation(move |count| {
            let kill = at.lock().unwrap();
            if kill.after == Some(count) {
                if let Some(cancel) = &kill.cancel {
                    cancel.cancel();
                }
            }
        });
        Arc::new(Self {
            aws,
            behaviour: Mutex::new(Behaviour {
                lag: Some(Some(2.0)),
                primary_lsn: Some(0x1_0000_0100),
                replayed: vec![Some(0x1_0000_0100)],
                ..Behaviour::default()
            }),
            kill,
            events: Mutex::default(),
        })
    }

    fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        self.aws.with(|s| f(&mut s.faults));
    }

    /// Kills the run right after the account saw this many mutations in all (`None`: no kill).
    fn kill_after(&self, mutations: Option<usize>) {
        self.kill.lock().unwrap().after = mutations;
    }

    fn mutations(&self) -> Vec<String> {
        self.aws.mutations()
    }

    fn primary_record(&self) -> FailoverAlias {
        self.aws
            .with(|s| s.failover_records[&("PRIMARY".to_owned(), "A".to_owned())].clone())
    }

    fn snapshot(&self) -> Snapshot {
        self.aws.with(|s| Snapshot {
            scaling: s.scaling.clone(),
            services: s
                .services
                .iter()
                .map(|(k, service)| {
                    let host = s.task_definitions[&service.task_definition]
                        .environment
                        .get("DATABASE_HOST")
                        .cloned();
                    (k.clone(), (host, service.desired))
                })
                .collect(),
            dbs: s
                .databases
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
                            db.backup_retention_days.min(1),
                        ),
                    )
                })
                .collect(),
            primary_target: s.failover_records[&("PRIMARY".to_owned(), "A".to_owned())]
                .target_dns
                .clone(),
        })
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

#[async_trait]
impl ReplicaLag for Drill {
    fn source(&self) -> &'static str {
        "fake"
    }
    async fn lag_seconds(&self) -> Result<Option<f64>, LagError> {
        Ok(self.behaviour.lock().unwrap().lag.unwrap_or(None))
    }
}

#[async_trait]
impl catch_up::ReplicationPositions for Drill {
    async fn write_marker(&self, _: &str) -> Result<catch_up::Lsn, LagError> {
        self.behaviour
            .lock()
            .unwrap()
            .primary_lsn
            .map(catch_up::Lsn)
            .ok_or_else(|| LagError {
                source_name: "fake",
                message: "`SUMA_DR_PRIMARY_URL` is not set".into(),
                hint: None,
            })
    }
    async fn replayed_position(&self) -> Result<Option<catch_up::Lsn>, LagError> {
        let mutations = self.aws.mutations().len();
        let mut b = self.behaviour.lock().unwrap();
        let answer = if b.replayed.len() > 1 {
            b.replayed.remove(0)
        } else {
            b.replayed[0]
        };
        b.replay_reads.push((mutations, answer));
        Ok(answer.map(catch_up::Lsn))
    }
    async fn other_sessions(&self) -> Result<Vec<String>, LagError> {
        let mut b = self.behaviour.lock().unwrap();
        Ok(match b.sessions.len() {
            0 => Vec::new(),
            1 => b.sessions[0].clone(),
            _ => b.sessions.remove(0),
        })
    }
}

#[async_trait]
impl ServiceProbe for Drill {
    async fn ready(&self, _: &str) -> Result<u16, String> {
        if self.behaviour.lock().unwrap().ready_fails {
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
impl EventSink for Drill {
    async fn event(&self, title: &str, _: &str, _: bool) -> Result<(), String> {
        self.events.lock().unwrap().push(title.to_owned());
        Ok(())
    }
}

impl Gate for Drill {
    fn confirm(&self, _: &str) -> bool {
        !self.behaviour.lock().unwrap().gate_declines
    }
}

fn environment() -> Environment {
    let yaml = format!(
        "primary_region: {PRIMARY}\ndr_region: {DR}\nurl: 'http://primary.example'\necs: {{ cluster: c, service: auth-service, canary_service: auth-service-canary, container: auth-service, container_port: 8080, desired_count: 4, dr: {{ cluster: c, service: auth-service }} }}\nalb: {{ listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/x/1/2', rule_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/x/1/2/3', stable_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/s/1', canary_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/c/1', dr_load_balancer_dns: '{DR_LB}' }}\nrds: {{ primary: {{ identifier: db, region: {PRIMARY} }}, replica: {{ identifier: db-replica, region: {DR} }} }}\ndns: {{ hosted_zone_id: Z, record_name: auth.example.com, primary_health_check_id: hc-primary, secondary_health_check_id: hc-dr }}\nsecrets: [{{ id: app/db-password, kind: db-password }}]\nmetrics: {{ provider: prometheus, prometheus_url: 'http://127.0.0.1:9' }}\ndr: {{ rto: 15m, rpo: 5m, replica_lag: postgres, dr_url: 'http://dr.example' }}\n"
    );
    serde_norway::from_str(&yaml).unwrap()
}

struct Harness {
    world: Arc<Drill>,
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
            world: Drill::new(),
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            locks: Locks::new(table.clone(), Duration::from_secs(60)),
            table,
            _dir: dir,
        }
    }

    fn engine(&self) -> Engine {
        let cancel = CancellationToken::new();
        self.world.kill.lock().unwrap().cancel = Some(cancel.clone());
        Engine {
            environment: "drill".into(),
            env: environment(),
            aws: self.world.aws.apis(),
            lag: self.world.clone(),
            replication: self.world.clone(),
            failback_replication: {
                let world = self.world.clone();
                Arc::new(move |dr: &str, primary: &str| {
                    let mut b = world.behaviour.lock().unwrap();
                    b.failback_endpoints.push(format!("{dr} {primary}"));
                    if b.failback_unreadable {
                        return Err("`SUMA_DR_REPLICA_URL` and `SUMA_DR_PRIMARY_URL` must both be set".to_owned());
                    }
                    drop(b);
                    Ok(world.clone() as Arc<dyn catch_up::ReplicationPositions>)
                })
            },
            probe: self.world.clone(),
            events: Some(self.world.clone()),
            gate: self.world.clone(),
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
        self.completed(Direction::Failover).await
    }

    /// A failover, then a failback; the failback.
    async fn failed_back(&self) -> Operation {
        self.failover().await;
        self.completed(Direction::Failback).await
    }

    async fn completed(&self, direction: Direction) -> Operation {
        let mut op = self.op(direction);
        assert_eq!(self.run(&mut op, false).await, Outcome::Completed);
        op
    }
}

fn failed_over_state(world: &Drill) {
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
    let record = h.world.primary_record();
    assert_eq!(record.target_zone_id, "ZDR");
    assert_eq!(record.health_check_id.as_deref(), Some("hc-dr"));
    assert_eq!(
        record.set_identifier, "auth-primary",
        "the PRIMARY record is replaced, not added"
    );
    assert_eq!(h.world.events.lock().unwrap().as_slice(), ["DR failover of drill"]);
    // Exactly these calls changed anything, in this order (the scale-up may interleave with the promotion).
    let mutations = h.world.mutations();
    // The canary already runs 0 tasks, so only the stable service is drained. DR scales up on the
    // revision naming the replica, registered before (never on one that may name the old primary).
    let expected = [
        "scaling eu-west-1 auth-service suspended in=true out=true scheduled=true",
        "update eu-west-1 auth-service ",
        "register td-dr:2 ",
        "scaling eu-central-1 auth-service suspended in=true out=true scheduled=true",
        "promote eu-central-1 db-replica",
        "update eu-central-1 auth-service td-dr:2 4",
        "modify eu-central-1 db-replica ",
        "update eu-central-1 auth-service td-dr:2 4",
        "dns PRIMARY A -> auth-dr",
        "scaling eu-central-1 auth-service suspended in=false out=false scheduled=true",
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
    assert_eq!(t.steps.len(), 8);
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
    h.world.faults(|f| {
        f.unreachable_regions.insert(PRIMARY.into());
    });
    let mut op = h.op(Direction::Failover);
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    assert_eq!(op.steps[1].status, StepStatus::Skipped);
    assert_eq!(op.fact("primary_unreachable"), Some(&json!(true)));
    assert_eq!(h.world.snapshot().primary_target, DR_LB);
}

#[tokio::test(start_paused = true)]
async fn a_degraded_primary_region_stops_the_drain_unless_data_loss_was_accepted() {
    let h = Harness::new();
    h.world.faults(|f| {
        f.degraded_regions.insert(PRIMARY.into());
    });
    // Its tasks may still be writing: without acceptance the failover stops at the drain, with the way on.
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "drain-primary" && reason.contains("--accept-data-loss")),
        "{outcome:?}"
    );
    assert_eq!(h.world.snapshot().primary_target, PRIMARY_LB, "traffic did not move");

    // Accepted at the start: it goes on past the region and journals what it could not fence.
    let h = Harness::new();
    h.world.faults(|f| {
        f.degraded_regions.insert(PRIMARY.into());
    });
    let mut op = h.op(Direction::Failover);
    op.parameters.insert("accept_data_loss".into(), json!(true));
    op.parameters.insert("reason".into(), json!("eu-west-1 answers 503"));
    assert_eq!(h.run(&mut op, false).await, Outcome::Completed);
    assert_eq!(op.steps[1].status, StepStatus::Skipped);
    assert_eq!(
        op.fact("unfenced"),
        Some(&json!(["auth-service", "auth-service-canary"]))
    );
    assert!(
        op.fact("unfenced_because").unwrap().as_str().unwrap().contains("503"),
        "{:?}",
        op.fact("unfenced_because")
    );
    assert_eq!(h.world.snapshot().primary_target, DR_LB);
}

#[tokio::test(start_paused = true)]
async fn a_promotion_stuck_in_modifying_stops_and_resumes() {
    let h = Harness::new();
    h.world.faults(|f| f.promotion_stuck = true);
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

    h.world.faults(|f| f.promotion_stuck = false);
    let mut resumed = recorded;
    assert_eq!(h.run(&mut resumed, true).await, Outcome::Completed);
    failed_over_state(&h.world);
}

#[tokio::test(start_paused = true)]
async fn a_dns_change_stuck_pending_stops_and_resumes() {
    let h = Harness::new();
    h.world.faults(|f| f.dns_stuck = true);
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "switch-dns" && reason.contains("PENDING")),
        "{outcome:?}"
    );
    h.world.faults(|f| f.dns_stuck = false);
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
    // Killed right after the first drain call (the second mutation: the autoscaling's suspension is the first).
    h.world.kill_after(Some(2));
    let mut op = h.op(Direction::Failover);
    assert!(matches!(h.run(&mut op, false).await, Outcome::Interrupted { .. }));
    h.world.kill_after(None);
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
        h.world.kill_after(Some(base + k));
        let mut op = h.op(Direction::Failback);
        assert!(matches!(h.run(&mut op, false).await, Outcome::Interrupted { .. }));
        h.world.kill_after(None);
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
        h.world.kill_after(Some(offset + k));
        let mut op = h.op(direction);
        let outcome = h.run(&mut op, false).await;
        assert!(
            matches!(outcome, Outcome::Interrupted { .. }),
            "{direction:?} kill {k}: {outcome:?}"
        );
        h.world.kill_after(None);
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
    let op = h.failed_back().await;
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
        h.world.primary_record(),
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
    let op = h.failed_back().await;
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
        availability_zone: None,
        placement: Placement::default(),
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
    let world = Drill::new();
    let replica = world.aws.db(DR, "db-replica");
    let primary_db = world.aws.db(PRIMARY, "db");
    let digest = "sha256:0a1b2c3d4e5f00112233445566778899aabbccddeeff00112233445566778899".to_owned();
    Observed {
        primary_service: Ok(ServiceView {
            desired: 4,
            running: 4,
            task_definition: td(
                "auth-service",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2",
            ),
            digests: ImageDigests::Running(vec![digest.clone()]),
        }),
        // A pilot light in another region: the image replicated to its registry.
        dr_service: Ok(ServiceView {
            desired: 0,
            running: 0,
            task_definition: td(
                "auth-service",
                "123456789012.dkr.ecr.eu-central-1.amazonaws.com/auth-service:1.4.2",
            ),
            digests: ImageDigests::Registry(digest),
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
            Ok(world
                .aws
                .with(|s| s.secrets[&(PRIMARY.to_owned(), "app/db-password".to_owned())].clone())),
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
    let report = check::evaluate("drill", &env, &observed(), &rto::estimate("drill", &env, &[]));
    assert!(!report.failed(), "{:#?}", report.items);
    assert!(report.estimated_rto_secs <= 900);
    // A pilot light (no standby tasks) starts cold: within the RTO but close to it.
    assert_eq!(status_of(&report, "estimated failover time"), CheckStatus::Warn);
    assert_eq!(report.status, CheckStatus::Warn);
    let mut warm = environment();
    warm.ecs.dr.standby_count = 2;
    let report = check::evaluate("drill", &warm, &observed(), &rto::estimate("drill", &warm, &[]));
    assert_eq!(report.status, CheckStatus::Pass, "{:#?}", report.items);
    assert_eq!(report.items.len(), 13, "{:#?}", report.items);
}

#[test]
fn each_readiness_problem_fails_its_own_check() {
    let env = environment();
    let rto = rto::estimate("drill", &env, &[]);
    let eval = |seen: &Observed| check::evaluate("drill", &env, seen, &rto);

    let mut seen = observed();
    seen.dr_service.as_mut().unwrap().digests = ImageDigests::Registry("sha256:another".into());
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

    // Secrets Manager's replication status: (status, message, expected, words of the value).
    let cases = [
        ("InSync", None, CheckStatus::Pass, "in sync"),
        ("InProgress", None, CheckStatus::Warn, "in progress"),
        (
            "Failed",
            Some("Replication failed: Secret name app/db-password already exists in region eu-central-1."),
            CheckStatus::Fail,
            "failed: Replication failed: Secret name app/db-password already exists",
        ),
    ];
    for (status, message, expected, words) in cases {
        let mut seen = observed();
        let primary = seen.secrets[0].1.as_mut().unwrap();
        primary.replicas = vec![SecretReplica {
            region: DR.to_owned(),
            status: status.to_owned(),
            message: message.map(str::to_owned),
        }];
        let report = eval(&seen);
        let item = report.items.iter().find(|i| i.check == "`app/db-password`").unwrap();
        assert_eq!(item.status, expected, "{status}: {item:?}");
        assert!(item.value.contains(words), "{status}: {item:?}");
    }
    // Present in the DR region, but not as a replica of the primary's.
    let mut seen = observed();
    seen.secrets[0].1.as_mut().unwrap().replicas.clear();
    assert_eq!(status_of(&eval(&seen), "`app/db-password`"), CheckStatus::Warn);

    let mut slow = environment();
    slow.dr.rto = Duration::from_secs(300);
    let report = check::evaluate("drill", &slow, &observed(), &rto::estimate("drill", &slow, &[]));
    assert_eq!(status_of(&report, "estimated failover time"), CheckStatus::Fail);
}

#[test]
fn a_failed_over_environment_warns_where_traffic_is() {
    let env = environment();
    let mut seen = observed();
    seen.dns.as_mut().unwrap()[0].targets = vec![DR_LB.into()];
    let report = check::evaluate("drill", &env, &seen, &rto::estimate("drill", &env, &[]));
    assert_eq!(status_of(&report, "traffic served by"), CheckStatus::Warn);
}

#[tokio::test(start_paused = true)]
async fn a_replica_is_adopted_only_when_it_replicates_from_the_expected_source() {
    let h = Harness::new();
    let engine = h.engine();
    let op = h.op(Direction::Failback);
    let guard = h.locks.acquire(&op, false).await.unwrap();
    let run = Run::new(&h.journal, &guard, engine.reporter.as_ref(), &engine.cancel);
    let source = h.world.aws.db(PRIMARY, "db");
    let target = |identifier: &str| crate::config::DbInstanceRef {
        identifier: identifier.to_owned(),
        region: crate::config::AwsRegion::try_from(DR.to_owned()).unwrap(),
        placement: None,
    };
    let mutations = h.world.mutations().len();

    // `db-replica` replicates from the primary: an earlier attempt's, adopted without a call.
    let adopted = engine
        .create_replica_of(
            &run,
            &target("db-replica"),
            &source,
            &engine.env.primary_region,
            &Placement::default(),
        )
        .await;
    assert_eq!(adopted.unwrap().identifier, "db-replica");
    assert_eq!(h.world.mutations().len(), mutations, "nothing created");

    // A standalone instance under the name is someone else's: refused, named, and left alone.
    h.world.aws.with(|s| {
        s.databases
            .insert((DR.into(), "foreign".into()), Database::available(DR, "foreign", None));
    });
    let Err(refused) = engine
        .create_replica_of(
            &run,
            &target("foreign"),
            &source,
            &engine.env.primary_region,
            &Placement::default(),
        )
        .await
    else {
        panic!("a standalone instance was adopted as the replica");
    };
    let text = format!("{refused:?}");
    assert!(
        text.contains("`foreign` in eu-central-1 exists but does not replicate from `db`")
            && text.contains("standalone"),
        "{text}"
    );
    assert_eq!(h.world.mutations().len(), mutations, "nothing changed");
    guard.release().await.unwrap();
}

/// The drill's records with an AAAA twin of each (`with_secondary_twin: false` leaves the SECONDARY
/// without one).
fn with_aaaa_twins(h: &Harness, with_secondary_twin: bool) {
    let twin = |mut record: FailoverAlias| {
        record.record_type = "AAAA".into();
        record
    };
    h.world.aws.with(|s| {
        let mut twins = vec![twin(alias("PRIMARY", PRIMARY_LB, "ZPRIMARY", Some("hc-primary")))];
        if with_secondary_twin {
            twins.push(twin(alias("SECONDARY", DR_LB, "ZDR", Some("hc-dr"))));
        }
        for record in twins {
            s.failover_records
                .insert((record.failover.clone(), record.record_type.clone()), record);
        }
    });
}

fn primary_targets(h: &Harness) -> Vec<(String, String)> {
    h.world.aws.with(|s| {
        s.failover_records
            .values()
            .filter(|r| r.failover == "PRIMARY")
            .map(|r| (r.record_type.clone(), r.target_dns.clone()))
            .collect()
    })
}

#[tokio::test(start_paused = true)]
async fn an_a_record_and_its_aaaa_twin_move_together_and_come_back_together() {
    let h = Harness::new();
    with_aaaa_twins(&h, true);
    h.failover().await;
    assert_eq!(
        primary_targets(&h),
        [("A".into(), DR_LB.into()), ("AAAA".into(), DR_LB.into())]
    );
    let dns_changes: Vec<String> = h
        .world
        .mutations()
        .into_iter()
        .filter(|m| m.starts_with("dns "))
        .collect();
    assert_eq!(
        dns_changes,
        [format!("dns PRIMARY A -> {DR_LB}, PRIMARY AAAA -> {DR_LB}")],
        "one change, all or none"
    );
    h.completed(Direction::Failback).await;
    assert_eq!(
        primary_targets(&h),
        [("A".into(), PRIMARY_LB.into()), ("AAAA".into(), PRIMARY_LB.into())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_primary_twin_without_its_secondary_is_refused_before_anything_changes() {
    let h = Harness::new();
    with_aaaa_twins(&h, false);
    let mut op = h.op(Direction::Failover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("PRIMARY AAAA record without a SECONDARY one")),
        "{outcome:?}"
    );
    assert!(h.world.mutations().is_empty(), "{:?}", h.world.mutations());
}

#[tokio::test(start_paused = true)]
async fn a_switchover_promotes_only_once_the_replica_has_replayed_the_marker_read_after_the_drain() {
    let h = Harness::new();
    let marker = 0x1_0000_0100;
    // At readiness the replica is replaying; after the drain it is still behind for three reads.
    h.world.behave(|b| {
        // Two draining tasks still hold sessions for two polls after the drain.
        b.sessions = vec![vec!["auth from 10.0.1.5".into(), "auth from 10.0.1.6".into()]; 2];
        b.sessions.push(Vec::new());
        b.primary_lsn = Some(marker);
        b.replayed = vec![
            Some(marker - 0x500),
            Some(marker - 0x300),
            Some(marker - 0x10),
            Some(marker - 1),
            Some(marker),
        ];
    });
    let op = h.completed(Direction::Switchover).await;
    failed_over_state(&h.world);
    assert_eq!(h.world.events.lock().unwrap().as_slice(), ["DR switchover of drill"]);
    let names: Vec<&str> = op.plan.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "readiness",
            "drain-primary",
            "catch-up",
            "promote-and-scale",
            "repoint-dr-service",
            "switch-dns",
            "verify",
            "resume-scaling",
            "announce"
        ]
    );
    assert_eq!(op.fact("marker_lsn"), Some(&json!("1/100")));
    assert_eq!(op.fact("replayed_lsn"), Some(&json!("1/100")));
    assert_eq!(
        op.fact("sessions_closed_after_ms"),
        Some(&json!(200)),
        "two polls of 100 ms"
    );
    // Every read after the drain came before the promotion: the only mutation by then was the drain,
    // and the promotion followed the first read at the marker.
    let reads = h.world.behaviour.lock().unwrap().replay_reads.clone();
    assert_eq!(reads.len(), 5, "{reads:?}");
    assert!(reads[1..].iter().all(|(mutations, _)| *mutations == 2), "{reads:?}");
    assert_eq!(reads.last().unwrap().1, Some(marker));
    let mutations = h.world.mutations();
    assert!(
        mutations[1].starts_with("update eu-west-1 auth-service "),
        "{mutations:#?}"
    );
    assert!(mutations[2].starts_with("register td-dr:2"), "{mutations:#?}");
    assert!(
        mutations[4].starts_with("promote eu-central-1 db-replica"),
        "{mutations:#?}"
    );
    let recorded = h.journal.load(&op.id).await.unwrap().unwrap();
    assert_eq!(recorded.status, OperationStatus::Succeeded);
    // A failback can follow a switchover.
    assert_eq!(
        h.completed(Direction::Failback).await.status,
        OperationStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn a_switchover_is_refused_before_any_change_without_both_regions_and_both_positions() {
    type Setup = fn(&Drill);
    let cases: [(&str, Setup, &str); 5] = [
        (
            "unreachable primary region",
            |w| {
                w.faults(|f| {
                    f.unreachable_regions.insert(PRIMARY.into());
                })
            },
            "does not answer",
        ),
        (
            "degraded primary region",
            |w| {
                w.faults(|f| {
                    f.degraded_regions.insert(PRIMARY.into());
                })
            },
            "does not answer",
        ),
        (
            "no marker can be written",
            |w| w.behave(|b| b.primary_lsn = None),
            "SUMA_DR_PRIMARY_URL",
        ),
        (
            "replica not in recovery",
            |w| w.behave(|b| b.replayed = vec![None]),
            "not in recovery",
        ),
        (
            "lag beyond the RPO",
            |w| w.behave(|b| b.lag = Some(Some(900.0))),
            "never accepts data loss",
        ),
    ];
    for (case, setup, says) in cases {
        let h = Harness::new();
        setup(&h.world);
        let mut op = h.op(Direction::Switchover);
        let outcome = h.run(&mut op, false).await;
        assert!(
            matches!(&outcome, Outcome::Refused { reason } if reason.contains(says)),
            "{case}: {outcome:?}"
        );
        assert!(h.world.mutations().is_empty(), "{case}: {:?}", h.world.mutations());
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_never_catches_up_stops_the_switchover_before_the_promotion_and_abort_restores_the_primary() {
    let h = Harness::new();
    h.world
        .behave(|b| b.replayed = vec![Some(0x1_0000_0000), Some(0x1_0000_0000)]);
    let mut op = h.op(Direction::Switchover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "catch-up" && reason.contains("256 bytes of WAL behind")),
        "{outcome:?}"
    );
    assert_eq!(
        h.world.mutations().len(),
        2,
        "only the scaling's suspension and the drain: {:?}",
        h.world.mutations()
    );
    assert_eq!(
        op.fact("marker_lsn"),
        Some(&json!("1/100")),
        "the marker is journaled before the wait"
    );

    // Replication broken under it (the server left recovery): stopped too, nothing promoted.
    let h2 = Harness::new();
    h2.world.behave(|b| b.replayed = vec![Some(0x1_0000_0100), None]);
    let mut op2 = h2.op(Direction::Switchover);
    let outcome = h2.run(&mut op2, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "catch-up" && reason.contains("not in recovery")),
        "{outcome:?}"
    );

    // Abort gives the primary its tasks back: nothing was promoted.
    let engine = h.engine();
    let guard = h.locks.acquire(&op, true).await.unwrap();
    let outcome = engine.abort(&mut op, &guard, "tester@host").await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Aborted { note, .. } if note.contains("scaled back to 4")),
        "{outcome:?}"
    );
    let s = h.world.snapshot();
    assert_eq!(s.services[&(PRIMARY.to_owned(), "auth-service".to_owned())].1, 4);
    assert_eq!(s.primary_target, PRIMARY_LB);
}

#[tokio::test(start_paused = true)]
async fn a_session_left_on_the_primary_stops_the_switchover_before_the_marker_naming_it() {
    let h = Harness::new();
    h.world
        .behave(|b| b.sessions = vec![vec!["auth from 10.1.0.9 (auth-service)".into()]]);
    let mut op = h.op(Direction::Switchover);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "catch-up" && reason.contains("auth from 10.1.0.9 (auth-service)") && reason.contains("DR standby task")),
        "{outcome:?}"
    );
    assert_eq!(op.fact("marker_lsn"), None, "no marker while a writer is connected");
    assert_eq!(
        h.world.mutations().len(),
        2,
        "only the scaling's suspension and the drain: {:?}",
        h.world.mutations()
    );
}

#[tokio::test(start_paused = true)]
async fn autoscaling_is_suspended_while_capacity_moves_and_restored_as_it_was_after_the_failback() {
    let h = Harness::new();
    let scaling = |region: &str| {
        h.world
            .aws
            .with(|s| s.scaling[&(region.to_owned(), "auth-service".to_owned())])
    };
    let dr_before = scaling(DR);
    let failover = h.failover().await;
    // The DR service scales again as before; the drained primary must not scale back up in the region
    // traffic left, so it stays suspended.
    assert_eq!(scaling(DR), dr_before);
    assert_eq!(scaling(PRIMARY), ScalingSuspension::ALL);
    assert_eq!(
        failover.fact("primary_scaling_state"),
        Some(&json!("left suspended until the failback"))
    );
    h.completed(Direction::Failback).await;
    assert_eq!(scaling(PRIMARY), ScalingSuspension::default(), "as before the failover");
    assert_eq!(scaling(DR), dr_before);

    // An abort before the promotion gives the primary its scaling back with its tasks.
    let h = Harness::new();
    let mut op = h.op(Direction::Failover);
    h.world.kill_after(Some(2));
    assert!(matches!(h.run(&mut op, false).await, Outcome::Interrupted { .. }));
    assert_eq!(
        h.world
            .aws
            .with(|s| s.scaling[&(PRIMARY.to_owned(), "auth-service".to_owned())]),
        ScalingSuspension::ALL
    );
    let engine = h.engine();
    let guard = h.locks.acquire(&op, true).await.unwrap();
    engine.abort(&mut op, &guard, "tester@host").await.unwrap();
    assert_eq!(
        h.world
            .aws
            .with(|s| s.scaling[&(PRIMARY.to_owned(), "auth-service".to_owned())]),
        ScalingSuspension::default()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failback_builds_each_instance_where_the_one_it_replaces_lived_with_the_configuration_over_it() {
    let h = Harness::new();
    h.failed_back().await;
    let created: Vec<String> = h
        .world
        .mutations()
        .into_iter()
        .filter(|m| m.starts_with("create-replica"))
        .collect();
    assert_eq!(created.len(), 2, "{created:#?}");
    // The new primary in the primary region, like the stale primary; the rebuilt replica in the DR
    // region, like the DR database it replaces: each region's key, subnets and groups.
    for (line, region) in created.iter().zip([PRIMARY, DR]) {
        assert!(
            line.contains(&format!("key=arn:aws:kms:{region}:123456789012:key/db-{region}"))
                && line.contains(&format!("subnets=auth-db-{region}"))
                && line.contains(&format!("groups=sg-db-{region}"))
                && line.contains("parameters=auth-postgres15 protected=true iam=true"),
            "{line}"
        );
    }

    // The configuration overrides what is copied.
    let h = Harness::new();
    h.failover().await;
    let mut env = environment();
    env.rds.primary.placement =
        Some(serde_norway::from_str("{ parameter_group: auth-postgres16, security_group_ids: [sg-new] }").unwrap());
    let engine = Engine { env, ..h.engine() };
    let mut op = h.op(Direction::Failback);
    let guard = h.locks.acquire(&op, false).await.unwrap();
    assert_eq!(engine.run(&mut op, &guard).await.unwrap(), Outcome::Completed);
    let line = h
        .world
        .mutations()
        .into_iter()
        .find(|m| m.starts_with("create-replica eu-west-1"))
        .unwrap();
    assert!(line.contains("groups=sg-new parameters=auth-postgres16"), "{line}");
    assert!(
        line.contains("subnets=auth-db-eu-west-1"),
        "copied where not configured: {line}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failback_with_nowhere_to_put_an_instance_is_refused_before_any_change() {
    let h = Harness::new();
    h.failover().await;
    // The stale primary is gone (its region was rebuilt): nothing to copy from, nothing configured.
    h.world.aws.with(|s| {
        s.databases.remove(&(PRIMARY.to_owned(), "db".to_owned()));
    });
    let before = h.world.mutations().len();
    let mut op = h.op(Direction::Failback);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("`rds.primary.placement.kms_key_id`") && reason.contains("`rds.primary.placement.subnet_group`")),
        "{outcome:?}"
    );
    assert_eq!(h.world.mutations().len(), before, "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn a_failback_promotes_the_rebuilt_primary_only_once_it_has_replayed_the_marker_written_on_dr() {
    let h = Harness::new();
    h.failover().await;
    let marker = 0x2_0000_0040;
    h.world.behave(|b| {
        // The DR tasks' sessions close one poll after the drain.
        b.sessions = vec![vec!["auth from 10.2.0.7 (auth-service)".into()], Vec::new()];
        b.primary_lsn = Some(marker);
        b.replayed = vec![Some(marker - 0x40), Some(marker - 1), Some(marker)];
        b.replay_reads.clear();
    });
    let op = h.completed(Direction::Failback).await;
    let names: Vec<&str> = op.plan.iter().map(|s| s.name.as_str()).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(
        at("drain-dr") < at("catch-up") && at("catch-up") < at("promote-primary"),
        "{names:?}"
    );
    assert!(at("restore-replica") < at("standby-dr"), "{names:?}");
    assert_eq!(op.fact("marker_lsn"), Some(&json!("2/40")));
    assert_eq!(op.fact("replayed_lsn"), Some(&json!("2/40")));
    // Both databases are read where RDS says they are: the DR database at readiness (before anything
    // changes), then the DR database and the rebuilt primary at the catch-up.
    let (dr, primary) = (
        format!("{}:5432", endpoint(DR, "db-replica")),
        format!("{}:5432", endpoint(PRIMARY, "db")),
    );
    assert_eq!(
        h.world.behaviour.lock().unwrap().failback_endpoints,
        [format!("{dr} {dr}"), format!("{dr} {primary}")]
    );
    // Every read of the rebuilt primary's position came before its promotion.
    let mutations = h.world.mutations();
    let promoted = mutations
        .iter()
        .position(|m| m.starts_with("promote eu-west-1 db"))
        .unwrap_or_else(|| panic!("{mutations:#?}"));
    let reads = h.world.behaviour.lock().unwrap().replay_reads.clone();
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(
        reads.iter().all(|(seen, _)| *seen <= promoted),
        "{reads:?} {mutations:#?}"
    );
    // DR was drained to zero, standby included, before the marker.
    let drained = mutations
        .iter()
        .position(|m| m.starts_with("update eu-central-1 auth-service ") && m.ends_with(" 0"))
        .unwrap_or_else(|| panic!("{mutations:#?}"));
    assert!(drained < promoted);
    assert_eq!(
        op.steps.iter().find(|s| s.name == "standby-dr").map(|s| s.status),
        Some(StepStatus::Skipped),
        "a pilot light has no standby to bring back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rebuilt_primary_that_is_not_replaying_stops_the_failback_before_its_promotion_and_abort_gives_dr_its_tasks()
{
    let h = Harness::new();
    h.failover().await;
    h.world.behave(|b| b.replayed = vec![None]);
    let mut op = h.op(Direction::Failback);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Stopped { at_step, reason } if at_step == "catch-up" && reason.contains("not in recovery") && reason.contains("`db`")),
        "{outcome:?}"
    );
    assert!(
        !h.world.mutations().iter().any(|m| m.starts_with("promote eu-west-1")),
        "{:#?}",
        h.world.mutations()
    );
    let engine = h.engine();
    let guard = h.locks.acquire(&op, true).await.unwrap();
    let outcome = engine.abort(&mut op, &guard, "tester@host").await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Aborted { note, .. } if note.contains("DR region serves again")),
        "{outcome:?}"
    );
    let s = h.world.snapshot();
    assert_eq!(s.services[&(DR.to_owned(), "auth-service".to_owned())].1, 4);
    assert_eq!(s.primary_target, DR_LB);
}

#[tokio::test(start_paused = true)]
async fn a_failback_that_could_not_compare_the_databases_is_refused_before_it_changes_anything() {
    let h = Harness::new();
    h.failover().await;
    let before = h.world.mutations().len();
    h.world.behave(|b| b.failback_unreadable = true);
    let mut op = h.op(Direction::Failback);
    let outcome = h.run(&mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("cannot be read for the catch-up") && reason.contains("SUMA_DR_PRIMARY_URL")),
        "{outcome:?}"
    );
    assert_eq!(h.world.mutations().len(), before, "{:#?}", h.world.mutations());
}
