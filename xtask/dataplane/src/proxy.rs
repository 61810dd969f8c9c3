//! The weighted proxy: the ALB's data plane in the sandbox. Each request goes to one upstream, chosen by
//! the weights of the forward rule's target groups; a watcher refreshes those weights from the AWS API and
//! keeps the last known ones when a read fails.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::weights::{forward_weights, target_group_name, upstream_weights, Forward, SmoothWeighted};

/// Largest request body forwarded; the service itself accepts 16 KiB.
const BODY_LIMIT: usize = 1024 * 1024;

/// How many refusing targets one request passes over before it is answered 502.
const MAX_REFUSED_TARGETS: usize = 8;

/// Headers that belong to one connection and are not forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header naming the upstream that answered, for people and tests looking at the split.
pub const UPSTREAM_HEADER: &str = "x-sandbox-upstream";

/// One upstream: a target group of the rule and its targets, taken in turn. The targets are either
/// given (`TARGET_GROUP_ARN=URL`) or the target group's registered targets, re-read from the AWS API.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub target_group_arn: String,
    targets: Arc<Mutex<Vec<reqwest::Url>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    /// A target group whose targets are read from the AWS API (none until the first read).
    pub fn target_group(arn: &str) -> Self {
        Self::with_targets(arn, Vec::new())
    }

    fn with_targets(arn: &str, targets: Vec<reqwest::Url>) -> Self {
        Self {
            target_group_arn: arn.to_owned(),
            targets: Arc::new(Mutex::new(targets)),
            next: Arc::default(),
        }
    }

    /// The next target in turn, or `None` when the group has none.
    pub fn pick(&self) -> Option<reqwest::Url> {
        let targets = self.targets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if targets.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % targets.len();
        Some(targets[i].clone())
    }

    /// Takes `target` out of the group until the next read of its targets, unless it is the last one;
    /// whether it did. It refused a connection: a task is stopped only after it was deregistered and
    /// drained, which a load balancer knows at once, while this proxy learns it by polling, so a slow read
    /// would otherwise keep sending requests to a stopped task. The last target stays (an ALB whose
    /// targets all fail still sends to them: the client gets a 502, not a 503).
    pub fn forget(&self, target: &reqwest::Url) -> bool {
        let mut current = self.targets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.len() < 2 {
            return false;
        }
        let before = current.len();
        current.retain(|t| t != target);
        current.len() < before
    }

    /// Replaces the targets; returns whether they changed.
    pub fn set_targets(&self, mut targets: Vec<reqwest::Url>) -> bool {
        targets.sort();
        let mut current = self.targets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current == targets {
            return false;
        }
        *current = targets;
        true
    }

    /// Parses `TARGET_GROUP_ARN=URL`: one fixed target.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (arn, url) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("`{spec}`: expected TARGET_GROUP_ARN=URL"))?;
        let url: reqwest::Url = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !crate::is_loopback_url(&url) {
            return Err(format!("`{url}` is not on loopback"));
        }
        Ok(Self::with_targets(arn, vec![url]))
    }

    pub fn name(&self) -> &str {
        target_group_name(&self.target_group_arn)
    }
}

/// The proxy's shared state: upstreams, the weighted choice, counters.
pub struct Proxy {
    upstreams: Vec<Upstream>,
    selector: Mutex<SmoothWeighted>,
    forwarded: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
    client: reqwest::Client,
    /// A load balancer adds `X-Forwarded-For`/`-Proto`; the front door stands for DNS, which adds nothing.
    adds_forwarded: bool,
}

impl Proxy {
    /// A proxy with initial `weights` (one per upstream).
    pub fn new(upstreams: Vec<Upstream>, weights: Vec<u32>) -> Arc<Self> {
        Self::build(upstreams, weights, true)
    }

    /// A proxy that forwards as DNS resolution would: no `X-Forwarded-*` of its own, and the answering
    /// load balancer's `x-sandbox-upstream` kept.
    pub fn transparent(upstreams: Vec<Upstream>, weights: Vec<u32>) -> Arc<Self> {
        Self::build(upstreams, weights, false)
    }

    fn build(upstreams: Vec<Upstream>, weights: Vec<u32>, adds_forwarded: bool) -> Arc<Self> {
        assert_eq!(upstreams.len(), weights.len(), "one weight per upstream");
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client without TLS configuration builds");
        Arc::new(Self {
            forwarded: upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
            failed: upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
            upstreams,
            selector: Mutex::new(SmoothWeighted::new(weights)),
            client,
            adds_forwarded,
        })
    }

    pub fn weights(&self) -> Vec<u32> {
        self.lock_selector().weights().to_vec()
    }

    /// Sets the weights; returns whether they changed.
    pub fn set_weights(&self, weights: Vec<u32>) -> bool {
        assert_eq!(weights.len(), self.upstreams.len(), "one weight per upstream");
        self.lock_selector().set_weights(weights)
    }

    /// Requests forwarded to (answered by) each upstream, and those that failed to reach it.
    pub fn counters(&self) -> Vec<(u64, u64)> {
        self.forwarded
            .iter()
            .zip(&self.failed)
            .map(|(f, e)| (f.load(Ordering::Relaxed), e.load(Ordering::Relaxed)))
            .collect()
    }

    /// `auth-staging-stable=90 auth-staging-canary=10`.
    pub fn describe(&self, weights: &[u32]) -> String {
        self.upstreams
            .iter()
            .zip(weights)
            .map(|(u, w)| format!("{}={w}", u.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn lock_selector(&self) -> std::sync::MutexGuard<'_, SmoothWeighted> {
        // A panic while holding this lock cannot leave the selector inconsistent: keep going.
        self.selector.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The router: every path and method is forwarded.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }

    /// Serves on `listener` until the process ends.
    pub async fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(
            listener,
            self.router().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let Some(index) = proxy.lock_selector().next_index() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_target",
            "every target group of the rule has weight 0",
        );
    };
    let upstream = &proxy.upstreams[index];
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        );
    };
    let mut headers = strip_hop_by_hop(&parts.headers);
    headers.remove(header::HOST);
    if proxy.adds_forwarded {
        let forwarded_for = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
    }

    // A target that refuses the connection got nothing of the request: it is forgotten and the request
    // goes to another while one remains (see `Upstream::forget`).
    let mut refused = 0;
    let answer = loop {
        let Some(target) = upstream.pick() else {
            proxy.failed[index].fetch_add(1, Ordering::Relaxed);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_target",
                "the target group chosen by the weights has no healthy target",
            );
        };
        let mut url = target.clone();
        url.set_path(parts.uri.path());
        url.set_query(parts.uri.query());
        let sent = proxy
            .client
            .request(parts.method.clone(), url)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) => break answer,
            Err(e) if e.is_connect() && refused < MAX_REFUSED_TARGETS && upstream.forget(&target) => {
                tracing::info!(upstream = upstream.name(), target = %target, error = %e, "target refused the connection; forgotten until the next read");
                refused += 1;
            }
            Err(e) => {
                proxy.failed[index].fetch_add(1, Ordering::Relaxed);
                tracing::debug!(upstream = upstream.name(), error = %e, "upstream unreachable");
                return if e.is_timeout() {
                    error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway_timeout",
                        "the target did not answer in time",
                    )
                } else {
                    error(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the target could not be reached",
                    )
                };
            }
        }
    };
    let status = answer.status();
    let mut headers = strip_hop_by_hop(answer.headers());
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(_) => {
            proxy.failed[index].fetch_add(1, Ordering::Relaxed);
            return error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the target's answer was cut short",
            );
        }
    };
    proxy.forwarded[index].fetch_add(1, Ordering::Relaxed);
    if proxy.adds_forwarded || !headers.contains_key(UPSTREAM_HEADER) {
        if let Ok(name) = HeaderValue::from_str(upstream.name()) {
            headers.insert(HeaderName::from_static(UPSTREAM_HEADER), name);
        }
    }
    // The body is complete: its length is known again.
    headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn strip_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    // `Connection` may name further per-connection headers.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !named.iter().any(|m| m == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": code, "message": message }).to_string(),
    )
        .into_response()
}

/// Where the weights come from: the ALB rule through the AWS API, or a fake in tests.
pub trait WeightSource: Send + Sync {
    /// The rule's target groups and their weights.
    fn read(&self) -> impl Future<Output = Result<Forward, String>> + Send;
}

/// The forward rule of an ALB listener, read with `DescribeRules`.
pub struct AlbRule {
    pub client: aws_sdk_elasticloadbalancingv2::Client,
    pub rule_arn: String,
}

impl WeightSource for AlbRule {
    async fn read(&self) -> Result<Forward, String> {
        let out = self
            .client
            .describe_rules()
            .rule_arns(&self.rule_arn)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "DescribeRules `{}`: {}",
                    self.rule_arn,
                    aws_sdk_elasticloadbalancingv2::error::DisplayErrorContext(e)
                )
            })?;
        let rule = out
            .rules()
            .first()
            .ok_or_else(|| format!("rule `{}` not found", self.rule_arn))?;
        forward_weights(rule)
    }
}

/// One read of the weights applied to the proxy. A failed read changes nothing: the proxy keeps the
/// last known weights. Returns whether the read succeeded.
pub async fn refresh_weights<S: WeightSource>(proxy: &Proxy, source: &S) -> Result<bool, String> {
    let forward = source.read().await?;
    let arns: Vec<&str> = proxy.upstreams.iter().map(|u| u.target_group_arn.as_str()).collect();
    let (weights, unknown) = upstream_weights(&arns, &forward);
    for arn in unknown {
        tracing::warn!(target_group = arn, "the rule weights a target group no upstream serves");
    }
    let before = proxy.weights();
    let changed = proxy.set_weights(weights.clone());
    if changed {
        tracing::info!(
            from = %proxy.describe(&before),
            to = %proxy.describe(&weights),
            "weights changed"
        );
    }
    Ok(changed)
}

/// Reads the registered targets of every upstream that follows its target group, every `every`,
/// forever; a failed read keeps the last known targets.
pub async fn watch_targets(
    proxy: Arc<Proxy>,
    client: aws_sdk_elasticloadbalancingv2::Client,
    followed: Vec<String>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for upstream in proxy
            .upstreams
            .iter()
            .filter(|u| followed.contains(&u.target_group_arn))
        {
            let read = client
                .describe_target_health()
                .target_group_arn(&upstream.target_group_arn)
                .send()
                .await;
            let Ok(out) = read else { continue };
            let targets: Vec<reqwest::Url> = out
                .target_health_descriptions()
                .iter()
                .filter_map(|d| d.target())
                .filter_map(|t| format!("http://{}:{}", t.id()?, t.port()?).parse().ok())
                .filter(crate::is_loopback_url)
                .collect();
            if upstream.set_targets(targets.clone()) {
                tracing::info!(
                    target_group = upstream.name(),
                    targets = %targets.iter().map(|u| u.authority().to_owned()).collect::<Vec<_>>().join(" "),
                    "targets changed"
                );
            }
        }
    }
}

/// Reads the weights every `every`, forever. Failures are logged when they start, every 30th time while
/// they last, and when reads recover.
pub async fn watch_weights<S: WeightSource>(proxy: Arc<Proxy>, source: S, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u64 = 0;
    loop {
        ticker.tick().await;
        match refresh_weights(&proxy, &source).await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(failures, "reading the weights works again");
                }
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(
                        error = %e,
                        failures,
                        weights = %proxy.describe(&proxy.weights()),
                        "cannot read the weights; keeping the last known"
                    );
                }
            }
        }
    }
}

/// Logs the requests forwarded per upstream every `every`, when any were.
pub async fn log_counters(proxy: Arc<Proxy>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = proxy.counters();
    loop {
        ticker.tick().await;
        let now = proxy.counters();
        if now != last {
            let summary: Vec<String> = proxy
                .upstreams
                .iter()
                .zip(now.iter().zip(&last))
                .map(|(u, ((f, e), (f0, e0)))| format!("{}={} (unreachable {})", u.name(), f - f0, e - e0))
                .collect();
            tracing::info!(
                seconds = every.as_secs(),
                weights = %proxy.describe(&proxy.weights()),
                "forwarded {}",
                summary.join(" ")
            );
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Script(Mutex<VecDeque<Result<Forward, String>>>);

    impl WeightSource for Script {
        async fn read(&self) -> Result<Forward, String> {
            self.0.lock().unwrap().pop_front().expect("scripted read")
        }
    }

    fn upstream(arn: &str) -> Upstream {
        Upstream::parse(&format!("{arn}=http://127.0.0.1:9")).unwrap()
    }

    #[tokio::test]
    async fn a_target_that_refuses_connections_is_passed_over_and_forgotten() {
        let server = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live: reqwest::Url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });
        // A stopped task: its port was bound and closed again.
        let stopped: reqwest::Url = {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("http://127.0.0.1:{port}").parse().unwrap()
        };
        // The stopped target first in turn, as a read too slow to see its deregistration leaves it.
        let group = Upstream::with_targets("arn:tg/stable", vec![stopped, live.clone()]);
        let proxy = Proxy::new(vec![group], vec![100]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serving = proxy.clone();
        tokio::spawn(async move { serving.serve(listener).await });
        for _ in 0..3 {
            let answer = reqwest::get(format!("http://{address}/ping")).await.unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.text().await.unwrap(), "pong");
        }
        assert_eq!(*proxy.upstreams[0].targets.lock().unwrap(), vec![live]);
        assert_eq!(proxy.counters(), [(3, 0)]);
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_last_known_weights() {
        let proxy = Proxy::new(vec![upstream("arn:s"), upstream("arn:c")], vec![1, 0]);
        let script = Script(Mutex::new(VecDeque::from([
            Ok(vec![("arn:s".into(), 90), ("arn:c".into(), 10)]),
            Err("moto is down".into()),
            Ok(vec![("arn:s".into(), 90), ("arn:c".into(), 10)]),
            Ok(vec![("arn:c".into(), 100)]),
        ])));
        assert_eq!(refresh_weights(&proxy, &script).await, Ok(true));
        assert_eq!(proxy.weights(), [90, 10]);
        assert!(refresh_weights(&proxy, &script).await.is_err());
        assert_eq!(proxy.weights(), [90, 10]);
        assert_eq!(refresh_weights(&proxy, &script).await, Ok(false));
        assert_eq!(refresh_weights(&proxy, &script).await, Ok(true));
        assert_eq!(proxy.weights(), [0, 100]);
    }

    #[test]
    fn upstream_specs() {
        let u = Upstream::parse(
            "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/auth-staging-stable/ab=http://127.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(u.name(), "auth-staging-stable");
        assert_eq!(u.pick().unwrap().as_str(), "http://127.0.0.1:8080/");
        assert!(Upstream::parse("arn-only").is_err());
        assert!(Upstream::parse("arn=http://192.0.2.1:80").is_err());
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let out = strip_hop_by_hop(&h);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(header::AUTHORIZATION));
    }
}
