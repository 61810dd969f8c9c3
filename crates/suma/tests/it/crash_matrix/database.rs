//! A runbook's Multi-AZ failover (`database.failover`, a child operation of the run) in the crash
//! matrix: killed at any point, `resume` fails the database over exactly once (a second failover would
//! move it back to the zone it failed), and `abort` ends the run and its child with the instance
//! available in one zone or the other, never mid-reboot with a second failover asked for.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::scenarios::{ended, exited, expect, strings};
use super::{run_matrix, Env, Finish, Scenario};
use crate::common::Run;
use suma::journal::OperationStatus;

/// The journal's kind of a failover child.
const FAILOVER_KIND: &str = "database-failover";

struct RunbookDatabaseFailover;

impl RunbookDatabaseFailover {
    /// (status, zone) of the environment's primary.
    async fn primary(env: &Env) -> (String, String) {
        let rds = &env.env.rds.primary;
        let db = env
            .aws()
            .rds(&rds.region)
            .describe_instance(&rds.identifier)
            .await
            .unwrap();
        (db.status, db.availability_zone.unwrap_or_default())
    }

    /// The primary once it is available again (a failover RDS accepted finishes on its own).
    async fn settled(env: &Env) -> String {
        for _ in 0..30 {
            let (status, zone) = Self::primary(env).await;
            if status == "available" {
                return zone;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("the primary of `{}` did not come back to available", env.name)
    }

    async fn child_finished(env: &Env) -> Result<(), String> {
        let child = env.last_operation(FAILOVER_KIND).await;
        expect(child.as_ref().is_none_or(|op| op.status.is_finished()), || {
            "a failover child is left unfinished".to_owned()
        })
    }
}

#[async_trait]
impl Scenario for RunbookDatabaseFailover {
    fn kind(&self) -> &'static str {
        suma::runbook::engine::KIND
    }

    async fn prepare(&self, env: &Env) -> Value {
        json!(Self::primary(env).await.1)
    }

    fn command(&self) -> Vec<&'static str> {
        let fixture = crate::common::fixture("runbooks/database-failover.yaml");
        let path: &'static str = Box::leak(fixture.display().to_string().into_boxed_str());
        vec!["runbook", "run", path, "--yes"]
    }

    async fn finish(&self, env: &Env, finish: Finish) -> Vec<String> {
        let id = env.last_operation(self.kind()).await.expect("the run is journaled").id;
        strings(match finish {
            Finish::Resume => vec!["runbook", "resume", &id, "--yes"],
            Finish::Abort => vec!["runbook", "abort", &id, "--reason", "crash matrix", "--yes"],
        })
    }

    async fn safe(&self, env: &Env, _original: &Value) -> Result<(), String> {
        Self::settled(env).await;
        Self::child_finished(env).await
    }

    async fn check(&self, env: &Env, original: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        let zone = Self::settled(env).await;
        Self::child_finished(env).await?;
        match finish {
            Finish::Resume => {
                exited(out, &[0])?;
                // Exactly one failover: the other zone. Two would show the first zone again.
                expect(zone != original.as_str().unwrap_or_default(), || {
                    format!("the primary is in {zone}, where it started: failed over twice, or never")
                })?;
                ended(env, FAILOVER_KIND, OperationStatus::Succeeded).await?;
                ended(env, self.kind(), OperationStatus::Succeeded).await
            }
            Finish::Abort => {
                exited(out, &[1])?;
                ended(env, self.kind(), OperationStatus::Aborted).await
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_with_a_database_failover() {
    crate::require_sandbox!();
    run_matrix(std::sync::Arc::new(RunbookDatabaseFailover)).await;
}
