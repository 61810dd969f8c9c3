//! `suma runbook` (placeholder until the command is built).

use crate::cli::RunbookCommand;
use crate::exit::ExitStatus;

use super::Context;

pub async fn run(_ctx: &Context, _command: RunbookCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`suma runbook` is not built yet")
}

pub fn is_mutating(_command: &RunbookCommand) -> bool {
    true
}
