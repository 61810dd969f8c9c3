//! One compliance run: reads the inventory the selected checks need, concurrently (regions, services,
//! task definitions, Datadog and the live service at once, each listing paginated and its fan-out
//! bounded), evaluates, narrows to the configured resources with `--scope config`, and applies the
//! suppressions. A failed read turns the checks it feeds into `error` findings; the run goes on.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::{FutureExt as _, StreamExt as _};

use super::evaluate::{self, error_finding, EvalContext};
use super::keys::{self, KeyDirectory};
use super::live::{self, ServiceProbe};
use super::scope::Configured;
pub use super::scope::Scope;
use super::{apply_suppressions, fails, Check, ComplianceReport, Finding, Summary, Suppression, CHECKS};
use super::{cache, ecs, network, posture, snapshots, waf};
use crate::aws::inventory::{InventoryApi, KmsKeyFacts, SecurityGroupFacts};
use crate::config::Environment;
use crate::metrics::datadog::MonitorSummary;
use crate::report::Reporter;

/// Web ACLs read at once (one per load balancer).
const WEB_ACL_CONCURRENCY: usize = 8;

/// Reads the monitors of an environment (Datadog in production, a fake in tests).
#[async_trait]
pub trait MonitorSource: Send + Sync {
    async fn monitors(&self, tags: &[String]) -> Result<Vec<MonitorSummary>, String>;
}

#[async_trait]
impl MonitorSource for crate::metrics::datadog::Datadog {
    async fn monitors(&self, tags: &[String]) -> Result<Vec<MonitorSummary>, String> {
        crate::metrics::datadog::Datadog::monitors(self, tags)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Where a run reads from.
pub struct Sources {
    /// The inventory of each region of the environment; the first also answers for Route 53.
    pub inventories: Vec<(String, Arc<dyn InventoryApi>)>,
    /// Datadog, or why it cannot be used.
    pub monitors: Result<Arc<dyn MonitorSource>, String>,
    pub probe: Arc<dyn ServiceProbe>,
}

/// What to run and how to judge it.
pub struct RunPlan<'a> {
    pub environment: &'a str,
    pub env: &'a Environment,
    pub scope: Scope,
    pub checks: Vec<&'static Check>,
    /// The live service's base URL, when known.
    pub url: Option<String>,
    pub suppressions: Vec<Suppression>,
    pub fail_on: super::Severity,
    pub context: EvalContext,
}

pub(super) fn wants(checks: &[&'static Check], service: &str) -> bool {
    checks.iter().any(|c| c.service == service)
}

/// `error` findings for every selected check of `service`, about what could not be read.
pub(super) fn errors(
    checks: &[&'static Check],
    service: &str,
    resource: &str,
    region: Option<&str>,
    error: &str,
) -> Vec<Finding> {
    errors_of(checks, |c| c.service == service, resource, region, error)
}

/// `error` findings for every selected check `which` picks, about what could not be read.
pub(super) fn errors_of(
    checks: &[&'static Check],
    which: impl Fn(&Check) -> bool,
    resource: &str,
    region: Option<&str>,
    error: &str,
) -> Vec<Finding> {
    checks
        .iter()
        .filter(|c| which(c))
        .map(|c| error_finding(c.id, resource, region, error))
        .collect()
}

/// The RDS checks that judge snapshots rather than instances.
fn snapshot_check(c: &Check) -> bool {
    c.id.starts_with("rds-snapshot-")
}

/// Everything one region contributes.
async fn region_findings(
    region: &str,
    inventory: &dyn InventoryApi,
    plan: &RunPlan<'_>,
    configured: Option<&Configured>,
    reporter: &dyn Reporter,
) -> Vec<Finding> {
    let checks = &plan.checks;
    let ctx = &plan.context;
    // The region's KMS keys, listed once: the key checks judge them, and the RDS and secrets checks ask
    // them who manages the key a resource names.
    let needs_keys = wants(checks, "kms") || checks.iter().any(|c| KEY_OWNER_CHECKS.contains(&c.id));
    let listed_keys = async move {
        if needs_keys {
            inventory.kms_keys().await.map_err(|e| e.to_string())
        } else {
            Ok(Vec::new())
        }
    }
    .shared();
    // Databases and services are read once: their own checks and the network checks use them.
    let db_instances = async move { inventory.db_instances().await }.shared();
    let ecs_services = async move { inventory.ecs_services().await }.shared();
    let network = async {
        let reach = checks.iter().any(|c| c.id == "rds-reachable-only-from-service");
        if !wants(checks, "ec2") && !reach {
            return Vec::new();
        }
        let (groups, dbs, services) =
            tokio::join!(inventory.security_groups(), db_instances.clone(), ecs_services.clone());
        let groups = match groups {
            Ok(groups) => groups,
            Err(e) => {
                return errors_of(
                    checks,
                    |c| c.service == "ec2" || c.id == "rds-reachable-only-from-service",
                    &format!("security groups in {region}"),
                    Some(region),
                    &e.to_string(),
                )
            }
        };
        let (Ok(dbs), Ok(services)) = (dbs, services) else {
            // Their own checks already report the failed read; judge every group on its own.
            return groups.iter().flat_map(network::security_group).collect();
        };
        let dbs: Vec<_> = dbs
            .iter()
            .filter(|d| configured.is_none_or(|c| c.has_db(region, &d.identifier)))
            .collect();
        let services: Vec<_> = services
            .iter()
            .filter(|s| configured.is_none_or(|c| c.has_service(region, &s.cluster, &s.name)))
            .collect();
        let service_groups: BTreeSet<String> = services
            .iter()
            .flat_map(|s| s.security_groups.iter().cloned())
            .collect();
        // With `--scope config`, the groups the configured databases and services use.
        let used: BTreeSet<&String> = dbs
            .iter()
            .flat_map(|d| &d.security_groups)
            .chain(&service_groups)
            .collect();
        let by_id: HashMap<String, &SecurityGroupFacts> = groups.iter().map(|g| (g.id.clone(), g)).collect();
        let mut out: Vec<Finding> = groups
            .iter()
            .filter(|g| configured.is_none() || used.contains(&g.id))
            .flat_map(network::security_group)
            .collect();
        out.extend(dbs.iter().map(|d| network::database_reach(d, &by_id, &service_groups)));
        out
    };
    // With `--scope config`, the keys judged are those the configuration's database and secrets use.
    let keys_by_config = configured.is_some() && wants(checks, "kms");
    let rds = async {
        if !wants(checks, "rds") && !keys_by_config {
            return (Vec::new(), Vec::new());
        }
        match db_instances.clone().await {
            Ok(dbs) => {
                let dbs: Vec<_> = dbs
                    .into_iter()
                    .filter(|d| configured.is_none_or(|c| c.has_db(region, &d.identifier)))
                    .collect();
                let references: Vec<String> = dbs
                    .iter()
                    .filter(|d| d.storage_encrypted)
                    .filter_map(|d| d.kms_key_id.clone())
                    .collect();
                let ctx = with_keys(ctx, inventory, listed_keys.clone().await, needs_keys, &references).await;
                let findings = dbs.iter().flat_map(|d| evaluate::db_instance(d, &ctx)).collect();
                (findings, references)
            }
            Err(e) => (
                errors_of(
                    checks,
                    |c| c.service == "rds" && !snapshot_check(c),
                    &format!("RDS instances in {region}"),
                    Some(region),
                    &e.to_string(),
                ),
                Vec::new(),
            ),
        }
    };
    let ecs = ecs::findings(
        region,
        inventory,
        checks,
        ctx,
        configured,
        ecs_services.clone(),
        reporter,
    );
    let alb = async {
        if !wants(checks, "alb") {
            return Vec::new();
        }
        match inventory.load_balancers().await {
            Ok(lbs) => {
                let lbs: Vec<_> = lbs
                    .into_iter()
                    .filter(|lb| {
                        configured.is_none_or(|c| {
                            c.load_balancers.contains(&lb.arn) || c.lb_dns.contains(&lb.dns_name.to_ascii_lowercase())
                        })
                    })
                    .collect();
                let mut out: Vec<Finding> = lbs.iter().flat_map(evaluate::load_balancer).collect();
                if checks.iter().any(|c| waf::CHECKS.contains(&c.id)) {
                    // Owned ARNs in, results in the same order out (`buffered`), zipped back.
                    let arns: Vec<String> = lbs.iter().map(|lb| lb.arn.clone()).collect();
                    let acls: Vec<Result<_, String>> = futures::stream::iter(arns)
                        .map(|arn| async move { inventory.web_acl_for(&arn).await.map_err(|e| e.to_string()) })
                        .buffered(WEB_ACL_CONCURRENCY)
                        .collect()
                        .await;
                    out.extend(
                        lbs.iter()
                            .zip(&acls)
                            .flat_map(|(lb, acl)| waf::load_balancer_waf(lb, acl, &ctx.waf_rule_groups)),
                    );
                }
                out
            }
            Err(e) => errors(
                checks,
                "alb",
                &format!("load balancers in {region}"),
                Some(region),
                &e.to_string(),
            ),
        }
    };
    let secrets = async {
        if !wants(checks, "secrets") && !keys_by_config {
            return (Vec::new(), Vec::new());
        }
        match inventory.secrets().await {
            Ok(secrets) => {
                let secrets: Vec<_> = secrets
                    .into_iter()
                    .filter(|s| configured.is_none_or(|c| c.secrets.contains(&s.name) || c.secrets.contains(&s.arn)))
                    .collect();
                let references: Vec<String> = secrets.iter().filter_map(|s| s.kms_key_id.clone()).collect();
                let ctx = with_keys(ctx, inventory, listed_keys.clone().await, needs_keys, &references).await;
                let findings = secrets.iter().flat_map(|s| evaluate::secret(s, &ctx)).collect();
                (findings, references)
            }
            Err(e) => (
                errors(
                    checks,
                    "secrets",
                    &format!("secrets in {region}"),
                    Some(region),
                    &e.to_string(),
                ),
                Vec::new(),
            ),
        }
    };
    // ECR repositories and certificates are the account's: the configuration names none of them, so
    // `--scope config` judges them all too.
    let ecr = async {
        if !wants(checks, "ecr") {
            return Vec::new();
        }
        match inventory.ecr_repositories().await {
            Ok(repositories) => repositories.iter().flat_map(posture::ecr_repository).collect(),
            Err(e) => errors(
                checks,
                "ecr",
                &format!("ECR repositories in {region}"),
                Some(region),
                &e.to_string(),
            ),
        }
    };
    let acm = async {
        if !wants(checks, "acm") {
            return Vec::new();
        }
        match inventory.certificates().await {
            Ok(certificates) => certificates
                .iter()
                .flat_map(|c| posture::certificate(c, ctx.now))
                .collect(),
            Err(e) => errors(
                checks,
                "acm",
                &format!("ACM certificates in {region}"),
                Some(region),
                &e.to_string(),
            ),
        }
    };
    let snapshots = async {
        if !wants(checks, "rds") {
            return Vec::new();
        }
        match inventory.db_snapshots().await {
            // With `--scope config`, the snapshots of the configured instances.
            Ok(all) => all
                .iter()
                .filter(|s| configured.is_none_or(|c| c.has_db(region, &s.instance)))
                .flat_map(snapshots::db_snapshot)
                .collect(),
            Err(e) => errors_of(
                checks,
                snapshot_check,
                &format!("RDS snapshots in {region}"),
                Some(region),
                &e.to_string(),
            ),
        }
    };
    let cache = async {
        if !wants(checks, "elasticache") {
            return Vec::new();
        }
        match inventory.cache_groups().await {
            Ok(groups) => groups
                .iter()
                .filter(|g| configured.is_none_or(|c| c.cache_groups.contains(&(region.to_owned(), g.id.clone()))))
                .flat_map(cache::cache_group)
                .collect(),
            Err(e) => errors(
                checks,
                "elasticache",
                &format!("ElastiCache replication groups in {region}"),
                Some(region),
                &e.to_string(),
            ),
        }
    };
    let ((rds, db_keys), ecs, alb, (secrets, secret_keys), cache, snapshots, ecr, acm, network) =
        tokio::join!(rds, ecs, alb, secrets, cache, snapshots, ecr, acm, network);
    let kms = if !wants(checks, "kms") {
        Vec::new()
    } else {
        let used: BTreeSet<String> = db_keys.into_iter().chain(secret_keys).collect();
        match listed_keys.await {
            Ok(keys) => keys
                .iter()
                .filter(|k| !keys_by_config || used.iter().any(|name| keys::names_key(name, k)))
                .flat_map(keys::kms_key)
                .collect(),
            Err(e) => errors(checks, "kms", &format!("KMS keys in {region}"), Some(region), &e),
        }
    };
    [rds, snapshots, ecs, ecr, acm, alb, secrets, cache, kms, network]
        .into_iter()
        .flatten()
        .collect()
}

/// The checks that judge a resource by who manages the KMS key it names.
const KEY_OWNER_CHECKS: &[&str] = &["rds-storage-encrypted-cmk", "secrets-cmk"];

/// `ctx` with the region's key directory: the listed keys, and each key `references` names that the
/// listing lacks (another account's, or none at all) described on its own.
async fn with_keys(
    ctx: &EvalContext,
    inventory: &dyn InventoryApi,
    listed: Result<Vec<KmsKeyFacts>, String>,
    needed: bool,
    references: &[String],
) -> EvalContext {
    let mut ctx = ctx.clone();
    if !needed {
        return ctx;
    }
    ctx.keys = match &listed {
        Ok(keys) => KeyDirectory::of(keys),
        Err(_) => KeyDirectory::default(),
    };
    let missing: BTreeSet<&String> = references.iter().filter(|r| !ctx.keys.knows(r)).collect();
    let described = futures::future::join_all(missing.iter().map(|reference| inventory.kms_key(reference))).await;
    for (reference, result) in missing.iter().zip(described) {
        match (result, &listed) {
            (Ok(key), _) => ctx.keys.add_described(reference, &key),
            (Err(e), Ok(_)) => ctx.keys.unreadable(reference, e.to_string()),
            (Err(e), Err(listing)) => ctx.keys.unreadable(
                reference,
                format!("{e}; listing the region's keys failed too: {listing}"),
            ),
        }
    }
    ctx
}

/// How soon a finding needs someone: the order of a check's findings in a report.
fn attention(status: super::Status) -> u8 {
    match status {
        super::Status::Fail => 0,
        super::Status::Error => 1,
        super::Status::Muted => 2,
        super::Status::Pass => 3,
    }
}

/// Runs the plan against `sources`.
pub async fn run(plan: &RunPlan<'_>, sources: &Sources, reporter: &dyn Reporter) -> ComplianceReport {
    let started = Instant::now();
    let generated_at = chrono::Utc::now();
    let checks = &plan.checks;
    let configured = (plan.scope == Scope::Config).then(|| Configured::of(plan.env));
    let configured = configured.as_ref();

    let regions = futures::future::join_all(
        sources
            .inventories
            .iter()
            .map(|(region, inventory)| region_findings(region, inventory.as_ref(), plan, configured, reporter)),
    );
    let dns = async {
        if !wants(checks, "route53") {
            return Vec::new();
        }
        let Some((_, inventory)) = sources.inventories.first() else {
            return Vec::new();
        };
        match inventory.failover_records().await {
            Ok(records) => records
                .iter()
                .filter(|r| configured.is_none_or(|c| r.zone_id == c.zone && r.name == c.record))
                .flat_map(evaluate::failover_record)
                .collect(),
            Err(e) => errors(checks, "route53", "Route 53 failover records", None, &e.to_string()),
        }
    };
    // CloudTrail is the account's: read once, from the first region, with the multi-region trails of
    // every home region.
    let trails = async {
        if !wants(checks, "cloudtrail") {
            return Vec::new();
        }
        let Some((region, inventory)) = sources.inventories.first() else {
            return Vec::new();
        };
        match inventory.trails().await {
            Ok(trails) => posture::trails(&trails, region),
            Err(e) => errors(
                checks,
                "cloudtrail",
                &format!("CloudTrail trails seen from {region}"),
                None,
                &e.to_string(),
            ),
        }
    };
    let datadog = async {
        if !wants(checks, "datadog") {
            return Vec::new();
        }
        let tags = plan.env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
        let result = match &sources.monitors {
            Ok(source) => source.monitors(&tags).await,
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(monitors) => evaluate::datadog_monitors(&monitors, &tags),
            Err(e) => errors(checks, "datadog", "Datadog monitors", None, &e),
        }
    };
    let service = async {
        if !wants(checks, "service") {
            return Vec::new();
        }
        match &plan.url {
            Some(url) => live::evaluate(&live::gather(sources.probe.as_ref(), url).await),
            None => errors(
                checks,
                "service",
                "the service URL",
                None,
                "no URL: the environment has no `url` and `--url` was not given",
            ),
        }
    };
    let (regions, dns, trails, datadog, service) = tokio::join!(regions, dns, trails, datadog, service);
    let mut findings: Vec<Finding> = regions
        .into_iter()
        .flatten()
        .chain(dns)
        .chain(trails)
        .chain(datadog)
        .chain(service)
        .collect();

    // Keep the selected checks only (an evaluation reports every check of its resource type).
    findings.retain(|f| checks.iter().any(|c| c.id == f.check_id));
    apply_suppressions(&mut findings, &plan.suppressions, plan.context.now.date_naive());
    let order: HashMap<&str, usize> = CHECKS.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| {
                order
                    .get(a.check_id.as_str())
                    .unwrap_or(&usize::MAX)
                    .cmp(order.get(b.check_id.as_str()).unwrap_or(&usize::MAX))
            })
            // Within a check, what needs attention first: failures, errors, muted, then passes.
            .then_with(|| attention(a.status).cmp(&attention(b.status)))
            .then_with(|| a.resource.cmp(&b.resource))
    });
    let summary = Summary::of(checks.len(), &findings);
    ComplianceReport {
        schema_version: 1,
        environment: plan.environment.to_owned(),
        scope: plan.scope.as_str().to_owned(),
        generated_at,
        duration_ms: started.elapsed().as_millis() as u64,
        fail_on: plan.fail_on,
        passed: !fails(&findings, plan.fail_on),
        summary,
        checks: checks.clone(),
        findings,
    }
}
