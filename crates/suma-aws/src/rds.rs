//! RDS: DB instances, their replication and protection settings.

use async_trait::async_trait;
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
    /// The endpoint's DNS name.
    pub endpoint: Option<String>,
    /// The endpoint's port.
    pub port: Option<u16>,
    /// The zone the instance serves from; a Multi-AZ failover moves it to the standby's.
    pub availability_zone: Option<String>,
    /// Where it lives in its region and how it is protected: what an instance built to replace it copies.
    pub placement: Placement,
}

/// Where and how an instance is created in its region (see [`suma_core::config::DbPlacement`]): read
/// from RDS for an instance, taken from the configuration for one suma builds. One type for both.
pub use suma_core::config::DbPlacement as Placement;

impl DbInstance {
    /// `address:port` (the address alone when RDS reports no port): what a client is pointed at, and
    /// the value of the service's `DATABASE_HOST` after a repoint.
    pub fn host(&self) -> Option<String> {
        let address = self.endpoint.as_deref()?;
        Some(match self.port {
            Some(port) => format!("{address}:{port}"),
            None => address.to_owned(),
        })
    }
}

/// A change to a DB instance, applied immediately; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbModification {
    pub multi_az: Option<bool>,
    pub backup_retention_days: Option<i32>,
    /// Renames the instance (its endpoint changes with it).
    pub new_identifier: Option<String>,
    /// A new password for the master user (`MasterUserPassword`); never serialized.
    #[serde(skip)]
    pub master_user_password: Option<MasterPassword>,
}

/// A master user password on its way to RDS: kept out of debug output and journals.
#[derive(Clone, PartialEq)]
pub struct MasterPassword(pub String);

impl std::fmt::Debug for MasterPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterPassword(..)")
    }
}

/// What [`DatabaseApi`] methods that a client does not implement answer.
pub(crate) fn unsupported(operation: &'static str, identifier: &str) -> AwsError {
    AwsError::new(
        "RDS",
        operation,
        identifier,
        AwsErrorKind::Other,
        "not supported by this client",
    )
}

#[async_trait]
pub trait DatabaseApi: Send + Sync {
    async fn describe_instance(&self, identifier: &str) -> Result<DbInstance, AwsError>;
    /// Makes a read replica a standalone, writable instance; returns the instance as the call left it.
    async fn promote_read_replica(&self, identifier: &str, backup_retention_days: i32) -> Result<DbInstance, AwsError> {
        let _ = backup_retention_days;
        Err(unsupported("PromoteReadReplica", identifier))
    }
    async fn modify_instance(&self, identifier: &str, change: &DbModification) -> Result<DbInstance, AwsError> {
        let _ = change;
        Err(unsupported("ModifyDBInstance", identifier))
    }
    /// Creates `identifier` in this client's region as a read replica of `source_arn` (any region).
    async fn create_read_replica(
        &self,
        identifier: &str,
        source_arn: &str,
        source_region: &str,
        instance_class: &str,
        placement: &Placement,
    ) -> Result<DbInstance, AwsError> {
        let _ = (source_arn, source_region, instance_class, placement);
        Err(unsupported("CreateDBInstanceReadReplica", identifier))
    }
    /// Multi-AZ failover: reboots the instance with `ForceFailover`, so the standby becomes the primary.
    async fn reboot_with_failover(&self, identifier: &str) -> Result<DbInstance, AwsError> {
        Err(unsupported("RebootDBInstance", identifier))
    }
    /// The instance's snapshots (automated and manual), newest first.
    async fn snapshots(&self, identifier: &str) -> Result<Vec<DbSnapshot>, AwsError> {
        Err(unsupported("DescribeDBSnapshots", identifier))
    }
    /// Restores `snapshot` to a new instance `target` with the source's class and Multi-AZ setting.
    async fn restore_from_snapshot(
        &self,
        snapshot: &str,
        target: &str,
        like: &DbInstance,
    ) -> Result<DbInstance, AwsError> {
        let _ = (snapshot, like);
        Err(unsupported("RestoreDBInstanceFromDBSnapshot", target))
    }
}

/// A DB snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbSnapshot {
    pub identifier: String,
    pub status: String,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}
