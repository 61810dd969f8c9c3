//! A runbook's semantic validation: every problem with its dotted key path (which the loader turns into
//! file:line), a message naming it and, where one helps, the fix. Steps and handlers are checked alike;
//! references are checked against the parameters and the steps that run before (for a handler, every
//! step).

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{self, ActionSpec, ArgType};
use super::expr::{self, Condition, Ref};
use super::{scalar_text, Runbook, Step, StepFailure, MAX_APPROVERS, MAX_ATTEMPTS};
use crate::aws::api_call::{self, Access};

type Problem = (String, String, Option<String>);

fn problem(key: String, message: String, hint: Option<&str>) -> Problem {
    (key, message, hint.map(str::to_owned))
}

impl Runbook {
    /// Every semantic problem: (dotted key path, message, hint).
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut params = BTreeSet::new();
        for (i, p) in self.parameters.iter().enumerate() {
            let key = format!("parameters.{i}");
            if !expr::is_name(&p.name) {
                problems.push(problem(
                    format!("{key}.name"),
                    format!("`{}` is not a valid parameter name", p.name),
                    Some("use lower-case letters, digits, `_` or `-`, starting with a letter"),
                ));
            }
            if !params.insert(p.name.clone()) {
                problems.push(problem(
                    format!("{key}.name"),
                    format!("parameter `{}` is declared twice", p.name),
                    None,
                ));
            }
            if let Some(default) = &p.default {
                match scalar_text(default) {
                    Some(text) => {
                        if let Err(e) = p.ty.arg_type().check(&text) {
                            problems.push(problem(format!("{key}.default"), e, None));
                        }
                    }
                    None => problems.push(problem(
                        format!("{key}.default"),
                        "a default must be a single value".to_owned(),
                        None,
                    )),
                }
                if p.required {
                    problems.push(problem(
                        format!("{key}.required"),
                        format!("parameter `{}` is required and has a default", p.name),
                        Some("drop `required: true` or the default"),
                    ));
                }
            }
        }
        if self.steps.is_empty() {
            problems.push(problem(
                "steps".to_owned(),
                "a runbook needs at least one step".to_owned(),
                None,
            ));
        }
        // Step id → its action, for the steps before the one being checked. A handler (`on_failure`,
        // `on_cancel`) runs after the steps, so it may use the outputs of any of them.
        let mut checker = Checker {
            params,
            all_ids: BTreeSet::new(),
            problems,
            mutating_aws_calls: self.mutating_aws_calls,
        };
        let mut earlier: BTreeMap<&str, &'static ActionSpec> = BTreeMap::new();
        let mut after_steps = BTreeMap::new();
        let lists: [(&str, &[Step]); 3] = [
            ("steps", &self.steps),
            ("on_failure", &self.on_failure),
            ("on_cancel", &self.on_cancel),
        ];
        for (list, steps) in lists {
            let handler = list != "steps";
            if handler {
                earlier.clone_from(&after_steps);
            }
            for (i, step) in steps.iter().enumerate() {
                let key = format!("{list}.{i}");
                let at = Place {
                    list,
                    handler,
                    branch_of: None,
                };
                if let Some(spec) = checker.step(&key, step, at, &earlier) {
                    // A branch's outputs are there for the steps after its group, not for its siblings.
                    let branches = checker.branches(&key, step, at, &earlier);
                    earlier.extend(branches);
                    earlier.insert(step.id.as_str(), spec);
                }
            }
            if !handler {
                after_steps.clone_from(&earlier);
            }
        }
        checker.problems
    }
}

/// "a `manual`", "an `approve`": the action named with its article, for messages.
fn article(action: &str) -> String {
    let an = action.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} `{action}`", if an { "an" } else { "a" })
}

/// Where a step stands: its list, whether that list is a handler's, and its group when it is a branch.
#[derive(Debug, Clone, Copy)]
struct Place<'r> {
    list: &'r str,
    handler: bool,
    branch_of: Option<&'r Step>,
}

/// Checks steps one at a time, gathering the problems; step ids are unique across every list and branch.
struct Checker<'r> {
    params: BTreeSet<String>,
    all_ids: BTreeSet<&'r str>,
    problems: Vec<Problem>,
    /// The runbook's `mutating_aws_calls`.
    mutating_aws_calls: bool,
}

impl<'r> Checker<'r> {
    /// A `parallel` step's branches, each checked as a step that runs beside the others: nobody is asked
    /// in the middle, no retry, no operation of its own, no nesting. Returns their ids and actions.
    fn branches(
        &mut self,
        key: &str,
        group: &'r Step,
        at: Place<'r>,
        earlier: &BTreeMap<&'r str, &'static ActionSpec>,
    ) -> Vec<(&'r str, &'static ActionSpec)> {
        let is_group = group.action == "parallel";
        if !is_group && !group.branches.is_empty() {
            self.problems.push(problem(
                format!("{key}.branches"),
                format!(
                    "step `{}` has `branches` but its action is `{}`",
                    group.id, group.action
                ),
                Some("`branches` belong to `action: parallel`"),
            ));
        }
        if is_group && at.handler {
            self.problems.push(problem(
                format!("{key}.action"),
                format!(
                    "`{}` step `{}` runs branches; a handler is a short, plain list",
                    at.list, group.id
                ),
                Some("list the handler's steps one after another"),
            ));
        }
        if is_group && group.branches.len() < 2 {
            self.problems.push(problem(
                format!("{key}.branches"),
                format!("parallel step `{}` has {} branch(es)", group.id, group.branches.len()),
                Some("give it two or more `branches:`; one branch is a plain step"),
            ));
        }
        if is_group && (group.retry.is_some() || group.timeout.is_some()) {
            self.problems.push(problem(
                format!("{key}.action"),
                format!("parallel step `{}` takes no `retry` or `timeout` of its own", group.id),
                Some("give each branch its `timeout`; a failed branch is run again by `suma runbook resume`"),
            ));
        }
        let mut found = Vec::new();
        for (j, branch) in group.branches.iter().enumerate() {
            let key = format!("{key}.branches.{j}");
            let place = Place {
                branch_of: Some(group),
                ..at
            };
            let alone = if branch.confirm || branch.asks_people() {
                Some("it asks a person, and branches run unattended beside each other")
            } else if branch.retry.is_some() {
                Some("a branch is tried once; `suma runbook resume` runs a failed branch again")
            } else if catalog::CHILD_OPERATIONS.contains(&branch.action.as_str()) {
                Some("it runs an operation of its own under the run's lock, one at a time")
            } else if branch.action == "parallel" || !branch.branches.is_empty() {
                Some("branches do not nest")
            } else {
                None
            };
            if let Some(why) = alone {
                self.problems.push(problem(
                    format!("{key}.action"),
                    format!("step `{}` cannot be a branch of `{}`: {why}", branch.id, group.id),
                    Some("give it a step of its own before or after the parallel step"),
                ));
            }
            if let Some(spec) = self.step(&key, branch, place, earlier) {
                found.push((branch.id.as_str(), spec));
            }
        }
        found
    }

    /// One step: its id, `when`, references, `retry`, action and arguments. Returns its action when known.
    fn step(
        &mut self,
        key: &str,
        step: &'r Step,
        at: Place<'r>,
        earlier: &BTreeMap<&'r str, &'static ActionSpec>,
    ) -> Option<&'static ActionSpec> {
        let Place {
            list,
            handler,
            branch_of,
        } = at;
        if handler && (step.confirm || step.asks_people()) {
            self.problems.push(problem(
                format!("{key}.action"),
                format!("`{list}` step `{}` asks a person; a handler runs unattended", step.id),
                Some("drop `confirm: true`, and use a notification instead of `manual` or `approve`"),
            ));
        }
        if step.action == "approve" {
            let approvers = step.args.get("approvers").and_then(serde_norway::Value::as_i64);
            if approvers.is_some_and(|n| !(1..=MAX_APPROVERS).contains(&n)) {
                self.problems.push(problem(
                    format!("{key}.with.approvers"),
                    format!(
                        "`approvers: {}` is not between 1 and {MAX_APPROVERS}",
                        approvers.unwrap_or(0)
                    ),
                    Some("two is the four-eyes rule; more than a handful is a meeting, not a runbook step"),
                ));
            }
        }
        if !expr::is_name(&step.id) {
            self.problems.push(problem(
                format!("{key}.id"),
                format!("`{}` is not a valid step id", step.id),
                Some("use lower-case letters, digits, `_` or `-`, starting with a letter"),
            ));
        }
        if !self.all_ids.insert(step.id.as_str()) {
            self.problems.push(problem(
                format!("{key}.id"),
                format!("step id `{}` is used twice", step.id),
                Some("step ids name outputs (`steps.ID.outputs.NAME`), so they must be unique"),
            ));
        }
        let (params, all_ids) = (&self.params, &self.all_ids);
        let check_refs =
            |problems: &mut Vec<Problem>, at: String, refs: Vec<Ref>| {
                for r in refs {
                    match &r {
                        Ref::Param(name) if !params.contains(name) => problems.push(problem(
                            at.clone(),
                            format!("`{r}` names no declared parameter"),
                            Some("declare it under `parameters:`, or fix the name"),
                        )),
                        Ref::Run(name) if !handler && expr::HANDLER_RUN_NAMES.contains(&name.as_str()) => problems
                            .push(problem(
                                at.clone(),
                                format!("`{r}` has a value only in an `on_failure` or `on_cancel` step"),
                                None,
                            )),
                        Ref::Output { step: id, output, .. } => match earlier.get(id.as_str()) {
                            None if all_ids.contains(id.as_str()) && id == &step.id => problems.push(problem(
                                at.clone(),
                                format!("`{r}` refers to the step's own outputs"),
                                Some("a step can only use outputs of steps before it"),
                            )),
                            None if branch_of.is_some_and(|g| g.branches.iter().any(|b| &b.id == id)) => {
                                problems.push(problem(
                                    at.clone(),
                                    format!("`{r}` refers to branch `{id}`, which runs at the same time as this one"),
                                    Some("use it in a step after the parallel step"),
                                ))
                            }
                            None => problems.push(problem(
                                at.clone(),
                                format!("`{r}` refers to step `{id}`, which is not an earlier step"),
                                Some("a step can only use outputs of steps before it; check the id"),
                            )),
                            Some(spec) if !spec.open_outputs && !spec.outputs.contains(&output.as_str()) => problems
                                .push(problem(
                                    at.clone(),
                                    format!(
                                        "`{r}`: action `{}` has no output `{output}`; it has {}",
                                        spec.name,
                                        if spec.outputs.is_empty() {
                                            "none".to_owned()
                                        } else {
                                            spec.outputs.join(", ")
                                        }
                                    ),
                                    None,
                                )),
                            Some(_) => {}
                        },
                        _ => {}
                    }
                }
            };
        if let Some(retry) = &step.retry {
            if !(1..=MAX_ATTEMPTS).contains(&retry.attempts) {
                self.problems.push(problem(
                    format!("{key}.retry.attempts"),
                    format!("`attempts: {}` is out of range", retry.attempts),
                    Some("try a step 1 to 10 times in all; beyond that, fix what it waits for"),
                ));
            }
            if retry.backoff > retry.max_backoff {
                self.problems.push(problem(
                    format!("{key}.retry.backoff"),
                    format!(
                        "`backoff: {}` is longer than `max_backoff: {}`",
                        humantime::format_duration(retry.backoff),
                        humantime::format_duration(retry.max_backoff)
                    ),
                    Some("raise `max_backoff` or lower `backoff`"),
                ));
            }
            if step.asks_people() {
                self.problems.push(problem(
                    format!("{key}.retry"),
                    format!(
                        "{} step cannot be retried: people answer it once",
                        article(&step.action)
                    ),
                    Some("drop `retry:` from this step"),
                ));
            }
        }
        if step.on_failure == StepFailure::Continue && step.asks_people() {
            self.problems.push(problem(
                format!("{key}.on_failure"),
                format!(
                    "{} step cannot go on after failing: people answer it or the run stops",
                    article(&step.action)
                ),
                Some("drop `on_failure: continue` from this step"),
            ));
        }
        if let Some(when) = &step.when {
            match Condition::parse(when) {
                Ok(condition) => check_refs(
                    &mut self.problems,
                    format!("{key}.when"),
                    condition.references().into_iter().cloned().collect(),
                ),
                Err(e) => self.problems.push(problem(format!("{key}.when"), e, None)),
            }
        }
        let Some(spec) = catalog::action(&step.action) else {
            let similar = catalog::similar(&step.action);
            self.problems.push((
                format!("{key}.action"),
                format!("unknown action `{}`", step.action),
                Some(if similar.is_empty() {
                    "`suma runbook actions` lists every action".to_owned()
                } else {
                    format!(
                        "did you mean {}? `suma runbook actions` lists every action",
                        similar.join(", ")
                    )
                }),
            ));
            return None;
        };
        for (name, value) in &step.args {
            let at = format!("{key}.with.{name}");
            let Some(arg) = spec.arg(name) else {
                let known: Vec<&str> = spec.args.iter().map(|a| a.name).collect();
                self.problems.push((
                    at,
                    format!("action `{}` takes no argument `{name}`", spec.name),
                    Some(if known.is_empty() {
                        "it takes no arguments".to_owned()
                    } else {
                        format!("its arguments: {}", known.join(", "))
                    }),
                ));
                continue;
            };
            if arg.ty == ArgType::Object {
                let json = super::yaml_to_json(value);
                if !json.is_object() {
                    self.problems.push(problem(
                        at,
                        format!("`{name}` must be a map of the operation's parameters"),
                        Some("write it as `input: {Name: value, ...}` or on indented lines below"),
                    ));
                    continue;
                }
                for text in expr::strings_in(&json) {
                    match expr::references(text) {
                        Err(e) => self.problems.push(problem(at.clone(), e, None)),
                        Ok(refs) => check_refs(&mut self.problems, at.clone(), refs),
                    }
                }
                continue;
            }
            let Some(text) = scalar_text(value) else {
                self.problems.push(problem(
                    at,
                    format!("`{name}` must be {}, not a list or map", arg.ty.describe()),
                    None,
                ));
                continue;
            };
            match expr::references(&text) {
                Err(e) => self.problems.push(problem(at, e, None)),
                // Checked once resolved, at run time.
                Ok(refs) if !refs.is_empty() => check_refs(&mut self.problems, at, refs),
                Ok(_) => {
                    if let Err(e) = arg.ty.check(&text) {
                        self.problems.push(problem(at, format!("`{name}`: {e}"), None));
                    }
                }
            }
        }
        if step.action == "aws.call" {
            self.aws_call(key, step);
        }
        for arg in spec.args.iter().filter(|a| a.required) {
            if !step.args.contains_key(arg.name) {
                self.problems.push((
                    format!("{key}.action"),
                    format!(
                        "action `{}` needs the argument `{}` ({})",
                        spec.name, arg.name, arg.help
                    ),
                    Some(format!("add `with: {{ {}: ... }}` to step `{}`", arg.name, step.id)),
                ));
            }
        }
        Some(spec)
    }
}

impl Checker<'_> {
    /// An `aws.call`: its service and operation written out (what a runbook may call is judged before it
    /// runs), known, and allowed: a read, a change only in a runbook marked `mutating_aws_calls: true`,
    /// never an operation that answers with secrets.
    fn aws_call(&mut self, key: &str, step: &Step) {
        let literal = |name: &str| step.args.get(name).and_then(scalar_text);
        let (service, operation) = (literal("service"), literal("operation"));
        let mut written_out = true;
        for (name, value) in [("service", &service), ("operation", &operation)] {
            if value.as_deref().is_some_and(|text| text.contains("${")) {
                written_out = false;
                self.problems.push(problem(
                    format!("{key}.with.{name}"),
                    format!("an `aws.call`'s `{name}` must be written out, not a `${{...}}` reference"),
                    Some("what a runbook may call is judged when it is validated, before anything runs"),
                ));
            }
        }
        if let Some(select) = literal("select").filter(|text| !text.contains("${")) {
            if let Err(e) = super::selector::path(&select) {
                self.problems.push(problem(format!("{key}.with.select"), e, None));
            }
        }
        let (Some(service), Some(operation), true) = (service, operation, written_out) else {
            return;
        };
        let spec = match api_call::service(&service) {
            Ok(spec) => spec,
            Err(e) => return self.problems.push(problem(format!("{key}.with.service"), e, None)),
        };
        if let Err(e) = api_call::check_operation(&operation) {
            return self.problems.push(problem(format!("{key}.with.operation"), e, None));
        }
        match api_call::access(spec.name, &operation) {
            Access::SecretBearing => self.problems.push(problem(
                format!("{key}.with.operation"),
                format!("`{service} {operation}` answers with secret material, and a step's outputs are journaled"),
                Some("secrets stay in Secrets Manager: `secret.rotate` replaces one without any step seeing its value"),
            )),
            Access::Mutating if !self.mutating_aws_calls => self.problems.push(problem(
                format!("{key}.with.operation"),
                format!(
                    "`{service} {operation}` changes things, and this runbook's `aws.call` steps may only read (`Describe*`, `List*`, `Get*`, ...)"
                ),
                Some("if the runbook must, add `mutating_aws_calls: true` at its top, where reviewers see it"),
            )),
            Access::Mutating | Access::ReadOnly => {}
        }
    }
}
