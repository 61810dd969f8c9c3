//! Every check suma knows, with its metadata: severity, the controls it maps to, the risk it guards
//! against, and how to fix a failure. `suma compliance list` prints this table.

use serde::Serialize;

use super::Severity;

/// The controls a check maps to, by framework (empty where none applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Controls {
    /// PCI DSS v4.0 requirements.
    pub pci_dss: &'static [&'static str],
    /// SOC 2 trust services criteria.
    pub soc2: &'static [&'static str],
    /// GDPR articles.
    pub gdpr: &'static [&'static str],
    /// CIS AWS Foundations Benchmark (v3.0) recommendations, where one exists.
    pub cis: &'static [&'static str],
}

/// One check's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    /// `rds`, `ecs`, `ec2`, `ecr`, `acm`, `cloudtrail`, `alb`, `route53`, `secrets`, `elasticache`, `kms`,
    /// `datadog` or `service`.
    pub service: &'static str,
    pub severity: Severity,
    pub controls: Controls,
    /// Topic tags (`encryption`, `logging`, `network`, `resilience`, `secrets`, `monitoring`, ...).
    pub topics: &'static [&'static str],
    pub risk: &'static str,
    pub remediation: &'static str,
}

impl Check {
    /// Every tag `--tags` matches: the service, each framework it maps to, and its topics.
    pub fn tags(&self) -> impl Iterator<Item = &'static str> + '_ {
        let frameworks = [
            (!self.controls.pci_dss.is_empty()).then_some("pci-dss"),
            (!self.controls.soc2.is_empty()).then_some("soc2"),
            (!self.controls.gdpr.is_empty()).then_some("gdpr"),
            (!self.controls.cis.is_empty()).then_some("cis"),
        ];
        // A topic may repeat the service (`secrets`); SARIF wants each tag once.
        let mut seen: Vec<&'static str> = Vec::new();
        std::iter::once(self.service)
            .chain(frameworks.into_iter().flatten())
            .chain(self.topics.iter().copied())
            .filter(move |tag| {
                let new = !seen.contains(tag);
                seen.push(tag);
                new
            })
    }

    /// The registered check `id`.
    pub fn get(id: &str) -> Option<&'static Check> {
        CHECKS.iter().find(|c| c.id == id)
    }
}

const fn controls(
    pci_dss: &'static [&'static str],
    soc2: &'static [&'static str],
    gdpr: &'static [&'static str],
    cis: &'static [&'static str],
) -> Controls {
    Controls {
        pci_dss,
        soc2,
        gdpr,
        cis,
    }
}

use Severity::{Critical, High, Low, Medium};

/// The registry, in report order.
pub static CHECKS: &[Check] = &[
    // RDS
    Check {
        id: "rds-storage-encrypted-cmk",
        title: "RDS storage is encrypted with a customer-managed KMS key",
        service: "rds",
        severity: High,
        controls: controls(&["3.5.1"], &["CC6.1", "CC6.7"], &["Art. 32"], &["2.3.1"]),
        topics: &["encryption"],
        risk: "Cardholder and personal data at rest readable from snapshots or disks; an AWS-managed key cannot be rotated, restricted or revoked by us",
        remediation: "Restore from an encrypted snapshot copied with a customer-managed key (`aws rds copy-db-snapshot --kms-key-id ...`) and switch over",
    },
    Check {
        id: "rds-multi-az",
        title: "RDS instance is multi-AZ",
        service: "rds",
        severity: High,
        controls: controls(&["12.10.1"], &["A1.2"], &["Art. 32(1)(b)"], &[]),
        topics: &["resilience"],
        risk: "An availability-zone failure takes the database, and every login, down",
        remediation: "`aws rds modify-db-instance --multi-az --apply-immediately`",
    },
    Check {
        id: "rds-backup-retention",
        title: "RDS automated backups kept at least 30 days in production (7 elsewhere)",
        service: "rds",
        severity: High,
        controls: controls(&["12.10.1"], &["A1.2", "CC7.5"], &["Art. 32(1)(c)"], &[]),
        topics: &["resilience", "backup"],
        risk: "Data lost or corrupted longer ago than the retention cannot be restored",
        remediation: "`aws rds modify-db-instance --backup-retention-period 30`",
    },
    Check {
        id: "rds-deletion-protection",
        title: "RDS deletion protection is on",
        service: "rds",
        severity: Medium,
        controls: controls(&[], &["A1.2", "CC8.1"], &[], &[]),
        topics: &["resilience"],
        risk: "One mistaken call or pipeline deletes the database",
        remediation: "`aws rds modify-db-instance --deletion-protection`",
    },
    Check {
        id: "rds-not-public",
        title: "RDS instance is not publicly accessible",
        service: "rds",
        severity: Critical,
        controls: controls(&["1.4.1", "1.3.1"], &["CC6.6"], &["Art. 32"], &["2.3.3"]),
        topics: &["network"],
        risk: "The database endpoint is reachable from the internet",
        remediation: "`aws rds modify-db-instance --no-publicly-accessible`",
    },
    Check {
        id: "rds-iam-auth",
        title: "RDS IAM database authentication is enabled",
        service: "rds",
        severity: Medium,
        controls: controls(&["8.3.1"], &["CC6.1"], &[], &[]),
        topics: &["identity"],
        risk: "Only long-lived passwords authenticate to the database",
        remediation: "`aws rds modify-db-instance --enable-iam-database-authentication`",
    },
    Check {
        id: "rds-force-ssl",
        title: "RDS parameter group enforces SSL (`rds.force_ssl` = 1)",
        service: "rds",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption", "network"],
        risk: "Clients may connect in clear text, exposing credentials and data in transit",
        remediation: "Set `rds.force_ssl` to 1 in a custom DB parameter group attached to the instance",
    },
    Check {
        id: "rds-auto-minor-upgrade",
        title: "RDS automatic minor version upgrade is on",
        service: "rds",
        severity: Low,
        controls: controls(&["6.3.3"], &["CC7.1"], &[], &["2.3.2"]),
        topics: &["patching"],
        risk: "Known engine vulnerabilities stay unpatched",
        remediation: "`aws rds modify-db-instance --auto-minor-version-upgrade`",
    },
    Check {
        id: "rds-log-exports",
        title: "RDS exports its logs to CloudWatch",
        service: "rds",
        severity: Medium,
        controls: controls(&["10.2.1"], &["CC7.2"], &["Art. 33"], &[]),
        topics: &["logging"],
        risk: "Database access and errors leave no durable audit trail for investigation",
        remediation: "`aws rds modify-db-instance --cloudwatch-logs-export-configuration EnableLogTypes=postgresql,upgrade`",
    },
    Check {
        id: "rds-cross-region-replica",
        title: "Production RDS has a cross-region read replica",
        service: "rds",
        severity: High,
        controls: controls(&["12.10.1"], &["A1.2", "A1.3"], &["Art. 32(1)(c)"], &[]),
        topics: &["resilience", "dr"],
        risk: "A regional outage leaves no database to fail over to",
        remediation: "`aws rds create-db-instance-read-replica --source-region ...` in the DR region",
    },
    Check {
        id: "rds-performance-insights",
        title: "RDS Performance Insights is enabled",
        service: "rds",
        severity: Low,
        controls: controls(&[], &["A1.1", "CC7.2"], &[], &[]),
        topics: &["monitoring"],
        risk: "Database load problems are hard to diagnose during an incident",
        remediation: "`aws rds modify-db-instance --enable-performance-insights`",
    },
    Check {
        id: "rds-snapshot-encrypted",
        title: "RDS snapshots are encrypted",
        service: "rds",
        severity: High,
        controls: controls(&["3.5.1"], &["CC6.1"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption"],
        risk: "A copy of the whole database readable by whoever can reach the snapshot",
        remediation: "Copy the snapshot with `--kms-key-id` (an encrypted copy) and delete the plain one",
    },
    Check {
        id: "rds-snapshot-not-public",
        title: "RDS snapshots are not restorable by every AWS account",
        service: "rds",
        severity: Critical,
        controls: controls(&["1.4.4", "3.5.1"], &["CC6.1", "CC6.6"], &["Art. 32"], &[]),
        topics: &["network"],
        risk: "Anyone with an AWS account can restore the database and read every row",
        remediation: "`aws rds modify-db-snapshot-attribute --attribute-name restore --values-to-remove all`",
    },
    Check {
        id: "rds-reachable-only-from-service",
        title: "The database port admits only the ECS services' security groups",
        service: "rds",
        severity: High,
        controls: controls(&["1.3.1", "1.4.4"], &["CC6.6"], &["Art. 32"], &[]),
        topics: &["network"],
        risk: "Anything in an admitted address range (or a bastion's group) can try the database's credentials",
        remediation: "Replace address ranges on the database's groups with the service's security group",
    },
    // ECS task definitions
    Check {
        id: "ecs-no-plaintext-secrets",
        title: "No secret-like values in task definition environment variables",
        service: "ecs",
        severity: Critical,
        controls: controls(&["8.6.2", "8.6.3"], &["CC6.1"], &["Art. 32"], &[]),
        topics: &["secrets"],
        risk: "Secrets in plain environment variables are readable by anyone who can describe the task definition",
        remediation: "Move the value to Secrets Manager and reference it from `secrets` (`valueFrom`)",
    },
    Check {
        id: "ecs-secrets-from-secrets-manager",
        title: "Task definition secrets come from Secrets Manager",
        service: "ecs",
        severity: High,
        controls: controls(&["8.6.3"], &["CC6.1"], &[], &[]),
        topics: &["secrets"],
        risk: "Secrets kept elsewhere escape rotation and the secrets audit",
        remediation: "Store the secret in Secrets Manager and point `valueFrom` at its ARN",
    },
    Check {
        id: "ecs-non-root-user",
        title: "Containers run as a non-root user",
        service: "ecs",
        severity: High,
        controls: controls(&["2.2.6"], &["CC6.8"], &[], &[]),
        topics: &["hardening"],
        risk: "A compromised process has root inside the container",
        remediation: "Set `user` to a numeric non-zero uid in the container definition",
    },
    Check {
        id: "ecs-readonly-root-fs",
        title: "Containers have a read-only root filesystem",
        service: "ecs",
        severity: Medium,
        controls: controls(&["2.2.6"], &["CC6.8"], &[], &[]),
        topics: &["hardening"],
        risk: "An attacker can modify binaries or drop tools in the container",
        remediation: "Set `readonlyRootFilesystem: true`; mount writable volumes where needed",
    },
    Check {
        id: "ecs-not-privileged",
        title: "Containers are not privileged",
        service: "ecs",
        severity: Critical,
        controls: controls(&["2.2.6"], &["CC6.8"], &[], &[]),
        topics: &["hardening"],
        risk: "A privileged container can take over its host",
        remediation: "Remove `privileged: true`",
    },
    Check {
        id: "ecs-no-privilege-escalation",
        title: "Containers add no Linux capabilities",
        service: "ecs",
        severity: High,
        controls: controls(&["2.2.6"], &["CC6.8"], &[], &[]),
        topics: &["hardening"],
        risk: "Added capabilities (SYS_ADMIN, NET_ADMIN, ...) let a process escalate its privileges",
        remediation: "Remove `linuxParameters.capabilities.add`",
    },
    Check {
        id: "ecs-log-configuration",
        title: "Containers have a log configuration",
        service: "ecs",
        severity: Medium,
        controls: controls(&["10.2.1"], &["CC7.2"], &["Art. 33"], &[]),
        topics: &["logging"],
        risk: "Application and audit logs are lost",
        remediation: "Set `logConfiguration` (e.g. `awslogs`)",
    },
    Check {
        id: "ecs-image-pinned",
        title: "Container images are pinned (a tag other than `latest`, or a digest)",
        service: "ecs",
        severity: Medium,
        controls: controls(&["6.5.1"], &["CC8.1"], &[], &[]),
        topics: &["supply-chain"],
        risk: "What runs changes without a deploy; rollback cannot restore the previous code",
        remediation: "Reference images by version tag or `@sha256:` digest",
    },
    Check {
        id: "ecs-cpu-memory-set",
        title: "Task CPU and memory are set",
        service: "ecs",
        severity: Low,
        controls: controls(&[], &["A1.1"], &[], &[]),
        topics: &["resilience"],
        risk: "A runaway container starves its neighbours",
        remediation: "Set task-level `cpu` and `memory` (or per container)",
    },
    Check {
        id: "ecs-container-health-check",
        title: "Containers define a health check",
        service: "ecs",
        severity: Medium,
        controls: controls(&[], &["A1.2"], &[], &[]),
        topics: &["resilience"],
        risk: "A hung container keeps receiving traffic",
        remediation: "Add `healthCheck` with a command that exercises the service",
    },
    // ECS services
    Check {
        id: "ecs-circuit-breaker-rollback",
        title: "Service deployment circuit breaker is on with rollback",
        service: "ecs",
        severity: High,
        controls: controls(&["6.5.1"], &["CC8.1", "A1.2"], &[], &[]),
        topics: &["resilience", "deploy"],
        risk: "A failing deployment keeps replacing healthy tasks",
        remediation: "`aws ecs update-service --deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true}'`",
    },
    Check {
        id: "ecs-min-healthy-100",
        title: "Service minimum healthy percent is 100",
        service: "ecs",
        severity: Medium,
        controls: controls(&[], &["A1.2"], &[], &[]),
        topics: &["resilience", "deploy"],
        risk: "Deployments drop capacity below what the service needs",
        remediation: "Set `minimumHealthyPercent` to 100",
    },
    Check {
        id: "ecs-min-two-tasks",
        title: "Serving services run at least 2 tasks",
        service: "ecs",
        severity: High,
        controls: controls(&[], &["A1.2"], &["Art. 32(1)(b)"], &[]),
        topics: &["resilience"],
        risk: "One task failure is an outage",
        remediation: "Set the desired count to 2 or more, spread over availability zones",
    },
    Check {
        id: "ecs-no-public-ip",
        title: "Service tasks get no public IP",
        service: "ecs",
        severity: High,
        controls: controls(&["1.4.1"], &["CC6.6"], &[], &[]),
        topics: &["network"],
        risk: "Tasks are reachable from the internet around the load balancer",
        remediation: "Set `assignPublicIp: DISABLED` and use private subnets with a NAT or VPC endpoints",
    },
    Check {
        id: "ecs-autoscaling",
        title: "ECS services scale with Application Auto Scaling",
        service: "ecs",
        severity: Medium,
        controls: controls(&[], &["A1.1"], &["Art. 32(1)(b)"], &[]),
        topics: &["resilience"],
        risk: "A login surge or a lost zone leaves the service at its fixed count until someone acts",
        remediation: "Register the service as a scalable target (max above min) with a target-tracking policy",
    },
    // EC2 security groups
    Check {
        id: "ec2-no-public-sensitive-ports",
        title: "No security group admits the internet to a database, cache or administration port",
        service: "ec2",
        severity: Critical,
        controls: controls(&["1.3.1", "1.4.1"], &["CC6.6"], &["Art. 32"], &["5.2", "5.3"]),
        topics: &["network"],
        risk: "The database, the session cache or a shell is one password (or one bug) away from anyone",
        remediation: "Remove the 0.0.0.0/0 and ::/0 rules on those ports; admit security groups or a VPN range",
    },
    // ECR
    Check {
        id: "ecr-scan-on-push",
        title: "ECR repositories scan images on push",
        service: "ecr",
        severity: Medium,
        controls: controls(&["6.3.1", "11.3.1"], &["CC7.1"], &[], &[]),
        topics: &["vulnerabilities"],
        risk: "An image with a known vulnerability is deployed without anyone being told",
        remediation: "`aws ecr put-image-scanning-configuration --image-scanning-configuration scanOnPush=true`, or a registry scanning rule",
    },
    Check {
        id: "ecr-immutable-tags",
        title: "ECR repositories keep tags immutable",
        service: "ecr",
        severity: Medium,
        controls: controls(&["6.5.1"], &["CC8.1"], &[], &[]),
        topics: &["supply-chain"],
        risk: "A pushed tag can be moved to another image, so what runs is not what was reviewed",
        remediation: "`aws ecr put-image-tag-mutability --image-tag-mutability IMMUTABLE`",
    },
    // ACM
    Check {
        id: "acm-certificate-expiry",
        title: "ACM certificates are valid for 30 days or more",
        service: "acm",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption"],
        risk: "An expired certificate takes the login endpoint down for every client",
        remediation: "Renew it (DNS validation renews ACM certificates on its own) or import the new one",
    },
    // CloudTrail
    Check {
        id: "cloudtrail-multi-region-logging",
        title: "A multi-region CloudTrail trail is logging",
        service: "cloudtrail",
        severity: High,
        controls: controls(&["10.2.1"], &["CC7.2"], &["Art. 33"], &["3.1"]),
        topics: &["logging"],
        risk: "API calls in some region (an attacker's favourite) leave no record",
        remediation: "Create a trail with `--is-multi-region-trail` and `aws cloudtrail start-logging`",
    },
    Check {
        id: "cloudtrail-log-validation",
        title: "CloudTrail log file validation is on",
        service: "cloudtrail",
        severity: Medium,
        controls: controls(&["10.3.2"], &["CC7.2"], &[], &["3.2"]),
        topics: &["logging"],
        risk: "Altered or deleted log files cannot be detected",
        remediation: "`aws cloudtrail update-trail --enable-log-file-validation`",
    },
    Check {
        id: "cloudtrail-encrypted",
        title: "CloudTrail logs are encrypted with a KMS key",
        service: "cloudtrail",
        severity: Medium,
        controls: controls(&["10.3.2"], &["CC6.1"], &["Art. 32(1)(a)"], &["3.5"]),
        topics: &["logging", "encryption"],
        risk: "Whoever can read the bucket reads the account's whole API history",
        remediation: "`aws cloudtrail update-trail --kms-key-id <customer-managed key>`",
    },
    // ALB
    Check {
        id: "alb-https-tls12",
        title: "ALB has an HTTPS listener with a TLS 1.2+ policy (TLS 1.3 preferred)",
        service: "alb",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption", "network"],
        risk: "Credentials and tokens cross the internet in clear text or over broken TLS versions",
        remediation: "Add an HTTPS listener with `ELBSecurityPolicy-TLS13-1-2-2021-06`",
    },
    Check {
        id: "alb-http-redirects",
        title: "ALB HTTP listeners redirect to HTTPS",
        service: "alb",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption", "network"],
        risk: "Clients that start on HTTP send credentials in clear text",
        remediation: "Make each HTTP listener's default action a redirect to HTTPS (301)",
    },
    Check {
        id: "alb-deletion-protection",
        title: "ALB deletion protection is on",
        service: "alb",
        severity: Medium,
        controls: controls(&[], &["A1.2", "CC8.1"], &[], &[]),
        topics: &["resilience"],
        risk: "One mistaken call deletes the service's entry point",
        remediation: "Set the attribute `deletion_protection.enabled=true`",
    },
    Check {
        id: "alb-access-logs",
        title: "ALB access logs are enabled",
        service: "alb",
        severity: Medium,
        controls: controls(&["10.2.1"], &["CC7.2"], &["Art. 33"], &[]),
        topics: &["logging"],
        risk: "Requests leave no trail for incident investigation",
        remediation: "Set `access_logs.s3.enabled=true` and `access_logs.s3.bucket`",
    },
    Check {
        id: "alb-drop-invalid-headers",
        title: "ALB drops invalid HTTP header fields",
        service: "alb",
        severity: Medium,
        controls: controls(&["6.4.1"], &["CC6.6"], &[], &[]),
        topics: &["network"],
        risk: "Malformed headers reach the service, the vector of request smuggling and header injection",
        remediation: "Set the attribute `routing.http.drop_invalid_header_fields.enabled=true`",
    },
    Check {
        id: "alb-waf",
        title: "ALB is protected by a WAF web ACL running the required managed rule groups",
        service: "alb",
        severity: High,
        controls: controls(&["6.4.2"], &["CC6.6", "CC7.1"], &["Art. 32(1)(b)"], &[]),
        topics: &["network"],
        risk: "Known web attacks (injection, bad inputs, known-bad sources) reach the login and token endpoints unfiltered",
        remediation: "Associate a web ACL with the load balancer (`aws wafv2 associate-web-acl`) whose rules include each \
                      group of `compliance.waf_rule_groups`, none of them overridden to Count",
    },
    Check {
        id: "alb-waf-logging",
        title: "ALB's web ACL logs requests, with credentials redacted",
        service: "alb",
        severity: Medium,
        controls: controls(&["10.2.1", "8.3.2"], &["CC7.2"], &["Art. 32(1)(d)"], &[]),
        topics: &["network", "logging"],
        risk: "Attacks the edge blocked leave no trace to investigate; or the logs keep bearer tokens and session cookies",
        remediation: "Put a logging configuration on the web ACL (`aws wafv2 put-logging-configuration`) with \
                      `RedactedFields` for the `authorization` and `cookie` headers",
    },
    Check {
        id: "alb-waf-rate-limit",
        title: "ALB's web ACL blocks clients above a request rate",
        service: "alb",
        severity: Medium,
        controls: controls(&["6.4.2"], &["CC6.6"], &[], &[]),
        topics: &["network"],
        risk: "Credential stuffing and token brute force are stopped only by the service's own limits, after they cost it",
        remediation: "Add a rate-based rule with the action Block (or CAPTCHA, or Challenge) to the web ACL",
    },
    // Route 53
    Check {
        id: "route53-failover-health-check",
        title: "Route 53 failover records have health checks",
        service: "route53",
        severity: High,
        controls: controls(&["12.10.1"], &["A1.2"], &[], &[]),
        topics: &["resilience", "dr"],
        risk: "Failover never happens: Route 53 cannot tell the primary is down",
        remediation: "Attach a health check (`HealthCheckId`) to each failover record",
    },
    Check {
        id: "route53-failover-ttl",
        title: "Route 53 failover records have a TTL of at most 60 s",
        service: "route53",
        severity: Medium,
        controls: controls(&[], &["A1.2"], &[], &[]),
        topics: &["resilience", "dr"],
        risk: "Resolvers keep sending clients to the failed region for the TTL",
        remediation: "Set the TTL to 60 s or less, or use an alias record",
    },
    // Secrets Manager
    Check {
        id: "secrets-rotation",
        title: "Secrets rotate, and were rotated within their policy",
        service: "secrets",
        severity: High,
        controls: controls(&["3.7.4", "8.6.3"], &["CC6.1"], &["Art. 32"], &[]),
        topics: &["secrets"],
        risk: "A leaked secret stays valid indefinitely",
        remediation: "Enable rotation and run `suma secrets rotate`",
    },
    Check {
        id: "secrets-cmk",
        title: "Secrets are encrypted with a customer-managed KMS key",
        service: "secrets",
        severity: Medium,
        controls: controls(&["3.6.1", "8.6.3"], &["CC6.1"], &["Art. 32"], &[]),
        topics: &["secrets", "encryption"],
        risk: "Access to the secret cannot be restricted or revoked through the key policy",
        remediation: "`aws secretsmanager update-secret --kms-key-id <customer-managed key>`",
    },
    Check {
        id: "secrets-unused",
        title: "Secrets are read (none unused for over 90 days)",
        service: "secrets",
        severity: Low,
        controls: controls(&["8.2.6"], &["CC6.2"], &["Art. 5(1)(e)"], &[]),
        topics: &["secrets"],
        risk: "A forgotten credential stays valid and rotates unnoticed, nobody knowing what it opens",
        remediation: "Find its owner; delete the secret (and revoke what it grants) if nothing uses it",
    },
    Check {
        id: "secrets-policy-not-public",
        title: "Secret resource policies do not allow every principal",
        service: "secrets",
        severity: Critical,
        controls: controls(&["7.2.1", "8.6.3"], &["CC6.1", "CC6.3"], &["Art. 32"], &[]),
        topics: &["secrets"],
        risk: "Any AWS principal, in any account, may read the secret",
        remediation: "Remove `Principal: *` from the resource policy, or narrow it with a condition",
    },
    // ElastiCache
    Check {
        id: "elasticache-encryption-at-rest",
        title: "ElastiCache replication groups are encrypted at rest",
        service: "elasticache",
        severity: High,
        controls: controls(&["3.5.1"], &["CC6.1"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption"],
        risk: "Sessions and token state in snapshots and on disk are readable without the key",
        remediation: "Create the group with `--at-rest-encryption-enabled` (it cannot be turned on later) and migrate",
    },
    Check {
        id: "elasticache-encryption-in-transit",
        title: "ElastiCache replication groups require TLS",
        service: "elasticache",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption", "network"],
        risk: "Session tokens and the AUTH token cross the network in clear text",
        remediation: "Enable in-transit encryption and set `--transit-encryption-mode required`",
    },
    Check {
        id: "elasticache-auth",
        title: "ElastiCache replication groups authenticate clients",
        service: "elasticache",
        severity: High,
        controls: controls(&["8.3.1"], &["CC6.1"], &["Art. 32"], &[]),
        topics: &["secrets", "network"],
        risk: "Anything that reaches the port reads and rewrites sessions and rate limits",
        remediation: "Set an AUTH token (`suma secrets rotate` keeps it rotating) or RBAC user groups",
    },
    Check {
        id: "elasticache-automatic-failover",
        title: "ElastiCache replication groups fail over automatically across zones",
        service: "elasticache",
        severity: Medium,
        controls: controls(&[], &["A1.2"], &["Art. 32(1)(b)"], &[]),
        topics: &["resilience"],
        risk: "Losing the primary node or its zone logs every user out until someone acts",
        remediation: "Add a replica in another zone and enable automatic failover and multi-AZ",
    },
    Check {
        id: "elasticache-snapshots",
        title: "ElastiCache replication groups keep snapshots",
        service: "elasticache",
        severity: Low,
        controls: controls(&[], &["A1.2"], &["Art. 32(1)(c)"], &[]),
        topics: &["resilience"],
        risk: "A bad write or a lost group cannot be restored",
        remediation: "Set `--snapshot-retention-limit` to at least 1 day",
    },
    // KMS
    Check {
        id: "kms-cmk-rotation",
        title: "Customer-managed KMS keys rotate automatically",
        service: "kms",
        severity: Medium,
        controls: controls(&["3.7.4"], &["CC6.1"], &["Art. 32"], &["3.6"]),
        topics: &["encryption"],
        risk: "Key material never changes, so a compromise of it stays useful for the key's whole life",
        remediation: "`aws kms enable-key-rotation --key-id <key>`",
    },
    Check {
        id: "kms-key-policy-not-public",
        title: "KMS key policies do not allow every principal",
        service: "kms",
        severity: Critical,
        controls: controls(&["3.6.1", "7.2.1"], &["CC6.1", "CC6.3"], &["Art. 32"], &[]),
        topics: &["encryption"],
        risk: "Anyone, in any account, may use the key to decrypt what it protects",
        remediation: "Remove `Principal: *` from the key policy, or narrow it with a condition (aws:PrincipalOrgID)",
    },
    // Datadog
    Check {
        id: "datadog-required-monitors",
        title: "The service's required Datadog monitors exist",
        service: "datadog",
        severity: High,
        controls: controls(&["10.4.1.1"], &["CC7.2", "CC7.3"], &["Art. 33"], &[]),
        topics: &["monitoring"],
        risk: "Outages, attacks (failed-login and lockout spikes) and resource exhaustion go unnoticed",
        remediation: "Create the monitor from `templates/datadog/monitors/`",
    },
    Check {
        id: "datadog-monitors-not-muted",
        title: "Required Datadog monitors are not muted",
        service: "datadog",
        severity: Medium,
        controls: controls(&["10.4.1.1"], &["CC7.2"], &[], &[]),
        topics: &["monitoring"],
        risk: "A muted monitor alerts nobody",
        remediation: "Unmute the monitor, or give the mute an end",
    },
    Check {
        id: "datadog-monitors-notify",
        title: "Required Datadog monitors notify someone",
        service: "datadog",
        severity: Medium,
        controls: controls(&["10.4.1.1", "12.10.5"], &["CC7.3"], &["Art. 33"], &[]),
        topics: &["monitoring"],
        risk: "An alert nobody receives",
        remediation: "Add an `@` handle (team, PagerDuty, Slack) to the monitor's message",
    },
    // The live service
    Check {
        id: "service-tls",
        title: "The service URL uses HTTPS with TLS 1.2 or later",
        service: "service",
        severity: High,
        controls: controls(&["4.2.1"], &["CC6.7"], &["Art. 32(1)(a)"], &[]),
        topics: &["encryption", "network"],
        risk: "Credentials cross the network in clear text or over broken TLS versions",
        remediation: "Serve the public URL over HTTPS only with a TLS 1.2+ policy",
    },
    Check {
        id: "service-security-headers",
        title: "The service sends HSTS and security headers",
        service: "service",
        severity: Medium,
        controls: controls(&["6.4.1"], &["CC6.7"], &[], &[]),
        topics: &["hardening"],
        risk: "Browsers may downgrade to HTTP, sniff content types or frame the service",
        remediation: "Send Strict-Transport-Security, X-Content-Type-Options: nosniff, X-Frame-Options and Content-Security-Policy",
    },
    Check {
        id: "service-health-ready",
        title: "`/health` and `/ready` answer 200",
        service: "service",
        severity: High,
        controls: controls(&[], &["A1.1", "A1.2"], &[], &[]),
        topics: &["resilience"],
        risk: "Load balancer and DNS health checks cannot judge the service",
        remediation: "Check the service's logs and its dependencies (database, Redis)",
    },
    Check {
        id: "service-jwks",
        title: "The JWKS is served at `/.well-known/jwks.json`",
        service: "service",
        severity: High,
        controls: controls(&["8.3.1"], &["CC6.1"], &[], &[]),
        topics: &["identity"],
        risk: "Relying services cannot verify tokens (or accept unverifiable ones)",
        remediation: "Check the JWT signing key secret and the service's startup logs",
    },
    Check {
        id: "service-gdpr-endpoints",
        title: "GDPR endpoints exist and require authentication",
        service: "service",
        severity: Medium,
        controls: controls(&[], &["P5.1", "P4.3"], &["Art. 15", "Art. 17", "Art. 20", "Art. 7"], &[]),
        topics: &["privacy"],
        risk: "Data subjects cannot exercise access, portability and erasure rights; or the endpoints are open",
        remediation: "Deploy a version with `/api/gdpr/export`, `/api/gdpr/delete` and `/api/gdpr/consent` behind authentication",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_check_maps_to_a_control() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort();
        let len = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), len, "duplicate check ids");
        for c in CHECKS {
            let any = [c.controls.pci_dss, c.controls.soc2, c.controls.gdpr, c.controls.cis]
                .iter()
                .any(|l| !l.is_empty());
            assert!(any, "{} maps to no control", c.id);
            assert!(c.id.starts_with(c.service), "{} is not prefixed by its service", c.id);
            assert!(!c.remediation.is_empty() && !c.risk.is_empty(), "{}", c.id);
        }
    }

    #[test]
    fn tags_include_service_frameworks_and_topics() {
        let c = Check::get("rds-storage-encrypted-cmk").unwrap();
        let tags: Vec<&str> = c.tags().collect();
        assert_eq!(tags, ["rds", "pci-dss", "soc2", "gdpr", "cis", "encryption"]);
    }

    #[test]
    fn every_check_lists_each_tag_once() {
        for check in CHECKS {
            let tags: Vec<&str> = check.tags().collect();
            let unique: std::collections::BTreeSet<&str> = tags.iter().copied().collect();
            assert_eq!(tags.len(), unique.len(), "{}: {tags:?}", check.id);
        }
    }
}
