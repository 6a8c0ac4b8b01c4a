//! `exhibit collect`: runs collectors once, now, and says how each stream
//! went.

use std::io::IsTerminal;
use std::process::ExitCode;

use futures::StreamExt;

use crate::agent::Agent;
use crate::cli::{Cli, Failure, init_logging};
use crate::evidence::record::{Status, Trigger};
use crate::runner::Outcome;

/// Runs the collectors `names` (default: every enabled one) in one run and
/// checkpoints it; exits 1 if any collection failed.
pub(crate) async fn exec(cli: &Cli, names: &[String]) -> Result<ExitCode, Failure> {
    let config = super::require_config(cli)?;
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
    let agent = Agent::open(config, cli.store.as_deref()).await?;
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
    let run = agent.begin_run(Trigger::Manual);
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
            let agent = &agent;
            let run = &run;
            async move {
                let o = agent.collect(inst, run, None).await;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                (inst.name.clone(), o)
            }
        })
        .buffer_unordered(agent.config().agent.concurrency)
        .collect()
        .await;
    let checkpoint = agent.checkpoint(run).await.map_err(anyhow::Error::from)?;
    drain(&agent).await;
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
    let store = agent.store();
    println!("checkpoint {checkpoint} in {}", store.describe());
    // The head, to note: `verify --known-head` later proves that nothing up
    // to it was removed. It is the checkpoint just written, read back.
    match store.get(&checkpoint).await {
        Ok(Some(bytes)) => println!("head: {}", crate::evidence::sha256_hex(&bytes)),
        Ok(None) => eprintln!("warning: checkpoint {checkpoint} cannot be read back for its head"),
        Err(e) => eprintln!("warning: cannot read back checkpoint {checkpoint} for its head: {e}"),
    }
    if let Some(t) = agent.timestamper() {
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
