//! `exhibit list`: the streams in the store.

use std::process::ExitCode;

use crate::cli::{Cli, Failure, print_stdout};

/// The state `list` gives an enabled collector with no record at all.
const NEVER_COLLECTED: &str = "never collected";

/// Lists every stream with its record count and last status, and each
/// collector the config enables that has none yet (`json`: for machines).
pub(crate) async fn exec(cli: &Cli, json: bool) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let mut lines = crate::browse::list(&crate::read::Reader::new(store)).await?;
    // An enabled collector that never produced a record has no stream to
    // list: it is listed by its name, so that it is not missed.
    let configured = super::configured(cli)?;
    let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
    let never: Vec<_> = crate::verify::never_collected(&configured, &streams)
        .into_iter()
        .map(|c| crate::browse::StreamLine {
            stream: format!("{}/*", c.name),
            records: 0,
            kind: c.kind.clone(),
            last_seq: 0,
            last_status: NEVER_COLLECTED.into(),
            last_at: "-".into(),
            last_error: Some(format!(
                "enabled in the config (schedule `{}`), no record in the store yet",
                c.schedule.expression()
            )),
        })
        .collect();
    lines.extend(never);
    if json {
        print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&lines).expect("serialises")
        ))?;
    } else {
        print_stdout(&crate::browse::render_list(&lines))?;
    }
    Ok(ExitCode::SUCCESS)
}
