//! Every built-in runbook action against the real systems: ECS, RDS, Route 53 and Secrets Manager through
//! `suma-aws`, the service's admin API and checks through `suma-http`, PostgreSQL, and Datadog. Actions
//! that are whole operations of their own (a secret rotation, a DR failover, a rollback) run as child
//! operations journaled under the run's lock ([`operations`]), so a resume of the run resumes them where
//! they stopped. This file holds the executor, its argument helpers and the lookups the actions share;
//! [`dispatch`] maps an action name to its implementation.

mod api_call;
mod checks;
mod database;
mod dispatch;
mod operations;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::admin::HttpAdmin;
use crate::aws::dynamodb::ApprovalItem;
use crate::aws::ecs::Rollout;
use crate::aws::secrets::VersionRef;
use crate::aws::{AwsApis, AwsSession};
use crate::config::{AwsRegion, Environment, SecretKind};
use crate::context::OpsContext;
use crate::journal::lock::LockGuard;
use crate::journal::{Journal, Operation, OperationStatus};
use crate::runbook::engine::{ActionError, Actions, Done, Outputs, StepContext};

/// Every built-in action against the real systems.
pub struct LiveActions<'a> {
    pub ctx: &'a OpsContext,
    pub name: String,
    pub env: Environment,
    pub session: AwsSession,
    pub aws: Arc<dyn AwsApis>,
    /// Child operations' journal: fenced by the run's lock.
    pub journal: Journal,
    pub guard: &'a LockGuard,
    pub runbook: String,
    /// The runbook's `mutating_aws_calls`: its `aws.call` steps may change things.
    pub mutating_aws_calls: bool,
}

fn arg<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    args.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, ActionError> {
    arg(args, name).ok_or_else(|| ActionError::new(format!("argument `{name}` is empty")))
}

fn duration_arg(args: &BTreeMap<String, String>, name: &str, default: Duration) -> Result<Duration, ActionError> {
    arg(args, name).map_or(Ok(default), |text| {
        humantime::parse_duration(text).map_err(|e| ActionError::new(format!("`{name}`: {e}")))
    })
}

fn outputs<const N: usize>(pairs: [(&str, Value); N]) -> Done {
    Done::from(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Outputs>())
}

const POLL: Duration = Duration::from_secs(5);

/// The most JSON one structured output keeps (`http.check`'s `json`, `sql.query`'s `records`): outputs
/// are journaled with the step, and a journal item must stay far below DynamoDB's 400 KB.
const MAX_STRUCTURED_OUTPUT: usize = 16 * 1024;

/// `value` as a structured output, or, when it is larger than the journal keeps, an object saying so (a
/// selector into it then names `not_kept` as the only key there is).
fn structured(value: Value) -> Value {
    let size = value.to_string().len();
    if size <= MAX_STRUCTURED_OUTPUT {
        value
    } else {
        json!({ "not_kept": format!(
            "{} KiB of JSON is more than the {} KiB an output keeps in the journal; narrow the query or the URL",
            size.div_ceil(1024),
            MAX_STRUCTURED_OUTPUT / 1024
        ) })
    }
}

impl LiveActions<'_> {
    /// (region, cluster, service) of `stable`, `canary` or `dr`.
    fn service(&self, which: Option<&str>) -> (&AwsRegion, &str, &str) {
        let ecs = &self.env.ecs;
        match which.unwrap_or("stable") {
            "canary" => (&self.env.primary_region, &ecs.cluster, &ecs.canary_service),
            "dr" => (&self.env.dr_region, &ecs.dr.cluster, &ecs.dr.service),
            _ => (&self.env.primary_region, &ecs.cluster, &ecs.service),
        }
    }

    async fn describe_service(&self, which: Option<&str>) -> Result<crate::aws::ecs::EcsService, ActionError> {
        let (region, cluster, service) = self.service(which);
        self.aws
            .ecs(region)
            .describe_services(cluster, &[service.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ActionError::new(format!("service `{service}` not found in `{cluster}`")))
    }

    /// Polls until `done` holds for the service.
    async fn wait_service(
        &self,
        which: Option<&str>,
        what: &str,
        done: impl Fn(&crate::aws::ecs::EcsService) -> Result<bool, String>,
    ) -> Result<crate::aws::ecs::EcsService, ActionError> {
        loop {
            let service = self.describe_service(which).await?;
            match done(&service) {
                Ok(true) => return Ok(service),
                Ok(false) => {
                    self.ctx.reporter.live(&format!(
                        "waiting for {what}: running {} / desired {}",
                        service.running, service.desired
                    ));
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(ActionError::new(e)),
            }
        }
    }

    /// Polls until the service's rollout to `task_definition` completed; its failure is the step's.
    async fn wait_rollout(&self, which: Option<&str>, task_definition: &str) -> Result<(), ActionError> {
        let (_, _, service) = self.service(which);
        self.wait_service(which, &format!("`{service}` to roll out"), |s| {
            match s.rollout(task_definition) {
                Rollout::Completed => Ok(true),
                Rollout::Failed(reason) => Err(format!("the rollout of `{}` failed: {reason}", s.name)),
                Rollout::InProgress => Ok(false),
            }
        })
        .await
        .map(drop)
    }

    /// (region, identifier) of `primary`, `replica` or an identifier (primary region).
    fn instance(&self, which: Option<&str>, default: &str) -> Result<(AwsRegion, String), ActionError> {
        let rds = &self.env.rds;
        match which.unwrap_or(default) {
            "primary" => Ok((rds.primary.region.clone(), rds.primary.identifier.clone())),
            "replica" => rds
                .replica
                .as_ref()
                .map(|r| (r.region.clone(), r.identifier.clone()))
                .ok_or_else(|| ActionError::new(format!("environment `{}` has no `rds.replica`", self.name))),
            id => Ok((rds.primary.region.clone(), id.to_owned())),
        }
    }

    /// The environment's secret of `kind`, or the one named.
    fn secret(&self, named: Option<&str>, kind: SecretKind) -> Result<&crate::config::ManagedSecret, ActionError> {
        match named {
            Some(n) => {
                crate::secrets::setup::find(&self.env, &self.name, n).map_err(|e| ActionError::new(format!("{e:#}")))
            }
            None => self
                .env
                .secrets
                .iter()
                .find(|s| s.kind == kind || (kind.is_database() && s.kind.is_database()))
                .ok_or_else(|| {
                    ActionError::new(format!(
                        "environment `{}` has no `{}` secret\nhint: add it under `secrets:` in the configuration",
                        self.name,
                        kind.as_str()
                    ))
                }),
        }
    }

    async fn current_value(&self, id: &str) -> Result<String, ActionError> {
        self.session
            .secret_versions(&self.env.primary_region)
            .value(id, &VersionRef::Stage("AWSCURRENT"))
            .await?
            .map(|v| v.value)
            .ok_or_else(|| ActionError::new(format!("secret `{id}` has no AWSCURRENT version")))
    }

    /// The admin API, with an operator token signed by the current JWT signing key.
    async fn admin(&self) -> Result<HttpAdmin, ActionError> {
        let secret = self.secret(None, SecretKind::JwtSigningKey)?;
        let pem = self.current_value(&secret.id).await?;
        let token = crate::admin::operator_token(
            &pem,
            &secret.jwt.issuer,
            &secret.jwt.audience,
            &self.ctx.settings.actor.value,
        )?;
        let base = secret
            .jwt
            .service_url
            .as_ref()
            .or(self.env.url.as_ref())
            .ok_or_else(|| ActionError::new(format!("environment `{}` has no `url` for the admin API", self.name)))?;
        Ok(HttpAdmin::new(
            suma_http::ServiceClient::new(Duration::from_secs(30)),
            &base.to_string(),
            token,
        ))
    }

    /// A child operation: the one an earlier attempt of this step started, or a new one. A child's id is
    /// derived from the run, the step and the attempt (`RUN.STEP.N`), and it is journaled before it does
    /// anything, so a run killed at any point finds its child again on resume rather than starting a
    /// second rotation, failover or rollback.
    async fn child(
        &self,
        step: &StepContext<'_>,
        create: impl FnOnce() -> Operation,
    ) -> Result<Operation, ActionError> {
        let attempt = step
            .operation
            .steps
            .last()
            .map_or(1, |record| record.attempts.len() + 1);
        let child_id = |n: usize| format!("{}.{}.{n}", step.operation.id, step.step.id);
        // The latest earlier attempt's child, if it can be continued (unfinished, or done already).
        for n in (1..attempt).rev() {
            let id = child_id(n);
            let Some(mut op) = self.journal.load(&id).await? else {
                continue;
            };
            if op.status.is_finished() && op.status != OperationStatus::Succeeded {
                // It ended (failed, aborted): this attempt starts a new one.
                break;
            }
            self.ctx
                .reporter
                .info(&format!("continuing operation `{id}` started by an earlier attempt"));
            if op.status != OperationStatus::Succeeded {
                op.set_status(OperationStatus::Running);
            }
            return Ok(op);
        }
        let mut op = create();
        op.id = child_id(attempt);
        self.journal.save(&op, Some(self.guard.fence())).await?;
        Ok(op)
    }

    fn child_failed(op: &Operation, message: String) -> ActionError {
        ActionError {
            message,
            facts: BTreeMap::from([("child_operation".to_owned(), json!(op.id))]),
        }
    }
}

#[async_trait]
impl Actions for LiveActions<'_> {
    async fn run(&self, args: &BTreeMap<String, String>, step: &StepContext<'_>) -> Result<Done, ActionError> {
        self.dispatch(args, step).await
    }

    async fn abort_child(&self, child: &mut Operation) -> Result<String, ActionError> {
        self.abort_child_operation(child).await
    }

    async fn approvals(&self, ctx: &StepContext<'_>, runner: Option<&str>) -> Result<Vec<ApprovalItem>, ActionError> {
        let table = self.journal.table();
        let (run, step) = (ctx.operation.id.as_str(), ctx.step.id.as_str());
        if let Some(actor) = runner {
            let given = ApprovalItem::now(
                self.session.caller_identity().await?,
                actor,
                Some("approved while running the run".to_owned()),
            );
            match table.add_approval(run, step, &given).await {
                // The same identity approved before (with `suma runbook approve`, or an earlier `--yes`).
                Err(e) if e.kind == crate::aws::AwsErrorKind::ConditionFailed => {}
                other => other?,
            }
        }
        Ok(table.list_approvals(run, step).await?)
    }
}
