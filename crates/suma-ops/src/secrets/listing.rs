//! The managed secrets of an environment as `suma secrets list` shows them: age against policy, staging
//! labels, and a rotation that started and did not finish.

use chrono::Utc;
use futures::future::join_all;
use serde::Serialize;

use crate::aws::secrets::AWSPENDING;
use crate::aws::AwsApis;
use crate::config::Environment;
use crate::secrets;

/// One row of `suma secrets list`.
#[derive(Debug, Clone, Serialize)]
pub struct SecretRow {
    pub id: String,
    pub kind: &'static str,
    pub rotation_enabled: bool,
    pub last_rotated: Option<chrono::DateTime<Utc>>,
    pub age_days: Option<i64>,
    pub policy_days: u32,
    pub due: bool,
    /// Version id to its staging labels.
    pub versions: std::collections::BTreeMap<String, Vec<String>>,
    /// A version labelled AWSPENDING: a rotation started and did not finish.
    pub rotation_half_done: bool,
    pub consumers: Vec<String>,
    pub error: Option<String>,
}

/// Each managed secret of `env`, described concurrently; a failed read is the row's `error`.
pub async fn rows(env: &Environment, aws: &dyn AwsApis) -> Vec<SecretRow> {
    let api = aws.secrets(&env.primary_region);
    let now = Utc::now();
    let described = join_all(env.secrets.iter().map(|s| api.describe(&s.id))).await;
    env.secrets
        .iter()
        .zip(described)
        .map(|(managed, result)| {
            let mut row = SecretRow {
                id: managed.id.clone(),
                kind: managed.kind.as_str(),
                rotation_enabled: false,
                last_rotated: None,
                age_days: None,
                policy_days: managed.rotation_days,
                due: false,
                versions: Default::default(),
                rotation_half_done: false,
                consumers: managed.consumers.clone(),
                error: None,
            };
            match result {
                Ok(meta) => {
                    row.rotation_enabled = meta.rotation_enabled;
                    row.last_rotated = meta.last_rotated;
                    row.age_days = secrets::age_days(&meta, now);
                    row.due = secrets::is_due(&meta, managed.rotation_days, now);
                    row.rotation_half_done = meta.versions.values().any(|l| l.iter().any(|l| l == AWSPENDING));
                    row.versions = meta.versions;
                }
                Err(e) => row.error = Some(e.to_string()),
            }
            row
        })
        .collect()
}
