//! `exhibit list`: the streams in the store.

use std::process::ExitCode;

use crate::cli::{Cli, Failure};

/// Lists every stream with its record count and last status (`json`: for
/// machines).
pub(crate) async fn exec(cli: &Cli, json: bool) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let lines = crate::browse::list(&crate::read::Reader::new(store)).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).expect("serialises")
        );
    } else {
        print!("{}", crate::browse::render_list(&lines));
    }
    Ok(ExitCode::SUCCESS)
}
