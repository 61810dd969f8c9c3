//! Multi-AZ failovers as RDS performs them.
//!
//! moto answers `RebootDBInstance` with `ForceFailover` at once and changes nothing. RDS reboots the
//! instance (`rebooting` for a while, refusing another reboot meanwhile) and brings it back in the
//! standby's availability zone. The overlay remembers each failover it passes on and rewrites the
//! instance in RDS answers: `rebooting` for the failover's duration, then `available` in the other zone,
//! for good. A tool that returns at the first `available` is caught: the zone has not changed yet.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::redis_auth::Refused;

/// The failovers the overlay passed on, by (region, instance).
#[derive(Debug)]
pub struct Failovers {
    duration: Duration,
    started: Mutex<BTreeMap<(String, String), Vec<Instant>>>,
}

/// What the failovers of one instance add up to at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    in_progress: bool,
    completed: usize,
}

impl Failovers {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            started: Mutex::new(BTreeMap::new()),
        }
    }

    fn view(&self, region: &str, instance: &str, now: Instant) -> Option<View> {
        let started = self.started.lock().expect("failovers");
        let times = started.get(&(region.to_owned(), instance.to_owned()))?;
        let completed = times
            .iter()
            .filter(|t| now.duration_since(**t) >= self.duration)
            .count();
        Some(View {
            in_progress: completed < times.len(),
            completed,
        })
    }

    /// Before a request goes to moto: a failover of an instance already rebooting is refused, as RDS
    /// refuses it.
    pub fn check(&self, region: &str, params: &BTreeMap<String, String>) -> Result<(), Refused> {
        let Some(instance) = failover_of(params) else {
            return Ok(());
        };
        match self.view(region, instance, Instant::now()) {
            Some(view) if view.in_progress => Err(Refused {
                code: "InvalidDBInstanceState",
                message: format!("Instance {instance} is not in available state."),
            }),
            _ => Ok(()),
        }
    }

    /// After moto accepted a request: a failover starts now.
    pub fn record(&self, region: &str, params: &BTreeMap<String, String>) {
        if let Some(instance) = failover_of(params) {
            self.started
                .lock()
                .expect("failovers")
                .entry((region.to_owned(), instance.to_owned()))
                .or_default()
                .push(Instant::now());
        }
    }

    /// An RDS answer (XML) with each instance that failed over shown as RDS shows it; `None` when
    /// nothing changes.
    pub fn rewrite(&self, region: &str, body: &str) -> Option<String> {
        if self.started.lock().expect("failovers").is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        let mut changed = false;
        while let Some(open) = rest.find("<DBInstance>") {
            let Some(len) = rest[open..].find("</DBInstance>") else {
                break;
            };
            let block = &rest[open..open + len];
            out.push_str(&rest[..open]);
            let view = element(block, "DBInstanceIdentifier").and_then(|id| self.view(region, id, now));
            match view {
                Some(view) => {
                    out.push_str(&shown(block, view));
                    changed = true;
                }
                None => out.push_str(block),
            }
            rest = &rest[open + len..];
        }
        out.push_str(rest);
        changed.then_some(out)
    }
}

/// The instance a `RebootDBInstance` with `ForceFailover=true` names.
fn failover_of(params: &BTreeMap<String, String>) -> Option<&str> {
    (params.get("Action").map(String::as_str) == Some("RebootDBInstance")
        && params.get("ForceFailover").map(String::as_str) == Some("true"))
    .then(|| params.get("DBInstanceIdentifier").map(String::as_str))
    .flatten()
}

fn element<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = block.find(&open)? + open.len();
    let len = block[start..].find("</")?;
    Some(&block[start..start + len])
}

fn replace_element(block: &str, name: &str, value: &str) -> String {
    match element(block, name) {
        Some(old) => block.replacen(
            &format!("<{name}>{old}</{name}>"),
            &format!("<{name}>{value}</{name}>"),
            1,
        ),
        None => block.to_owned(),
    }
}

/// The standby's zone of an instance in `zone`: the region's `a` and `b` zones stand in for each other.
fn standby_zone(zone: &str) -> String {
    match zone.strip_suffix('a') {
        Some(region) => format!("{region}b"),
        None => format!("{}a", &zone[..zone.len().saturating_sub(1)]),
    }
}

/// One `<DBInstance>` block as RDS shows it after `view`'s failovers.
fn shown(block: &str, view: View) -> String {
    let mut block = block.to_owned();
    if view.in_progress {
        block = replace_element(&block, "DBInstanceStatus", "rebooting");
    }
    if view.completed % 2 == 1 {
        if let Some(zone) = element(&block, "AvailabilityZone").map(str::to_owned) {
            block = replace_element(&block, "AvailabilityZone", &standby_zone(&zone));
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reboot(instance: &str, failover: bool) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("Action".to_owned(), "RebootDBInstance".to_owned()),
            ("DBInstanceIdentifier".to_owned(), instance.to_owned()),
            ("ForceFailover".to_owned(), failover.to_string()),
        ])
    }

    const ANSWER: &str = "<DescribeDBInstancesResult><DBInstances>\
        <DBInstance><DBInstanceIdentifier>db-a</DBInstanceIdentifier><DBInstanceStatus>available</DBInstanceStatus>\
        <DBSubnetGroup><Subnets><Subnet><SubnetAvailabilityZone><Name>eu-west-1c</Name></SubnetAvailabilityZone></Subnet></Subnets></DBSubnetGroup>\
        <AvailabilityZone>eu-west-1a</AvailabilityZone></DBInstance>\
        <DBInstance><DBInstanceIdentifier>db-b</DBInstanceIdentifier><DBInstanceStatus>available</DBInstanceStatus>\
        <AvailabilityZone>eu-west-1a</AvailabilityZone></DBInstance>\
        </DBInstances></DescribeDBInstancesResult>";

    #[test]
    fn a_failover_reboots_then_moves_the_instance_to_the_other_zone() {
        let failovers = Failovers::new(Duration::from_millis(200));
        assert_eq!(failovers.rewrite("eu-west-1", ANSWER), None, "nothing failed over yet");
        failovers.record("eu-west-1", &reboot("db-a", false));
        assert_eq!(
            failovers.rewrite("eu-west-1", ANSWER),
            None,
            "a plain reboot is not a failover"
        );

        failovers.record("eu-west-1", &reboot("db-a", true));
        let during = failovers.rewrite("eu-west-1", ANSWER).unwrap();
        assert_eq!(
            during.matches("<DBInstanceStatus>rebooting</DBInstanceStatus>").count(),
            1
        );
        assert_eq!(
            during
                .matches("<AvailabilityZone>eu-west-1a</AvailabilityZone>")
                .count(),
            2
        );
        let refused = failovers.check("eu-west-1", &reboot("db-a", true)).unwrap_err();
        assert_eq!(refused.code, "InvalidDBInstanceState");
        assert!(failovers.check("eu-west-1", &reboot("db-b", true)).is_ok());
        assert!(
            failovers.check("eu-central-1", &reboot("db-a", true)).is_ok(),
            "another region's"
        );
        assert_eq!(failovers.rewrite("eu-central-1", ANSWER), None);

        std::thread::sleep(Duration::from_millis(250));
        let after = failovers.rewrite("eu-west-1", ANSWER).unwrap();
        assert!(!after.contains("rebooting"));
        assert!(after.contains("<DBInstanceIdentifier>db-a</DBInstanceIdentifier><DBInstanceStatus>available"));
        assert_eq!(
            after.matches("<AvailabilityZone>eu-west-1b</AvailabilityZone>").count(),
            1
        );
        assert!(after.contains("<Name>eu-west-1c</Name>"), "subnet zones are left alone");

        // A second failover brings it back.
        failovers.record("eu-west-1", &reboot("db-a", true));
        std::thread::sleep(Duration::from_millis(250));
        let back = failovers.rewrite("eu-west-1", ANSWER).unwrap();
        assert_eq!(
            back.matches("<AvailabilityZone>eu-west-1a</AvailabilityZone>").count(),
            2
        );
    }

    #[test]
    fn standby_zones_pair_a_and_b() {
        assert_eq!(standby_zone("eu-west-1a"), "eu-west-1b");
        assert_eq!(standby_zone("eu-west-1b"), "eu-west-1a");
        assert_eq!(standby_zone("eu-west-1c"), "eu-west-1a");
    }
}
