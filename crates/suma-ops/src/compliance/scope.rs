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
/// endpoint idle for a quarter of it (a request timeline of the compliance bench). `services` yields the
/// services' task definitions, or nothing when the services could not be read (their own checks report
/// that). A failed read is returned as (what could not be read, why), so the run turns it into `error`
/// findings and goes on.
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures::channel::oneshot;

    use super::*;
    use crate::aws::inventory::*;
    use crate::aws::{AwsError, AwsErrorKind};

    /// Answers the three sources of task definitions; the rules only once `rules_may_answer` fires.
    /// Nothing else is asked of it.
    struct Sources {
        rules_may_answer: Mutex<Option<oneshot::Receiver<()>>>,
        rules_fail: bool,
    }

    fn arn(family: &str, revision: u32) -> String {
        format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:{revision}")
    }

    #[async_trait]
    impl InventoryApi for Sources {
        async fn active_task_definitions(&self) -> Result<Vec<String>, AwsError> {
            Ok(vec![arn("migrate", 1), arn("migrate", 2), arn("web", 7)])
        }
        async fn scheduled_tasks(&self) -> Result<Vec<ScheduledTaskFacts>, AwsError> {
            let wait = self.rules_may_answer.lock().unwrap().take();
            if let Some(wait) = wait {
                let _ = wait.await;
            }
            if self.rules_fail {
                return Err(AwsError::new(
                    "events",
                    "ListRules",
                    "*",
                    AwsErrorKind::AccessDenied,
                    "denied",
                ));
            }
            let task = |cluster: &str, td: String| ScheduledTaskFacts {
                rule: "nightly".into(),
                region: "eu-west-1".into(),
                state: "ENABLED".into(),
                cluster_arn: format!("arn:aws:ecs:eu-west-1:123456789012:cluster/{cluster}"),
                task_definition: td,
            };
            // `c` is the test environment's cluster.
            Ok(vec![
                task("c", arn("report", 3)),
                task("batch", arn("other", 1)),
                task("c", arn("web", 7)),
            ])
        }
        async fn db_instances(&self) -> Result<Vec<DbInstanceFacts>, AwsError> {
            unreachable!("not a source of task definitions")
        }
        async fn ecs_services(&self) -> Result<Vec<EcsServiceFacts>, AwsError> {
            unreachable!("the services come in as a future")
        }
        async fn task_definition(&self, _: &str) -> Result<TaskDefinitionFacts, AwsError> {
            unreachable!("finding describes nothing")
        }
        async fn load_balancers(&self) -> Result<Vec<LoadBalancerFacts>, AwsError> {
            unreachable!()
        }
        async fn failover_records(&self) -> Result<Vec<FailoverRecordFacts>, AwsError> {
            unreachable!()
        }
        async fn secrets(&self) -> Result<Vec<SecretFacts>, AwsError> {
            unreachable!()
        }
        async fn db_snapshots(&self) -> Result<Vec<DbSnapshotFacts>, AwsError> {
            unreachable!()
        }
        async fn ecr_repositories(&self) -> Result<Vec<EcrRepositoryFacts>, AwsError> {
            unreachable!()
        }
        async fn certificates(&self) -> Result<Vec<CertificateFacts>, AwsError> {
            unreachable!()
        }
        async fn trails(&self) -> Result<Vec<TrailFacts>, AwsError> {
            unreachable!()
        }
        async fn security_groups(&self) -> Result<Vec<SecurityGroupFacts>, AwsError> {
            unreachable!()
        }
        async fn ecs_scalable_targets(&self) -> Result<Vec<ScalableTargetFacts>, AwsError> {
            unreachable!()
        }
        async fn cache_groups(&self) -> Result<Vec<CacheGroupFacts>, AwsError> {
            unreachable!()
        }
        async fn kms_keys(&self) -> Result<Vec<KmsKeyFacts>, AwsError> {
            unreachable!()
        }
        async fn kms_key(&self, _: &str) -> Result<KmsKeyFacts, AwsError> {
            unreachable!()
        }
        async fn web_acl_for(&self, _: &str) -> Result<Option<WebAclFacts>, AwsError> {
            unreachable!()
        }
    }

    /// Finds with `configured`, the rules held back until what the services and the families name has
    /// arrived (which a finder that waits for every source before sending would never let happen).
    /// Returns the ARNs in the order they were sent and the unreadable sources.
    async fn find(configured: Option<&Configured>, rules_fail: bool) -> (Vec<String>, Vec<(String, String)>) {
        let (release_rules, rules_may_answer) = oneshot::channel();
        let inventory = Sources {
            rules_may_answer: Mutex::new(Some(rules_may_answer)),
            rules_fail,
        };
        // The services name two; the families add `migrate:2` (their `web:7` is a service's too).
        let early = if configured.is_some() { 2 } else { 3 };
        let (found, mut arrived) = futures::channel::mpsc::unbounded();
        let services = async { vec![arn("web", 7), arn("web", 6)] };
        let finding = find_task_definitions("eu-west-1", &inventory, services, configured, found);
        let watching = async move {
            let mut seen = Vec::new();
            while seen.len() < early {
                seen.push(arrived.next().await.expect("the early sources' ARNs arrive"));
            }
            release_rules.send(()).expect("the rules wait");
            seen.extend(arrived.collect::<Vec<_>>().await);
            seen
        };
        let both = async { tokio::join!(finding, watching) };
        let (unread, seen) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the services' and families' task definitions were passed on before the rules answered");
        (seen, unread)
    }

    fn sorted(mut arns: Vec<String>) -> Vec<String> {
        arns.sort();
        arns
    }

    #[tokio::test]
    async fn task_definitions_are_passed_on_as_each_source_answers_each_once() {
        let (seen, unread) = find(None, false).await;
        assert!(unread.is_empty(), "{unread:?}");
        // Services and families before the rules; `web:7` (a service's, the family's latest and a rule's)
        // once; `migrate:1` is not its family's latest.
        assert_eq!(
            sorted(seen[..3].to_vec()),
            sorted(vec![arn("web", 7), arn("web", 6), arn("migrate", 2)])
        );
        assert_eq!(
            sorted(seen),
            sorted(vec![
                arn("web", 7),
                arn("web", 6),
                arn("migrate", 2),
                arn("report", 3),
                arn("other", 1),
            ])
        );
    }

    #[tokio::test]
    async fn config_scope_skips_the_families_and_other_clusters_rules() {
        let configured = Configured::of(&suma_testkit::environment(""));
        let (seen, unread) = find(Some(&configured), false).await;
        assert!(unread.is_empty(), "{unread:?}");
        assert_eq!(
            sorted(seen),
            sorted(vec![arn("web", 7), arn("web", 6), arn("report", 3)])
        );
    }

    #[tokio::test]
    async fn an_unreadable_source_is_named_and_the_others_still_arrive() {
        let (seen, unread) = find(None, true).await;
        assert_eq!(unread.len(), 1, "{unread:?}");
        assert_eq!(unread[0].0, "EventBridge rules in eu-west-1");
        assert!(unread[0].1.contains("denied"), "{unread:?}");
        assert_eq!(
            sorted(seen),
            sorted(vec![arn("web", 7), arn("web", 6), arn("migrate", 2)])
        );
    }

    #[test]
    fn a_listener_arn_names_its_load_balancer() {
        assert_eq!(
            load_balancer_of_listener(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/auth-production/50dc6c495c0c9188/f2f7dc8efc522ab2"
            ),
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/auth-production/50dc6c495c0c9188"
        );
    }
}
