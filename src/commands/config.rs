//! `exhibit config check`: loads and validates the config, says what it
//! holds, and lists every problem of the file at once; with `--connect`,
//! reaches each enabled collector's source with its credentials.

use crate::commands::outln;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Cli, Failure, init_logging};
use crate::collect::Context;
use crate::collect::instance::{self, CollectorInstance};

/// Checks the config (every collector's kind and keys; the enabled ones
/// built, their secrets resolved) and prints a summary, or every problem
/// (exit 2); with `--connect`, then collects once from each enabled
/// collector without recording (exit 1 if any fails).
pub(crate) async fn exec(cli: &Cli, command: &ConfigCommand) -> Result<ExitCode, Failure> {
    let ConfigCommand::Check { connect } = command;
    let diagnosis = crate::config::diagnose(&cli.config);
    let mut problems = diagnosis.problems;
    problems.extend(instance::check_all(&diagnosis.collectors));
    problems.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    problems.dedup();
    let config = match (diagnosis.config, problems.is_empty()) {
        (Some(c), true) => c,
        _ => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("{}: {} problem(s)", cli.config.display(), problems.len());
            return Ok(ExitCode::from(2));
        }
    };
    let collectors = instance::build_all(&config)?;
    outln!(
        "{}: OK — {} collector(s), {} enabled, store {}",
        config.path.display(),
        config.collectors.len(),
        collectors.len(),
        cli.store.as_deref().unwrap_or(&config.store)
    );
    if let Some(t) = &config.timestamping {
        outln!(
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
    for c in &config.collectors {
        let criteria = collectors
            .iter()
            .find(|i| i.name == c.name)
            .map(|i| i.criteria.join(","))
            .unwrap_or_default();
        outln!(
            "  {:<24} {:<28} {:<16} {}{}",
            c.name,
            c.kind,
            c.schedule.expression(),
            criteria,
            if c.enabled { "" } else { "(disabled)" }
        );
    }
    if !connect {
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "error",
    );
    outln!("connecting (one collection per enabled collector, nothing recorded):");
    let http = crate::agent::http_client()?;
    let mut failed = 0;
    for c in &collectors {
        match probe(c, &http).await {
            Ok(what) => outln!("  ok      {:<24} {what}", c.name),
            Err(e) => {
                failed += 1;
                outln!("  FAILED  {:<24} {e}", c.name);
            }
        }
    }
    Ok(if failed > 0 {
        eprintln!("{failed} collector(s) could not reach their source");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reaches `c`'s source the way a collection does (its targets, then one
/// collection of each), within its timeout; says what it reached.
async fn probe(c: &CollectorInstance, http: &reqwest::Client) -> Result<String, String> {
    let ctx = Context::new(http.clone(), Default::default());
    let timeout = c.timeout.max(Duration::from_secs(1));
    let work = async {
        let targets = c.collector.targets(&ctx).await.map_err(|e| e.to_string())?;
        if targets.is_empty() {
            return Err("no target to collect from".to_string());
        }
        let mut partial = Vec::new();
        for t in &targets {
            let s = c
                .collector
                .collect(&ctx, t, None)
                .await
                .map_err(|e| format!("{}: {e}", t.key))?;
            partial.extend(s.failures.into_iter().map(|f| format!("{}: {f}", t.key)));
        }
        let keys: Vec<&str> = targets.iter().map(|t| t.key.as_str()).collect();
        if partial.is_empty() {
            Ok(format!("reached {}", keys.join(", ")))
        } else {
            // Reached, but not everything is readable: usually a missing
            // permission, which the records would show as partial.
            Err(format!(
                "reached {}, but some parts could not be read: {}",
                keys.join(", "),
                partial.join("; ")
            ))
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            ctx.cancel.cancel();
            Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate the config, listing every problem (exit 2):
    /// each collector's kind and keys, and for the enabled ones their
    /// variables and secret files and the settings their kind checks.
    Check {
        /// Then reach each enabled collector's source with its
        /// credentials (one collection each, nothing recorded); exit 1 if
        /// any fails.
        #[arg(long)]
        connect: bool,
    },
}
