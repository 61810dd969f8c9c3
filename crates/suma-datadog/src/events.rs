//! Events: a deployment promoted or rolled back, and the generic events runbooks post.

use datadog_api_client::datadogV1::model::{EventAlertType, EventCreateRequest};
use serde::Serialize;
use suma_core::metrics::MetricError;

use crate::{from_client, Datadog, MAX_EVENT_TEXT};

/// The kind of a deployment event, which Datadog shows as its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAlert {
    Info,
    Success,
    Warning,
    Error,
}

impl Datadog {
    /// Posts an event (a deployment promoted, rolled back, ...) to the event stream.
    pub async fn deployment_event(
        &self,
        title: &str,
        text: &str,
        tags: &[String],
        alert_type: EventAlert,
    ) -> Result<(), MetricError> {
        self.event(title, text, alert_type, tags).await
    }

    /// Posts an event to the event stream: `title`, `text` (cut to Datadog's 4,000 characters), its kind
    /// (the colour Datadog shows) and `tags` (give the environment's tags so the event is found beside its
    /// monitors). Needs the API key only.
    pub async fn event(
        &self,
        title: &str,
        text: &str,
        alert_type: EventAlert,
        tags: &[String],
    ) -> Result<(), MetricError> {
        let text = if text.chars().count() > MAX_EVENT_TEXT {
            let mut t: String = text.chars().take(MAX_EVENT_TEXT - 1).collect();
            t.push('…');
            t
        } else {
            text.to_owned()
        };
        let alert_type = match alert_type {
            EventAlert::Info => EventAlertType::INFO,
            EventAlert::Success => EventAlertType::SUCCESS,
            EventAlert::Warning => EventAlertType::WARNING,
            EventAlert::Error => EventAlertType::ERROR,
        };
        let body = EventCreateRequest::new(text, title.to_owned())
            .tags(tags.to_vec())
            .alert_type(alert_type);
        self.events
            .create_event(body)
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("posting event `{title}` to {}", self.endpoint)))
    }
}
