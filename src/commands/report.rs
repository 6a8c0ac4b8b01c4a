//! `exhibit report`: the security lead's review, as a page, and its summary
//! posted to a chat webhook.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use crate::cli::{Cli, Failure, print_stdout};

/// Builds the review of the last `--since`, writes it to `--out` or
/// standard output, and posts its summary to `--webhook`.
pub(crate) async fn exec(cli: &Cli, args: &ReportArgs) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let from = Utc::now() - chrono::Duration::from_std(args.since).map_err(anyhow::Error::from)?;
    let report = crate::report::build(store, from, &super::configured(cli)?).await?;
    let body = if args.json {
        serde_json::to_string_pretty(&report).expect("serialises")
    } else {
        match args.format {
            ReportFormat::Html => crate::report::html(&report),
            ReportFormat::Md => crate::report::markdown(&report),
        }
    };
    let ext = match (args.json, args.format) {
        (true, _) => "json",
        (false, ReportFormat::Html) => "html",
        (false, ReportFormat::Md) => "md",
    };
    let written = match &args.out {
        // A directory gets a new dated file, never overwriting one.
        Some(path) => Some(
            crate::report::write_out(path, report.generated_at, ext, &body)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => {
            print_stdout(&body)?;
            None
        }
    };
    if let Some(path) = &written {
        eprintln!("wrote {}", path.display());
    }
    if let Some(url) = &args.webhook {
        let http = crate::agent::http_client()?;
        crate::report::post_summary(&http, url, &report, written.as_deref()).await?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The window: how far back (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
    pub(crate) since: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub(crate) format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<std::path::PathBuf>,
    /// Post a summary to this Slack-compatible webhook.
    #[arg(long, env = "EXHIBIT_REPORT_WEBHOOK")]
    pub(crate) webhook: Option<String>,
    /// The whole review as JSON (for other tools).
    #[arg(long, conflicts_with = "format")]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    Html,
    Md,
}
