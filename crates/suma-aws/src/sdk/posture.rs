//! The account's posture beyond the resources suma operates, for the compliance inventory: ECR
//! repositories (with the registry's scanning rules), ACM certificates, CloudTrail trails, VPC security
//! groups and the Application Auto Scaling targets of ECS services. Every list is paginated; nothing here writes.

use futures::StreamExt as _;

use super::inventory::SdkInventory;
use super::to_chrono;
use crate::inventory::{
    CertificateFacts, EcrRepositoryFacts, IngressRule, ScalableTargetFacts, SecurityGroupFacts, TrailFacts,
};
use crate::AwsError;

/// Trail status reads at once.
const CONCURRENCY: usize = 8;

/// Whether `name` matches an ECR repository filter, where `*` stands for any run of characters.
pub(crate) fn wildcard_match(filter: &str, name: &str) -> bool {
    let parts: Vec<&str> = filter.split('*').collect();
    if parts.len() == 1 {
        return filter == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl SdkInventory {
    pub(super) async fn list_ecr_repositories(&self) -> Result<Vec<EcrRepositoryFacts>, AwsError> {
        use aws_sdk_ecr::types::{ImageTagMutability, ScanFrequency};
        let registry = self
            .ecr
            .get_registry_scanning_configuration()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECR", "GetRegistryScanningConfiguration", &self.region, e))?;
        // Registry rules that scan on push (or continuously, which includes on push), by filter.
        let registry_filters: Vec<String> = registry
            .scanning_configuration()
            .map(|c| c.rules())
            .unwrap_or_default()
            .iter()
            .filter(|r| r.scan_frequency() != &ScanFrequency::Manual)
            .flat_map(|r| r.repository_filters().iter().map(|f| f.filter().to_owned()))
            .collect();
        let mut repositories = Vec::new();
        let mut pages = self.ecr.describe_repositories().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECR", "DescribeRepositories", &self.region, e))?;
            for r in page.repositories() {
                let name = r.repository_name().unwrap_or_default().to_owned();
                let by_repository = r.image_scanning_configuration().is_some_and(|c| c.scan_on_push());
                let by_registry = registry_filters.iter().any(|f| wildcard_match(f, &name));
                repositories.push(EcrRepositoryFacts {
                    arn: r.repository_arn().unwrap_or_default().to_owned(),
                    name,
                    region: self.region.clone(),
                    scan_on_push: by_repository || by_registry,
                    immutable_tags: matches!(
                        r.image_tag_mutability(),
                        Some(ImageTagMutability::Immutable | ImageTagMutability::ImmutableWithExclusion)
                    ),
                });
            }
        }
        Ok(repositories)
    }

    pub(super) async fn list_certificates(&self) -> Result<Vec<CertificateFacts>, AwsError> {
        let mut certificates = Vec::new();
        let mut pages = self.acm.list_certificates().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ACM", "ListCertificates", &self.region, e))?;
            for c in page.certificate_summary_list() {
                certificates.push(CertificateFacts {
                    arn: c.certificate_arn().unwrap_or_default().to_owned(),
                    domain: c.domain_name().unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    status: c.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    not_after: c.not_after().and_then(to_chrono),
                    in_use: c.in_use().unwrap_or(false),
                });
            }
        }
        Ok(certificates)
    }

    pub(super) async fn list_trails(&self) -> Result<Vec<TrailFacts>, AwsError> {
        let out = self
            .cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CloudTrail", "DescribeTrails", &self.region, e))?;
        let trails: Vec<TrailFacts> = out
            .trail_list()
            .iter()
            .map(|t| TrailFacts {
                arn: t.trail_arn().unwrap_or_default().to_owned(),
                name: t.name().unwrap_or_default().to_owned(),
                home_region: t.home_region().unwrap_or_default().to_owned(),
                multi_region: t.is_multi_region_trail().unwrap_or(false),
                log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
                kms_key_id: t.kms_key_id().map(str::to_owned),
                logging: Ok(false),
            })
            .collect();
        Ok(futures::stream::iter(trails)
            .map(|mut trail| async move {
                trail.logging = self
                    .cloudtrail
                    .get_trail_status()
                    .name(&trail.arn)
                    .send()
                    .await
                    .map(|s| s.is_logging().unwrap_or(false))
                    .map_err(|e| AwsError::from_sdk("CloudTrail", "GetTrailStatus", &trail.arn, e).to_string());
                trail
            })
            .buffered(CONCURRENCY)
            .collect()
            .await)
    }

    pub(super) async fn list_security_groups(&self) -> Result<Vec<SecurityGroupFacts>, AwsError> {
        let mut groups = Vec::new();
        let mut pages = self.ec2.describe_security_groups().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("EC2", "DescribeSecurityGroups", &self.region, e))?;
            for g in page.security_groups() {
                let id = g.group_id().unwrap_or_default().to_owned();
                groups.push(SecurityGroupFacts {
                    arn: g.security_group_arn().map_or_else(
                        || {
                            format!(
                                "arn:aws:ec2:{}:{}:security-group/{id}",
                                self.region,
                                g.owner_id().unwrap_or_default()
                            )
                        },
                        str::to_owned,
                    ),
                    id,
                    name: g.group_name().unwrap_or_default().to_owned(),
                    region: self.region.clone(),
                    ingress: g
                        .ip_permissions()
                        .iter()
                        .map(|p| IngressRule {
                            protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
                            ports: match (p.from_port(), p.to_port()) {
                                (Some(from), Some(to)) if from >= 0 && !(from == 0 && to == 65535) => Some((from, to)),
                                _ => None,
                            },
                            cidrs: p
                                .ip_ranges()
                                .iter()
                                .filter_map(|r| r.cidr_ip().map(str::to_owned))
                                .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(str::to_owned)))
                                .collect(),
                            groups: p
                                .user_id_group_pairs()
                                .iter()
                                .filter_map(|pair| pair.group_id().map(str::to_owned))
                                .collect(),
                            prefix_lists: p
                                .prefix_list_ids()
                                .iter()
                                .filter_map(|l| l.prefix_list_id().map(str::to_owned))
                                .collect(),
                        })
                        .collect(),
                });
            }
        }
        Ok(groups)
    }

    pub(super) async fn list_ecs_scalable_targets(&self) -> Result<Vec<ScalableTargetFacts>, AwsError> {
        let mut targets = Vec::new();
        let mut pages = self
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsError::from_sdk("ApplicationAutoScaling", "DescribeScalableTargets", &self.region, e)
            })?;
            for t in page.scalable_targets() {
                let suspended = t.suspended_state().is_some_and(|s| {
                    s.dynamic_scaling_in_suspended().unwrap_or(false)
                        || s.dynamic_scaling_out_suspended().unwrap_or(false)
                        || s.scheduled_scaling_suspended().unwrap_or(false)
                });
                targets.push(ScalableTargetFacts {
                    resource_id: t.resource_id().to_owned(),
                    region: self.region.clone(),
                    min: t.min_capacity(),
                    max: t.max_capacity(),
                    suspended,
                });
            }
        }
        Ok(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_filters_match_with_wildcards() {
        let cases = [
            ("*", "auth-service", true),
            ("auth-*", "auth-service", true),
            ("auth-*", "billing", false),
            ("*-service", "auth-service", true),
            ("a*s*e", "auth-service", true),
            ("auth-service", "auth-service", true),
            ("auth", "auth-service", false),
            ("a*x*e", "auth-service", false),
        ];
        for (filter, name, matches) in cases {
            assert_eq!(wildcard_match(filter, name), matches, "{filter} {name}");
        }
    }
}
