//! Kill points for the crash matrix, compiled only with the `fault-hooks` feature (suma's test builds;
//! `cargo build` and release builds never enable it). A kill point is every place where a crash leaves a
//! different state behind: before each AWS change (so right after the one before it), after a step's work
//! but before its end is journaled, and after its end is journaled. The process is killed with SIGKILL,
//! as abruptly as the OOM killer or a lost machine: no destructor, no journal write, no lock release.
//!
//! - `SUMA_FAULT_CRASH_AT=<n>`: killed at the `n`-th kill point of the process (1-based); the crash
//!   matrix runs a command with n = 1, 2, ... until it finishes without reaching `n`;
//! - `SUMA_FAULT_CRASH_AFTER_STEP=<step>`: killed right after step `<step>`'s end is journaled.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env_vars::{SUMA_FAULT_CRASH_AFTER_STEP, SUMA_FAULT_CRASH_AT};

static KILL_POINTS: AtomicUsize = AtomicUsize::new(0);

/// A kill point; `what` describes it for the crash matrix's report.
pub(super) fn kill_point(what: impl FnOnce() -> String) {
    let count = KILL_POINTS.fetch_add(1, Ordering::SeqCst) + 1;
    let at = std::env::var(SUMA_FAULT_CRASH_AT)
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if at == Some(count) {
        kill(&format!("kill point {count}: {}", what()));
    }
}

pub(super) fn after_step_journaled(name: &str) {
    if std::env::var(SUMA_FAULT_CRASH_AFTER_STEP).is_ok_and(|step| step == name) {
        kill(&format!("after step `{name}`"));
    }
    kill_point(|| format!("after the end of `{name}` is journaled"));
}

fn kill(at: &str) -> ! {
    // The crash matrix reads this line to know where the process died.
    eprintln!("suma fault hook: killed at {at}");
    let pid = std::process::id().to_string();
    // SIGKILL from outside the runtime, as a real kill would arrive; abort() if `kill` is missing.
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    std::process::abort()
}
