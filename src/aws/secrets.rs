//! Secrets Manager: secret metadata (never values, in this module's read path).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{to_chrono, AwsError};

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
    /// Regions the secret is replicated to.
    pub replica_regions: Vec<String>,
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

#[async_trait]
pub trait SecretsApi: Send + Sync {
    async fn describe(&self, id: &str) -> Result<SecretMetadata, AwsError>;
}

pub struct SdkSecrets {
    client: aws_sdk_secretsmanager::Client,
}

impl SdkSecrets {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

#[async_trait]
impl SecretsApi for SdkSecrets {
    async fn describe(&self, id: &str) -> Result<SecretMetadata, AwsError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SecretsManager", "DescribeSecret", id, e))?;
        Ok(SecretMetadata {
            name: out.name().unwrap_or(id).to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            last_rotated: out.last_rotated_date().and_then(to_chrono),
            last_changed: out.last_changed_date().and_then(to_chrono),
            created: out.created_date().and_then(to_chrono),
            kms_key_id: out.kms_key_id().map(str::to_owned),
            versions: out
                .version_ids_to_stages()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            replica_regions: out
                .replication_status()
                .iter()
                .filter_map(|r| r.region().map(str::to_owned))
                .collect(),
        })
    }
}
