//! The runbook part of `cargo xtask demo`: the shipped runbooks, the plan of `security-incident` on
//! production (a dry run: nothing changes), a real `secret-compromise` run on staging that rotates a
//! secret and restarts its consumers, and that run's timeline for the post-incident review.

use crate::demo_ops::Demo;
use crate::process::{self, Result};

pub fn runbook_demo(demo: &Demo<'_>) -> Result<()> {
    // seed.py is `ROOT/xtask/sandbox/seed.py`; the runbooks are `ROOT/runbooks`.
    let dir = demo
        .seed
        .ancestors()
        .nth(3)
        .ok_or("no workspace root above seed.py")?
        .join("runbooks");
    let dir = dir.to_str().ok_or("the workspace path is not UTF-8")?;
    let extra = [("SUMA_RUNBOOKS_DIR", dir)];
    demo.expect("The runbooks on-call can run", None, &["runbook", "list"], &extra)?;
    demo.expect(
        "What the security-incident runbook would do on production (dry run)",
        None,
        &[
            "runbook",
            "run",
            "security-incident",
            "--env",
            "production",
            "--param",
            "reason=demo: a signing key seen in a log",
            "--dry-run",
        ],
        &extra,
    )?;
    let args = [
        "runbook",
        "run",
        "secret-compromise",
        "--env",
        "staging",
        "--param",
        "secret=hmac-signing-key",
        "--param",
        "where=a demo support ticket",
        "--yes",
        "--skip-manual",
    ];
    println!(
        "\n=== A secret-compromise run on staging (non-interactive: --yes, manual steps skipped): suma {}",
        args.join(" ")
    );
    let out = process::run(demo.suma_cmd(None, &args).envs(extra))?;
    println!("{out}");
    let run_id = out
        .lines()
        .find_map(|l| l.strip_prefix("Timeline: suma runbook timeline "))
        .map(|id| id.trim().to_owned())
        .ok_or("the run printed no id")?;
    demo.expect(
        "The run's timeline, for the post-incident review",
        None,
        &["runbook", "timeline", &run_id, "--env", "staging"],
        &extra,
    )
}
