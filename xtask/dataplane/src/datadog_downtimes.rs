//! The Datadog stand-in's downtimes (v2, `/api/v2/downtime`), kept beside its monitors file
//! (`monitors.json` → `monitors.downtimes.json`):
//! - `POST /api/v2/downtime`: checked as Datadog checks it (`data.type` `downtime`, a `scope`, a
//!   `monitor_identifier` naming an existing monitor by id or tags, a schedule whose `end` is after its
//!   `start`), stored `active` from `start` (now by default), answered in the API's shape;
//! - `GET /api/v2/downtime` (`current_only`, `page[offset]`, `page[limit]`): the downtimes, those in
//!   effect now when asked, 30 a page unless asked otherwise;
//! - `DELETE /api/v2/downtime/{id}`: cancelled (`canceled` set, `204`), like Datadog, which keeps them.
//!
//! Monitors read with `with_downtimes=true` carry `matching_downtimes` (v1's shape, a numeric id) for the
//! downtimes in effect on them, which is how Datadog reports a monitor muted by a downtime.

use std::path::PathBuf;

use serde_json::{json, Value};

/// Where the downtimes of the stub whose monitors are in `monitors_file` are kept.
pub fn file_beside(monitors_file: &std::path::Path) -> PathBuf {
    monitors_file.with_extension("downtimes.json")
}

fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

/// A stored downtime in effect at `now`: not cancelled, started, not ended.
pub fn in_effect(downtime: &Value, now: i64) -> bool {
    let schedule = &downtime["attributes"]["schedule"];
    downtime["attributes"]["canceled"].is_null()
        && schedule["start"].as_str().and_then(parse_time).is_none_or(|s| s <= now)
        && schedule["end"].as_str().and_then(parse_time).is_none_or(|e| e > now)
}

/// Whether `downtime` applies to `monitor`: by its id, or by tags the monitor all carries.
fn applies_to(downtime: &Value, monitor: &Value) -> bool {
    let identifier = &downtime["attributes"]["monitor_identifier"];
    if let Some(id) = identifier["monitor_id"].as_i64() {
        return monitor["id"].as_i64() == Some(id);
    }
    identifier["monitor_tags"].as_array().is_some_and(|wanted| {
        let have = monitor["tags"].as_array();
        wanted.iter().all(|t| have.is_some_and(|have| have.contains(t)))
    })
}

/// The new downtime for request `body` at `now`, or every problem Datadog would answer `400` with.
/// `monitors` are the stored monitors (a `monitor_id` must name one); `legacy_id` numbers it for v1.
pub fn create(body: &Value, monitors: &[Value], now: i64, legacy_id: i64) -> Result<Value, Vec<String>> {
    let data = &body["data"];
    let attributes = &data["attributes"];
    let mut problems = Vec::new();
    if data["type"] != "downtime" {
        problems.push("`data.type` must be `downtime`".to_owned());
    }
    match attributes["scope"].as_str() {
        Some(scope) if !scope.trim().is_empty() => {}
        _ => problems.push("`data.attributes.scope` is required (`*` for every group)".to_owned()),
    }
    let identifier = &attributes["monitor_identifier"];
    match (identifier["monitor_id"].as_i64(), identifier["monitor_tags"].as_array()) {
        (Some(id), _) if !monitors.iter().any(|m| m["id"].as_i64() == Some(id)) => {
            problems.push(format!("monitor {id} not found"))
        }
        (Some(_), _) => {}
        (None, Some(tags)) if !tags.is_empty() && tags.iter().all(Value::is_string) => {}
        _ => problems.push("`data.attributes.monitor_identifier` needs `monitor_id` or `monitor_tags`".to_owned()),
    }
    let schedule = &attributes["schedule"];
    let start = match schedule["start"].as_str() {
        None => Some(now),
        Some(text) => parse_time(text),
    };
    let end = match schedule["end"].as_str() {
        None => Ok(None),
        Some(text) => parse_time(text).map(Some).ok_or(()),
    };
    match (start, end) {
        (None, _) | (_, Err(())) => {
            problems.push("`schedule.start` and `schedule.end` must be RFC 3339 times".to_owned())
        }
        (Some(start), Ok(Some(end))) if end <= start => {
            problems.push("`schedule.end` must be after its start".to_owned())
        }
        _ => {}
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let stamp = crate::datadog_stub::rfc3339(now);
    Ok(json!({
        "type": "downtime",
        "id": uuid::Uuid::new_v4().to_string(),
        "legacy_id": legacy_id,
        "attributes": {
            "scope": attributes["scope"],
            "monitor_identifier": identifier,
            "message": attributes["message"],
            "mute_first_recovery_notification": attributes["mute_first_recovery_notification"].as_bool().unwrap_or(false),
            "display_timezone": "UTC",
            "notify_end_states": ["alert", "no data", "warn"],
            "notify_end_types": ["expired"],
            "schedule": {"start": crate::datadog_stub::rfc3339(start.unwrap_or(now)), "end": schedule["end"]},
            "status": "active",
            "canceled": null,
            "created": stamp,
            "modified": stamp,
        }
    }))
}

/// A stored downtime as the v2 API answers it (without the stand-in's v1 number).
pub fn answer(downtime: &Value) -> Value {
    let mut shown = downtime.clone();
    if let Some(object) = shown.as_object_mut() {
        object.remove("legacy_id");
    }
    shown
}

/// `matching_downtimes` of `monitor`: the downtimes in effect on it, in v1's shape.
pub fn matching(monitor: &Value, downtimes: &[Value], now: i64) -> Value {
    Value::Array(
        downtimes
            .iter()
            .filter(|d| in_effect(d, now) && applies_to(d, monitor))
            .map(|d| {
                let schedule = &d["attributes"]["schedule"];
                json!({
                    "id": d["legacy_id"],
                    "start": schedule["start"].as_str().and_then(parse_time),
                    "end": schedule["end"].as_str().and_then(parse_time),
                    "scope": [d["attributes"]["scope"]],
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_540_400; // 2026-12-06T07:00:00Z

    fn request(identifier: Value, end: Option<&str>) -> Value {
        json!({"data": {"type": "downtime", "attributes": {
            "scope": "*", "monitor_identifier": identifier, "schedule": {"end": end}}}})
    }

    #[test]
    fn a_downtime_mutes_its_monitor_until_it_ends_or_is_cancelled() {
        let monitors = [json!({"id": 7, "tags": ["env:staging"]}), json!({"id": 8, "tags": []})];
        let mut by_id = create(
            &request(json!({"monitor_id": 7}), Some("2026-12-06T08:00:00Z")),
            &monitors,
            NOW,
            1,
        )
        .unwrap();
        let by_tags = create(
            &request(json!({"monitor_tags": ["env:staging"]}), None),
            &monitors,
            NOW,
            2,
        )
        .unwrap();
        assert_eq!(
            by_id["attributes"]["schedule"]["start"],
            crate::datadog_stub::rfc3339(NOW)
        );
        assert!(answer(&by_id).get("legacy_id").is_none());
        let on_seven = matching(&monitors[0], &[by_id.clone(), by_tags.clone()], NOW + 60);
        assert_eq!(on_seven.as_array().unwrap().len(), 2);
        assert_eq!(
            on_seven[0],
            json!({"id": 1, "start": NOW, "end": NOW + 3600, "scope": ["*"]})
        );
        assert_eq!(matching(&monitors[1], &[by_id.clone(), by_tags], NOW + 60), json!([]));
        assert!(!in_effect(&by_id, NOW + 3600), "ended");
        by_id["attributes"]["canceled"] = json!("2026-12-06T07:30:00Z");
        assert!(!in_effect(&by_id, NOW + 60), "cancelled");
    }

    #[test]
    fn what_datadog_refuses_is_refused_with_every_problem() {
        let monitors = [json!({"id": 7})];
        let problems = create(
            &json!({"data": {"type": "dt", "attributes": {"monitor_identifier": {"monitor_id": 9},
                     "schedule": {"start": "2026-12-06T08:00:00Z", "end": "2026-12-06T07:00:00Z"}}}}),
            &monitors,
            NOW,
            1,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "`data.type` must be `downtime`",
                "`data.attributes.scope` is required (`*` for every group)",
                "monitor 9 not found",
                "`schedule.end` must be after its start",
            ]
        );
    }
}
