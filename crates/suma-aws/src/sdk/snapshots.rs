//! RDS snapshots for the compliance inventory: every snapshot of the region, and for each manual one who
//! may restore it (`DescribeDBSnapshotAttributes`: automated snapshots cannot be shared). A snapshot
//! whose attributes cannot be read keeps the error, so one unreadable snapshot hides no other.

use futures::StreamExt as _;

use super::inventory::SdkInventory;
use crate::inventory::DbSnapshotFacts;
use crate::AwsError;

/// Attribute reads at once.
const CONCURRENCY: usize = 8;

impl SdkInventory {
    pub(super) async fn list_db_snapshots(&self) -> Result<Vec<DbSnapshotFacts>, AwsError> {
        let mut snapshots = Vec::new();
        let mut pages = self.rds.describe_db_snapshots().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("RDS", "DescribeDBSnapshots", &self.region, e))?;
            for s in page.db_snapshots() {
                snapshots.push(DbSnapshotFacts {
                    arn: s.db_snapshot_arn().unwrap_or_default().to_owned(),
                    id: s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    instance: s.db_instance_identifier().unwrap_or_default().to_owned(),
                    snapshot_type: s.snapshot_type().unwrap_or_default().to_owned(),
                    encrypted: s.encrypted().unwrap_or(false),
                    restorable_by: Ok(Vec::new()),
                });
            }
        }
        Ok(futures::stream::iter(snapshots)
            .map(|mut snapshot| async move {
                if snapshot.snapshot_type == "manual" {
                    snapshot.restorable_by = self.restorable_by(&snapshot.id).await;
                }
                snapshot
            })
            .buffered(CONCURRENCY)
            .collect()
            .await)
    }

    /// The values of a snapshot's `restore` attribute: account ids, or `all`.
    async fn restorable_by(&self, id: &str) -> Result<Vec<String>, String> {
        let out = self
            .rds
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RDS", "DescribeDBSnapshotAttributes", id, e).to_string())?;
        Ok(out
            .db_snapshot_attributes_result()
            .map(|r| {
                r.db_snapshot_attributes()
                    .iter()
                    .filter(|a| a.attribute_name() == Some("restore"))
                    .flat_map(|a| a.attribute_values().iter().cloned())
                    .collect()
            })
            .unwrap_or_default())
    }
}
