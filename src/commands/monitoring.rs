//! `suma monitors` and `suma dashboards` (placeholder until the commands are built).

use crate::cli::{DashboardsCommand, MonitorsCommand};
use crate::exit::ExitStatus;

use super::Context;

pub async fn monitors(_ctx: &Context, _command: MonitorsCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`suma monitors` is not built yet")
}

pub async fn dashboards(_ctx: &Context, _command: DashboardsCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`suma dashboards` is not built yet")
}

pub fn monitors_mutating(_command: &MonitorsCommand) -> bool {
    true
}

pub fn dashboards_mutating(_command: &DashboardsCommand) -> bool {
    true
}
