//! Command-line types of `suma runbook` (placeholder until the command is built).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Not built yet
    Placeholder,
}
