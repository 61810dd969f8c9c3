//! The deploy hooks (`hooks:` of the environment) on the deploy engine: checks run before any traffic
//! reaches the new release (through the test listener), after each traffic step's analysis passed, and
//! after the promotion. An HTTP check is judged by `suma_http::check` (the runbooks' `http.check` judge),
//! tried up to its `attempts` 2 s apart; a runbook of checks runs unattended through [`RunbookHooks`] as
//! a child operation of the deploy, under its lock, its id derived from the deploy, the step, the hook
//! and the step's attempt. The results go in the step's facts, and a failing hook rolls the deploy back.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::Engine;
use crate::config::{DeployHook, Environment};
use crate::engine::{Run, StepError};
use crate::journal::lock::LockGuard;
use crate::journal::{Operation, PlannedStep};

/// Between two tries of a hook.
const HOOK_RETRY: Duration = Duration::from_secs(2);
/// One try's ceiling.
const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// When hooks run, and what a path in their URL is asked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    PreTraffic,
    PostStep,
    PostPromote,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Self::PreTraffic => "pre-traffic",
            Self::PostStep => "post-step",
            Self::PostPromote => "post-promote",
        }
    }
}

/// The environment's hooks of `stage`.
fn hooks_of(env: &Environment, stage: Stage) -> &[DeployHook] {
    match stage {
        Stage::PreTraffic => &env.hooks.pre_traffic,
        Stage::PostStep => &env.hooks.post_step,
        Stage::PostPromote => &env.hooks.post_promote,
    }
}

/// The hooks of `stage` as a plan's words (`pre-traffic hooks health, login`), or `None` without any.
pub(super) fn hooks_detail(env: &Environment, stage: Stage) -> Option<String> {
    let names: Vec<&str> = hooks_of(env, stage).iter().map(|h| h.name.as_str()).collect();
    (!names.is_empty()).then(|| format!("{} hooks {}", stage.name(), names.join(", ")))
}

/// The step after the promotion that runs the post-promote hooks, when there are any.
pub(super) fn post_promote_step(env: &Environment) -> Option<PlannedStep> {
    hooks_detail(env, Stage::PostPromote).map(|hooks| PlannedStep {
        name: "post-promote".to_owned(),
        detail: format!("{hooks}; a failure rolls the stable service back to the recorded revision"),
    })
}

/// The fact a step journals its hooks' results under.
pub const HOOKS: &str = "hooks";

/// A stage's hooks ran: every result, and the first failure when one failed.
pub struct HookRun {
    pub results: Vec<Value>,
    pub failure: Option<String>,
}

/// How a runbook hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookVerdict {
    Passed,
    /// A step failed, or the runbook could not run; the reason says which.
    Failed(String),
    /// A signal or the lost lease stopped it: the deploy stops as interrupted.
    Interrupted,
}

/// Runs the runbook hooks; the deploy command gives the live runner (the runbook engine with the live
/// actions), and a deploy without one fails a runbook hook with the reason.
#[async_trait]
pub trait RunbookHooks: Send + Sync {
    /// Runs `hook`'s runbook as the child operation `child_id` of `parent`, under `guard`.
    async fn run(&self, hook: &DeployHook, parent: &Operation, child_id: &str, guard: &LockGuard) -> RunbookVerdict;
}

/// The id of a runbook hook's child operation: the deploy, the step, the hook (in id-safe characters)
/// and the step's attempt, so each attempt of a step runs its own.
pub fn hook_operation_id(op: &Operation, hook: &DeployHook) -> String {
    let (step, attempt) = op
        .steps
        .last()
        .map_or(("start", 1), |s| (s.name.as_str(), s.attempts.len() + 1));
    let hook_name: String = hook
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{}.{step}.{hook_name}.{attempt}", op.id)
}

impl Engine {
    /// Runs `stage`'s hooks in order, stopping at the first that fails.
    pub(super) async fn run_hooks(&self, run: &Run<'_>, op: &Operation, stage: Stage) -> Result<HookRun, StepError> {
        let client = suma_http::ServiceClient::new(HOOK_TIMEOUT);
        let mut results = Vec::new();
        for hook in hooks_of(&self.env, stage) {
            let (result, problem) = match &hook.runbook {
                Some(_) => self.runbook_hook(run, op, hook).await?,
                None => self.http_hook(run, stage, hook, &client).await?,
            };
            results.push(result);
            if let Some(problem) = problem {
                self.reporter
                    .warn(&format!("{} hook `{}`: {problem}", stage.name(), hook.name));
                return Ok(HookRun {
                    results,
                    failure: Some(format!("{} hook `{}` failed: {problem}", stage.name(), hook.name)),
                });
            }
            self.reporter
                .info(&format!("{} hook `{}` passed", stage.name(), hook.name));
        }
        Ok(HookRun { results, failure: None })
    }

    /// One HTTP hook, tried up to its attempts: its journal record and, when it failed, why.
    async fn http_hook(
        &self,
        run: &Run<'_>,
        stage: Stage,
        hook: &DeployHook,
        client: &suma_http::ServiceClient,
    ) -> Result<(Value, Option<String>), StepError> {
        let url = self.hook_url(stage, hook);
        let expect = suma_http::check::Expectation {
            status: hook.expect_status,
            body_contains: hook.body_contains.clone(),
            max_latency: hook.max_latency,
        };
        let mut problem = None;
        let mut status = Value::Null;
        let mut attempts = 0;
        for attempt in 1..=hook.attempts.max(1) {
            attempts = attempt;
            let answer = client.get(&url).await;
            status = answer.as_ref().map_or(Value::Null, |r| json!(r.status));
            problem = expect.problem(&answer);
            if problem.is_none() || attempt == hook.attempts.max(1) {
                break;
            }
            run.sleep(HOOK_RETRY).await?;
        }
        let result = json!({
            "name": hook.name,
            "url": url,
            "status": status,
            "attempts": attempts,
            "ok": problem.is_none(),
            "problem": problem,
        });
        Ok((
            result,
            problem.map(|p| format!("GET {url} {p} after {attempts} attempt(s)")),
        ))
    }

    /// One runbook hook, as a child operation of the deploy: its journal record and, when it failed, why.
    async fn runbook_hook(
        &self,
        run: &Run<'_>,
        op: &Operation,
        hook: &DeployHook,
    ) -> Result<(Value, Option<String>), StepError> {
        let child_id = hook_operation_id(op, hook);
        let verdict = match &self.runbook_hooks {
            Some(runner) => runner.run(hook, op, &child_id, run.guard).await,
            None => RunbookVerdict::Failed("this command cannot run runbook hooks".to_owned()),
        };
        let problem = match verdict {
            RunbookVerdict::Passed => None,
            RunbookVerdict::Failed(why) => Some(why),
            RunbookVerdict::Interrupted => return Err(StepError::Interrupted),
        };
        let result = json!({
            "name": hook.name,
            "runbook": hook.runbook,
            "operation": child_id,
            "ok": problem.is_none(),
            "problem": problem,
        });
        Ok((result, problem.map(|p| format!("runbook run `{child_id}`: {p}"))))
    }

    /// The URL a hook asks: its own when absolute, else its path on the stage's base (validated present).
    fn hook_url(&self, stage: Stage, hook: &DeployHook) -> String {
        let url = hook.url.clone().unwrap_or_default();
        if url.starts_with("http://") || url.starts_with("https://") {
            return url;
        }
        let base = match stage {
            Stage::PreTraffic => self.env.bluegreen.test_url.as_ref(),
            Stage::PostStep | Stage::PostPromote => self.env.url.as_ref(),
        };
        base.map_or_else(|| url.clone(), |b| b.join(&url))
    }
}
