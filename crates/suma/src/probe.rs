//! HTTP probes of the live service (`/health`, `/version`), behind a trait so that status logic can be
//! tested without a server.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

/// The outcome of one GET.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub url: String,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    /// The body when it is JSON (e.g. `/version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProbeResult {
    pub fn ok(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

#[async_trait]
pub trait HttpProbe: Send + Sync {
    async fn get(&self, url: &str) -> ProbeResult;
}

/// A reqwest client with a short timeout: a health endpoint that takes seconds is unhealthy.
pub struct ReqwestProbe {
    client: reqwest::Client,
}

impl ReqwestProbe {
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("suma/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Self { client }
    }
}

#[async_trait]
impl HttpProbe for ReqwestProbe {
    async fn get(&self, url: &str) -> ProbeResult {
        let started = Instant::now();
        match self.client.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json::<serde_json::Value>().await.ok();
                ProbeResult {
                    url: url.to_owned(),
                    status_code: Some(status),
                    latency_ms: Some(started.elapsed().as_millis() as u64),
                    body,
                    error: None,
                }
            }
            Err(e) => ProbeResult {
                url: url.to_owned(),
                status_code: None,
                latency_ms: None,
                body: None,
                error: Some(crate::probe::describe_reqwest_error(&e)),
            },
        }
    }
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        e.to_string()
    }
}
