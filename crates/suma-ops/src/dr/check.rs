//! `suma dr check`: the readiness report. [`gather`] reads what the check needs through the AWS traits and
//! the replica-lag source, collecting failures as values; [`evaluate`] (pure) turns that into pass / warn /
//! fail items, each with the measured value and its target.

use std::time::Duration;

use serde::Serialize;

use super::image_parity::{self, ImageDigests, Placement, ServiceImage};
use super::lag::ReplicaLag;
use super::rto::RtoEstimate;
use crate::aws::ecs::{ContainerImage, TaskDefinition};
use crate::aws::rds::DbInstance;
use crate::aws::route53::DnsRecord;
use crate::aws::secrets::{SecretMetadata, SecretReplica};
use crate::aws::AwsApis;
use crate::config::Environment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckItem {
    /// `ecs`, `rds`, `dns`, `secrets`, `rto`.
    pub area: &'static str,
    pub check: String,
    pub status: CheckStatus,
    /// What was measured.
    pub value: String,
    /// What it must be.
    pub target: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub environment: String,
    pub status: CheckStatus,
    pub items: Vec<CheckItem>,
    pub estimated_rto_secs: u64,
    /// Where the estimate comes from: past failovers' measured steps, or the documented defaults.
    pub rto_basis: String,
    pub rto_secs: u64,
    pub rpo_secs: u64,
}

impl Readiness {
    pub fn failed(&self) -> bool {
        self.status == CheckStatus::Fail
    }
}

/// A service and its task definition, as the check compares them.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub desired: i32,
    pub running: i32,
    pub task_definition: TaskDefinition,
    /// What its application container runs, by digest.
    pub digests: ImageDigests,
}

/// A managed secret: its id, its primary-region metadata, and whether the DR region has its replica.
pub type SecretSeen = (String, Result<SecretMetadata, String>, Result<(), String>);

/// Everything the check looked at; each read that failed keeps its error text.
#[derive(Debug, Clone)]
pub struct Observed {
    pub primary_service: Result<ServiceView, String>,
    pub dr_service: Result<ServiceView, String>,
    pub primary_db: Result<DbInstance, String>,
    /// `None` when the configuration names no replica.
    pub replica: Option<Result<DbInstance, String>>,
    pub lag_source: &'static str,
    pub lag: Result<Option<f64>, String>,
    pub dns: Result<Vec<DnsRecord>, String>,
    /// Each managed secret: its primary-region metadata, and whether the DR region has its replica.
    pub secrets: Vec<SecretSeen>,
}

async fn service(aws: &dyn AwsApis, placement: Placement<'_>) -> Result<ServiceView, String> {
    let Placement {
        region,
        cluster,
        service: name,
        ..
    } = placement;
    let ecs = aws.ecs(region);
    let found = ecs
        .describe_services(cluster, &[name.to_owned()])
        .await
        .map_err(|e| e.to_string())?;
    let svc = found
        .into_iter()
        .next()
        .ok_or_else(|| format!("service `{name}` not found in `{cluster}` ({region})"))?;
    let td = ecs
        .describe_task_definition(&svc.task_definition)
        .await
        .map_err(|e| e.to_string())?;
    let image = app_image(&td.containers, placement.container);
    let digests = image_parity::read(aws, &placement, image).await;
    Ok(ServiceView {
        desired: svc.desired,
        running: svc.running,
        task_definition: td,
        digests,
    })
}

/// Reads everything concurrently; never fails as a whole.
pub async fn gather(env: &Environment, aws: &dyn AwsApis, lag: &dyn ReplicaLag) -> Observed {
    let session_regions = [&env.primary_region, &env.dr_region];
    let placement = |region, cluster, service| Placement {
        region,
        cluster,
        service,
        container: &env.ecs.container,
        session_regions: &session_regions,
    };
    let primary_service = service(aws, placement(&env.primary_region, &env.ecs.cluster, &env.ecs.service));
    let dr_service = service(aws, placement(&env.dr_region, &env.ecs.dr.cluster, &env.ecs.dr.service));
    let primary_db = async {
        aws.rds(&env.rds.primary.region)
            .describe_instance(&env.rds.primary.identifier)
            .await
            .map_err(|e| e.to_string())
    };
    let replica = async {
        match &env.rds.replica {
            None => None,
            Some(r) => Some(
                aws.rds(&r.region)
                    .describe_instance(&r.identifier)
                    .await
                    .map_err(|e| e.to_string()),
            ),
        }
    };
    let lag_value = async { lag.lag_seconds().await.map_err(|e| e.to_string()) };
    let dns = async {
        aws.route53()
            .records(&env.dns.hosted_zone_id, &env.dns.record_name)
            .await
            .map_err(|e| e.to_string())
    };
    let secrets = futures::future::join_all(env.secrets.iter().map(|s| async {
        let primary = aws
            .secrets(&env.primary_region)
            .describe(&s.id)
            .await
            .map_err(|e| e.to_string());
        let replica = aws
            .secrets(&env.dr_region)
            .describe(&s.id)
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        (s.id.clone(), primary, replica)
    }));
    let (primary_service, dr_service, primary_db, replica, lag_value, dns, secrets) = tokio::join!(
        primary_service,
        dr_service,
        primary_db,
        replica,
        lag_value,
        dns,
        secrets
    );
    Observed {
        primary_service,
        dr_service,
        primary_db,
        replica,
        lag_source: lag.source(),
        lag: lag_value,
        dns,
        secrets,
    }
}

fn item(
    area: &'static str,
    check: &str,
    status: CheckStatus,
    value: impl Into<String>,
    target: impl Into<String>,
) -> CheckItem {
    CheckItem {
        area,
        check: check.to_owned(),
        status,
        value: value.into(),
        target: target.into(),
    }
}

/// The image of the application container, else of the first container.
fn app_image<'a>(containers: &'a [ContainerImage], container: &str) -> Option<&'a str> {
    containers
        .iter()
        .find(|c| c.name == container)
        .or_else(|| containers.first())
        .map(|c| c.image.as_str())
}

/// A secret's replica by Secrets Manager's replication status: in sync passes; a replication still
/// running warns (the DR value may be behind); a failed one fails with Secrets Manager's reason, since the
/// DR region would start on a value that is not the primary's (or none).
pub fn replica_status(replica: &SecretReplica) -> (CheckStatus, String) {
    let region = &replica.region;
    match replica.status.as_str() {
        "InSync" => (CheckStatus::Pass, format!("replicated to {region}, in sync")),
        "InProgress" => (CheckStatus::Warn, format!("replication to {region} in progress")),
        "Failed" => (
            CheckStatus::Fail,
            format!(
                "replication to {region} failed: {}",
                replica.message.as_deref().unwrap_or("no reason given")
            ),
        ),
        other => (CheckStatus::Warn, format!("replication to {region} is `{other}`")),
    }
}

/// How the replica lag compares with the RPO: over it fails, over half of it warns; no value or a
/// negative one (RDS reports -1 when replication is broken) means not replicating.
pub fn lag_status(lag: Option<f64>, rpo: Duration) -> (CheckStatus, String) {
    let rpo = rpo.as_secs_f64();
    match lag {
        None => (CheckStatus::Fail, "no value: not replicating".to_owned()),
        Some(l) if l < 0.0 => (CheckStatus::Fail, format!("{l}: not replicating")),
        Some(l) if l > rpo => (CheckStatus::Fail, format!("{l:.1}s")),
        Some(l) if l > rpo / 2.0 => (CheckStatus::Warn, format!("{l:.1}s")),
        Some(l) => (CheckStatus::Pass, format!("{l:.1}s")),
    }
}

/// Whether `replica.replica_source` (an identifier or an ARN) names `primary`.
pub fn replicates_from(replica: &DbInstance, primary: &str, primary_arn: Option<&str>) -> bool {
    replica.replica_source.as_deref().is_some_and(|source| {
        source == primary || primary_arn.is_some_and(|arn| source == arn) || source.ends_with(&format!(":db:{primary}"))
    })
}

/// Whether the count a failover scales DR to carries the primary's running tasks (times `ratio`), and
/// what was needed. Without the primary's count (unreadable), only a count of 0 fails.
pub fn capacity_status(failover_count: u32, primary_running: Option<i32>, ratio: f64) -> (CheckStatus, String) {
    match primary_running {
        Some(running) => {
            let needed = (f64::from(running.max(0)) * ratio).ceil() as u32;
            let status = if failover_count >= needed.max(1) {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            };
            (
                status,
                format!("{needed} task(s): {running} running on the primary x {ratio}"),
            )
        }
        None if failover_count == 0 => (CheckStatus::Fail, "at least 1 task".to_owned()),
        None => (CheckStatus::Warn, "the primary's running count (unreadable)".to_owned()),
    }
}

/// The report's items, in a fixed order.
pub fn evaluate(environment: &str, env: &Environment, seen: &Observed, estimated_rto: &RtoEstimate) -> Readiness {
    use CheckStatus::{Fail, Pass, Warn};
    let mut items = Vec::new();
    let container = &env.ecs.container;

    // ECS.
    match (&seen.dr_service, &seen.primary_service) {
        (Err(e), _) => items.push(item(
            "ecs",
            "DR service exists",
            Fail,
            e.clone(),
            format!(
                "`{}` in `{}` ({})",
                env.ecs.dr.service, env.ecs.dr.cluster, env.dr_region
            ),
        )),
        (Ok(dr), primary) => {
            items.push(item(
                "ecs",
                "DR service exists",
                Pass,
                format!("{} desired, {} running", dr.desired, dr.running),
                format!(
                    "`{}` in `{}` ({})",
                    env.ecs.dr.service, env.ecs.dr.cluster, env.dr_region
                ),
            ));
            let dr_image = app_image(&dr.task_definition.containers, container).unwrap_or("-");
            match primary {
                Ok(p) => {
                    let primary_image = app_image(&p.task_definition.containers, container).unwrap_or("-");
                    let (status, value, target) = image_parity::judge(
                        &ServiceImage {
                            family: &dr.task_definition.family,
                            image: dr_image,
                            digests: &dr.digests,
                        },
                        &ServiceImage {
                            family: &p.task_definition.family,
                            image: primary_image,
                            digests: &p.digests,
                        },
                    );
                    items.push(item("ecs", "DR runs the primary's image", status, value, target));
                }
                Err(e) => items.push(item(
                    "ecs",
                    "DR runs the primary's image",
                    Warn,
                    format!("{dr_image} (primary unreadable: {e})"),
                    "the primary's image",
                )),
            }
            // What a failover scales DR to, against what the primary runs now (autoscaling may have
            // grown it beyond the configured count).
            let (status, needed) = capacity_status(
                env.ecs.desired_count,
                primary.as_ref().ok().map(|p| p.running),
                env.dr.capacity_ratio,
            );
            items.push(item(
                "ecs",
                "DR capacity reaches production",
                status,
                format!(
                    "standby {} -> {} task(s) on failover",
                    env.ecs.dr.standby_count, env.ecs.desired_count
                ),
                needed,
            ));
        }
    }

    // RDS.
    match &seen.replica {
        None => items.push(item(
            "rds",
            "cross-region replica configured",
            Fail,
            "none",
            "`rds.replica` in the DR region",
        )),
        Some(Err(e)) => items.push(item(
            "rds",
            "replica exists",
            Fail,
            e.clone(),
            "an available read replica",
        )),
        Some(Ok(replica)) => {
            let in_dr = env.rds.replica.as_ref().is_some_and(|r| r.region == env.dr_region);
            items.push(item(
                "rds",
                "replica exists in the DR region",
                if in_dr { Pass } else { Fail },
                format!("`{}`", replica.identifier),
                format!("in {}", env.dr_region),
            ));
            items.push(item(
                "rds",
                "replica is available",
                if replica.status == "available" { Pass } else { Fail },
                replica.status.clone(),
                "available",
            ));
            let primary_arn = seen.primary_db.as_ref().ok().map(|p| p.arn.as_str());
            let from_primary = replicates_from(replica, &env.rds.primary.identifier, primary_arn);
            items.push(item(
                "rds",
                "replicates from the primary",
                if from_primary { Pass } else { Fail },
                replica
                    .replica_source
                    .clone()
                    .unwrap_or_else(|| "not a replica".to_owned()),
                format!("`{}`", env.rds.primary.identifier),
            ));
            let (status, value) = match &seen.lag {
                Ok(lag) => lag_status(*lag, env.dr.rpo),
                Err(e) => (Fail, e.clone()),
            };
            items.push(item(
                "rds",
                &format!("replica lag ({})", seen.lag_source),
                status,
                value,
                format!("<= {} (RPO)", humantime::format_duration(env.dr.rpo)),
            ));
        }
    }

    // Route 53.
    match &seen.dns {
        Err(e) => items.push(item(
            "dns",
            "failover records",
            Fail,
            e.clone(),
            "PRIMARY and SECONDARY",
        )),
        Ok(records) => {
            let primary = records.iter().find(|r| r.failover.as_deref() == Some("PRIMARY"));
            let secondary = records.iter().find(|r| r.failover.as_deref() == Some("SECONDARY"));
            let kinds: Vec<&str> = records.iter().filter_map(|r| r.failover.as_deref()).collect();
            items.push(item(
                "dns",
                "failover records",
                if primary.is_some() && secondary.is_some() {
                    Pass
                } else {
                    Fail
                },
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(", ")
                },
                format!("PRIMARY and SECONDARY for `{}`", env.dns.record_name),
            ));
            let check_id = primary.and_then(|p| p.health_check_id.clone());
            items.push(item(
                "dns",
                "primary has a health check",
                if check_id.is_some() { Pass } else { Fail },
                check_id.unwrap_or_else(|| "none".to_owned()),
                "a health check id",
            ));
            let ttl = records.iter().filter_map(|r| r.ttl).max();
            items.push(item(
                "dns",
                "TTL",
                if ttl.is_none_or(|t| t <= 60) { Pass } else { Fail },
                ttl.map_or("alias (the target's)".to_owned(), |t| format!("{t}s")),
                "<= 60s",
            ));
            let dr_lb = env
                .alb
                .dr_load_balancer_dns
                .as_deref()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
            let points = |r: Option<&DnsRecord>| {
                r.is_some_and(|r| dr_lb.as_ref().is_some_and(|lb| r.targets.iter().any(|t| t == lb)))
            };
            items.push(item(
                "dns",
                "secondary points at the DR load balancer",
                if points(secondary) { Pass } else { Fail },
                secondary.map_or("no SECONDARY".to_owned(), |s| s.targets.join(", ")),
                dr_lb
                    .clone()
                    .unwrap_or_else(|| "`alb.dr_load_balancer_dns` (not configured)".to_owned()),
            ));
            if points(primary) {
                items.push(item(
                    "dns",
                    "traffic served by",
                    Warn,
                    "the DR region (failed over)",
                    "the primary region",
                ));
            }
        }
    }

    // Secrets.
    for (id, primary, replica) in &seen.secrets {
        let dr = env.dr_region.as_str();
        let (status, value) = match (primary, replica) {
            (Err(e), _) => (Fail, e.clone()),
            (Ok(meta), Ok(())) => match meta.replicas.iter().find(|r| r.region == dr) {
                Some(r) => replica_status(r),
                None => (Warn, format!("present in {dr}, not listed as a replica")),
            },
            (Ok(_), Err(e)) => (Fail, format!("missing in {dr}: {e}")),
        };
        items.push(item(
            "secrets",
            &format!("`{id}`"),
            status,
            value,
            format!("replicated to {dr}"),
        ));
    }

    // RTO.
    let estimated = estimated_rto.total.as_secs();
    let rto = env.dr.rto.as_secs();
    items.push(item(
        "rto",
        "estimated failover time",
        if estimated > rto {
            Fail
        } else if estimated * 10 > rto * 8 {
            Warn
        } else {
            Pass
        },
        format!(
            "{} ({})",
            humantime::format_duration(Duration::from_secs(estimated)),
            estimated_rto.basis()
        ),
        format!("<= {} (RTO)", humantime::format_duration(env.dr.rto)),
    ));

    let status = items.iter().map(|i| i.status).max().unwrap_or(Pass);
    Readiness {
        environment: environment.to_owned(),
        status,
        items,
        estimated_rto_secs: estimated,
        rto_basis: estimated_rto.basis(),
        rto_secs: rto,
        rpo_secs: env.dr.rpo.as_secs(),
    }
}
