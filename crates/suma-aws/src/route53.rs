//! Route 53: the service's failover records and the health checks behind them.

use async_trait::async_trait;
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

/// A failover alias record in full, as a change writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailoverAlias {
    /// Record name without the trailing dot.
    pub name: String,
    pub record_type: String,
    pub set_identifier: String,
    /// `PRIMARY` or `SECONDARY`.
    pub failover: String,
    /// The alias target's DNS name, without the trailing dot.
    pub target_dns: String,
    /// The alias target's hosted zone (the load balancer's canonical zone).
    pub target_zone_id: String,
    pub evaluate_target_health: bool,
    pub health_check_id: Option<String>,
}

pub(crate) fn unsupported(operation: &'static str, resource: &str) -> AwsError {
    AwsError::new(
        "Route53",
        operation,
        resource,
        super::AwsErrorKind::Other,
        "not supported by this client",
    )
}

#[async_trait]
pub trait DnsApi: Send + Sync {
    /// All record sets named `name` in the zone.
    async fn records(&self, hosted_zone_id: &str, name: &str) -> Result<Vec<DnsRecord>, AwsError>;
    async fn health_check_status(&self, id: &str) -> Result<HealthCheckStatus, AwsError>;
    /// The failover alias records named `name` in the zone, in full.
    async fn failover_aliases(&self, hosted_zone_id: &str, name: &str) -> Result<Vec<FailoverAlias>, AwsError> {
        let _ = name;
        Err(unsupported("ListResourceRecordSets", hosted_zone_id))
    }
    /// Creates or replaces the records in one change, all or none (an A record and its AAAA twin move
    /// together); returns the change id to wait on.
    async fn upsert_failover_aliases(
        &self,
        hosted_zone_id: &str,
        records: &[FailoverAlias],
    ) -> Result<String, AwsError> {
        let _ = records;
        Err(unsupported("ChangeResourceRecordSets", hosted_zone_id))
    }
    /// `PENDING` or `INSYNC`.
    async fn change_status(&self, change_id: &str) -> Result<String, AwsError> {
        Err(unsupported("GetChange", change_id))
    }
}
