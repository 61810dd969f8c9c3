//! Runbooks as deploy hooks (`hooks.*[].runbook`): a runbook of checks that a deploy runs unattended at
//! its stage, as a child operation of the deploy under the deploy's lock, journaled like any run (`suma
//! runbook timeline` reads it). A hook only checks: a runbook that asks a person (`manual`, `confirm`) or
//! calls an action that changes anything is refused before the deploy starts, so running a hook again
//! after a crash or a restart of its step is always safe; each attempt of the step runs its own child, and
//! an earlier attempt's unfinished one is marked aborted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{catalog, Loaded, Runbook};
use crate::config::{DeployHook, Environment};
#[cfg(feature = "sdk")]
pub use live::LiveRunbookHooks;

/// Where a hook's runbook is: its path as written when absolute, else beside the configuration file.
pub fn hook_path(hook: &DeployHook, config_dir: &Path) -> Option<PathBuf> {
    let path = hook.runbook.as_ref()?;
    Some(if path.is_absolute() {
        path.clone()
    } else {
        config_dir.join(path)
    })
}

/// What keeps a runbook from running unattended as a hook, one line per step.
pub fn unattended_problems(runbook: &Runbook) -> Vec<String> {
    let mut problems = Vec::new();
    for step in runbook.every_step() {
        if step.confirm {
            problems.push(format!(
                "step `{}` asks for a confirmation, and a deploy hook runs unattended",
                step.id
            ));
        }
        match catalog::action(&step.action) {
            Some(_) if step.asks_people() => problems.push(format!(
                "step `{}` is for a person, and a deploy hook runs unattended",
                step.id
            )),
            Some(spec) if step.mutates() => problems.push(format!(
                "step `{}` calls `{}`, which changes things; a deploy hook only checks",
                step.id, spec.name
            )),
            _ => {}
        }
    }
    problems
}

/// A hook's runbook, loaded and validated, with its parameters resolved; or every reason it cannot run
/// as a hook.
pub fn load_hook(hook: &DeployHook, config_dir: &Path) -> Result<(Loaded, BTreeMap<String, Value>), Vec<String>> {
    let path = hook_path(hook, config_dir).ok_or_else(|| vec!["names no runbook".to_owned()])?;
    let loaded = super::load(&path).map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut problems = unattended_problems(&loaded.runbook);
    let given: Vec<(String, String)> = hook.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let params = loaded.runbook.parameters_from(&given).unwrap_or_else(|e| {
        problems.push(e);
        BTreeMap::new()
    });
    if problems.is_empty() {
        Ok((loaded, params))
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect())
    }
}

/// Every runbook hook of `env` that cannot run, as `hooks.STAGE.N (NAME)` and the reasons: the deploy
/// refuses to start with any.
pub fn hook_problems(env: &Environment, config_dir: &Path) -> Vec<String> {
    let stages = [
        ("pre_traffic", &env.hooks.pre_traffic),
        ("post_step", &env.hooks.post_step),
        ("post_promote", &env.hooks.post_promote),
    ];
    let mut problems = Vec::new();
    for (stage, hooks) in stages {
        for (i, hook) in hooks.iter().enumerate().filter(|(_, h)| h.runbook.is_some()) {
            if let Err(reasons) = load_hook(hook, config_dir) {
                problems.extend(
                    reasons
                        .into_iter()
                        .map(|r| format!("hooks.{stage}.{i} (`{}`): {r}", hook.name)),
                );
            }
        }
    }
    problems
}

#[cfg(feature = "sdk")]
mod live {
    use std::path::PathBuf;
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::json;

    use super::load_hook;
    use crate::aws::AwsSession;
    use crate::canary::hooks::{RunbookHooks, RunbookVerdict};
    use crate::config::{DeployHook, Environment};
    use crate::context::OpsContext;
    use crate::journal::lock::LockGuard;
    use crate::journal::{Operation, OperationStatus};
    use crate::runbook::engine::{self, Answer, Confirmations, Outcome};
    use crate::runbook::scope::scope_of;
    use crate::runbook::Step;

    /// A hook has nobody to ask: validation refused any step that would.
    struct Unattended;

    impl Confirmations for Unattended {
        fn confirm(&self, _step: &Step, _question: &str) -> Answer {
            Answer::Cannot("a deploy hook runs unattended".to_owned())
        }

        fn manual(&self, _step: &Step, _instructions: &str) -> Answer {
            Answer::Cannot("a deploy hook runs unattended".to_owned())
        }
    }

    /// The live runner of runbook hooks: the runbook engine with the live actions, on the deploy's lock.
    pub struct LiveRunbookHooks {
        pub ctx: OpsContext,
        pub name: String,
        pub env: Environment,
        pub session: AwsSession,
        /// The directory relative hook paths start from: the configuration file's.
        pub config_dir: PathBuf,
    }

    impl LiveRunbookHooks {
        /// Marks the unfinished children of this hook's earlier attempts aborted: each attempt of the step
        /// runs its own, and a hook only checks, so nothing of theirs needs finishing.
        async fn supersede_earlier(&self, journal: &crate::journal::Journal, child_id: &str, guard: &LockGuard) {
            let Some((stem, attempt)) = child_id.rsplit_once('.') else {
                return;
            };
            let attempt: usize = attempt.parse().unwrap_or(1);
            for n in 1..attempt {
                let id = format!("{stem}.{n}");
                if let Ok(Some(mut earlier)) = journal.load(&id).await {
                    if !earlier.status.is_finished() {
                        earlier.note(&earlier.actor.clone(), format!("superseded by `{child_id}`"));
                        earlier.set_status(OperationStatus::Aborted);
                        if let Err(e) = journal.save(&earlier, Some(guard.fence())).await {
                            tracing::warn!(error = %e, operation = %id, "cannot mark an earlier hook run aborted");
                        }
                    }
                }
            }
        }
    }

    #[async_trait]
    impl RunbookHooks for LiveRunbookHooks {
        async fn run(
            &self,
            hook: &DeployHook,
            parent: &Operation,
            child_id: &str,
            guard: &LockGuard,
        ) -> RunbookVerdict {
            let (loaded, params) = match load_hook(hook, &self.config_dir) {
                Ok(loaded) => loaded,
                Err(problems) => return RunbookVerdict::Failed(problems.join("; ")),
            };
            let journal = self.ctx.journal(&self.session).nested(&parent.id);
            self.supersede_earlier(&journal, child_id, guard).await;
            let mut op = match journal.load(child_id).await {
                // This attempt's own child, journaled before a crash: it carries on from its next step
                // (a hook only checks, so nothing it did needs undoing).
                Ok(Some(op)) if !op.status.is_finished() => op,
                _ => {
                    let mut op = Operation::new(engine::KIND, &self.name, &parent.actor, loaded.runbook.plan());
                    op.id = child_id.to_owned();
                    op.parameters.insert("runbook".to_owned(), json!(loaded.name));
                    op.parameters.insert("title".to_owned(), json!(loaded.runbook.title));
                    op.parameters.insert("params".to_owned(), json!(params));
                    op.parameters.insert("source".to_owned(), json!(loaded.source));
                    op.parameters.insert("file".to_owned(), json!(loaded.path));
                    op.parameters.insert("hook_of".to_owned(), json!(parent.id));
                    op
                }
            };
            if let Err(e) = journal.save(&op, Some(guard.fence())).await {
                return RunbookVerdict::Failed(format!("cannot journal the run: {e}"));
            }
            let actions = crate::runbook::actions::LiveActions {
                ctx: &self.ctx,
                name: self.name.clone(),
                env: self.env.clone(),
                session: self.session.clone(),
                aws: Arc::new(self.session.clone()),
                journal: journal.nested(&op.id),
                guard,
                runbook: loaded.name.clone(),
                // A hook only checks (validation refused any change).
                mutating_aws_calls: false,
            };
            let runner = engine::Engine {
                runbook: loaded.runbook.clone(),
                actions: &actions,
                confirmations: &Unattended,
                journal: journal.clone(),
                reporter: self.ctx.reporter.clone(),
                cancel: self.ctx.cancel.clone(),
            };
            let scope = scope_of(&op, &self.name, &self.env);
            let verdict = match runner.run(&mut op, guard, scope).await {
                Ok(Outcome::Completed) => RunbookVerdict::Passed,
                Ok(Outcome::Interrupted { .. }) => return RunbookVerdict::Interrupted,
                Ok(Outcome::Stopped { step, reason }) => {
                    RunbookVerdict::Failed(format!("step `{step}` failed: {reason}"))
                }
                Err(e) => RunbookVerdict::Failed(e.to_string()),
            };
            // A hook that did not pass is over: its deploy rolls back, and nobody resumes a check.
            if verdict != RunbookVerdict::Passed && !op.status.is_finished() {
                op.set_status(OperationStatus::Failed);
                if let Err(e) = journal.save(&op, Some(guard.fence())).await {
                    tracing::warn!(error = %e, operation = %op.id, "cannot journal the hook run's end");
                }
            }
            verdict
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbooks() -> PathBuf {
        crate::checkout_root().join("runbooks")
    }

    fn hook(runbook: &str, params: &[(&str, &str)]) -> DeployHook {
        serde_norway::from_str::<DeployHook>(&format!("{{ name: smoke, runbook: {runbook} }}"))
            .map(|mut h| {
                h.params = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                h
            })
            .unwrap()
    }

    #[test]
    fn only_a_runbook_of_checks_runs_as_a_hook() {
        // (runbook, params, expected problems, each a piece of one line)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            ("release-smoke.yaml", &[], &[]),
            ("release-smoke.yaml", &[("max_latency", "500ms")], &[]),
            (
                "release-smoke.yaml",
                &[("colour", "blue")],
                &["this runbook has no parameter `colour`"],
            ),
            (
                "deploy-rollback.yaml",
                &[("reason", "x")],
                &[
                    "step `rollback` asks for a confirmation, and a deploy hook runs unattended",
                    "step `rollback` calls `service.rollback`, which changes things; a deploy hook only checks",
                ],
            ),
            ("no-such.yaml", &[], &["cannot read the runbook"]),
        ];
        for (file, params, expected) in cases {
            let result = load_hook(&hook(file, params), &runbooks());
            match (result, expected.is_empty()) {
                (Ok((loaded, _)), true) => assert_eq!(loaded.name, file.trim_end_matches(".yaml")),
                (Err(problems), false) => {
                    for piece in *expected {
                        assert!(
                            problems.iter().any(|p| p.contains(piece)),
                            "{file}: `{piece}` not in {problems:?}"
                        );
                    }
                    assert!(
                        problems.iter().all(|p| p.contains(file)),
                        "each names the file: {problems:?}"
                    );
                }
                (result, _) => panic!("{file} {params:?}: {:?}", result.map(|(l, p)| (l.name, p))),
            }
        }
        // A relative path starts beside the configuration; an absolute one is taken as written.
        let absolute = runbooks().join("release-smoke.yaml");
        assert_eq!(
            hook_path(&hook(absolute.to_str().unwrap(), &[]), Path::new("/elsewhere")),
            Some(absolute)
        );
        assert_eq!(
            hook_path(&hook("runbooks/smoke.yaml", &[]), Path::new("/etc/suma")),
            Some(PathBuf::from("/etc/suma/runbooks/smoke.yaml"))
        );
    }

    #[test]
    fn every_reason_names_the_stage_and_the_hook() {
        let mut env = suma_testkit::environment("");
        env.hooks.post_promote = vec![
            hook("deploy-rollback.yaml", &[("reason", "x")]),
            hook("release-smoke.yaml", &[]),
        ];
        let problems = hook_problems(&env, &runbooks());
        // The confirmation, the rollback and the Datadog event of deploy-rollback; the smoke runbook is fine.
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("hooks.post_promote.0 (`smoke`): ")),
            "{problems:?}"
        );
    }
}
