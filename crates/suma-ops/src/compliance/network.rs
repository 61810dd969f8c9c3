//! Network exposure, judged from security groups: no group admits the whole internet (`0.0.0.0/0`,
//! `::/0`) to the database, the cache or an administration port, and a database admits connections to
//! its port only from the security groups of the region's ECS services (no address range at all). Pure.

use std::collections::{BTreeSet, HashMap};

use super::evaluate::finding;
use super::Finding;
use crate::aws::inventory::{DbInstanceFacts, IngressRule, SecurityGroupFacts};

/// Ports nobody on the internet may reach: PostgreSQL, Redis, SSH, RDP, and the container runtime's.
pub const SENSITIVE_PORTS: &[(i32, &str)] = &[
    (5432, "PostgreSQL"),
    (6379, "Redis"),
    (22, "SSH"),
    (3389, "RDP"),
    (2375, "Docker"),
    (2376, "Docker TLS"),
];

fn internet(cidr: &str) -> bool {
    cidr == "0.0.0.0/0" || cidr == "::/0"
}

/// Whether `rule` admits `port` (TCP, or every protocol).
fn admits(rule: &IngressRule, port: i32) -> bool {
    let protocol = matches!(rule.protocol.as_str(), "-1" | "tcp" | "6");
    protocol && rule.ports.is_none_or(|(from, to)| from <= port && port <= to)
}

/// The findings about one security group.
pub fn security_group(g: &SecurityGroupFacts) -> Vec<Finding> {
    let mut open: Vec<String> = Vec::new();
    for rule in &g.ingress {
        for cidr in rule.cidrs.iter().filter(|c| internet(c)) {
            for (port, what) in SENSITIVE_PORTS {
                if admits(rule, *port) {
                    open.push(format!("{cidr} to {port} ({what})"));
                }
            }
        }
    }
    open.dedup();
    vec![finding(
        "ec2-no-public-sensitive-ports",
        &g.arn,
        Some(g.region.as_str()),
        open.is_empty(),
        if open.is_empty() {
            format!("{} ({}): no sensitive port open to the internet", g.id, g.name)
        } else {
            format!("{} ({}): {}", g.id, g.name, open.join(", "))
        },
        "no internet range admitted to 5432, 6379, 22, 3389, 2375 or 2376",
    )]
}

/// Whether `db` admits connections to its port only from `service_groups` (the groups of the region's
/// ECS services), given every group of the region by id.
pub fn database_reach(
    db: &DbInstanceFacts,
    groups: &HashMap<String, &SecurityGroupFacts>,
    service_groups: &BTreeSet<String>,
) -> Finding {
    let port = db.port.unwrap_or(5432);
    let mut strangers: Vec<String> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for id in &db.security_groups {
        let Some(group) = groups.get(id) else {
            unknown.push(id);
            continue;
        };
        for rule in group.ingress.iter().filter(|r| admits(r, port)) {
            strangers.extend(rule.cidrs.iter().cloned());
            strangers.extend(rule.prefix_lists.iter().cloned());
            strangers.extend(
                rule.groups
                    .iter()
                    .filter(|g| !service_groups.contains(*g))
                    .map(|g| format!("{g} (no ECS service's)")),
            );
        }
    }
    strangers.sort();
    strangers.dedup();
    let observed = match (db.security_groups.is_empty(), strangers.is_empty(), unknown.is_empty()) {
        (true, _, _) => "no VPC security group".to_owned(),
        (false, true, true) => format!("{port} admitted only from the ECS services' groups"),
        (false, true, false) => format!("{port}: groups not found: {}", unknown.join(", ")),
        (false, false, _) => format!("{port} also admitted from {}", strangers.join(", ")),
    };
    finding(
        "rds-reachable-only-from-service",
        &db.arn,
        Some(db.region.as_str()),
        !db.security_groups.is_empty() && strangers.is_empty() && unknown.is_empty(),
        observed,
        "the database port admitted only from the ECS services' security groups",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn rule(protocol: &str, ports: Option<(i32, i32)>, cidrs: &[&str], groups: &[&str]) -> IngressRule {
        IngressRule {
            protocol: protocol.into(),
            ports,
            cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            prefix_lists: Vec::new(),
        }
    }

    fn group(id: &str, ingress: Vec<IngressRule>) -> SecurityGroupFacts {
        SecurityGroupFacts {
            id: id.into(),
            arn: format!("arn:aws:ec2:eu-west-1:123456789012:security-group/{id}"),
            name: "g".into(),
            region: "eu-west-1".into(),
            ingress,
        }
    }

    #[test]
    fn the_internet_reaches_no_sensitive_port() {
        let cases: &[(Vec<IngressRule>, Option<&str>)] = &[
            (vec![rule("tcp", Some((443, 443)), &["0.0.0.0/0", "::/0"], &[])], None),
            (vec![rule("tcp", Some((5432, 5432)), &["10.0.0.0/16"], &[])], None),
            (
                vec![rule("tcp", Some((5432, 5432)), &["0.0.0.0/0"], &[])],
                Some("sg-1 (g): 0.0.0.0/0 to 5432 (PostgreSQL)"),
            ),
            (
                vec![rule("tcp", Some((6000, 7000)), &["::/0"], &[])],
                Some("sg-1 (g): ::/0 to 6379 (Redis)"),
            ),
            (
                vec![rule("-1", None, &["0.0.0.0/0"], &[])],
                Some("sg-1 (g): 0.0.0.0/0 to 5432 (PostgreSQL), 0.0.0.0/0 to 6379 (Redis), 0.0.0.0/0 to 22 (SSH), 0.0.0.0/0 to 3389 (RDP), 0.0.0.0/0 to 2375 (Docker), 0.0.0.0/0 to 2376 (Docker TLS)"),
            ),
            (vec![rule("udp", Some((22, 22)), &["0.0.0.0/0"], &[])], None),
        ];
        for (ingress, failing) in cases {
            let f = &security_group(&group("sg-1", ingress.clone()))[0];
            match failing {
                None => assert_eq!(f.status, Status::Pass, "{ingress:?}: {}", f.observed),
                Some(observed) => assert_eq!((f.status, f.observed.as_str()), (Status::Fail, *observed)),
            }
        }
    }

    #[test]
    fn the_database_admits_only_the_services_groups() {
        let db = |groups: &[&str]| DbInstanceFacts {
            arn: "arn:aws:rds:eu-west-1:123456789012:db:auth".into(),
            region: "eu-west-1".into(),
            port: Some(5432),
            security_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..DbInstanceFacts::default()
        };
        let tight = group("sg-db", vec![rule("tcp", Some((5432, 5432)), &[], &["sg-app"])]);
        let loose = group(
            "sg-db2",
            vec![
                rule("tcp", Some((5432, 5432)), &["10.0.0.0/16"], &["sg-app", "sg-bastion"]),
                rule("tcp", Some((443, 443)), &["0.0.0.0/0"], &[]),
            ],
        );
        let groups: HashMap<String, &SecurityGroupFacts> =
            HashMap::from([("sg-db".to_owned(), &tight), ("sg-db2".to_owned(), &loose)]);
        let services = BTreeSet::from(["sg-app".to_owned()]);
        let verdict = |d: &DbInstanceFacts| {
            let f = database_reach(d, &groups, &services);
            (f.status, f.observed)
        };
        assert_eq!(
            verdict(&db(&["sg-db"])),
            (Status::Pass, "5432 admitted only from the ECS services' groups".into())
        );
        assert_eq!(
            verdict(&db(&["sg-db", "sg-db2"])),
            (
                Status::Fail,
                "5432 also admitted from 10.0.0.0/16, sg-bastion (no ECS service's)".into()
            )
        );
        assert_eq!(verdict(&db(&[])), (Status::Fail, "no VPC security group".into()));
        assert_eq!(
            verdict(&db(&["sg-gone"])),
            (Status::Fail, "5432: groups not found: sg-gone".into())
        );
    }
}
