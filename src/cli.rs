//! The command line (DESIGN.md fixes its commands and exit codes): the
//! command tree (each command's own arguments live beside its `exec` in
//! [`crate::commands`]), the entry point, logging, and the mapping of errors to
//! exit codes: 0 success; 1 evidence failed verification or a collection
//! failed; 2 bad usage or bad config, and a store locked by another agent
//! (two writers of one chain is a mistake of the operator's, not a failed
//! collection). Each command's work is in [`crate::commands`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::agent::OpenError;
use crate::commands;
use crate::commands::config::ConfigCommand;
use crate::commands::diff::DiffArgs;
use crate::commands::export::ExportArgs;
use crate::commands::init::InitArgs;
use crate::commands::keys::KeysCommand;
use crate::commands::report::ReportArgs;
use crate::commands::sample::SampleArgs;
use crate::commands::show::ShowArgs;
use crate::commands::verify::VerifyArgs;
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
        /// Controls evaluated as their inputs land: the built-in library
        /// and those of `--controls-dir`.
        #[command(flatten)]
        library: commands::controls::LibraryArgs,
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
    // rustls picks a process-wide crypto provider only when exactly one is
    // compiled in; installing ring (the one every client here uses) keeps
    // that true should a dependency ever bring another. A second install
    // (tests calling main twice) is harmless, hence the ignored result.
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
        Command::Run {
            admin_listen,
            library,
        } => commands::run::exec(&cli, *admin_listen, library).await,
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
