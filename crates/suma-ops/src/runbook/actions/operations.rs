//! The actions that are operations of their own, run as child operations under the run's lock: a secret
//! rotation, the DNS failover, a DR failover, a rollback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{arg, outputs, required, LiveActions, POLL};
use crate::config::SecretKind;
use crate::journal::{Operation, OperationStatus};
use crate::runbook::engine::{ActionError, Done, Outputs, StepContext};

impl LiveActions<'_> {
    /// The rotation engine of `secret` for a child operation: its journal is the run's (fenced by the
    /// run's lock).
    fn rotator(&self, secret: &crate::config::ManagedSecret) -> crate::secrets::Rotator {
        let mut rotator =
            crate::secrets::setup::rotator(self.ctx, &self.env, secret, &self.session, Duration::from_secs(600));
        rotator.journal = self.journal.clone();
        rotator
    }

    /// The DR engine for a child failover or failback, journaled under the run's lock; the run itself
    /// was confirmed, so the failback's gate says yes.
    fn dr_engine(&self) -> crate::dr::Engine {
        let mut engine = crate::dr::setup::engine(
            self.ctx,
            &self.name,
            &self.env,
            &self.session,
            Duration::from_secs(1800),
            Arc::new(crate::dr::Yes),
        );
        engine.journal = self.journal.clone();
        engine
    }

    pub(super) async fn secret_rotate(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let secret = self
            .secret(Some(required(args, "secret")?), SecretKind::Random)?
            .clone();
        let session = &self.session;
        let kind = crate::secrets::setup::rotation(&self.env, &secret, session)
            .map_err(|e| ActionError::new(format!("{e:#}")))?;
        let rotator = self.rotator(&secret);
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(
                    crate::secrets::KIND,
                    &self.name,
                    &self.ctx.settings.actor.value,
                    crate::secrets::plan(&secret, &self.env.ecs.cluster),
                );
                op.parameters.insert("secret".to_owned(), json!(secret.id));
                op.parameters.insert("kind".to_owned(), json!(secret.kind.as_str()));
                op.parameters
                    .insert("token".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            if secret.kind == SecretKind::JwtSigningKey && op.steps.is_empty() && arg(args, "force") != Some("true") {
                crate::secrets::setup::refuse_during_overlap(self.ctx, &self.name, &secret, session)
                    .await
                    .map_err(|e| Self::child_failed(&op, format!("{e:#}")))?;
            }
            let outcome = rotator
                .run(&mut op, kind.as_ref(), self.guard)
                .await
                .map_err(|e| Self::child_failed(&op, e.to_string()))?;
            if !matches!(outcome, crate::secrets::Outcome::Rotated { .. }) {
                return Err(Self::child_failed(
                    &op,
                    format!("rotation `{}` of `{}` ended {}", op.id, secret.id, json!(outcome)),
                ));
            }
        }
        let version = op.parameters.get("token").cloned().unwrap_or(Value::Null);
        Ok(Done {
            outputs: Outputs::from([("operation".to_owned(), json!(op.id)), ("version".to_owned(), version)]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    /// Points the PRIMARY failover record at `to` and waits until Route 53 has it everywhere. A
    /// record already in place is left alone, so a resumed step does not write it twice.
    pub(super) async fn dns_failover(&self, args: &BTreeMap<String, String>) -> Result<Done, ActionError> {
        use crate::dr::dns::{self, DnsSide, HealthChecks};
        let side = DnsSide::parse(required(args, "to")?)
            .ok_or_else(|| ActionError::new("`to` must be `primary` or `dr`".to_owned()))?;
        let zone = &self.env.dns.hosted_zone_id;
        let name = &self.env.dns.record_name;
        let primary_target = match side {
            DnsSide::Primary => Some(
                self.aws
                    .elb(&self.env.primary_region)
                    .listener_alias_target(self.env.alb.listener_arn.as_str())
                    .await?,
            ),
            DnsSide::Dr => None,
        };
        let route53 = self.aws.route53();
        let records = route53.failover_aliases(zone, name).await?;
        let checks = HealthChecks {
            primary: self.env.dns.primary_health_check_id.as_deref(),
            secondary: self.env.dns.secondary_health_check_id.as_deref(),
        };
        // Every PRIMARY record of the name (an A record and its AAAA twin) moves, in one change.
        let switches =
            dns::plan_all(name, &records, side, primary_target.as_ref(), checks).map_err(ActionError::new)?;
        let switch = &switches[0];
        let change_id = if switches.iter().all(dns::DnsSwitch::in_place) {
            self.ctx.reporter.info(&format!(
                "`{name}` already points at {}: not changing it",
                switch.wanted.target_dns
            ));
            None
        } else {
            let wanted: Vec<_> = switches.iter().map(|s| s.wanted.clone()).collect();
            let id = route53.upsert_failover_aliases(zone, &wanted).await?;
            loop {
                let status = route53.change_status(&id).await?;
                if status == "INSYNC" {
                    break;
                }
                self.ctx
                    .reporter
                    .live(&format!("waiting for Route 53 change `{id}` to be INSYNC: {status}"));
                tokio::time::sleep(POLL).await;
            }
            Some(id)
        };
        Ok(outputs([
            ("target", json!(switch.wanted.target_dns)),
            ("previous_target", json!(switch.current.target_dns)),
            ("changed", json!(change_id.is_some())),
            ("change_id", json!(change_id.unwrap_or_default())),
        ]))
    }

    pub(super) async fn dr_failover(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let engine = self.dr_engine();
        let reason = required(args, "reason")?.to_owned();
        let accept = arg(args, "accept_data_loss") == Some("true");
        let mut op = self
            .child(step, || {
                let mut op = Operation::new(
                    crate::dr::Direction::Failover.kind(),
                    &self.name,
                    &self.ctx.settings.actor.value,
                    crate::dr::plan(crate::dr::Direction::Failover, &self.name, &self.env),
                );
                op.parameters.insert("accept_data_loss".to_owned(), json!(accept));
                op.parameters.insert("reason".to_owned(), json!(reason));
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            let outcome = engine
                .run(&mut op, self.guard)
                .await
                .map_err(|e| Self::child_failed(&op, e.to_string()))?;
            if outcome != crate::dr::Outcome::Completed {
                return Err(Self::child_failed(
                    &op,
                    format!("failover `{}` ended {}", op.id, json!(outcome)),
                ));
            }
        }
        let timings = crate::dr::timings(&op, self.env.dr.rto);
        Ok(Done {
            outputs: Outputs::from([
                ("operation".to_owned(), json!(op.id)),
                ("rto_secs".to_owned(), json!(timings.total_secs)),
            ]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    pub(super) async fn rollback(
        &self,
        args: &BTreeMap<String, String>,
        step: &StepContext<'_>,
    ) -> Result<Done, ActionError> {
        let reason = required(args, "reason")?.to_owned();
        let to = arg(args, "to").unwrap_or("previous").to_owned();
        let journal = self.ctx.journal(&self.session);
        // A resumed child keeps the resolution recorded when it started; this one is used only for a new one.
        let prepared = crate::rollback::prepare(&self.name, &self.env, self.aws.as_ref(), &journal, &to)
            .await
            .map_err(|e| ActionError::new(format!("{e:#}")))?;
        let mut op = self
            .child(step, || {
                let mut op = prepared.operation(&self.name, &self.ctx.settings.actor.value, &to, &reason);
                op.parameters.insert("runbook_run".to_owned(), json!(step.operation.id));
                op
            })
            .await?;
        if op.status != OperationStatus::Succeeded {
            let result = crate::rollback::execute(
                &self.env,
                self.aws.as_ref(),
                &self.journal,
                self.ctx.reporter.as_ref(),
                &step.cancel,
                &mut op,
                self.guard,
                Duration::from_secs(900),
            )
            .await;
            crate::rollback::announce(&self.name, &self.env, self.ctx.reporter.as_ref(), &op, result.is_ok()).await;
            result.map_err(|e| Self::child_failed(&op, format!("{e:#}")))?;
        }
        Ok(Done {
            outputs: Outputs::from([
                ("operation".to_owned(), json!(op.id)),
                (
                    "task_definition".to_owned(),
                    op.fact("target_task_definition").cloned().unwrap_or(Value::Null),
                ),
            ]),
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        })
    }

    /// Aborts an unfinished child operation the way its own command's `abort` would.
    pub(super) async fn abort_child_operation(&self, child: &mut Operation) -> Result<String, ActionError> {
        let by = self.ctx.settings.actor.value.clone();
        let failed = |e: &dyn std::fmt::Display| ActionError::new(e.to_string());
        child.set_status(OperationStatus::Running);
        match child.kind.as_str() {
            crate::secrets::KIND => {
                let named = child
                    .parameters
                    .get("secret")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let secret = self.secret(Some(named), SecretKind::Random)?.clone();
                let kind = crate::secrets::setup::rotation(&self.env, &secret, &self.session)
                    .map_err(|e| ActionError::new(format!("{e:#}")))?;
                let rotator = self.rotator(&secret);
                let outcome = rotator
                    .abort(child, kind.as_ref(), self.guard, &by)
                    .await
                    .map_err(|e| failed(&e))?;
                Ok(format!(
                    "rotation `{}` of `{}`: {}",
                    child.id,
                    secret.id,
                    json!(outcome)
                ))
            }
            kind if crate::dr::Direction::ALL.iter().any(|d| d.kind() == kind) => {
                let engine = self.dr_engine();
                let outcome = engine.abort(child, self.guard, &by).await.map_err(|e| failed(&e))?;
                Ok(format!("{} `{}`: {}", child.kind, child.id, json!(outcome)))
            }
            crate::rollback::KIND => {
                let note = crate::rollback::abort(
                    &self.env,
                    self.aws.as_ref(),
                    &self.journal,
                    self.ctx.reporter.as_ref(),
                    &self.ctx.cancel,
                    child,
                    self.guard,
                    &by,
                )
                .await
                .map_err(|e| ActionError::new(format!("{e:#}")))?;
                Ok(format!("rollback `{}`: {note}", child.id))
            }
            super::database::FAILOVER_KIND => self.abort_failover(child).await,
            other => Ok(format!("child operation `{}` ({other}) left as it is", child.id)),
        }
    }
}
