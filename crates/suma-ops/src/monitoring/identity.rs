//! What marks a Datadog resource as suma's, in which environment, from which template.
//!
//! Ownership: a monitor (or an SLO: they are tagged alike) is suma's in an environment when it carries [`MANAGED_BY_TAG`] and the
//! environment's own tag, [`environment_tag`] (`suma-env:NAME`): one tag no other environment carries,
//! so an environment whose `datadog.tags` are a subset of another's never owns, nor prunes, the other's
//! monitors. Datadog's v1 dashboards take only `team:` tags, so a dashboard is suma's when a line of its
//! description is [`dashboard_marker`].
//!
//! Identity: each resource also carries its template's key ([`template_tag`], `suma-template:FILE`), a
//! tag on a monitor and a description line on a dashboard. The plan matches a template to the resource
//! carrying its key before any by name, so renaming a monitor in its template updates it in place (its
//! id, history, links and downtimes kept) instead of creating a second one and orphaning the first.

use std::path::Path;

use serde_json::Value;

/// The tag every monitor suma manages carries.
pub const MANAGED_BY_TAG: &str = "managed-by:suma";

/// What every environment tag starts with.
const ENVIRONMENT_TAG_PREFIX: &str = "suma-env:";

/// The first environment tag (`suma-env:NAME`) among `tags`, whichever environment it names.
pub fn environment_tag_among<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    tags.into_iter().find(|t| t.starts_with(ENVIRONMENT_TAG_PREFIX))
}

/// The tag that marks a monitor as suma's in `environment`, and no other.
pub fn environment_tag(environment: &str) -> String {
    format!("{ENVIRONMENT_TAG_PREFIX}{environment}")
}

/// Whose a monitor is, from its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// suma's, in this environment.
    Owned,
    /// suma's from before monitors carried [`environment_tag`], with every tag of this environment and
    /// no other environment's tag: updated in place (which stamps the tag), never pruned.
    Legacy,
    /// Someone else's, or another environment's.
    NotOurs,
}

/// Whose a monitor with `tags` is, seen from `environment` with Datadog tags `env_tags`.
pub fn monitor_owner(tags: &[String], environment: &str, env_tags: &[String]) -> Ownership {
    if !tags.iter().any(|t| t == MANAGED_BY_TAG) {
        return Ownership::NotOurs;
    }
    let own = environment_tag(environment);
    if tags.contains(&own) {
        return Ownership::Owned;
    }
    let another_environment = environment_tag_among(tags.iter().map(String::as_str)).is_some();
    if !another_environment && env_tags.iter().all(|t| tags.contains(t)) {
        Ownership::Legacy
    } else {
        Ownership::NotOurs
    }
}

/// The description line that marks a dashboard as managed by suma for `environment`.
pub fn dashboard_marker(environment: &str) -> String {
    format!("{MANAGED_BY_TAG} {}", environment_tag(environment))
}

/// Whether a dashboard description carries the marker of `environment`.
pub fn dashboard_is_managed(description: Option<&str>, environment: &str) -> bool {
    let marker = dashboard_marker(environment);
    description.is_some_and(|d| d.lines().any(|l| l.trim() == marker))
}

/// The prefix of the tag (or dashboard description line) naming a resource's template.
pub const TEMPLATE_TAG_PREFIX: &str = "suma-template:";

/// A template's key: its file name without the extension, lower-cased (Datadog lower-cases tags).
pub fn template_key(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The tag (and dashboard description line) that ties a resource to template `key`.
pub fn template_tag(key: &str) -> String {
    format!("{TEMPLATE_TAG_PREFIX}{key}")
}

/// The template key among a monitor's tags, or on a line of a dashboard's description.
pub fn template_of<'a>(marks: impl IntoIterator<Item = &'a str>) -> Option<String> {
    marks
        .into_iter()
        .find_map(|m| m.trim().strip_prefix(TEMPLATE_TAG_PREFIX))
        .map(str::to_owned)
}

/// Stamps a monitor or an SLO as suma's in `environment`: [`MANAGED_BY_TAG`], [`environment_tag`],
/// `env_tags` (the environment's Datadog tags, which gates and compliance select by) and its template's
/// tag ([`template_tag`]) added to its tags.
pub fn stamp_tags(body: &mut Value, environment: &str, env_tags: &[String], key: &str) {
    let Some(object) = body.as_object_mut() else {
        return;
    };
    let mut tags: Vec<String> = object
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    tags.push(MANAGED_BY_TAG.to_owned());
    tags.push(environment_tag(environment));
    tags.extend(env_tags.iter().cloned());
    tags.push(template_tag(key));
    object.insert("tags".into(), Value::from(tags));
}

/// Stamps a dashboard as suma's in `environment`: the marker line and its template's line appended to
/// its description (v1 dashboards take no free tags).
pub fn stamp_dashboard(body: &mut Value, environment: &str, key: &str) {
    let Some(object) = body.as_object_mut() else {
        return;
    };
    let description = object.get("description").and_then(Value::as_str).unwrap_or_default();
    let marker = format!("{}\n{}", dashboard_marker(environment), template_tag(key));
    let stamped = if description.trim().is_empty() {
        marker
    } else {
        format!("{}\n\n{marker}", description.trim_end())
    };
    object.insert("description".into(), Value::String(stamped));
}
