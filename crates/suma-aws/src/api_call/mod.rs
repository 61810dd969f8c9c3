//! A generic call of one AWS API operation by name (`ecs DescribeServices`, `rds DescribeDBInstances`),
//! for the runbook `aws.call` step, SSM Automation's `aws:executeAwsApi`: what a runbook needs to read
//! that no built-in action reads. No SDK has a dynamic entry point, so the call is made on the wire: the
//! services suma operates around are listed here with their protocol (AWS JSON 1.0/1.1, query, EC2
//! query), their input serialised and their answer read back as JSON ([`query`], [`xml`]), the request
//! signed with SigV4 in `sdk/api_call.rs`. REST protocols (Route 53, S3, Lambda) need each operation's
//! URI template, so they are not offered: the error says so and names the built-in actions instead.
//!
//! [`access`] judges an operation before any call: read-only by its verb (`Describe`, `List`, `Get`,
//! ...), mutating otherwise, and a few operations whose answer is secret material (a secret's value,
//! temporary credentials, a data key) refused outright, because a step's output is journaled.

pub mod query;
pub mod xml;

use async_trait::async_trait;
use serde_json::Value;

use crate::AwsError;

/// How a service's operations travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /` with `X-Amz-Target: PREFIX.Operation` and a JSON body (`version` 1.0 or 1.1).
    Json {
        version: &'static str,
        target_prefix: &'static str,
    },
    /// `POST /` with a form body `Action=Operation&Version=...`, answered in XML; lists as `Name.member.N`.
    Query { api_version: &'static str },
    /// EC2's variant of query: lists as `Name.N`, with the wire names (`Filter`, not `Filters`).
    Ec2 { api_version: &'static str },
}

/// One service an `aws.call` may name.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// As the AWS CLI names it: `ecs`, `rds`, `elbv2`.
    pub name: &'static str,
    /// For messages: `ECS`, `RDS`.
    pub display: &'static str,
    /// SigV4's service name.
    pub signing_name: &'static str,
    /// `https://{endpoint_prefix}.{region}.amazonaws.com`.
    pub endpoint_prefix: &'static str,
    pub protocol: Protocol,
}

const fn json(
    name: &'static str,
    display: &'static str,
    signing_name: &'static str,
    endpoint_prefix: &'static str,
    version: &'static str,
    target_prefix: &'static str,
) -> ServiceSpec {
    ServiceSpec {
        name,
        display,
        signing_name,
        endpoint_prefix,
        protocol: Protocol::Json { version, target_prefix },
    }
}

const fn query(
    name: &'static str,
    display: &'static str,
    signing_name: &'static str,
    api_version: &'static str,
) -> ServiceSpec {
    ServiceSpec {
        name,
        display,
        signing_name,
        endpoint_prefix: signing_name,
        protocol: Protocol::Query { api_version },
    }
}

/// The services `aws.call` reaches: those suma operates, audits or that an incident reads from.
pub const SERVICES: &[ServiceSpec] = &[
    json("acm", "ACM", "acm", "acm", "1.1", "CertificateManager"),
    json(
        "application-autoscaling",
        "Application Auto Scaling",
        "application-autoscaling",
        "application-autoscaling",
        "1.1",
        "AnyScaleFrontendService",
    ),
    json(
        "cloudtrail",
        "CloudTrail",
        "cloudtrail",
        "cloudtrail",
        "1.1",
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
    ),
    json(
        "dynamodb",
        "DynamoDB",
        "dynamodb",
        "dynamodb",
        "1.0",
        "DynamoDB_20120810",
    ),
    json(
        "ecr",
        "ECR",
        "ecr",
        "api.ecr",
        "1.1",
        "AmazonEC2ContainerRegistry_V20150921",
    ),
    json("ecs", "ECS", "ecs", "ecs", "1.1", "AmazonEC2ContainerServiceV20141113"),
    json("events", "EventBridge", "events", "events", "1.1", "AWSEvents"),
    json("kms", "KMS", "kms", "kms", "1.1", "TrentService"),
    json("logs", "CloudWatch Logs", "logs", "logs", "1.1", "Logs_20140328"),
    json(
        "secretsmanager",
        "Secrets Manager",
        "secretsmanager",
        "secretsmanager",
        "1.1",
        "secretsmanager",
    ),
    json("ssm", "SSM", "ssm", "ssm", "1.1", "AmazonSSM"),
    json("wafv2", "WAFv2", "wafv2", "wafv2", "1.1", "AWSWAF_20190729"),
    query("autoscaling", "Auto Scaling", "autoscaling", "2011-01-01"),
    query("cloudwatch", "CloudWatch", "monitoring", "2010-08-01"),
    query("elasticache", "ElastiCache", "elasticache", "2015-02-02"),
    query("elbv2", "ELBv2", "elasticloadbalancing", "2015-12-01"),
    query("rds", "RDS", "rds", "2014-10-31"),
    query("sts", "STS", "sts", "2011-06-15"),
    ServiceSpec {
        name: "ec2",
        display: "EC2",
        signing_name: "ec2",
        endpoint_prefix: "ec2",
        protocol: Protocol::Ec2 {
            api_version: "2016-11-15",
        },
    },
];

/// Services on REST protocols, named so the error can say why they are not offered.
const REST_SERVICES: &[&str] = &["route53", "s3", "lambda", "apigateway", "cloudfront"];

impl ServiceSpec {
    /// The IAM action calling `operation` needs (`elasticloadbalancing:DescribeTargetHealth`): the
    /// signing name is the action prefix, except for CloudWatch, which signs as `monitoring`.
    pub fn iam_action(&self, operation: &str) -> String {
        let prefix = if self.name == "cloudwatch" {
            "cloudwatch"
        } else {
            self.signing_name
        };
        format!("{prefix}:{operation}")
    }
}

/// The service named `name`, or why there is none.
pub fn service(name: &str) -> Result<&'static ServiceSpec, String> {
    if let Some(spec) = SERVICES.iter().find(|s| s.name == name) {
        return Ok(spec);
    }
    let known: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
    if REST_SERVICES.contains(&name) {
        Err(format!(
            "`{name}` speaks a REST protocol, which `aws.call` does not (each operation has its own URI); use a built-in action (`dns.*` for Route 53) or one of: {}",
            known.join(", ")
        ))
    } else {
        Err(format!(
            "`{name}` is not a service `aws.call` knows; it knows {}",
            known.join(", ")
        ))
    }
}

/// What calling an operation would do, judged from its name before any call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    /// Changes something: only in a runbook marked `mutating_aws_calls: true`.
    Mutating,
    /// Answers with secret material (a secret's value, credentials, a data key): never, since the answer
    /// would be journaled.
    SecretBearing,
}

/// The verbs of operations that only read.
const READ_VERBS: &[&str] = &[
    "Describe", "List", "Get", "BatchGet", "Lookup", "Search", "Query", "Scan",
];

/// Operations whose answer is secret material, by service.
const SECRET_BEARING: &[(&str, &[&str])] = &[
    (
        "secretsmanager",
        &["GetSecretValue", "BatchGetSecretValue", "GetRandomPassword"],
    ),
    (
        "ssm",
        &[
            "GetParameter",
            "GetParameters",
            "GetParametersByPath",
            "GetParameterHistory",
        ],
    ),
    (
        "sts",
        &[
            "AssumeRole",
            "AssumeRoleWithSAML",
            "AssumeRoleWithWebIdentity",
            "AssumeRoot",
            "GetFederationToken",
            "GetSessionToken",
        ],
    ),
    (
        "kms",
        &[
            "Decrypt",
            "GenerateDataKey",
            "GenerateDataKeyPair",
            "GenerateRandom",
            "DeriveSharedSecret",
            "GetParametersForImport",
        ],
    ),
    ("ecr", &["GetAuthorizationToken"]),
];

/// Whether `operation` of `service` reads, changes or answers with secrets.
pub fn access(service: &str, operation: &str) -> Access {
    let secret = SECRET_BEARING
        .iter()
        .any(|(s, ops)| *s == service && ops.contains(&operation));
    if secret {
        return Access::SecretBearing;
    }
    let reads = READ_VERBS.iter().any(|verb| {
        operation
            .strip_prefix(verb)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()) || rest.is_empty())
    });
    if reads {
        Access::ReadOnly
    } else {
        Access::Mutating
    }
}

/// An operation name as AWS spells them (`DescribeServices`), or why `text` is not one.
pub fn check_operation(text: &str) -> Result<(), String> {
    let ok = text.starts_with(|c: char| c.is_ascii_uppercase()) && text.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not an operation name: AWS spells them in PascalCase, as the API reference does (`DescribeServices`, not `describe-services`)"
        ))
    }
}

/// One AWS API operation called by name in one region, its answer as JSON.
#[async_trait]
pub trait ApiCaller: Send + Sync {
    async fn call(&self, service: &'static ServiceSpec, operation: &str, input: &Value) -> Result<Value, AwsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_judged_by_their_verb_and_secret_answers_by_name() {
        let table = [
            ("ecs", "DescribeServices", Access::ReadOnly),
            ("ecs", "ListTasks", Access::ReadOnly),
            ("rds", "DescribeDBInstances", Access::ReadOnly),
            ("dynamodb", "Query", Access::ReadOnly),
            ("dynamodb", "BatchGetItem", Access::ReadOnly),
            ("secretsmanager", "DescribeSecret", Access::ReadOnly),
            ("ecs", "UpdateService", Access::Mutating),
            ("rds", "RebootDBInstance", Access::Mutating),
            ("secretsmanager", "TagResource", Access::Mutating),
            // A verb must end at a word boundary: `Getaway` is not a `Get`.
            ("ecs", "Getaway", Access::Mutating),
            ("ecs", "Listen", Access::Mutating),
            ("secretsmanager", "GetSecretValue", Access::SecretBearing),
            ("secretsmanager", "BatchGetSecretValue", Access::SecretBearing),
            ("ssm", "GetParameter", Access::SecretBearing),
            ("sts", "GetSessionToken", Access::SecretBearing),
            ("sts", "AssumeRole", Access::SecretBearing),
            ("kms", "Decrypt", Access::SecretBearing),
            ("kms", "GenerateDataKey", Access::SecretBearing),
            ("ecr", "GetAuthorizationToken", Access::SecretBearing),
            ("sts", "GetCallerIdentity", Access::ReadOnly),
            ("kms", "DescribeKey", Access::ReadOnly),
        ];
        for (service, operation, expected) in table {
            assert_eq!(access(service, operation), expected, "{service} {operation}");
        }
    }

    #[test]
    fn services_are_found_by_their_cli_name_and_rest_ones_are_explained() {
        assert_eq!(service("elbv2").unwrap().signing_name, "elasticloadbalancing");
        assert_eq!(service("cloudwatch").unwrap().endpoint_prefix, "monitoring");
        for (name, operation, action) in [
            (
                "elbv2",
                "DescribeTargetHealth",
                "elasticloadbalancing:DescribeTargetHealth",
            ),
            ("cloudwatch", "GetMetricData", "cloudwatch:GetMetricData"),
            ("ecr", "DescribeImages", "ecr:DescribeImages"),
            (
                "application-autoscaling",
                "DescribeScalableTargets",
                "application-autoscaling:DescribeScalableTargets",
            ),
        ] {
            assert_eq!(service(name).unwrap().iam_action(operation), action);
        }
        assert!(matches!(
            service("ecs").unwrap().protocol,
            Protocol::Json { version: "1.1", .. }
        ));
        let rest = service("route53").unwrap_err();
        assert!(rest.contains("REST protocol") && rest.contains("dns.*"), "{rest}");
        let unknown = service("ecss").unwrap_err();
        assert!(
            unknown.contains("not a service") && unknown.contains("ecs, events"),
            "{unknown}"
        );
    }

    #[test]
    fn operation_names_are_pascal_case() {
        assert!(check_operation("DescribeServices").is_ok());
        let e = check_operation("describe-services").unwrap_err();
        assert!(e.contains("PascalCase"), "{e}");
        assert!(check_operation("Describe Services").is_err());
        assert!(check_operation("").is_err());
    }
}
