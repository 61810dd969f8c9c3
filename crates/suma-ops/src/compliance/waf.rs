//! The load balancer's edge protection, judged: an AWS WAF web ACL associated with it that runs every
//! required AWS managed rule group in blocking mode (a group overridden to Count, or with rules excluded,
//! protects less than its name says), a rate-based rule that blocks, and logging that keeps no
//! credentials (the service's bearer tokens and session cookies travel in headers WAF logs). Pure.

use super::evaluate::{error_finding, finding};
use super::Finding;
use crate::aws::inventory::{LoadBalancerFacts, WebAclFacts};

/// The checks judged here.
pub const CHECKS: &[&str] = &["alb-waf", "alb-waf-rate-limit", "alb-waf-logging"];

/// Headers that carry credentials to the service: a log that keeps them keeps working tokens.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie"];

/// The vendor of AWS Managed Rules.
const AWS_VENDOR: &str = "AWS";

/// Judges the web ACL read for `lb` (`Err` when it could not be read) against the required groups.
pub fn load_balancer_waf(
    lb: &LoadBalancerFacts,
    acl: &Result<Option<WebAclFacts>, String>,
    required: &[String],
) -> Vec<Finding> {
    let r = lb.arn.as_str();
    let region = Some(lb.region.as_str());
    let acl = match acl {
        Ok(acl) => acl,
        Err(e) => return CHECKS.iter().map(|id| error_finding(id, r, region, e)).collect(),
    };
    let Some(acl) = acl else {
        return vec![
            finding(
                "alb-waf",
                r,
                region,
                false,
                "no web ACL associated",
                expected_groups(required),
            ),
            finding(
                "alb-waf-rate-limit",
                r,
                region,
                false,
                "no web ACL associated",
                "a rate-based rule that blocks",
            ),
            finding(
                "alb-waf-logging",
                r,
                region,
                false,
                "no web ACL associated",
                LOGGING_EXPECTED,
            ),
        ];
    };
    vec![
        managed_groups(r, region, acl, required),
        rate_limit(r, region, acl),
        logging(r, region, acl),
    ]
}

const LOGGING_EXPECTED: &str = "requests logged, authorization and cookie headers redacted";

fn logging(r: &str, region: Option<&str>, acl: &WebAclFacts) -> Finding {
    match &acl.logging {
        Err(e) => error_finding("alb-waf-logging", r, region, e),
        Ok(None) => finding(
            "alb-waf-logging",
            r,
            region,
            false,
            format!("web ACL {} logs nowhere", acl.name),
            LOGGING_EXPECTED,
        ),
        Ok(Some(logging)) => {
            let kept: Vec<&str> = CREDENTIAL_HEADERS
                .iter()
                .copied()
                .filter(|h| !logging.redacted_headers.iter().any(|r| r == h))
                .collect();
            let to = logging.destinations.join(", ");
            let observed = if kept.is_empty() {
                format!("logged to {to}, credentials redacted")
            } else {
                format!("logged to {to}, keeping the {} header(s)", kept.join(" and "))
            };
            finding(
                "alb-waf-logging",
                r,
                region,
                !logging.destinations.is_empty() && kept.is_empty(),
                observed,
                LOGGING_EXPECTED,
            )
        }
    }
}

fn expected_groups(required: &[String]) -> String {
    if required.is_empty() {
        "a web ACL associated".to_owned()
    } else {
        format!("a web ACL running {}, blocking", required.join(", "))
    }
}

fn managed_groups(r: &str, region: Option<&str>, acl: &WebAclFacts, required: &[String]) -> Finding {
    let mut problems = Vec::new();
    for name in required {
        let uses: Vec<_> = acl
            .managed_rule_groups
            .iter()
            .filter(|g| g.vendor == AWS_VENDOR && &g.name == name)
            .collect();
        // Any one full, blocking use of the group is enough: another rule may run it again in Count to
        // try out a new version.
        if uses.iter().any(|g| !g.count_only && g.rules_not_blocking.is_empty()) {
            continue;
        }
        match uses.first() {
            None => problems.push(format!("{name} missing")),
            Some(g) if g.count_only => problems.push(format!("{name} in Count mode")),
            Some(g) => problems.push(format!("{name} does not block {}", g.rules_not_blocking.join(", "))),
        }
    }
    let observed = if problems.is_empty() {
        let running: Vec<&str> = acl.managed_rule_groups.iter().map(|g| g.name.as_str()).collect();
        format!(
            "web ACL {} runs {}",
            acl.name,
            if running.is_empty() {
                "no managed group".to_owned()
            } else {
                running.join(", ")
            }
        )
    } else {
        format!("web ACL {}: {}", acl.name, problems.join("; "))
    };
    finding(
        "alb-waf",
        r,
        region,
        problems.is_empty(),
        observed,
        expected_groups(required),
    )
}

fn rate_limit(r: &str, region: Option<&str>, acl: &WebAclFacts) -> Finding {
    let stopping: Vec<_> = acl
        .rate_limits
        .iter()
        .filter(|l| matches!(l.action.as_str(), "block" | "captcha" | "challenge"))
        .collect();
    let verb = |action: &str| match action {
        "captcha" => "asks for a CAPTCHA".to_owned(),
        "none" => "has no action".to_owned(),
        other => format!("{other}s"),
    };
    let observed = match (stopping.first(), acl.rate_limits.first()) {
        (Some(l), _) => format!("{} {} above {} requests per window", l.name, verb(&l.action), l.limit),
        (None, Some(l)) => format!("{} only {} (limit {})", l.name, verb(&l.action), l.limit),
        (None, None) => format!("web ACL {} has no rate-based rule", acl.name),
    };
    finding(
        "alb-waf-rate-limit",
        r,
        region,
        !stopping.is_empty(),
        observed,
        "a rate-based rule that blocks",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::inventory::{ManagedRuleGroupUse, RateLimitRule};
    use crate::compliance::Status;

    fn lb() -> LoadBalancerFacts {
        LoadBalancerFacts {
            arn: "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/edge/1".into(),
            region: "eu-west-1".into(),
            ..Default::default()
        }
    }

    fn group(name: &str, count_only: bool, not_blocking: &[&str]) -> ManagedRuleGroupUse {
        ManagedRuleGroupUse {
            vendor: AWS_VENDOR.into(),
            name: name.into(),
            count_only,
            rules_not_blocking: not_blocking.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn acl(groups: Vec<ManagedRuleGroupUse>, limits: &[&str]) -> Option<WebAclFacts> {
        Some(WebAclFacts {
            arn: "arn:waf".into(),
            name: "edge".into(),
            default_action: "allow".into(),
            managed_rule_groups: groups,
            rate_limits: limits
                .iter()
                .map(|a| RateLimitRule {
                    name: "login".into(),
                    limit: 300,
                    action: a.to_string(),
                })
                .collect(),
            logging: Ok(None),
        })
    }

    type Reading = Result<Option<WebAclFacts>, String>;

    fn verdicts(acl: Reading) -> (Status, String, Status) {
        let required = vec![
            "AWSManagedRulesCommonRuleSet".to_owned(),
            "AWSManagedRulesSQLiRuleSet".to_owned(),
        ];
        let f = load_balancer_waf(&lb(), &acl, &required);
        assert_eq!(f.len(), 3);
        (f[0].status, f[0].observed.clone(), f[1].status)
    }

    #[test]
    fn waf_logging_verdicts() {
        use crate::aws::inventory::WafLogging;
        use Status::{Error, Fail, Pass};
        let logged = |redacted: &[&str]| {
            Ok(Some(WafLogging {
                destinations: vec!["arn:aws:logs:eu-west-1:1:log-group:aws-waf-logs-edge".into()],
                redacted_headers: redacted.iter().map(|h| h.to_string()).collect(),
            }))
        };
        type LoggingReading = Result<Option<WafLogging>, String>;
        let cases: Vec<(&str, LoggingReading, Status, &str)> = vec![
            ("nowhere", Ok(None), Fail, "web ACL edge logs nowhere"),
            (
                "both redacted",
                logged(&["authorization", "cookie"]),
                Pass,
                "credentials redacted",
            ),
            (
                "tokens kept",
                logged(&["cookie"]),
                Fail,
                "keeping the authorization header(s)",
            ),
            (
                "nothing redacted",
                logged(&[]),
                Fail,
                "keeping the authorization and cookie header(s)",
            ),
            ("unreadable", Err("AccessDenied".into()), Error, "unreadable"),
        ];
        for (name, logging, want, observed) in cases {
            let mut read = acl(vec![], &[]).unwrap();
            read.logging = logging;
            let f = load_balancer_waf(&lb(), &Ok(Some(read)), &[]);
            let found = f.iter().find(|f| f.check_id == "alb-waf-logging").unwrap();
            assert_eq!(found.status, want, "{name}: {}", found.observed);
            assert!(
                found.observed.contains(observed),
                "{name}: `{}` lacks `{observed}`",
                found.observed
            );
        }
    }

    #[test]
    fn waf_verdicts() {
        use Status::{Error, Fail, Pass};
        let common = || group("AWSManagedRulesCommonRuleSet", false, &[]);
        let cases: Vec<(&str, Reading, Status, &str, Status)> = vec![
            ("none associated", Ok(None), Fail, "no web ACL associated", Fail),
            (
                "both groups blocking, rate rule blocks",
                Ok(acl(
                    vec![common(), group("AWSManagedRulesSQLiRuleSet", false, &[])],
                    &["block"],
                )),
                Pass,
                "runs AWSManagedRulesCommonRuleSet, AWSManagedRulesSQLiRuleSet",
                Pass,
            ),
            (
                "a group missing",
                Ok(acl(vec![common()], &["challenge"])),
                Fail,
                "AWSManagedRulesSQLiRuleSet missing",
                Pass,
            ),
            (
                "a group counting only, rate rule counting",
                Ok(acl(
                    vec![common(), group("AWSManagedRulesSQLiRuleSet", true, &[])],
                    &["count"],
                )),
                Fail,
                "AWSManagedRulesSQLiRuleSet in Count mode",
                Fail,
            ),
            (
                "a rule excluded",
                Ok(acl(
                    vec![common(), group("AWSManagedRulesSQLiRuleSet", false, &["SQLi_BODY"])],
                    &[],
                )),
                Fail,
                "does not block SQLi_BODY",
                Fail,
            ),
            (
                "a trial copy in Count beside the blocking one",
                Ok(acl(
                    vec![
                        common(),
                        group("AWSManagedRulesSQLiRuleSet", true, &[]),
                        group("AWSManagedRulesSQLiRuleSet", false, &[]),
                    ],
                    &["captcha"],
                )),
                Pass,
                "runs",
                Pass,
            ),
            (
                "a Marketplace group of the same name is not AWS's",
                Ok(acl(
                    vec![
                        common(),
                        ManagedRuleGroupUse {
                            vendor: "Seller".into(),
                            ..group("AWSManagedRulesSQLiRuleSet", false, &[])
                        },
                    ],
                    &["block"],
                )),
                Fail,
                "AWSManagedRulesSQLiRuleSet missing",
                Pass,
            ),
            ("unreadable", Err("AccessDenied".into()), Error, "unreadable", Error),
        ];
        for (name, acl, want, observed, want_rate) in cases {
            let (status, seen, rate) = verdicts(acl);
            assert_eq!((status, rate), (want, want_rate), "{name}: {seen}");
            assert!(seen.contains(observed), "{name}: `{seen}` lacks `{observed}`");
        }
    }
}
