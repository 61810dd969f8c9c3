//! The least-privilege IAM policy of a set of permissions (`suma_aws::iam`), narrowed to the resources
//! the configuration names: the lock table, and the managed secrets. Pure; `suma iam-policy` decides which
//! permissions a command needs and prints the document.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use suma_aws::iam::{Permission, Scope};
use suma_core::config::ConfigFile;

/// Where the narrowed statements point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub partition: String,
    /// `*` when no environment names its account.
    pub account: String,
    pub lock_region: String,
    pub lock_table: String,
    /// Ids of the managed secrets, sorted.
    pub secrets: Vec<String>,
    /// Names or ARNs of the secrets that hold notification URLs, sorted.
    pub notification_secrets: Vec<String>,
}

impl Resources {
    /// From the configuration: the account of the environments' ALB listener ARNs, the lock table, and
    /// the secrets of `environment` (of every environment when `None`).
    pub fn of(config: &ConfigFile, environment: Option<&str>) -> Self {
        let selected: Vec<_> = config
            .environments
            .iter()
            .filter(|(name, _)| environment.is_none_or(|e| e == name.as_str()))
            .map(|(_, env)| env)
            .collect();
        let arn = selected
            .iter()
            .find_map(|env| crate::taskdef::arn_account(env.alb.listener_arn.as_str()));
        let secrets: BTreeSet<String> = selected
            .iter()
            .flat_map(|env| env.secrets.iter().map(|s| s.id.clone()))
            .collect();
        let notification_secrets: BTreeSet<String> = selected
            .iter()
            .flat_map(|env| env.notifications.iter().filter_map(|n| n.url_secret.clone()))
            .collect();
        Self {
            partition: arn.map_or("aws", |(p, _)| p).to_owned(),
            account: arn.map_or("*", |(_, a)| a).to_owned(),
            lock_region: config.lock.region.as_str().to_owned(),
            lock_table: config.lock.table.clone(),
            secrets: secrets.into_iter().collect(),
            notification_secrets: notification_secrets.into_iter().collect(),
        }
    }

    fn of_scope(&self, scope: Scope) -> Value {
        match scope {
            // The table, and its indexes for the journal's query.
            Scope::LockTable => {
                let table = format!(
                    "arn:{}:dynamodb:{}:{}:table/{}",
                    self.partition, self.lock_region, self.account, self.lock_table
                );
                json!([table.clone(), format!("{table}/index/*")])
            }
            // Secrets Manager appends six random characters to a secret's ARN; replicas share the name in
            // the DR region.
            Scope::Secrets if !self.secrets.is_empty() => Value::Array(
                self.secrets
                    .iter()
                    .map(|id| {
                        json!(format!(
                            "arn:{}:secretsmanager:*:{}:secret:{}-??????",
                            self.partition,
                            self.account,
                            id.trim_start_matches('/')
                        ))
                    })
                    .collect(),
            ),
            Scope::Secrets | Scope::Any => json!("*"),
            Scope::NotificationSecrets => Value::Array(
                self.notification_secrets
                    .iter()
                    .map(|id| match id.starts_with("arn:") {
                        true => json!(id),
                        false => json!(format!(
                            "arn:{}:secretsmanager:*:{}:secret:{}-??????",
                            self.partition,
                            self.account,
                            id.trim_start_matches('/')
                        )),
                    })
                    .collect(),
            ),
        }
    }
}

/// The policy document granting `permissions` (each once, in the order given) on `resources`.
pub fn document(permissions: &[Permission], resources: &Resources) -> Value {
    let mut seen = BTreeSet::new();
    let statements: Vec<Value> = permissions
        .iter()
        .filter(|p| seen.insert(p.sid))
        // Never a grant on every secret: without a notification secret there is nothing to read.
        .filter(|p| p.scope != Scope::NotificationSecrets || !resources.notification_secrets.is_empty())
        .map(|p| {
            let actions: BTreeSet<&str> = p.actions.iter().copied().collect();
            json!({
                "Sid": p.sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": resources.of_scope(p.scope),
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// `document` with one more statement granting `actions` on any resource: what a runbook's `aws.call`
/// steps call (named only in the runbook, so IAM cannot be narrowed from the configuration).
pub fn with_aws_calls(mut document: Value, actions: &BTreeSet<String>) -> Value {
    if let (false, Some(statements)) = (actions.is_empty(), document["Statement"].as_array_mut()) {
        statements.push(json!({
            "Sid": "RunbookAwsCalls",
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*",
        }));
    }
    document
}

/// Every action a document grants, for checks.
pub fn actions(document: &Value) -> BTreeSet<String> {
    document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Action"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use suma_aws::iam::{LOCK_READ, LOCK_WRITE, NOTIFY_READ, SECRETS_ROTATE};

    fn resources(secrets: &[&str]) -> Resources {
        Resources {
            partition: "aws".to_owned(),
            account: "123456789012".to_owned(),
            lock_region: "eu-west-1".to_owned(),
            lock_table: "suma-locks".to_owned(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            notification_secrets: Vec::new(),
        }
    }

    #[test]
    fn statements_are_narrowed_to_the_table_and_the_secrets() {
        let doc = document(
            &[LOCK_READ, LOCK_WRITE, LOCK_READ, SECRETS_ROTATE],
            &resources(&["/suma/prod/db-password"]),
        );
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 3, "a permission given twice is one statement");
        assert_eq!(
            statements[0]["Resource"],
            json!([
                "arn:aws:dynamodb:eu-west-1:123456789012:table/suma-locks",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/suma-locks/index/*"
            ])
        );
        assert_eq!(
            statements[2]["Resource"],
            json!(["arn:aws:secretsmanager:*:123456789012:secret:suma/prod/db-password-??????"])
        );
        assert!(actions(&doc).contains("dynamodb:TransactWriteItems"));
        assert!(!actions(&doc).contains("ecs:UpdateService"));
    }

    #[test]
    fn aws_calls_are_one_statement_of_their_own_and_none_without_them() {
        let doc = document(&[LOCK_READ], &resources(&[]));
        assert_eq!(with_aws_calls(doc.clone(), &BTreeSet::new()), doc);
        let calls = BTreeSet::from(["ecs:DescribeServices".to_owned(), "rds:DescribeDBInstances".to_owned()]);
        let doc = with_aws_calls(doc, &calls);
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 2);
        assert_eq!(doc["Statement"][1]["Sid"], "RunbookAwsCalls");
        assert!(actions(&doc).contains("rds:DescribeDBInstances"));
    }

    #[test]
    fn without_secrets_the_secret_statements_cover_any() {
        let doc = document(&[SECRETS_ROTATE], &resources(&[]));
        assert_eq!(doc["Statement"][0]["Resource"], "*");
    }

    #[test]
    fn notification_urls_are_read_only_from_the_secrets_that_hold_them() {
        let doc = document(&[LOCK_READ, NOTIFY_READ], &resources(&[]));
        assert_eq!(
            doc["Statement"].as_array().unwrap().len(),
            1,
            "no secret named: no grant at all"
        );
        let mut named = resources(&[]);
        named.notification_secrets = vec![
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf".to_owned(),
            "suma/prod/webhook".to_owned(),
        ];
        let doc = document(&[NOTIFY_READ], &named);
        assert_eq!(
            doc["Statement"][0]["Resource"],
            json!([
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf",
                "arn:aws:secretsmanager:*:123456789012:secret:suma/prod/webhook-??????"
            ])
        );
        assert_eq!(doc["Statement"][0]["Action"], json!(["secretsmanager:GetSecretValue"]));
    }
}
