//! `suma init`: the lock table made what suma needs (`suma_ops::init` decides; this asks and reports).

use std::time::Duration;

use serde_json::json;

use super::Context;
use crate::cli::InitArgs;
use crate::exit::ExitStatus;
use suma_ops::init;

/// How long a new table may take to become active.
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

pub async fn init(ctx: &Context, args: &InitArgs) -> anyhow::Result<ExitStatus> {
    let table = &ctx.config.lock.table;
    let region = &ctx.config.lock.region;
    // The selected environment's AWS profile when there is one; the table serves every environment.
    let profile = ctx.environment().ok().and_then(|(_, env)| env.aws_profile.clone());
    let session = ctx.aws(profile.as_deref(), []).await;
    let setup = session.lock_table_setup(region, table);
    ctx.reporter.phase(&format!("reading table `{table}` ({region})"));
    let before = setup.describe().await?;
    let steps = init::plan(table, before.as_ref())?;
    ctx.reporter.finish();
    let described: Vec<_> = steps
        .iter()
        .map(|s| json!({"name": s, "detail": s.describe(table)}))
        .collect();
    if steps.is_empty() {
        // A dry run says so in the one dry-run shape even when there is nothing to plan.
        let mut ready =
            json!({"table": table, "region": region.as_str(), "plan": [], "changed": false, "facts": before});
        if args.mutation.dry_run {
            ready["dry_run"] = json!(true);
        }
        ctx.printer.either(&ready, || {
            format!("table `{table}` ({region}) is ready: key `pk`, point-in-time recovery and deletion protection on")
        });
        return Ok(ExitStatus::Success);
    }
    let plan_text = || {
        let lines: Vec<String> = steps.iter().map(|s| format!("  - {}", s.describe(table))).collect();
        format!("plan for `{table}` ({region}):\n{}", lines.join("\n"))
    };
    if args.mutation.dry_run {
        ctx.printer.either(
            &json!({"dry_run": true, "table": table, "region": region.as_str(), "plan": described}),
            plan_text,
        );
        return Ok(ExitStatus::Success);
    }
    ctx.reporter.info(&plan_text());
    if !crate::render::confirm(&format!("set up table `{table}` in {region}"), args.mutation.yes)? {
        return Ok(ExitStatus::No);
    }
    let after = init::apply(setup.as_ref(), &steps, ctx.reporter.as_ref(), ACTIVE_WITHIN).await?;
    ctx.reporter.finish();
    ctx.printer.either(
        &json!({"table": table, "region": region.as_str(), "plan": described, "changed": true, "facts": after}),
        || format!("table `{table}` ({region}) is ready: {} change(s) made", steps.len()),
    );
    Ok(ExitStatus::Success)
}
