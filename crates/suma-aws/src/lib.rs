//! AWS access. Each service sits behind a narrow trait in its own module (`ecs`, `elb`, `rds`, `route53`,
//! `secrets`, `dynamodb`; `inventory`, the read-only account view of compliance checks) that returns suma's
//! own types; only this crate imports `aws-sdk-*`, and only in `sdk/`, behind the `sdk` feature: without
//! it the traits and types build alone, so the crates above test their logic without linking the SDK.
//! `sdk::AwsSession` builds the SDK clients.

pub mod api_call;
pub mod dynamodb;
pub mod ecs;
pub mod elasticache;
pub mod elb;
pub mod iam;
pub mod inventory;
pub mod rds;
pub mod route53;
#[cfg(feature = "sdk")]
pub mod sdk;
pub mod secrets;

#[cfg(feature = "sdk")]
pub use sdk::AwsSession;

use std::sync::Arc;
use std::time::Duration;

use suma_core::config::AwsRegion;

/// What kind of failure an AWS call had, for exit codes and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AwsErrorKind {
    NotFound,
    AccessDenied,
    Throttled,
    /// AWS failed the request on its side (500, 503): worth trying again later.
    ServerError,
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
        AwsErrorKind::Throttled | AwsErrorKind::ServerError => {
            "\nhint: AWS answered so through every retry; wait a minute and run the command again (`suma ops list` shows whether an operation had begun, and `resume` finishes one that stopped)"
        }
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
}

/// What kind of failure an AWS error code means.
#[cfg_attr(not(feature = "sdk"), allow(dead_code))]
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
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "InternalServerErrorException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => AwsErrorKind::ServerError,
        c if c.contains("NotFound") || c.starts_with("NoSuch") || c == "ResourceNotFoundException" => {
            AwsErrorKind::NotFound
        }
        _ => AwsErrorKind::Other,
    }
}

/// How suma talks to AWS: profile, timeouts.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub operation_timeout: Duration,
}

/// Hands out the service traits per region; the seam where tests inject fakes.
pub trait AwsApis: Send + Sync {
    fn ecs(&self, region: &AwsRegion) -> Arc<dyn ecs::EcsApi>;
    fn elb(&self, region: &AwsRegion) -> Arc<dyn elb::LoadBalancerApi>;
    fn rds(&self, region: &AwsRegion) -> Arc<dyn rds::DatabaseApi>;
    fn route53(&self) -> Arc<dyn route53::DnsApi>;
    fn secrets(&self, region: &AwsRegion) -> Arc<dyn secrets::SecretsApi>;
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
        assert_eq!(classify_code("ServiceUnavailable"), AwsErrorKind::ServerError);
        assert_eq!(classify_code("InternalFailure"), AwsErrorKind::ServerError);
        assert_eq!(classify_code("ValidationError"), AwsErrorKind::Other);
    }
}
