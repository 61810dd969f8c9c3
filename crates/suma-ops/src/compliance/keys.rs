//! KMS keys as compliance sees them: who manages the key a resource names (judged by what KMS says of
//! the key, `KeyManager`, never by the shape of its ARN: a real AWS-managed `aws/rds` key is named by a
//! plain key ARN), and the checks of the keys themselves (automatic rotation, a policy that does not open
//! the key to everyone). Pure; [`super::run`] reads the keys.

use std::collections::HashMap;

use super::evaluate::on_off;
use super::evaluate::{error_finding, finding};
use super::policy::not_public;
use super::Finding;
use crate::aws::inventory::KmsKeyFacts;

/// Who manages a key, as KMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    Customer,
    Aws,
    /// The key could not be described, so nobody can tell.
    Unreadable(String),
}

/// The keys of a region by every name a resource may use for them: key id, key ARN, alias name and
/// alias ARN.
#[derive(Debug, Clone, Default)]
pub struct KeyDirectory {
    owners: HashMap<String, KeyOwner>,
}

/// A name AWS reserves for its own keys (`alias/aws/rds`, as a name or inside an alias ARN).
fn aws_alias(reference: &str) -> bool {
    reference.starts_with("alias/aws/") || reference.contains(":alias/aws/")
}

impl KeyDirectory {
    /// The directory of described keys.
    pub fn of(keys: &[KmsKeyFacts]) -> Self {
        let mut directory = Self::default();
        for key in keys {
            directory.add(key);
        }
        directory
    }

    /// Adds a described key under each of its names.
    pub fn add(&mut self, key: &KmsKeyFacts) {
        let owner = if key.customer_managed {
            KeyOwner::Customer
        } else {
            KeyOwner::Aws
        };
        let mut names = vec![key.key_id.clone(), key.arn.clone()];
        for alias in &key.aliases {
            names.push(alias.clone());
            // `arn:aws:kms:REGION:ACCOUNT:key/ID` → `arn:aws:kms:REGION:ACCOUNT:alias/NAME`.
            if let Some((prefix, _)) = key.arn.rsplit_once(":key/") {
                names.push(format!("{prefix}:{alias}"));
            }
        }
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            self.owners.insert(name, owner.clone());
        }
    }

    /// Adds a key described on its own, under the name a resource used for it too (an alias, say).
    pub fn add_described(&mut self, reference: &str, key: &KmsKeyFacts) {
        self.add(key);
        let owner = self.owner(&key.arn);
        self.owners.insert(reference.to_owned(), owner);
    }

    /// Records that `reference` could not be described, and why.
    pub fn unreadable(&mut self, reference: &str, why: impl Into<String>) {
        self.owners
            .insert(reference.to_owned(), KeyOwner::Unreadable(why.into()));
    }

    /// Whether `reference` needs no description: it is known, or names an AWS-reserved alias.
    pub fn knows(&self, reference: &str) -> bool {
        aws_alias(reference) || self.owners.contains_key(reference)
    }

    /// Who manages the key `reference` names.
    pub fn owner(&self, reference: &str) -> KeyOwner {
        if aws_alias(reference) {
            return KeyOwner::Aws;
        }
        self.owners.get(reference).cloned().unwrap_or_else(|| {
            KeyOwner::Unreadable(format!(
                "KMS key `{reference}` is not among the region's keys and was not described"
            ))
        })
    }
}

/// Whether `reference` is one of `key`'s names (its id, ARN, an alias or an alias ARN).
pub fn names_key(reference: &str, key: &KmsKeyFacts) -> bool {
    reference == key.arn
        || reference == key.key_id
        || key
            .aliases
            .iter()
            .any(|a| reference == a || reference.ends_with(&format!(":{a}")))
}

/// The findings about one key. AWS-managed keys are AWS's to rotate and to guard, so only
/// customer-managed keys are judged.
pub fn kms_key(key: &KmsKeyFacts) -> Vec<Finding> {
    if !key.customer_managed {
        return Vec::new();
    }
    let r = key.arn.as_str();
    let region = Some(key.region.as_str());
    let name = key.aliases.first().map_or(String::new(), |a| format!("{a}: "));
    let mut out = Vec::new();
    match &key.rotation_enabled {
        Ok(Some(on)) => out.push(finding(
            "kms-cmk-rotation",
            r,
            region,
            *on,
            format!("{name}automatic rotation {}", on_off(*on)),
            "automatic rotation on",
        )),
        // Disabled, pending deletion or asymmetric: rotation does not apply.
        Ok(None) => {}
        Err(e) => out.push(error_finding("kms-cmk-rotation", r, region, e)),
    }
    out.push(match &key.policy {
        Ok(policy) => not_public(
            "kms-key-policy-not-public",
            r,
            region,
            &name,
            // No document came back, so no statement in it opens the key.
            policy.as_deref().unwrap_or("{}"),
        ),
        Err(e) => error_finding("kms-key-policy-not-public", r, region, e),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn key() -> KmsKeyFacts {
        KmsKeyFacts {
            arn: "arn:aws:kms:eu-west-1:123456789012:key/1234".into(),
            key_id: "1234".into(),
            region: "eu-west-1".into(),
            aliases: vec!["alias/auth-rds".into()],
            customer_managed: true,
            state: "Enabled".into(),
            symmetric_encryption: true,
            rotation_enabled: Ok(Some(true)),
            policy: Ok(Some(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#.into(),
            )),
        }
    }

    #[test]
    fn the_directory_answers_every_name_of_a_key() {
        let mut aws = key();
        aws.arn = "arn:aws:kms:eu-west-1:123456789012:key/aaaa".into();
        aws.key_id = "aaaa".into();
        aws.aliases = vec!["alias/aws/rds".into()];
        aws.customer_managed = false;
        let mut directory = KeyDirectory::of(&[key(), aws]);
        directory.unreadable("arn:aws:kms:eu-west-1:999999999999:key/shared", "AccessDeniedException");
        let cases: &[(&str, KeyOwner)] = &[
            ("1234", KeyOwner::Customer),
            ("arn:aws:kms:eu-west-1:123456789012:key/1234", KeyOwner::Customer),
            ("alias/auth-rds", KeyOwner::Customer),
            ("arn:aws:kms:eu-west-1:123456789012:alias/auth-rds", KeyOwner::Customer),
            // The false pass this fixes: real RDS names its AWS-managed key by a plain key ARN.
            ("arn:aws:kms:eu-west-1:123456789012:key/aaaa", KeyOwner::Aws),
            ("alias/aws/secretsmanager", KeyOwner::Aws),
            ("arn:aws:kms:eu-west-1:123456789012:alias/aws/rds", KeyOwner::Aws),
            (
                "arn:aws:kms:eu-west-1:999999999999:key/shared",
                KeyOwner::Unreadable("AccessDeniedException".into()),
            ),
        ];
        for (reference, owner) in cases {
            assert_eq!(&directory.owner(reference), owner, "{reference}");
            assert!(directory.knows(reference), "{reference}");
        }
        assert!(!directory.knows("default_kms_key_id"));
        assert!(matches!(directory.owner("default_kms_key_id"), KeyOwner::Unreadable(_)));
    }

    #[test]
    fn key_checks_pass_and_fail() {
        let verdicts = |k: &KmsKeyFacts| -> Vec<(String, Status, String)> {
            kms_key(k)
                .into_iter()
                .map(|f| (f.check_id, f.status, f.observed))
                .collect()
        };
        let pass = |check: &str, observed: &str| (check.to_owned(), Status::Pass, observed.to_owned());
        assert_eq!(
            verdicts(&key()),
            [
                pass("kms-cmk-rotation", "alias/auth-rds: automatic rotation on"),
                pass(
                    "kms-key-policy-not-public",
                    "alias/auth-rds: no statement allows every principal"
                ),
            ]
        );
        let mut k = key();
        k.rotation_enabled = Ok(Some(false));
        k.policy = Ok(Some(
            r#"{"Statement":[{"Sid":"Open","Effect":"Allow","Principal":"*"}]}"#.into(),
        ));
        k.aliases.clear();
        assert_eq!(
            verdicts(&k),
            [
                ("kms-cmk-rotation".into(), Status::Fail, "automatic rotation off".into()),
                (
                    "kms-key-policy-not-public".into(),
                    Status::Fail,
                    "statement Open allows every principal (*) without a condition".into()
                ),
            ]
        );
        // A disabled key: rotation does not apply, its policy still counts.
        k.rotation_enabled = Ok(None);
        assert_eq!(verdicts(&k).len(), 1);
        // Unreadable settings are errors, never passes.
        k.rotation_enabled = Err("AccessDeniedException".into());
        k.policy = Err("AccessDeniedException".into());
        assert!(verdicts(&k).iter().all(|(_, s, _)| *s == Status::Error));
        // AWS-managed keys are AWS's.
        let mut aws = key();
        aws.customer_managed = false;
        assert!(kms_key(&aws).is_empty());
    }
}
