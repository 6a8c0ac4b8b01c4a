//! `exhibit export`: the evidence of a period in another tool's format.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, ExportArgs, ExportFormat, Failure, print_stdout};

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
