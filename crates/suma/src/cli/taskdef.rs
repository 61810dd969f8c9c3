//! Command-line types of `suma taskdef`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::MutationArgs;

const DIFF_EXIT_CODES: &str = "\
Exit codes:
  0  the differences were printed (or there are none)
  1  with `--exit-code`: they differ, like `git diff --exit-code`
  2  usage, configuration or template error
  3  AWS could not be read";

#[derive(Debug, Subcommand)]
pub enum TaskdefCommand {
    /// Print the task definition rendered for the environment (RegisterTaskDefinition JSON), validated
    Render(TaskdefRenderArgs),
    /// Compare the rendered template with the stable service's live task definition, field by field
    #[command(after_help = DIFF_EXIT_CODES)]
    Diff(TaskdefDiffArgs),
    /// Register the rendered template as a new revision (services are not touched)
    Register(TaskdefRegisterArgs),
}

/// Where the template is and what fills it.
#[derive(Debug, Clone, Default, Args)]
pub struct TemplateArgs {
    /// Template file [default: templates/ecs/auth-service.taskdef.yaml beside the configuration file, else here]
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,
    /// Image for `${image}`, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.5.0`
    #[arg(long, value_name = "REPO:TAG")]
    pub image: Option<String>,
    /// Set or override a template variable (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TaskdefRenderArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
}

#[derive(Debug, Args)]
pub struct TaskdefDiffArgs {
    /// Without `--image`, `${image}` is the image the stable service runs, so only configuration differs
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Exit 1 when anything differs (like `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct TaskdefRegisterArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Register even when the live task definition already matches (needs `--reason`)
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why (kept in the journal); required with `--force`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub mutation: MutationArgs,
}
