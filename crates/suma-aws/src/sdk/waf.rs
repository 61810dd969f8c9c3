//! The web ACL AWS WAF associates with a resource, for compliance: the managed rule groups it runs (its
//! own rules and those AWS Firewall Manager adds before and after them), with the overrides that turn a
//! group or some of its rules into counting only, its rate-based rules, and where it logs.

use aws_sdk_wafv2::types::{ManagedRuleGroupStatement, OverrideAction, RuleAction, WebAcl};

use super::inventory::SdkInventory;
use crate::inventory::{ManagedRuleGroupUse, RateLimitRule, WafLogging, WebAclFacts};
use crate::AwsError;

impl SdkInventory {
    pub(super) async fn read_web_acl_for(&self, resource_arn: &str) -> Result<Option<WebAclFacts>, AwsError> {
        let out = self
            .waf
            .get_web_acl_for_resource()
            .resource_arn(resource_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("WAFv2", "GetWebACLForResource", resource_arn, e))?;
        let Some(acl) = out.web_acl() else {
            return Ok(None);
        };
        let mut facts = web_acl_facts(acl);
        facts.logging = self.read_waf_logging(acl.arn()).await;
        Ok(Some(facts))
    }

    /// The web ACL's logging configuration; `None` when it logs nowhere (WAF answers "nonexistent").
    async fn read_waf_logging(&self, acl_arn: &str) -> Result<Option<WafLogging>, String> {
        match self.waf.get_logging_configuration().resource_arn(acl_arn).send().await {
            Ok(out) => Ok(out.logging_configuration().map(|c| WafLogging {
                destinations: c.log_destination_configs().to_vec(),
                redacted_headers: c
                    .redacted_fields()
                    .iter()
                    .filter_map(|f| f.single_header().map(|h| h.name().to_ascii_lowercase()))
                    .collect(),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_waf_nonexistent_item_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AwsError::from_sdk("WAFv2", "GetLoggingConfiguration", acl_arn, e).to_string()),
        }
    }
}

/// What a rule action does, in the words findings use.
fn action_name(action: &RuleAction) -> &'static str {
    if action.block().is_some() {
        "block"
    } else if action.captcha().is_some() {
        "captcha"
    } else if action.challenge().is_some() {
        "challenge"
    } else if action.count().is_some() {
        "count"
    } else {
        "allow"
    }
}

fn group_use(statement: &ManagedRuleGroupStatement, override_action: Option<&OverrideAction>) -> ManagedRuleGroupUse {
    let excluded = statement.excluded_rules().iter().map(|r| r.name().to_owned());
    // An override to block, CAPTCHA or challenge still stops the request; count and allow do not.
    let overridden = statement
        .rule_action_overrides()
        .iter()
        .filter(|o| {
            o.action_to_use()
                .is_none_or(|a| matches!(action_name(a), "count" | "allow"))
        })
        .map(|o| o.name().to_owned());
    let mut rules_not_blocking: Vec<String> = excluded.chain(overridden).collect();
    rules_not_blocking.sort();
    rules_not_blocking.dedup();
    ManagedRuleGroupUse {
        vendor: statement.vendor_name().to_owned(),
        name: statement.name().to_owned(),
        count_only: override_action.is_some_and(|o| o.count().is_some()),
        rules_not_blocking,
    }
}

pub(crate) fn web_acl_facts(acl: &WebAcl) -> WebAclFacts {
    let mut managed_rule_groups = Vec::new();
    let mut rate_limits = Vec::new();
    for rule in acl.rules() {
        let Some(statement) = rule.statement() else { continue };
        if let Some(group) = statement.managed_rule_group_statement() {
            managed_rule_groups.push(group_use(group, rule.override_action()));
        }
        if let Some(rate) = statement.rate_based_statement() {
            rate_limits.push(RateLimitRule {
                name: rule.name().to_owned(),
                limit: rate.limit(),
                action: rule.action().map_or("none", action_name).to_owned(),
            });
        }
    }
    let firewall_manager = acl
        .pre_process_firewall_manager_rule_groups()
        .iter()
        .chain(acl.post_process_firewall_manager_rule_groups());
    for group in firewall_manager {
        if let Some(statement) = group
            .firewall_manager_statement()
            .and_then(|s| s.managed_rule_group_statement())
        {
            managed_rule_groups.push(group_use(statement, group.override_action()));
        }
    }
    WebAclFacts {
        arn: acl.arn().to_owned(),
        name: acl.name().to_owned(),
        default_action: match acl.default_action() {
            Some(d) if d.block().is_some() => "block",
            _ => "allow",
        }
        .to_owned(),
        managed_rule_groups,
        rate_limits,
        // Read with its own call.
        logging: Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_wafv2::types::{
        AllowAction, BlockAction, CountAction, DefaultAction, ExcludedRule, ManagedRuleGroupStatement, NoneAction,
        OverrideAction, RateBasedStatement, RateBasedStatementAggregateKeyType, Rule, RuleAction, RuleActionOverride,
        Statement, VisibilityConfig,
    };

    fn visibility() -> VisibilityConfig {
        VisibilityConfig::builder()
            .sampled_requests_enabled(true)
            .cloud_watch_metrics_enabled(true)
            .metric_name("m")
            .build()
            .unwrap()
    }

    fn managed(
        name: &str,
        priority: i32,
        override_action: OverrideAction,
        statement: ManagedRuleGroupStatement,
    ) -> Rule {
        Rule::builder()
            .name(name)
            .priority(priority)
            .statement(Statement::builder().managed_rule_group_statement(statement).build())
            .override_action(override_action)
            .visibility_config(visibility())
            .build()
            .unwrap()
    }

    #[test]
    fn groups_counting_rules_and_rate_limits_are_read_as_they_act() {
        let none = OverrideAction::builder().none(NoneAction::builder().build()).build();
        let count = OverrideAction::builder().count(CountAction::builder().build()).build();
        let common = ManagedRuleGroupStatement::builder()
            .vendor_name("AWS")
            .name("AWSManagedRulesCommonRuleSet")
            .excluded_rules(ExcludedRule::builder().name("SizeRestrictions_BODY").build().unwrap())
            .rule_action_overrides(
                RuleActionOverride::builder()
                    .name("NoUserAgent_HEADER")
                    .action_to_use(RuleAction::builder().count(CountAction::builder().build()).build())
                    .build()
                    .unwrap(),
            )
            .rule_action_overrides(
                RuleActionOverride::builder()
                    .name("EC2MetaDataSSRF_BODY")
                    .action_to_use(RuleAction::builder().block(BlockAction::builder().build()).build())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let sqli = ManagedRuleGroupStatement::builder()
            .vendor_name("AWS")
            .name("AWSManagedRulesSQLiRuleSet")
            .build()
            .unwrap();
        let rate = Rule::builder()
            .name("login-rate")
            .priority(3)
            .statement(
                Statement::builder()
                    .rate_based_statement(
                        RateBasedStatement::builder()
                            .limit(500)
                            .aggregate_key_type(RateBasedStatementAggregateKeyType::Ip)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .action(RuleAction::builder().block(BlockAction::builder().build()).build())
            .visibility_config(visibility())
            .build()
            .unwrap();
        let acl = WebAcl::builder()
            .name("edge")
            .id("1")
            .arn("arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/edge/1")
            .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
            .rules(managed("common", 1, none, common))
            .rules(managed("sqli", 2, count, sqli))
            .rules(rate)
            .visibility_config(visibility())
            .build()
            .unwrap();
        let facts = web_acl_facts(&acl);
        assert_eq!(facts.default_action, "allow");
        assert_eq!(
            facts.managed_rule_groups,
            vec![
                ManagedRuleGroupUse {
                    vendor: "AWS".into(),
                    name: "AWSManagedRulesCommonRuleSet".into(),
                    count_only: false,
                    rules_not_blocking: vec!["NoUserAgent_HEADER".into(), "SizeRestrictions_BODY".into()],
                },
                ManagedRuleGroupUse {
                    vendor: "AWS".into(),
                    name: "AWSManagedRulesSQLiRuleSet".into(),
                    count_only: true,
                    rules_not_blocking: vec![],
                },
            ]
        );
        assert_eq!(
            facts.rate_limits,
            vec![RateLimitRule {
                name: "login-rate".into(),
                limit: 500,
                action: "block".into()
            }]
        );
    }
}
