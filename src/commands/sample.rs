//! `exhibit sample`: an auditor's sample, as a bundle that verifies itself.

use std::process::ExitCode;

use crate::cli::{Cli, Failure};

/// Draws the sample, writes the bundle to `--out`, and lists what it holds
/// and the head it carries.
pub(crate) async fn exec(cli: &Cli, args: &SampleArgs) -> Result<ExitCode, Failure> {
    crate::sample::check_seed(&args.seed)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("--seed: {e}")))?;
    if args.from > args.to {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from ({}) is after --to ({})",
            args.from.to_rfc3339(),
            args.to.to_rfc3339()
        )));
    }
    let store = super::read_store(cli).await?;
    let req = crate::sample::Request {
        streams: args.streams.clone(),
        from: args.from,
        to: args.to,
        size: args.size,
        seed: args.seed.clone(),
    };
    let m = crate::sample::bundle(store, &req, &args.out).await?;
    for s in &m.streams {
        println!(
            "{:<40} {:>4} of {:>5} record(s){}",
            s.stream,
            s.size,
            s.population,
            s.frequency
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    println!(
        "head: {} (note it: verifying the bundle prints it again)",
        m.head
    );
    println!(
        "bundle {} (seed `{}`, {} record(s) in the period): verify with `sh verify.sh` inside it, or `exhibit verify --bundle`",
        args.out.display(),
        m.seed,
        m.population
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct SampleArgs {
    /// Streams to sample (repeatable; default: every stream).
    #[arg(long = "stream")]
    pub(crate) streams: Vec<String>,
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) from: chrono::DateTime<chrono::Utc>,
    /// End of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) to: chrono::DateTime<chrono::Utc>,
    /// Records per stream (default: by control frequency, see
    /// docs/auditors.md).
    #[arg(long)]
    pub(crate) size: Option<usize>,
    /// The seed; the same seed over the same store draws the same sample.
    #[arg(long)]
    pub(crate) seed: String,
    /// The bundle to write (.tar.gz).
    #[arg(long)]
    pub(crate) out: std::path::PathBuf,
}
