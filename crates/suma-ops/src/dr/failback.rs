//! The failback's own steps: its readiness (the newest completed switch was a failover or a switchover, the
//! DR database is the writable primary, the primary region answers), the confirmation, the rename of the
//! stale primary (waited for), the new primary created as a replica of the DR database (adopted only when
//! it replicates from it), DR drained to zero and waited for (the catch-up that follows is the
//! switchover's, in `switchover.rs`), the cross-region replica rebuilt afterwards, and DR's standby
//! tasks brought back pointed at the primary.

use serde_json::json;

use super::{check, is_away_kind, suffix, Engine, Facts, FAILBACK};
use crate::aws::rds::{DbInstance, DbModification, Placement};
use crate::aws::AwsErrorKind;
use crate::config::AwsRegion;
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::{Operation, OperationStatus};

impl Engine {
    pub(super) async fn failback_readiness(&self) -> Result<StepEnd, StepError> {
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
        // The catch-up before the promotion must be able to read the DR database: checked now, before
        // anything is renamed or drained, not after the rebuild (the rebuilt instance it also reads does
        // not exist yet; its sign-in is checked to be present).
        let dr_endpoint = dr_db.host().unwrap_or_default();
        let readable = match (self.failback_replication)(&dr_endpoint, &dr_endpoint) {
            Ok(positions) => positions.other_sessions().await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = readable {
            return Err(StepError::refused(format!(
                "the DR database `{}` cannot be read for the catch-up before the promotion: {e}\nhint: a failback loses no write the DR region acknowledged only if it can compare the two databases; set `{}` and `{}` (through `SUMA_DB_CONNECT_TO` for a port forward) and run it again",
                dr_db.identifier,
                crate::env_vars::SUMA_DR_REPLICA_URL,
                crate::env_vars::SUMA_DR_PRIMARY_URL
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
        // Where the two instances the failback builds will live, decided (and journaled) before anything
        // changes: the new primary like the stale one it replaces, the rebuilt replica like the DR
        // database it replaces, each overridden by the configuration.
        let primary_placement = self.placement_for("primary", &self.env.rds.primary, stale.as_ref().ok(), &dr_db)?;
        let replica_placement = self.placement_for("replica", &replica, Some(&dr_db), &dr_db)?;
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
            ("primary_placement".to_owned(), json!(primary_placement)),
            ("replica_placement".to_owned(), json!(replica_placement)),
            // The primary's autoscaling as it was before the failover, restored at the end.
            (
                "primary_scaling".to_owned(),
                last.fact("primary_scaling").cloned().unwrap_or(serde_json::Value::Null),
            ),
        ])))
    }

    /// Moves the stale primary out of the way so the new one takes its name (and its endpoint). Whether
    /// the rename already happened is told by the new name, not by the replication source, which moto
    /// leaves set on promoted instances.
    pub(super) async fn rename_stale_primary(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
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
    pub(super) async fn rename_away(
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
    pub(super) async fn wait_gone(&self, run: &Run<'_>, region: &AwsRegion, identifier: &str) -> Result<(), StepError> {
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

    pub(super) async fn wait_available(
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

    /// The placement of the instance `target` (the configuration's `rds.ROLE`) built to replace `like`
    /// as a replica of `source`: `like`'s, overridden by the configuration; refused when it would leave
    /// the instance outside the VPC or unencrypted by a key of its region.
    fn placement_for(
        &self,
        role: &str,
        target: &crate::config::DbInstanceRef,
        like: Option<&DbInstance>,
        source: &DbInstance,
    ) -> Result<Placement, StepError> {
        let placement = like
            .map(|l| l.placement.clone())
            .unwrap_or_default()
            .overridden_by(&target.placement.clone().unwrap_or_default());
        let missing = placement.missing_for(source.storage_encrypted);
        if missing.is_empty() {
            return Ok(placement);
        }
        let keys: Vec<String> = missing
            .iter()
            .map(|field| format!("`rds.{role}.placement.{field}`"))
            .collect();
        Err(StepError::refused(format!(
            "the failback would create `{}` in {} without {}: {}; nothing was changed\nhint: set {} in the configuration (the instance it replaces names none to copy)",
            target.identifier,
            target.region,
            missing.join(", "),
            if like.is_none() { "no instance is there to copy them from" } else { "the instance it replaces has none" },
            keys.join(", ")
        )))
    }

    /// The placement journaled under `fact` by the readiness.
    fn journaled_placement(op: &Operation, fact: &str) -> Result<Placement, StepError> {
        op.fact(fact)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| StepError::failed(format!("the journal has no `{fact}` from the failback's readiness")))
    }

    pub(super) async fn create_replica_of(
        &self,
        run: &Run<'_>,
        target: &crate::config::DbInstanceRef,
        source: &DbInstance,
        source_region: &AwsRegion,
        placement: &Placement,
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
                    placement,
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.wait_available(run, &target.region, &target.identifier).await
    }

    pub(super) async fn create_primary_replica(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let placement = Self::journaled_placement(op, "primary_placement")?;
        let dr_db = self
            .aws
            .rds(&replica.region)
            .describe_instance(&replica.identifier)
            .await?;
        let db = self
            .create_replica_of(run, &self.env.rds.primary, &dr_db, &replica.region, &placement)
            .await?;
        Ok(StepEnd::Done(Facts::from([(
            "new_primary_endpoint".to_owned(),
            json!(db.endpoint),
        )])))
    }

    pub(super) fn confirm(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
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

    pub(super) async fn drain_dr(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
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
        self.suspend_scaling(run, op, super::Side::Dr).await?;
        // To zero, standby included: every DR task writes to the DR database until the promotion, and a
        // write after the catch-up's marker would be lost. The standby comes back pointed at the
        // primary (`standby-dr`).
        self.scale(run, &self.env.dr_region, &cfg.cluster, &cfg.service, 0)
            .await?;
        let waited = self
            .wait_drained_in(
                run,
                &self.env.dr_region,
                &cfg.cluster,
                std::slice::from_ref(&cfg.service),
                "scales DR back",
            )
            .await?;
        Ok(StepEnd::Done(Facts::from([(
            "drained_after_ms".to_owned(),
            json!(waited.as_millis() as u64),
        )])))
    }

    /// The DR service's standby again, now writing to the primary across regions as before the
    /// failover: a revision with the host variable on the primary's endpoint, at `standby_count`.
    pub(super) async fn standby_dr(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let cfg = &self.env.ecs.dr;
        if cfg.standby_count == 0 {
            return Ok(StepEnd::skipped(
                "no standby tasks configured (`ecs.dr.standby_count` is 0): DR stays a pilot light",
                Facts::new(),
            ));
        }
        let primary = &self.env.rds.primary;
        let endpoint = self.endpoint_of(&primary.region, &primary.identifier).await?;
        let ecs = self.aws.ecs(&self.env.dr_region);
        let td = match super::fact_str(op, "dr_standby_task_definition") {
            Some(td) => td,
            None => {
                let at = (&self.env.dr_region, cfg.cluster.as_str(), cfg.service.as_str());
                self.register_host_revision(run, op, at, &endpoint, "dr_standby_task_definition")
                    .await?
            }
        };
        let update = crate::aws::ecs::ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(cfg.standby_count as i32),
            force_new_deployment: false,
        };
        run.mutating()?;
        ecs.update_service(&cfg.cluster, &cfg.service, &update).await?;
        self.wait_rollout(run, &self.env.dr_region, &cfg.cluster, &cfg.service, &td)
            .await?;
        Ok(StepEnd::Done(Facts::from([
            ("dr_standby_task_definition".to_owned(), json!(td)),
            ("database_host".to_owned(), json!(endpoint)),
        ])))
    }

    /// The DR posture again: the old DR database renamed away, a new replica of the primary in its name.
    pub(super) async fn restore_replica(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let primary = self
            .aws
            .rds(&self.env.rds.primary.region)
            .describe_instance(&self.env.rds.primary.identifier)
            .await?;
        let placement = Self::journaled_placement(op, "replica_placement")?;
        let stale_name = format!("{}-stale-{}", replica.identifier, suffix(op));
        self.rename_away(run, &replica.region, &replica.identifier, &stale_name)
            .await?;
        let db = self
            .create_replica_of(run, &replica, &primary, &self.env.rds.primary.region, &placement)
            .await?;
        Ok(StepEnd::Done(Facts::from([
            ("stale_dr_database".to_owned(), json!(stale_name)),
            ("replica_endpoint".to_owned(), json!(db.endpoint)),
        ])))
    }
}
