//! Command-line types of `suma monitors`, `suma dashboards` and `suma slos`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::MutationArgs;

#[derive(Debug, Subcommand)]
pub enum MonitorsCommand {
    /// What `apply` would change: create, update (field by field), unchanged, conflict, orphan
    Diff(DiffArgs),
    /// Create or update the environment's monitors from the templates (only what differs)
    Apply(ApplyArgs),
    /// Adopt the monitors that hold a template's name without suma's identity (apply's conflicts): the
    /// template written over each, its id and history kept; `apply` keeps them in line from then on
    Import(ImportArgs),
}

/// `suma dashboards` and `suma slos`: the resources that are only kept in line with their templates.
#[derive(Debug, Subcommand)]
pub enum TemplatedCommand {
    /// What `apply` would change: create, update (field by field), unchanged, conflict, orphan
    Diff(DiffArgs),
    /// Create or update the environment's resources of this kind from its templates (only what differs)
    Apply(ApplyArgs),
}

/// Where the templates are.
#[derive(Debug, Clone, Args)]
pub struct TemplatesArg {
    /// Directory holding `monitors/*.yaml`, `dashboards/*.json` and `slos/*.yaml` [default: `templates/datadog` beside the
    /// configuration file, else in the current directory]
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Exit 1 when anything differs (like `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub templates: TemplatesArg,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Also delete what suma manages in this environment but no template defines any more
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub mutation: MutationArgs,
}
