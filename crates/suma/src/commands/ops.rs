//! `suma ops list|show`: the journal of mutating operations.

use anyhow::Context as _;

use super::{environment_regions, Context};
use crate::exit::ExitStatus;

pub async fn list(ctx: &Context, limit: usize) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let ops = ctx
        .journal(&session)
        .list(name, limit)
        .await
        .with_context(|| format!("cannot list the operations of `{name}`"))?;
    ctx.printer.either(&ops, || crate::render::status::operations(&ops));
    Ok(ExitStatus::Success)
}

pub async fn show(ctx: &Context, id: &str) -> anyhow::Result<ExitStatus> {
    let session = ctx.aws(None, []).await;
    let journal = ctx.journal(&session);
    let op = journal
        .load(id)
        .await
        .with_context(|| format!("cannot read operation `{id}`"))?;
    let Some(op) = op else {
        anyhow::bail!(
            "no operation `{id}` in the journal table `{}`\nhint: `suma ops list --env ENV` lists recent ones",
            ctx.config.lock.table
        );
    };
    ctx.printer.either(&op, || crate::render::status::operation(&op));
    Ok(ExitStatus::Success)
}
