//! The deploy settings of an environment besides the canary's analysis: blue/green (`bluegreen:`), the
//! deploy hooks (`hooks:`) and where deploys are announced (`notifications:`). Their cross-field checks
//! are with the others in `validate` (`mod.rs`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::HttpUrl;

/// A blue/green deploy: the release comes up on the idle (green) service at full capacity, is checked
/// through the test listener before any traffic, takes all traffic in one flip, and is analysed while
/// blue stays up on the old revision, so a rollback is one flip back.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BlueGreenPolicy {
    /// Analysis after the cutover, at `canary.interval` against the canary's thresholds.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub bake: Duration,
    /// How much longer blue stays up on the old revision after the bake, still analysed: a rollback in
    /// this window is one flip. 0 promotes right after the bake.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub keep_blue: Duration,
    /// A test listener that forwards to the green target group: the pre-traffic checks ask its
    /// `/health` and `/version` before any user traffic reaches green. Without it they are skipped.
    pub test_url: Option<HttpUrl>,
}

impl Default for BlueGreenPolicy {
    fn default() -> Self {
        Self {
            bake: Duration::from_secs(600),
            keep_blue: Duration::from_secs(300),
            test_url: None,
        }
    }
}

/// The deploy hooks of an environment, in the order they run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeployHooks {
    /// Once the new release is up and before any user reaches it; a path (`/health`) is asked of the
    /// test listener (`bluegreen.test_url`), which forwards to the canary target group.
    pub pre_traffic: Vec<DeployHook>,
    /// After each traffic step's analysis passed (each canary step, the blue/green bake and keep window);
    /// a path is asked of the environment's `url`.
    pub post_step: Vec<DeployHook>,
    /// After the promotion; a path is asked of the environment's `url`. A failure rolls the stable service
    /// back to the revision recorded before the deploy.
    pub post_promote: Vec<DeployHook>,
}

/// One check a deploy runs: an HTTP check (GET `url`, expecting a status, optionally a piece of the body
/// and a latency ceiling, tried up to `attempts` times 2 s apart), or a runbook of checks run unattended
/// as a child operation of the deploy (`runbook`, with its `params`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployHook {
    /// How the journal and messages name it.
    pub name: String,
    /// An absolute http(s) URL, or a path starting with `/` on the URL the hook's stage asks.
    #[serde(default)]
    pub url: Option<String>,
    /// A runbook file (relative to this file's directory) whose steps only read: checks, queries,
    /// waits. It runs unattended, so it may not ask a person, and it changes nothing.
    #[serde(default)]
    pub runbook: Option<std::path::PathBuf>,
    /// The runbook's parameters.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_hook_status")]
    pub expect_status: u16,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    #[serde(default = "default_hook_attempts")]
    pub attempts: u32,
}

fn default_hook_status() -> u16 {
    200
}

fn default_hook_attempts() -> u32 {
    3
}

/// A receiver of deploy notifications. Its URL is a credential (a Slack webhook URL is its own token), so
/// it is never written here: it comes from an environment variable or a Secrets Manager secret, and it is
/// never printed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationTarget {
    pub kind: NotificationKind,
    /// The environment variable that holds the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// The Secrets Manager secret (name or ARN, in the primary region) whose current value is the URL.
    #[serde(default)]
    pub url_secret: Option<String>,
    /// The events sent; every one when empty.
    #[serde(default)]
    pub events: Vec<NotificationEvent>,
}

/// The shape of what is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// Any receiver of a JSON document per event (event, environment, service, version, operation, ...).
    Webhook,
}

/// What a deploy announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationEvent {
    Start,
    Pause,
    Promote,
    Rollback,
    Abort,
}

impl NotificationTarget {
    /// Whether `event` is sent to this receiver.
    pub fn wants(&self, event: NotificationEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}
