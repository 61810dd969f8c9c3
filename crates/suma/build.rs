//! Build information for `suma --version`: the commit the binary was built from and that commit's date.
//! `SUMA_BUILD_COMMIT` and `SUMA_BUILD_DATE` given to the build win (an image built without `.git`);
//! otherwise git answers, and without git both are `unknown`. The commit's date, not the clock's, so two
//! builds of one commit are identical.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    for var in ["SUMA_BUILD_COMMIT", "SUMA_BUILD_DATE"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // Rebuilt when HEAD moves: a checkout (HEAD) or a commit on the branch (its ref, loose or packed).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        let common = git(&["rev-parse", "--git-common-dir"]).map_or_else(|| git_dir.clone(), PathBuf::from);
        let common = if common.is_absolute() {
            common
        } else {
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(common)
        };
        let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(branch));
        }
        // Only files that exist: cargo counts a missing one as changed and would rerun this script, and
        // rebuild suma, on every build. A ref that moves between the loose file and `packed-refs` (git gc)
        // removes a watched file, which reruns it once.
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = std::env::var("SUMA_BUILD_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = std::env::var("SUMA_BUILD_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cs", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SUMA_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SUMA_BUILD_DATE={date}");
}
