//! The AWS fault proxy: stands between suma and moto and answers a share of the requests with the
//! failures real AWS gives under pressure: throttling (HTTP 400 with the protocol's `Throttling` error,
//! which the SDK retries with backoff), 500 and 503, an answer slower than the client's operation timeout,
//! and a connection reset. The rest is forwarded unchanged. Which request fails, and how, follows a seeded
//! generator, so a run can be repeated. The crash matrix's fault runs use it (RELIABILITY.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
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
        .fallback(handle)
        .with_state(proxy)
}

async fn stats(State(proxy): State<Arc<FaultProxy>>) -> impl IntoResponse {
    axum::Json(proxy.stats())
}

async fn handle(State(proxy): State<Arc<FaultProxy>>, request: Request) -> Response {
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
