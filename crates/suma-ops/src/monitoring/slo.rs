//! What Datadog refuses in a service level objective, checked on the rendered template before any call:
//! Datadog has no `validate` endpoint for SLOs (as it has for monitors), so without this the first bad
//! threshold would surface as the failed third write of an apply.

use serde_json::Value;

/// The timeframes Datadog keeps an SLO's status over.
const TIMEFRAMES: &[&str] = &["7d", "30d", "90d"];

/// Every problem with SLO `body`, each naming the field and the fix; empty when Datadog would take it.
pub fn slo_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
    };
    match body["type"].as_str() {
        Some("metric") => {
            if text("/query/numerator").is_none() || text("/query/denominator").is_none() {
                problems.push(
                    "a `type: metric` SLO needs `query.numerator` (good events) and `query.denominator` (all events)"
                        .to_owned(),
                );
            }
        }
        Some("time_slice") => {
            if !body["sli_specification"].is_object() {
                problems.push("a `type: time_slice` SLO needs `sli_specification`".to_owned());
            }
        }
        Some("monitor") => problems.push(
            "a `type: monitor` SLO names its monitors by id, which differ in each environment; write a `type: metric` SLO (numerator and denominator) instead".to_owned(),
        ),
        other => problems.push(format!(
            "`type` is {}, and an SLO template is `metric` or `time_slice`",
            other.map_or_else(|| "missing".to_owned(), |t| format!("`{t}`"))
        )),
    }
    let thresholds = body["thresholds"].as_array().map(Vec::as_slice).unwrap_or_default();
    if thresholds.is_empty() {
        problems.push("`thresholds` is empty: give at least one `{timeframe: 30d, target: 99.9}`".to_owned());
    }
    let mut seen = Vec::new();
    for (i, threshold) in thresholds.iter().enumerate() {
        let timeframe = threshold["timeframe"].as_str().unwrap_or_default();
        if !TIMEFRAMES.contains(&timeframe) {
            problems.push(format!(
                "`thresholds[{i}].timeframe` is `{timeframe}`; Datadog keeps SLOs over {}",
                TIMEFRAMES.join(", ")
            ));
        } else if seen.contains(&timeframe) {
            problems.push(format!(
                "`thresholds[{i}]`: a second threshold over {timeframe}; one per timeframe"
            ));
        }
        seen.push(timeframe);
        let Some(target) = threshold["target"].as_f64().filter(|t| *t > 0.0 && *t < 100.0) else {
            problems.push(format!(
                "`thresholds[{i}].target` must be a percentage above 0 and below 100, like 99.9"
            ));
            continue;
        };
        if let Some(warning) = threshold.get("warning").filter(|w| !w.is_null()) {
            match warning.as_f64() {
                Some(w) if w > target && w < 100.0 => {}
                _ => problems.push(format!(
                    "`thresholds[{i}].warning` ({warning}) must be above the target ({target}) and below 100: it warns before the target is missed"
                )),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slos_datadog_would_refuse_are_refused_with_the_field_and_the_fix() {
        let good = json!({
            "name": "availability", "type": "metric",
            "query": {"numerator": "sum:good{*}.as_count()", "denominator": "sum:all{*}.as_count()"},
            "thresholds": [{"timeframe": "30d", "target": 99.9, "warning": 99.95}, {"timeframe": "7d", "target": 99.9}],
        });
        assert_eq!(slo_problems(&good), Vec::<String>::new());
        let cases: &[(&str, Value, &str)] = &[
            ("/type", json!("monitor"), "differ in each environment"),
            ("/type", json!("uptime"), "`type` is `uptime`"),
            ("/query/numerator", json!(" "), "needs `query.numerator`"),
            ("/thresholds", json!([]), "`thresholds` is empty"),
            (
                "/thresholds/1/timeframe",
                json!("1y"),
                "`thresholds[1].timeframe` is `1y`",
            ),
            ("/thresholds/1/timeframe", json!("30d"), "a second threshold over 30d"),
            ("/thresholds/0/target", json!(100), "above 0 and below 100"),
            ("/thresholds/0/target", json!("99.9"), "above 0 and below 100"),
            (
                "/thresholds/0/warning",
                json!(99.8),
                "`thresholds[0].warning` (99.8) must be above the target (99.9)",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut slo = good.clone();
            *slo.pointer_mut(pointer).unwrap() = value.clone();
            let problems = slo_problems(&slo);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{pointer} = {value}: {problems:?}"
            );
        }
    }
}
