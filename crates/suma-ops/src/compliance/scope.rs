//! What a compliance run judges: the scope (the account as an auditor sees it, or only what the
//! configuration names), the configured resources `--scope config` keeps to, and the task definitions of a
//! region, which come from three places (services, the latest ACTIVE revision of each family, and the
//! rules that start tasks) and are passed on as each place answers.

use std::collections::BTreeSet;
use std::future::Future;

use futures::channel::mpsc::UnboundedSender;
use futures::{stream, StreamExt as _};

use crate::aws::inventory::{latest_revisions, InventoryApi};
use crate::config::Environment;

/// Which resources a run judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every resource of the checked services in the environment's regions, as auditors see the account.
    Account,
    /// Only the resources the configuration names.
    Config,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Config => "config",
        }
    }
}

/// The configured resources, for `--scope config`.
pub(super) struct Configured {
    pub(super) db: BTreeSet<(String, String)>,
    pub(super) services: BTreeSet<(String, String, String)>,
    pub(super) load_balancers: BTreeSet<String>,
    pub(super) lb_dns: BTreeSet<String>,
    pub(super) zone: String,
    pub(super) record: String,
    pub(super) secrets: BTreeSet<String>,
    /// (region, id) of the replication groups the `redis-auth` secrets name.
    pub(super) cache_groups: BTreeSet<(String, String)>,
}

impl Configured {
    /// Whether the instance `identifier` of `region` is the configured primary or replica.
    pub(super) fn has_db(&self, region: &str, identifier: &str) -> bool {
        self.db.iter().any(|(r, id)| r == region && id == identifier)
    }

    /// Whether `name` in `cluster` of `region` is one of the configured services.
    pub(super) fn has_service(&self, region: &str, cluster: &str, name: &str) -> bool {
        self.services
            .iter()
            .any(|(r, c, n)| r == region && c == cluster && n == name)
    }

    /// Whether `cluster` (a name or an ARN) is one of the configured clusters of `region`.
    fn runs_in_cluster(&self, region: &str, cluster: &str) -> bool {
        let name = cluster.rsplit_once(":cluster/").map_or(cluster, |(_, name)| name);
        self.services.iter().any(|(r, c, _)| r == region && c == name)
    }

    pub(super) fn of(env: &Environment) -> Self {
        let mut db = BTreeSet::from([(env.rds.primary.region.to_string(), env.rds.primary.identifier.clone())]);
        if let Some(r) = &env.rds.replica {
            db.insert((r.region.to_string(), r.identifier.clone()));
        }
        let primary = env.primary_region.to_string();
        let services = BTreeSet::from([
            (primary.clone(), env.ecs.cluster.clone(), env.ecs.service.clone()),
            (primary, env.ecs.cluster.clone(), env.ecs.canary_service.clone()),
            (
                env.dr_region.to_string(),
                env.ecs.dr.cluster.clone(),
                env.ecs.dr.service.clone(),
            ),
        ]);
        Self {
            db,
            services,
            load_balancers: BTreeSet::from([load_balancer_of_listener(env.alb.listener_arn.as_str())]),
            lb_dns: env
                .alb
                .dr_load_balancer_dns
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            zone: env.dns.hosted_zone_id.trim_start_matches("/hostedzone/").to_owned(),
            record: env.dns.record_name.trim_end_matches('.').to_ascii_lowercase(),
            secrets: env.secrets.iter().map(|s| s.id.clone()).collect(),
            cache_groups: env
                .secrets
                .iter()
                .filter_map(|s| s.redis.as_ref())
                .map(|r| (env.primary_region.to_string(), r.replication_group.clone()))
                .collect(),
        }
    }
}

/// The load balancer ARN of a listener ARN.
pub(super) fn load_balancer_of_listener(listener: &str) -> String {
    let lb = listener.replacen(":listener/", ":loadbalancer/", 1);
    match lb.rsplit_once('/') {
        Some((head, _)) => head.to_owned(),
        None => lb,
    }
}

/// Finds the task definitions to judge in a region: what the services run; with the account scope, also
/// the latest ACTIVE revision of every family (one-off tasks and migrations run without a service); and
/// every revision an EventBridge rule starts, which may be older than its family's latest (with `--scope
/// config`, the rules that start tasks in the configured clusters). Each ARN goes to `found` once, as soon
/// as the source that names it answers: describing them is most of a large account's run, and waiting for
/// the slowest source (the rules, read from a busier endpoint) before describing any left the ECS
/// endpoint idle for a third of it. `services` yields the services' task definitions, or nothing when the
/// services could not be read (their own checks report that). A failed read is returned as (what could not
/// be read, why), so the run turns it into `error` findings and goes on.
pub(super) async fn find_task_definitions(
    region: &str,
    inventory: &dyn InventoryApi,
    services: impl Future<Output = Vec<String>>,
    configured: Option<&Configured>,
    found: UnboundedSender<String>,
) -> Vec<(String, String)> {
    let from_services = async { Ok(services.await) };
    let from_families = async {
        if configured.is_some() {
            return Ok(Vec::new());
        }
        match inventory.active_task_definitions().await {
            Ok(active) => Ok(latest_revisions(&active)),
            Err(e) => Err((format!("ACTIVE task definitions in {region}"), e.to_string())),
        }
    };
    let from_rules = async {
        match inventory.scheduled_tasks().await {
            Ok(tasks) => Ok(tasks
                .into_iter()
                .filter(|t| configured.is_none_or(|c| c.runs_in_cluster(region, &t.cluster_arn)))
                .map(|t| t.task_definition)
                .collect()),
            Err(e) => Err((format!("EventBridge rules in {region}"), e.to_string())),
        }
    };
    let answers = stream::select(
        stream::select(stream::once(from_services), stream::once(from_families)),
        stream::once(from_rules),
    );
    futures::pin_mut!(answers);
    let mut sent = BTreeSet::new();
    let mut unread = Vec::new();
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(arns) => {
                for arn in arns {
                    if sent.insert(arn.clone()) {
                        // The receiver lives as long as the run that reads it; a closed one has nothing
                        // left to describe.
                        let _ = found.unbounded_send(arn);
                    }
                }
            }
            Err(unreadable) => unread.push(unreadable),
        }
    }
    unread
}
