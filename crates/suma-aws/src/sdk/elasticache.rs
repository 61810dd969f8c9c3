//! The `aws-sdk` implementation of [`crate::elasticache`]'s trait.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_elasticache::types::AuthTokenUpdateStrategyType;

use crate::elasticache::*;
use crate::{AwsError, AwsErrorKind};

pub struct SdkElastiCache {
    client: aws_sdk_elasticache::Client,
}

impl SdkElastiCache {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_elasticache::Client::new(config),
        }
    }
}

fn group_of(group: &aws_sdk_elasticache::types::ReplicationGroup) -> ReplicationGroup {
    // Cluster mode disabled has a primary endpoint per node group; enabled has a configuration endpoint.
    let endpoint = group
        .node_groups()
        .first()
        .and_then(|n| n.primary_endpoint())
        .or(group.configuration_endpoint())
        .and_then(|e| Some(format!("{}:{}", e.address()?, e.port()?)));
    ReplicationGroup {
        id: group.replication_group_id().unwrap_or_default().to_owned(),
        status: group.status().unwrap_or_default().to_owned(),
        auth_token_enabled: group.auth_token_enabled().unwrap_or(false),
        transit_encryption: group.transit_encryption_enabled().unwrap_or(false),
        at_rest_encryption: group.at_rest_encryption_enabled().unwrap_or(false),
        primary_endpoint: endpoint,
    }
}

/// Every replication group of the region, as the compliance inventory sees it.
pub(crate) async fn inventory_groups(
    client: &aws_sdk_elasticache::Client,
    region: &str,
) -> Result<Vec<crate::inventory::CacheGroupFacts>, AwsError> {
    let mut groups = Vec::new();
    let mut pages = client.describe_replication_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ElastiCache", "DescribeReplicationGroups", region, e))?;
        for g in page.replication_groups() {
            groups.push(crate::inventory::CacheGroupFacts {
                arn: g.arn().unwrap_or_default().to_owned(),
                id: g.replication_group_id().unwrap_or_default().to_owned(),
                region: region.to_owned(),
                at_rest_encryption: g.at_rest_encryption_enabled().unwrap_or(false),
                transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
                transit_encryption_mode: g.transit_encryption_mode().map(|m| m.as_str().to_owned()),
                auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
                user_group_ids: g.user_group_ids().to_vec(),
                automatic_failover: g
                    .automatic_failover()
                    .map(|f| f.as_str().to_owned())
                    .unwrap_or_default(),
                multi_az: g.multi_az().is_some_and(|m| m.as_str() == "enabled"),
                snapshot_retention_days: g.snapshot_retention_limit().unwrap_or(0),
            });
        }
    }
    Ok(groups)
}

#[async_trait]
impl CacheApi for SdkElastiCache {
    async fn describe_replication_group(&self, id: &str) -> Result<ReplicationGroup, AwsError> {
        let out = self
            .client
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ElastiCache", "DescribeReplicationGroups", id, e))?;
        out.replication_groups().first().map(group_of).ok_or_else(|| {
            AwsError::new(
                "ElastiCache",
                "DescribeReplicationGroups",
                id,
                AwsErrorKind::NotFound,
                "replication group not found",
            )
        })
    }

    async fn update_auth_token(
        &self,
        id: &str,
        token: &AuthToken,
        update: AuthTokenUpdate,
    ) -> Result<ReplicationGroup, AwsError> {
        let strategy = match update {
            AuthTokenUpdate::Rotate => AuthTokenUpdateStrategyType::Rotate,
            AuthTokenUpdate::Set => AuthTokenUpdateStrategyType::Set,
        };
        let out = self
            .client
            .modify_replication_group()
            .replication_group_id(id)
            .auth_token(&token.0)
            .auth_token_update_strategy(strategy)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ElastiCache", "ModifyReplicationGroup", id, e))?;
        out.replication_group().map(group_of).ok_or_else(|| {
            AwsError::new(
                "ElastiCache",
                "ModifyReplicationGroup",
                id,
                AwsErrorKind::Other,
                "the answer has no replication group",
            )
        })
    }
}
