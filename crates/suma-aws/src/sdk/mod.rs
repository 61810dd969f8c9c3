//! The `aws-sdk` implementations of the traits, and [`AwsSession`], which builds them from aws-config's
//! standard chain (env, profiles, SSO, web identity) with the standard retry mode, explicit timeouts and
//! the standard endpoint override (`AWS_ENDPOINT_URL`). Compiled with the `sdk` feature only, so the
//! crates above can build and test their logic against the traits without linking the SDK.

mod api_call;
pub mod dynamodb;
mod ecs;
mod ecs_taskdef;
pub mod elasticache;
pub mod elb;
pub mod inventory;
mod kms;
mod posture;
pub mod rds;
pub mod route53;
mod schedules;
pub mod secrets;
mod snapshots;
mod waf;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use suma_core::config::AwsRegion;

use crate::{classify_code, AwsApis, AwsError, AwsErrorKind, AwsOptions};

impl AwsError {
    /// Converts any SDK error, classifying it by its error code.
    pub(crate) fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let kind = match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AwsErrorKind::Unreachable,
            _ => classify_code(err.code().unwrap_or_default()),
        };
        let detail = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self::new(service, operation, resource, kind, detail)
    }
}

/// Converts an SDK timestamp.
pub(crate) fn to_chrono(t: &aws_smithy_types_date::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The SDK's `DateTime`, reached through one SDK crate's re-export so no extra dependency is needed.
pub(crate) mod aws_smithy_types_date {
    pub use aws_sdk_ecs::primitives::DateTime;
}

/// Loaded SDK configuration for each region an environment spans.
#[derive(Clone)]
pub struct AwsSession {
    configs: HashMap<String, SdkConfig>,
}

impl AwsSession {
    /// Loads the SDK configuration once per region. Credentials resolve lazily on the first call.
    pub async fn connect<'a>(options: &AwsOptions, regions: impl IntoIterator<Item = &'a AwsRegion>) -> Self {
        let mut configs = HashMap::new();
        for region in regions {
            if configs.contains_key(region.as_str()) {
                continue;
            }
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(aws_config::Region::new(region.as_str().to_owned()))
                .retry_config(RetryConfig::standard().with_max_attempts(4))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_attempt_timeout(options.operation_timeout.min(Duration::from_secs(20)))
                        .operation_timeout(options.operation_timeout)
                        .build(),
                );
            if let Some(profile) = &options.profile {
                loader = loader.profile_name(profile);
            }
            configs.insert(region.as_str().to_owned(), loader.load().await);
        }
        Self { configs }
    }

    fn config(&self, region: &AwsRegion) -> &SdkConfig {
        self.configs
            .get(region.as_str())
            .unwrap_or_else(|| panic!("region {region} was not loaded by AwsSession::connect"))
    }
}

impl AwsApis for AwsSession {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn crate::ecs::EcsApi> {
        Arc::new(ecs::SdkEcs::new(self.config(region)))
    }
    fn elb(&self, region: &AwsRegion) -> Arc<dyn crate::elb::LoadBalancerApi> {
        Arc::new(elb::SdkElb::new(self.config(region)))
    }
    fn rds(&self, region: &AwsRegion) -> Arc<dyn crate::rds::DatabaseApi> {
        Arc::new(rds::SdkRds::new(self.config(region)))
    }
    fn route53(&self) -> Arc<dyn crate::route53::DnsApi> {
        // Route 53 is global; any loaded region's credentials and endpoint serve it.
        let config = self
            .configs
            .values()
            .next()
            .expect("AwsSession has at least one region");
        Arc::new(route53::SdkRoute53::new(config))
    }
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn crate::secrets::SecretsApi> {
        Arc::new(secrets::SdkSecrets::new(self.config(region)))
    }
}

impl AwsSession {
    /// Secret values and staging labels, for the rotation only (not part of [`AwsApis`]: read-only commands
    /// never get it).
    pub fn secret_versions(&self, region: &AwsRegion) -> Arc<dyn crate::secrets::SecretVersionsApi> {
        Arc::new(secrets::SdkSecrets::new(self.config(region)))
    }

    /// ElastiCache, for the Redis AUTH rotation only.
    pub fn cache(&self, region: &AwsRegion) -> Arc<dyn crate::elasticache::CacheApi> {
        Arc::new(elasticache::SdkElastiCache::new(self.config(region)))
    }

    /// Creating and hardening the lock table, for `suma init` only.
    pub fn lock_table_setup(&self, region: &AwsRegion, table: &str) -> Arc<dyn crate::dynamodb::LockTableSetup> {
        Arc::new(dynamodb::SdkLockTableSetup::new(self.config(region), table))
    }

    /// Who these credentials are: the STS caller ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`
    /// for a role, whose session name tells people apart; `arn:aws:iam::ACCOUNT:user/NAME` for a user).
    /// What an approval records, since the actor name is only what the caller says of themselves.
    pub async fn caller_identity(&self) -> Result<String, AwsError> {
        let config = self
            .configs
            .values()
            .next()
            .expect("AwsSession has at least one region");
        let out = aws_sdk_sts::Client::new(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("STS", "GetCallerIdentity", "caller", e))?;
        out.arn().map(str::to_owned).ok_or_else(|| {
            AwsError::new(
                "STS",
                "GetCallerIdentity",
                "caller",
                AwsErrorKind::Other,
                "no ARN in the answer",
            )
        })
    }

    /// Any operation of the services `aws.call` reaches, called by name in `region` (the runbook action's
    /// only; which operations a runbook may call is judged before, by `api_call::access`).
    pub fn api_caller(&self, region: &AwsRegion) -> Arc<dyn crate::api_call::ApiCaller> {
        Arc::new(api_call::SdkApiCaller::new(self.config(region), region.as_str()))
    }

    /// The lock and journal store in the lock table's region.
    pub fn lock_store(&self, region: &AwsRegion, table: &str) -> Arc<dyn crate::dynamodb::LockTable> {
        Arc::new(dynamodb::SdkLockTable::new(self.config(region), table))
    }
}
