//! The built-in actions a runbook step may call: their typed arguments and the outputs later steps may
//! reference. Validation and `suma runbook show` read this table; the executor (`crate::commands::runbook`)
//! implements each entry. Keeping the contract in one table is what lets `validate` reject a runbook with a
//! misspelt action, a missing argument or a reference to an output that will never exist, before anything
//! runs.

use std::time::Duration;

/// The type of an argument, checked by `validate` (values holding `${...}` are checked once resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    String,
    Integer,
    Bool,
    /// `90s`, `5m`, `1h`.
    Duration,
    /// `http://` or `https://`.
    Url,
    OneOf(&'static [&'static str]),
    /// A map written in the runbook (`aws.call`'s `input`), references resolved in its string values.
    Object,
}

impl ArgType {
    pub fn describe(self) -> String {
        match self {
            Self::String => "a string".to_owned(),
            Self::Integer => "an integer".to_owned(),
            Self::Bool => "true or false".to_owned(),
            Self::Duration => "a duration like `90s` or `5m`".to_owned(),
            Self::Url => "an http(s) URL".to_owned(),
            Self::OneOf(values) => format!("one of {}", values.join(", ")),
            Self::Object => "a map".to_owned(),
        }
    }

    /// Whether a resolved value (as text) fits the type; the reason when it does not.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            Self::String => true,
            Self::Integer => value.parse::<i64>().is_ok(),
            Self::Bool => matches!(value, "true" | "false"),
            Self::Duration => humantime::parse_duration(value).is_ok(),
            Self::Url => value.starts_with("http://") || value.starts_with("https://"),
            Self::OneOf(values) => values.contains(&value),
            Self::Object => serde_json::from_str::<serde_json::Value>(value).is_ok_and(|v| v.is_object()),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("`{value}` is not {}", self.describe()))
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
    pub help: &'static str,
}

const fn req(name: &'static str, ty: ArgType, help: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: true,
        help,
    }
}

const fn opt(name: &'static str, ty: ArgType, help: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: false,
        help,
    }
}

/// One built-in action.
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub args: &'static [ArgSpec],
    pub outputs: &'static [&'static str],
    /// Also outputs names chosen by the runbook (`sql.query`: the first row's columns).
    pub open_outputs: bool,
    /// Changes something (a dry run shows it and does not call it).
    pub mutating: bool,
    /// How long a step may take when the runbook sets no `timeout`.
    pub default_timeout: Duration,
}

impl ActionSpec {
    pub fn arg(&self, name: &str) -> Option<&ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }
}

const SERVICE: ArgType = ArgType::OneOf(&["stable", "canary", "dr"]);
const INSTANCE_HELP: &str = "`primary` (default), `replica`, or a DB instance identifier";
const MIN: u64 = 60;

/// The actions that run an operation of their own under the run's lock (a rotation, a failover, a
/// rollback): each journals as the run's one child at a time, so none of them may be a parallel branch.
pub const CHILD_OPERATIONS: &[&str] = &["secret.rotate", "dns.failover", "dr.failover", "service.rollback"];

/// Every built-in action, in the order `suma runbook show` lists them.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "manual",
        summary: "instructions for a person, then their confirmation",
        args: &[req("instructions", ArgType::String, "what to do, in full sentences")],
        open_outputs: false,
        outputs: &["confirmed_by"],
        mutating: false,
        default_timeout: Duration::from_secs(24 * 60 * MIN),
    },
    ActionSpec {
        name: "parallel",
        summary: "its `branches` at the same time; done once every branch is (the join)",
        args: &[],
        open_outputs: false,
        outputs: &[],
        mutating: false,
        default_timeout: Duration::from_secs(60 * MIN),
    },
    ActionSpec {
        name: "approve",
        summary: "approval by N distinct people, each under their own AWS identity, before the run goes on",
        args: &[
            req("summary", ArgType::String, "what is being approved, as the approvers will read it"),
            opt(
                "approvers",
                ArgType::Integer,
                "distinct identities needed (default 2); the one running the run counts once, others run `suma runbook approve`",
            ),
        ],
        open_outputs: false,
        outputs: &["approved_by"],
        mutating: false,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "service.status",
        summary: "running, desired and pending tasks and the task definition of an ECS service",
        args: &[opt(
            "service",
            SERVICE,
            "which service of the environment (default stable)",
        )],
        open_outputs: false,
        outputs: &["running", "desired", "pending", "task_definition"],
        mutating: false,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "service.scale",
        summary: "set an ECS service's desired count and wait until that many tasks run",
        args: &[
            opt("service", SERVICE, "which service of the environment (default stable)"),
            req("count", ArgType::Integer, "the desired count"),
        ],
        open_outputs: false,
        outputs: &["previous_count", "desired_count", "running"],
        mutating: true,
        default_timeout: Duration::from_secs(15 * MIN),
    },
    ActionSpec {
        name: "service.force-redeploy",
        summary: "start fresh tasks of the same revision (they re-read secrets) and wait for the rollout",
        args: &[opt(
            "service",
            SERVICE,
            "which service of the environment (default stable)",
        )],
        open_outputs: false,
        outputs: &["task_definition"],
        mutating: true,
        default_timeout: Duration::from_secs(15 * MIN),
    },
    ActionSpec {
        name: "service.set-env",
        summary: "register a revision with one environment variable changed and roll the service to it",
        args: &[
            opt("service", SERVICE, "which service of the environment (default stable)"),
            req("name", ArgType::String, "the container's environment variable"),
            req("value", ArgType::String, "its new value"),
        ],
        open_outputs: false,
        outputs: &["task_definition", "previous_task_definition"],
        mutating: true,
        default_timeout: Duration::from_secs(15 * MIN),
    },
    ActionSpec {
        name: "service.rollback",
        summary: "point the stable service back at the revision live before the last deploy (`suma rollback`)",
        args: &[
            opt(
                "to",
                ArgType::String,
                "`previous` (default), `family:N`, an ARN or an image",
            ),
            req("reason", ArgType::String, "why; kept in the journal and the event"),
        ],
        open_outputs: false,
        outputs: &["task_definition", "operation"],
        mutating: true,
        default_timeout: Duration::from_secs(20 * MIN),
    },
    ActionSpec {
        name: "database.describe",
        summary: "status, Multi-AZ, endpoint and latest snapshot of a DB instance",
        args: &[opt("instance", ArgType::String, INSTANCE_HELP)],
        open_outputs: false,
        outputs: &["identifier", "status", "multi_az", "endpoint", "host", "latest_snapshot"],
        mutating: false,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "database.failover",
        summary: "Multi-AZ failover (reboot with failover), journaled first, and wait until the instance is available in the standby's zone",
        args: &[opt("instance", ArgType::String, INSTANCE_HELP)],
        open_outputs: false,
        outputs: &["status", "host", "availability_zone", "previous_availability_zone"],
        mutating: true,
        default_timeout: Duration::from_secs(20 * MIN),
    },
    ActionSpec {
        name: "database.restore-snapshot",
        summary: "restore a snapshot (the latest by default) to a new instance and wait until it is available",
        args: &[
            opt("instance", ArgType::String, INSTANCE_HELP),
            opt(
                "snapshot",
                ArgType::String,
                "`latest` (default) or a snapshot identifier",
            ),
            req("target", ArgType::String, "identifier of the new instance"),
        ],
        open_outputs: false,
        outputs: &["identifier", "endpoint", "host", "snapshot"],
        mutating: true,
        default_timeout: Duration::from_secs(60 * MIN),
    },
    ActionSpec {
        name: "database.promote-replica",
        summary: "promote a read replica to a standalone primary and wait until it is available and no longer replicates",
        args: &[opt(
            "instance",
            ArgType::String,
            "`replica` (default) or a DB instance identifier",
        )],
        open_outputs: false,
        outputs: &["identifier", "status", "endpoint", "host"],
        mutating: true,
        default_timeout: Duration::from_secs(30 * MIN),
    },
    ActionSpec {
        name: "sql.query",
        summary: "a read-only SQL query (in a READ ONLY transaction) to verify data: counts, latest timestamps",
        args: &[
            req(
                "query",
                ArgType::String,
                "one SELECT; the first row's columns become outputs, the first 100 rows `records` (`records[1].email`)",
            ),
            opt(
                "secret",
                ArgType::String,
                "the credentials secret (default: the environment's db-password secret)",
            ),
            opt(
                "host",
                ArgType::String,
                "`host` or `host:port` to connect to instead of the secret's (a restored or promoted instance: its `host` output)",
            ),
        ],
        open_outputs: true,
        outputs: &["rows", "value", "columns", "records"],
        mutating: false,
        default_timeout: Duration::from_secs(2 * MIN),
    },
    ActionSpec {
        name: "dr.check",
        summary: "DR readiness of the environment (`suma dr check`)",
        args: &[],
        open_outputs: false,
        outputs: &["ready", "failed_checks", "estimated_rto_secs"],
        mutating: false,
        default_timeout: Duration::from_secs(5 * MIN),
    },
    ActionSpec {
        name: "dr.failover",
        summary: "fail the environment over to its DR region (`suma dr failover`): replica, DNS, scale-up",
        args: &[
            req("reason", ArgType::String, "why; kept in the journal and the event"),
            opt(
                "accept_data_loss",
                ArgType::Bool,
                "proceed although replica lag exceeds the RPO",
            ),
        ],
        open_outputs: false,
        outputs: &["operation", "rto_secs"],
        mutating: true,
        default_timeout: Duration::from_secs(60 * MIN),
    },
    ActionSpec {
        name: "dns.failover",
        summary: "point the failover PRIMARY record at the primary or the DR load balancer, and wait until Route 53 is in sync (traffic only: no database promotion, no scaling)",
        args: &[
            req(
                "to",
                ArgType::OneOf(&["primary", "dr"]),
                "`dr`: the SECONDARY record's target; `primary`: the primary region's load balancer",
            ),
            opt("reason", ArgType::String, "why; kept in the journal"),
        ],
        open_outputs: false,
        outputs: &["target", "previous_target", "changed", "change_id"],
        mutating: true,
        default_timeout: Duration::from_secs(10 * MIN),
    },
    ActionSpec {
        name: "secret.rotate",
        summary: "rotate a managed secret through the Secrets Manager protocol (`suma secrets rotate`)",
        args: &[
            req(
                "secret",
                ArgType::String,
                "the secret as configured (`id`) or its last path segment",
            ),
            opt(
                "force",
                ArgType::Bool,
                "rotate a JWT key even while tokens of the key before it may be valid (after ending every session none are)",
            ),
        ],
        open_outputs: false,
        outputs: &["operation", "version"],
        mutating: true,
        default_timeout: Duration::from_secs(30 * MIN),
    },
    ActionSpec {
        name: "auth.revoke-refresh-tokens",
        summary: "revoke every refresh token (or one user's) through the service's admin API",
        args: &[opt("user_id", ArgType::String, "only this user's tokens")],
        open_outputs: false,
        outputs: &["revoked"],
        mutating: true,
        default_timeout: Duration::from_secs(5 * MIN),
    },
    ActionSpec {
        name: "auth.invalidate-sessions",
        summary: "end every session (or one user's) through the service's admin API",
        args: &[opt("user_id", ArgType::String, "only this user's sessions")],
        open_outputs: false,
        outputs: &["revoked"],
        mutating: true,
        default_timeout: Duration::from_secs(5 * MIN),
    },
    ActionSpec {
        name: "auth.export-audit",
        summary: "export audit events to a JSON-lines file for forensics (admin API, paged)",
        args: &[
            req("since", ArgType::Duration, "how far back, e.g. `72h`"),
            opt("type", ArgType::String, "only this event type"),
            opt(
                "path",
                ArgType::String,
                "the file (default: the state directory, named after the run)",
            ),
        ],
        open_outputs: false,
        outputs: &["count", "path", "sha256"],
        mutating: false,
        default_timeout: Duration::from_secs(15 * MIN),
    },
    ActionSpec {
        name: "http.check",
        summary: "GET a URL until it answers the expected status (and body and latency, when given)",
        args: &[
            req("url", ArgType::Url, "the URL"),
            opt(
                "expect_status",
                ArgType::Integer,
                "the status to wait for (default 200)",
            ),
            opt("body_contains", ArgType::String, "text the body must contain as well"),
            opt(
                "max_latency",
                ArgType::Duration,
                "the slowest acceptable answer as well",
            ),
            opt("attempts", ArgType::Integer, "tries before failing (default 1)"),
            opt("interval", ArgType::Duration, "between tries (default 5s)"),
            opt(
                "require",
                ArgType::Bool,
                "fail the step when the status never matches (default true); false only records it",
            ),
        ],
        open_outputs: false,
        outputs: &["status", "latency_ms", "attempts", "json"],
        mutating: false,
        default_timeout: Duration::from_secs(10 * MIN),
    },
    ActionSpec {
        name: "aws.call",
        summary: "one AWS API operation by name (`ecs DescribeServices`), its answer as `response`; read-only unless the runbook says `mutating_aws_calls: true`",
        args: &[
            req("service", ArgType::String, "as the AWS CLI names it: ecs, rds, elbv2, elasticache, secretsmanager, ..."),
            req("operation", ArgType::String, "as the API reference spells it: `DescribeServices`"),
            opt("input", ArgType::Object, "the operation's parameters, as the API reference names them"),
            opt("region", ArgType::OneOf(&["primary", "dr"]), "the environment's region to call (default primary)"),
            opt(
                "select",
                ArgType::String,
                "keep only this part of the answer (`services[0].deployments`): outputs are journaled, 16 KiB at most",
            ),
        ],
        open_outputs: false,
        outputs: &["response"],
        // Judged per operation, at validation (`suma_aws::api_call::access`): reads pass, anything else
        // needs the runbook's `mutating_aws_calls: true`, and calls answering with secrets never run.
        mutating: false,
        default_timeout: Duration::from_secs(2 * MIN),
    },
    ActionSpec {
        name: "compliance.check",
        summary: "compliance checks of the live environment (`suma compliance check`); fails on a failure at `fail_on` or above, or when a check could not run",
        args: &[opt(
            "fail_on",
            ArgType::OneOf(&["critical", "high", "medium", "low"]),
            "fail the step at this severity or above (default high)",
        )],
        open_outputs: false,
        outputs: &["passed", "failed", "errors"],
        mutating: false,
        default_timeout: Duration::from_secs(10 * MIN),
    },
    ActionSpec {
        name: "datadog.event",
        summary: "post an event to the environment's Datadog, tagged with the run (skipped, and said so, without a `datadog` section; fails when Datadog does not take it)",
        args: &[
            req("title", ArgType::String, "the event's title"),
            opt("text", ArgType::String, "its body"),
            opt(
                "alert_type",
                ArgType::OneOf(&["info", "warning", "error", "success"]),
                "default info",
            ),
        ],
        open_outputs: false,
        outputs: &["posted", "skipped"],
        mutating: true,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "datadog.mute",
        summary: "mute a Datadog monitor by name, for a while (a Datadog downtime naming the run)",
        args: &[
            req("monitor", ArgType::String, "the monitor's name"),
            opt("duration", ArgType::Duration, "how long (default 1h)"),
        ],
        open_outputs: false,
        outputs: &["monitor_id", "until", "downtime_id"],
        mutating: true,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "datadog.unmute",
        summary: "unmute a Datadog monitor by name (its current downtimes cancelled, an old-style mute lifted)",
        args: &[req("monitor", ArgType::String, "the monitor's name")],
        open_outputs: false,
        outputs: &["monitor_id", "downtimes"],
        mutating: true,
        default_timeout: Duration::from_secs(MIN),
    },
    ActionSpec {
        name: "clock.deadline",
        summary: "a deadline counted from the run's start (e.g. the GDPR 72-hour notification window)",
        args: &[req("within", ArgType::Duration, "e.g. `72h`")],
        open_outputs: false,
        outputs: &["at"],
        mutating: false,
        default_timeout: Duration::from_secs(MIN),
    },
];

pub fn action(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The closest action names, for "did you mean" hints.
pub fn similar(name: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = ACTIONS
        .iter()
        .map(|a| (distance(name, a.name), a.name))
        .filter(|(d, _)| *d <= 3)
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, n)| n).take(3).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_arguments_too() {
        let mut names: Vec<_> = ACTIONS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ACTIONS.len());
        for action in ACTIONS {
            let mut args: Vec<_> = action.args.iter().map(|a| a.name).collect();
            args.sort_unstable();
            args.dedup();
            assert_eq!(args.len(), action.args.len(), "{}", action.name);
        }
    }

    #[test]
    fn types_check_resolved_values() {
        assert!(ArgType::Integer.check("3").is_ok());
        assert!(ArgType::Integer.check("three").is_err());
        assert!(ArgType::Duration.check("5m").is_ok());
        assert!(ArgType::Url.check("ftp://x").is_err());
        assert_eq!(
            SERVICE.check("blue").unwrap_err(),
            "`blue` is not one of stable, canary, dr"
        );
    }

    #[test]
    fn similar_names_are_suggested() {
        assert!(similar("secrets.rotate").contains(&"secret.rotate"));
        assert_eq!(similar("service.rolback"), ["service.rollback"]);
        assert!(similar("kubernetes.apply").is_empty());
    }
}
