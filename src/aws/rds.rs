//! RDS: DB instances, their replication and protection settings.

use async_trait::async_trait;
use aws_config::SdkConfig;
use serde::Serialize;

use super::{AwsError, AwsErrorKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbInstance {
    pub identifier: String,
    pub arn: String,
    pub status: String,
    pub engine: String,
    pub engine_version: String,
    pub instance_class: String,
    pub multi_az: bool,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub deletion_protection: bool,
    pub backup_retention_days: i32,
    /// Identifier or ARN of the instance this one replicates from.
    pub replica_source: Option<String>,
    pub read_replicas: Vec<String>,
    pub endpoint: Option<String>,
}

#[async_trait]
pub trait DatabaseApi: Send + Sync {
    async fn describe_instance(&self, identifier: &str) -> Result<DbInstance, AwsError>;
}

pub struct SdkRds {
    client: aws_sdk_rds::Client,
}

impl SdkRds {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_rds::Client::new(config),
        }
    }
}

#[async_trait]
impl DatabaseApi for SdkRds {
    async fn describe_instance(&self, identifier: &str) -> Result<DbInstance, AwsError> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "DescribeDBInstances", identifier, e))?;
        let db = out.db_instances().first().ok_or_else(|| {
            AwsError::new(
                "RDS",
                "DescribeDBInstances",
                identifier,
                AwsErrorKind::NotFound,
                "DB instance not found",
            )
        })?;
        Ok(DbInstance {
            identifier: db.db_instance_identifier().unwrap_or_default().to_owned(),
            arn: db.db_instance_arn().unwrap_or_default().to_owned(),
            status: db.db_instance_status().unwrap_or_default().to_owned(),
            engine: db.engine().unwrap_or_default().to_owned(),
            engine_version: db.engine_version().unwrap_or_default().to_owned(),
            instance_class: db.db_instance_class().unwrap_or_default().to_owned(),
            multi_az: db.multi_az().unwrap_or(false),
            storage_encrypted: db.storage_encrypted().unwrap_or(false),
            kms_key_id: db.kms_key_id().map(str::to_owned),
            deletion_protection: db.deletion_protection().unwrap_or(false),
            backup_retention_days: db.backup_retention_period().unwrap_or(0),
            replica_source: db.read_replica_source_db_instance_identifier().map(str::to_owned),
            read_replicas: db.read_replica_db_instance_identifiers().to_vec(),
            endpoint: db.endpoint().and_then(|e| e.address()).map(str::to_owned),
        })
    }
}
