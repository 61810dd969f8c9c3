//! Pointing the failover PRIMARY record at one region or the other, outside a full DR failover: the
//! runbook action `dns.failover` moves traffic when a region's load balancer or service is broken but
//! its database is not (a full failover also promotes the replica and scales the DR service). The
//! decision is pure; the caller reads the records and writes the one returned.

use crate::aws::elb::AliasTarget;
use crate::aws::route53::FailoverAlias;

/// Which region the PRIMARY record should send traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsSide {
    /// The primary region's load balancer.
    Primary,
    /// The SECONDARY record's target: the DR region's load balancer.
    Dr,
}

impl DnsSide {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "primary" => Some(Self::Primary),
            "dr" => Some(Self::Dr),
            _ => None,
        }
    }
}

/// The PRIMARY record rewritten to send traffic to the SECONDARY record's target, checked by the
/// SECONDARY's health check (or `fallback_health_check` when it has none).
pub fn primary_to_secondary(
    primary: &FailoverAlias,
    secondary: &FailoverAlias,
    fallback_health_check: Option<&str>,
) -> FailoverAlias {
    FailoverAlias {
        target_dns: secondary.target_dns.clone(),
        target_zone_id: secondary.target_zone_id.clone(),
        health_check_id: secondary
            .health_check_id
            .clone()
            .or_else(|| fallback_health_check.map(str::to_owned)),
        ..primary.clone()
    }
}

/// Every PRIMARY record rewritten to the SECONDARY record of its own type (an A record and its AAAA
/// twin, each to theirs), as [`primary_to_secondary`] rewrites one. `Err` names the record type that
/// has no SECONDARY: moving only the others would split clients by address family.
pub fn primaries_to_secondaries<'a>(
    primaries: impl IntoIterator<Item = &'a FailoverAlias>,
    secondaries: &[&FailoverAlias],
    fallback_health_check: Option<&str>,
) -> Result<Vec<FailoverAlias>, String> {
    primaries
        .into_iter()
        .map(|primary| {
            let secondary = secondaries
                .iter()
                .find(|s| s.record_type == primary.record_type)
                .ok_or_else(|| primary.record_type.clone())?;
            Ok(primary_to_secondary(primary, secondary, fallback_health_check))
        })
        .collect()
}

/// What `dns.failover` found and what it will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSwitch {
    pub current: FailoverAlias,
    pub wanted: FailoverAlias,
}

impl DnsSwitch {
    /// True when the record already points where it should: nothing to write.
    pub fn in_place(&self) -> bool {
        self.current == self.wanted
    }
}

/// Health checks from the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthChecks<'a> {
    pub primary: Option<&'a str>,
    pub secondary: Option<&'a str>,
}

/// The PRIMARY record as it should be for `side`. `primary_target` is the primary region's load
/// balancer (needed only for [`DnsSide::Primary`]). Errors name what is missing from the zone.
pub fn plan(
    record_name: &str,
    records: &[FailoverAlias],
    side: DnsSide,
    primary_target: Option<&AliasTarget>,
    checks: HealthChecks<'_>,
) -> Result<DnsSwitch, String> {
    let find = |role: &str| records.iter().find(|r| r.failover == role);
    let current = find("PRIMARY").ok_or_else(|| {
        format!("`{record_name}` has no PRIMARY failover alias record\nhint: `suma dr check` lists what the zone holds")
    })?;
    let secondary = find("SECONDARY");
    let wanted = match side {
        DnsSide::Dr => {
            let secondary = secondary.ok_or_else(|| {
                format!("`{record_name}` has no SECONDARY failover alias record: there is no DR target to point at")
            })?;
            primary_to_secondary(current, secondary, checks.secondary)
        }
        DnsSide::Primary => {
            let target = primary_target.ok_or_else(|| "the primary load balancer is unknown".to_owned())?;
            // The PRIMARY record may carry the secondary's health check after a failover; it must
            // not keep it once it points home again.
            let secondary_check = secondary
                .and_then(|s| s.health_check_id.as_deref())
                .or(checks.secondary);
            let health_check_id = checks.primary.map(str::to_owned).or_else(|| {
                current
                    .health_check_id
                    .clone()
                    .filter(|id| Some(id.as_str()) != secondary_check)
            });
            FailoverAlias {
                target_dns: target.dns_name.clone(),
                target_zone_id: target.hosted_zone_id.clone(),
                health_check_id,
                ..current.clone()
            }
        }
    };
    Ok(DnsSwitch {
        current: current.clone(),
        wanted,
    })
}

/// [`plan`] for every record type the name has a PRIMARY record of (an A record and its AAAA twin),
/// each against the SECONDARY of its own type: they move together or not at all.
pub fn plan_all(
    record_name: &str,
    records: &[FailoverAlias],
    side: DnsSide,
    primary_target: Option<&AliasTarget>,
    checks: HealthChecks<'_>,
) -> Result<Vec<DnsSwitch>, String> {
    let mut types: Vec<&str> = records
        .iter()
        .filter(|r| r.failover == "PRIMARY")
        .map(|r| r.record_type.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    if types.is_empty() {
        return plan(record_name, records, side, primary_target, checks).map(|one| vec![one]);
    }
    types
        .into_iter()
        .map(|record_type| {
            let of_type: Vec<FailoverAlias> = records
                .iter()
                .filter(|r| r.record_type == record_type)
                .cloned()
                .collect();
            plan(record_name, &of_type, side, primary_target, checks)
                .map_err(|e| format!("{e} (record type {record_type})"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(role: &str, target: &str, check: Option<&str>) -> FailoverAlias {
        FailoverAlias {
            name: "auth.example.com".into(),
            record_type: "A".into(),
            set_identifier: role.to_lowercase(),
            failover: role.into(),
            target_dns: target.into(),
            target_zone_id: format!("Z-{target}"),
            evaluate_target_health: true,
            health_check_id: check.map(str::to_owned),
        }
    }

    fn home() -> AliasTarget {
        AliasTarget {
            dns_name: "primary-lb".into(),
            hosted_zone_id: "Z-primary-lb".into(),
        }
    }

    #[test]
    fn to_dr_takes_the_secondary_target_and_health_check_and_keeps_the_record_identity() {
        let records = [
            alias("PRIMARY", "primary-lb", Some("hc-1")),
            alias("SECONDARY", "dr-lb", Some("hc-2")),
        ];
        let switch = plan("auth.example.com", &records, DnsSide::Dr, None, HealthChecks::default()).unwrap();
        assert!(!switch.in_place());
        assert_eq!(
            switch.wanted,
            FailoverAlias {
                target_dns: "dr-lb".into(),
                target_zone_id: "Z-dr-lb".into(),
                health_check_id: Some("hc-2".into()),
                ..records[0].clone()
            }
        );
    }

    #[test]
    fn a_secondary_without_a_health_check_uses_the_configured_one() {
        let records = [alias("PRIMARY", "primary-lb", None), alias("SECONDARY", "dr-lb", None)];
        let checks = HealthChecks {
            primary: None,
            secondary: Some("hc-conf"),
        };
        let switch = plan("auth.example.com", &records, DnsSide::Dr, None, checks).unwrap();
        assert_eq!(switch.wanted.health_check_id.as_deref(), Some("hc-conf"));
    }

    #[test]
    fn a_record_already_in_place_needs_no_change() {
        let records = [
            alias("PRIMARY", "dr-lb", Some("hc-2")),
            alias("SECONDARY", "dr-lb", Some("hc-2")),
        ];
        let switch = plan("auth.example.com", &records, DnsSide::Dr, None, HealthChecks::default()).unwrap();
        assert!(switch.in_place());
    }

    #[test]
    fn back_to_primary_drops_the_secondary_health_check_unless_one_is_configured() {
        let records = [
            alias("PRIMARY", "dr-lb", Some("hc-2")),
            alias("SECONDARY", "dr-lb", Some("hc-2")),
        ];
        let switch = plan(
            "auth.example.com",
            &records,
            DnsSide::Primary,
            Some(&home()),
            HealthChecks::default(),
        )
        .unwrap();
        assert_eq!(switch.wanted.target_dns, "primary-lb");
        assert_eq!(switch.wanted.target_zone_id, "Z-primary-lb");
        assert_eq!(switch.wanted.health_check_id, None);
        let checks = HealthChecks {
            primary: Some("hc-1"),
            secondary: None,
        };
        let switch = plan("auth.example.com", &records, DnsSide::Primary, Some(&home()), checks).unwrap();
        assert_eq!(switch.wanted.health_check_id.as_deref(), Some("hc-1"));
    }

    #[test]
    fn an_aaaa_twin_moves_with_its_a_record_to_the_secondary_of_its_type() {
        let twin = |mut r: FailoverAlias| {
            r.record_type = "AAAA".into();
            r
        };
        let records = [
            alias("PRIMARY", "primary-lb", Some("hc-1")),
            twin(alias("PRIMARY", "primary-lb", Some("hc-1"))),
            alias("SECONDARY", "dr-lb", Some("hc-2")),
            twin(alias("SECONDARY", "dr-lb", Some("hc-2"))),
        ];
        let switches = plan_all("auth.example.com", &records, DnsSide::Dr, None, HealthChecks::default()).unwrap();
        let moved: Vec<(&str, &str)> = switches
            .iter()
            .map(|s| (s.wanted.record_type.as_str(), s.wanted.target_dns.as_str()))
            .collect();
        assert_eq!(moved, [("A", "dr-lb"), ("AAAA", "dr-lb")]);
        // A twin whose SECONDARY is missing stops the whole switch, named by its type.
        let err = plan_all(
            "auth.example.com",
            &records[..3],
            DnsSide::Dr,
            None,
            HealthChecks::default(),
        )
        .unwrap_err();
        assert!(err.contains("no SECONDARY") && err.contains("AAAA"), "{err}");
    }

    #[test]
    fn missing_records_are_named() {
        let only_secondary = [alias("SECONDARY", "dr-lb", None)];
        let err = plan(
            "auth.example.com",
            &only_secondary,
            DnsSide::Dr,
            None,
            HealthChecks::default(),
        )
        .unwrap_err();
        assert!(err.contains("no PRIMARY failover alias record"), "{err}");
        let only_primary = [alias("PRIMARY", "primary-lb", None)];
        let err = plan(
            "auth.example.com",
            &only_primary,
            DnsSide::Dr,
            None,
            HealthChecks::default(),
        )
        .unwrap_err();
        assert!(err.contains("no SECONDARY"), "{err}");
    }
}
