//! The steps of a switch to the DR region (failover and switchover), several of which the failback runs
//! too: the failover's readiness (the replica, its lag against the RPO, the DNS records and capacity
//! journaled for the way back), the drain of the primary region, the promotion, the revision that names
//! the promoted database and its rollout, the DNS switch waited until INSYNC, the verification through
//! the switched URL, and the announcement.

use std::time::Duration;

use serde_json::json;

use super::{check, dns, fact_str, promoted, timings, Engine, Facts, Side, FAILBACK, SWITCHOVER};
use crate::aws::ecs::{Rollout, ServiceUpdate};
use crate::aws::rds::DbModification;
use crate::aws::route53::FailoverAlias;
use crate::aws::{AwsError, AwsErrorKind};
use crate::config::AwsRegion;
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::Operation;

/// How long `verify` keeps asking a switched endpoint before it fails: a record's TTL (60 s is usual
/// for failover records) and a resolver's refresh.
const VERIFY_WINDOW: Duration = Duration::from_secs(120);

/// Consecutive unanswered polls after which the primary region is judged down and its drain skipped.
const UNREACHABLE_POLLS: u32 = 4;

/// What a repoint of one side touches.
struct Repoint {
    region: AwsRegion,
    cluster: String,
    service: String,
    db: crate::config::DbInstanceRef,
    fact: &'static str,
}

impl Engine {
    pub(super) async fn failover_readiness(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
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
    pub(super) async fn drain_primary(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
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
        // Its autoscaling would scale it back up: suspended first (and left so until the failback).
        if found.iter().any(|s| s.name == cfg.service) {
            match self.suspend_scaling(run, op, Side::Primary).await {
                Ok(()) => {}
                Err(super::scaling::AwsOrStep::Aws(e)) if region_down(&e) => {
                    self.reporter.warn(&format!(
                        "the autoscaling of `{}` could not be suspended: {e}",
                        cfg.service
                    ));
                    unfenced.push(format!("{} (autoscaling)", cfg.service));
                }
                Err(e) => return Err(e.into()),
            }
        }
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

    /// Promotes `identifier` unless it already is, waits until it takes writes, then turns backups and
    /// multi-AZ on.
    pub(super) async fn promote(
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

    pub(super) async fn scale(
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

    pub(super) async fn wait_rollout(
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
    pub(super) async fn promote_and_scale(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let cfg = &self.env.ecs;
        let (td, _) = self.repointed_revision(run, op, Side::Dr).await?;
        // Its scale-in would fight the scale-up: suspended until `resume-scaling`.
        self.suspend_scaling(run, op, Side::Dr).await?;
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

    /// Which service a repoint changes, the database it names, and the fact its revision is journaled
    /// under.
    fn repoint_target(&self, side: Side) -> Result<Repoint, StepError> {
        let (region, cluster, service) = side.service(&self.env);
        let (db, fact) = match side {
            Side::Dr => (self.replica()?, "dr_task_definition"),
            Side::Primary => (self.env.rds.primary.clone(), "primary_task_definition"),
        };
        Ok(Repoint {
            region: region.clone(),
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            db,
            fact,
        })
    }

    /// The revision of `side`'s service whose host variable names its database's endpoint: the one
    /// journaled by an earlier step or attempt, else a new one, journaled at once.
    pub(super) async fn repointed_revision(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        side: Side,
    ) -> Result<(String, String), StepError> {
        let Repoint {
            region,
            cluster,
            service,
            db,
            fact,
        } = self.repoint_target(side)?;
        let endpoint = self.endpoint_of(&db.region, &db.identifier).await?;
        if let Some(td) = fact_str(op, fact) {
            return Ok((td, endpoint));
        }
        let td = self
            .register_host_revision(run, op, (&region, &cluster, &service), &endpoint, fact)
            .await?;
        Ok((td, endpoint))
    }

    /// A new revision of `service`'s current task definition whose host variable is `endpoint`,
    /// journaled as `fact` at once.
    pub(super) async fn register_host_revision(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        (region, cluster, service): (&AwsRegion, &str, &str),
        endpoint: &str,
        fact: &str,
    ) -> Result<String, StepError> {
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
                &suma_core::taskdef::ContainerChange::variable(&self.env.dr.database_host_variable, endpoint),
            )
            .await?
            .arn;
        run.record(op, Facts::from([(fact.to_owned(), json!(td))])).await?;
        Ok(td)
    }

    /// Points `side`'s service at its database: a new revision with the endpoint (`address:port`) in
    /// the host variable the service reads (`DATABASE_HOST`, which replaces the host of the replicated
    /// `DATABASE_URL` secret; a replica secret cannot be rewritten in its region), rolled out at
    /// production capacity.
    pub(super) async fn repoint(&self, run: &Run<'_>, op: &mut Operation, side: Side) -> Result<StepEnd, StepError> {
        // On a resume, or after the scale-up registered it, the revision registered before is reused.
        let (td, endpoint) = self.repointed_revision(run, op, side).await?;
        let Repoint {
            region,
            cluster,
            service,
            fact,
            ..
        } = self.repoint_target(side)?;
        let update = ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(self.env.ecs.desired_count as i32),
            force_new_deployment: false,
        };
        run.mutating()?;
        self.aws
            .ecs(&region)
            .update_service(&cluster, &service, &update)
            .await?;
        self.wait_rollout(run, &region, &cluster, &service, &td).await?;
        Ok(StepEnd::Done(Facts::from([
            (fact.to_owned(), json!(td)),
            ("database_host".to_owned(), json!(endpoint)),
        ])))
    }

    /// Failover: the PRIMARY record to the DR load balancer (with the secondary's health check);
    /// failback: the PRIMARY record as it was before the failover.
    pub(super) async fn switch_dns(
        &self,
        run: &Run<'_>,
        op: &mut Operation,
        to_dr: bool,
    ) -> Result<StepEnd, StepError> {
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
    pub(super) async fn verify(&self, run: &Run<'_>, base: Option<String>) -> Result<StepEnd, StepError> {
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

    pub(super) async fn announce(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
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
}
