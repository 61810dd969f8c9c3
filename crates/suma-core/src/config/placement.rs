//! Where and how an RDS instance lives in its region: its KMS key, DB subnet group (so its VPC), VPC
//! security groups, parameter group, deletion protection and IAM authentication. The same type is read
//! from RDS for an instance (`suma_aws::rds::DbInstance::placement`) and configured as
//! `rds.primary.placement` / `rds.replica.placement`: how suma creates that instance when it rebuilds one
//! (a failback's new primary, the cross-region replica restored after it). Each setting left out of the
//! configuration is copied from the instance being replaced (the renamed stale one); what neither names
//! stops the rebuild before anything changes, so an instance never lands outside the VPC or unencrypted
//! by the region's customer key. Never publicly accessible.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AwsRegion;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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
    /// `self` with every setting `overrides` names replacing it.
    pub fn overridden_by(mut self, overrides: &DbPlacement) -> Self {
        if overrides.kms_key_id.is_some() {
            self.kms_key_id.clone_from(&overrides.kms_key_id);
        }
        if overrides.subnet_group.is_some() {
            self.subnet_group.clone_from(&overrides.subnet_group);
        }
        if !overrides.security_group_ids.is_empty() {
            self.security_group_ids.clone_from(&overrides.security_group_ids);
        }
        if overrides.parameter_group.is_some() {
            self.parameter_group.clone_from(&overrides.parameter_group);
        }
        self.deletion_protection |= overrides.deletion_protection;
        self.iam_auth |= overrides.iam_auth;
        self
    }

    /// What is missing for an instance replicating a source across regions: a key in this region when
    /// the source is encrypted, and the subnet group and security groups that keep it in the VPC.
    pub fn missing_for(&self, source_encrypted: bool) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if source_encrypted && self.kms_key_id.is_none() {
            missing.push("kms_key_id");
        }
        if self.subnet_group.is_none() {
            missing.push("subnet_group");
        }
        if self.security_group_ids.is_empty() {
            missing.push("security_group_ids");
        }
        missing
    }

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
        let placement = |yaml: &str| -> DbPlacement { serde_norway::from_str(yaml).unwrap() };
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
