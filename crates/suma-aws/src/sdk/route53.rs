//! The `aws-sdk` implementation of [`crate::route53`]'s trait.

#[allow(unused_imports)]
use crate::route53::*;
use crate::AwsError;
use async_trait::async_trait;
use aws_config::SdkConfig;

pub struct SdkRoute53 {
    client: aws_sdk_route53::Client,
}

impl SdkRoute53 {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_route53::Client::new(config),
        }
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[async_trait]
impl DnsApi for SdkRoute53 {
    async fn records(&self, hosted_zone_id: &str, name: &str) -> Result<Vec<DnsRecord>, AwsError> {
        let wanted = normalise(name);
        let mut records = Vec::new();
        let mut start: Option<(String, aws_sdk_route53::types::RrType, Option<String>)> =
            Some((format!("{wanted}."), aws_sdk_route53::types::RrType::A, None));
        // Record sets are sorted by name, so paginate from the name until it changes.
        while let Some((start_name, start_type, start_id)) = start.take() {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(hosted_zone_id)
                .start_record_name(start_name)
                .start_record_type(start_type)
                .set_start_record_identifier(start_id)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Route53", "ListResourceRecordSets", hosted_zone_id, e))?;
            let mut past_name = false;
            for set in out.resource_record_sets() {
                if normalise(set.name()) != wanted {
                    past_name = true;
                    continue;
                }
                let mut targets: Vec<String> = set.resource_records().iter().map(|r| r.value().to_owned()).collect();
                if let Some(alias) = set.alias_target() {
                    targets.push(normalise(alias.dns_name()));
                }
                records.push(DnsRecord {
                    name: normalise(set.name()),
                    record_type: set.r#type().as_str().to_owned(),
                    set_identifier: set.set_identifier().map(str::to_owned),
                    failover: set.failover().map(|f| f.as_str().to_owned()),
                    ttl: set.ttl(),
                    targets,
                    health_check_id: set.health_check_id().map(str::to_owned),
                });
            }
            if out.is_truncated() && !past_name {
                if let (Some(n), Some(t)) = (out.next_record_name(), out.next_record_type()) {
                    start = Some((n.to_owned(), t.clone(), out.next_record_identifier().map(str::to_owned)));
                }
            }
        }
        Ok(records)
    }

    async fn health_check_status(&self, id: &str) -> Result<HealthCheckStatus, AwsError> {
        let out = self
            .client
            .get_health_check_status()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Route53", "GetHealthCheckStatus", id, e))?;
        let observations = out.health_check_observations();
        let failing = observations
            .iter()
            .filter(|o| {
                !o.status_report()
                    .and_then(|r| r.status())
                    .is_some_and(|s| s.starts_with("Success"))
            })
            .count();
        Ok(HealthCheckStatus {
            id: id.to_owned(),
            healthy: !observations.is_empty() && failing == 0,
            checkers: observations.len(),
            failing,
        })
    }

    async fn failover_aliases(&self, hosted_zone_id: &str, name: &str) -> Result<Vec<FailoverAlias>, AwsError> {
        let wanted = normalise(name);
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .start_record_name(format!("{wanted}."))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Route53", "ListResourceRecordSets", hosted_zone_id, e))?;
        // Failover records come in pairs, so the first page starting at the name holds them.
        Ok(out
            .resource_record_sets()
            .iter()
            .filter(|set| normalise(set.name()) == wanted)
            .filter_map(|set| {
                let alias = set.alias_target()?;
                Some(FailoverAlias {
                    name: wanted.clone(),
                    record_type: set.r#type().as_str().to_owned(),
                    set_identifier: set.set_identifier()?.to_owned(),
                    failover: set.failover()?.as_str().to_owned(),
                    target_dns: normalise(alias.dns_name()),
                    target_zone_id: alias.hosted_zone_id().to_owned(),
                    evaluate_target_health: alias.evaluate_target_health(),
                    health_check_id: set.health_check_id().map(str::to_owned),
                })
            })
            .collect())
    }

    async fn upsert_failover_aliases(
        &self,
        hosted_zone_id: &str,
        records: &[FailoverAlias],
    ) -> Result<String, AwsError> {
        use aws_sdk_route53::types::ChangeBatch;
        let name = records.first().map_or("", |r| r.name.as_str());
        let changes = records.iter().map(upsert_of).collect::<Result<Vec<_>, _>>()?;
        let batch = ChangeBatch::builder()
            .comment("suma dr")
            .set_changes(Some(changes))
            .build()
            .map_err(|e| invalid_change(name, e))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Route53", "ChangeResourceRecordSets", name, e))?;
        Ok(out
            .change_info()
            .map(|c| c.id().trim_start_matches("/change/").to_owned())
            .unwrap_or_default())
    }

    async fn change_status(&self, change_id: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Route53", "GetChange", change_id, e))?;
        Ok(out
            .change_info()
            .map(|c| c.status().as_str().to_owned())
            .unwrap_or_default())
    }
}

fn invalid_change(name: &str, e: aws_sdk_route53::error::BuildError) -> AwsError {
    AwsError::new(
        "Route53",
        "ChangeResourceRecordSets",
        name,
        super::AwsErrorKind::Other,
        e.to_string(),
    )
}

/// The UPSERT of one failover alias record.
fn upsert_of(record: &FailoverAlias) -> Result<aws_sdk_route53::types::Change, AwsError> {
    use aws_sdk_route53::types::{
        AliasTarget, Change, ChangeAction, ResourceRecordSet, ResourceRecordSetFailover, RrType,
    };
    let invalid = |e| invalid_change(&record.name, e);
    let alias = AliasTarget::builder()
        .hosted_zone_id(&record.target_zone_id)
        .dns_name(&record.target_dns)
        .evaluate_target_health(record.evaluate_target_health)
        .build()
        .map_err(invalid)?;
    let set = ResourceRecordSet::builder()
        .name(&record.name)
        .r#type(RrType::from(record.record_type.as_str()))
        .set_identifier(&record.set_identifier)
        .failover(ResourceRecordSetFailover::from(record.failover.as_str()))
        .alias_target(alias)
        .set_health_check_id(record.health_check_id.clone())
        .build()
        .map_err(invalid)?;
    Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(set)
        .build()
        .map_err(invalid)
}
