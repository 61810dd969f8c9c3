//! Runbooks: reviewed, versioned procedures (`runbooks/*.yaml`) that on-call runs step by step. This module
//! is the pure part: the file model, its validation (every problem located at file:line with the fix),
//! parameters from the command line, and the plan. `engine.rs` executes a validated runbook through the
//! [`engine::Actions`] seam; `crate::commands::runbook` implements the actions against AWS, the service and
//! Datadog.

#[cfg(feature = "sdk")]
pub mod actions;
pub mod approval;
pub mod catalog;
pub mod engine;
pub mod expr;
pub mod hook;
pub mod scope;
pub mod selector;
pub mod timeline;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigError;
use crate::journal::PlannedStep;
use catalog::{ActionSpec, ArgType};

/// How bad the situation the runbook handles is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Sev1,
    Sev2,
    Sev3,
    Sev4,
}

/// A runbook file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    pub title: String,
    pub severity: Severity,
    /// The team that reviews and maintains it.
    pub owner: String,
    /// The symptoms or alerts that call for it.
    pub when_to_use: String,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    pub steps: Vec<Step>,
    /// Its `aws.call` steps may call operations that change things (`UpdateService`, `TagResource`);
    /// without it they may only read (`Describe*`, `List*`, `Get*`). Reviewers see the line in the diff.
    #[serde(default)]
    pub mutating_aws_calls: bool,
    /// Run, unattended, when the run stops at a failed step (compensation: tell people, unmute, put
    /// back); each may use `${run.stopped_at}` and `${run.reason}`. The run stays resumable.
    #[serde(default)]
    pub on_failure: Vec<Step>,
    /// Run, unattended and briefly, when a signal (Ctrl-C, a CI cancel) interrupts the run while it still
    /// holds the lock.
    #[serde(default)]
    pub on_cancel: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Bool,
    Duration,
    Url,
}

impl ParamType {
    fn arg_type(self) -> ArgType {
        match self {
            Self::String => ArgType::String,
            Self::Integer => ArgType::Integer,
            Self::Bool => ArgType::Bool,
            Self::Duration => ArgType::Duration,
            Self::Url => ArgType::Url,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<serde_norway::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    /// One line for the plan and the timeline; the action's summary when absent.
    #[serde(default)]
    pub title: Option<String>,
    pub action: String,
    #[serde(default, rename = "with")]
    pub args: BTreeMap<String, serde_norway::Value>,
    /// Ask before running it (on a terminal), or require `--yes`.
    #[serde(default)]
    pub confirm: bool,
    /// Run only when this holds (see [`expr::Condition`]); otherwise the step is skipped.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Tries the action again when it fails or times out (never a manual step, never a declined
    /// confirmation), each try journaled.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// What follows when the action still fails after its tries: the run stops, resumable (default), or
    /// goes on with the step journaled as tolerated (a notification, a best-effort check). A declined
    /// confirmation always stops.
    #[serde(default)]
    pub on_failure: StepFailure,
    /// `action: parallel`: steps that run at the same time, each with its own `when`, `timeout` and
    /// `on_failure`; the step ends once every branch has (the join). A branch may use the outputs of the
    /// steps before the group, and the steps after it may use a branch's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Step>,
}

/// What follows a step whose action failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepFailure {
    #[default]
    Stop,
    Continue,
}

/// How a step is tried again: `attempts` tries in all, `backoff` before the second, doubling after
/// each failure up to `max_backoff`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub attempts: u32,
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// The most distinct approvers an `approve` step may ask for.
pub const MAX_APPROVERS: i64 = 10;

/// How many approvers an `approve` step asks for when it does not say.
pub const DEFAULT_APPROVERS: u32 = 2;

/// The most tries a step may have: past this, the step or what it waits for is what needs fixing.
pub const MAX_ATTEMPTS: u32 = 10;

fn default_backoff() -> Duration {
    Duration::from_secs(10)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl Retry {
    /// The wait after the `failed`-th failed try (1-based).
    pub fn delay(&self, failed: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)));
        doubled.min(self.max_backoff)
    }
}

impl Step {
    /// Tries in all (1 without `retry`).
    pub fn attempts(&self) -> u32 {
        self.retry.as_ref().map_or(1, |r| r.attempts)
    }

    /// A `manual` or `approve` step: people answer it, so it runs once, never unattended.
    pub fn asks_people(&self) -> bool {
        matches!(self.action.as_str(), "manual" | "approve")
    }

    pub fn spec(&self) -> &'static ActionSpec {
        catalog::action(&self.action).expect("validated runbooks name known actions")
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(self.spec().default_timeout)
    }

    /// An `aws.call` step's service and operation as written (empty when missing).
    fn aws_call(&self) -> Option<(String, String)> {
        let text = |name: &str| self.args.get(name).and_then(scalar_text).unwrap_or_default();
        (self.action == "aws.call").then(|| (text("service"), text("operation")))
    }

    /// Whether the step changes something: its action does, or it is an `aws.call` of an operation that
    /// is not read-only.
    pub fn mutates(&self) -> bool {
        if let Some((service, operation)) = self.aws_call() {
            return crate::aws::api_call::access(&service, &operation) != crate::aws::api_call::Access::ReadOnly;
        }
        catalog::action(&self.action).is_some_and(|spec| spec.mutating)
    }

    pub fn describe(&self) -> String {
        if let Some(title) = &self.title {
            return title.clone();
        }
        if let Some((service, operation)) = self.aws_call() {
            // The generic summary says nothing; the operation says what the step does.
            let change = if self.mutates() { " (changes things)" } else { "" };
            return format!("`{service} {operation}`{change}");
        }
        self.spec().summary.to_owned()
    }
}

/// A validated runbook with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub path: PathBuf,
    /// The text as reviewed; a run keeps it so `resume` runs exactly this procedure.
    pub source: String,
    pub runbook: Runbook,
}

/// A YAML scalar as JSON (runbook arguments and defaults).
pub fn yaml_to_json(value: &serde_norway::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The text of a scalar argument, or `None` for lists and maps.
fn scalar_text(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Runbook {
    /// Every step that can run: the steps, the `on_failure` and `on_cancel` handlers, and a parallel
    /// step's branches beside it (branches do not nest; validation refuses it).
    pub fn every_step(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .chain(&self.on_failure)
            .chain(&self.on_cancel)
            .flat_map(|s| std::iter::once(s).chain(&s.branches))
    }

    /// The IAM actions its `aws.call` steps need beyond the built-in actions' permissions: every step,
    /// branch and `on_failure`/`on_cancel` handler (`suma iam-policy runbook run NAME` adds them).
    pub fn aws_call_actions(&self) -> std::collections::BTreeSet<String> {
        self.every_step()
            .filter_map(Step::aws_call)
            .filter_map(|(service, operation)| {
                Some(crate::aws::api_call::service(&service).ok()?.iam_action(&operation))
            })
            .collect()
    }

    /// The plan: one planned step per runbook step, arguments as written.
    pub fn plan(&self) -> Vec<PlannedStep> {
        self.steps
            .iter()
            .map(|s| {
                let mut detail = format!("{}: {}", s.action, s.describe());
                if !s.branches.is_empty() {
                    let ids: Vec<String> = s.branches.iter().map(|b| format!("`{}`", b.id)).collect();
                    detail.push_str(&format!(" ({})", ids.join(", ")));
                }
                if let Some(when) = &s.when {
                    detail.push_str(&format!(" (when {when})"));
                }
                if s.confirm {
                    detail.push_str(" [confirm]");
                }
                if s.on_failure == StepFailure::Continue {
                    detail.push_str(" [goes on if it fails]");
                }
                if let Some(retry) = &s.retry {
                    detail.push_str(&format!(
                        " [up to {} tries, {} apart and doubling]",
                        retry.attempts,
                        humantime::format_duration(retry.backoff)
                    ));
                }
                PlannedStep {
                    name: s.id.clone(),
                    detail,
                }
            })
            .collect()
    }

    /// Resolves `--param k=v` against the declared parameters: types, defaults, required ones.
    pub fn parameters_from(&self, given: &[(String, String)]) -> Result<BTreeMap<String, Value>, String> {
        let mut values = BTreeMap::new();
        for (name, text) in given {
            let Some(p) = self.parameters.iter().find(|p| &p.name == name) else {
                let known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "this runbook has no parameter `{name}`\nhint: its parameters: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            p.ty.arg_type()
                .check(text)
                .map_err(|e| format!("`--param {name}`: {e}"))?;
            values.insert(name.clone(), typed(p.ty, text));
        }
        for p in &self.parameters {
            if values.contains_key(&p.name) {
                continue;
            }
            if let Some(default) = p.default.as_ref().and_then(scalar_text) {
                values.insert(p.name.clone(), typed(p.ty, &default));
            } else if p.required {
                return Err(format!(
                    "the runbook needs `--param {}=...` ({})",
                    p.name, p.description
                ));
            }
        }
        Ok(values)
    }
}

fn typed(ty: ParamType, text: &str) -> Value {
    match ty {
        ParamType::Integer => text.parse::<i64>().map_or_else(|_| Value::from(text), Value::from),
        ParamType::Bool => Value::Bool(text == "true"),
        _ => Value::from(text),
    }
}

/// Parses and validates runbook text; `file` is used in messages.
pub fn parse(text: &str, file: &Path) -> Result<Runbook, Vec<ConfigError>> {
    let runbook: Runbook = crate::config::deserialize_located(text, file).map_err(|errors| {
        errors
            .into_iter()
            .map(|mut e| {
                // The generic hints point at suma.yaml's schema; runbooks have their own reference.
                if e.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("suma config schema") || h.contains("suma.example"))
                {
                    e.hint = Some("see docs/runbooks.md for the format, `suma runbook actions` for actions".to_owned());
                }
                e
            })
            .collect::<Vec<_>>()
    })?;
    let problems = runbook.problems();
    if problems.is_empty() {
        Ok(runbook)
    } else {
        Err(crate::config::located(text, file, problems))
    }
}

/// Reads and validates one file.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_owned(),
            position: None,
            key: String::new(),
            message: format!("cannot read the runbook: {e}"),
            hint: None,
        }]
    })?;
    let runbook = parse(&source, path)?;
    Ok(Loaded {
        name: name_of(path),
        path: path.to_owned(),
        source,
        runbook,
    })
}

/// A runbook's name: its file name without `.yaml`.
pub fn name_of(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// The `*.yaml` files of a directory, sorted.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
