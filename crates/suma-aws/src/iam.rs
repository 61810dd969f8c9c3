//! The IAM actions behind each thing suma does on AWS, grouped by what the call sites in `sdk/` do. The
//! one table `suma iam-policy` builds least-privilege policies from; a sandbox test records every request
//! a command makes (the fault proxy's `/__calls`) and checks it is in that command's policy, so a new SDK
//! call without its action here fails a test rather than a production run.

/// A named set of IAM actions: what one capability of suma needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The statement id in a policy (`LockRead`).
    pub sid: &'static str,
    pub actions: &'static [&'static str],
    /// Which resources the statement can be narrowed to.
    pub scope: Scope,
}

/// What a statement's `Resource` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The lock and journal table (`lock.table`).
    LockTable,
    /// The managed secrets of the environment (`secrets[].id`).
    Secrets,
    /// The secrets that hold notification URLs (`notifications[].url_secret`); a policy leaves the
    /// statement out when the configuration names none.
    NotificationSecrets,
    /// Anything: describe and list calls that IAM does not scope, or resources named only at run time.
    Any,
}

/// Reading the lock and the journal (`lock status`, `ops`, `status`): items by key, an environment's
/// operations by the operations index (a scan only on a table `suma init` has not given the index).
pub const LOCK_READ: Permission = Permission {
    sid: "LockRead",
    actions: &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
    scope: Scope::LockTable,
};

/// Taking, renewing and releasing the lock; journaling operations; control commands.
pub const LOCK_WRITE: Permission = Permission {
    sid: "LockWrite",
    actions: &[
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:TransactWriteItems",
        "dynamodb:UpdateItem",
    ],
    scope: Scope::LockTable,
};

/// `suma init`: creating and hardening the lock table, and giving operations journaled before the
/// operations index their `started_at` (a scan and an update per such item).
pub const LOCK_TABLE_SETUP: Permission = Permission {
    sid: "LockTableSetup",
    actions: &[
        "dynamodb:CreateTable",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:UpdateItem",
        "dynamodb:UpdateTable",
    ],
    scope: Scope::LockTable,
};

pub const ECS_READ: Permission = Permission {
    sid: "EcsRead",
    actions: &["ecs:DescribeServices", "ecs:DescribeTaskDefinition"],
    scope: Scope::Any,
};

/// What a service's tasks run, by digest (DR readiness compares the two regions' images): its running
/// tasks, and what an image tag names in ECR now.
pub const IMAGE_READ: Permission = Permission {
    sid: "ImageRead",
    actions: &["ecr:DescribeImages", "ecs:DescribeTasks", "ecs:ListTasks"],
    scope: Scope::Any,
};

/// New revisions and service updates (deploys, rollbacks, DR scaling, consumers' redeployment). Passing
/// the task and execution roles of a registered revision needs `iam:PassRole` on them.
pub const ECS_DEPLOY: Permission = Permission {
    sid: "EcsDeploy",
    actions: &["ecs:RegisterTaskDefinition", "ecs:UpdateService", "iam:PassRole"],
    scope: Scope::Any,
};

pub const ELB_READ: Permission = Permission {
    sid: "ElbRead",
    actions: &[
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
    ],
    scope: Scope::Any,
};

/// Moving traffic between the stable and canary target groups.
pub const ELB_SHIFT: Permission = Permission {
    sid: "ElbShift",
    actions: &["elasticloadbalancing:ModifyRule"],
    scope: Scope::Any,
};

pub const RDS_READ: Permission = Permission {
    sid: "RdsRead",
    actions: &["rds:DescribeDBInstances"],
    scope: Scope::Any,
};

/// Promotion, replica creation, renames and restores (DR, the database runbooks), and the master
/// password of an RDS-managed user (rotation).
pub const RDS_CHANGE: Permission = Permission {
    sid: "RdsChange",
    actions: &[
        "rds:CreateDBInstanceReadReplica",
        "rds:DescribeDBSnapshots",
        "rds:ModifyDBInstance",
        "rds:PromoteReadReplica",
        "rds:RebootDBInstance",
        "rds:RestoreDBInstanceFromDBSnapshot",
    ],
    scope: Scope::Any,
};

pub const ROUTE53_READ: Permission = Permission {
    sid: "Route53Read",
    actions: &[
        "route53:GetChange",
        "route53:GetHealthCheckStatus",
        "route53:ListResourceRecordSets",
    ],
    scope: Scope::Any,
};

pub const ROUTE53_SWITCH: Permission = Permission {
    sid: "Route53Switch",
    actions: &["route53:ChangeResourceRecordSets"],
    scope: Scope::Any,
};

/// Metadata of the managed secrets: age, versions, labels, replication. Never their values.
pub const SECRETS_READ: Permission = Permission {
    sid: "SecretsRead",
    actions: &["secretsmanager:DescribeSecret"],
    scope: Scope::Secrets,
};

/// Reading the notification receivers' URLs from their secrets when a deploy starts.
pub const NOTIFY_READ: Permission = Permission {
    sid: "NotifyRead",
    actions: &["secretsmanager:GetSecretValue"],
    scope: Scope::NotificationSecrets,
};

/// The rotation protocol on the managed secrets: read and write values, move the staging labels.
pub const SECRETS_ROTATE: Permission = Permission {
    sid: "SecretsRotate",
    actions: &[
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    ],
    scope: Scope::Secrets,
};

/// Redis AUTH tokens (rotation of a `redis-auth` secret).
pub const ELASTICACHE: Permission = Permission {
    sid: "ElastiCacheAuth",
    actions: &[
        "elasticache:DescribeReplicationGroups",
        "elasticache:ModifyReplicationGroup",
    ],
    scope: Scope::Any,
};

/// Suspend and restore a service's Application Auto Scaling while a DR switch moves its capacity.
pub const ECS_SCALING: Permission = Permission {
    sid: "EcsServiceScaling",
    actions: &[
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:RegisterScalableTarget",
    ],
    scope: Scope::Any,
};

/// What `suma compliance check` reads of the account (its inventory).
pub const COMPLIANCE_INVENTORY: Permission = Permission {
    sid: "ComplianceInventory",
    actions: &[
        "acm:ListCertificates",
        "application-autoscaling:DescribeScalableTargets",
        "cloudtrail:DescribeTrails",
        "cloudtrail:GetTrailStatus",
        "ec2:DescribeSecurityGroups",
        "ecr:DescribeRepositories",
        "ecr:GetRegistryScanningConfiguration",
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:ListClusters",
        "ecs:ListServices",
        "ecs:ListTaskDefinitions",
        "elasticache:DescribeReplicationGroups",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeSSLPolicies",
        "events:ListEventBuses",
        "events:ListRules",
        "events:ListTargetsByRule",
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:GetKeyRotationStatus",
        "kms:ListAliases",
        "kms:ListKeys",
        "rds:DescribeDBInstances",
        "rds:DescribeDBParameters",
        "rds:DescribeDBSnapshotAttributes",
        "rds:DescribeDBSnapshots",
        "route53:ListHostedZones",
        "route53:ListResourceRecordSets",
        "scheduler:GetSchedule",
        "scheduler:ListSchedules",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:ListSecrets",
        "wafv2:GetLoggingConfiguration",
        "wafv2:GetWebACLForResource",
    ],
    scope: Scope::Any,
};

/// What operating the environments needs: every permission but setting up the lock table and reading the
/// whole account for compliance. A runbook step may call any action, so a runbook run needs these.
pub const OPERATE: &[Permission] = &[
    LOCK_READ,
    LOCK_WRITE,
    ECS_READ,
    IMAGE_READ,
    ECS_DEPLOY,
    ECS_SCALING,
    ELB_READ,
    ELB_SHIFT,
    RDS_READ,
    RDS_CHANGE,
    ROUTE53_READ,
    ROUTE53_SWITCH,
    SECRETS_READ,
    SECRETS_ROTATE,
    ELASTICACHE,
];

/// Every permission, for the policy of all of suma.
pub fn all() -> Vec<Permission> {
    let mut all = OPERATE.to_vec();
    all.extend([LOCK_TABLE_SETUP, COMPLIANCE_INVENTORY, NOTIFY_READ]);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_service_colon_operation_and_listed_once_per_permission() {
        let all = all();
        for permission in &all {
            let mut seen = std::collections::BTreeSet::new();
            for action in permission.actions {
                let (service, operation) = action.split_once(':').unwrap();
                assert!(
                    !service.is_empty() && operation.starts_with(char::is_uppercase),
                    "{action}"
                );
                assert!(seen.insert(action), "{} lists {action} twice", permission.sid);
            }
        }
        let sids: std::collections::BTreeSet<_> = all.iter().map(|p| p.sid).collect();
        assert_eq!(sids.len(), all.len(), "statement ids are unique");
    }
}
