//! `exhibit export`: the evidence of a period in another tool's format.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Failure, print_stdout};

/// Writes the export to `--out`, or the assessment results alone to
/// standard output.
pub(crate) async fn exec(cli: &Cli, args: &ExportArgs) -> Result<ExitCode, Failure> {
    let library = args.library.load()?;
    let store = super::read_store(cli).await?;
    let docs = match args.format {
        ExportFormat::Oscal => crate::oscal::export(store, &library, args.from, args.to).await?,
    };
    let [results, plan, catalog] = docs.files();
    let Some(out) = &args.out else {
        print_stdout(&String::from_utf8_lossy(&results.1))?;
        eprintln!(
            "The assessment plan ({}) and catalog ({}) the results refer to are written with --out.",
            plan.0, catalog.0
        );
        return Ok(ExitCode::SUCCESS);
    };
    // `--out x.json` names the results file; the documents it refers to
    // go beside it. Anything else is a directory for all three.
    let (dir, results_name) = match out.extension() {
        Some(e) if e == "json" => (
            out.parent().map(Path::to_path_buf).unwrap_or_default(),
            out.file_name().expect("a file name").to_owned(),
        ),
        _ => (out.clone(), results.0.into()),
    };
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in [
        (results_name, results.1),
        (plan.0.into(), plan.1),
        (catalog.0.into(), catalog.1),
    ] {
        let path = dir.join(&name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
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
    /// Write the assessment results, the assessment plan and the catalog of
    /// the control library into this directory (`assessment-results.json`,
    /// `assessment-plan.json`, `catalog.json`); a path ending in `.json`
    /// names the results file, the other two going beside it. Without it,
    /// the assessment results alone go to standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) library: super::controls::LibraryArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// An OSCAL 1.1.2 assessment-results document (JSON).
    Oscal,
}
