//! The command line (DESIGN.md fixes its commands and exit codes): the
//! argument types, the entry point, logging, and the mapping of errors to
//! exit codes: 0 success; 1 evidence failed verification or a collection
//! failed; 2 bad usage or bad config, and a store locked by another agent
//! (two writers of one chain is a mistake of the operator's, not a failed
//! collection). Each command's work is in [`crate::commands`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::agent::OpenError;
use crate::commands;
use crate::config::{ConfigError, LogFormat};

/// Continuous, signed, hash-chained evidence collection for SOC 2 audits.
#[derive(Debug, Parser)]
#[command(name = "exhibit", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "EXHIBIT_CONFIG",
        default_value = "exhibit.toml"
    )]
    pub(crate) config: PathBuf,
    /// The evidence store (a directory or URL), overriding the config's.
    #[arg(long, global = true, env = "EXHIBIT_STORE")]
    pub(crate) store: Option<String>,
    /// Log format (default: the config's, else human).
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon: schedule every enabled collector and serve
    /// /healthz, /readyz and /metrics.
    Run {
        /// Admin listen address, overriding the config's.
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// Run collectors once, now, and exit (1 if any collection failed).
    Collect {
        /// Collector names (default: every enabled collector).
        names: Vec<String>,
    },
    /// Check signatures, payload hashes, chains, checkpoints and coverage.
    Verify(VerifyArgs),
    /// List the streams in the store.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a record and its payload: STREAM (the last record) or STREAM@SEQ.
    Show(ShowArgs),
    /// What changed in a stream between two records, entity by entity.
    ///
    /// Entities are matched by their natural identities (ARN, login, full
    /// name, pull request number, commit sha…), not by position. Without
    /// A and B, the last two records holding snapshots (ok or partial) are
    /// compared: a failed or missed record's payload is an error document,
    /// not a snapshot, so such records are passed over and the output names
    /// them ("skipped" in --json). For a stream whose records hold the
    /// events of their own window (git commits, merged pull requests), the
    /// newer side gathers every window after A up to B, and what only the
    /// older window held is not reported as removed.
    Diff(DiffArgs),
    /// An auditor's reproducible random sample of records over a period,
    /// exported as a bundle that verifies itself offline.
    Sample(SampleArgs),
    /// Export the evidence of a period for other tools.
    Export(ExportArgs),
    /// The nightly review for a security lead: changes, highlights,
    /// failures and coverage, as HTML or Markdown.
    Report(ReportArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Probe a running agent's /healthz (for container health checks,
    /// where no curl exists): exit 0 when it answers 200.
    Health {
        /// The agent's admin address (default: the config's
        /// `admin.listen`, else 127.0.0.1:9464).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// The agent's signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Evaluates controls over the evidence and records their results.
    Assess(commands::assess::AssessArgs),
    /// Each control's state now and over a period; `controls test` runs
    /// the library's fixtures.
    Controls(commands::controls::ControlsArgs),
    /// Grants and lists exceptions to a control's findings.
    #[command(subcommand)]
    Exception(commands::exception::ExceptionCommand),
    /// Signs off a record for a control with your SSH key.
    Attest(commands::attest::AttestArgs),
    /// Every occurrence of a control in a period, and the population's hash.
    Population(commands::population::PopulationArgs),
    /// Write a starter config: local collectors that work at once, and
    /// commented cloud and SaaS sections to fill in.
    Init(InitArgs),
    /// The collector kinds of this build: what each collects, its SOC 2
    /// criteria, required settings and the permissions it needs.
    Kinds {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: `exhibit man |
    /// man -l -`, or save it as exhibit.1 in a man directory.
    Man,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Where to write it (default: the global --config, `exhibit.toml`).
    pub(crate) path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) from: Option<DateTime<Utc>>,
    /// End of the period (RFC 3339 or YYYY-MM-DD; default: now).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) to: Option<DateTime<Utc>>,
    /// A head you noted earlier (the SHA-256 `collect`, `verify` and the
    /// nightly report print): fails unless that checkpoint is still in
    /// the store, as the newest or an ancestor of the newest.
    #[arg(long, value_name = "SHA256")]
    pub(crate) known_head: Option<String>,
    /// Your own copy of the agent's public key (repeatable); without
    /// it, the store's keys/ are trusted and the verdict says so.
    #[arg(long = "key")]
    pub(crate) keys: Vec<PathBuf>,
    /// Print the coverage detail (missed slots) per stream.
    #[arg(long)]
    pub(crate) coverage: bool,
    /// Verify a sample bundle (.tar.gz from `exhibit sample`) instead
    /// of a store.
    #[arg(long)]
    pub(crate) bundle: Option<PathBuf>,
    /// Your own copy of a TSA's certificate or its CA's (PEM,
    /// repeatable), to check RFC 3161 tokens against; without it, the
    /// config's `[timestamping] tsa_certs`, else the store's tsa/
    /// (and the verdict says so).
    #[arg(long = "tsa-cert")]
    pub(crate) tsa_certs: Vec<PathBuf>,
    /// Fail checkpoints that have no RFC 3161 token (default: a
    /// warning).
    #[arg(long)]
    pub(crate) require_timestamps: bool,
    /// How long before its token's time a record may claim to have
    /// finished before it counts as back-dated (default: the config's
    /// `[timestamping] max_delay`, else 24h).
    #[arg(long, value_parser = commands::parse_duration)]
    pub(crate) max_delay: Option<std::time::Duration>,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// STREAM or STREAM@SEQ.
    pub(crate) record: String,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub(crate) struct SampleArgs {
    /// Streams to sample (repeatable; default: every stream).
    #[arg(long = "stream")]
    pub(crate) streams: Vec<String>,
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) from: DateTime<Utc>,
    /// End of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) to: DateTime<Utc>,
    /// Records per stream (default: by control frequency, see
    /// docs/auditors.md).
    #[arg(long)]
    pub(crate) size: Option<usize>,
    /// The seed; the same seed over the same store draws the same sample.
    #[arg(long)]
    pub(crate) seed: String,
    /// The bundle to write (.tar.gz).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The format.
    #[arg(long, value_enum)]
    pub(crate) format: ExportFormat,
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) from: DateTime<Utc>,
    /// End of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = commands::parse_time)]
    pub(crate) to: DateTime<Utc>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The window: how far back (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = commands::parse_duration)]
    pub(crate) since: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub(crate) format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Post a summary to this Slack-compatible webhook.
    #[arg(long, env = "EXHIBIT_REPORT_WEBHOOK")]
    pub(crate) webhook: Option<String>,
    /// The whole review as JSON (for other tools).
    #[arg(long, conflicts_with = "format")]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Print the agent's key id and public key (PEM), to hand to auditors
    /// out of band; creates the key if it does not exist yet.
    Show,
    /// Start a new signing key. The old key signs a checkpoint naming its
    /// successor and stays published; it is kept beside the new one as
    /// `<key>.retired-<id>`. Stop the daemon first.
    Rotate,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// An OSCAL 1.1.2 assessment-results document (JSON).
    Oscal,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    Html,
    Md,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate the config, listing every problem (exit 2):
    /// each collector's kind and keys, and for the enabled ones their
    /// variables and secret files and the settings their kind checks.
    Check {
        /// Then reach each enabled collector's source with its
        /// credentials (one collection each, nothing recorded); exit 1 if
        /// any fails.
        #[arg(long)]
        connect: bool,
    },
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or bad config: exit 2.
    Usage(anyhow::Error),
    /// Anything else that went wrong: exit 1.
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Usage(e) | OpenError::Locked(e) => Failure::Usage(e),
            OpenError::Runtime(e) => Failure::Runtime(e),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // rustls needs exactly one process-wide crypto provider; with more than
    // one compiled in (ring for reqwest and octocrab, aws-lc-rs once the
    // AWS SDK joins) it refuses to pick and octocrab's client panics at
    // build time. Installing ring here settles it; a second install (tests
    // calling main twice) is harmless, hence the ignored result.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let (e, code) = match runtime.block_on(dispatch(cli)) {
        Ok(code) => return code,
        Err(Failure::Usage(e)) => (e, 2),
        Err(Failure::Runtime(e)) => (e, 1),
    };
    eprintln!("error: {e:#}");
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Run { admin_listen } => commands::run::exec(&cli, *admin_listen).await,
        Command::Collect { names } => commands::collect::exec(&cli, names).await,
        Command::Verify(args) => commands::verify::exec(&cli, args).await,
        Command::List { json } => commands::list::exec(&cli, *json).await,
        Command::Show(args) => commands::show::exec(&cli, args).await,
        Command::Diff(args) => commands::diff::exec(&cli, args).await,
        Command::Sample(args) => commands::sample::exec(&cli, args).await,
        Command::Export(args) => commands::export::exec(&cli, args).await,
        Command::Report(args) => commands::report::exec(&cli, args).await,
        Command::Config(command) => commands::config::exec(&cli, command).await,
        Command::Health { addr } => commands::health::exec(&cli, *addr),
        Command::Keys(command) => commands::keys::exec(&cli, command).await,
        Command::Assess(args) => commands::assess::exec(&cli, args).await,
        Command::Controls(args) => commands::controls::exec(&cli, args).await,
        Command::Exception(command) => commands::exception::exec(&cli, command).await,
        Command::Attest(args) => commands::attest::exec(&cli, args).await,
        Command::Population(args) => commands::population::exec(&cli, args).await,
        Command::Init(args) => commands::init::exec(&cli, args),
        Command::Kinds { json } => commands::kinds::exec(*json),
        Command::Completions { shell } => Ok(commands::completions::exec(*shell)),
        Command::Man => commands::completions::man(),
    }
}

/// Sets up logging to standard error: `-v`/`-vv` win over `EXHIBIT_LOG`,
/// which wins over the config's level, which wins over `default`.
pub(crate) fn init_logging(format: LogFormat, level: Option<&str>, verbose: u8, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => std::env::var("EXHIBIT_LOG")
            .ok()
            .or_else(|| level.map(str::to_string))
            .unwrap_or_else(|| default.to_string()),
        1 => "debug".into(),
        _ => "trace".into(),
    };
    // octocrab logs every failed request at ERROR, without saying which
    // collector asked: the collector's own error (and record) says it, with
    // context. Its events are shown with -v, or when asked for by name.
    let filter = if verbose > 0 || filter.contains("octocrab") {
        filter
    } else {
        format!("{filter},octocrab=off")
    };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: journald, container logs and
    // log shippers would store the escape codes as text. NO_COLOR is honoured.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Writes `text` to standard output. A reader that went away (`exhibit show
/// X | head`) is not an error: the command ends quietly, as `cat` would.
pub(crate) fn print_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(
            anyhow::Error::from(e).context("cannot write to standard output"),
        )),
    }
}
