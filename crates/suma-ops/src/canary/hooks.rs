//! The deploy hooks (`hooks:` of the environment) on the deploy engine: HTTP checks run before any traffic
//! reaches the new release (through the test listener), after each traffic step's analysis passed, and
//! after the promotion. Each is judged by `suma_http::check` (the runbooks' `http.check` judge), tried up
//! to its `attempts` 2 s apart; its results go in the step's facts, and a failing one rolls the deploy
//! back.

use std::time::Duration;

use serde_json::{json, Value};

use super::Engine;
use crate::config::{Environment, HttpHook};
use crate::engine::{Run, StepError};
use crate::journal::PlannedStep;

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
fn hooks_of(env: &Environment, stage: Stage) -> &[HttpHook] {
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

impl Engine {
    /// Runs `stage`'s hooks in order, stopping at the first that fails.
    pub(super) async fn run_hooks(&self, run: &Run<'_>, stage: Stage) -> Result<HookRun, StepError> {
        let client = suma_http::ServiceClient::new(HOOK_TIMEOUT);
        let mut results = Vec::new();
        for hook in hooks_of(&self.env, stage) {
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
            results.push(json!({
                "name": hook.name,
                "url": url,
                "status": status,
                "attempts": attempts,
                "ok": problem.is_none(),
                "problem": problem,
            }));
            if let Some(problem) = problem {
                self.reporter
                    .warn(&format!("{} hook `{}`: GET {url} {problem}", stage.name(), hook.name));
                return Ok(HookRun {
                    results,
                    failure: Some(format!(
                        "{} hook `{}` failed: GET {url} {problem} after {attempts} attempt(s)",
                        stage.name(),
                        hook.name
                    )),
                });
            }
            self.reporter
                .info(&format!("{} hook `{}` passed", stage.name(), hook.name));
        }
        Ok(HookRun { results, failure: None })
    }

    /// The URL a hook asks: its own when absolute, else its path on the stage's base (validated present).
    fn hook_url(&self, stage: Stage, hook: &HttpHook) -> String {
        if hook.url.starts_with("http://") || hook.url.starts_with("https://") {
            return hook.url.clone();
        }
        let base = match stage {
            Stage::PreTraffic => self.env.bluegreen.test_url.as_ref(),
            Stage::PostStep | Stage::PostPromote => self.env.url.as_ref(),
        };
        base.map_or_else(|| hook.url.clone(), |b| b.join(&hook.url))
    }
}
