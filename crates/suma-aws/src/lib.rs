//! AWS access. Each service sits behind a narrow trait in its own module (`ecs`, `elb`, `rds`, `route53`,
//! `secrets`, `dynamodb`; `inventory`, the read-only account view of compliance checks) that returns suma's
//! own types; only this directory imports `aws-sdk-*`.
//! [`AwsSession`] builds SDK clients from aws-config's standard chain (env, profiles, SSO, web identity),
//! with the standard retry mode, explicit timeouts, and the standard endpoint override (`AWS_ENDPOINT_URL`).

pub mod dynamodb;
pub mod ecs;
pub mod elb;
pub mod inventory;
pub mod rds;
pub mod route53;
pub mod secrets;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use suma_core::config::AwsRegion;

/// What kind of failure an AWS call had, for exit codes and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AwsErrorKind {
    NotFound,
    AccessDenied,
    Throttled,
    /// The request never got an answer: DNS, connection refused, timeout.
    Unreachable,
    /// A conditional write lost (used by the lock).
    ConditionFailed,
    Other,
}

/// A failed AWS call: which operation, on which resource, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation} on `{resource}` failed: {detail}{}", hint_suffix(*kind))]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub resource: String,
    pub kind: AwsErrorKind,
    pub detail: String,
}

fn hint_suffix(kind: AwsErrorKind) -> &'static str {
    match kind {
        AwsErrorKind::AccessDenied => {
            "\nhint: check the credentials in use (`aws sts get-caller-identity`) and their IAM policy"
        }
        AwsErrorKind::Unreachable => "\nhint: check network access to AWS, or `AWS_ENDPOINT_URL` if it is set",
        AwsErrorKind::NotFound => "\nhint: check the resource name in the configuration and the region",
        _ => "",
    }
}

impl AwsError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        kind: AwsErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            resource: resource.into(),
            kind,
            detail: detail.into(),
        }
    }

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

fn classify_code(code: &str) -> AwsErrorKind {
    match code {
        "ConditionalCheckFailedException" | "TransactionCanceledException" => AwsErrorKind::ConditionFailed,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException" => AwsErrorKind::AccessDenied,
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            AwsErrorKind::Throttled
        }
        c if c.contains("NotFound") || c.starts_with("NoSuch") || c == "ResourceNotFoundException" => {
            AwsErrorKind::NotFound
        }
        _ => AwsErrorKind::Other,
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

/// How suma talks to AWS: profile, timeouts.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub operation_timeout: Duration,
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

/// Hands out the service traits per region; the seam where tests inject fakes.
pub trait AwsApis: Send + Sync {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn ecs::EcsApi>;
    fn elb(&self, region: &AwsRegion) -> Arc<dyn elb::LoadBalancerApi>;
    fn rds(&self, region: &AwsRegion) -> Arc<dyn rds::DatabaseApi>;
    fn route53(&self) -> Arc<dyn route53::DnsApi>;
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn secrets::SecretsApi>;
}

impl AwsApis for AwsSession {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn ecs::EcsApi> {
        Arc::new(ecs::SdkEcs::new(self.config(region)))
    }
    fn elb(&self, region: &AwsRegion) -> Arc<dyn elb::LoadBalancerApi> {
        Arc::new(elb::SdkElb::new(self.config(region)))
    }
    fn rds(&self, region: &AwsRegion) -> Arc<dyn rds::DatabaseApi> {
        Arc::new(rds::SdkRds::new(self.config(region)))
    }
    fn route53(&self) -> Arc<dyn route53::DnsApi> {
        // Route 53 is global; any loaded region's credentials and endpoint serve it.
        let config = self
            .configs
            .values()
            .next()
            .expect("AwsSession has at least one region");
        Arc::new(route53::SdkRoute53::new(config))
    }
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn secrets::SecretsApi> {
        Arc::new(secrets::SdkSecrets::new(self.config(region)))
    }
}

impl AwsSession {
    /// Secret values and staging labels, for the rotation only (not part of [`AwsApis`]: read-only commands
    /// never get it).
    pub fn secret_versions(&self, region: &AwsRegion) -> Arc<dyn secrets::SecretVersionsApi> {
        Arc::new(secrets::SdkSecrets::new(self.config(region)))
    }

    /// The lock and journal store in the lock table's region.
    pub fn lock_store(&self, region: &AwsRegion, table: &str) -> Arc<dyn dynamodb::LockTable> {
        Arc::new(dynamodb::SdkLockTable::new(self.config(region), table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        assert_eq!(
            classify_code("ConditionalCheckFailedException"),
            AwsErrorKind::ConditionFailed
        );
        assert_eq!(classify_code("DBInstanceNotFound"), AwsErrorKind::NotFound);
        assert_eq!(classify_code("ResourceNotFoundException"), AwsErrorKind::NotFound);
        assert_eq!(classify_code("NoSuchHostedZone"), AwsErrorKind::NotFound);
        assert_eq!(classify_code("AccessDeniedException"), AwsErrorKind::AccessDenied);
        assert_eq!(classify_code("ThrottlingException"), AwsErrorKind::Throttled);
        assert_eq!(classify_code("ValidationError"), AwsErrorKind::Other);
    }
}
