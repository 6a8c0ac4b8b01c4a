//! `exhibit collect`: runs collectors once, now, and says how each stream
//! went. When the running agent (`exhibit run`) holds the store's lock, it
//! is asked through its control socket to collect, and its result is shown
//! the same way.

use crate::commands::outln;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use crate::agent::{Agent, CollectReport, OpenError, Timestamp};
use crate::cli::{Cli, Failure, init_logging};
use crate::daemon::control::{self, ControlError};
use crate::evidence::record::Status;

/// A progress spinner, cleared when its collection ends.
struct Spinner(Option<indicatif::ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Runs the collectors `names` (default: every enabled one) in one run and
/// checkpoints it; exits 1 if any collection failed.
pub(crate) async fn exec(cli: &Cli, names: &[String]) -> Result<ExitCode, Failure> {
    let mut config = super::require_config(cli)?;
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "warn",
    );
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
    // A running agent of this config holds the store's lock: it is asked
    // first, before this process opens the store (and, for S3, its spool)
    // beside it. A socket nobody answers on is a dead agent's.
    let socket = control::socket_path(&config);
    if cli.store.is_none() && socket.exists() {
        match control::request_collect(&socket, names).await {
            Ok(report) => return Ok(collected_by_agent(&socket, &report)),
            Err(ControlError::Unreachable { .. }) => {}
            Err(e) => return Err(Failure::Runtime(e.into())),
        }
    }
    // Named collectors run whether enabled or not, and only they are
    // built: another collector's variables and files are not read.
    if !names.is_empty() {
        for c in &mut config.collectors {
            c.enabled = names.contains(&c.name);
        }
    }
    let agent = match Agent::open(config, cli.store.as_deref()).await {
        Ok(a) => a,
        Err(OpenError::Locked(e)) => return by_running_agent(&socket, names, e).await,
        Err(e) => return Err(e.into()),
    };
    // Ctrl-C cancels the collection; the records say so, and the checkpoint
    // is still written.
    let hard_stop = agent.hard_stop().clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            hard_stop.cancel();
        }
    });
    let selected: Vec<_> = agent
        .instances()
        .iter()
        .filter(|c| {
            if names.is_empty() {
                c.enabled
            } else {
                names.contains(&c.name)
            }
        })
        .cloned()
        .collect();
    if selected.is_empty() {
        eprintln!(
            "No enabled collectors in {}.",
            agent.config().path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let report = agent
        .collect_now(&selected, |inst| {
            Spinner(tty.then(|| {
                let b = bars.add(indicatif::ProgressBar::new_spinner());
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                b.set_message(format!("{} ({})", inst.name, inst.kind));
                b.enable_steady_tick(std::time::Duration::from_millis(100));
                b
            }))
        })
        .await
        .map_err(anyhow::Error::from)?;
    drain(&agent).await;
    Ok(print(&report))
}

/// The store is locked: by a running daemon, it collects for us through
/// its control socket; by anything else (another `collect`), it is a usage
/// error, exit 2.
async fn by_running_agent(
    socket: &Path,
    names: &[String],
    locked: anyhow::Error,
) -> Result<ExitCode, Failure> {
    match control::request_collect(socket, names).await {
        Ok(report) => Ok(collected_by_agent(socket, &report)),
        Err(e @ ControlError::Unreachable { .. }) => Err(Failure::Usage(locked.context(format!(
            "{e}; wait for the other `exhibit` process to finish, or collect through the running agent"
        )))),
        Err(e) => Err(Failure::Runtime(e.into())),
    }
}

fn collected_by_agent(socket: &Path, report: &CollectReport) -> ExitCode {
    eprintln!(
        "The running agent holds the store; it collected (asked through {}).",
        socket.display()
    );
    print(report)
}

/// Prints how each stream went, the checkpoint and its timestamp; the exit
/// code is 1 if any collection failed or was not written.
fn print(report: &CollectReport) -> ExitCode {
    let mut failed = 0;
    for o in &report.outcomes {
        let where_ = o
            .seq
            .map(|s| format!("#{s}"))
            .unwrap_or_else(|| "(not written)".into());
        match o.status {
            Status::Ok if o.seq.is_some() => outln!("ok       {} {}", o.stream, where_),
            s => {
                failed += 1;
                outln!(
                    "{:<8} {} {}: {}",
                    s.as_str(),
                    o.stream,
                    where_,
                    o.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    // Planted or unreadable checkpoints the chain was not extended from.
    for r in &report.refused {
        failed += 1;
        outln!("refused  {r}");
    }
    outln!("checkpoint {} in {}", report.checkpoint, report.store);
    // The head, to note: `verify --known-head` later proves that nothing up
    // to it was removed.
    if let Some(h) = &report.head {
        outln!("head: {h}");
    }
    match &report.timestamp {
        Timestamp::Off => {}
        Timestamp::Token(token) => outln!("timestamp  {token}"),
        Timestamp::Missing { waiting } => eprintln!(
            "warning: checkpoint {} is not timestamped: no TSA gave a token; it is fetched at the next run ({waiting} checkpoint(s) waiting)",
            report.checkpoint
        ),
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Waits (a bounded time) for a spool to ship what this command wrote, and
/// says what is left.
async fn drain(agent: &Agent) {
    let left = agent.flush().await;
    let store = agent.store();
    if left > 0
        && let Some(spool) = store.spool()
    {
        let b = spool.backlog();
        eprintln!(
            "warning: {left} object(s) not yet shipped to {}; they are kept in the spool {} and shipped by the next run",
            store.describe(),
            b.spool.display()
        );
    }
}
