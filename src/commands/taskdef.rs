//! `suma taskdef` (placeholder until the command is built).

use crate::cli::TaskdefCommand;
use crate::exit::ExitStatus;

use super::Context;

pub async fn run(_ctx: &Context, _command: TaskdefCommand) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`suma taskdef` is not built yet")
}

pub fn is_mutating(_command: &TaskdefCommand) -> bool {
    true
}
