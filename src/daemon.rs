//! `exhibit run`: the daemon, and its scheduler.
//!
//! Each enabled collector instance gets a task that sleeps until its next
//! cron slot, waits for a global concurrency permit, runs, and checkpoints.
//! One task per instance means one instance never overlaps itself; slots
//! that pass while it is still running are recorded as missed, as are slots
//! that passed while the agent was down (found at start-up). Slots are
//! read on the agent's clock and waited for on tokio's timer, so a test
//! with tokio's clock paused runs days of them in an instant.
//!
//! Shutdown has two stages, as two tokens: `stop` (SIGTERM/SIGINT) ends
//! scheduling while in-flight runs continue; `hard_stop` (the grace period
//! ran out, or a second signal) cancels them, and they still write their
//! failed records and checkpoints before the process exits.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::collect::instance::CollectorInstance;
use crate::evidence::record::Trigger;

/// Most missed slots listed one by one in a missed record; the count is
/// always exact.
const MISSED_LISTED: usize = 1000;

/// The whole daemon: serves the admin endpoint on `admin` and publishes the
/// spool's backlog, schedules until SIGTERM or SIGINT, then waits (a
/// bounded time) for the spool to ship what was written.
pub async fn serve(agent: Agent, admin: SocketAddr) -> anyhow::Result<()> {
    // The spool's backlog, published every few seconds: often enough for an
    // alert, cheap enough to ignore.
    let gauges = {
        let (store, metrics) = (agent.store().clone(), agent.metrics().clone());
        tokio::spawn(async move {
            loop {
                if let Some(spool) = store.spool() {
                    metrics.spool(&spool.backlog());
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let ready = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let (bound, admin_task) = crate::admin::serve(
        admin,
        crate::admin::AdminState {
            metrics: agent.metrics().clone(),
            ready: ready.clone(),
        },
        admin_stop.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {admin}"))?;
    tracing::info!(address = %bound, "admin endpoint listening");
    let config = agent.config();
    if config.shard.count > 1 {
        tracing::info!(index = config.shard.index, count = config.shard.count, agent = %config.agent.id, "sharded: this replica collects its share of the streams");
    }
    tokio::spawn(watch_signals(stop.clone(), agent.hard_stop().clone()));
    run(agent.clone(), ready, stop).await?;
    let left = agent.flush().await;
    if left > 0 {
        tracing::warn!(
            left,
            "stopping with evidence still in the spool; it is shipped at the next start"
        );
    }
    gauges.abort();
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

/// Schedules every enabled instance of `agent` until `stop` is cancelled;
/// returns once every in-flight run has written its records and checkpoint.
/// `ready` is set while the scheduler runs. In-flight runs get the config's
/// grace period after `stop`; then the agent's hard stop cancels them.
pub async fn run(
    agent: Agent,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    tokio::spawn(escalate(
        stop.clone(),
        agent.hard_stop().clone(),
        agent.config().agent.shutdown_grace,
    ));

    let instances: Vec<Arc<CollectorInstance>> = agent
        .instances()
        .iter()
        .filter(|c| c.enabled)
        .cloned()
        .collect();
    if instances.is_empty() {
        tracing::warn!("no enabled collectors: nothing will be scheduled");
    }

    measure_schedules(&instances, &agent, stop.clone());
    let behind = record_downtime(&agent, &instances).await?;
    let permits = Arc::new(Semaphore::new(agent.config().agent.concurrency));
    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        collectors = instances.len(),
        store = %agent.store().describe(),
        "scheduler started"
    );

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(t) = agent.timestamper().cloned() {
        tasks.spawn(timestamp_loop(t, agent.clone(), stop.clone()));
    }
    if let Some((schedule, report)) = agent.config().report.clone() {
        tasks.spawn(report_loop(schedule, report, agent.clone(), stop.clone()));
    }
    let catch_up = agent.config().agent.catch_up;
    for inst in instances {
        let catch_up = catch_up && behind.contains(&inst.name);
        tasks.spawn(instance_loop(
            inst,
            agent.clone(),
            permits.clone(),
            stop.clone(),
            catch_up,
        ));
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a scheduler task failed");
        }
    }
    ready.store(false, Ordering::SeqCst);
    tracing::info!("all runs finished; exiting");
    Ok(())
}

/// The first SIGTERM or SIGINT stops scheduling; a second one cancels the
/// runs in flight without waiting for the grace period.
async fn watch_signals(stop: CancellationToken, hard_stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = stop.cancelled() => {}
    }
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hard_stop.cancelled() => return,
    }
    tracing::warn!("second signal: cancelling in-flight runs");
    hard_stop.cancel();
}

/// Once scheduling stops, gives the runs in flight `grace` to finish, then
/// cancels them.
async fn escalate(stop: CancellationToken, hard_stop: CancellationToken, grace: Duration) {
    stop.cancelled().await;
    tracing::info!(grace = ?grace, "shutting down: no new runs; in-flight runs may finish within the grace period");
    tokio::select! {
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over: cancelling in-flight runs"),
        _ = hard_stop.cancelled() => return,
    }
    hard_stop.cancel();
}

/// Publishes what each schedule allows between two successes, for the
/// staleness alert. A dense schedule takes a scan of many slots to measure,
/// so this runs beside the scheduler instead of delaying it, once per
/// distinct expression, and gives up on shutdown.
fn measure_schedules(instances: &[Arc<CollectorInstance>], agent: &Agent, stop: CancellationToken) {
    let schedules: Vec<(String, crate::schedule::Schedule)> = instances
        .iter()
        .map(|i| (i.name.clone(), i.schedule.clone()))
        .collect();
    let metrics = agent.metrics().clone();
    let now = agent.now();
    tokio::task::spawn_blocking(move || {
        let mut gaps: HashMap<String, Option<Duration>> = HashMap::new();
        for (name, schedule) in schedules {
            if stop.is_cancelled() {
                return;
            }
            let gap = *gaps
                .entry(schedule.expression().to_string())
                .or_insert_with(|| schedule.longest_gap_after(now));
            if let Some(gap) = gap {
                metrics.expected_interval(&name, gap.as_secs());
            }
        }
    });
}

/// Finds, for every stream of every instance, the slots that passed since
/// its last record, and records them as missed in one start-up run.
/// Returns the names of instances that are behind.
async fn record_downtime(
    agent: &Agent,
    instances: &[Arc<CollectorInstance>],
) -> anyhow::Result<BTreeSet<String>> {
    let now = agent.now();
    let run = agent.begin_run(Trigger::Gap);
    let mut behind = BTreeSet::new();
    for inst in instances {
        for stream in agent.streams(inst).await? {
            // A stream whose head fails the writer's checks is reported
            // and left alone; the agent still starts for every other one.
            let last = match agent.last_slot(&stream).await {
                Err(crate::writer::WriteError::Refused(r)) => {
                    tracing::error!(stream = %stream, object = %r.key, reason = %r.reason, "refusing to extend a stream");
                    continue;
                }
                r => r?,
            };
            let Some(last) = last else {
                continue;
            };
            let (slots, total) = inst.schedule.slots_between(last, now, MISSED_LISTED);
            if total > 0 {
                agent
                    .record_missed(
                        inst,
                        &run,
                        &stream,
                        &slots,
                        total,
                        "the agent was not running",
                    )
                    .await?;
                behind.insert(inst.name.clone());
            }
        }
    }
    if !run.written().is_empty() {
        agent.checkpoint(run).await?;
    }
    Ok(behind)
}

/// Makes the nightly review on its schedule: writes the page and posts the
/// summary. A failure is logged and retried at the next slot; it never
/// touches collection.
async fn report_loop(
    schedule: crate::schedule::Schedule,
    cfg: crate::config::ReportConfig,
    agent: Agent,
    stop: CancellationToken,
) {
    let clock = agent.clock();
    let mut after = clock.now();
    while let Some(slot) = schedule.next_after(after) {
        tokio::select! {
            _ = clock.sleep_until(slot) => {}
            _ = stop.cancelled() => return,
        }
        after = slot;
        let since = clock.now() - chrono::Duration::from_std(cfg.since).unwrap_or_default();
        let result = async {
            let report = crate::report::build(agent.store().clone(), since).await?;
            // A directory gets a new dated page each night.
            let written = match &cfg.out {
                Some(out) => Some(crate::report::write_out(
                    out,
                    report.generated_at,
                    "html",
                    &crate::report::html(&report),
                )?),
                None => None,
            };
            if let Some(url) = &cfg.webhook {
                crate::report::post_summary(agent.http(), url, &report, written.as_deref()).await?;
            }
            Ok::<_, anyhow::Error>(report.all_highlights().count())
        }
        .await;
        match result {
            Ok(n) => tracing::info!(highlights = n, "nightly review made"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot make the nightly review"),
        }
    }
}

/// Retries the checkpoints still lacking an RFC 3161 token, every
/// `retry_interval`, so that a TSA outage closes without waiting for the
/// next scheduled run.
async fn timestamp_loop(
    stamper: Arc<crate::tsa::Timestamper>,
    agent: Agent,
    stop: CancellationToken,
) {
    let every = stamper.config().retry_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if stamper.pending() > 0 {
            let left = stamper
                .retry_pending(agent.store().as_ref(), agent.now())
                .await;
            tracing::debug!(left, "retried checkpoints lacking a timestamp");
        }
    }
}

async fn instance_loop(
    inst: Arc<CollectorInstance>,
    agent: Agent,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
    catch_up: bool,
) {
    if catch_up
        && !stop.is_cancelled()
        && let Ok(_permit) = permits.acquire().await
    {
        let run = agent.begin_run(Trigger::CatchUp);
        agent.collect(&inst, &run, None).await;
        if let Err(e) = agent.checkpoint(run).await {
            tracing::error!(collector = %inst.name, error = %e, "cannot write checkpoint");
        }
    }
    let clock = agent.clock();
    let mut after = clock.now();
    loop {
        let Some(slot) = inst.schedule.next_after(after) else {
            tracing::warn!(collector = %inst.name, "schedule has no future slot");
            return;
        };
        tokio::select! {
            _ = clock.sleep_until(slot) => {}
            _ = stop.cancelled() => return,
        }
        let _permit = tokio::select! {
            p = permits.acquire() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => return,
        };
        let run = agent.begin_run(Trigger::Scheduled);
        let outcomes = agent.collect(&inst, &run, Some(slot)).await;
        // Slots that came and went while this run (or its wait for a
        // permit) took too long: they did not run, and the record says so.
        let now = clock.now();
        let (skipped, total) = inst.schedule.slots_between(slot, now, MISSED_LISTED);
        if total > 0 {
            for o in outcomes.iter().filter(|o| o.written.is_some()) {
                if let Err(e) = agent
                    .record_missed(
                        &inst,
                        &run,
                        &o.stream,
                        &skipped,
                        total,
                        "the previous run was still in progress",
                    )
                    .await
                {
                    tracing::error!(collector = %inst.name, error = %e, "cannot record missed slots");
                }
            }
        }
        if let Err(e) = agent.checkpoint(run).await {
            tracing::error!(collector = %inst.name, error = %e, "cannot write checkpoint");
        }
        after = skipped.last().copied().unwrap_or(slot).max(slot);
        if total > skipped.len() {
            after = now;
        }
    }
}

#[cfg(test)]
mod tests;
