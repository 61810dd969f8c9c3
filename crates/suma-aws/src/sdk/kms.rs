//! The KMS half of the SDK inventory: every key of a region with its aliases, who manages it, its
//! rotation and its policy. A key's own reads (rotation, policy) that fail are kept on the key, so one
//! unreadable key does not hide the others.

use std::collections::HashMap;

use aws_sdk_kms::types::{KeyManagerType, KeyMetadata, KeySpec, KeyState};
use futures::StreamExt as _;

use super::inventory::SdkInventory;
use crate::inventory::KmsKeyFacts;
use crate::AwsError;

/// Keys described at once.
const CONCURRENCY: usize = 8;

impl SdkInventory {
    /// Every key of the region (`ListKeys`), described, with the aliases `ListAliases` gives.
    pub(super) async fn list_kms_keys(&self) -> Result<Vec<KmsKeyFacts>, AwsError> {
        let mut ids = Vec::new();
        let mut pages = self.kms.list_keys().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("KMS", "ListKeys", &self.region, e))?;
            ids.extend(page.keys().iter().filter_map(|k| k.key_id().map(str::to_owned)));
        }
        let aliases = self.kms_aliases().await?;
        let described: Vec<Result<KmsKeyFacts, AwsError>> = futures::stream::iter(ids)
            .map(|id| {
                let aliases = aliases.get(&id).cloned().unwrap_or_default();
                async move { self.describe_kms_key(&id, aliases).await }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        described.into_iter().collect()
    }

    /// One key by id, ARN or alias.
    pub(super) async fn describe_kms_key(
        &self,
        reference: &str,
        aliases: Vec<String>,
    ) -> Result<KmsKeyFacts, AwsError> {
        let out = self
            .kms
            .describe_key()
            .key_id(reference)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("KMS", "DescribeKey", reference, e))?;
        let Some(meta) = out.key_metadata() else {
            return Err(AwsError::new(
                "KMS",
                "DescribeKey",
                reference,
                crate::AwsErrorKind::NotFound,
                "no key metadata in the answer",
            ));
        };
        Ok(self.key_facts(meta, aliases).await)
    }

    async fn key_facts(&self, meta: &KeyMetadata, aliases: Vec<String>) -> KmsKeyFacts {
        let key_id = meta.key_id().to_owned();
        let customer_managed = meta.key_manager() == Some(&KeyManagerType::Customer);
        let enabled = meta.key_state() == Some(&KeyState::Enabled);
        let symmetric_encryption = meta.key_spec().is_none_or(|s| *s == KeySpec::SymmetricDefault);
        let rotation_enabled = if customer_managed && enabled && symmetric_encryption {
            self.kms
                .get_key_rotation_status()
                .key_id(&key_id)
                .send()
                .await
                .map(|r| Some(r.key_rotation_enabled()))
                .map_err(|e| AwsError::from_sdk("KMS", "GetKeyRotationStatus", &key_id, e).to_string())
        } else {
            Ok(None)
        };
        let policy = if customer_managed {
            self.kms
                .get_key_policy()
                .key_id(&key_id)
                .policy_name("default")
                .send()
                .await
                .map(|p| p.policy().map(str::to_owned))
                .map_err(|e| AwsError::from_sdk("KMS", "GetKeyPolicy", &key_id, e).to_string())
        } else {
            Ok(None)
        };
        KmsKeyFacts {
            arn: meta.arn().unwrap_or_default().to_owned(),
            key_id,
            region: self.region.clone(),
            aliases,
            customer_managed,
            state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            symmetric_encryption,
            rotation_enabled,
            policy,
        }
    }

    /// Alias names by the key id they point at.
    async fn kms_aliases(&self) -> Result<HashMap<String, Vec<String>>, AwsError> {
        let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
        let mut pages = self.kms.list_aliases().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("KMS", "ListAliases", &self.region, e))?;
            for alias in page.aliases() {
                if let (Some(name), Some(key)) = (alias.alias_name(), alias.target_key_id()) {
                    by_key.entry(key.to_owned()).or_default().push(name.to_owned());
                }
            }
        }
        Ok(by_key)
    }
}
