//! The runbook model's own cases: parsing and validation messages with their positions, the plan, the
//! parameters, and what a runbook's steps need (IAM actions of its `aws.call` steps).

use super::*;

const GOOD: &str = "\
title: Roll back a bad deploy
severity: sev2
owner: identity-sre
when_to_use: errors after a deploy
parameters:
  - name: reason
    type: string
    description: why
    required: true
  - name: attempts
    type: integer
    description: health tries
    default: 3
steps:
  - id: before
    action: service.status
  - id: rollback
    action: service.rollback
    confirm: true
    with:
      reason: ${params.reason}
  - id: health
    action: http.check
    when: steps.before.outputs.running > 0
    with:
      url: ${env.url}/health
      attempts: ${params.attempts}
";

fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("runbooks/x.yaml")) {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_iam_actions_of_aws_calls_come_from_steps_branches_and_handlers() {
    let text = "\
title: t
severity: sev3
owner: o
when_to_use: w
steps:
  - id: service
    action: aws.call
    with: { service: ecs, operation: DescribeServices, input: { cluster: c, services: [s] } }
  - id: both
    action: parallel
    branches:
      - { id: alarms, action: aws.call, with: { service: cloudwatch, operation: DescribeAlarms } }
      - { id: targets, action: aws.call, with: { service: elbv2, operation: DescribeTargetGroups } }
  - id: status
    action: service.status
on_failure:
  - id: again
    action: aws.call
    with: { service: ecs, operation: DescribeServices, input: { cluster: c, services: [s] } }
";
    let runbook = parse(text, Path::new("x.yaml")).unwrap();
    assert_eq!(
        runbook.aws_call_actions().into_iter().collect::<Vec<_>>(),
        [
            "cloudwatch:DescribeAlarms",
            "ecs:DescribeServices",
            "elasticloadbalancing:DescribeTargetGroups"
        ]
    );
    assert!(parse(GOOD, Path::new("x.yaml")).unwrap().aws_call_actions().is_empty());
}

#[test]
fn a_good_runbook_validates_and_plans() {
    let runbook = parse(GOOD, Path::new("x.yaml")).unwrap();
    let plan = runbook.plan();
    assert_eq!(plan.len(), 3);
    assert_eq!(plan[1].name, "rollback");
    assert!(plan[1].detail.ends_with("[confirm]"));
    assert!(plan[2].detail.contains("(when steps.before.outputs.running > 0)"));
}

#[test]
fn unknown_action_is_located_with_a_suggestion() {
    let text = GOOD.replace("action: service.rollback", "action: service.rolback");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("runbooks/x.yaml:18:5: `steps.1.action`: unknown action `service.rolback`"),
        "{}",
        p[0]
    );
    assert!(p[0].contains("did you mean service.rollback"), "{}", p[0]);
}

#[test]
fn missing_and_mistyped_arguments_are_located() {
    let text = GOOD.replace("      reason: ${params.reason}\n", "      reson: x\n");
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.contains(":21:7: `steps.1.with.reson`: action `service.rollback` takes no argument `reson`")),
        "{p:?}"
    );
    assert!(p.iter().any(|m| m.contains("needs the argument `reason`")), "{p:?}");
    let text = GOOD.replace("attempts: ${params.attempts}", "attempts: many");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains(":27:7: `steps.2.with.attempts`: `attempts`: `many` is not an integer"),
        "{}",
        p[0]
    );
}

#[test]
fn references_to_unknown_outputs_params_and_later_steps_are_refused() {
    let p = problems(&GOOD.replace("steps.before.outputs.running", "steps.before.outputs.runing"));
    assert!(p[0].contains("`steps.2.when`: `steps.before.outputs.runing`: action `service.status` has no output `runing`; it has running, desired, pending, task_definition"), "{p:?}");
    let p = problems(&GOOD.replace("${params.reason}", "${params.why}"));
    assert!(p[0].contains("`params.why` names no declared parameter"), "{p:?}");
    let p = problems(&GOOD.replace("steps.before.outputs.running", "steps.health.outputs.status"));
    assert!(p[0].contains("refers to the step's own outputs"), "{p:?}");
    let p = problems(&GOOD.replace("${params.reason}", "${steps.health.outputs.status}"));
    assert!(p[0].contains("which is not an earlier step"), "{p:?}");
}

const AWS_CALL: &str = "\
title: Read what no action reads
severity: sev3
owner: identity-sre
when_to_use: an incident
steps:
  - id: status
    action: service.status
  - id: call
    action: aws.call
    with:
      service: ecs
      operation: DescribeServices
      input:
        cluster: auth
        services: [\"${steps.status.outputs.task_definition}\"]
      select: services[0]
";

#[test]
fn aws_calls_read_unless_the_runbook_allows_changes_and_never_answer_with_secrets() {
    // (edit of the step, expected problem: a piece of it, or none)
    let cases: &[(&str, &str, Option<&str>)] = &[
            ("", "", None),
            ("operation: DescribeServices", "operation: UpdateService", Some(
                "`steps.1.with.operation`: `ecs UpdateService` changes things, and this runbook's `aws.call` steps may only read",
            )),
            ("service: ecs\n      operation: DescribeServices", "service: secretsmanager\n      operation: GetSecretValue", Some(
                "`secretsmanager GetSecretValue` answers with secret material",
            )),
            ("service: ecs", "service: route53", Some("`route53` speaks a REST protocol")),
            ("service: ecs", "service: ${params.x}", Some("`service` must be written out")),
            ("operation: DescribeServices", "operation: describe-services", Some("PascalCase")),
            ("select: services[0]", "select: services[zero]", Some("`steps.1.with.select`: `[zero]` is neither an index")),
            ("        cluster: auth\n", "", Some("`steps.1.with.input`: `steps.status.outputs.task_definitio`: action `service.status` has no output")),
            ("      input:\n        cluster: auth\n        services: [\"${steps.status.outputs.task_definition}\"]\n", "      input: auth\n", Some(
                "`input` must be a map of the operation's parameters",
            )),
        ];
    for (old, new, expected) in cases {
        let mut text = AWS_CALL.replace(old, new);
        if expected.is_some_and(|e| e.contains("task_definitio`")) {
            text = text.replace("task_definition}", "task_definitio}");
        }
        let p = problems(&text);
        match expected {
            None => assert!(p.is_empty(), "{p:?}"),
            Some(piece) => assert!(p.iter().any(|m| m.contains(piece)), "`{piece}` not in {p:?}"),
        }
    }
    let allowed = AWS_CALL
        .replace("operation: DescribeServices", "operation: UpdateService")
        .replace("steps:\n", "mutating_aws_calls: true\nsteps:\n");
    assert!(problems(&allowed).is_empty(), "{:?}", problems(&allowed));
    let secret = allowed.replace(
        "service: ecs\n      operation: UpdateService",
        "service: kms\n      operation: Decrypt",
    );
    assert!(problems(&secret)
        .iter()
        .any(|m| m.contains("`kms Decrypt` answers with secret material")));
    let runbook = parse(AWS_CALL, Path::new("x.yaml")).unwrap();
    assert!(!runbook.steps[1].mutates() && !runbook.steps[0].mutates());
    assert_eq!(runbook.steps[1].describe(), "`ecs DescribeServices`");
    let runbook = parse(&allowed, Path::new("x.yaml")).unwrap();
    assert!(
        runbook.steps[1].mutates(),
        "a change needs the flag and is a change all the same"
    );
}

#[test]
fn structure_errors_keep_their_position() {
    let p = problems(&GOOD.replace("    confirm: true\n", "    confirm: true\n    retries: 2\n"));
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("unknown field `retries`"), "{}", p[0]);
    assert!(p[0].contains("docs/runbooks.md"), "{}", p[0]);
}

#[test]
fn parameters_are_typed_defaulted_and_required() {
    let runbook = parse(GOOD, Path::new("x.yaml")).unwrap();
    let values = runbook
        .parameters_from(&[("reason".into(), "bad build".into())])
        .unwrap();
    assert_eq!(values["attempts"], serde_json::json!(3));
    assert!(runbook.parameters_from(&[]).unwrap_err().contains("--param reason="));
    assert!(runbook
        .parameters_from(&[("reason".into(), "x".into()), ("attempts".into(), "x".into())])
        .unwrap_err()
        .contains("is not an integer"));
    assert!(runbook
        .parameters_from(&[("colour".into(), "x".into())])
        .unwrap_err()
        .contains("no parameter `colour`"));
}
