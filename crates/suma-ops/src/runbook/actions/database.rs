//! The database actions that change which instance serves, each confirmed by what RDS shows afterwards
//! rather than by the first `available` (which RDS answers for a moment before a reboot or promotion
//! begins): a Multi-AZ failover is done when the instance is available in another zone than before; a
//! promotion when the instance is available and no longer replicates.
//!
//! A failover runs as a child operation journaled before the reboot is asked for, holding the zone it
//! started from, so a run killed after the request neither fails over a second time on resume (which would
//! move the database back) nor loses what it is waiting for; a run killed before its request reached RDS
//! asks again, as the instance still shows its first zone.

use std::collections::BTreeMap;

use serde_json::json;

use super::{arg, outputs, LiveActions, POLL};
use crate::aws::rds::DbInstance;
use crate::config::AwsRegion;
use crate::journal::{Operation, OperationStatus, PlannedStep};
use crate::runbook::engine::{ActionError, Done, StepContext};

/// The kind of a failover's child operation.
pub const FAILOVER_KIND: &str = "database-failover";

impl LiveActions<'_> {
    /// Polls `id` until `done` holds, telling on the way each status it passes through; returns the
    /// instance as last read and whether it was ever seen not `available`.
    async fn wait_for(
        &self,
        region: &AwsRegion,
        id: &str,
        what: &str,
        done: impl Fn(&DbInstance) -> bool,
    ) -> Result<(DbInstance, bool), ActionError> {
        let mut left_available = false;
        loop {
            let db = self.aws.rds(region).describe_instance(id).await?;
            left_available |= db.status != "available";
            if done(&db) {
                return Ok((db, left_available));
            }
            self.ctx.reporter.live(&format!(
                "waiting for {what} of `{id}`: {} in {}",
                db.status,
                db.availability_zone.as_deref().unwrap_or("an unknown zone")
            ));
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `id` to be available.
    pub(super) async fn wait_available(&self, region: &AwsRegion, id: &str) -> Result<DbInstance, ActionError> {
        Ok(self
            .wait_for(region, id, "availability", |db| db.status == "available")
            .await?
            .0)
    }

    pub(super) async fn database_failover(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let (region, id) = self.instance(arg(args, "instance"), "primary")?;
        let rds = self.aws.rds(&region);
        let before = rds.describe_instance(&id).await?;
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(
                    FAILOVER_KIND,
                    &self.name,
                    &self.ctx.settings.actor.value,
                    vec![PlannedStep {
                        name: "reboot-with-failover".to_owned(),
                        detail: format!("reboot `{id}` with failover to its Multi-AZ standby"),
                    }],
                );
                op.parameters.insert("instance".to_owned(), json!(id));
                op.parameters.insert("region".to_owned(), json!(region.as_str()));
                op.parameters
                    .insert("zone_before".to_owned(), json!(before.availability_zone));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        let zone_before = op
            .parameters
            .get("zone_before")
            .and_then(|z| z.as_str())
            .map(str::to_owned);
        if op.status != OperationStatus::Succeeded {
            // What RDS shows decides, on a first attempt as on a resumed one: a failover under way or done
            // shows as another status or another zone, and is not asked for again; an instance still
            // available in its zone was never reached (a run killed between journaling the request and
            // sending it), and is asked again. RDS refuses a failover of an instance already rebooting.
            let under_way = before.status != "available" || before.availability_zone != zone_before;
            if under_way {
                self.ctx.reporter.info(&format!(
                    "`{id}` is {} in {}: the failover asked for earlier is under way",
                    before.status,
                    before.availability_zone.as_deref().unwrap_or("an unknown zone")
                ));
            } else {
                if !before.multi_az {
                    return Err(ActionError::new(format!(
                        "`{id}` is not Multi-AZ: there is no standby to fail over to\nhint: restore from a snapshot (`database.restore-snapshot`) or promote a replica"
                    )));
                }
                if op.fact("failover_requested").is_some() {
                    self.ctx.reporter.info(&format!(
                        "`{id}` is available in {}: the failover asked for earlier never reached RDS, asking again",
                        before.availability_zone.as_deref().unwrap_or("an unknown zone")
                    ));
                }
                op.start_step(0);
                op.record_facts(BTreeMap::from([("failover_requested".to_owned(), json!(true))]));
                self.journal.save(&op, Some(self.guard.fence())).await?;
                // Never a change by a runner that may have lost the environment.
                self.guard.ensure_held()?;
                crate::engine::kill_point(|| {
                    "after the failover's intent is journaled, before RebootDBInstance".to_owned()
                });
                match rds.reboot_with_failover(&id).await {
                    Ok(_) => {}
                    Err(e) if e.detail.contains("InvalidDBInstanceState") => self
                        .ctx
                        .reporter
                        .info(&format!("`{id}` is rebooting already: waiting for that failover")),
                    Err(e) => return Err(e.into()),
                }
                crate::engine::kill_point(|| "after RebootDBInstance, while the instance reboots".to_owned());
            }
        }
        let zone_known = zone_before.is_some();
        let (db, _) = self
            .wait_for(&region, &id, "the failover to the standby", |db| {
                db.status == "available" && (!zone_known || db.availability_zone != zone_before)
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            crate::engine::kill_point(|| "after the failover is seen, before the child's end is journaled".to_owned());
            if op.steps.is_empty() {
                op.start_step(0);
            }
            op.finish_step(
                crate::journal::StepStatus::Succeeded,
                None,
                BTreeMap::from([("zone_after".to_owned(), json!(db.availability_zone))]),
            );
            op.set_status(OperationStatus::Succeeded);
            self.journal.save(&op, Some(self.guard.fence())).await?;
        }
        let mut done = outputs([
            ("status", json!(db.status)),
            ("host", json!(db.host())),
            ("availability_zone", json!(db.availability_zone)),
            ("previous_availability_zone", json!(zone_before)),
        ]);
        done.facts = BTreeMap::from([("child_operation".to_owned(), json!(op.id))]);
        Ok(done)
    }

    pub(super) async fn promote_replica(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        let (region, id) = self.instance(arg(args, "instance"), "replica")?;
        let rds = self.aws.rds(&region);
        let db = rds.describe_instance(&id).await?;
        // A promotion under way (a resumed step) shows as another status; RDS refuses a second one.
        let mut answered = None;
        if db.replica_source.is_some() && db.status == "available" {
            answered = Some(
                rds.promote_read_replica(&id, db.backup_retention_days.max(7))
                    .await?
                    .status,
            );
        }
        let (db, _) = self
            .wait_for(&region, &id, "the promotion", |db| {
                crate::dr::promoted(db, answered.as_deref())
            })
            .await?;
        Ok(outputs([
            ("identifier", json!(db.identifier)),
            ("status", json!(db.status)),
            ("endpoint", json!(db.endpoint)),
            ("host", json!(db.host())),
        ]))
    }

    /// Ends an unfinished failover child on the run's abort. A failover RDS accepted cannot be called
    /// back (failing back is another failover, a decision of its own), so this ends the record and says
    /// where the instance is.
    pub(super) async fn abort_failover(&self, child: &mut Operation) -> Result<String, ActionError> {
        let text = |key: &str| child.parameters.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(region), Some(id)) = (text("region"), text("instance")) else {
            return Err(ActionError::new(format!("failover `{}` names no instance", child.id)));
        };
        let region = AwsRegion::try_from(region).map_err(ActionError::new)?;
        let db = self.aws.rds(&region).describe_instance(&id).await?;
        let state = format!(
            "`{id}` is {} in {}",
            db.status,
            db.availability_zone.as_deref().unwrap_or("an unknown zone")
        );
        child.note(
            &self.ctx.settings.actor.value,
            format!("aborted: a failover RDS accepted cannot be called back; {state}"),
        );
        child.set_status(OperationStatus::Aborted);
        self.journal.save(child, Some(self.guard.fence())).await?;
        Ok(format!(
            "database failover `{}`: ended; a failover RDS accepted cannot be called back; {state}",
            child.id
        ))
    }
}
