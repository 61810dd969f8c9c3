//! Human rendering of `suma status`, `suma lock status` and `suma ops`.

use std::fmt::Write;

use super::tables::{heading, or_dash, table, yes_no};
use crate::journal::lock::LockInfo;
use crate::journal::Operation;
use crate::status::{Section, StatusReport};

fn section<T>(out: &mut String, title: &str, section: &Section<T>, body: impl FnOnce(&T) -> String) {
    let _ = writeln!(out, "\n{}", heading(title));
    match (&section.data, &section.error) {
        (Some(data), _) => {
            let _ = writeln!(out, "{}", body(data));
        }
        (None, Some(error)) => {
            let _ = writeln!(out, "{}: {error}", console::style("unavailable").red().bold());
        }
        (None, None) => {}
    }
}

/// The service's `/version` for people: the release, where it runs and its signing key; the whole body
/// is in `--output json`.
fn version_line(body: &serde_json::Value) -> String {
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str);
    let mut line = format!("version {}", field("version").unwrap_or("-"));
    let place: Vec<&str> = ["deployment", "environment"].into_iter().filter_map(field).collect();
    if !place.is_empty() {
        line.push_str(&format!(" ({})", place.join(", ")));
    }
    if let Some(sha) = field("git_sha") {
        line.push_str(&format!(", commit {sha}"));
    }
    if let Some(kid) = field("signing_kid") {
        let verifying = body
            .get("verify_kids")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        line.push_str(&format!("\nsigning key {kid} ({verifying} verifying)"));
    }
    line
}

pub fn status(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  (primary {}, DR {})\nread at {}",
        heading("Environment"),
        console::style(&report.environment).cyan().bold(),
        report.primary_region,
        report.dr_region,
        report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );

    section(&mut out, "ECS services", &report.services, |services| {
        table(
            [
                "ROLE",
                "SERVICE",
                "REGION",
                "STATUS",
                "DESIRED",
                "RUNNING",
                "PENDING",
                "TASK DEFINITION",
                "IMAGE",
                "ROLLOUT",
            ],
            services.iter().map(|s| {
                [
                    s.role.to_owned(),
                    s.name.clone(),
                    s.region.clone(),
                    s.status.clone(),
                    s.desired.to_string(),
                    s.running.to_string(),
                    s.pending.to_string(),
                    s.task_definition.clone(),
                    or_dash(s.image.as_deref().map(short_image)),
                    or_dash(s.rollout_state.as_deref()),
                ]
            }),
        )
    });

    section(&mut out, "Traffic (ALB rule)", &report.traffic, |t| {
        let state = match t.state {
            "stable" => console::style("all traffic on stable").green().to_string(),
            "canary" => console::style("canary in flight").yellow().to_string(),
            _ => console::style("unexpected weights").red().to_string(),
        };
        format!("stable {}% / canary {}%  {state}", t.stable_weight, t.canary_weight)
    });

    section(&mut out, "Databases (RDS)", &report.databases, |dbs| {
        table(
            [
                "ROLE",
                "IDENTIFIER",
                "REGION",
                "STATUS",
                "ENGINE",
                "MULTI-AZ",
                "ENCRYPTED",
                "REPLICATES FROM",
            ],
            dbs.iter().map(|d| {
                [
                    d.role.to_owned(),
                    d.identifier.clone(),
                    d.region.clone(),
                    d.status.clone(),
                    d.engine.clone(),
                    yes_no(d.multi_az),
                    yes_no(d.storage_encrypted),
                    or_dash(d.replica_source.as_deref()),
                ]
            }),
        )
    });

    section(&mut out, "DNS (Route 53)", &report.dns, |records| {
        if records.is_empty() {
            return console::style("no records found for the configured name")
                .red()
                .to_string();
        }
        table(
            ["NAME", "TYPE", "FAILOVER", "TTL", "TARGET", "HEALTH CHECK"],
            records.iter().map(|r| {
                [
                    r.name.clone(),
                    r.record_type.clone(),
                    or_dash(r.failover.as_deref()),
                    or_dash(r.ttl),
                    r.targets.join(", "),
                    or_dash(r.health.as_deref()),
                ]
            }),
        )
    });

    section(&mut out, "Secrets", &report.secrets, |secrets| {
        table(
            ["SECRET", "KIND", "ROTATION", "AGE", "POLICY", "STATE"],
            secrets.iter().map(|s| {
                let state = if let Some(e) = &s.error {
                    format!("error: {}", e.lines().next().unwrap_or_default())
                } else if s.rotation_pending {
                    "rotation half-done (AWSPENDING)".to_owned()
                } else if s.overdue {
                    "overdue".to_owned()
                } else {
                    "ok".to_owned()
                };
                [
                    s.id.clone(),
                    s.kind.to_owned(),
                    if s.rotation_enabled { "enabled" } else { "disabled" }.to_owned(),
                    or_dash(s.age_days.map(|d| format!("{d}d"))),
                    format!("{}d", s.policy_days),
                    state,
                ]
            }),
        )
    });

    section(&mut out, "Lock", &report.lock, |lock| lock_line(lock.as_ref()));

    if let Some(health) = &report.health {
        let _ = writeln!(out, "\n{}", heading("Service"));
        for probe in [&health.health, &health.version] {
            let result = match (probe.status_code, &probe.error) {
                (Some(code), _) => format!("{code} in {} ms", probe.latency_ms.unwrap_or_default()),
                (None, Some(e)) => console::style(e).red().to_string(),
                (None, None) => "-".to_owned(),
            };
            let _ = writeln!(out, "{}  {result}", probe.url);
        }
        if let Some(body) = &health.version.body {
            let _ = writeln!(out, "{}", version_line(body));
        }
    }
    out
}

pub fn lock_line(lock: Option<&LockInfo>) -> String {
    match lock {
        None => console::style("free").green().to_string(),
        Some(l) => {
            let lease = if l.lease_active {
                format!("lease until {}", l.expires_at.format("%H:%M:%S UTC"))
            } else {
                console::style(format!("lease EXPIRED at {}", l.expires_at.format("%H:%M:%S UTC")))
                    .red()
                    .to_string()
            };
            format!(
                "held by {} for {} `{}` ({}), since {}, {lease}",
                l.holder,
                l.operation_kind,
                l.operation_id,
                l.operation_status,
                l.acquired_at.format("%Y-%m-%d %H:%M:%S UTC")
            )
        }
    }
}

pub fn operations(ops: &[Operation]) -> String {
    if ops.is_empty() {
        return "no operations recorded".to_owned();
    }
    table(
        ["ID", "KIND", "STATUS", "BY", "STARTED", "STEPS"],
        ops.iter().map(|op| {
            [
                op.id.clone(),
                op.kind.clone(),
                op.status.as_str().to_owned(),
                op.actor.clone(),
                op.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                format!("{}/{}", op.next_step(), op.plan.len()),
            ]
        }),
    )
}

pub fn operation(op: &Operation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  {}  {}",
        heading("Operation"),
        op.id,
        op.kind,
        op.status.as_str()
    );
    let _ = writeln!(
        out,
        "environment {}, by {}, started {}",
        op.environment,
        op.actor,
        op.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for (key, value) in &op.parameters {
        let _ = writeln!(out, "  {key}: {value}");
    }
    let rows = op.plan.iter().enumerate().map(|(i, planned)| {
        let record = op.steps.iter().find(|s| s.index == i);
        let facts = record
            .map(|r| r.facts.iter().map(|(k, v)| fact(k, v)).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        [
            (i + 1).to_string(),
            planned.name.clone(),
            record.map_or("pending".to_owned(), |r| format!("{:?}", r.status).to_lowercase()),
            or_dash(record.map(|r| r.started_at.format("%H:%M:%S"))),
            or_dash(record.and_then(|r| r.ended_at).map(|t| t.format("%H:%M:%S"))),
            record.and_then(|r| r.error.clone()).unwrap_or(facts),
        ]
    });
    let _ = writeln!(
        out,
        "{}",
        table(["#", "STEP", "RESULT", "STARTED", "ENDED", "FACTS / ERROR"], rows)
    );
    for event in &op.events {
        let _ = writeln!(
            out,
            "{}  {}: {}",
            event.at.format("%Y-%m-%d %H:%M:%S"),
            event.actor,
            event.message
        );
    }
    out
}

/// `registry/path/auth-service:1.4.2` shown as `auth-service:1.4.2`; JSON keeps the full reference.
fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

/// One fact for a table cell: analysis ticks are summarised (`suma ops show -o json` has them all).
fn fact(key: &str, value: &serde_json::Value) -> String {
    match (key, value.as_array()) {
        ("ticks", Some(ticks)) => {
            let last = ticks
                .last()
                .and_then(|t| t["verdict"]["verdict"].as_str())
                .unwrap_or("-");
            format!("{} analyses, last {last}", ticks.len())
        }
        _ => format!("{key}={value}"),
    }
}
