//! Tables of `suma secrets`.

use crate::journal::PlannedStep;
use crate::secrets::listing::SecretRow;

use super::tables::table;

pub fn list(rows: &[SecretRow]) -> String {
    let body = rows.iter().map(|r| {
        let age = match (r.age_days, &r.error) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(days), None) => format!("{days} / {} days", r.policy_days),
            (None, None) => format!("? / {} days", r.policy_days),
        };
        let labels = r
            .versions
            .iter()
            .map(|(v, l)| format!("{}…: {}", &v[..v.len().min(8)], l.join(",")))
            .collect::<Vec<_>>()
            .join("\n");
        [
            r.id.clone(),
            r.kind.to_owned(),
            age,
            if r.due { "DUE".to_owned() } else { "ok".to_owned() },
            if r.rotation_half_done {
                "yes".to_owned()
            } else {
                "-".to_owned()
            },
            labels,
            r.consumers.join(", "),
        ]
    });
    table(
        [
            "SECRET",
            "KIND",
            "AGE / POLICY",
            "DUE",
            "HALF-DONE",
            "VERSIONS",
            "CONSUMERS",
        ],
        body,
    )
}

pub fn plan(secret: &str, plan: &[PlannedStep]) -> String {
    let rows = plan
        .iter()
        .enumerate()
        .map(|(i, s)| [(i + 1).to_string(), s.name.clone(), s.detail.clone()]);
    format!("rotation of `{secret}`:\n{}", table(["#", "STEP", "WHAT"], rows))
}

pub fn outcomes(reports: &[serde_json::Value]) -> String {
    reports
        .iter()
        .map(|r| {
            let outcome = &r["outcome"];
            let what = match outcome["outcome"].as_str().unwrap_or_default() {
                "rotated" => format!(
                    "rotated: AWSCURRENT is version `{}`",
                    outcome["version"].as_str().unwrap_or_default()
                ),
                "failed" => format!(
                    "FAILED at `{}`: {}; AWSCURRENT unchanged, AWSPENDING removed",
                    outcome["step"].as_str().unwrap_or_default(),
                    outcome["reason"].as_str().unwrap_or_default()
                ),
                "aborted" => "aborted: AWSCURRENT back on the previous version, no AWSPENDING".to_owned(),
                other => format!("{other}: `suma secrets resume NAME` or `suma secrets abort NAME` finishes it"),
            };
            format!(
                "{}: {what} (operation `{}`)",
                r["secret"].as_str().unwrap_or_default(),
                r["operation"]["id"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
