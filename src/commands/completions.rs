//! `exhibit completions SHELL` and `exhibit man`: the shell completion
//! scripts (clap_complete) and the manual page (clap_mangen), both made
//! from the command line's own definition, so they never fall behind it.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Failure};

/// Prints the completion script of `shell`.
pub(crate) fn exec(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "exhibit", &mut out);
    super::print_quietly(&String::from_utf8_lossy(&out));
    ExitCode::SUCCESS
}

/// Prints the manual page, roff: the command, its global options and
/// every subcommand.
pub(crate) fn man() -> Result<ExitCode, Failure> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(anyhow::Error::from)?;
    super::print_quietly(&String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}
