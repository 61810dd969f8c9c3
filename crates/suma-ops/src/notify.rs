//! Deploy notifications: a Slack incoming webhook or any JSON webhook, told when a deploy starts, pauses,
//! is promoted, rolls back or is aborted. The receivers' URLs are credentials (a Slack webhook URL is its
//! own token): they are read from an environment variable or a Secrets Manager secret when the deploy
//! starts and never printed, not even in an error. A notification is never worth a failed deploy: a URL
//! that cannot be read, or a post that fails, is a warning.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::aws::secrets::{SecretVersionsApi, VersionRef};
use crate::config::{Environment, NotificationEvent, NotificationKind, NotificationTarget};
use crate::report::Reporter;
use suma_core::settings::EnvSource;

/// How long one post may take: a slow receiver must not hold up a rollback.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// One deploy event, as every receiver is told it.
#[derive(Debug, Clone, Serialize)]
pub struct DeployEvent {
    pub event: NotificationEvent,
    pub environment: String,
    pub service: String,
    pub image: String,
    pub version: String,
    /// `canary` or `blue-green`.
    pub strategy: String,
    pub operation: String,
    pub actor: String,
    /// Why it paused, rolled back or was aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DeployEvent {
    /// `event` of the deploy `op` (of `env`'s service), with `reason` when it paused, rolled back or
    /// was aborted.
    pub fn of(
        env: &Environment,
        op: &crate::journal::Operation,
        event: NotificationEvent,
        reason: Option<String>,
    ) -> Self {
        let image = op
            .parameters
            .get("image")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        Self {
            event,
            environment: op.environment.clone(),
            service: env.ecs.service.clone(),
            version: crate::canary::version_of(&image),
            image,
            strategy: crate::canary::Strategy::of(&op.kind).noun().to_owned(),
            operation: op.id.clone(),
            actor: op.actor.clone(),
            reason,
        }
    }

    /// The line a person reads in a chat channel.
    pub fn text(&self) -> String {
        let what = match self.event {
            NotificationEvent::Start => "started",
            NotificationEvent::Pause => "paused",
            NotificationEvent::Promote => "promoted",
            NotificationEvent::Rollback => "rolled back",
            NotificationEvent::Abort => "aborted",
        };
        let reason = self.reason.as_ref().map_or(String::new(), |r| format!(": {r}"));
        format!(
            "{} {} {} {what} on {}{reason} (operation {}, by {})",
            self.service, self.version, self.strategy, self.environment, self.operation, self.actor
        )
    }

    /// What is posted to a receiver of `kind`.
    pub fn payload(&self, kind: NotificationKind) -> Value {
        match kind {
            NotificationKind::Slack => json!({ "text": self.text() }),
            NotificationKind::Webhook => json!({
                "source": "suma",
                "at": chrono::Utc::now(),
                "text": self.text(),
                "event": self,
            }),
        }
    }
}

/// One receiver whose URL was read.
struct Receiver {
    target: NotificationTarget,
    url: String,
}

/// The environment's receivers, their URLs read once; cheap to share between the command and the engine.
#[derive(Clone, Default)]
pub struct Notifier {
    receivers: Arc<Vec<Receiver>>,
    /// One client for every post of the deploy.
    client: Option<suma_http::ServiceClient>,
    reporter: Option<Arc<dyn Reporter>>,
}

impl Notifier {
    /// Reads every receiver's URL; one that cannot be read is left out with a warning naming where it
    /// was looked for (never the URL).
    pub async fn resolve(
        env: &Environment,
        secrets: &dyn SecretVersionsApi,
        vars: &dyn EnvSource,
        reporter: Arc<dyn Reporter>,
    ) -> Self {
        let mut receivers = Vec::new();
        for target in &env.notifications {
            match url_of(target, secrets, vars).await {
                Ok(url) => receivers.push(Receiver {
                    target: target.clone(),
                    url,
                }),
                Err(why) => reporter.warn(&format!(
                    "{} notifications will not be sent: {why}",
                    kind_name(target.kind)
                )),
            }
        }
        Self {
            receivers: Arc::new(receivers),
            client: Some(suma_http::ServiceClient::new(POST_TIMEOUT)),
            reporter: Some(reporter),
        }
    }

    /// Posts `event` to every receiver that wants it, all at once; a failure is a warning.
    pub async fn send(&self, event: &DeployEvent) {
        let Some(client) = &self.client else {
            return;
        };
        let posts = self
            .receivers
            .iter()
            .filter(|r| r.target.wants(event.event))
            .map(|r| async move {
                let answer = client.post_json(&r.url, &event.payload(r.target.kind)).await;
                (r, answer)
            });
        for (receiver, answer) in futures::future::join_all(posts).await {
            let problem = match answer {
                Ok(response) if response.is_success() => continue,
                Ok(response) => format!("it answered {}", response.status),
                Err(e) => redact(&e.reason, &receiver.url),
            };
            if let Some(reporter) = &self.reporter {
                reporter.warn(&format!(
                    "the {} notification of `{}` was not delivered: {problem}",
                    kind_name(receiver.target.kind),
                    event.operation
                ));
            }
        }
    }
}

/// `reason` without the URL: the HTTP client's errors name it, and the URL is a credential. A URL the
/// client wrote back normalised (a trailing slash) is caught by its `for url (...)` wrapping.
fn redact(reason: &str, url: &str) -> String {
    let mut out = reason.replace(url, "<url>");
    while let Some(start) = out.find("for url (") {
        let from = start + "for url (".len();
        let Some(len) = out[from..].find(')') else { break };
        if &out[from..from + len] == "<url>" {
            break;
        }
        out.replace_range(from..from + len, "<url>");
    }
    out
}

fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Slack => "Slack",
        NotificationKind::Webhook => "webhook",
    }
}

/// The receiver's URL, from where the configuration says it is.
async fn url_of(
    target: &NotificationTarget,
    secrets: &dyn SecretVersionsApi,
    vars: &dyn EnvSource,
) -> Result<String, String> {
    let url = match (&target.url_env, &target.url_secret) {
        (Some(name), _) => vars
            .var(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("`{name}` is not set"))?,
        (None, Some(secret)) => {
            secrets
                .value(secret, &VersionRef::Stage("AWSCURRENT"))
                .await
                .map_err(|e| format!("secret `{secret}`: {e}"))?
                .ok_or_else(|| format!("secret `{secret}` has no current value"))?
                .value
        }
        (None, None) => return Err("no `url_env` or `url_secret`".to_owned()),
    };
    let url = url.trim().to_owned();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        let from = target
            .url_env
            .as_deref()
            .or(target.url_secret.as_deref())
            .unwrap_or_default();
        return Err(format!("the value of `{from}` is not an http(s) URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: NotificationEvent, reason: Option<&str>) -> DeployEvent {
        DeployEvent {
            event: kind,
            environment: "production".into(),
            service: "auth-service".into(),
            image: "repo/auth-service:1.5.0".into(),
            version: "1.5.0".into(),
            strategy: "canary".into(),
            operation: "op-1".into(),
            actor: "ci@runner".into(),
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn slack_gets_a_line_and_a_webhook_the_whole_event() {
        let rolled_back = event(NotificationEvent::Rollback, Some("error_rate = 0.05 above 0.005"));
        assert_eq!(
            rolled_back.payload(NotificationKind::Slack),
            json!({"text": "auth-service 1.5.0 canary rolled back on production: error_rate = 0.05 above 0.005 (operation op-1, by ci@runner)"})
        );
        let hook = rolled_back.payload(NotificationKind::Webhook);
        assert_eq!(hook["event"]["event"], "rollback");
        assert_eq!(hook["event"]["operation"], "op-1");
        assert_eq!(hook["source"], "suma");
        let started = event(NotificationEvent::Start, None).payload(NotificationKind::Webhook);
        assert!(started["event"].get("reason").is_none());
    }

    #[test]
    fn the_url_never_reaches_a_message() {
        let url = "https://hooks.slack.example/services/T0/B0/SECRET";
        let cases = [
            (
                format!("error sending request for url ({url}): connection refused"),
                "error sending request for url (<url>): connection refused",
            ),
            (
                format!("error sending request for url ({url}/): timed out"),
                "error sending request for url (<url>): timed out",
            ),
            ("timed out".to_owned(), "timed out"),
        ];
        for (reason, expected) in cases {
            assert_eq!(redact(&reason, url), expected);
        }
    }

    #[test]
    fn a_receiver_without_events_wants_every_one() {
        let mut target = NotificationTarget {
            kind: NotificationKind::Slack,
            url_env: Some("X".into()),
            url_secret: None,
            events: vec![],
        };
        assert!(target.wants(NotificationEvent::Pause));
        target.events = vec![NotificationEvent::Rollback, NotificationEvent::Promote];
        assert!(target.wants(NotificationEvent::Rollback));
        assert!(!target.wants(NotificationEvent::Start));
    }
}
