//! Crash hooks for the crash matrix, compiled only with the `fault-hooks` feature (test builds; release
//! builds never enable it). Each hook ends the process with `abort()`, as abruptly as a SIGKILL: no
//! destructor, no journal write, no lock release.
//!
//! - `SUMA_FAULT_CRASH_AFTER_STEP=<step>`: right after step `<step>`'s end is journaled;
//! - `SUMA_FAULT_CRASH_AT_MUTATION=<n>`: at the `n`-th check before an AWS mutation (1-based), that is
//!   right after the `n-1`-th mutation and before the `n`-th.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env_vars::{SUMA_FAULT_CRASH_AFTER_STEP, SUMA_FAULT_CRASH_AT_MUTATION};

static MUTATIONS: AtomicUsize = AtomicUsize::new(0);

pub(super) fn after_step(name: &str) {
    if std::env::var(SUMA_FAULT_CRASH_AFTER_STEP).is_ok_and(|step| step == name) {
        crash(&format!("after step `{name}`"));
    }
}

pub(super) fn before_mutation() {
    let count = MUTATIONS.fetch_add(1, Ordering::SeqCst) + 1;
    let at = std::env::var(SUMA_FAULT_CRASH_AT_MUTATION)
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if at == Some(count) {
        crash(&format!("before AWS mutation {count}"));
    }
}

fn crash(at: &str) -> ! {
    // The crash matrix reads this line to know the kill point was reached.
    eprintln!("suma fault hook: crashing {at}");
    std::process::abort()
}
