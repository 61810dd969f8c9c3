//! Elastic Load Balancing v2: the weighted forward rule that splits traffic between stable and canary.

use async_trait::async_trait;
use aws_config::SdkConfig;
use serde::Serialize;

use super::{AwsError, AwsErrorKind};

/// One target group of a forward action and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightedTarget {
    pub target_group_arn: String,
    pub weight: i32,
}

#[async_trait]
pub trait LoadBalancerApi: Send + Sync {
    /// The target groups and weights of the rule's forward action.
    async fn rule_weights(&self, rule_arn: &str) -> Result<Vec<WeightedTarget>, AwsError>;
    /// Replaces the rule's action with a weighted forward to `targets`.
    async fn set_weights(&self, rule_arn: &str, targets: &[WeightedTarget]) -> Result<(), AwsError>;
}

pub struct SdkElb {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl SdkElb {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_elasticloadbalancingv2::Client::new(config),
        }
    }
}

#[async_trait]
impl LoadBalancerApi for SdkElb {
    async fn set_weights(&self, rule_arn: &str, targets: &[WeightedTarget]) -> Result<(), AwsError> {
        use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple};
        let groups = targets
            .iter()
            .map(|t| {
                TargetGroupTuple::builder()
                    .target_group_arn(&t.target_group_arn)
                    .weight(t.weight)
                    .build()
            })
            .collect();
        let action = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(ForwardActionConfig::builder().set_target_groups(Some(groups)).build())
            .build();
        self.client
            .modify_rule()
            .rule_arn(rule_arn)
            .actions(action)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "ModifyRule", rule_arn, e))?;
        Ok(())
    }

    async fn rule_weights(&self, rule_arn: &str) -> Result<Vec<WeightedTarget>, AwsError> {
        let out = self
            .client
            .describe_rules()
            .rule_arns(rule_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "DescribeRules", rule_arn, e))?;
        let rule = out.rules().first().ok_or_else(|| {
            AwsError::new(
                "ELBv2",
                "DescribeRules",
                rule_arn,
                AwsErrorKind::NotFound,
                "rule not found",
            )
        })?;
        let forward = rule
            .actions()
            .iter()
            .find(|a| a.r#type().map(|t| t.as_str()) == Some("forward"))
            .ok_or_else(|| {
                AwsError::new(
                    "ELBv2",
                    "DescribeRules",
                    rule_arn,
                    AwsErrorKind::Other,
                    "the rule has no forward action",
                )
            })?;
        if let Some(config) = forward.forward_config() {
            return Ok(config
                .target_groups()
                .iter()
                .map(|t| WeightedTarget {
                    target_group_arn: t.target_group_arn().unwrap_or_default().to_owned(),
                    weight: t.weight().unwrap_or(1),
                })
                .collect());
        }
        // A plain forward to one target group sends it everything.
        Ok(forward
            .target_group_arn()
            .map(|arn| {
                vec![WeightedTarget {
                    target_group_arn: arn.to_owned(),
                    weight: 1,
                }]
            })
            .unwrap_or_default())
    }
}
