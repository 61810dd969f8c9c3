//! Cross-region disaster recovery: the readiness check (`check`), and the switchover, failover and
//! failback engine.
//!
//! The two ways to the DR region are named as AWS names them. A **switchover** is planned and loses no
//! data: it refuses a primary region that does not answer, drains the primary's services until no task
//! runs, reads the primary's WAL position as a marker and waits until the replica has replayed up to it
//! ([`catch_up`]), and only then promotes. A **failover** is unplanned: the primary region is degraded, so
//! it drains what answers, may go on past a region that does not (journaling what it could not fence), and
//! its data loss is bounded by the replica lag it measured. After the promotion both run the same steps.
//!
//! A failover drains the primary region's service (so two regions never write at once), promotes the DR
//! replica while the DR service scales up, points the DR service at the promoted database, switches the
//! Route 53 PRIMARY record to the DR load balancer and waits until the change is INSYNC, verifies the DR
//! endpoint with a read and a write, and posts an event. A failback runs the same switch in reverse after
//! rebuilding a replica in the primary region, with a confirmation gate before traffic moves, and restores
//! the cross-region replica so that `suma dr check` passes again.
//!
//! Every step is journaled under the environment lock and idempotent (it looks before it acts), so a crash
//! at any point is continued by `suma dr resume`. A step that fails stops the operation where it is instead of
//! undoing anything: a promoted database cannot be demoted, and the journal says what is left to do.

pub mod catch_up;
pub mod check;
pub mod dns;
mod failback;
pub mod image_parity;
pub mod lag;
mod probes;
pub mod rto;
mod scaling;
#[cfg(feature = "sdk")]
pub mod setup;
mod steps;
mod switchover;

pub use probes::{DatadogEvents, HttpServiceProbe};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::aws::ecs::ServiceUpdate;
use crate::aws::rds::DbInstance;
use crate::aws::AwsApis;
use crate::config::{AwsRegion, Environment};
use crate::engine::{self, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{Decision, Journal, Operation, PlannedStep};
use crate::report::Reporter;
use lag::ReplicaLag;

pub const FAILOVER: &str = "dr-failover";
pub const SWITCHOVER: &str = "dr-switchover";
pub const FAILBACK: &str = "dr-failback";

/// Which way traffic moves, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Unplanned, to the DR region: data loss bounded by the replica lag.
    Failover,
    /// Planned, to the DR region: zero data loss.
    Switchover,
    /// Back to the primary region.
    Failback,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Self::Failover, Self::Switchover, Self::Failback];

    pub fn kind(self) -> &'static str {
        match self {
            Self::Failover => FAILOVER,
            Self::Switchover => SWITCHOVER,
            Self::Failback => FAILBACK,
        }
    }

    /// Whether it moves traffic to the DR region (a failback can follow it).
    pub fn is_away(self) -> bool {
        self != Self::Failback
    }
}

/// Whether `kind` is an operation that moved traffic to the DR region.
pub fn is_away_kind(kind: &str) -> bool {
    kind == FAILOVER || kind == SWITCHOVER
}

/// One of the two services a switch moves: the primary region's or the DR region's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// The DR service (a repoint names the promoted replica).
    Dr,
    /// The primary service (a failback's repoint names the primary database).
    Primary,
}

impl Side {
    /// The service's region, cluster and name.
    fn service(self, env: &Environment) -> (&AwsRegion, &str, &str) {
        match self {
            Self::Dr => (&env.dr_region, &env.ecs.dr.cluster, &env.ecs.dr.service),
            Self::Primary => (&env.primary_region, &env.ecs.cluster, &env.ecs.service),
        }
    }

    /// The fact its Application Auto Scaling suspension is journaled under before suma moves it.
    fn scaling_fact(self) -> &'static str {
        match self {
            Self::Dr => "dr_scaling",
            Self::Primary => "primary_scaling",
        }
    }
}

/// A planned step with the time it is expected to take, for the RTO estimate.
fn step(name: &str, detail: String) -> PlannedStep {
    PlannedStep {
        name: name.to_owned(),
        detail,
    }
}

/// Expected duration of a step, from AWS's documented and observed times: promotion of a replica takes
/// minutes, an ECS rollout a few, a Route 53 change about a minute to be INSYNC plus the records' TTL.
pub fn step_estimate(name: &str, env: &Environment) -> Duration {
    let secs = match name {
        "readiness" => 20,
        "drain-primary" | "drain-dr" => 60,
        // Replaying what was in flight when the drain finished: seconds on a healthy replica.
        "catch-up" => 10,
        // The scale-up runs during the promotion, so the longer of the two counts.
        "promote-and-scale" | "promote-primary" => 300,
        "repoint-dr-service" | "repoint-primary-service" => {
            if env.ecs.dr.standby_count == 0 {
                240
            } else {
                180
            }
        }
        "switch-dns" => 60 + 60,
        "verify" => 15,
        "announce" | "resume-scaling" => 2,
        "create-primary-replica" | "restore-replica" => 1200,
        "standby-dr" => 180,
        _ => 30,
    };
    Duration::from_secs(secs)
}

/// The step list of a failover or failback, with the resources each step touches.
pub fn plan(direction: Direction, environment: &str, env: &Environment) -> Vec<PlannedStep> {
    let ecs = &env.ecs;
    let (p, d) = (&env.primary_region, &env.dr_region);
    let primary_db = &env.rds.primary.identifier;
    let replica = env
        .rds
        .replica
        .as_ref()
        .map_or("(no replica configured)", |r| r.identifier.as_str());
    let dr_lb = env
        .alb
        .dr_load_balancer_dns
        .as_deref()
        .unwrap_or("(alb.dr_load_balancer_dns)");
    let record = &env.dns.record_name;
    let host_var = &env.dr.database_host_variable;
    match direction {
        Direction::Switchover => {
            let mut steps = plan(Direction::Failover, environment, env);
            for step in &mut steps {
                match step.name.as_str() {
                    "readiness" => {
                        step.detail = format!(
                            "{p} answers, replica `{replica}` available and replaying, its lag within the RPO ({}); a marker can be written on the primary and the replica's position read; record the DNS and capacity before",
                            humantime::format_duration(env.dr.rpo)
                        )
                    }
                    "drain-primary" => {
                        step.detail = format!(
                            "scale `{}` and `{}` in `{}` ({p}) to 0 and wait until no task runs (no writer is left)",
                            ecs.service, ecs.canary_service, ecs.cluster
                        )
                    }
                    "announce" => step.detail = format!("Datadog event `DR switchover of {environment}` and the timing summary"),
                    _ => {}
                }
            }
            let at = steps.iter().position(|s| s.name == "drain-primary").map_or(steps.len(), |i| i + 1);
            steps.insert(
                at,
                step(
                    "catch-up",
                    format!("wait until no session is left on the primary's database, write a marker into its WAL, wait until `{replica}` has replayed it: no acknowledged write is left behind"),
                ),
            );
            steps
        }
        Direction::Failover => vec![
            step(
                "readiness",
                format!(
                    "replica `{replica}` available and its lag within the RPO ({}); record the DNS and capacity before",
                    humantime::format_duration(env.dr.rpo)
                ),
            ),
            step(
                "drain-primary",
                format!(
                    "if {p} answers: scale `{}` and `{}` in `{}` to 0",
                    ecs.service, ecs.canary_service, ecs.cluster
                ),
            ),
            step(
                "promote-and-scale",
                format!(
                    "promote `{replica}` ({d}), wait until writable, backups and multi-AZ on; meanwhile scale `{}` in `{}` ({d}) to {}",
                    ecs.dr.service, ecs.dr.cluster, ecs.desired_count
                ),
            ),
            step(
                "repoint-dr-service",
                format!(
                    "register a revision of `{}` with {host_var} = the promoted endpoint (host:port) and roll it out",
                    ecs.dr.service
                ),
            ),
            step(
                "switch-dns",
                format!("PRIMARY record of `{record}` -> `{dr_lb}`, wait until INSYNC"),
            ),
            step(
                "verify",
                env.dr.dr_url.as_ref().map_or("no `dr.dr_url` configured: skipped".to_owned(), |u| {
                    format!("GET {} and a write through POST {}", u.join("/ready"), u.join("/api/auth/register"))
                }),
            ),
            step(
                "resume-scaling",
                format!(
                    "Application Auto Scaling of `{}` ({d}) as it was before the switch; `{}` ({p}) stays suspended until the failback",
                    ecs.dr.service, ecs.service
                ),
            ),
            step("announce", format!("Datadog event `DR failover of {environment}` and the timing summary")),
        ],
        Direction::Failback => vec![
            step(
                "readiness",
                format!("the last failover is recorded, `{replica}` ({d}) is writable, {p} answers"),
            ),
            step(
                "confirm",
                "manual confirmation before anything is renamed or traffic moves back".to_owned(),
            ),
            step(
                "rename-stale-primary",
                format!("rename the stale `{primary_db}` ({p}) out of the way (kept, not deleted)"),
            ),
            step(
                "create-primary-replica",
                format!("create `{primary_db}` ({p}) as a replica of `{replica}`, wait until available"),
            ),
            step(
                "drain-dr",
                format!(
                    "scale `{}` ({d}) to 0 and wait until no task runs (no writer is left on `{replica}`)",
                    ecs.dr.service
                ),
            ),
            step(
                "catch-up",
                format!("wait until no session is left on `{replica}`, write a marker into its WAL, wait until the rebuilt `{primary_db}` has replayed it: no acknowledged write is left behind"),
            ),
            step(
                "promote-primary",
                format!("promote `{primary_db}` ({p}), wait until writable, backups and multi-AZ on"),
            ),
            step(
                "repoint-primary-service",
                format!(
                    "register a revision of `{}` with {host_var} = `{primary_db}`'s endpoint, scale to {}",
                    ecs.service, ecs.desired_count
                ),
            ),
            step(
                "switch-dns",
                format!("PRIMARY record of `{record}` back to the primary load balancer, wait until INSYNC"),
            ),
            step(
                "restore-replica",
                format!("rename the old `{replica}` ({d}) out of the way, create it again as a replica of `{primary_db}`"),
            ),
            step(
                "standby-dr",
                if ecs.dr.standby_count == 0 {
                    "no standby (`ecs.dr.standby_count` is 0): skipped".to_owned()
                } else {
                    format!(
                        "register a revision of `{}` ({d}) with {host_var} = `{primary_db}`'s endpoint, scale to its standby of {}",
                        ecs.dr.service, ecs.dr.standby_count
                    )
                },
            ),
            step(
                "verify",
                env.url.as_ref().map_or("no `url` configured: skipped".to_owned(), |u| {
                    format!("GET {} and a write through POST {}", u.join("/ready"), u.join("/api/auth/register"))
                }),
            ),
            step(
                "resume-scaling",
                format!(
                    "Application Auto Scaling of `{}` ({p}) and `{}` ({d}) as they were before the failover",
                    ecs.service, ecs.dr.service
                ),
            ),
            step("announce", format!("Datadog event `DR failback of {environment}` and the timing summary")),
        ],
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Completed,
    /// The readiness gate said no; nothing was changed.
    Refused {
        reason: String,
    },
    /// A step failed; everything before it stands. Fix the cause and `suma dr resume`.
    Stopped {
        at_step: String,
        reason: String,
    },
    Aborted {
        by: String,
        note: String,
    },
    /// Ctrl-C or a lost lease: `suma dr resume` continues it.
    Interrupted {
        at_step: String,
    },
}

pub use crate::engine::EngineError;

/// Verifies an endpoint after the switch.
#[async_trait]
pub trait ServiceProbe: Send + Sync {
    /// `GET base/ready` answers 2xx.
    async fn ready(&self, base: &str) -> Result<u16, String>;
    /// A write through the service (a registration) is accepted.
    async fn write(&self, base: &str) -> Result<u16, String>;
}

/// Posts the operation's event (Datadog in production).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn event(&self, title: &str, text: &str, success: bool) -> Result<(), String>;
}

/// The manual gate of a failback before traffic moves back.
pub trait Gate: Send + Sync {
    fn confirm(&self, question: &str) -> bool;
}

/// Says yes (`--yes`).
pub struct Yes;

impl Gate for Yes {
    fn confirm(&self, _: &str) -> bool {
        true
    }
}

/// Everything the engine talks to.
pub struct Engine {
    pub environment: String,
    pub env: Environment,
    pub aws: Arc<dyn AwsApis>,
    pub lag: Arc<dyn ReplicaLag>,
    /// The WAL positions a switchover compares.
    pub replication: Arc<dyn catch_up::ReplicationPositions>,
    /// The WAL positions a failback's catch-up compares, given the endpoints (`host:port`) of the DR
    /// instance and of the rebuilt primary-region instance, which exists only once the failback created it.
    pub failback_replication: catch_up::FailbackPositions,
    pub probe: Arc<dyn ServiceProbe>,
    pub events: Option<Arc<dyn EventSink>>,
    pub gate: Arc<dyn Gate>,
    pub journal: Journal,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: CancellationToken,
    /// Upper bound of one wait (promotion, rollout, DNS change).
    pub wait_timeout: Duration,
    pub poll: Duration,
}

type Facts = engine::Facts;

fn fact_str(op: &Operation, key: &str) -> Option<String> {
    op.fact(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Whether a promoted instance takes writes. Real RDS clears the replication source when the promotion
/// finishes; moto leaves it set, but its promotion is instantaneous and answers `available` (real RDS
/// answers `modifying`), so an `available` answer to the promote call also counts.
pub fn promoted(db: &DbInstance, promote_answered: Option<&str>) -> bool {
    db.status == "available" && (db.replica_source.is_none() || promote_answered == Some("available"))
}

/// A short suffix unique to the operation, for renamed instances.
fn suffix(op: &Operation) -> String {
    op.id.rsplit('-').next().unwrap_or("old").to_owned()
}

impl Engine {
    /// Undo's scale-back of `service` in `region` to the `desired` count journaled before its drain. Like
    /// every change that makes the environment safe, it goes on after a signal, never without the lease.
    async fn scale_back(
        &self,
        run: &Run<'_>,
        region: &AwsRegion,
        cluster: &str,
        service: &str,
        desired: i64,
        hint: &str,
    ) -> Result<(), StepError> {
        let update = ServiceUpdate {
            desired_count: Some(desired as i32),
            ..ServiceUpdate::default()
        };
        run.held()?;
        self.aws
            .ecs(region)
            .update_service(cluster, service, &update)
            .await
            .map_err(|e| {
                StepError::failed(format!(
                    "could not scale `{service}` ({region}) back to {desired}: {e}{hint}"
                ))
            })
    }

    fn run_with<'a>(&'a self, guard: &'a LockGuard) -> Run<'a> {
        Run::new(&self.journal, guard, self.reporter.as_ref(), &self.cancel)
    }

    /// Runs (or resumes) `op` from its first unfinished step. The caller holds `guard`.
    pub async fn run(&self, op: &mut Operation, guard: &LockGuard) -> Result<Outcome, EngineError> {
        Ok(outcome(engine::drive(self, &self.run_with(guard), op).await?))
    }

    /// Ends an unfinished operation without going on (see [`Steps::undo`] for what is put back).
    pub async fn abort(&self, op: &mut Operation, guard: &LockGuard, by: &str) -> Result<Outcome, EngineError> {
        Ok(outcome(engine::abort(self, &self.run_with(guard), op, by).await?))
    }
}

fn outcome(end: RunEnd) -> Outcome {
    match end {
        RunEnd::Completed => Outcome::Completed,
        RunEnd::Failed { reason, .. } => Outcome::Refused { reason },
        RunEnd::Stopped { at_step, reason } => Outcome::Stopped { at_step, reason },
        RunEnd::Undone { decision, note } => Outcome::Aborted { by: decision.by, note },
        RunEnd::Interrupted { at_step } => Outcome::Interrupted { at_step },
    }
}

#[async_trait]
impl Steps for Engine {
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError> {
        let name = op.plan[index].name.clone();
        self.execute(run, op, &name).await
    }

    /// A failed step leaves the environment half switched: stop, and let a person resume or abort.
    fn on_failure(&self, _: &Operation, _: usize) -> OnFailure {
        OnFailure::Stop
    }

    /// Before the promotion, the drained primary gets its capacity back; after it, nothing can be undone
    /// safely, so the note says what state was left.
    async fn undo(&self, run: &Run<'_>, op: &mut Operation, _: &Decision) -> Result<String, StepError> {
        let promoted_step = if op.kind == FAILBACK {
            "promote-primary"
        } else {
            "promote-and-scale"
        };
        let promotion_started = op.steps.iter().any(|s| s.name == promoted_step);
        if is_away_kind(&op.kind) && !promotion_started {
            let ecs = &self.env.ecs;
            self.restore_scaling(run, op, Side::Primary).await?;
            return Ok(match op.fact("primary_desired").and_then(|v| v.as_i64()) {
                Some(desired) => {
                    self.scale_back(run, &self.env.primary_region, &ecs.cluster, &ecs.service, desired, "")
                        .await?;
                    format!(
                        "`{}` scaled back to {desired}; nothing else had changed",
                        self.env.ecs.service
                    )
                }
                None => "nothing had changed".to_owned(),
            });
        }
        if promotion_started {
            // The database may already take writes in the DR region: going back would lose them or split
            // the writes between two primaries. The only safe way out is forward.
            return Err(StepError::refused(format!(
                "the promotion of the DR database had started, so there is no way back without losing writes\nhint: `suma dr resume --env {}` finishes the switch; `suma ops show {}` shows each step",
                self.environment,
                op.id
            )));
        }
        // A failback stopped after draining DR (only `drain-dr` journals `dr_desired`) but before the
        // promotion: DNS still names DR, so DR gets its tasks back or nothing serves.
        if let Some(desired) = op.fact("dr_desired").and_then(|v| v.as_i64()) {
            let cfg = &self.env.ecs.dr;
            let hint = "\nhint: it serves while DNS names the DR region; scale it by hand, or `suma dr abort` again";
            self.scale_back(run, &self.env.dr_region, &cfg.cluster, &cfg.service, desired, hint)
                .await?;
            self.restore_scaling(run, op, Side::Dr).await?;
            return Ok(format!(
                "`{}` ({}) scaled back to {desired}, so the DR region serves again; renamed or created instances are kept",
                cfg.service, self.env.dr_region
            ));
        }
        Ok("nothing had changed in traffic; renamed or created instances are kept".to_owned())
    }
}

impl Engine {
    async fn execute(&self, run: &Run<'_>, op: &mut Operation, name: &str) -> Result<StepEnd, StepError> {
        let failback = op.kind == FAILBACK;
        match (name, failback) {
            ("readiness", false) if op.kind == SWITCHOVER => self.switchover_readiness(op).await,
            ("readiness", false) => self.failover_readiness(op).await,
            ("catch-up", _) => self.catch_up(run, op).await,
            ("resume-scaling", _) => self.resume_scaling(run, op).await,
            ("readiness", true) => self.failback_readiness().await,
            ("drain-primary", _) => self.drain_primary(run, op).await,
            ("promote-and-scale", _) => self.promote_and_scale(run, op).await,
            ("repoint-dr-service", _) => self.repoint(run, op, Side::Dr).await,
            ("switch-dns", false) => self.switch_dns(run, op, true).await,
            ("switch-dns", true) => self.switch_dns(run, op, false).await,
            ("verify", false) => {
                self.verify(run, self.env.dr.dr_url.as_ref().map(|u| u.to_string()))
                    .await
            }
            ("verify", true) => self.verify(run, self.env.url.as_ref().map(|u| u.to_string())).await,
            ("announce", _) => self.announce(run, op).await,
            ("rename-stale-primary", _) => self.rename_stale_primary(run, op).await,
            ("create-primary-replica", _) => self.create_primary_replica(run, op).await,
            ("confirm", _) => self.confirm(op),
            ("drain-dr", _) => self.drain_dr(run, op).await,
            ("standby-dr", _) => self.standby_dr(run, op).await,
            ("promote-primary", _) => {
                let primary = self.env.rds.primary.clone();
                let facts = self.promote(run, op, &primary.region, &primary.identifier).await?;
                Ok(StepEnd::Done(facts))
            }
            ("repoint-primary-service", _) => self.repoint(run, op, Side::Primary).await,
            ("restore-replica", _) => self.restore_replica(run, op).await,
            (other, _) => Err(StepError::failed(format!("unknown step `{other}` in the journal"))),
        }
    }

    fn replica(&self) -> Result<crate::config::DbInstanceRef, StepError> {
        self.env.rds.replica.clone().ok_or_else(|| {
            StepError::refused(format!(
                "`{}` has no `rds.replica`: there is nothing to fail over to\nhint: configure the cross-region read replica",
                self.environment
            ))
        })
    }
}

/// One step's measured time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTime {
    pub name: String,
    pub status: String,
    pub secs: Option<f64>,
}

/// The time of each step and the total against the RTO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    pub steps: Vec<StepTime>,
    pub total_secs: u64,
    pub rto_secs: u64,
    pub within_rto: bool,
}

/// Measured from the journal's step records: from the first step's start to the last step's end.
pub fn timings(op: &Operation, rto: Duration) -> Timings {
    let steps = op
        .plan
        .iter()
        .enumerate()
        .map(|(i, planned)| {
            let record = op.steps.iter().find(|s| s.index == i);
            StepTime {
                name: planned.name.clone(),
                status: record.map_or("pending".to_owned(), |r| format!("{:?}", r.status).to_lowercase()),
                secs: record.and_then(|r| {
                    r.ended_at
                        .map(|end| (end - r.started_at).num_milliseconds() as f64 / 1000.0)
                }),
            }
        })
        .collect();
    let start = op.steps.first().map(|s| s.started_at);
    let end = op
        .steps
        .iter()
        .filter_map(|s| s.ended_at)
        .max()
        .or_else(|| op.steps.last().map(|s| s.started_at));
    let total_secs = match (start, end) {
        (Some(s), Some(e)) => (e - s).num_seconds().max(0) as u64,
        _ => 0,
    };
    Timings {
        steps,
        total_secs,
        rto_secs: rto.as_secs(),
        within_rto: total_secs <= rto.as_secs(),
    }
}

#[cfg(test)]
mod tests;
