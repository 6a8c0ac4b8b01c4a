//! `exhibit exception`: exceptions to a control's findings, granted as
//! signed records of `exception/<control>` and listed with their state.

use crate::commands::outln;
use std::process::ExitCode;

use chrono::Utc;

use super::controls::LibraryArgs;
use crate::agent::Agent;
use crate::assess;
use crate::cli::{Cli, Failure, init_logging};
use crate::control::exception::parse_expires;
use crate::control::{Exception, exception_stream};
use crate::evidence::record::Trigger;
use crate::read::Reader;

/// The collector kind recorded on exception records.
const EXCEPTION_KIND: &str = "exception";

/// What `exhibit exception` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ExceptionCommand {
    /// Grants an exception: from now until it expires, the control reports
    /// this entity's findings as excepted instead of failed.
    Add(AddArgs),
    /// Lists every exception in the store, live and expired.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of `exhibit exception add`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The control.
    #[arg(long)]
    pub(crate) control: String,
    /// The entity, exactly as the control's findings name it.
    #[arg(long)]
    pub(crate) entity: String,
    /// Why the entity may fail the control.
    #[arg(long)]
    pub(crate) reason: String,
    /// Who approved the exception.
    #[arg(long)]
    pub(crate) approver: String,
    /// When it stops covering findings: an RFC 3339 time or a date.
    #[arg(long)]
    pub(crate) expires: String,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
}

/// Runs `exhibit exception …`.
pub(crate) async fn exec(cli: &Cli, command: &ExceptionCommand) -> Result<ExitCode, Failure> {
    match command {
        ExceptionCommand::Add(args) => add(cli, args).await,
        ExceptionCommand::List { json } => list(cli, *json).await,
    }
}

async fn add(cli: &Cli, args: &AddArgs) -> Result<ExitCode, Failure> {
    let lib = args.library.load()?;
    let Some(control) = lib.get(&args.control) else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "no control `{}` in the library",
            args.control
        )));
    };
    let usage = |e: crate::control::exception::ExceptionError| Failure::Usage(e.into());
    let expires = parse_expires(&args.expires).map_err(usage)?;
    let config = super::require_config(cli)?;
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "warn",
    );
    let agent = Agent::open(config, cli.store.as_deref()).await?;
    // The record's times must fall inside its run.
    let run = agent.begin_run(Trigger::Manual);
    let now = agent.now();
    let exception = Exception::new(
        &args.control,
        &args.entity,
        &args.reason,
        &args.approver,
        now,
        expires,
    )
    .map_err(usage)?;
    let entry = assess::entry_of(
        control,
        exception_stream(&args.control),
        EXCEPTION_KIND,
        now,
        exception.payload(),
    );
    let written = super::write_alone(&agent, run, entry).await?;
    outln!(
        "exception {}@{}: {} is excepted from {} until {} (approved by {})",
        written.stream,
        written.seq,
        args.entity,
        args.control,
        expires,
        args.approver
    );
    outln!(
        "Run `exhibit assess --control {}` to apply it.",
        args.control
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(cli: &Cli, json: bool) -> Result<ExitCode, Failure> {
    let reader = Reader::new(super::read_store(cli).await?);
    let standing = assess::standing(&reader).await?;
    for p in &standing.problems {
        eprintln!("warning: {p}");
    }
    let now = Utc::now();
    if json {
        let rows: Vec<serde_json::Value> = standing
            .exceptions
            .iter()
            .map(|e| {
                let mut v = e.payload();
                v["live"] = e.live_at(now).into();
                v["record"] = e.record.as_ref().map(|r| r.label()).into();
                v
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serialises")
        );
    } else if standing.exceptions.is_empty() {
        outln!("No exceptions in {}.", reader.describe());
    } else {
        for e in &standing.exceptions {
            outln!(
                "{} {} {}: {} (approved by {}, {} {}){}",
                if e.live_at(now) { "live   " } else { "expired" },
                e.control,
                e.entity,
                e.reason,
                e.approver,
                if e.live_at(now) { "until" } else { "ended" },
                e.expires,
                e.record
                    .as_ref()
                    .map(|r| format!(" [{}]", r.label()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
