//! The `aws-sdk` implementation of [`crate::elb`]'s trait.

#[allow(unused_imports)]
use crate::elb::*;
use crate::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_config::SdkConfig;

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
    async fn listener_alias_target(&self, listener_arn: &str) -> Result<AliasTarget, AwsError> {
        let not_found =
            |operation, what: &str| AwsError::new("ELBv2", operation, listener_arn, AwsErrorKind::NotFound, what);
        let listeners = self
            .client
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "DescribeListeners", listener_arn, e))?;
        let lb_arn = listeners
            .listeners()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| not_found("DescribeListeners", "listener not found"))?;
        let lbs = self
            .client
            .describe_load_balancers()
            .load_balancer_arns(lb_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "DescribeLoadBalancers", lb_arn, e))?;
        let lb = lbs
            .load_balancers()
            .first()
            .ok_or_else(|| not_found("DescribeLoadBalancers", "the listener's load balancer was not found"))?;
        Ok(AliasTarget {
            dns_name: lb.dns_name().unwrap_or_default().trim_end_matches('.').to_owned(),
            hosted_zone_id: lb.canonical_hosted_zone_id().unwrap_or_default().to_owned(),
        })
    }

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
