//! `exhibit sample`: an auditor's sample, as a bundle that verifies itself:
//! of the records of a period (`--seed`), or of a control's population
//! (`--control --engagement`).

use crate::commands::outln;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::controls::LibraryArgs;
use crate::cli::{Cli, Failure};
use crate::sample::control::{ControlRequest, ControlSampleError};

/// Draws the sample, writes the bundle to `--out`, and lists what it holds
/// and the head it carries.
pub(crate) async fn exec(cli: &Cli, args: &SampleArgs) -> Result<ExitCode, Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from ({}) is after --to ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    if let Some(control) = &args.control {
        return control_sample(cli, args, control).await;
    }
    // clap requires these without --control.
    let (Some(seed), Some(from), Some(to), Some(out)) = (&args.seed, args.from, args.to, &args.out)
    else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--seed, --from, --to and --out are needed (or --control and --engagement)"
        )));
    };
    crate::sample::check_seed(seed).map_err(|e| Failure::Usage(anyhow::anyhow!("--seed: {e}")))?;
    let store = super::read_store(cli).await?;
    let req = crate::sample::Request {
        streams: args.streams.clone(),
        from,
        to,
        size: args.size,
        seed: seed.clone(),
    };
    let m = crate::sample::bundle(store, &req, out).await?;
    for s in &m.streams {
        outln!(
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
    print_head(&m.head);
    outln!(
        "bundle {} (seed `{}`, {} record(s) in the period): verify with `sh verify.sh` inside it, or `exhibit verify --bundle`",
        out.display(),
        m.seed,
        m.population
    );
    Ok(ExitCode::SUCCESS)
}

fn print_head(head: &str) {
    outln!("head: {head} (note it: verifying the bundle prints it again)");
}

/// `--control`: the sample of the control's population over the period
/// (by default the year up to now).
async fn control_sample(cli: &Cli, args: &SampleArgs, id: &str) -> Result<ExitCode, Failure> {
    let engagement = args.engagement.clone().unwrap_or_default();
    crate::sample::check_seed(&engagement).map_err(|e| {
        Failure::Usage(anyhow::anyhow!(
            "--engagement: {}",
            e.replace("--seed", "--engagement")
                .replace("seed", "engagement")
        ))
    })?;
    if args.size == Some(0) {
        return Err(Failure::Usage(anyhow::anyhow!("--size must be at least 1")));
    }
    let lib = args.library.load()?;
    let Some(control) = lib.get(id) else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "no control `{id}` in the library"
        )));
    };
    let to = args.to.unwrap_or_else(Utc::now);
    let from = args.from.unwrap_or(to - chrono::Duration::days(365));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("{id}-sample.tar.gz").into());
    let store = super::read_store(cli).await?;
    let req = ControlRequest {
        engagement,
        from,
        to,
        size: args.size,
    };
    let m = match crate::sample::control::control_bundle(store, control, &req, &out).await {
        Ok(m) => m,
        Err(ControlSampleError::Empty(why)) => {
            eprintln!("{why}");
            return Ok(ExitCode::from(1));
        }
        Err(ControlSampleError::Failed(e)) => return Err(Failure::Runtime(e)),
    };
    let t = &m.text;
    outln!(
        "population sha256: {} ({} occurrences of {id} from {} to {})",
        t.population,
        m.population_size,
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    outln!(
        "seed: {} (sha256 of engagement `{}`, control, population hash)",
        t.seed,
        t.engagement
    );
    for s in &m.sampled {
        outln!(
            "sampled {} (rank {}, result {})",
            s.occurrence["id"].as_str().unwrap_or("?"),
            s.rank,
            s.result
        );
    }
    print_head(t.heads.last().map(String::as_str).unwrap_or("none"));
    outln!(
        "bundle {}: {} of {} occurrence(s); verify with `sh verify.sh` inside it, or `exhibit verify --bundle`",
        out.display(),
        m.sampled.len(),
        m.population_size
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct SampleArgs {
    /// Streams to sample (repeatable; default: every stream).
    #[arg(long = "stream", conflicts_with = "control")]
    pub(crate) streams: Vec<String>,
    /// Start of the period (RFC 3339 or YYYY-MM-DD; with --control,
    /// default: a year before --to).
    #[arg(long, value_parser = super::parse_time, required_unless_present = "control")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// End of the period (RFC 3339 or YYYY-MM-DD; with --control,
    /// default: now).
    #[arg(long, value_parser = super::parse_time, required_unless_present = "control")]
    pub(crate) to: Option<DateTime<Utc>>,
    /// Records per stream, or occurrences of the control (default: by
    /// frequency, see docs/auditors.md).
    #[arg(long)]
    pub(crate) size: Option<usize>,
    /// The seed; the same seed over the same store draws the same sample.
    #[arg(long, required_unless_present = "control", conflicts_with = "control")]
    pub(crate) seed: Option<String>,
    /// Sample this control's population (as `exhibit population` lists
    /// it) instead of records; the seed derives from --engagement.
    #[arg(long, requires = "engagement")]
    pub(crate) control: Option<String>,
    /// The engagement (e.g. "ACME FY2026 SOC 2"): the seed is the SHA-256
    /// of `<engagement>\n<control id>\n<population hash>`.
    #[arg(long, requires = "control")]
    pub(crate) engagement: Option<String>,
    /// The bundle to write (.tar.gz; with --control, default:
    /// `<control>-sample.tar.gz`).
    #[arg(long, required_unless_present = "control")]
    pub(crate) out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
}
