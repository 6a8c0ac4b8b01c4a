//! One module per command, each with one `exec`: it reads what it needs
//! (config, store, agent), calls the library, and prints. What is not
//! presentation lives in the library ([`crate::agent`], [`crate::daemon`],
//! [`crate::report`], …); the argument types and exit codes are in
//! [`crate::cli`].

pub(crate) mod assess;
pub(crate) mod attest;
pub(crate) mod collect;
pub(crate) mod completions;
pub(crate) mod config;
pub(crate) mod controls;
pub(crate) mod diff;
pub(crate) mod exception;
pub(crate) mod export;
pub(crate) mod health;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod kinds;
pub(crate) mod list;
pub(crate) mod population;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sample;
pub(crate) mod show;
pub(crate) mod verify;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{Cli, Failure, init_logging};
use crate::config::Config;
use crate::store::Store;

/// Loads the config; for read-only commands a missing default config is
/// fine (the store then defaults to `evidence` in the current directory).
fn load_config(cli: &Cli, required: bool) -> Result<Option<Config>, Failure> {
    // Reading a store named on the command line needs nothing from the
    // config (nor the collectors' secrets in the environment).
    if !required && cli.store.is_some() {
        return Ok(None);
    }
    if !required && !config_named(cli) && !cli.config.exists() {
        return Ok(None);
    }
    Ok(Some(crate::config::load(&cli.config)?))
}

/// Whether the config was named (`--config`, `EXHIBIT_CONFIG`) rather than
/// left to its default.
fn config_named(cli: &Cli) -> bool {
    cli.config != Path::new("exhibit.toml") || std::env::var_os("EXHIBIT_CONFIG").is_some()
}

/// The collectors the config enables, for the read commands that name
/// those with no record at all (`list`, `report`, `verify`): from the
/// config the store comes from, or one named beside `--store`. A store
/// named alone (an auditor's copy) has none: nothing is expected of it.
fn configured(cli: &Cli) -> Result<Vec<crate::verify::Configured>, Failure> {
    let config = if cli.store.is_some() && config_named(cli) {
        Some(crate::config::load(&cli.config)?)
    } else {
        load_config(cli, false)?
    };
    Ok(config
        .map(|c| crate::verify::Configured::enabled_in(&c))
        .unwrap_or_default())
}

/// The config of the commands that cannot do without one.
fn require_config(cli: &Cli) -> Result<Config, Failure> {
    Ok(load_config(cli, true)?.expect("required"))
}

/// The store for the read-only commands (verify, list, show, diff, sample,
/// report, export): from `--store`, or the config when there is one.
async fn read_store(cli: &Cli) -> Result<Arc<dyn Store>, Failure> {
    let config = load_config(cli, false)?;
    init_logging(
        cli.log_format.unwrap_or_default(),
        None,
        cli.verbose,
        "warn",
    );
    Ok(crate::agent::open_store(cli.store.as_deref(), config.as_ref(), false).await?)
}

/// Writes `entry` as the only record of `run` and closes the run with its
/// checkpoint (exceptions and signed reviews).
async fn write_alone(
    agent: &crate::agent::Agent,
    run: crate::writer::Run,
    entry: crate::writer::Entry,
) -> Result<crate::writer::Written, Failure> {
    let written = agent.append(&run, entry).await;
    agent
        .checkpoint(run)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    written.map_err(|e| Failure::Runtime(e.into()))
}

/// `--from`/`--to`: an RFC 3339 time, or a date (its midnight, UTC).
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!(
        "`{s}` is not an RFC 3339 time or a YYYY-MM-DD date"
    ))
}

/// `--since`, `--max-delay`: a duration such as `24h` or `7d`.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))
}

/// Prints to standard output; a reader that went away (`| head`) ends the
/// output quietly instead of a panic.
pub(crate) fn print_quietly(text: &str) {
    write_out(format_args!("{text}"));
}

/// `println!` for the commands: a reader that went away (`| head`) ends the
/// output quietly; any other failure to write is a panic, as with
/// `println!`.
macro_rules! outln {
    () => {
        $crate::commands::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::commands::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes to standard output, quietly doing nothing once the reader has
/// gone (a closed pipe).
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("failed printing to stdout: {e}")
        }
        _ => {}
    }
}
