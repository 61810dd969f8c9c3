//! `rds.primary.placement` and `rds.replica.placement`: how suma creates an instance in that region when it
//! rebuilds one (a failback's new primary, the cross-region replica restored after it). Each setting left
//! out is copied from the instance being replaced (the renamed stale one); what neither names stops the
//! rebuild before anything changes, so an instance never lands outside the VPC or unencrypted by the
//! region's customer key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AwsRegion;

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbPlacement {
    /// KMS key (ARN, key id or alias) in the instance's region; required for a replica of an encrypted
    /// instance in another region.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// DB subnet group: the VPC and subnets the instance lives in.
    #[serde(default)]
    pub subnet_group: Option<String>,
    /// VPC security groups (`sg-…`).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// DB parameter group.
    #[serde(default)]
    pub parameter_group: Option<String>,
    /// Deletion protection on the new instance (it is also kept when the replaced instance had it).
    #[serde(default)]
    pub deletion_protection: bool,
    /// IAM database authentication on the new instance (also kept when the replaced instance had it).
    #[serde(default)]
    pub iam_auth: bool,
}

impl DbPlacement {
    /// What is wrong in it for an instance in `region`: (field, problem, hint).
    pub fn problems(&self, region: &AwsRegion) -> Vec<(&'static str, String, String)> {
        let mut problems = Vec::new();
        if let Some(key) = &self.kms_key_id {
            if key.trim().is_empty() {
                problems.push((
                    "kms_key_id",
                    "is empty".to_owned(),
                    "name the key or leave the field out".to_owned(),
                ));
            } else if let Some(rest) = key.strip_prefix("arn:") {
                let key_region = rest.split(':').nth(2).unwrap_or_default();
                if key_region != region.as_str() {
                    problems.push((
                        "kms_key_id",
                        format!("`{key}` is a key of `{key_region}`, not of the instance's region `{region}`"),
                        format!("a KMS key encrypts only in its own region: use the key of `{region}`"),
                    ));
                }
            }
        }
        for (field, value) in [
            ("subnet_group", &self.subnet_group),
            ("parameter_group", &self.parameter_group),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push((
                    field,
                    "is empty".to_owned(),
                    "name it or leave the field out".to_owned(),
                ));
            }
        }
        for group in &self.security_group_ids {
            if !group.starts_with("sg-") {
                problems.push((
                    "security_group_ids",
                    format!("`{group}` is not a security group id"),
                    "VPC security groups are named by id: `sg-0123abcd`".to_owned(),
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_checked_against_the_instance_region() {
        let region = AwsRegion::try_from("eu-central-1".to_owned()).unwrap();
        let placement = |yaml: &str| -> DbPlacement { serde_yaml::from_str(yaml).unwrap() };
        let cases = [
            ("{}", vec![]),
            (
                "{ kms_key_id: 'arn:aws:kms:eu-central-1:1:key/k', subnet_group: db, security_group_ids: [sg-1], parameter_group: pg }",
                vec![],
            ),
            ("{ kms_key_id: alias/auth-db }", vec![]),
            ("{ kms_key_id: 'arn:aws:kms:eu-west-1:1:key/k' }", vec!["kms_key_id"]),
            ("{ kms_key_id: ' ' }", vec!["kms_key_id"]),
            ("{ security_group_ids: [db-group] }", vec!["security_group_ids"]),
            ("{ subnet_group: '', parameter_group: '' }", vec!["subnet_group", "parameter_group"]),
        ];
        for (yaml, expected) in cases {
            let fields: Vec<&str> = placement(yaml).problems(&region).iter().map(|p| p.0).collect();
            assert_eq!(fields, expected, "{yaml}");
        }
    }
}
