//! Datadog events and monitor gates shared by the mutating commands: an event on the environment's event
//! stream when a deploy or rollback ends, and the refusal to start a canary while an `auto-rollback:true`
//! monitor is already alerting (it could never trip the gate).

use anyhow::{bail, Context as _};

use crate::config::Environment;
use crate::metrics::datadog::{Datadog, EventAlert};
use crate::report::Reporter;

/// The tag that marks a monitor as a canary gate.
pub const AUTO_ROLLBACK_TAG: &str = "auto-rollback:true";

/// The environment's Datadog API, or `None` when it has no `datadog` section.
pub fn datadog(env: &Environment) -> anyhow::Result<Option<Datadog>> {
    let Some(config) = &env.datadog else {
        return Ok(None);
    };
    let client = Datadog::from_env(config, env.canary.window, &crate::settings::ProcessEnv)
        .context("cannot set up the Datadog API client")?;
    Ok(Some(client))
}

/// The tags of the monitors that gate `env`'s canaries: the environment's Datadog tags and
/// [`AUTO_ROLLBACK_TAG`].
pub fn gate_tags(env: &Environment) -> Vec<String> {
    let mut tags = env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
    tags.push(AUTO_ROLLBACK_TAG.to_owned());
    tags
}

/// Refuses (unless `force`) when a gating monitor is already alerting.
pub async fn refuse_if_gates_alerting(
    name: &str,
    env: &Environment,
    force: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let Some(datadog) = datadog(env).context("preflight: the monitor check needs the Datadog API")? else {
        return Ok(());
    };
    let tags = gate_tags(env);
    let alerting = datadog.alerting_monitors(&tags).await.with_context(|| {
        format!(
            "preflight: cannot list the Datadog monitors tagged `{}`",
            tags.join(",")
        )
    })?;
    if alerting.is_empty() {
        return Ok(());
    }
    let names = alerting
        .iter()
        .map(|m| format!("`{}` (#{})", m.name, m.id))
        .collect::<Vec<_>>()
        .join(", ");
    if force {
        reporter.warn(&format!(
            "starting on `{name}` although these gating monitors are alerting (--force): {names}"
        ));
        return Ok(());
    }
    bail!(
        "preflight: {} monitor(s) tagged `{}` already alerting on `{name}`: {names}; an alert that is already firing cannot stop a bad canary\nhint: resolve the alert first, or pass `--force` to deploy anyway",
        alerting.len(),
        tags.join(",")
    )
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
    let mut tags = env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
    for tag in extra_tags {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    if let Err(e) = datadog.deployment_event(title, text, &tags, alert).await {
        reporter.warn(&format!("the Datadog event `{title}` was not recorded: {e:#}"));
    }
}
