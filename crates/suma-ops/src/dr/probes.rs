//! What the DR engine runs with besides AWS in production: the HTTP probe that verifies a switched
//! endpoint (`GET /ready` and a registration) over the service client, and the Datadog event sink.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{EventSink, ServiceProbe};

/// Probes over the service client: `GET /ready`, and a registration of a throwaway address as the write.
pub struct HttpServiceProbe {
    http: suma_http::ServiceClient,
}

impl HttpServiceProbe {
    pub fn new(timeout: Duration) -> Self {
        Self {
            http: suma_http::ServiceClient::new(timeout),
        }
    }
}

#[async_trait]
impl ServiceProbe for HttpServiceProbe {
    async fn ready(&self, base: &str) -> Result<u16, String> {
        let response = self
            .http
            .get(&format!("{base}/ready"))
            .await
            .map_err(|e| e.to_string())?;
        if response.is_success() {
            Ok(response.status)
        } else {
            Err(format!("answered {}", response.status))
        }
    }

    async fn write(&self, base: &str) -> Result<u16, String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // A password that does not contain the address: the service refuses those with 422.
        let body = json!({
            "email": format!("dr-verify-{}@suma.invalid", &id[..12]),
            "password": format!("Suma#{}!x", &id[12..]),
        });
        let response = self
            .http
            .post_json(&format!("{base}/api/auth/register"), &body)
            .await
            .map_err(|e| e.to_string())?;
        if response.is_success() {
            Ok(response.status)
        } else {
            let detail = response
                .json
                .map(|j| j.to_string())
                .or(response.text)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            Err(format!(
                "POST /api/auth/register answered {}: {detail}",
                response.status
            ))
        }
    }
}

/// Datadog events for the engine.
pub struct DatadogEvents {
    pub datadog: crate::metrics::datadog::Datadog,
    pub tags: Vec<String>,
}

#[async_trait]
impl EventSink for DatadogEvents {
    async fn event(&self, title: &str, text: &str, success: bool) -> Result<(), String> {
        use crate::metrics::datadog::EventAlert;
        let alert = if success {
            EventAlert::Success
        } else {
            EventAlert::Error
        };
        self.datadog
            .deployment_event(title, text, &self.tags, alert)
            .await
            .map_err(|e| e.to_string())
    }
}
