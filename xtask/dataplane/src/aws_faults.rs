//! The AWS fault proxy: stands between suma and moto and answers a share of the requests with the
//! failures real AWS gives under pressure: throttling (HTTP 400 with the protocol's `Throttling` error,
//! which the SDK retries with backoff), 500 and 503, an answer slower than the client's operation timeout,
//! and a connection reset. The rest is forwarded unchanged. Which request fails, and how, follows a seeded
//! generator, so a run can be repeated. The crash matrix's fault runs use it (RELIABILITY.md).
//!
//! It also records the IAM action of every request (`GET /__calls`, `DELETE /__calls` to start over), so a
//! test can check each command's calls against the policy `suma iam-policy` prints for it. With `--rate 0`
//! it is a plain recorder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Throttle,
    InternalError,
    Unavailable,
    Slow,
    Reset,
}

const FAULTS: [Fault; 5] = [
    Fault::Throttle,
    Fault::InternalError,
    Fault::Unavailable,
    Fault::Slow,
    Fault::Reset,
];

/// A small seeded generator (xorshift64*): the same seed gives the same faults in the same order.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The fault for the next request when a share `rate` of requests fail.
    pub fn roll(&mut self, rate: f64) -> Fault {
        let draw = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if draw >= rate {
            return Fault::Pass;
        }
        FAULTS[(self.next() % FAULTS.len() as u64) as usize]
    }
}

/// The proxy's state: where moto is, the dice, and what it did.
pub struct FaultProxy {
    upstream: reqwest::Url,
    rate: f64,
    slow: Duration,
    dice: Mutex<Dice>,
    counts: [AtomicU64; 6],
    /// IAM action (`dynamodb:PutItem`) → requests seen.
    calls: Mutex<BTreeMap<String, u64>>,
    client: reqwest::Client,
}

impl FaultProxy {
    pub fn new(upstream: reqwest::Url, rate: f64, seed: u64, slow: Duration) -> Arc<Self> {
        Arc::new(Self {
            upstream,
            rate,
            slow,
            dice: Mutex::new(Dice::new(seed)),
            counts: Default::default(),
            calls: Mutex::default(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a plain HTTP client"),
        })
    }

    fn count(&self, fault: Fault) {
        self.counts[fault as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests by outcome, as `GET /__faults` shows them.
    pub fn stats(&self) -> serde_json::Value {
        let n = |f: Fault| self.counts[f as usize].load(Ordering::Relaxed);
        serde_json::json!({
            "passed": n(Fault::Pass),
            "throttled": n(Fault::Throttle),
            "internal_error": n(Fault::InternalError),
            "unavailable": n(Fault::Unavailable),
            "slow": n(Fault::Slow),
            "reset": n(Fault::Reset),
        })
    }
}

pub fn router(proxy: Arc<FaultProxy>) -> Router {
    Router::new()
        .route("/__faults", axum::routing::get(stats))
        .route("/__calls", axum::routing::get(calls).delete(forget_calls))
        .fallback(handle)
        .with_state(proxy)
}

async fn stats(State(proxy): State<Arc<FaultProxy>>) -> impl IntoResponse {
    axum::Json(proxy.stats())
}

async fn calls(State(proxy): State<Arc<FaultProxy>>) -> impl IntoResponse {
    axum::Json(proxy.calls.lock().expect("calls").clone())
}

async fn forget_calls(State(proxy): State<Arc<FaultProxy>>) -> StatusCode {
    proxy.calls.lock().expect("calls").clear();
    StatusCode::NO_CONTENT
}

/// The IAM action a request asks for: the service from the SigV4 credential scope (its signing name is
/// the action prefix), the operation from `x-amz-target` (JSON protocols), the form's `Action` (query
/// protocols) or the method and path (Route 53's REST API).
pub fn iam_action(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let service = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unsigned")
        .to_owned();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let operation = if let Some(target) = target {
        target.rsplit('.').next().unwrap_or(target).to_owned()
    } else if let Some(action) = form_action(body) {
        action
    } else if service == "scheduler" {
        scheduler_operation(parts.method.as_str(), parts.uri.path())
    } else {
        route53_operation(parts.method.as_str(), parts.uri.path())
    };
    format!("{service}:{operation}")
}

fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// Route 53's REST paths, as far as suma calls them.
fn route53_operation(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", [_, "hostedzone"]) => "ListHostedZones",
        ("GET", [_, "hostedzone", _]) => "GetHostedZone",
        ("GET", [_, "hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("POST", [_, "hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", [_, "change", _]) => "GetChange",
        ("GET", [_, "healthcheck", _, "status"]) => "GetHealthCheckStatus",
        ("GET", [_, "healthcheck", _]) => "GetHealthCheck",
        ("GET", [_, "healthcheck"]) => "ListHealthChecks",
        _ => return format!("{method} {path}"),
    }
    .to_owned()
}

/// EventBridge Scheduler's REST paths, as far as suma calls them.
fn scheduler_operation(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["schedules"]) => "ListSchedules",
        ("GET", ["schedules", _]) => "GetSchedule",
        _ => return format!("{method} {path}"),
    }
    .to_owned()
}

async fn handle(State(proxy): State<Arc<FaultProxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "request body too large").into_response();
    };
    *proxy
        .calls
        .lock()
        .expect("calls")
        .entry(iam_action(&parts, &body))
        .or_default() += 1;
    let request = Request::from_parts(parts, Body::from(Bytes::clone(&body)));
    let fault = proxy.dice.lock().expect("dice").roll(proxy.rate);
    proxy.count(fault);
    let json_protocol = request.headers().contains_key("x-amz-target");
    match fault {
        Fault::Pass => crate::aws_forward::forward(&proxy.client, &proxy.upstream, request).await,
        Fault::Throttle => error(
            json_protocol,
            StatusCode::BAD_REQUEST,
            "Throttling",
            "ThrottlingException",
        ),
        Fault::InternalError => error(
            json_protocol,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "InternalFailure",
        ),
        Fault::Unavailable => error(
            json_protocol,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "ServiceUnavailableException",
        ),
        Fault::Slow => {
            tokio::time::sleep(proxy.slow).await;
            crate::aws_forward::forward(&proxy.client, &proxy.upstream, request).await
        }
        Fault::Reset => {
            // A body that fails at once: hyper drops the connection mid-answer, as a reset would.
            let broken = futures::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault proxy: connection reset",
                ))
            });
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(broken))
                .expect("a response")
        }
    }
}

/// The error body of the request's protocol: JSON (`x-amz-target`: DynamoDB, ECS, Secrets Manager) or
/// XML (query and REST-XML: ELB, RDS, Route 53).
fn error(json_protocol: bool, status: StatusCode, xml_code: &str, json_type: &str) -> Response {
    let (content_type, body) = if json_protocol {
        (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": json_type, "message": "injected by the fault proxy"}).to_string(),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{xml_code}</Code><Message>injected by the fault proxy</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        )
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn each_protocol_names_its_iam_action() {
        let auth = |service: &str| {
            format!("AWS4-HMAC-SHA256 Credential=AKIA/20261205/eu-west-1/{service}/aws4_request, SignedHeaders=host")
        };
        let dynamo = parts(
            "POST",
            "/",
            &[
                ("authorization", &auth("dynamodb")),
                ("x-amz-target", "DynamoDB_20120810.PutItem"),
            ],
        );
        assert_eq!(iam_action(&dynamo, b"{}"), "dynamodb:PutItem");
        let rds = parts("POST", "/", &[("authorization", &auth("rds"))]);
        assert_eq!(
            iam_action(&rds, b"Action=DescribeDBInstances&Version=2014-10-31"),
            "rds:DescribeDBInstances"
        );
        let route53 = parts(
            "POST",
            "/2013-04-01/hostedzone/Z1/rrset/",
            &[("authorization", &auth("route53"))],
        );
        assert_eq!(iam_action(&route53, b"<xml/>"), "route53:ChangeResourceRecordSets");
        let change = parts("GET", "/2013-04-01/change/C1", &[("authorization", &auth("route53"))]);
        assert_eq!(iam_action(&change, b""), "route53:GetChange");
        let schedules = parts("GET", "/schedules", &[("authorization", &auth("scheduler"))]);
        assert_eq!(iam_action(&schedules, b""), "scheduler:ListSchedules");
        let schedule = parts("GET", "/schedules/purge", &[("authorization", &auth("scheduler"))]);
        assert_eq!(iam_action(&schedule, b""), "scheduler:GetSchedule");
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_at_about_the_rate() {
        let roll = |seed| {
            let mut dice = Dice::new(seed);
            (0..10_000).map(|_| dice.roll(0.3)).collect::<Vec<_>>()
        };
        assert_eq!(roll(7), roll(7));
        assert_ne!(roll(7), roll(8));
        let faults = roll(7).iter().filter(|f| **f != Fault::Pass).count();
        assert!((2_700..3_300).contains(&faults), "{faults} faults in 10,000 at 30%");
        for fault in FAULTS {
            assert!(roll(7).contains(&fault), "{fault:?} is drawn");
        }
    }
}
