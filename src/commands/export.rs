//! `exhibit export`: the evidence of a period in another tool's format.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Failure, print_stdout};

/// Writes the export to `--out`, or standard output.
pub(crate) async fn exec(cli: &Cli, args: &ExportArgs) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let text = match args.format {
        ExportFormat::Oscal => {
            let doc = crate::oscal::assessment_results(store, args.from, args.to).await?;
            serde_json::to_string_pretty(&doc).expect("serialises")
        }
    };
    match &args.out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print_stdout(&format!("{text}\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The format.
    #[arg(long, value_enum)]
    pub(crate) format: ExportFormat,
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) from: chrono::DateTime<chrono::Utc>,
    /// End of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) to: chrono::DateTime<chrono::Utc>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// An OSCAL 1.1.2 assessment-results document (JSON).
    Oscal,
}
