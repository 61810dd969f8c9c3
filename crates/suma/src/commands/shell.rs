//! `suma completion SHELL` and the man pages, both generated from the command-line definition itself, so
//! they can never disagree with what `suma` accepts.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::exit::ExitStatus;

/// Prints the completion script of `shell` to stdout.
pub fn completion(shell: clap_complete::Shell) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "suma", &mut std::io::stdout().lock());
    Ok(ExitStatus::Success)
}

/// Writes `suma.1` and a page per visible command (`suma-deploy-canary.1`, ...) into `out`.
pub fn man(out: &Path) -> anyhow::Result<ExitStatus> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the man page directory {}", out.display()))?;
    clap_mangen::generate_to(Cli::command(), out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    Ok(ExitStatus::Success)
}
