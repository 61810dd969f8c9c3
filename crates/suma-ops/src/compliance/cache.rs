//! ElastiCache replication groups as compliance judges them: the service keeps sessions, refresh-token
//! state and rate limits there, so the cache is held to the database's standard (encrypted at rest and
//! in transit, authenticated, failing over on its own, recoverable from snapshots). Pure.

use super::evaluate::{finding, on_off};
use super::Finding;
use crate::aws::inventory::CacheGroupFacts;

/// The findings about one replication group.
pub fn cache_group(g: &CacheGroupFacts) -> Vec<Finding> {
    let r = g.arn.as_str();
    let region = Some(g.region.as_str());
    // `preferred` lets clients connect without TLS while the group migrates: encryption is not enforced.
    let tls_enforced = g.transit_encryption && g.transit_encryption_mode.as_deref() != Some("preferred");
    let transit = match (g.transit_encryption, g.transit_encryption_mode.as_deref()) {
        (false, _) => "in-transit encryption off".to_owned(),
        (true, Some(mode)) => format!("in-transit encryption on, mode {mode}"),
        (true, None) => "in-transit encryption on".to_owned(),
    };
    let auth = match (g.auth_token_enabled, g.user_group_ids.is_empty()) {
        (true, true) => "AUTH token".to_owned(),
        (true, false) => format!("AUTH token and RBAC user groups {}", g.user_group_ids.join(", ")),
        (false, false) => format!("RBAC user groups {}", g.user_group_ids.join(", ")),
        (false, true) => "no AUTH token, no RBAC user group".to_owned(),
    };
    let failover_on = g.automatic_failover == "enabled" && g.multi_az;
    vec![
        finding(
            "elasticache-encryption-at-rest",
            r,
            region,
            g.at_rest_encryption,
            format!("at-rest encryption {}", on_off(g.at_rest_encryption)),
            "at-rest encryption on",
        ),
        finding(
            "elasticache-encryption-in-transit",
            r,
            region,
            tls_enforced,
            transit,
            "in-transit encryption on and required",
        ),
        finding(
            "elasticache-auth",
            r,
            region,
            g.auth_token_enabled || !g.user_group_ids.is_empty(),
            auth,
            "an AUTH token or RBAC user groups",
        ),
        finding(
            "elasticache-automatic-failover",
            r,
            region,
            failover_on,
            format!(
                "automatic failover {}, multi-AZ {}",
                if g.automatic_failover.is_empty() {
                    "unset"
                } else {
                    g.automatic_failover.as_str()
                },
                on_off(g.multi_az)
            ),
            "automatic failover enabled, multi-AZ on",
        ),
        finding(
            "elasticache-snapshots",
            r,
            region,
            g.snapshot_retention_days >= 1,
            format!("snapshots kept {} days", g.snapshot_retention_days),
            "snapshots kept at least 1 day",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn good() -> CacheGroupFacts {
        CacheGroupFacts {
            arn: "arn:aws:elasticache:eu-west-1:123456789012:replicationgroup:auth".into(),
            id: "auth".into(),
            region: "eu-west-1".into(),
            at_rest_encryption: true,
            transit_encryption: true,
            transit_encryption_mode: Some("required".into()),
            auth_token_enabled: true,
            user_group_ids: Vec::new(),
            automatic_failover: "enabled".into(),
            multi_az: true,
            snapshot_retention_days: 7,
        }
    }

    #[test]
    fn a_hardened_group_passes_every_check() {
        let findings = cache_group(&good());
        assert_eq!(findings.len(), 5);
        assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
        // RBAC passes as well as a token.
        let mut rbac = good();
        rbac.auth_token_enabled = false;
        rbac.user_group_ids = vec!["auth-users".into()];
        assert!(cache_group(&rbac).iter().all(|f| f.status == Status::Pass));
    }

    #[test]
    fn each_check_fails_on_its_own_setting() {
        type Change = fn(&mut CacheGroupFacts);
        let cases: &[(&str, Change, &str)] = &[
            (
                "elasticache-encryption-at-rest",
                |g| g.at_rest_encryption = false,
                "at-rest encryption off",
            ),
            (
                "elasticache-encryption-in-transit",
                |g| g.transit_encryption = false,
                "in-transit encryption off",
            ),
            (
                "elasticache-encryption-in-transit",
                |g| g.transit_encryption_mode = Some("preferred".into()),
                "in-transit encryption on, mode preferred",
            ),
            (
                "elasticache-auth",
                |g| g.auth_token_enabled = false,
                "no AUTH token, no RBAC user group",
            ),
            (
                "elasticache-automatic-failover",
                |g| g.automatic_failover = "disabled".into(),
                "automatic failover disabled, multi-AZ on",
            ),
            (
                "elasticache-automatic-failover",
                |g| g.multi_az = false,
                "automatic failover enabled, multi-AZ off",
            ),
            (
                "elasticache-snapshots",
                |g| g.snapshot_retention_days = 0,
                "snapshots kept 0 days",
            ),
        ];
        for (check, change, observed) in cases {
            let mut g = good();
            change(&mut g);
            let findings = cache_group(&g);
            let failing: Vec<(&str, &str)> = findings
                .iter()
                .filter(|f| f.status != Status::Pass)
                .map(|f| (f.check_id.as_str(), f.observed.as_str()))
                .collect();
            assert_eq!(failing, [(*check, *observed)], "{check}");
        }
    }
}
