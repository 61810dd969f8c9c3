//! Every cargo that xtask starts, started the way a shell would start it.
//!
//! `cargo xtask …` is `cargo run -p xtask`, so this process carries the variables cargo sets for a
//! running binary (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …). Build scripts such as ring's declare
//! `rerun-if-env-changed` on several of them, so a nested cargo that inherited xtask's values would see a
//! different environment from a cargo started in a shell, and each switch between the two would rebuild
//! ring and everything above it. [`command`] removes them; every nested cargo goes through it.

use std::process::Command;

/// Variables cargo sets for the binary it runs (`cargo run`, test binaries), by exact name.
const RUN_TIME_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
];

/// Prefixes of variables cargo sets for the binary it runs.
const RUN_TIME_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_"];

/// Whether cargo set `name` for the running binary, i.e. a shell would not have it.
pub fn is_run_time_var(name: &str) -> bool {
    RUN_TIME_VARS.contains(&name) || RUN_TIME_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A `cargo` command with the environment a shell would give it.
pub fn command() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_run_time_var) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The packages cargo compiled rather than found fresh, from `--message-format json` output.
    fn compiled_units(json_lines: &str) -> Vec<String> {
        json_lines
            .lines()
            .filter(|l| l.contains(r#""reason":"compiler-artifact""#) && l.contains(r#""fresh":false"#))
            .map(|l| {
                let id = l.split(r#""package_id":""#).nth(1).unwrap_or(l);
                id.split('"').next().unwrap_or(id).to_owned()
            })
            .collect()
    }

    #[test]
    fn run_time_variables_are_recognised_and_user_settings_kept() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_LINKS",
            "CARGO_BIN_EXE_suma",
            "OUT_DIR",
        ] {
            assert!(is_run_time_var(name), "{name} must be removed");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_INCREMENTAL",
            "PATH",
        ] {
            assert!(!is_run_time_var(name), "{name} must be kept");
        }
    }

    #[test]
    fn the_command_drops_what_cargo_run_set() {
        // This test binary runs under cargo, which set CARGO_MANIFEST_DIR and CARGO_PKG_NAME for it.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let cmd = command();
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(removed.contains(&"CARGO_MANIFEST_DIR".to_owned()), "{removed:?}");
        assert!(removed.contains(&"CARGO_PKG_NAME".to_owned()), "{removed:?}");
        assert!(!removed.iter().any(|n| n == "CARGO_HOME" || n == "PATH"), "{removed:?}");
    }

    #[test]
    fn compiled_units_are_the_artifacts_not_fresh() {
        let out = concat!(
            r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14","fresh":false}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w#suma@0.1.0","fresh":true}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"x"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            compiled_units(out),
            ["registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14"]
        );
    }

    /// The environment of a cargo typed in a shell: what a login shell has, and what
    /// `target/sandbox/env.sh` exports when the sandbox is up (it must not change a build either).
    fn shell_cargo(root: &Path) -> Command {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.env_clear().current_dir(root);
        for name in [
            "PATH",
            "HOME",
            "USER",
            "LANG",
            "TERM",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
        ] {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        let env_sh = std::fs::read_to_string(root.join("target/sandbox/env.sh")).unwrap_or_default();
        for line in env_sh.lines() {
            if let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                cmd.env(name, value.trim_matches('\''));
            }
        }
        cmd
    }

    /// Builds with `--message-format json` and returns what compiled, with cargo's fingerprint log of why.
    fn build(mut cmd: Command, args: &[&str]) -> (Vec<String>, String) {
        let out = cmd
            .args(args)
            .args(["--quiet", "--message-format", "json"])
            .env("CARGO_LOG", "cargo::core::compiler::fingerprint=info")
            .output()
            .expect("cargo runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} failed:\n{stderr}");
        let why: Vec<&str> = stderr.lines().filter(|l| l.contains("dirty")).take(20).collect();
        (compiled_units(&String::from_utf8_lossy(&out.stdout)), why.join("\n"))
    }

    /// Switching between `cargo xtask` (whose nested cargo runs inside `cargo run`) and a cargo typed in a
    /// shell compiles nothing, either way, whichever of the usual builds each one makes: the environment
    /// is a shell's (this module), and the features are the same in every build (`workspace-hack`). The
    /// first two builds are those `cargo xtask test` and `sandbox up` make, so under them nothing compiles
    /// at all; on a cold target directory they compile, and every build after them must find every unit
    /// fresh.
    #[test]
    fn switching_between_xtask_and_a_shell_compiles_nothing() {
        let root = crate::workspace_root();
        let nested = || {
            let mut cmd = command();
            cmd.current_dir(&root);
            cmd
        };
        let test_build = ["test", "--workspace", "--all-targets", "--no-run"];
        let bins = ["build", "--workspace", "--bins"];
        // What `cargo xtask test` and `sandbox up` build: fresh under them, compiled on a cold directory.
        build(nested(), &test_build);
        build(nested(), &bins);
        let steps: [(&str, Command, &[&str]); 4] = [
            ("a shell's", shell_cargo(&root), &["build", "--bin", "suma"]),
            ("a shell's", shell_cargo(&root), &bins),
            ("xtask's", nested(), &test_build),
            ("xtask's", nested(), &["build", "--bin", "suma"]),
        ];
        for (who, cmd, args) in steps {
            let (compiled, why) = build(cmd, args);
            assert!(
                compiled.is_empty(),
                "{who} `cargo {}` compiled {compiled:?}\n{why}",
                args.join(" ")
            );
        }
    }
}
