//! Secrets Manager: secret metadata for status and audits, and the staging-label operations of the rotation
//! protocol (values are read and written only by the rotation, never logged).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AwsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretMetadata {
    pub name: String,
    pub arn: String,
    pub rotation_enabled: bool,
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_changed: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    pub kms_key_id: Option<String>,
    /// Version id to its staging labels (`AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`).
    pub versions: BTreeMap<String, Vec<String>>,
    /// Its replicas in other regions, each with Secrets Manager's replication status.
    pub replicas: Vec<SecretReplica>,
}

/// A secret's replica in another region, as `DescribeSecret`'s `ReplicationStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretReplica {
    pub region: String,
    /// `InSync`, `InProgress` or `Failed`.
    pub status: String,
    /// Why, when it failed (`Replication failed: Secret name ... already exists`).
    pub message: Option<String>,
}

impl SecretMetadata {
    /// When the current value was set: the last rotation, else the last change, else creation.
    pub fn current_since(&self) -> Option<DateTime<Utc>> {
        self.last_rotated.or(self.last_changed).or(self.created)
    }

    /// A rotation was started and not finished: some version carries `AWSPENDING` without `AWSCURRENT`.
    pub fn rotation_pending(&self) -> bool {
        self.versions
            .values()
            .any(|labels| labels.iter().any(|l| l == "AWSPENDING") && !labels.iter().any(|l| l == "AWSCURRENT"))
    }
}

/// The staging labels of the rotation protocol.
pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Stage(&'static str),
    Id(String),
}

/// One version's value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    pub version_id: String,
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("version_id", &self.version_id)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[async_trait]
pub trait SecretsApi: Send + Sync {
    async fn describe(&self, id: &str) -> Result<SecretMetadata, AwsError>;
}

/// The rotation protocol's access to values and staging labels; apart from [`SecretsApi`] so that read-only
/// commands are never handed a way to write.
#[async_trait]
pub trait SecretVersionsApi: SecretsApi {
    /// The value of a version; `None` when no version has that label or id.
    async fn value(&self, id: &str, version: &VersionRef) -> Result<Option<SecretValue>, AwsError>;
    /// Stores `value` as a new version labelled `AWSPENDING`, with `token` as its version id, so a retry with
    /// the same token is a no-op.
    async fn put_pending(&self, id: &str, token: &str, value: &str) -> Result<(), AwsError>;
    /// Moves `stage` to version `to`, taking it from version `from` (required when another version holds it).
    async fn move_stage(&self, id: &str, stage: &str, to: &str, from: Option<&str>) -> Result<(), AwsError>;
    /// Removes `stage` from version `from`.
    async fn remove_stage(&self, id: &str, stage: &str, from: &str) -> Result<(), AwsError>;
}
