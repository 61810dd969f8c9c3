//! Blue/green on the deploy engine: the release comes up on the idle service (green, the canary
//! service) at the capacity blue (the stable service) runs, is checked through the test listener before
//! any user reaches it, takes all traffic in one flip, and is analysed while blue stays up on the old
//! revision (the bake, then the keep window), so a rollback is one flip back. Promotion then moves blue
//! to the release while it serves nothing, flips the traffic home, and scales green to zero.
//!
//! Why traffic returns to the stable service at the end, where AWS CodeDeploy swaps which side is live:
//! every other command (rollback, status, DR, compliance, the next canary) knows the stable service as
//! the live one at rest, and the second flip costs one ALB rule change between two sides at full
//! capacity on the same release. The weights are never split: every change is 100/0 ↔ 0/100.
//!
//! The steps share the canary's: `register`, the analysis loop (`shift` at 100%), `promote`, and its
//! rollback (weights to stable first, green to zero, stable back to its recorded revision).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::hooks::{Stage, HOOKS};
use super::{Engine, Strategy};
use crate::aws::ecs::ServiceUpdate;
use crate::config::Environment;
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::{Operation, PlannedStep};
use crate::probe::HttpProbe;

/// The journal's kind of a blue/green deploy.
pub const KIND: &str = "bluegreen-deploy";

/// How long the pre-traffic checks wait for the test listener to reach green's tasks.
const PRE_TRAFFIC_WAIT: Duration = Duration::from_secs(120);
const PRE_TRAFFIC_POLL: Duration = Duration::from_secs(2);

/// The steps of a blue/green deploy of `image` on `env`.
pub fn plan(environment: &str, env: &Environment, image: &str, template: Option<&std::path::Path>) -> Vec<PlannedStep> {
    let ecs = &env.ecs;
    let policy = &env.bluegreen;
    let mut steps = super::plan_with(environment, env, image, template);
    // The canary's register step, then blue/green's own in place of the canary's ramp.
    steps.truncate(1);
    steps.push(PlannedStep {
        name: "green-up".to_owned(),
        detail: format!(
            "point `{}` (green) at it with as many tasks as `{}` (blue) runs, and wait for the rollout",
            ecs.canary_service, ecs.service
        ),
    });
    let checks = policy.test_url.as_ref().map(|url| {
        format!(
            "GET {} and {} answer from green",
            url.join("/health"),
            url.join("/version")
        )
    });
    let detail = match (checks, super::hooks::hooks_detail(env, Stage::PreTraffic)) {
        (None, None) => "no `bluegreen.test_url` and no pre-traffic hooks: skipped".to_owned(),
        (Some(checks), None) => format!("{checks}, before any traffic"),
        (None, Some(hooks)) => format!("{hooks}, before any traffic"),
        (Some(checks), Some(hooks)) => format!("{checks}; {hooks}; before any traffic"),
    };
    steps.push(PlannedStep {
        name: "pre-traffic".to_owned(),
        detail,
    });
    steps.push(PlannedStep {
        name: "cutover".to_owned(),
        detail: format!(
            "all traffic to green in one flip (stable 0 / canary 100), then analysis every {} for {}",
            humantime::format_duration(env.canary.interval),
            humantime::format_duration(policy.bake)
        ),
    });
    if !policy.keep_blue.is_zero() {
        steps.push(PlannedStep {
            name: "keep-blue".to_owned(),
            detail: format!(
                "blue stays up on the old revision {} more, still analysed: a rollback is one flip",
                humantime::format_duration(policy.keep_blue)
            ),
        });
    }
    steps.push(PlannedStep {
        name: "promote".to_owned(),
        detail: format!(
            "point `{}` at the release while it serves nothing, wait, flip all traffic back to it, `{}` to 0 ({environment})",
            ecs.service, ecs.canary_service
        ),
    });
    steps.extend(super::hooks::post_promote_step(env));
    steps
}

impl Engine {
    /// Green at blue's capacity: what blue runs now (autoscaling may have grown it), never below the
    /// configured count, so the flip never lands on fewer tasks than took the traffic before.
    pub(super) async fn green_up(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let cfg = &self.env.ecs;
        let ecs = self.aws.ecs(&self.env.primary_region);
        let blue = ecs
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
            .await?;
        let capacity = blue
            .first()
            .map_or(0, |s| s.desired.max(s.running))
            .max(cfg.desired_count as i32);
        let td = Self::canary_td(op);
        let update = ServiceUpdate {
            task_definition: Some(td.clone()),
            desired_count: Some(capacity),
            force_new_deployment: false,
        };
        run.mutating()?;
        ecs.update_service(&cfg.cluster, &cfg.canary_service, &update).await?;
        self.wait_rollout(run, &cfg.canary_service, &td).await?;
        Ok(StepEnd::Done(BTreeMap::from([(
            "green_tasks".to_owned(),
            json!(capacity),
        )])))
    }

    /// Before any user reaches the release: a blue/green green answers through the test listener, healthy
    /// and as the release; then the environment's pre-traffic hooks run (either strategy). What fails
    /// fails the step, and the deploy rolls back with no user having seen the release.
    pub(super) async fn pre_traffic(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let mut facts = BTreeMap::new();
        if let (Strategy::BlueGreen, Some(url)) = (Strategy::of(&op.kind), &self.env.bluegreen.test_url) {
            facts.extend(self.green_answers(run, op, url).await?);
        }
        let hooks = self.run_hooks(run, op, Stage::PreTraffic).await?;
        if !hooks.results.is_empty() {
            facts.insert(HOOKS.to_owned(), json!(hooks.results));
        }
        if let Some(reason) = hooks.failure {
            return Err(StepError::Failed { reason, facts });
        }
        if facts.is_empty() {
            return Ok(StepEnd::skipped(
                "no `bluegreen.test_url` and no pre-traffic hooks configured",
                facts,
            ));
        }
        Ok(StepEnd::Done(facts))
    }

    /// Green answers through the test listener `url`, healthy and as the release. A listener still
    /// registering green's tasks is waited for.
    async fn green_answers(
        &self,
        run: &Run<'_>,
        op: &Operation,
        url: &crate::config::HttpUrl,
    ) -> Result<BTreeMap<String, serde_json::Value>, StepError> {
        let version = super::version_of(&Self::image(op));
        let probe = suma_http::ServiceClient::new(Duration::from_secs(5));
        let (health_url, version_url) = (url.join("/health"), url.join("/version"));
        let deadline = tokio::time::Instant::now() + PRE_TRAFFIC_WAIT;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (health, answer) = tokio::join!(
                HttpProbe::get(&probe, &health_url),
                HttpProbe::get(&probe, &version_url)
            );
            let problem = pre_traffic_problem(&version, &health, &answer);
            match problem {
                None => {
                    return Ok(BTreeMap::from([
                        ("attempts".to_owned(), json!(attempts)),
                        ("version".to_owned(), json!(answer.body)),
                    ]))
                }
                Some(problem) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "pre-traffic check through `{url}` failed after {attempts} attempts: {problem}"
                    )))
                }
                Some(_) => run.sleep(PRE_TRAFFIC_POLL).await?,
            }
        }
    }
}

/// What is wrong with green's answers to the pre-traffic checks, if anything: `/health` must answer 2xx
/// and `/version` must name the release and the green (canary) deployment.
pub fn pre_traffic_problem(
    version: &str,
    health: &suma_http::probe::ProbeResult,
    answer: &suma_http::probe::ProbeResult,
) -> Option<String> {
    if !health.ok() {
        let got = health
            .status_code
            .map_or_else(|| health.error.clone().unwrap_or_default(), |c| c.to_string());
        return Some(format!("`{}` answered {got}", health.url));
    }
    let field = |key: &str| {
        answer
            .body
            .as_ref()
            .and_then(|b| b.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (served, deployment) = (field("version"), field("deployment"));
    if served != version || deployment != suma_core::contract::CANARY {
        return Some(format!(
            "`{}` says version `{served}` of deployment `{deployment}`, expected `{version}` of `{}`",
            answer.url,
            suma_core::contract::CANARY
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use suma_http::probe::ProbeResult;

    fn answer(status: Option<u16>, body: Option<serde_json::Value>) -> ProbeResult {
        ProbeResult {
            url: "http://test/version".into(),
            status_code: status,
            latency_ms: Some(1),
            body,
            error: status.is_none().then(|| "connection refused".to_owned()),
        }
    }

    #[test]
    fn pre_traffic_checks_want_a_healthy_green_serving_the_release() {
        let green = Some(json!({"version": "1.5.0", "deployment": "canary"}));
        let cases = [
            (Some(200), green.clone(), None),
            (Some(503), green.clone(), Some("answered 503")),
            (None, green.clone(), Some("connection refused")),
            (
                Some(200),
                Some(json!({"version": "1.4.2", "deployment": "canary"})),
                Some("version `1.4.2`"),
            ),
            (
                Some(200),
                Some(json!({"version": "1.5.0", "deployment": "stable"})),
                Some("deployment `stable`"),
            ),
            (Some(200), None, Some("version ``")),
        ];
        for (health_status, body, expected) in cases {
            let problem = pre_traffic_problem("1.5.0", &answer(health_status, None), &answer(Some(200), body.clone()));
            match expected {
                None => assert_eq!(problem, None, "{health_status:?} {body:?}"),
                Some(needle) => assert!(
                    problem.as_deref().is_some_and(|p| p.contains(needle)),
                    "{health_status:?} {body:?}: {problem:?}"
                ),
            }
        }
    }
}
