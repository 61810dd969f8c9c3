//! Command-line types of `suma taskdef` (placeholder until the command is built).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TaskdefCommand {
    /// Not built yet
    Placeholder,
}
