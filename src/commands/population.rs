//! `exhibit population`: every occurrence of a control in a period, in the
//! canonical form anyone can hash and redraw a sample from (docs/auditors.md),
//! with the population's SHA-256.

use crate::commands::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::controls::LibraryArgs;
use crate::assess;
use crate::cli::{Cli, Failure};
use crate::read::Reader;

/// How a population is printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PopulationFormat {
    /// The canonical JSON array, byte for byte what the hash covers.
    Json,
    /// A table for spreadsheets: id, time and each attribute.
    Csv,
}

/// The arguments of `exhibit population`.
#[derive(Debug, clap::Args)]
pub(crate) struct PopulationArgs {
    /// The control.
    #[arg(long)]
    pub(crate) control: String,
    /// Start of the period.
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) from: DateTime<Utc>,
    /// End of the period.
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) to: DateTime<Utc>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub(crate) format: PopulationFormat,
    /// Write the population to this file (the hash goes to stdout).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
}

/// Prints the population and its hash; exits 1 when it is empty (no
/// evidence that the control operated in the period).
pub(crate) async fn exec(cli: &Cli, args: &PopulationArgs) -> Result<ExitCode, Failure> {
    if args.from > args.to {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from ({}) is later than --to ({})",
            args.from,
            args.to
        )));
    }
    let lib = args.library.load()?;
    let Some(control) = lib.get(&args.control) else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "no control `{}` in the library",
            args.control
        )));
    };
    let reader = Reader::new(super::read_store(cli).await?);
    let population = assess::population(&reader, control, args.from, args.to).await?;
    let data = match args.format {
        PopulationFormat::Json => population.bytes.clone(),
        PopulationFormat::Csv => {
            let mut columns: Vec<&str> = population
                .occurrences
                .iter()
                .flat_map(|o| o.attributes.keys().map(String::as_str))
                .collect();
            columns.sort_unstable();
            columns.dedup();
            population.to_csv(&columns).into_bytes()
        }
    };
    let summary = format!(
        "population sha256: {} ({} occurrences of {} from {} to {})",
        population.sha256,
        population.occurrences.len(),
        args.control,
        args.from,
        args.to
    );
    match &args.out {
        Some(path) => {
            std::fs::write(path, &data)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            outln!("{summary}");
        }
        None => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&data);
            if matches!(args.format, PopulationFormat::Json) {
                let _ = out.write_all(b"\n");
            }
            eprintln!("{summary}");
        }
    }
    if population.occurrences.is_empty() {
        eprintln!(
            "No occurrence of {} in the period: no evidence that it operated (run `exhibit assess`?).",
            args.control
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
