//! The action table: each built-in action's name mapped to its implementation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use std::path::PathBuf;

use super::{arg, duration_arg, outputs, required, LiveActions};
use crate::admin::{AdminApi, AuditQuery};
use crate::aws::ecs::ServiceUpdate;
use crate::metrics::datadog::{EventAlert, MonitorRef};
use crate::runbook::engine::{ActionError, Done, StepContext};

impl LiveActions<'_> {
    pub(super) async fn dispatch(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let which = arg(args, "service");
        match step.step.action.as_str() {
            "service.status" => {
                let s = self.describe_service(which).await?;
                Ok(outputs([
                    ("running", json!(s.running)),
                    ("desired", json!(s.desired)),
                    ("pending", json!(s.pending)),
                    ("task_definition", json!(s.task_definition)),
                ]))
            }
            "service.scale" => {
                let count: i32 = required(args, "count")?.parse()?;
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                let update = ServiceUpdate {
                    desired_count: Some(count),
                    ..ServiceUpdate::default()
                };
                self.aws.ecs(region).update_service(cluster, service, &update).await?;
                let after = self
                    .wait_service(which, &format!("`{service}` to run {count} tasks"), |s| {
                        Ok(s.running == count && s.desired == count)
                    })
                    .await?;
                Ok(outputs([
                    ("previous_count", json!(before.desired)),
                    ("desired_count", json!(count)),
                    ("running", json!(after.running)),
                ]))
            }
            "service.force-redeploy" => {
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                // The count as it is: a no-op on ECS, and what makes moto recount the service's tasks.
                let update = ServiceUpdate {
                    force_new_deployment: true,
                    desired_count: Some(before.desired),
                    ..ServiceUpdate::default()
                };
                self.aws.ecs(region).update_service(cluster, service, &update).await?;
                let td = before.task_definition.clone();
                self.wait_rollout(which, &td).await?;
                Ok(outputs([("task_definition", json!(td))]))
            }
            "service.set-env" => {
                let before = self.describe_service(which).await?;
                let (region, cluster, service) = self.service(which);
                let ecs = self.aws.ecs(region);
                let td = ecs
                    .register_revision(
                        &before.task_definition,
                        &self.env.ecs.container,
                        &suma_core::taskdef::ContainerChange::variable(
                            required(args, "name")?,
                            arg(args, "value").unwrap_or_default(),
                        ),
                    )
                    .await?;
                let update = ServiceUpdate {
                    task_definition: Some(td.arn.clone()),
                    desired_count: Some(before.desired),
                    ..ServiceUpdate::default()
                };
                ecs.update_service(cluster, service, &update).await?;
                let arn = td.arn.clone();
                self.wait_rollout(which, &arn).await?;
                Ok(outputs([
                    ("task_definition", json!(td.arn)),
                    ("previous_task_definition", json!(before.task_definition)),
                ]))
            }
            "service.rollback" => self.rollback(args, step).await,
            "database.describe" => {
                let (region, id) = self.instance(arg(args, "instance"), "primary")?;
                let rds = self.aws.rds(&region);
                let db = rds.describe_instance(&id).await?;
                let latest = rds
                    .snapshots(&id)
                    .await?
                    .into_iter()
                    .find(|s| s.status == "available")
                    .map(|s| s.identifier);
                Ok(outputs([
                    ("identifier", json!(db.identifier)),
                    ("status", json!(db.status)),
                    ("multi_az", json!(db.multi_az)),
                    ("endpoint", json!(db.endpoint)),
                    ("host", json!(db.host())),
                    ("latest_snapshot", json!(latest.unwrap_or_default())),
                ]))
            }
            "database.failover" => self.database_failover(args, step).await,
            "database.restore-snapshot" => {
                let (region, id) = self.instance(arg(args, "instance"), "primary")?;
                let target = required(args, "target")?;
                let rds = self.aws.rds(&region);
                let source = rds.describe_instance(&id).await?;
                let snapshot = match arg(args, "snapshot").unwrap_or("latest") {
                    "latest" => rds
                        .snapshots(&id)
                        .await?
                        .into_iter()
                        .find(|s| s.status == "available")
                        .map(|s| s.identifier)
                        .ok_or_else(|| ActionError::new(format!("`{id}` has no available snapshot to restore")))?,
                    named => named.to_owned(),
                };
                // A resumed step finds the instance it already restored.
                match rds.describe_instance(target).await {
                    Ok(_) => self
                        .ctx
                        .reporter
                        .info(&format!("`{target}` exists already: not restoring again")),
                    Err(e) if e.kind == crate::aws::AwsErrorKind::NotFound => {
                        rds.restore_from_snapshot(&snapshot, target, &source).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                let db = self.wait_available(&region, target).await?;
                Ok(outputs([
                    ("identifier", json!(db.identifier)),
                    ("endpoint", json!(db.endpoint)),
                    ("host", json!(db.host())),
                    ("snapshot", json!(snapshot)),
                ]))
            }
            "database.promote-replica" => self.promote_replica(args).await,
            "sql.query" => self.sql_query(args).await,
            "dr.check" => {
                let report = crate::dr::setup::readiness(&self.name, &self.env, &self.session, &self.journal).await;
                let failed = report
                    .items
                    .iter()
                    .filter(|i| i.status == crate::dr::check::CheckStatus::Fail)
                    .count();
                Ok(outputs([
                    ("ready", json!(!report.failed())),
                    ("failed_checks", json!(failed)),
                    ("estimated_rto_secs", json!(report.estimated_rto_secs)),
                ]))
            }
            "dr.failover" => self.dr_failover(args, step).await,
            "dns.failover" => self.dns_failover(args).await,
            "secret.rotate" => self.secret_rotate(args, step).await,
            "auth.revoke-refresh-tokens" => {
                let revoked = self.admin().await?.revoke_refresh_tokens(arg(args, "user_id")).await?;
                Ok(outputs([("revoked", json!(revoked))]))
            }
            "auth.invalidate-sessions" => {
                let revoked = self.admin().await?.revoke_sessions(arg(args, "user_id")).await?;
                Ok(outputs([("revoked", json!(revoked))]))
            }
            "auth.export-audit" => {
                let since = duration_arg(args, "since", Duration::from_secs(72 * 3600))?;
                let path = arg(args, "path").map_or_else(
                    || {
                        self.ctx
                            .settings
                            .state_dir()
                            .join("audit")
                            .join(format!("{}-{}.jsonl", step.operation.id, step.step.id))
                    },
                    PathBuf::from,
                );
                let query = AuditQuery {
                    since: Some(chrono::Utc::now() - chrono::Duration::from_std(since)?),
                    event_type: arg(args, "type").map(str::to_owned),
                    after: None,
                    limit: 1000,
                };
                let (count, sha) = crate::admin::export_audit(&self.admin().await?, query, &path).await?;
                Ok(outputs([
                    ("count", json!(count)),
                    ("path", json!(path)),
                    ("sha256", json!(sha)),
                ]))
            }
            "http.check" => self.http_check(args).await,
            "compliance.check" => {
                let fail_on = match arg(args, "fail_on").unwrap_or("high") {
                    "critical" => crate::compliance::Severity::Critical,
                    "high" => crate::compliance::Severity::High,
                    "medium" => crate::compliance::Severity::Medium,
                    "low" => crate::compliance::Severity::Low,
                    other => {
                        return Err(ActionError::new(format!(
                            "`fail_on: {other}` is not a severity: use critical, high, medium or low"
                        )))
                    }
                };
                let checks = crate::compliance::Selection::default()
                    .select()
                    .map_err(|e| ActionError::new(e.to_string()))?;
                let suppressions =
                    crate::compliance::setup::suppressions(&self.name, &self.env, chrono::Utc::now().date_naive())
                        .map_err(|e| ActionError::new(format!("{e:#}")))?;
                let report = crate::compliance::setup::gather(
                    self.ctx,
                    &self.name,
                    &self.env,
                    checks,
                    crate::compliance::run::Scope::Config,
                    self.env.url.as_ref().map(ToString::to_string),
                    suppressions,
                    fail_on,
                )
                .await;
                let count = |status| report.findings.iter().filter(|f| f.status == status).count();
                let (passed, failed, errors) = (
                    count(crate::compliance::Status::Pass),
                    count(crate::compliance::Status::Fail),
                    count(crate::compliance::Status::Error),
                );
                if !report.passed {
                    return Err(ActionError::new(format!(
                        "compliance failed at `{}` or above: {failed} failing finding(s); `suma compliance check --env {}` shows them",
                        fail_on.as_str(),
                        self.name
                    )));
                }
                // A check that could not read what it judges proves nothing: the step has not shown
                // compliance (as `suma compliance check` exits 3).
                if errors > 0 {
                    return Err(ActionError::new(format!(
                        "{errors} compliance check(s) could not read what they judge, so compliance is not shown; `suma compliance check --env {}` names them",
                        self.name
                    )));
                }
                Ok(outputs([
                    ("passed", json!(passed)),
                    ("failed", json!(failed)),
                    ("errors", json!(errors)),
                ]))
            }
            "datadog.event" => {
                let alert = match arg(args, "alert_type").unwrap_or("info") {
                    "warning" => EventAlert::Warning,
                    "error" => EventAlert::Error,
                    "success" => EventAlert::Success,
                    _ => EventAlert::Info,
                };
                let title = required(args, "title")?;
                // Without a `datadog` section there is nowhere to post: the step says it skipped. A
                // configured Datadog that cannot take the event fails the step: the timeline would
                // otherwise claim a marker nobody will find.
                let datadog = match crate::events::datadog(&self.env) {
                    Ok(Some(datadog)) => datadog,
                    Ok(None) => {
                        let why = format!("environment `{}` has no `datadog` section", self.name);
                        self.ctx
                            .reporter
                            .warn(&format!("the Datadog event `{title}` was skipped: {why}"));
                        return Ok(outputs([("posted", json!(false)), ("skipped", json!(why))]));
                    }
                    Err(e) => return Err(ActionError::new(format!("no Datadog event `{title}`: {e:#}"))),
                };
                let tags = crate::events::event_tags(
                    &self.env,
                    &[
                        format!("env:{}", self.name),
                        format!("runbook:{}", self.runbook),
                        format!("run:{}", step.operation.id),
                        "source:suma".to_owned(),
                    ],
                );
                datadog
                    .deployment_event(title, arg(args, "text").unwrap_or_default(), &tags, alert)
                    .await
                    .map_err(|e| ActionError::new(format!("the Datadog event `{title}` was not recorded: {e:#}")))?;
                Ok(outputs([("posted", json!(true))]))
            }
            "datadog.mute" | "datadog.unmute" => {
                let datadog = crate::events::datadog(&self.env)
                    .map_err(|e| ActionError::new(format!("{e:#}")))?
                    .ok_or_else(|| ActionError::new(format!("environment `{}` has no `datadog` section", self.name)))?;
                let monitor = MonitorRef::Name(required(args, "monitor")?.to_owned());
                if step.step.action == "datadog.mute" {
                    let until = chrono::Utc::now()
                        + chrono::Duration::from_std(duration_arg(args, "duration", Duration::from_secs(3600))?)?;
                    let reason = format!(
                        "muted by runbook `{}`, run {} ({})",
                        self.runbook, step.operation.id, step.operation.actor
                    );
                    let muted = datadog.mute_monitor(&monitor, None, Some(until), &reason).await?;
                    Ok(outputs([
                        ("monitor_id", json!(muted.monitor_id)),
                        ("until", json!(until.to_rfc3339())),
                        ("downtime_id", json!(muted.downtime_id)),
                    ]))
                } else {
                    let unmuted = datadog.unmute_monitor(&monitor, None).await?;
                    Ok(outputs([
                        ("monitor_id", json!(unmuted.monitor_id)),
                        ("downtimes", json!(unmuted.downtimes)),
                    ]))
                }
            }
            "aws.call" => self.aws_call(args).await,
            "clock.deadline" => {
                let within = duration_arg(args, "within", Duration::from_secs(72 * 3600))?;
                let at = step.operation.started_at + chrono::Duration::from_std(within)?;
                Ok(outputs([("at", json!(at.format("%Y-%m-%d %H:%M UTC").to_string()))]))
            }
            other => Err(ActionError::new(format!("action `{other}` has no implementation"))),
        }
    }
}
