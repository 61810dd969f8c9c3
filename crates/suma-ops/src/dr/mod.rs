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
pub mod lag;
pub mod rto;
#[cfg(feature = "sdk")]
pub mod setup;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aws::ecs::{Rollout, ServiceUpdate};
use crate::aws::rds::{DbInstance, DbModification};
use crate::aws::route53::FailoverAlias;
use crate::aws::{AwsApis, AwsError, AwsErrorKind};
use crate::config::{AwsRegion, Environment};
use crate::engine::{self, OnFailure, Run, RunEnd, StepEnd, StepError, Steps};
use crate::journal::lock::LockGuard;
use crate::journal::{Decision, Journal, Operation, OperationStatus, PlannedStep};
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
        "announce" => 2,
        "create-primary-replica" | "restore-replica" => 1200,
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
                format!("scale `{}` ({d}) to its standby of {}", ecs.dr.service, ecs.dr.standby_count),
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
                "verify",
                env.url.as_ref().map_or("no `url` configured: skipped".to_owned(), |u| {
                    format!("GET {} and a write through POST {}", u.join("/ready"), u.join("/api/auth/register"))
                }),
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

/// How long `verify` keeps asking a switched endpoint before it fails: a record's TTL (60 s is usual
/// for failover records) and a resolver's refresh.
const VERIFY_WINDOW: Duration = Duration::from_secs(120);

/// How often a switchover looks at the drain and at the replica's position: both end within a second
/// or two, and every poll while the primary is drained is downtime.
const DRAIN_POLL: Duration = Duration::from_secs(1);
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// Consecutive unanswered polls after which the primary region is judged down and its drain skipped.
const UNREACHABLE_POLLS: u32 = 4;

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
            return Ok(match op.fact("primary_desired").and_then(|v| v.as_i64()) {
                Some(desired) => {
                    let ecs = &self.env.ecs;
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
            ("readiness", true) => self.failback_readiness().await,
            ("drain-primary", _) => self.drain_primary(run, op).await,
            ("promote-and-scale", _) => self.promote_and_scale(run, op).await,
            ("repoint-dr-service", _) => {
                let replica = self.replica()?;
                self.repoint(
                    run,
                    op,
                    &self.env.dr_region.clone(),
                    &self.env.ecs.dr.cluster,
                    &self.env.ecs.dr.service,
                    &replica.region,
                    &replica.identifier,
                    "dr_task_definition",
                )
                .await
            }
            ("switch-dns", false) => self.switch_dns(run, op, true).await,
            ("switch-dns", true) => self.switch_dns(run, op, false).await,
            ("verify", false) => {
                self.verify(run, self.env.dr.dr_url.as_ref().map(|u| u.to_string()))
                    .await
            }
            ("verify", true) => self.verify(run, self.env.url.as_ref().map(|u| u.to_string())).await,
            ("announce", _) => self.announce(run, op).await,
            ("rename-stale-primary", _) => self.rename_stale_primary(run, op).await,
            ("create-primary-replica", _) => self.create_primary_replica(run).await,
            ("confirm", _) => self.confirm(op),
            ("drain-dr", _) => self.drain_dr(run, op).await,
            ("promote-primary", _) => {
                let primary = self.env.rds.primary.clone();
                let facts = self.promote(run, op, &primary.region, &primary.identifier).await?;
                Ok(StepEnd::Done(facts))
            }
            ("repoint-primary-service", _) => {
                let primary = self.env.rds.primary.clone();
                self.repoint(
                    run,
                    op,
                    &self.env.primary_region.clone(),
                    &self.env.ecs.cluster,
                    &self.env.ecs.service,
                    &primary.region,
                    &primary.identifier,
                    "primary_task_definition",
                )
                .await
            }
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

    async fn failover_readiness(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
        let replica_ref = self.replica()?;
        let rds = self.aws.rds(&replica_ref.region);
        let replica = rds.describe_instance(&replica_ref.identifier).await?;
        let mut facts = Facts::new();
        // On a resume after the promotion began, the replica is no longer one: the gate was passed before.
        let resumed_after_promotion = op.fact("replica_lag_checked").is_some();
        if replica.status != "available" && !resumed_after_promotion {
            return Err(StepError::refused(format!(
                "replica `{}` is `{}`, not available\nhint: see `suma dr check --env {}`",
                replica.identifier, replica.status, self.environment
            )));
        }
        let accept = op
            .parameters
            .get("accept_data_loss")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let lag = self.lag.lag_seconds().await;
        let (status, shown) = match &lag {
            Ok(value) => check::lag_status(*value, self.env.dr.rpo),
            Err(e) => (check::CheckStatus::Fail, e.to_string()),
        };
        facts.insert("replica_lag".to_owned(), json!(shown));
        facts.insert("replica_lag_checked".to_owned(), json!(true));
        facts.insert("replica_endpoint".to_owned(), json!(replica.endpoint));
        if status == check::CheckStatus::Fail {
            if op.kind == SWITCHOVER {
                return Err(StepError::refused(format!(
                    "replica lag of `{}` is {shown}, beyond the RPO of {}: a switchover would keep the primary drained while it catches up\nhint: wait for the lag to fall; a switchover never accepts data loss (an unplanned `suma dr failover --accept-data-loss --reason ...` does)",
                    replica.identifier,
                    humantime::format_duration(self.env.dr.rpo)
                )));
            }
            if !accept {
                return Err(StepError::refused(format!(
                    "replica lag of `{}` is {shown}, beyond the RPO of {}\nhint: wait for it to catch up, or pass `--accept-data-loss --reason ...` to fail over anyway",
                    replica.identifier,
                    humantime::format_duration(self.env.dr.rpo)
                )));
            }
            let reason = op
                .parameters
                .get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or("(no reason given)")
                .to_owned();
            let actor = op.actor.clone();
            op.note(
                &actor,
                format!("data loss accepted by {actor} with replica lag {shown}: {reason}"),
            );
            facts.insert("data_loss_accepted".to_owned(), json!(true));
        }
        // What failback needs to restore: the PRIMARY record as it was, and the primary's capacity.
        if op.fact("original_primary_record").is_none() {
            let aliases = self
                .aws
                .route53()
                .failover_aliases(&self.env.dns.hosted_zone_id, &self.env.dns.record_name)
                .await?;
            // Every PRIMARY record of the name moves (an A record and its AAAA twin), each to the
            // SECONDARY record of its own type.
            let of_role = |role: &str| aliases.iter().filter(|a| a.failover == role).collect::<Vec<_>>();
            let (primaries, secondaries) = (of_role("PRIMARY"), of_role("SECONDARY"));
            let primary = primaries.first().ok_or_else(|| {
                StepError::refused(format!(
                    "`{}` has no PRIMARY failover alias record\nhint: see `suma dr check --env {}`",
                    self.env.dns.record_name, self.environment
                ))
            })?;
            let secondary = secondaries.first().ok_or_else(|| {
                StepError::refused(format!(
                    "`{}` has no SECONDARY failover alias record: the DR load balancer is unknown",
                    self.env.dns.record_name
                ))
            })?;
            if let Err(alone) = dns::primaries_to_secondaries(primaries.iter().copied(), &secondaries, None) {
                return Err(StepError::refused(format!(
                    "`{}` has a PRIMARY {alone} record without a SECONDARY one: its DR target is unknown, and moving only the others would split clients by address family\nhint: add the SECONDARY {alone} record to the DR load balancer",
                    self.env.dns.record_name
                )));
            }
            facts.insert("original_primary_record".to_owned(), json!(primary));
            facts.insert("secondary_record".to_owned(), json!(secondary));
            facts.insert("original_primary_records".to_owned(), json!(primaries));
            facts.insert("secondary_records".to_owned(), json!(secondaries));
        }
        Ok(StepEnd::Done(facts))
    }

    /// Scales the primary region's services to zero when the region answers; an unreachable region is
    /// skipped (it cannot write either), any other error stops the failover.
    async fn drain_primary(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let ecs = self.aws.ecs(&self.env.primary_region);
        let cfg = &self.env.ecs;
        let names = [cfg.service.clone(), cfg.canary_service.clone()];
        // A region is judged down only when it stays silent over several polls: one timed-out or reset
        // call (after the SDK's own retries) is a blip, and skipping the drain on a blip would leave the
        // primary's tasks serving while traffic moves to DR. A region that answers 5xx is degraded,
        // not gone: its tasks may still write, so it is passed by only when the data loss of an
        // unfenced primary was accepted at the start, and what could not be fenced is journaled.
        // A switchover needs every writer stopped: it never goes on past a region it cannot drain.
        let planned = op.kind == SWITCHOVER;
        let accepted = op.parameters.get("accept_data_loss") == Some(&json!(true));
        let region_down = |e: &AwsError| {
            !planned && (e.kind == AwsErrorKind::Unreachable || (accepted && e.kind == AwsErrorKind::ServerError))
        };
        let mut silent = 0;
        let found = loop {
            match ecs.describe_services(&cfg.cluster, &names).await {
                Ok(found) => break found,
                Err(e) if region_down(&e) && silent + 1 < UNREACHABLE_POLLS => {
                    silent += 1;
                    run.sleep(self.poll).await?;
                }
                Err(e) if region_down(&e) => {
                    self.reporter.warn(&format!(
                        "{} does not answer ({UNREACHABLE_POLLS} polls): not drained ({e})",
                        self.env.primary_region
                    ));
                    return Ok(StepEnd::skipped(
                        format!("{} unreachable", self.env.primary_region),
                        Facts::from([
                            ("primary_unreachable".to_owned(), json!(true)),
                            ("unfenced".to_owned(), json!(names)),
                            ("unfenced_because".to_owned(), json!(e.to_string())),
                        ]),
                    ));
                }
                Err(e) if planned && matches!(e.kind, AwsErrorKind::ServerError | AwsErrorKind::Unreachable) => {
                    return Err(StepError::failed(format!(
                        "{} cannot be drained: {e}; a switchover loses no data only when every writer has stopped\nhint: `suma dr resume --env {env}` tries again; if the region is degraded, `suma dr abort --env {env}` and fail over with `suma dr failover --accept-data-loss --reason TEXT`",
                        self.env.primary_region,
                        env = self.environment
                    )))
                }
                Err(e) if e.kind == AwsErrorKind::ServerError => {
                    return Err(StepError::failed(format!(
                        "{} answers with errors, so its services cannot be drained: {e}\nhint: if the region is degraded, `suma dr abort --env {env}` and fail over with `--accept-data-loss --reason TEXT`, which goes on without fencing it and journals what it could not fence; otherwise `suma dr resume --env {env}` tries again",
                        self.env.primary_region,
                        env = self.environment
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        };
        // What abort must restore is journaled before anything is drained, and a restarted drain keeps
        // the count the first attempt saw (by then the service may already be at 0).
        if op.fact("primary_desired").is_none() {
            if let Some(svc) = found.iter().find(|s| s.name == cfg.service) {
                let desired = svc.desired.max(cfg.desired_count as i32);
                run.record(op, Facts::from([("primary_desired".to_owned(), json!(desired))]))
                    .await?;
            }
        }
        let mut unfenced = Vec::new();
        for svc in &found {
            if svc.desired != 0 {
                let zero = ServiceUpdate {
                    desired_count: Some(0),
                    ..ServiceUpdate::default()
                };
                run.mutating()?;
                match ecs.update_service(&cfg.cluster, &svc.name, &zero).await {
                    Ok(_) => {}
                    Err(e) if region_down(&e) => {
                        self.reporter
                            .warn(&format!("`{}` could not be scaled to 0: {e}", svc.name));
                        unfenced.push(svc.name.clone());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut facts = Facts::new();
        if !unfenced.is_empty() {
            facts.insert("unfenced".to_owned(), json!(unfenced));
        }
        if planned {
            let waited = self.wait_drained(run, &names).await?;
            facts.insert("drained_after_ms".to_owned(), json!(waited.as_millis() as u64));
        }
        Ok(StepEnd::Done(facts))
    }

    /// Waits until no task of `names` runs or is pending in the primary region: a task still draining
    /// its connections can still commit.
    async fn wait_drained(&self, run: &Run<'_>, names: &[String]) -> Result<Duration, StepError> {
        let ecs = self.aws.ecs(&self.env.primary_region);
        let started = tokio::time::Instant::now();
        let deadline = started + self.wait_timeout;
        loop {
            let found = ecs.describe_services(&self.env.ecs.cluster, names).await?;
            let left: Vec<String> = found
                .iter()
                .filter(|s| s.running + s.pending > 0)
                .map(|s| format!("`{}` ({} running, {} pending)", s.name, s.running, s.pending))
                .collect();
            if left.is_empty() {
                return Ok(started.elapsed());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "tasks still run in {} after {}: {}\nhint: `suma dr resume` waits again; `suma dr abort` scales the primary back",
                    self.env.primary_region,
                    humantime::format_duration(self.wait_timeout),
                    left.join(", ")
                )));
            }
            run.sleep(self.poll.min(DRAIN_POLL)).await?;
        }
    }

    /// The switchover's gate: a marker written into the primary's WAL after the drain; the replica has
    /// caught up when it has replayed up to it. The marker's position is journaled before the wait.
    async fn catch_up(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let unreadable = |what: &str, e: lag::LagError| {
            StepError::failed(format!(
                "cannot read {what}: {e}\nhint: `suma dr resume --env {env}` reads it again; `suma dr abort --env {env}` scales the primary back",
                env = self.environment
            ))
        };
        let started = tokio::time::Instant::now();
        let deadline = started + self.wait_timeout;
        // Draining tasks leave `runningCount` before their processes exit: wait for their sessions.
        loop {
            let sessions = self
                .replication
                .other_sessions()
                .await
                .map_err(|e| unreadable("the sessions on the primary's database", e))?;
            if sessions.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "{} session(s) still connected to the primary's database after {}: {}; a write through any of them after the promotion would be lost\nhint: stop what holds them (a DR standby task writes to the primary too), then `suma dr resume --env {env}`; `suma dr abort --env {env}` scales the primary back",
                    sessions.len(),
                    humantime::format_duration(self.wait_timeout),
                    sessions.join(", "),
                    env = self.environment
                )));
            }
            run.sleep(self.poll.min(CATCH_UP_POLL)).await?;
        }
        let sessions_closed_ms = started.elapsed().as_millis() as u64;
        let marker = self
            .replication
            .write_marker(&op.id)
            .await
            .map_err(|e| unreadable("the primary's WAL position after the drain", e))?;
        run.record(op, Facts::from([("marker_lsn".to_owned(), json!(marker.to_string()))]))
            .await?;
        let marked = tokio::time::Instant::now();
        loop {
            let replayed = self
                .replication
                .replayed_position()
                .await
                .map_err(|e| unreadable("the replica's replayed WAL position", e))?;
            match catch_up::judge(marker, replayed) {
                catch_up::CatchUp::CaughtUp => {
                    return Ok(StepEnd::Done(Facts::from([
                        ("marker_lsn".to_owned(), json!(marker.to_string())),
                        ("replayed_lsn".to_owned(), json!(replayed.map(|l| l.to_string()))),
                        ("sessions_closed_after_ms".to_owned(), json!(sessions_closed_ms)),
                        ("caught_up_after_ms".to_owned(), json!(marked.elapsed().as_millis() as u64)),
                    ])))
                }
                catch_up::CatchUp::NotReplicating => {
                    return Err(StepError::failed(format!(
                        "`{}` is not in recovery, so it is not replaying the primary: nothing was promoted\nhint: check `{}` names the replica; `suma dr abort --env {}` scales the primary back",
                        replica.identifier,
                        crate::env_vars::SUMA_DR_REPLICA_URL,
                        self.environment
                    )))
                }
                catch_up::CatchUp::Behind(bytes) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "`{}` is still {bytes} bytes of WAL behind the marker {marker} after {}\nhint: `suma dr resume` waits again; `suma dr abort` scales the primary back (nothing was promoted)",
                        replica.identifier,
                        humantime::format_duration(self.wait_timeout)
                    )))
                }
                catch_up::CatchUp::Behind(_) => run.sleep(self.poll.min(CATCH_UP_POLL)).await?,
            }
        }
    }

    /// A switchover's readiness: the primary region must answer and both WAL positions be readable
    /// (the replica's from a server in recovery) before the failover's own checks; nothing changes
    /// until all of them pass.
    async fn switchover_readiness(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
        let refused = |what: String| {
            StepError::refused(format!(
                "{what}\nhint: a switchover needs both regions and both databases; if the primary region is degraded, `suma dr failover` is the unplanned way"
            ))
        };
        let cfg = &self.env.ecs;
        self.aws
            .ecs(&self.env.primary_region)
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
            .await
            .map_err(|e| refused(format!("{} does not answer: {e}", self.env.primary_region)))?;
        let marker = self
            .replication
            .write_marker(&format!("{} readiness", op.id))
            .await
            .map_err(|e| refused(format!("no marker can be written on the primary: {e}")))?;
        let replayed = self
            .replication
            .replayed_position()
            .await
            .map_err(|e| refused(format!("the replica's WAL position cannot be read: {e}")))?;
        if replayed.is_none() && op.fact("replica_lag_checked").is_none() {
            return Err(refused(format!(
                "the server at `{}` is not in recovery: it is not the replica",
                crate::env_vars::SUMA_DR_REPLICA_URL
            )));
        }
        let StepEnd::Done(mut facts) = self.failover_readiness(op).await? else {
            unreachable!("the failover's readiness is never skipped")
        };
        facts.insert("primary_lsn_at_start".to_owned(), json!(marker.to_string()));
        Ok(StepEnd::Done(facts))
    }

    /// Promotes `identifier` unless it already is, waits until it takes writes, then turns backups and
    /// multi-AZ on.
    async fn promote(
        &self,
        run: &Run<'_>,
        op: &Operation,
        region: &AwsRegion,
        identifier: &str,
    ) -> Result<Facts, StepError> {
        let rds = self.aws.rds(region);
        let retention = op
            .fact("backup_retention_days")
            .and_then(|v| v.as_i64())
            .unwrap_or(7)
            .max(1) as i32;
        let before = rds.describe_instance(identifier).await?;
        let mut answered: Option<String> = None;
        if before.replica_source.is_some() && before.status == "available" {
            run.mutating()?;
            let answer = rds.promote_read_replica(identifier, retention).await?;
            answered = Some(answer.status.clone());
        }
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let db = loop {
            let db = rds.describe_instance(identifier).await?;
            if promoted(&db, answered.as_deref()) {
                break db;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "`{identifier}` is still `{}`{} after {}\nhint: watch it in the RDS console; `suma dr resume` waits again",
                    db.status,
                    if db.replica_source.is_some() { " and still a replica" } else { "" },
                    humantime::format_duration(self.wait_timeout)
                )));
            }
            run.sleep(self.poll).await?;
        };
        if !db.multi_az || db.backup_retention_days < 1 {
            let change = DbModification {
                multi_az: Some(true),
                backup_retention_days: Some(retention),
                ..DbModification::default()
            };
            run.mutating()?;
            rds.modify_instance(identifier, &change).await?;
        }
        Ok(Facts::from([
            ("promoted".to_owned(), json!(identifier)),
            ("promoted_endpoint".to_owned(), json!(db.endpoint)),
        ]))
    }

    async fn scale(
        &self,
        run: &Run<'_>,
        region: &AwsRegion,
        cluster: &str,
        service: &str,
        count: i32,
    ) -> Result<(), StepError> {
        let ecs = self.aws.ecs(region);
        let update = ServiceUpdate {
            desired_count: Some(count),
            ..ServiceUpdate::default()
        };
        run.mutating()?;
        ecs.update_service(cluster, service, &update).await?;
        Ok(())
    }

    async fn wait_rollout(
        &self,
        run: &Run<'_>,
        region: &AwsRegion,
        cluster: &str,
        service: &str,
        td: &str,
    ) -> Result<(), StepError> {
        let ecs = self.aws.ecs(region);
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            let found = ecs.describe_services(cluster, &[service.to_owned()]).await?;
            match found.first().map(|s| s.rollout(td)) {
                Some(Rollout::Completed) => return Ok(()),
                Some(Rollout::Failed(reason)) => {
                    return Err(StepError::failed(format!(
                        "the ECS deployment of `{service}` ({region}) failed: {reason}"
                    )))
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                    "`{service}` ({region}) did not finish its rollout within {}\nhint: `suma dr resume` waits again",
                    humantime::format_duration(self.wait_timeout)
                )))
                }
                _ => run.sleep(self.poll).await?,
            }
        }
    }

    /// The promotion and the DR service's scale-up at once: neither depends on the other. The DR tasks
    /// start on a revision that already names the replica's endpoint (it stays the same through the
    /// promotion), never on the one they ran before: that one may still name the primary's database,
    /// and a write it takes there after the switch is lost. Until the promotion ends they answer writes
    /// with errors, which lose nothing.
    async fn promote_and_scale(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let cfg = &self.env.ecs;
        let (td, _) = self
            .repointed_revision(
                run,
                op,
                &self.env.dr_region,
                &cfg.dr.cluster,
                &cfg.dr.service,
                &replica.region,
                &replica.identifier,
                "dr_task_definition",
            )
            .await?;
        let promote = self.promote(run, op, &replica.region, &replica.identifier);
        let update = ServiceUpdate {
            task_definition: Some(td),
            desired_count: Some(cfg.desired_count as i32),
            force_new_deployment: false,
        };
        let scale = async {
            run.mutating()?;
            self.aws
                .ecs(&self.env.dr_region)
                .update_service(&cfg.dr.cluster, &cfg.dr.service, &update)
                .await
                .map_err(StepError::from)
        };
        let (promoted, scaled) = tokio::join!(promote, scale);
        scaled?;
        let mut facts = promoted?;
        facts.insert("dr_desired".to_owned(), json!(cfg.desired_count));
        Ok(StepEnd::Done(facts))
    }

    /// The revision of `service` whose host variable names `db`'s endpoint: the one journaled under
    /// `fact` by an earlier step or attempt, else a new one, journaled at once.
    #[allow(clippy::too_many_arguments)]
    async fn repointed_revision(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        region: &AwsRegion,
        cluster: &str,
        service: &str,
        db_region: &AwsRegion,
        db: &str,
        fact: &str,
    ) -> Result<(String, String), StepError> {
        let endpoint = self
            .aws
            .rds(db_region)
            .describe_instance(db)
            .await?
            .host()
            .ok_or_else(|| {
                StepError::failed(format!(
                    "`{db}` has no endpoint yet\nhint: `suma dr resume` tries again"
                ))
            })?;
        if let Some(td) = fact_str(op, fact) {
            return Ok((td, endpoint));
        }
        let ecs = self.aws.ecs(region);
        let current = ecs
            .describe_services(cluster, &[service.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StepError::failed(format!("service `{service}` not found in `{cluster}` ({region})")))?;
        run.mutating()?;
        let td = ecs
            .register_revision(
                &current.task_definition,
                &self.env.ecs.container,
                &suma_core::taskdef::ContainerChange::variable(&self.env.dr.database_host_variable, &endpoint),
            )
            .await?
            .arn;
        run.record(op, Facts::from([(fact.to_owned(), json!(td))])).await?;
        Ok((td, endpoint))
    }

    /// Points a service at a database: a new revision with the endpoint (`address:port`) in the host
    /// variable the service reads (`DATABASE_HOST`, which replaces the host of the replicated
    /// `DATABASE_URL` secret; a replica secret cannot be rewritten in its region), rolled out at
    /// production capacity.
    #[allow(clippy::too_many_arguments)]
    async fn repoint(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        region: &AwsRegion,
        cluster: &str,
        service: &str,
        db_region: &AwsRegion,
        db: &str,
        fact: &str,
    ) -> Result<StepEnd, StepError> {
        // On a resume, or after the scale-up registered it, the revision registered before is reused.
        let (td, endpoint) = self
            .repointed_revision(run, op, region, cluster, service, db_region, db, fact)
            .await?;
        let update = ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(self.env.ecs.desired_count as i32),
            force_new_deployment: false,
        };
        run.mutating()?;
        self.aws.ecs(region).update_service(cluster, service, &update).await?;
        self.wait_rollout(run, region, cluster, service, &td).await?;
        Ok(StepEnd::Done(Facts::from([
            (fact.to_owned(), json!(td)),
            ("database_host".to_owned(), json!(endpoint)),
        ])))
    }

    /// Failover: the PRIMARY record to the DR load balancer (with the secondary's health check);
    /// failback: the PRIMARY record as it was before the failover.
    async fn switch_dns(&self, run: &Run<'_>, op: &mut Operation, to_dr: bool) -> Result<StepEnd, StepError> {
        // Every PRIMARY record recorded before the failover (an operation journaled before twins were
        // recorded has the one), each to the SECONDARY of its type or back as it was.
        let records = |plural: &str, singular: &str| -> Option<Vec<FailoverAlias>> {
            op.fact(plural)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .or_else(|| {
                    op.fact(singular)
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .map(|r| vec![r])
                })
        };
        let originals = records("original_primary_records", "original_primary_record").ok_or_else(|| {
            StepError::failed("the journal has no record of the PRIMARY record before the failover".to_owned())
        })?;
        let wanted: Vec<FailoverAlias> = if to_dr {
            let secondaries = records("secondary_records", "secondary_record")
                .ok_or_else(|| StepError::failed("the journal has no record of the SECONDARY record".to_owned()))?;
            let secondaries: Vec<&FailoverAlias> = secondaries.iter().collect();
            dns::primaries_to_secondaries(
                &originals,
                &secondaries,
                self.env.dns.secondary_health_check_id.as_deref(),
            )
            .map_err(|record_type| {
                StepError::failed(format!(
                    "the journal has no SECONDARY {record_type} record to point the PRIMARY one at"
                ))
            })?
        } else {
            originals
        };
        let dns = self.aws.route53();
        let zone = &self.env.dns.hosted_zone_id;
        let current = dns.failover_aliases(zone, &self.env.dns.record_name).await?;
        let in_place = wanted.iter().all(|w| current.contains(w));
        // Records already right were written by an earlier attempt (or need nothing): that attempt's
        // change, journaled as soon as Route 53 answered, is still waited on until INSYNC.
        let change_id = match fact_str(op, "dns_change_id") {
            recorded if in_place => recorded,
            _ => {
                run.mutating()?;
                let id = dns.upsert_failover_aliases(zone, &wanted).await?;
                run.record(op, Facts::from([("dns_change_id".to_owned(), json!(id))]))
                    .await?;
                Some(id)
            }
        };
        if let Some(id) = &change_id {
            let deadline = tokio::time::Instant::now() + self.wait_timeout;
            loop {
                let status = dns.change_status(id).await?;
                if status == "INSYNC" {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(StepError::failed(format!(
                        "Route 53 change `{id}` is still {status} after {}\nhint: `suma dr resume` checks the record and waits again",
                        humantime::format_duration(self.wait_timeout)
                    )));
                }
                run.sleep(self.poll).await?;
            }
        }
        Ok(StepEnd::Done(Facts::from([
            ("dns_target".to_owned(), json!(wanted.first().map(|w| &w.target_dns))),
            (
                "dns_records".to_owned(),
                json!(wanted
                    .iter()
                    .map(|w| format!("{} {}", w.record_type, w.target_dns))
                    .collect::<Vec<_>>()),
            ),
            ("dns_change_id".to_owned(), json!(change_id)),
        ])))
    }

    /// Waits until `base` answers ready and takes a write. Clients, and a front door, follow a switched
    /// record only when their resolvers do, so the first answers may still come from the side just
    /// drained: the check is repeated every poll for up to [`VERIFY_WINDOW`] before it fails.
    async fn verify(&self, run: &Run<'_>, base: Option<String>) -> Result<StepEnd, StepError> {
        let Some(base) = base else {
            return Ok(StepEnd::skipped("no URL configured".to_owned(), Facts::new()));
        };
        let base = base.trim_end_matches('/').to_owned();
        let deadline = tokio::time::Instant::now() + VERIFY_WINDOW.min(self.wait_timeout);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let answer = match self.probe.ready(&base).await {
                Err(e) => Err(format!(
                    "{base}/ready: {e}\nhint: check the service's tasks and its database endpoint; `suma dr resume` verifies again"
                )),
                Ok(ready) => match self.probe.write(&base).await {
                    Ok(write) => Ok((ready, write)),
                    Err(e) => Err(format!(
                        "a write through {base} failed: {e}\nhint: is the database writable? `suma dr resume` verifies again"
                    )),
                },
            };
            match answer {
                Ok((ready, write)) => {
                    return Ok(StepEnd::Done(Facts::from([
                        ("ready_status".to_owned(), json!(ready)),
                        ("write_status".to_owned(), json!(write)),
                        ("verify_attempts".to_owned(), json!(attempts)),
                    ])))
                }
                Err(message) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "{message}\n({attempts} attempts over {})",
                        humantime::format_duration(VERIFY_WINDOW.min(self.wait_timeout))
                    )))
                }
                Err(message) => {
                    tracing::debug!(%message, attempts, "not verified yet");
                    run.sleep(self.poll).await?;
                }
            }
        }
    }

    async fn announce(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let summary = timings(op, self.env.dr.rto);
        let title = match op.kind.as_str() {
            FAILBACK => format!("DR failback of {}", self.environment),
            SWITCHOVER => format!("DR switchover of {}", self.environment),
            _ => format!("DR failover of {}", self.environment),
        };
        let text = format!(
            "{} by {} (operation {}): {}s against an RTO of {}s",
            title, op.actor, op.id, summary.total_secs, summary.rto_secs
        );
        let mut facts = Facts::from([("total_secs".to_owned(), json!(summary.total_secs))]);
        // What suma itself added to the switch: the time from the first step's start to now, less the
        // waits for AWS and the databases; meaningful when one process ran the whole operation.
        let one_run = op.steps.iter().all(|s| s.attempts.is_empty());
        if let (true, Some(first)) = (one_run, op.steps.first()) {
            let elapsed = (chrono::Utc::now() - first.started_at).to_std().unwrap_or_default();
            facts.insert("waited_ms".to_owned(), json!(run.slept().as_millis() as u64));
            facts.insert(
                "orchestration_ms".to_owned(),
                json!(elapsed.saturating_sub(run.slept()).as_millis() as u64),
            );
        }
        match &self.events {
            Some(events) => match events.event(&title, &text, summary.within_rto).await {
                Ok(()) => {
                    facts.insert("event".to_owned(), json!("posted"));
                }
                // The switch is done: a missing event is worth a warning, not a failed failover.
                Err(e) => {
                    self.reporter.warn(&format!("the Datadog event was not posted: {e}"));
                    facts.insert("event".to_owned(), json!(format!("not posted: {e}")));
                }
            },
            None => {
                facts.insert("event".to_owned(), json!("no Datadog configured"));
            }
        }
        Ok(StepEnd::Done(facts))
    }

    // Failback.

    async fn failback_readiness(&self) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        // The newest completed switch decides: a failover that a failback already followed leaves nothing
        // to fail back, and a second failback would rename the live primary.
        let last = self
            .journal
            .list(&self.environment, 100)
            .await
            .map_err(|e| StepError::failed(e.to_string()))?
            .into_iter()
            .find(|op| (is_away_kind(&op.kind) || op.kind == FAILBACK) && op.status == OperationStatus::Succeeded)
            .ok_or_else(|| {
                StepError::refused(format!(
                    "no completed failover of `{}` is in the journal: there is nothing to fail back\nhint: `suma ops list --env {}`",
                    self.environment, self.environment
                ))
            })?;
        if last.kind == FAILBACK {
            return Err(StepError::refused(format!(
                "failback `{}` already brought `{}` back to {} ({}); no failover came after it, so there is nothing to fail back\nhint: `suma ops list --env {}`",
                last.id,
                self.environment,
                self.env.primary_region,
                last.updated_at.format("%Y-%m-%d %H:%M UTC"),
                self.environment
            )));
        }
        let dr_db = self
            .aws
            .rds(&replica.region)
            .describe_instance(&replica.identifier)
            .await?;
        // Writable, not just available: promoted (no replication source), or the failover journaled its
        // promotion (moto keeps the source on promoted instances).
        let promoted_by_failover = last.fact("promoted").and_then(|v| v.as_str()) == Some(replica.identifier.as_str());
        if dr_db.status != "available" || !(dr_db.replica_source.is_none() || promoted_by_failover) {
            return Err(StepError::refused(format!(
                "`{}` is `{}`{}: failback needs the DR database to be the writable primary\nhint: `suma dr check --env {}`",
                dr_db.identifier,
                dr_db.status,
                dr_db
                    .replica_source
                    .as_deref()
                    .map(|s| format!(", still replicating from `{s}`"))
                    .unwrap_or_default(),
                self.environment
            )));
        }
        // The primary region must answer: failback builds there.
        let stale = self
            .aws
            .rds(&self.env.rds.primary.region)
            .describe_instance(&self.env.rds.primary.identifier)
            .await;
        let backup = match &stale {
            Ok(db) => db.backup_retention_days,
            Err(e) if e.kind == AwsErrorKind::NotFound => 7,
            Err(e) => {
                return Err(StepError::refused(format!(
                    "{} does not answer: {e}\nhint: fail back once the primary region has recovered",
                    self.env.rds.primary.region
                )))
            }
        };
        let original = last
            .fact("original_primary_record")
            .cloned()
            .ok_or_else(|| StepError::refused(format!("failover `{}` recorded no PRIMARY record", last.id)))?;
        // The twins too, when the failover recorded them.
        let originals = last
            .fact("original_primary_records")
            .cloned()
            .unwrap_or(json!([original]));
        Ok(StepEnd::Done(Facts::from([
            ("failover_operation".to_owned(), json!(last.id)),
            ("original_primary_record".to_owned(), original),
            ("original_primary_records".to_owned(), originals),
            ("backup_retention_days".to_owned(), json!(backup.max(1))),
            ("dr_database_arn".to_owned(), json!(dr_db.arn)),
        ])))
    }

    /// Moves the stale primary out of the way so the new one takes its name (and its endpoint). Whether
    /// the rename already happened is told by the new name, not by the replication source, which moto
    /// leaves set on promoted instances.
    async fn rename_stale_primary(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let primary = &self.env.rds.primary;
        let stale_name = format!("{}-stale-{}", primary.identifier, suffix(op));
        let renamed = self
            .rename_away(run, &primary.region, &primary.identifier, &stale_name)
            .await?;
        Ok(if renamed {
            StepEnd::Done(Facts::from([("stale_primary".to_owned(), json!(stale_name))]))
        } else {
            StepEnd::skipped("nothing to rename".to_owned(), Facts::new())
        })
    }

    /// Renames `identifier` to `stale_name` unless that was done before or there is nothing to rename.
    async fn rename_away(
        &self,
        run: &Run<'_>,
        region: &AwsRegion,
        identifier: &str,
        stale_name: &str,
    ) -> Result<bool, StepError> {
        let rds = self.aws.rds(region);
        match rds.describe_instance(stale_name).await {
            // Renamed already: RDS answers under the new name only once a rename is done (and a new
            // instance may hold the old name by now).
            Ok(_) => Ok(false),
            Err(e) if e.kind == AwsErrorKind::NotFound => match rds.describe_instance(identifier).await {
                Ok(_) => {
                    let change = DbModification {
                        new_identifier: Some(stale_name.to_owned()),
                        ..DbModification::default()
                    };
                    run.mutating()?;
                    rds.modify_instance(identifier, &change).await?;
                    // RDS renames in the background: the name is free, and the instance answers under
                    // its new one, only once it is done. Until then anything created under the name
                    // would collide, and a describe of the name would find the instance renamed away.
                    self.wait_gone(run, region, identifier).await?;
                    self.wait_available(run, region, stale_name).await?;
                    Ok(true)
                }
                Err(e) if e.kind == AwsErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until no instance answers under `identifier` (a rename away finished).
    async fn wait_gone(&self, run: &Run<'_>, region: &AwsRegion, identifier: &str) -> Result<(), StepError> {
        let rds = self.aws.rds(region);
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            match rds.describe_instance(identifier).await {
                Err(e) if e.kind == AwsErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(db) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "`{identifier}` still answers under its name (`{}`) after {}: the rename away has not finished\nhint: `suma dr resume` waits again",
                        db.status,
                        humantime::format_duration(self.wait_timeout)
                    )))
                }
                Ok(_) => {}
            }
            run.sleep(self.poll).await?;
        }
    }

    async fn wait_available(
        &self,
        run: &Run<'_>,
        region: &AwsRegion,
        identifier: &str,
    ) -> Result<DbInstance, StepError> {
        let rds = self.aws.rds(region);
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            match rds.describe_instance(identifier).await {
                Ok(db) if db.status == "available" => return Ok(db),
                Ok(db) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "`{identifier}` is still `{}` after {}\nhint: `suma dr resume` waits again",
                        db.status,
                        humantime::format_duration(self.wait_timeout)
                    )))
                }
                Ok(_) => {}
                // A renamed instance takes a moment to answer under its new name.
                Err(e) if e.kind == AwsErrorKind::NotFound && tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
            run.sleep(self.poll).await?;
        }
    }

    async fn create_replica_of(
        &self,
        run: &Run<'_>,
        target: &crate::config::DbInstanceRef,
        source: &DbInstance,
        source_region: &AwsRegion,
    ) -> Result<DbInstance, StepError> {
        let rds = self.aws.rds(&target.region);
        match rds.describe_instance(&target.identifier).await {
            // An earlier attempt's replica is adopted; anything else under the name is not.
            Ok(existing) if check::replicates_from(&existing, &source.identifier, Some(&source.arn)) => {}
            Ok(existing) => {
                return Err(StepError::failed(format!(
                    "`{}` in {} exists but does not replicate from `{}` (its source: {}): it is not adopted as the new replica\nhint: rename or delete that instance (or fix `rds` in the configuration), then `suma dr resume`",
                    target.identifier,
                    target.region,
                    source.identifier,
                    existing.replica_source.as_deref().unwrap_or("none, it is standalone")
                )))
            }
            Err(e) if e.kind == AwsErrorKind::NotFound => {
                run.mutating()?;
                rds.create_read_replica(
                    &target.identifier,
                    &source.arn,
                    source_region.as_str(),
                    &source.instance_class,
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.wait_available(run, &target.region, &target.identifier).await
    }

    async fn create_primary_replica(&self, run: &Run<'_>) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let dr_db = self
            .aws
            .rds(&replica.region)
            .describe_instance(&replica.identifier)
            .await?;
        let db = self
            .create_replica_of(run, &self.env.rds.primary, &dr_db, &replica.region)
            .await?;
        Ok(StepEnd::Done(Facts::from([(
            "new_primary_endpoint".to_owned(),
            json!(db.endpoint),
        )])))
    }

    fn confirm(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
        let primary = &self.env.rds.primary.identifier;
        let question = format!(
            "fail `{}` back to {}: rename the stale `{primary}` out of the way (kept), rebuild `{primary}` as a replica of the DR database, drain the DR service, promote `{primary}` and move DNS",
            self.environment, self.env.primary_region
        );
        if self.gate.confirm(&question) {
            let actor = op.actor.clone();
            op.note(&actor, format!("failback switch confirmed by {actor}"));
            Ok(StepEnd::Done(Facts::from([(
                "confirmed_by".to_owned(),
                json!(op.actor),
            )])))
        } else {
            Err(StepError::failed(
                "the failback was not confirmed; nothing was changed\nhint: `suma dr resume` asks again, `suma dr abort` ends it".to_owned(),
            ))
        }
    }

    async fn drain_dr(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let cfg = &self.env.ecs.dr;
        // What abort must give back is journaled before the drain, once (a restart may find it drained).
        if op.fact("dr_desired").is_none() {
            let found = self
                .aws
                .ecs(&self.env.dr_region)
                .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
                .await?;
            if let Some(svc) = found.first() {
                run.record(op, Facts::from([("dr_desired".to_owned(), json!(svc.desired))]))
                    .await?;
            }
        }
        self.scale(
            run,
            &self.env.dr_region,
            &cfg.cluster,
            &cfg.service,
            cfg.standby_count as i32,
        )
        .await?;
        Ok(StepEnd::Done(Facts::new()))
    }

    /// The DR posture again: the old DR database renamed away, a new replica of the primary in its name.
    async fn restore_replica(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let primary = self
            .aws
            .rds(&self.env.rds.primary.region)
            .describe_instance(&self.env.rds.primary.identifier)
            .await?;
        let stale_name = format!("{}-stale-{}", replica.identifier, suffix(op));
        self.rename_away(run, &replica.region, &replica.identifier, &stale_name)
            .await?;
        let db = self
            .create_replica_of(run, &replica, &primary, &self.env.rds.primary.region)
            .await?;
        Ok(StepEnd::Done(Facts::from([
            ("stale_dr_database".to_owned(), json!(stale_name)),
            ("replica_endpoint".to_owned(), json!(db.endpoint)),
        ])))
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

/// Probes over the service client: `GET /ready`, and a registration of a throwaway address as the write.
pub struct HttpServiceProbe {
    http: suma_http::ServiceClient,
}

impl HttpServiceProbe {
    pub fn new(timeout: Duration) -> Self {
        Self {
            http: suma_http::ServiceClient::new(timeout),
        }
    }
}

#[async_trait]
impl ServiceProbe for HttpServiceProbe {
    async fn ready(&self, base: &str) -> Result<u16, String> {
        let response = self
            .http
            .get(&format!("{base}/ready"))
            .await
            .map_err(|e| e.to_string())?;
        if response.is_success() {
            Ok(response.status)
        } else {
            Err(format!("answered {}", response.status))
        }
    }

    async fn write(&self, base: &str) -> Result<u16, String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // A password that does not contain the address: the service refuses those with 422.
        let body = json!({
            "email": format!("dr-verify-{}@suma.invalid", &id[..12]),
            "password": format!("Suma#{}!x", &id[12..]),
        });
        let response = self
            .http
            .post_json(&format!("{base}/api/auth/register"), &body)
            .await
            .map_err(|e| e.to_string())?;
        if response.is_success() {
            Ok(response.status)
        } else {
            let detail = response
                .json
                .map(|j| j.to_string())
                .or(response.text)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            Err(format!(
                "POST /api/auth/register answered {}: {detail}",
                response.status
            ))
        }
    }
}

/// Datadog events for the engine.
pub struct DatadogEvents {
    pub datadog: crate::metrics::datadog::Datadog,
    pub tags: Vec<String>,
}

#[async_trait]
impl EventSink for DatadogEvents {
    async fn event(&self, title: &str, text: &str, success: bool) -> Result<(), String> {
        use crate::metrics::datadog::EventAlert;
        let alert = if success {
            EventAlert::Success
        } else {
            EventAlert::Error
        };
        self.datadog
            .deployment_event(title, text, &self.tags, alert)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
