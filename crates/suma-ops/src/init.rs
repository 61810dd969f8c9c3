//! `suma init`: the DynamoDB table that holds every environment's lock and the operation journal, made what
//! suma needs. The plan is decided from what the table is now (pure, table-tested below); applying it
//! creates the table when it is missing (string partition key `pk`, billed per request, encrypted,
//! deletion protection on, the operations index), waits for it to be active, and turns on point-in-time
//! recovery, so a deleted or corrupted journal can be restored. A table made before the operations index
//! existed gets it, and its operation items the `started_at` the index sorts by. A table that exists with another key schema is refused: suma would
//! fail on it at the first lock, and replacing it would lose its journal.

use std::time::Duration;

use serde::Serialize;
use suma_aws::dynamodb::{LockTableFacts, LockTableSetup, OPERATIONS_INDEX};
use suma_aws::AwsError;
use suma_core::report::Reporter;

/// One change `init` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitStep {
    CreateTable,
    AddOperationsIndex,
    EnablePointInTimeRecovery,
    EnableDeletionProtection,
}

impl InitStep {
    pub fn describe(self, table: &str) -> String {
        match self {
            Self::CreateTable => format!(
                "create table `{table}`: partition key `pk` (string), on-demand billing, encrypted, deletion protection, index `{OPERATIONS_INDEX}`"
            ),
            Self::AddOperationsIndex => format!(
                "add index `{OPERATIONS_INDEX}` to `{table}` (an environment's operations without a scan of the table) and give the operations journaled before it their `started_at`"
            ),
            Self::EnablePointInTimeRecovery => format!("turn on point-in-time recovery of `{table}`"),
            Self::EnableDeletionProtection => format!("turn on deletion protection of `{table}`"),
        }
    }
}

/// The key schema suma's lock and journal items use.
pub fn expected_key_schema() -> Vec<(String, String, String)> {
    vec![("pk".to_owned(), "S".to_owned(), "HASH".to_owned())]
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("table `{table}` exists with key schema {found}, but suma keys its items by the string partition key `pk` alone\nhint: set `lock.table` in suma.yaml to a new name and run `suma init` again; the existing table is left as it is")]
    WrongKeySchema { table: String, found: String },
    #[error("table `{table}` did not become ACTIVE within {}s (it is `{status}`)\nhint: run `suma init` again once the table is active", .waited.as_secs())]
    NotActive {
        table: String,
        status: String,
        waited: Duration,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// What to change, given what the table is now (`None`: it does not exist).
pub fn plan(table: &str, facts: Option<&LockTableFacts>) -> Result<Vec<InitStep>, InitError> {
    let Some(facts) = facts else {
        return Ok(vec![InitStep::CreateTable, InitStep::EnablePointInTimeRecovery]);
    };
    if facts.key_schema != expected_key_schema() {
        let found = facts
            .key_schema
            .iter()
            .map(|(name, kind, key)| format!("`{name}` ({kind}, {key})"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(InitError::WrongKeySchema {
            table: table.to_owned(),
            found,
        });
    }
    let mut steps = Vec::new();
    if !facts.operations_index {
        steps.push(InitStep::AddOperationsIndex);
    }
    if !facts.point_in_time_recovery {
        steps.push(InitStep::EnablePointInTimeRecovery);
    }
    if !facts.deletion_protection {
        steps.push(InitStep::EnableDeletionProtection);
    }
    Ok(steps)
}

/// Applies `steps` in order; returns the table as it is afterwards.
pub async fn apply(
    setup: &dyn LockTableSetup,
    steps: &[InitStep],
    reporter: &dyn Reporter,
    active_within: Duration,
) -> Result<LockTableFacts, InitError> {
    let table = setup.table().to_owned();
    for step in steps {
        reporter.phase(&step.describe(&table));
        match step {
            InitStep::CreateTable => setup.create().await?,
            InitStep::AddOperationsIndex => {
                setup.add_operations_index().await?;
                wait_active(setup, active_within).await?;
                let filled = setup.backfill_started_at().await?;
                reporter.info(&format!(
                    "{filled} operation(s) journaled before the index were given their `started_at`"
                ));
            }
            InitStep::EnablePointInTimeRecovery => {
                // Continuous backups can only be configured on an active table.
                wait_active(setup, active_within).await?;
                setup.enable_point_in_time_recovery().await?;
            }
            InitStep::EnableDeletionProtection => setup.enable_deletion_protection().await?,
        }
        reporter.info(&format!("done: {}", step.describe(&table)));
    }
    wait_active(setup, active_within).await
}

async fn wait_active(setup: &dyn LockTableSetup, within: Duration) -> Result<LockTableFacts, InitError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let facts = setup.describe().await?;
        match facts {
            Some(facts) if facts.status == "ACTIVE" => return Ok(facts),
            facts if tokio::time::Instant::now() >= deadline => {
                return Err(InitError::NotActive {
                    table: setup.table().to_owned(),
                    status: facts.map_or_else(|| "missing".to_owned(), |f| f.status),
                    waited: within,
                })
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(key: &[(&str, &str, &str)], pitr: bool, protected: bool) -> LockTableFacts {
        indexed(key, pitr, protected, true)
    }

    fn indexed(key: &[(&str, &str, &str)], pitr: bool, protected: bool, operations_index: bool) -> LockTableFacts {
        LockTableFacts {
            status: "ACTIVE".to_owned(),
            key_schema: key
                .iter()
                .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
                .collect(),
            deletion_protection: protected,
            point_in_time_recovery: pitr,
            operations_index,
        }
    }

    #[test]
    fn the_plan_follows_what_the_table_lacks() {
        use InitStep::*;
        let pk = [("pk", "S", "HASH")];
        let cases: [(Option<LockTableFacts>, Vec<InitStep>); 7] = [
            (Some(indexed(&pk, true, true, false)), vec![AddOperationsIndex]),
            (
                Some(indexed(&pk, false, false, false)),
                vec![AddOperationsIndex, EnablePointInTimeRecovery, EnableDeletionProtection],
            ),
            (None, vec![CreateTable, EnablePointInTimeRecovery]),
            (Some(facts(&pk, true, true)), vec![]),
            (Some(facts(&pk, false, true)), vec![EnablePointInTimeRecovery]),
            (Some(facts(&pk, true, false)), vec![EnableDeletionProtection]),
            (
                Some(facts(&pk, false, false)),
                vec![EnablePointInTimeRecovery, EnableDeletionProtection],
            ),
        ];
        for (facts, expected) in cases {
            assert_eq!(plan("locks", facts.as_ref()).unwrap(), expected, "{facts:?}");
        }
    }

    #[test]
    fn another_key_schema_is_refused_and_named() {
        for key in [
            &[("id", "S", "HASH")][..],
            &[("pk", "N", "HASH")],
            &[("pk", "S", "HASH"), ("sk", "S", "RANGE")],
        ] {
            let err = plan("locks", Some(&facts(key, true, true))).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, InitError::WrongKeySchema { .. }), "{text}");
            assert!(text.contains(&format!("`{}`", key[0].0)), "{text}");
            assert!(text.contains("hint: set `lock.table`"), "{text}");
        }
    }
}
