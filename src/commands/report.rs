//! `exhibit report`: the security lead's review, as a page, and its summary
//! posted to a chat webhook.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use crate::cli::{Cli, Failure, ReportArgs, ReportFormat};

/// Builds the review of the last `--since`, writes it to `--out` or
/// standard output, and posts its summary to `--webhook`.
pub(crate) async fn exec(cli: &Cli, args: &ReportArgs) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let from = Utc::now() - chrono::Duration::from_std(args.since).map_err(anyhow::Error::from)?;
    let report = crate::report::build(store, from).await?;
    let body = if args.json {
        serde_json::to_string_pretty(&report).expect("serialises")
    } else {
        match args.format {
            ReportFormat::Html => crate::report::html(&report),
            ReportFormat::Md => crate::report::markdown(&report),
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, &body)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{body}"),
    }
    if let Some(url) = &args.webhook {
        let http = crate::agent::http_client()?;
        crate::report::post_summary(&http, url, &report, args.out.as_deref()).await?;
    }
    Ok(ExitCode::SUCCESS)
}
