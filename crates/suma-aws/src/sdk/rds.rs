//! The `aws-sdk` implementation of [`crate::rds`]'s trait.

#[allow(unused_imports)]
use crate::rds::*;
use crate::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_config::SdkConfig;

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
        Ok(db_instance_of(db))
    }

    async fn promote_read_replica(&self, identifier: &str, backup_retention_days: i32) -> Result<DbInstance, AwsError> {
        let out = self
            .client
            .promote_read_replica()
            .db_instance_identifier(identifier)
            .backup_retention_period(backup_retention_days)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "PromoteReadReplica", identifier, e))?;
        answered(out.db_instance(), "PromoteReadReplica", identifier)
    }

    async fn modify_instance(&self, identifier: &str, change: &DbModification) -> Result<DbInstance, AwsError> {
        let out = self
            .client
            .modify_db_instance()
            .db_instance_identifier(identifier)
            .set_multi_az(change.multi_az)
            .set_backup_retention_period(change.backup_retention_days)
            .set_new_db_instance_identifier(change.new_identifier.clone())
            .set_master_user_password(change.master_user_password.as_ref().map(|p| p.0.clone()))
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "ModifyDBInstance", identifier, e))?;
        answered(out.db_instance(), "ModifyDBInstance", identifier)
    }

    async fn create_read_replica(
        &self,
        identifier: &str,
        source_arn: &str,
        source_region: &str,
        instance_class: &str,
        placement: &crate::rds::Placement,
    ) -> Result<DbInstance, AwsError> {
        // The Rust SDK does not presign from `SourceRegion`; the source ARN names the region, which is
        // all an unencrypted or same-key replica needs.
        let _ = source_region;
        let out = self
            .client
            .create_db_instance_read_replica()
            .db_instance_identifier(identifier)
            .source_db_instance_identifier(source_arn)
            .db_instance_class(instance_class)
            .set_kms_key_id(placement.kms_key_id.clone())
            .set_db_subnet_group_name(placement.subnet_group.clone())
            .set_vpc_security_group_ids(
                (!placement.security_group_ids.is_empty()).then(|| placement.security_group_ids.clone()),
            )
            .set_db_parameter_group_name(placement.parameter_group.clone())
            .deletion_protection(placement.deletion_protection)
            .enable_iam_database_authentication(placement.iam_auth)
            .publicly_accessible(false)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "CreateDBInstanceReadReplica", identifier, e))?;
        answered(out.db_instance(), "CreateDBInstanceReadReplica", identifier)
    }

    async fn reboot_with_failover(&self, identifier: &str) -> Result<DbInstance, AwsError> {
        let out = self
            .client
            .reboot_db_instance()
            .db_instance_identifier(identifier)
            .force_failover(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "RebootDBInstance", identifier, e))?;
        answered(out.db_instance(), "RebootDBInstance", identifier)
    }

    async fn snapshots(&self, identifier: &str) -> Result<Vec<DbSnapshot>, AwsError> {
        let mut snapshots = Vec::new();
        let mut pages = self
            .client
            .describe_db_snapshots()
            .db_instance_identifier(identifier)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("RDS", "DescribeDBSnapshots", identifier, e))?;
            snapshots.extend(page.db_snapshots().iter().map(|s| {
                DbSnapshot {
                    identifier: s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                    status: s.status().unwrap_or_default().to_owned(),
                    created_at: s
                        .snapshot_create_time()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                }
            }));
        }
        snapshots.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(snapshots)
    }

    async fn restore_from_snapshot(
        &self,
        snapshot: &str,
        target: &str,
        like: &DbInstance,
    ) -> Result<DbInstance, AwsError> {
        let out = self
            .client
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot)
            .db_instance_identifier(target)
            .db_instance_class(&like.instance_class)
            .multi_az(like.multi_az)
            .deletion_protection(like.deletion_protection)
            // In the source's VPC, groups and parameters, never public: a restore replaces it.
            .set_db_subnet_group_name(like.placement.subnet_group.clone())
            .set_vpc_security_group_ids(
                (!like.placement.security_group_ids.is_empty()).then(|| like.placement.security_group_ids.clone()),
            )
            .set_db_parameter_group_name(like.placement.parameter_group.clone())
            .enable_iam_database_authentication(like.placement.iam_auth)
            .publicly_accessible(false)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "RestoreDBInstanceFromDBSnapshot", target, e))?;
        answered(out.db_instance(), "RestoreDBInstanceFromDBSnapshot", target)
    }
}

/// The instance an RDS call answers with, in our type; an answer without one is an error on `identifier`.
fn answered(
    db: Option<&aws_sdk_rds::types::DbInstance>,
    operation: &'static str,
    identifier: &str,
) -> Result<DbInstance, AwsError> {
    db.map(db_instance_of).ok_or_else(|| {
        AwsError::new(
            "RDS",
            operation,
            identifier,
            AwsErrorKind::Other,
            "no instance in the answer",
        )
    })
}

fn db_instance_of(db: &aws_sdk_rds::types::DbInstance) -> DbInstance {
    DbInstance {
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
        port: db.endpoint().and_then(|e| e.port()).and_then(|p| u16::try_from(p).ok()),
        availability_zone: db.availability_zone().map(str::to_owned),
        placement: crate::rds::Placement {
            kms_key_id: db.kms_key_id().map(str::to_owned),
            subnet_group: db
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .map(str::to_owned),
            security_group_ids: db
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id())
                .map(str::to_owned)
                .collect(),
            parameter_group: db
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name())
                .map(str::to_owned),
            deletion_protection: db.deletion_protection().unwrap_or(false),
            iam_auth: db.iam_database_authentication_enabled().unwrap_or(false),
        },
    }
}
