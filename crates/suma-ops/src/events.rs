//! Datadog events and monitor gates shared by the mutating commands: an event on the environment's event
//! stream when a deploy or rollback ends, the refusal to start a canary while an `auto-rollback:true`
//! monitor is already alerting (it could never trip the gate), and the watch over those monitors that
//! every analysis of a running canary reads.

use crate::config::Environment;
use crate::metrics::datadog::{Datadog, DatadogSetupError, EventAlert};
use crate::metrics::MetricError;
use crate::report::Reporter;

/// Why the canary preflight's monitor gate refused, or could not look.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("preflight: the monitor check needs the Datadog API: {0}")]
    Setup(#[from] DatadogSetupError),
    #[error("preflight: cannot list the Datadog monitors tagged `{tags}`: {source}")]
    List { tags: String, source: MetricError },
    #[error("preflight: {count} monitor(s) tagged `{tags}` already alerting on `{environment}`: {names}; an alert that is already firing cannot stop a bad canary\nhint: resolve the alert first, or pass `--force` to deploy anyway")]
    Alerting {
        count: usize,
        tags: String,
        environment: String,
        names: String,
    },
}

/// The tag that marks a monitor as a canary gate.
pub const AUTO_ROLLBACK_TAG: &str = "auto-rollback:true";

/// The environment's Datadog API, or `None` when it has no `datadog` section.
pub fn datadog(env: &Environment) -> Result<Option<Datadog>, DatadogSetupError> {
    let Some(config) = &env.datadog else {
        return Ok(None);
    };
    Datadog::from_env(config, env.canary.window, &crate::settings::ProcessEnv).map(Some)
}

/// The tags of the monitors that gate `env`'s canaries: the environment's Datadog tags and
/// [`AUTO_ROLLBACK_TAG`].
pub fn gate_tags(env: &Environment) -> Vec<String> {
    let mut tags = env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
    tags.push(AUTO_ROLLBACK_TAG.to_owned());
    tags
}

/// The gating monitors of an environment: Datadog's monitors carrying [`gate_tags`], read by the
/// preflight and, through [`crate::canary::GateWatch`], at every analysis of a running canary.
pub struct DatadogGates {
    datadog: Datadog,
    tags: Vec<String>,
}

impl DatadogGates {
    /// The environment's gates, or `None` when it has no `datadog` section.
    pub fn of(env: &Environment) -> Result<Option<Self>, DatadogSetupError> {
        Ok(datadog(env)?.map(|datadog| Self {
            datadog,
            tags: gate_tags(env),
        }))
    }

    /// The gating monitors alerting now, each as "`name` (#id)".
    async fn alerting_names(&self) -> Result<Vec<String>, MetricError> {
        let alerting = self.datadog.alerting_monitors(&self.tags).await?;
        Ok(alerting.iter().map(|m| format!("`{}` (#{})", m.name, m.id)).collect())
    }
}

#[async_trait::async_trait]
impl crate::canary::GateWatch for DatadogGates {
    async fn alerting(&self) -> Result<Vec<String>, String> {
        self.alerting_names().await.map_err(|e| e.to_string())
    }
}

/// The gating-monitor watch for `env`'s canaries, or `None` when it has no `datadog` section.
pub fn gate_watch(
    env: &Environment,
) -> Result<Option<std::sync::Arc<dyn crate::canary::GateWatch>>, DatadogSetupError> {
    Ok(DatadogGates::of(env)?.map(|gates| std::sync::Arc::new(gates) as std::sync::Arc<dyn crate::canary::GateWatch>))
}

/// Refuses (unless `force`) when a gating monitor is already alerting.
pub async fn refuse_if_gates_alerting(
    name: &str,
    env: &Environment,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<(), GateError> {
    let Some(gates) = DatadogGates::of(env)? else {
        return Ok(());
    };
    let alerting = gates.alerting_names().await.map_err(|source| GateError::List {
        tags: gates.tags.join(","),
        source,
    })?;
    if alerting.is_empty() {
        return Ok(());
    }
    let names = alerting.join(", ");
    if force {
        reporter.warn(&format!(
            "starting on `{name}` although these gating monitors are alerting (--force): {names}"
        ));
        return Ok(());
    }
    Err(GateError::Alerting {
        count: alerting.len(),
        tags: gates.tags.join(","),
        environment: name.to_owned(),
        names,
    })
}

/// Posts an event to the environment's Datadog event stream, if it has one. An event that cannot be posted
/// is a warning: the operation it describes has already happened.
pub async fn post(
    env: &Environment,
    reporter: &dyn Reporter,
    title: &str,
    text: &str,
    extra_tags: &[String],
    alert: EventAlert,
) {
    let datadog = match datadog(env) {
        Ok(Some(datadog)) => datadog,
        Ok(None) => return,
        Err(e) => {
            reporter.warn(&format!("no Datadog event for `{title}`: {e:#}"));
            return;
        }
    };
    if let Err(e) = datadog
        .deployment_event(title, text, &event_tags(env, extra_tags), alert)
        .await
    {
        reporter.warn(&format!("the Datadog event `{title}` was not recorded: {e:#}"));
    }
}

/// An event's tags: the environment's Datadog tags, then each of `extra` not already there.
pub fn event_tags(env: &Environment, extra: &[String]) -> Vec<String> {
    let mut tags = env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
    for tag in extra {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}
