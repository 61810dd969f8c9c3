//! HTTP probes of the live service (`/health`, `/version`), behind a trait so that status logic can be
//! tested without a server; [`ServiceClient`] is the real one.

use async_trait::async_trait;
use serde::Serialize;

use crate::ServiceClient;

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

#[async_trait]
impl HttpProbe for ServiceClient {
    async fn get(&self, url: &str) -> ProbeResult {
        match ServiceClient::get(self, url).await {
            Ok(response) => ProbeResult {
                url: url.to_owned(),
                status_code: Some(response.status),
                latency_ms: Some(response.latency.as_millis() as u64),
                body: response.json,
                error: None,
            },
            Err(e) => ProbeResult {
                url: url.to_owned(),
                status_code: None,
                latency_ms: None,
                body: None,
                error: Some(e.reason),
            },
        }
    }
}
