//! `suma iam-policy [COMMAND…]`: which of the AWS layer's permissions (`suma_aws::iam`) each command
//! needs, and the policy document of a set of commands. Every command is in the table below (a unit test
//! walks the command line's definition), and a sandbox test records the requests commands make and checks
//! each is in its command's policy.

use clap::CommandFactory as _;
use suma_aws::iam::{self, Permission};
use suma_ops::iam_policy::{document, with_aws_calls, Resources};

use super::Context;
use crate::cli::Cli;
use crate::exit::ExitStatus;

/// The permissions of the command at `path` (`["deploy", "canary"]`); `None` for a path that is no
/// command. Commands that call no AWS API need none.
pub fn permissions(path: &[&str]) -> Option<&'static [Permission]> {
    use iam::*;
    const DEPLOY: &[Permission] = &[LOCK_READ, LOCK_WRITE, ECS_READ, ECS_DEPLOY, ELB_READ, ELB_SHIFT];
    const DEPLOY_NOTIFY: &[Permission] = &[
        LOCK_READ,
        LOCK_WRITE,
        ECS_READ,
        ECS_DEPLOY,
        ELB_READ,
        ELB_SHIFT,
        NOTIFY_READ,
    ];
    const DR: &[Permission] = &[
        LOCK_READ,
        LOCK_WRITE,
        ECS_READ,
        ECS_DEPLOY,
        ECS_SCALING,
        ELB_READ,
        RDS_READ,
        RDS_CHANGE,
        ROUTE53_READ,
        ROUTE53_SWITCH,
        SECRETS_READ,
    ];
    const ROTATE: &[Permission] = &[
        LOCK_READ,
        LOCK_WRITE,
        SECRETS_READ,
        SECRETS_ROTATE,
        ECS_READ,
        ECS_DEPLOY,
        RDS_READ,
        RDS_CHANGE,
        ELASTICACHE,
    ];
    Some(match path {
        ["status"] => &[LOCK_READ, ECS_READ, ELB_READ, RDS_READ, ROUTE53_READ, SECRETS_READ],
        ["config", _] | ["completion"] | ["man"] | ["iam-policy"] => &[],
        ["compliance", "list"] => &[],
        ["runbook", "list" | "show" | "validate" | "actions"] => &[],
        ["monitors" | "dashboards" | "slos", "diff"] => &[],
        ["taskdef", "render"] => &[],
        ["ops", _] | ["lock", "status"] => &[LOCK_READ],
        ["lock", "release"] => &[LOCK_READ, LOCK_WRITE],
        ["init"] => &[LOCK_TABLE_SETUP],
        ["deploy", "status"] => &[LOCK_READ, ELB_READ],
        ["deploy", _] => DEPLOY_NOTIFY,
        ["rollback", ..] => DEPLOY,
        // The journal too: the failover time is estimated from past failovers.
        ["dr", "check"] => &[
            LOCK_READ,
            ECS_READ,
            IMAGE_READ,
            ELB_READ,
            RDS_READ,
            ROUTE53_READ,
            SECRETS_READ,
        ],
        ["dr", _] => DR,
        ["secrets", "list" | "status"] => &[LOCK_READ, SECRETS_READ],
        ["secrets", "retire"] => &[LOCK_READ, LOCK_WRITE, SECRETS_READ, SECRETS_ROTATE],
        ["secrets", _] => ROTATE,
        ["compliance", "check"] => &[COMPLIANCE_INVENTORY, LOCK_READ, SECRETS_READ, ROUTE53_READ, ELB_READ],
        ["runbook", "timeline"] => &[LOCK_READ],
        // The approval is an item of the lock table; who approves is STS GetCallerIdentity, which
        // needs no permission.
        ["runbook", "approve"] => &[LOCK_READ, LOCK_WRITE],
        // A step may call any action of the catalogue (`suma runbook actions`).
        ["runbook", _] => OPERATE,
        ["monitors" | "dashboards" | "slos", "apply"] | ["monitors", "import"] => &[LOCK_READ, LOCK_WRITE],
        ["taskdef", "diff"] => &[ECS_READ],
        ["taskdef", "register"] => &[ECS_READ, ECS_DEPLOY, LOCK_WRITE],
        _ => return None,
    })
}

/// Resolves `words` to the longest command path they start with; what follows a complete command (its
/// arguments: `secrets rotate db-password`) is ignored.
pub fn command_path(words: &[String]) -> Result<Vec<String>, suma_core::exit::UsageError> {
    let mut command = Cli::command();
    let mut path = Vec::new();
    for word in words {
        match command.find_subcommand(word).cloned() {
            Some(sub) => {
                path.push(sub.get_name().to_owned());
                command = sub;
            }
            None if path.is_empty() || command.has_subcommands() => {
                let known: Vec<&str> = command
                    .get_subcommands()
                    .filter(|c| !c.is_hide_set())
                    .map(clap::Command::get_name)
                    .collect();
                return Err(suma_core::usage!(
                    "`{}` is not a suma command\nhint: commands here: {}",
                    words.join(" "),
                    known.join(", ")
                ));
            }
            None => break,
        }
    }
    Ok(path)
}

/// The actions of the `aws.call` steps of the runbook `runbook run NAME …` names; none when the words
/// name no runbook (`suma iam-policy runbook run` alone: the built-in actions only).
fn runbook_aws_calls(ctx: &Context, command: &[String]) -> anyhow::Result<std::collections::BTreeSet<String>> {
    match crate::cli::runbook_run_args(command) {
        Some(args) => super::runbook::aws_call_actions(&args, &ctx.settings.config_path.value),
        None => Ok(Default::default()),
    }
}

pub fn policy(ctx: &Context, words: &[String]) -> anyhow::Result<ExitStatus> {
    let mut needed: Vec<Permission> = Vec::new();
    let mut calls = std::collections::BTreeSet::new();
    if words.is_empty() {
        needed.extend(iam::all());
    }
    for command in words.split(|w| w == ",").filter(|c| !c.is_empty()) {
        let path = command_path(command)?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let permissions = permissions(&path).ok_or_else(|| {
            suma_core::usage!(
                "`{}` is a group of commands\nhint: name one, e.g. `suma iam-policy {} {}`",
                path.join(" "),
                path.join(" "),
                Cli::command()
                    .find_subcommand(path[0])
                    .and_then(|c| c.get_subcommands().next().map(|s| s.get_name().to_owned()))
                    .unwrap_or_default()
            )
        })?;
        needed.extend(permissions);
        if let ["runbook", "run"] = path[..] {
            calls.extend(runbook_aws_calls(ctx, command)?);
        }
    }
    let environment = ctx.settings.environment.as_ref().map(|e| e.value.as_str());
    let policy = document(&needed, &Resources::of(&ctx.config, environment));
    ctx.printer.json(&with_aws_calls(policy, &calls));
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        if !command.has_subcommands() || command.is_args_conflicts_with_subcommands_set() {
            out.push(prefix.to_vec());
        }
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            paths(sub, &path, out);
        }
    }

    #[test]
    fn every_command_declares_what_it_needs() {
        let mut all = Vec::new();
        paths(&Cli::command(), &[], &mut all);
        for path in all.iter().filter(|p| !p.is_empty()) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            assert!(
                permissions(&path).is_some(),
                "`suma {}` is not in the table",
                path.join(" ")
            );
        }
    }

    #[test]
    fn reading_commands_get_no_write_action() {
        for path in [
            &["status"][..],
            &["dr", "check"],
            &["compliance", "check"],
            &["lock", "status"],
        ] {
            for permission in permissions(path).unwrap() {
                for action in permission.actions {
                    let operation = action.split_once(':').unwrap().1;
                    assert!(
                        ["Describe", "Get", "List", "Query", "Scan"]
                            .iter()
                            .any(|p| operation.starts_with(p)),
                        "`{}` would get {action}",
                        path.join(" ")
                    );
                }
            }
        }
    }

    #[test]
    fn words_resolve_to_the_command_and_drop_its_arguments() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            command_path(&words(&["secrets", "rotate", "db-password"])).unwrap(),
            ["secrets", "rotate"]
        );
        assert_eq!(command_path(&words(&["rollback"])).unwrap(), ["rollback"]);
        assert_eq!(
            command_path(&words(&["rollback", "abort"])).unwrap(),
            ["rollback", "abort"]
        );
        let err = command_path(&words(&["deploy", "canry"])).unwrap_err().to_string();
        assert!(
            err.contains("`deploy canry` is not a suma command") && err.contains("canary"),
            "{err}"
        );
    }
}
