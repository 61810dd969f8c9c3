//! Route 53: the service's failover records and the health checks behind them.

use async_trait::async_trait;
use aws_config::SdkConfig;
use serde::Serialize;

use super::AwsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecord {
    /// Record name without the trailing dot.
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    /// `PRIMARY` or `SECONDARY` for failover records.
    pub failover: Option<String>,
    pub ttl: Option<i64>,
    /// Alias target DNS name or the record values.
    pub targets: Vec<String>,
    pub health_check_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheckStatus {
    pub id: String,
    /// True when every checker reports success.
    pub healthy: bool,
    pub checkers: usize,
    pub failing: usize,
}

#[async_trait]
pub trait DnsApi: Send + Sync {
    /// All record sets named `name` in the zone.
    async fn records(&self, hosted_zone_id: &str, name: &str) -> Result<Vec<DnsRecord>, AwsError>;
    async fn health_check_status(&self, id: &str) -> Result<HealthCheckStatus, AwsError>;
}

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
}
