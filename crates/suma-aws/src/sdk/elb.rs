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

    /// The listener rule `rule_arn` as ELB describes it.
    async fn rule(&self, rule_arn: &str) -> Result<aws_sdk_elasticloadbalancingv2::types::Rule, AwsError> {
        let out = self
            .client
            .describe_rules()
            .rule_arns(rule_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "DescribeRules", rule_arn, e))?;
        out.rules().first().cloned().ok_or_else(|| {
            AwsError::new(
                "ELBv2",
                "DescribeRules",
                rule_arn,
                AwsErrorKind::NotFound,
                "rule not found",
            )
        })
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

    /// Changes only the weights of the rule's forward action: its other actions (authenticate-oidc,
    /// authenticate-cognito, ...) and the forward action's stickiness are read first and written back
    /// as they were, since `ModifyRule` replaces the whole action list.
    async fn set_weights(&self, rule_arn: &str, targets: &[WeightedTarget]) -> Result<(), AwsError> {
        let actions = self.rule(rule_arn).await?.actions().to_vec();
        let actions = reweighted(&actions, targets)
            .map_err(|why| AwsError::new("ELBv2", "ModifyRule", rule_arn, AwsErrorKind::Other, why))?;
        self.client
            .modify_rule()
            .rule_arn(rule_arn)
            .set_actions(Some(actions))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ELBv2", "ModifyRule", rule_arn, e))?;
        Ok(())
    }

    async fn rule_weights(&self, rule_arn: &str) -> Result<Vec<WeightedTarget>, AwsError> {
        let rule = self.rule(rule_arn).await?;
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

/// `actions` with the forward action's target groups replaced by `targets` (its stickiness and order
/// kept, a bare `TargetGroupArn` dropped in favour of the weighted list); every other action unchanged.
fn reweighted(
    actions: &[aws_sdk_elasticloadbalancingv2::types::Action],
    targets: &[WeightedTarget],
) -> Result<Vec<aws_sdk_elasticloadbalancingv2::types::Action>, String> {
    use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, ForwardActionConfig, TargetGroupTuple};
    let groups: Vec<TargetGroupTuple> = targets
        .iter()
        .map(|t| {
            TargetGroupTuple::builder()
                .target_group_arn(&t.target_group_arn)
                .weight(t.weight)
                .build()
        })
        .collect();
    let mut found = false;
    let rebuilt = actions
        .iter()
        .map(|action| {
            if action.r#type() != Some(&ActionTypeEnum::Forward) {
                return action.clone();
            }
            found = true;
            let stickiness = action
                .forward_config()
                .and_then(|c| c.target_group_stickiness_config())
                .cloned();
            let mut forward = action.clone();
            forward.target_group_arn = None;
            forward.forward_config = Some(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(groups.clone()))
                    .set_target_group_stickiness_config(stickiness)
                    .build(),
            );
            forward
        })
        .collect();
    if found {
        Ok(rebuilt)
    } else {
        Err("the rule has no forward action to weight; point the configuration's `alb.rule_arn` at the rule that forwards to the stable and canary target groups".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, AuthenticateOidcActionConfig, ForwardActionConfig, TargetGroupStickinessConfig,
        TargetGroupTuple,
    };

    fn target(arn: &str, weight: i32) -> WeightedTarget {
        WeightedTarget {
            target_group_arn: arn.to_owned(),
            weight,
        }
    }

    #[test]
    fn only_the_forward_actions_weights_change() {
        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example")
                    .client_id("suma")
                    .authorization_endpoint("https://idp.example/authorize")
                    .token_endpoint("https://idp.example/token")
                    .user_info_endpoint("https://idp.example/userinfo")
                    .build(),
            )
            .build();
        let stickiness = TargetGroupStickinessConfig::builder()
            .enabled(true)
            .duration_seconds(300)
            .build();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .target_group_arn("stable")
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("stable")
                            .weight(100)
                            .build(),
                    )
                    .target_group_stickiness_config(stickiness.clone())
                    .build(),
            )
            .build();
        let out = reweighted(&[oidc.clone(), forward], &[target("stable", 90), target("canary", 10)]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], oidc, "the authenticate action is written back as it was");
        assert_eq!(out[1].order(), Some(2));
        assert_eq!(out[1].target_group_arn(), None);
        let config = out[1].forward_config().unwrap();
        assert_eq!(
            config.target_group_stickiness_config(),
            Some(&stickiness),
            "stickiness kept"
        );
        let weights: Vec<(&str, Option<i32>)> = config
            .target_groups()
            .iter()
            .map(|t| (t.target_group_arn().unwrap(), t.weight()))
            .collect();
        assert_eq!(weights, [("stable", Some(90)), ("canary", Some(10))]);
    }

    #[test]
    fn a_rule_without_a_forward_action_is_refused() {
        let fixed = Action::builder().r#type(ActionTypeEnum::FixedResponse).build();
        let why = reweighted(&[fixed], &[target("stable", 100)]).unwrap_err();
        assert!(why.contains("no forward action"), "{why}");
    }
}
