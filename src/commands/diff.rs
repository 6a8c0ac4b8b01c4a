//! `exhibit diff`: what changed in a stream between two records.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::{Cli, Failure, print_stdout};

/// Compares two records of a stream (default: the last two holding
/// snapshots), entity by entity.
pub(crate) async fn exec(cli: &Cli, args: &DiffArgs) -> Result<ExitCode, Failure> {
    let store = super::read_store(cli).await?;
    let stream = &args.stream;
    let pair =
        crate::browse::pick_pair(&crate::read::Reader::new(store), stream, args.a, args.b).await?;
    let (older, newer) = (&pair.older, &pair.newer);
    let changes = crate::diff::diff_windows(
        older.payload.as_ref().unwrap_or(&serde_json::Value::Null),
        &pair.after,
        pair.identities,
        pair.windowed,
    );
    let side = |s: &crate::browse::Shown| {
        let p = &s.statement.predicate;
        serde_json::json!({"seq": p.seq, "status": p.status.as_str(), "finished_at": p.finished_at})
    };
    if args.json {
        let doc = serde_json::json!({
            "stream": stream,
            "from": side(older),
            "to": side(newer),
            "skipped": pair.skipped.iter().map(|(seq, st)| serde_json::json!({"seq": seq, "status": st.as_str()})).collect::<Vec<_>>(),
            "windowed": pair.windowed,
            "changes": changes,
        });
        print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("serialises")
        ))?;
    } else {
        // Written at once at the end: a reader that leaves early (`| head`)
        // ends the command quietly.
        let mut o = String::new();
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let at = |s: &crate::browse::Shown| {
            let p = &s.statement.predicate;
            let status = match p.status {
                crate::evidence::record::Status::Ok => String::new(),
                other => format!(", {}", other.as_str()),
            };
            format!(
                "#{} ({}{status})",
                p.seq,
                p.finished_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        };
        let _ = writeln!(
            o,
            "{stream}: {} → {}, {} change(s)",
            at(older),
            at(newer),
            changes.len()
        );
        if !pair.skipped.is_empty() {
            let list: Vec<String> = pair
                .skipped
                .iter()
                .map(|(seq, st)| format!("#{seq} ({})", st.as_str()))
                .collect();
            let _ = writeln!(
                o,
                "skipped {}: no snapshot to compare (the payload is an error document)",
                list.join(", ")
            );
        }
        for s in [older, newer] {
            let p = &s.statement.predicate;
            let _ = match p.status {
                crate::evidence::record::Status::Partial => writeln!(
                    o,
                    "#{} is partial: what it could not read may show as removed or added",
                    p.seq
                ),
                crate::evidence::record::Status::Failed
                | crate::evidence::record::Status::Missed => writeln!(
                    o,
                    "#{} is {}: its payload is an error document, not a snapshot",
                    p.seq,
                    p.status.as_str()
                ),
                crate::evidence::record::Status::Ok => Ok(()),
            };
        }
        o.push_str(&crate::diff::render(&changes, colour));
        print_stdout(&o)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The stream.
    pub(crate) stream: String,
    /// The older record's sequence number.
    pub(crate) a: Option<u64>,
    /// The newer record's sequence number (default: the last record
    /// holding a snapshot).
    pub(crate) b: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}
