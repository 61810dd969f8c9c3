//! `cargo xtask crash-matrix`: only the crash matrix (`crates/suma/tests/it/crash_matrix`), with its
//! report on the terminal: one line per kill point of each mutating command, then `N kill points, M
//! consistent`. `cargo xtask test` runs it too, as part of the whole suite (its lines captured).

use std::path::PathBuf;

use crate::process::{self, Result};
use crate::sandbox;

pub fn run(root: PathBuf) -> Result<()> {
    let passed = sandbox::with_test_sandbox(&root, |vars| {
        process::run_visible(
            crate::cargo::command()
                .current_dir(&root)
                .args([
                    "test",
                    "-p",
                    "suma",
                    "--test",
                    "it",
                    "crash_matrix::",
                    "--",
                    "--nocapture",
                ])
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
    })?;
    match passed {
        true => Ok(()),
        false => Err("the crash matrix found an inconsistent kill point (see the lines above)".to_owned()),
    }
}
