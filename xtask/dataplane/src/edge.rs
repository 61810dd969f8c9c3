//! The sandbox's edge: the load balancers and DNS that sit in front of the tasks, in one process. An ALB
//! splits requests between its target groups by the forward rule's weights (or sends everything to its
//! one target group, like a listener's default action) over each group's registered targets; a front door
//! resolves a Route 53 failover record as a resolver would — the PRIMARY record's target unless its health
//! check fails, then the SECONDARY's — and forwards to the ALB that target names. So a DR failover that
//! repoints the record moves real traffic to the DR region's tasks.

use std::sync::Arc;
use std::time::Duration;

use crate::proxy::{log_counters, watch_targets, watch_weights, AlbRule, Proxy, Upstream};

/// `LISTEN|REGION|RULE_ARN or -|TARGET_GROUP_ARN,...`: one ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbSpec {
    pub listen: std::net::SocketAddr,
    pub region: String,
    pub rule_arn: Option<String>,
    pub target_groups: Vec<String>,
}

impl AlbSpec {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split('|').collect();
        let [listen, region, rule, groups] = parts.as_slice() else {
            return Err(format!(
                "`{spec}`: expected LISTEN|REGION|RULE_ARN or -|TARGET_GROUP_ARN,..."
            ));
        };
        let listen: std::net::SocketAddr = listen.parse().map_err(|e| format!("`{listen}`: {e}"))?;
        if !listen.ip().is_loopback() {
            return Err(format!("`{listen}`: loopback only"));
        }
        let target_groups: Vec<String> = groups.split(',').filter(|g| !g.is_empty()).map(str::to_owned).collect();
        if target_groups.is_empty() {
            return Err(format!("`{spec}`: no target group"));
        }
        Ok(Self {
            listen,
            region: (*region).to_owned(),
            rule_arn: Some((*rule).to_owned()).filter(|r| r != "-"),
            target_groups,
        })
    }
}

/// `LISTEN|HOSTED_ZONE_ID|RECORD_NAME|DNS_NAME=URL,...`: one front door and the ALBs its record may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontDoorSpec {
    pub listen: std::net::SocketAddr,
    pub hosted_zone_id: String,
    pub record_name: String,
    pub albs: Vec<(String, reqwest::Url)>,
}

impl FrontDoorSpec {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split('|').collect();
        let [listen, zone, record, albs] = parts.as_slice() else {
            return Err(format!(
                "`{spec}`: expected LISTEN|HOSTED_ZONE_ID|RECORD_NAME|DNS_NAME=URL,..."
            ));
        };
        let listen: std::net::SocketAddr = listen.parse().map_err(|e| format!("`{listen}`: {e}"))?;
        if !listen.ip().is_loopback() {
            return Err(format!("`{listen}`: loopback only"));
        }
        let albs = albs
            .split(',')
            .map(|pair| {
                let (dns, url) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("`{pair}`: expected DNS_NAME=URL"))?;
                let url: reqwest::Url = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
                if !crate::is_loopback_url(&url) {
                    return Err(format!("`{url}` is not on loopback"));
                }
                Ok((normalise(dns), url))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            listen,
            hosted_zone_id: (*zone).to_owned(),
            record_name: normalise(record),
            albs,
        })
    }
}

/// DNS names compare without case and without the trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A failover record as the front door sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRecord {
    pub primary: bool,
    pub target: String,
    pub healthy: bool,
}

/// The target a resolver answers with: the PRIMARY's while it is healthy, else a healthy SECONDARY's, else
/// the PRIMARY's (Route 53 answers with the primary when every record is unhealthy).
pub fn resolve(records: &[FailoverRecord]) -> Option<String> {
    let primary = records.iter().find(|r| r.primary);
    let secondary = records.iter().find(|r| !r.primary);
    match (primary, secondary) {
        (Some(p), _) if p.healthy => Some(p.target.clone()),
        (_, Some(s)) if s.healthy => Some(s.target.clone()),
        (Some(p), _) => Some(p.target.clone()),
        (None, s) => s.map(|s| s.target.clone()),
    }
}

async fn sdk(region: &str) -> aws_config::SdkConfig {
    // AWS_ENDPOINT_URL (moto) and the credentials come from the environment.
    crate::aws_config(region, None, 1, Duration::from_secs(2)).await
}

/// Serves one ALB until the process ends.
pub async fn run_alb(spec: AlbSpec, every: Duration) -> Result<(), String> {
    let client = aws_sdk_elasticloadbalancingv2::Client::new(&sdk(&spec.region).await);
    let upstreams: Vec<Upstream> = spec
        .target_groups
        .iter()
        .map(|arn| Upstream::target_group(arn))
        .collect();
    let initial = (0..upstreams.len()).map(|i| u32::from(i == 0)).collect();
    let proxy = Proxy::new(upstreams, initial);
    let listener = tokio::net::TcpListener::bind(spec.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", spec.listen))?;
    tracing::info!(listen = %spec.listen, region = %spec.region, rule = ?spec.rule_arn, "ALB listening");
    tokio::spawn(watch_targets(
        proxy.clone(),
        client.clone(),
        spec.target_groups.clone(),
        every,
    ));
    if let Some(rule_arn) = spec.rule_arn {
        tokio::spawn(watch_weights(proxy.clone(), AlbRule { client, rule_arn }, every));
    }
    tokio::spawn(log_counters(proxy.clone(), Duration::from_secs(30)));
    proxy.serve(listener).await.map_err(|e| format!("serving: {e}"))
}

/// Reads the failover record set and its health checks.
async fn read_record(client: &aws_sdk_route53::Client, spec: &FrontDoorSpec) -> Result<Vec<FailoverRecord>, String> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(&spec.hosted_zone_id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "ListResourceRecordSets: {}",
                aws_sdk_route53::error::DisplayErrorContext(e)
            )
        })?;
    let mut records = Vec::new();
    for set in out.resource_record_sets() {
        if normalise(set.name()) != spec.record_name || set.r#type().as_str() != "A" {
            continue;
        }
        let Some(failover) = set.failover() else { continue };
        let Some(target) = set.alias_target().map(|a| normalise(a.dns_name())) else {
            continue;
        };
        let healthy = match set.health_check_id() {
            Some(id) => client
                .get_health_check_status()
                .health_check_id(id)
                .send()
                .await
                .map(|s| {
                    s.health_check_observations()
                        .iter()
                        .filter_map(|o| o.status_report().and_then(|r| r.status()))
                        .all(|status| status.starts_with("Success"))
                })
                .unwrap_or(true),
            None => true,
        };
        records.push(FailoverRecord {
            primary: failover.as_str() == "PRIMARY",
            target,
            healthy,
        });
    }
    Ok(records)
}

/// Serves one front door until the process ends.
pub async fn run_front_door(spec: FrontDoorSpec, every: Duration) -> Result<(), String> {
    let client = aws_sdk_route53::Client::new(&sdk("us-east-1").await);
    let door = Upstream::target_group(&format!("front-door/{}", spec.record_name));
    let proxy = Proxy::transparent(vec![door.clone()], vec![1]);
    let listener = tokio::net::TcpListener::bind(spec.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", spec.listen))?;
    tracing::info!(listen = %spec.listen, record = %spec.record_name, "front door listening");
    let watched = Arc::new(spec);
    let follow = {
        let spec = watched.clone();
        async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let Ok(records) = read_record(&client, &spec).await else {
                    continue;
                };
                let Some(target) = resolve(&records) else { continue };
                let Some((_, url)) = spec.albs.iter().find(|(dns, _)| *dns == target) else {
                    tracing::warn!(%target, "the record names a load balancer the front door does not know");
                    continue;
                };
                if door.set_targets(vec![url.clone()]) {
                    tracing::info!(record = %spec.record_name, %target, %url, "the record now resolves here");
                }
            }
        }
    };
    tokio::spawn(follow);
    proxy.serve(listener).await.map_err(|e| format!("serving: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(primary: bool, target: &str, healthy: bool) -> FailoverRecord {
        FailoverRecord {
            primary,
            target: target.to_owned(),
            healthy,
        }
    }

    #[test]
    fn failover_resolution() {
        let p = |h| record(true, "primary-alb", h);
        let s = |h| record(false, "dr-alb", h);
        assert_eq!(resolve(&[p(true), s(true)]).as_deref(), Some("primary-alb"));
        assert_eq!(resolve(&[p(false), s(true)]).as_deref(), Some("dr-alb"));
        assert_eq!(
            resolve(&[p(false), s(false)]).as_deref(),
            Some("primary-alb"),
            "all unhealthy: the primary"
        );
        // A failover that repoints the PRIMARY record at the DR load balancer moves traffic there.
        assert_eq!(
            resolve(&[record(true, "dr-alb", true), s(true)]).as_deref(),
            Some("dr-alb")
        );
        assert_eq!(resolve(&[]), None);
    }

    #[test]
    fn specs() {
        let alb = AlbSpec::parse("127.0.0.1:9000|eu-central-1|-|arn:tg/a").unwrap();
        assert_eq!(alb.rule_arn, None);
        assert_eq!(alb.target_groups, vec!["arn:tg/a".to_owned()]);
        assert!(AlbSpec::parse("10.0.0.1:9000|eu-central-1|-|arn:tg/a").is_err());
        assert!(AlbSpec::parse("127.0.0.1:9000|eu-central-1|rule|").is_err());
        let door =
            FrontDoorSpec::parse("127.0.0.1:9001|Z1|Auth.Example.com.|a.elb.amazonaws.com=http://127.0.0.1:9000")
                .unwrap();
        assert_eq!(door.record_name, "auth.example.com");
        assert_eq!(door.albs[0].0, "a.elb.amazonaws.com");
        assert!(FrontDoorSpec::parse("127.0.0.1:9001|Z1|r|a=http://192.0.2.1:1").is_err());
    }
}
