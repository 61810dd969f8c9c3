//! Elastic Load Balancing v2: the weighted forward rule that splits traffic between stable and canary.

use async_trait::async_trait;
use serde::Serialize;

use super::{AwsError, AwsErrorKind};

/// One target group of a forward action and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightedTarget {
    pub target_group_arn: String,
    pub weight: i32,
}

/// Where a Route 53 alias record points to reach a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasTarget {
    /// The load balancer's DNS name, without a trailing dot.
    pub dns_name: String,
    /// The load balancer's canonical hosted zone.
    pub hosted_zone_id: String,
}

#[async_trait]
pub trait LoadBalancerApi: Send + Sync {
    /// The target groups and weights of the rule's forward action.
    async fn rule_weights(&self, rule_arn: &str) -> Result<Vec<WeightedTarget>, AwsError>;
    /// Replaces the rule's action with a weighted forward to `targets`.
    async fn set_weights(&self, rule_arn: &str, targets: &[WeightedTarget]) -> Result<(), AwsError>;
    /// The alias target of the load balancer that owns the listener.
    async fn listener_alias_target(&self, listener_arn: &str) -> Result<AliasTarget, AwsError> {
        Err(AwsError::new(
            "ELBv2",
            "DescribeListeners",
            listener_arn,
            AwsErrorKind::Other,
            "not supported by this client",
        ))
    }
}
