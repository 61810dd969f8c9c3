//! Command-line types of `suma runbook`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::MutationArgs;

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// The runbooks: name, severity, title, owner
    List(RunbookDirArgs),
    /// A runbook's metadata, parameters and steps
    Show {
        /// The runbook's name (its file name without `.yaml`) or a path
        name: String,
        #[command(flatten)]
        dir: RunbookDirArgs,
    },
    /// Validate runbooks (all of them without names): unknown actions, arguments, references; exit 2 with file:line
    Validate {
        /// Names or paths; every runbook in the directory when none
        names: Vec<String>,
        #[command(flatten)]
        dir: RunbookDirArgs,
    },
    /// The built-in actions a step may call, with their arguments and outputs
    Actions,
    /// Run a runbook on an environment: the plan, then each step under the environment lock
    Run(RunbookRunArgs),
    /// Continue an interrupted or stopped run from its failed step, with the earlier outputs
    Resume(RunbookContinueArgs),
    /// Approve a run's `approve` step under your own AWS identity (an identity counts once); `resume` goes on once enough did
    Approve(RunbookApproveArgs),
    /// Stop an interrupted run for good: an unfinished child operation (a rotation, a failover, a
    /// rollback) is aborted as its own `abort` would; steps already done stay done
    Abort(RunbookAbortArgs),
    /// A run as a Markdown timeline, for the post-incident review
    Timeline {
        /// The run's operation id
        run_id: String,
        /// Write it to this file instead of stdout
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RunbookDirArgs {
    /// Directory of the runbooks [env: SUMA_RUNBOOKS_DIR] [default: runbooks/ beside the configuration, else ./runbooks]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunbookRunArgs {
    /// The runbook's name (its file name without `.yaml`) or a path
    pub name: String,
    /// A parameter, `NAME=VALUE` (repeatable)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Skip `manual` steps instead of failing on them when nobody can confirm (CI)
    #[arg(long)]
    pub skip_manual: bool,
    #[command(flatten)]
    pub dir: RunbookDirArgs,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct RunbookContinueArgs {
    /// The run's operation id (`suma ops list` shows it)
    pub run_id: String,
    /// Skip `manual` steps instead of failing on them when nobody can confirm (CI)
    #[arg(long)]
    pub skip_manual: bool,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct RunbookApproveArgs {
    /// The run's operation id (the stopped run's message names it)
    pub run_id: String,
    /// The `approve` step [default: the step the run stopped at]
    #[arg(long, value_name = "STEP_ID")]
    pub step: Option<String>,
    /// Why you approve, or what you checked; kept with the approval
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct RunbookAbortArgs {
    /// The run's operation id
    pub run_id: String,
    /// Why; kept in the journal
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}
