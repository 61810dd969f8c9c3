//! The `aws-sdk` implementation of [`crate::secrets`]'s trait.

use crate::sdk::to_chrono;
#[allow(unused_imports)]
use crate::secrets::*;
use crate::AwsError;
use async_trait::async_trait;
use aws_config::SdkConfig;

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
            replicas: out
                .replication_status()
                .iter()
                .filter_map(|r| {
                    Some(SecretReplica {
                        region: r.region()?.to_owned(),
                        status: r
                            .status()
                            .map_or_else(|| "InSync".to_owned(), |s| s.as_str().to_owned()),
                        message: r.status_message().map(str::to_owned),
                    })
                })
                .collect(),
        })
    }
}

#[async_trait]
impl SecretVersionsApi for SdkSecrets {
    async fn value(&self, id: &str, version: &VersionRef) -> Result<Option<SecretValue>, AwsError> {
        let request = self.client.get_secret_value().secret_id(id);
        let request = match version {
            VersionRef::Stage(stage) => request.version_stage(*stage),
            VersionRef::Id(version_id) => request.version_id(version_id),
        };
        match request.send().await {
            Ok(out) => Ok(Some(SecretValue {
                version_id: out.version_id().unwrap_or_default().to_owned(),
                value: out.secret_string().unwrap_or_default().to_owned(),
            })),
            Err(e) => {
                let err = AwsError::from_sdk("SecretsManager", "GetSecretValue", id, e);
                if err.kind == super::AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn put_pending(&self, id: &str, token: &str, value: &str) -> Result<(), AwsError> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(AWSPENDING)
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk("SecretsManager", "PutSecretValue", id, e))
    }

    async fn move_stage(&self, id: &str, stage: &str, to: &str, from: Option<&str>) -> Result<(), AwsError> {
        self.client
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(stage)
            .move_to_version_id(to)
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk("SecretsManager", "UpdateSecretVersionStage", id, e))
    }

    async fn remove_stage(&self, id: &str, stage: &str, from: &str) -> Result<(), AwsError> {
        self.client
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(stage)
            .remove_from_version_id(from)
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk("SecretsManager", "UpdateSecretVersionStage", id, e))
    }
}
