//! `exhibit show`: one record and its payload.

use std::process::ExitCode;

use crate::cli::{Cli, Failure, print_stdout};

/// Shows STREAM's last record, or STREAM@SEQ.
pub(crate) async fn exec(cli: &Cli, args: &ShowArgs) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let shown = crate::browse::show(&crate::read::Reader::new(store), &args.record).await?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&shown).expect("serialises");
        text.push('\n');
        print_stdout(&text)?;
    } else {
        print_stdout(&crate::browse::render_show(&shown))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// STREAM or STREAM@SEQ.
    pub(crate) record: String,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}
