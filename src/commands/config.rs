//! `exhibit config check`: loads and validates the config, and says what it
//! holds.

use std::process::ExitCode;

use crate::cli::{Cli, ConfigCommand, Failure};

/// Loads the config (building every collector) and prints a summary.
pub(crate) fn exec(cli: &Cli, command: &ConfigCommand) -> Result<ExitCode, Failure> {
    let ConfigCommand::Check = command;
    let config = super::require_config(cli)?;
    let collectors = crate::collect::instance::build_all(&config)?;
    println!(
        "{}: OK — {} collector(s), store {}",
        config.path.display(),
        collectors.len(),
        cli.store.as_deref().unwrap_or(&config.store)
    );
    if let Some(t) = &config.timestamping {
        println!(
            "  timestamping: {} TSA(s) [{}], trusting {}",
            t.urls.len(),
            t.urls
                .iter()
                .filter_map(|u| u.host_str())
                .collect::<Vec<_>>()
                .join(", "),
            t.trust.subjects().join("; ")
        );
    }
    for c in &collectors {
        println!(
            "  {:<24} {:<10} {:<16} {}{}",
            c.name,
            c.kind,
            c.schedule.expression(),
            c.criteria.join(","),
            if c.enabled { "" } else { "  (disabled)" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
