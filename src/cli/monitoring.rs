//! Command-line types of `suma monitoring` (placeholder until the command is built).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum MonitorsCommand {
    /// Not built yet
    Placeholder,
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Not built yet
    Placeholder,
}
