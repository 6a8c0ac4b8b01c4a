//! The command line (DESIGN.md fixes its commands and exit codes):
//! 0 success; 1 evidence failed verification or a collection failed;
//! 2 bad usage or bad config.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError, LogFormat};
use crate::evidence::keys::{KeyRing, PublicKey, Signer};
use crate::evidence::record::{Status, Trigger};
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner};
use crate::store::{self, Store, StoreError};
use crate::writer::Writer;

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
    config: PathBuf,
    /// The evidence store (a directory or URL), overriding the config's.
    #[arg(long, global = true, env = "EXHIBIT_STORE")]
    store: Option<String>,
    /// Log format (default: the config's, else human).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Verify {
        /// Start of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// End of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        /// Your own copy of the agent's public key (repeatable); without
        /// it, the store's keys/ are trusted and the verdict says so.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Print the coverage detail (missed slots) per stream.
        #[arg(long)]
        coverage: bool,
        /// Verify a sample bundle (.tar.gz from `exhibit sample`) instead
        /// of a store.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Your own copy of a TSA's certificate or its CA's (PEM,
        /// repeatable), to check RFC 3161 tokens against; without it, the
        /// config's `[timestamping] tsa_certs`, else the store's tsa/
        /// (and the verdict says so).
        #[arg(long = "tsa-cert")]
        tsa_certs: Vec<PathBuf>,
        /// Fail checkpoints that have no RFC 3161 token (default: a
        /// warning).
        #[arg(long)]
        require_timestamps: bool,
        /// How long before its token's time a record may claim to have
        /// finished before it counts as back-dated (default: the config's
        /// `[timestamping] max_delay`, else 24h).
        #[arg(long, value_parser = parse_duration)]
        max_delay: Option<std::time::Duration>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the streams in the store.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a record and its payload: STREAM (the last record) or STREAM@SEQ.
    Show {
        /// STREAM or STREAM@SEQ.
        record: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
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
    Diff {
        /// The stream.
        stream: String,
        /// The older record's sequence number.
        a: Option<u64>,
        /// The newer record's sequence number (default: the last record
        /// holding a snapshot).
        b: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// An auditor's reproducible random sample of records over a period,
    /// exported as a bundle that verifies itself offline.
    Sample {
        /// Streams to sample (repeatable; default: every stream).
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Start of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        /// End of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Records per stream (default: by control frequency, see
        /// docs/auditors.md).
        #[arg(long)]
        size: Option<usize>,
        /// The seed; the same seed over the same store draws the same sample.
        #[arg(long)]
        seed: String,
        /// The bundle to write (.tar.gz).
        #[arg(long)]
        out: PathBuf,
    },
    /// Export the evidence of a period for other tools.
    Export {
        /// The format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Start of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        /// End of the period (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The nightly review for a security lead: changes, highlights,
    /// failures and coverage, as HTML or Markdown.
    Report {
        /// The window: how far back (e.g. 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        since: std::time::Duration,
        /// Output format.
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Post a summary to this Slack-compatible webhook.
        #[arg(long, env = "EXHIBIT_REPORT_WEBHOOK")]
        webhook: Option<String>,
        /// The whole review as JSON (for other tools).
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Probe a running agent's /healthz (for container health checks,
    /// where no curl exists): exit 0 when it answers 200.
    Health {
        /// The agent's admin address.
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: std::net::SocketAddr,
    },
    /// The agent's signing key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print the agent's key id and public key (PEM), to hand to auditors
    /// out of band; creates the key if it does not exist yet.
    Show,
    /// Start a new signing key. The old key signs a checkpoint naming its
    /// successor and stays published; it is kept beside the new one as
    /// `<key>.retired-<id>`. Stop the daemon first.
    Rotate,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// An OSCAL 1.1.2 assessment-results document (JSON).
    Oscal,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Md,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the config (every collector is built), then exit.
    Check,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!(
        "`{s}` is not an RFC 3339 time or a YYYY-MM-DD date"
    ))
}

/// An error with the exit code it maps to.
#[derive(Debug)]
enum Failure {
    Usage(anyhow::Error),
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>, verbose: u8, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => std::env::var("EXHIBIT_LOG")
            .ok()
            .or_else(|| level.map(str::to_string))
            .unwrap_or_else(|| default.to_string()),
        1 => "debug".into(),
        _ => "trace".into(),
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

/// Loads the config; for read-only commands a missing default config is
/// fine (the store then defaults to `evidence` in the current directory).
fn load_config(cli: &Cli, required: bool) -> Result<Option<Config>, Failure> {
    // Reading a store named on the command line needs nothing from the
    // config (nor the collectors' secrets in the environment).
    if !required && cli.store.is_some() {
        return Ok(None);
    }
    let explicit =
        cli.config != Path::new("exhibit.toml") || std::env::var_os("EXHIBIT_CONFIG").is_some();
    if !required && !explicit && !cli.config.exists() {
        return Ok(None);
    }
    Ok(Some(config::load(&cli.config)?))
}

/// Opens the store; `write` for the commands that collect (an S3 store is
/// then checked and written through the spool).
async fn open_store(
    cli: &Cli,
    config: Option<&Config>,
    write: bool,
) -> Result<Arc<dyn Store>, Failure> {
    let (location, base) = match (&cli.store, config) {
        (Some(s), _) => (s.clone(), PathBuf::from(".")),
        (None, Some(c)) => (c.store.clone(), c.base_dir()),
        (None, None) => ("evidence".to_string(), PathBuf::from(".")),
    };
    // `--store` replaces the location only; the S3 and spool settings still
    // come from the config when there is one.
    let mut opts = config
        .map(|c| c.store_settings.open_options(write))
        .unwrap_or_else(|| store::config_free_options(write));
    if let (Some(c), Some(spool)) = (config, opts.spool.as_mut())
        && spool.is_relative()
    {
        // Absolute, so that it means the same whatever `base` the store
        // location resolves against.
        let joined = c.base_dir().join(&*spool);
        *spool = std::path::absolute(&joined).unwrap_or(joined);
    }
    store::open(&location, &base, &opts)
        .await
        .map_err(|e| match e {
            StoreError::Config(_) => Failure::Usage(e.into()),
            e => Failure::Runtime(
                anyhow::Error::from(e).context(format!("cannot open the store {location}")),
            ),
        })
}

/// Waits (a bounded time) for a spool to ship what this command wrote, and
/// says what is left.
async fn drain(store: &dyn Store, config: &Config) {
    let left = store.flush(config.store_settings.flush_timeout).await;
    if left > 0
        && let Some(b) = store.backlog()
    {
        eprintln!(
            "warning: {left} object(s) not yet shipped to {}; they are kept in the spool {} and shipped by the next run",
            store.describe(),
            b.spool.display()
        );
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Run { admin_listen } => {
            let config = load_config(&cli, true)?.expect("required");
            init_logging(
                cli.log_format.unwrap_or(config.log.format),
                config.log.level.as_deref(),
                cli.verbose,
                "info",
            );
            let store = open_store(&cli, Some(&config), true).await?;
            let metrics = Arc::new(Metrics::new());
            let writer = open_writer(&config, store.clone(), &metrics).await?;
            // The spool's backlog, published every few seconds: often enough
            // for an alert, cheap enough to ignore.
            let gauges = {
                let (store, metrics) = (store.clone(), metrics.clone());
                tokio::spawn(async move {
                    loop {
                        if let Some(b) = store.backlog() {
                            metrics.spool(&b);
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                })
            };
            let ready = Arc::new(AtomicBool::new(false));
            let stop = CancellationToken::new();
            let admin_stop = CancellationToken::new();
            let addr = admin_listen.unwrap_or(config.admin.listen);
            let (bound, admin) = crate::admin::serve(
                addr,
                crate::admin::AdminState {
                    metrics: metrics.clone(),
                    ready: ready.clone(),
                },
                admin_stop.clone(),
            )
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(address = %bound, "admin endpoint listening");
            let runner = Runner {
                writer,
                metrics,
                http: http_client()?,
                hard_stop: CancellationToken::new(),
                shard: config.shard,
            };
            if config.shard.count > 1 {
                tracing::info!(index = config.shard.index, count = config.shard.count, agent = %config.agent.id, "sharded: this replica collects its share of the streams");
            }
            let flush = config.store_settings.flush_timeout;
            crate::daemon::run(config, runner, ready, stop).await?;
            let left = store.flush(flush).await;
            if left > 0 {
                tracing::warn!(
                    left,
                    "stopping with evidence still in the spool; it is shipped at the next start"
                );
            }
            gauges.abort();
            admin_stop.cancel();
            let _ = admin.await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Collect { names } => {
            let config = load_config(&cli, true)?.expect("required");
            init_logging(
                cli.log_format.unwrap_or(config.log.format),
                config.log.level.as_deref(),
                cli.verbose,
                "warn",
            );
            collect(&cli, config, names).await
        }
        Command::Verify {
            from,
            to,
            keys,
            coverage,
            bundle,
            tsa_certs,
            require_timestamps,
            max_delay,
            json,
        } => {
            let store = read_store(&cli).await?;
            let timestamps = timestamp_options(&cli, tsa_certs, *require_timestamps, *max_delay)?;
            let keys = if keys.is_empty() {
                None
            } else {
                let mut ring = KeyRing::default();
                for k in keys {
                    ring.insert(PublicKey::load(k).map_err(|e| Failure::Usage(e.into()))?);
                }
                Some(ring)
            };
            let opts = crate::verify::Options {
                from: *from,
                to: *to,
                keys,
                bundle: None,
                timestamps,
            };
            let report = match bundle {
                Some(b) => crate::verify::bundle::verify_bundle(b, opts)
                    .await
                    .map_err(|e| match e {
                        crate::verify::bundle::BundleError::NotABundle(e) => Failure::Usage(e),
                        crate::verify::bundle::BundleError::Failed(e) => Failure::Runtime(e),
                    })?,
                None => crate::verify::verify(store, &opts)
                    .await
                    .map_err(anyhow::Error::from)?,
            };
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("reports serialise")
                );
            } else {
                print!("{}", report.render(*coverage));
            }
            Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::List { json } => {
            let store = read_store(&cli).await?;
            let lines = crate::browse::list(store.as_ref()).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&lines).expect("serialises")
                );
            } else {
                print!("{}", crate::browse::render_list(&lines));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { record, json } => {
            let store = read_store(&cli).await?;
            let shown = crate::browse::show(store.as_ref(), record).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&shown).expect("serialises")
                );
            } else {
                print!("{}", crate::browse::render_show(&shown));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { addr } => Ok(probe_health(*addr)),
        Command::Export {
            format: ExportFormat::Oscal,
            from,
            to,
            out,
        } => {
            let store = read_store(&cli).await?;
            let doc = crate::oscal::assessment_results(store, *from, *to).await?;
            let text = serde_json::to_string_pretty(&doc).expect("serialises");
            match out {
                Some(p) => std::fs::write(p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample {
            streams,
            from,
            to,
            size,
            seed,
            out,
        } => {
            let store = read_store(&cli).await?;
            let req = crate::sample::Request {
                streams: streams.clone(),
                from: *from,
                to: *to,
                size: *size,
                seed: seed.clone(),
            };
            let m = crate::sample::bundle(store, &req, out).await?;
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
                "bundle {} (seed `{}`): verify with `sh verify.sh` inside it, or `exhibit verify --bundle`",
                out.display(),
                m.seed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            since,
            format,
            out,
            webhook,
            json,
        } => {
            let store = read_store(&cli).await?;
            let from =
                Utc::now() - chrono::Duration::from_std(*since).map_err(anyhow::Error::from)?;
            let report = crate::report::build(store, from).await?;
            let body = if *json {
                serde_json::to_string_pretty(&report).expect("serialises")
            } else {
                match format {
                    ReportFormat::Html => crate::report::html(&report),
                    ReportFormat::Md => crate::report::markdown(&report),
                }
            };
            match out {
                Some(path) => std::fs::write(path, &body)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{body}"),
            }
            if let Some(url) = webhook {
                let text = crate::report::summary(&report, out.as_deref());
                let resp = http_client()?
                    .post(url)
                    .json(&serde_json::json!({ "text": text }))
                    .send()
                    .await
                    .with_context(|| "cannot reach the report webhook".to_string())?;
                if !resp.status().is_success() {
                    return Err(Failure::Runtime(anyhow::anyhow!(
                        "the report webhook answered {}",
                        resp.status()
                    )));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { stream, a, b, json } => {
            let store = read_store(&cli).await?;
            let pair = crate::browse::pick_pair(store.as_ref(), stream, *a, *b).await?;
            let (older, newer) = (&pair.older, &pair.newer);
            let changes = crate::diff::diff_windows(
                older.payload.as_ref().unwrap_or(&serde_json::Value::Null),
                &pair.after,
                pair.windowed,
            );
            let side = |s: &crate::browse::Shown| {
                let p = &s.statement.predicate;
                serde_json::json!({"seq": p.seq, "status": p.status.as_str(), "finished_at": p.finished_at})
            };
            if *json {
                let doc = serde_json::json!({
                    "stream": stream,
                    "from": side(older),
                    "to": side(newer),
                    "skipped": pair.skipped.iter().map(|(seq, st)| serde_json::json!({"seq": seq, "status": st.as_str()})).collect::<Vec<_>>(),
                    "windowed": pair.windowed,
                    "changes": changes,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("serialises")
                );
            } else {
                let colour =
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
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
                println!(
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
                    println!(
                        "skipped {}: no snapshot to compare (the payload is an error document)",
                        list.join(", ")
                    );
                }
                for s in [older, newer] {
                    let p = &s.statement.predicate;
                    match p.status {
                        crate::evidence::record::Status::Partial => println!(
                            "#{} is partial: what it could not read may show as removed or added",
                            p.seq
                        ),
                        crate::evidence::record::Status::Failed
                        | crate::evidence::record::Status::Missed => println!(
                            "#{} is {}: its payload is an error document, not a snapshot",
                            p.seq,
                            p.status.as_str()
                        ),
                        crate::evidence::record::Status::Ok => {}
                    }
                }
                print!("{}", crate::diff::render(&changes, colour));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Show,
        } => {
            let config = load_config(&cli, true)?.expect("required");
            let (signer, created) =
                Signer::load_or_create(&config.agent.key).map_err(|e| Failure::Usage(e.into()))?;
            if created {
                eprintln!(
                    "created a new signing key at {}",
                    config.agent.key.display()
                );
            }
            println!("key id: {}", signer.key_id());
            print!("{}", signer.public().to_pem());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let config = load_config(&cli, true)?.expect("required");
            init_logging(
                cli.log_format.unwrap_or(config.log.format),
                None,
                cli.verbose,
                "warn",
            );
            let path = config.agent.key.clone();
            if !path.exists() {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "{} does not exist: there is no key to rotate yet",
                    path.display()
                )));
            }
            let store = open_store(&cli, Some(&config), true).await?;
            let writer = open_writer(&config, store, &Arc::new(Metrics::new())).await?;
            let old_id = {
                let (old, _) =
                    Signer::load_or_create(&path).map_err(|e| Failure::Usage(e.into()))?;
                old.key_id().to_string()
            };
            let new = Signer::generate();
            let staged = PathBuf::from(format!("{}.new", path.display()));
            new.save(&staged).map_err(anyhow::Error::from)?;
            let checkpoint = writer.rotate_key(&new).await.map_err(anyhow::Error::from)?;
            let retired = PathBuf::from(format!("{}.retired-{old_id}", path.display()));
            std::fs::rename(&path, &retired)
                .and_then(|()| std::fs::rename(&staged, &path))
                .with_context(|| format!("moving the new key into place at {}", path.display()))?;
            println!("retired key {old_id} (kept at {})", retired.display());
            println!("new key {} at {}", new.key_id(), path.display());
            println!("rotation checkpoint {checkpoint}");
            println!("Give auditors the new public key: exhibit keys show");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let config = load_config(&cli, true)?.expect("required");
            println!(
                "{}: OK — {} collector(s), store {}",
                config.path.display(),
                config.collectors.len(),
                cli.store.as_deref().unwrap_or(&config.store)
            );
            if let Some(t) = &config.timestamping {
                println!(
                    "  timestamping: {} TSA(s) [{}], trusting {}",
                    t.urls.len(),
                    t.urls
                        .iter()
                        .filter_map(|u| u.host_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    t.trust.subjects().join("; ")
                );
            }
            for c in &config.collectors {
                println!(
                    "  {:<24} {:<10} {:<16} {}{}",
                    c.name,
                    c.kind,
                    c.schedule.expression(),
                    c.criteria.join(","),
                    if c.enabled { "" } else { "  (disabled)" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How `verify` judges RFC 3161 tokens: trust from `--tsa-cert`, else the
/// config's `[timestamping]`, else (left to verify) the store's own `tsa/`.
fn timestamp_options(
    cli: &Cli,
    tsa_certs: &[PathBuf],
    require: bool,
    max_delay: Option<std::time::Duration>,
) -> Result<crate::verify::TimestampOptions, Failure> {
    let configured = load_config(cli, false)?.and_then(|c| c.timestamping);
    let mut opts = crate::verify::TimestampOptions {
        require,
        ..Default::default()
    };
    if let Some(t) = &configured {
        opts.tolerance = t.tolerance;
        opts.max_delay = t.max_delay;
    }
    if let Some(d) = max_delay {
        opts.max_delay = d;
    }
    if !tsa_certs.is_empty() {
        let mut trust = crate::evidence::timestamp::TrustAnchors::default();
        for path in tsa_certs {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::Usage(anyhow::anyhow!("cannot read {}: {e}", path.display()))
            })?;
            let certs = crate::evidence::timestamp::TrustAnchors::from_pem(&bytes)
                .map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", path.display())))?;
            trust.extend(certs);
        }
        opts.trust = Some((trust, "given with --tsa-cert".into()));
    } else if let Some(t) = configured {
        opts.trust = Some((t.trust, "the config's [timestamping] tsa_certs".into()));
    }
    Ok(opts)
}

/// The store for the read-only commands (verify, list, show, diff, sample,
/// report, export): from `--store`, or the config when there is one.
async fn read_store(cli: &Cli) -> Result<Arc<dyn Store>, Failure> {
    let config = load_config(cli, false)?;
    init_logging(
        cli.log_format.unwrap_or_default(),
        None,
        cli.verbose,
        "warn",
    );
    open_store(cli, config.as_ref(), false).await
}

fn probe_health(addr: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let probe = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = String::new();
        s.take(64 * 1024).read_to_string(&mut head)?;
        Ok(head)
    };
    match probe() {
        Ok(resp) if resp.starts_with("HTTP/1.1 200") => {
            println!("healthy");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("unhealthy: {}", resp.lines().next().unwrap_or(""));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::from(1)
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("exhibit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")
}

async fn open_writer(
    config: &Config,
    store: Arc<dyn Store>,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Writer>, Failure> {
    let (signer, created) =
        Signer::load_or_create(&config.agent.key).map_err(|e| Failure::Usage(e.into()))?;
    if created {
        tracing::info!(key = %config.agent.key.display(), key_id = signer.key_id(), "created a new signing key");
    }
    let writer = Writer::open(store, Arc::new(signer), &config.agent.id)
        .await
        .with_context(|| {
            format!(
                "cannot open the store for writing as agent `{}`",
                config.agent.id
            )
        })?;
    let writer = match &config.timestamping {
        Some(t) => {
            let stamper = Arc::new(crate::tsa::Timestamper::new(
                t.clone(),
                http_client()?,
                metrics.clone(),
                &config.agent.id,
            ));
            backfill_timestamps(&stamper, writer.store().as_ref(), writer.now()).await;
            writer.with_timestamper(stamper)
        }
        None => writer,
    };
    Ok(Arc::new(writer))
}

/// Publishes the trusted TSA certificates and fetches the tokens earlier
/// runs could not get. Failures are logged: timestamps never stop a run.
async fn backfill_timestamps(
    stamper: &crate::tsa::Timestamper,
    store: &dyn Store,
    now: DateTime<Utc>,
) {
    if let Err(e) = stamper.publish_trust(store).await {
        tracing::warn!(error = %e, "cannot publish the trusted TSA certificates into the store");
    }
    if let Err(e) = stamper.scan(store, now).await {
        tracing::warn!(error = %e, "cannot look for checkpoints lacking a timestamp");
        return;
    }
    if stamper.pending() > 0 {
        let before = stamper.pending();
        let left = stamper.retry_pending(store, now).await;
        tracing::info!(
            fetched = before - left.min(before),
            left,
            "RFC 3161 tokens fetched for earlier checkpoints"
        );
    }
}

async fn collect(cli: &Cli, config: Config, names: &[String]) -> Result<ExitCode, Failure> {
    for n in names {
        if !config.collectors.iter().any(|c| &c.name == n) {
            let known: Vec<_> = config.collectors.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::Usage(anyhow::anyhow!(
                "no collector named `{n}` in {}; known: {}",
                config.path.display(),
                known.join(", ")
            )));
        }
    }
    let store = open_store(cli, Some(&config), true).await?;
    let metrics = Arc::new(Metrics::new());
    let writer = open_writer(&config, store.clone(), &metrics).await?;
    let runner = Runner {
        writer: writer.clone(),
        metrics,
        http: http_client()?,
        hard_stop: CancellationToken::new(),
        shard: config.shard,
    };
    // Ctrl-C cancels the collection; the records say so, and the checkpoint
    // is still written.
    let hard_stop = runner.hard_stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            hard_stop.cancel();
        }
    });
    let selected: Vec<_> = config
        .collectors
        .iter()
        .filter(|c| {
            if names.is_empty() {
                c.enabled
            } else {
                names.contains(&c.name)
            }
        })
        .collect();
    if selected.is_empty() {
        eprintln!("No enabled collectors in {}.", config.path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let run = writer.begin_run(Trigger::Manual);
    let outcomes: Vec<(String, Vec<Outcome>)> = futures::stream::iter(selected)
        .map(|inst| {
            let bar = tty.then(|| {
                let b = bars.add(indicatif::ProgressBar::new_spinner());
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                b.set_message(format!("{} ({})", inst.name, inst.kind));
                b.enable_steady_tick(std::time::Duration::from_millis(100));
                b
            });
            let runner = &runner;
            let run = &run;
            async move {
                let o = runner.run_instance(inst, run, None).await;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                (inst.name.clone(), o)
            }
        })
        .buffer_unordered(config.agent.concurrency)
        .collect()
        .await;
    let checkpoint = writer.checkpoint(run).await.map_err(anyhow::Error::from)?;
    drain(store.as_ref(), &config).await;
    let mut failed = 0;
    for (_, outs) in &outcomes {
        for o in outs {
            let where_ = o
                .written
                .as_ref()
                .map(|w| format!("#{}", w.seq))
                .unwrap_or_else(|| "(not written)".into());
            match o.status {
                Status::Ok => println!("ok       {} {}", o.stream, where_),
                s => {
                    failed += 1;
                    println!(
                        "{:<8} {} {}: {}",
                        s.as_str(),
                        o.stream,
                        where_,
                        o.error.as_deref().unwrap_or("")
                    );
                }
            }
            if o.written.is_none() {
                failed += 1;
            }
        }
    }
    println!("checkpoint {checkpoint} in {}", store.describe());
    if let Some(t) = writer.timestamper() {
        let token = crate::evidence::layout::token(&checkpoint);
        if store.exists(&token).await.unwrap_or(false) {
            println!("timestamp  {token}");
        } else {
            eprintln!(
                "warning: checkpoint {checkpoint} is not timestamped: no TSA gave a token; it is fetched at the next run ({} checkpoint(s) waiting)",
                t.pending()
            );
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
