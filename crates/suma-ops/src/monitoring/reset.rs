//! Monitor fields a template may leave out. The plan compares only what a template sets (Datadog adds
//! its own fields and defaults), so a field dropped from a template, or one set by hand in Datadog, would
//! otherwise stay forever. For the fields listed here Datadog's value when unset is known: one that
//! Datadog holds otherwise, for a template that does not set it, is reset to that value by the next
//! `apply` and shows in `diff` like any other change.
//!
//! The list is every field of Datadog's v1 `Monitor`, `MonitorOptions`, `MonitorThresholds` and
//! `MonitorThresholdWindowOptions` schemas that a client sets and whose unset value the API specification
//! states (`.generator/schemas/v1/openapi.yaml` of Datadog's API clients, read 2026-12 at `286b280`): a
//! `default:`, a description's "Defaults to", or `nullable` with no default (null is unset). Left out,
//! because the specification gives them no unset value or it depends on the monitor's type:
//! `notify_by`, `on_missing_data`, `enable_logs_sample`, `enable_samples`, `group_retention_duration`,
//! `scheduling_options`, `variables`, `thresholds.critical` (required) and the deprecated `locked`,
//! `silenced`, `groupby_simple_monitor`; and read-only fields. A template that once set one of those
//! and no longer does leaves Datadog's value as it is.

use serde_json::{json, Value};

use super::FieldChange;

/// Paths (dots between keys) and the value Datadog gives each when it is not set.
fn defaults() -> [(&'static str, Value); 25] {
    [
        // Monitor.
        ("priority", Value::Null),
        ("restricted_roles", Value::Null),
        ("draft_status", json!("published")),
        // MonitorOptions: notification.
        ("options.renotify_interval", Value::Null),
        ("options.renotify_statuses", Value::Null),
        ("options.renotify_occurrences", Value::Null),
        ("options.escalation_message", Value::Null),
        ("options.include_tags", json!(true)),
        ("options.notify_audit", json!(false)),
        ("options.notification_preset_name", json!("show_all")),
        // MonitorOptions: evaluation and missing data.
        ("options.notify_no_data", json!(false)),
        ("options.no_data_timeframe", Value::Null),
        ("options.evaluation_delay", Value::Null),
        ("options.new_group_delay", Value::Null),
        ("options.new_host_delay", json!(300)),
        ("options.require_full_window", json!(false)),
        ("options.timeout_h", Value::Null),
        ("options.min_failure_duration", json!(0)),
        ("options.min_location_failed", json!(1)),
        // MonitorThresholds and MonitorThresholdWindowOptions.
        ("options.thresholds.warning", Value::Null),
        ("options.thresholds.ok", Value::Null),
        ("options.thresholds.unknown", Value::Null),
        ("options.thresholds.critical_recovery", Value::Null),
        ("options.thresholds.warning_recovery", Value::Null),
        ("options.threshold_windows.trigger_window", Value::Null),
    ]
}

fn at<'v>(body: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(body, |v, key| v.get(key))
}

fn set(body: &mut Value, path: &str, value: Value) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().expect("a path has a key");
    let mut here = body;
    for key in keys {
        if !here.get(key).is_some_and(Value::is_object) {
            here[key] = json!({});
        }
        here = &mut here[key];
    }
    here[last] = value;
}

/// The resets `desired` (a template's monitor) calls for against `actual` (Datadog's): each a change to
/// the default, also written into `desired` so that the update sends it.
pub fn resets(desired: &mut Value, actual: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    for (path, default) in defaults() {
        if at(desired, path).is_some() {
            continue;
        }
        let Some(have) = at(actual, path) else { continue };
        let unset = have.is_null() || *have == default || have.as_str() == Some("");
        if unset {
            continue;
        }
        changes.push(FieldChange {
            path: path.to_owned(),
            before: Some(have.clone()),
            after: default.clone(),
        });
        set(desired, path, default);
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_template_no_longer_sets_goes_back_to_datadogs_default() {
        let mut desired = json!({"name": "m", "options": {"thresholds": {"critical": 5}}});
        let actual = json!({"name": "m", "priority": 1, "options": {
            "thresholds": {"critical": 5, "warning": 2}, "renotify_interval": 30, "notify_no_data": false,
            "escalation_message": "", "include_tags": true, "new_host_delay": 300, "notify_audit": true}});
        let changes = resets(&mut desired, &actual);
        let paths: Vec<(&str, Option<&Value>, &Value)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.as_ref(), &c.after))
            .collect();
        assert_eq!(
            paths,
            [
                ("priority", Some(&json!(1)), &Value::Null),
                ("options.renotify_interval", Some(&json!(30)), &Value::Null),
                ("options.notify_audit", Some(&json!(true)), &json!(false)),
                ("options.thresholds.warning", Some(&json!(2)), &Value::Null),
            ],
            "values at their default (false, an empty text, include_tags true, new_host_delay 300) and fields \
             without a documented default are left alone"
        );
        assert_eq!(
            desired,
            json!({"name": "m", "priority": null, "options": {"renotify_interval": null, "notify_audit": false,
                   "thresholds": {"critical": 5, "warning": null}}}),
            "the update sends them"
        );
        // Set by the template: its value stands, whatever Datadog holds.
        let mut kept = json!({"priority": 2});
        assert!(resets(&mut kept, &json!({"priority": 1})).is_empty());
        // Once reset, nothing differs.
        assert!(resets(&mut json!({"name": "m"}), &desired).is_empty());
    }
}
