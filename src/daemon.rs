//! `exhibit run`: the scheduler.
//!
//! Each enabled collector instance gets a task that sleeps until its next
//! cron slot, waits for a global concurrency permit, runs, and checkpoints.
//! One task per instance means one instance never overlaps itself; slots
//! that pass while it is still running are recorded as missed, as are slots
//! that passed while the agent was down (found at start-up).
//!
//! Shutdown has two stages, as two tokens: `stop` (SIGTERM/SIGINT) ends
//! scheduling while in-flight runs continue; `hard_stop` (the grace period
//! ran out, or a second signal) cancels them, and they still write their
//! failed records and checkpoints before the process exits.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::collect::instance::CollectorInstance;
use crate::config::Config;
use crate::evidence::layout;
use crate::evidence::record::Trigger;
use crate::runner::Runner;

/// Most missed slots listed one by one in a missed record; the count is
/// always exact.
const MISSED_LISTED: usize = 1000;

/// Runs the daemon until a shutdown signal; returns once every in-flight
/// run has written its records and checkpoint.
pub async fn run(
    config: Config,
    collectors: Vec<CollectorInstance>,
    runner: Runner,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let grace = config.agent.shutdown_grace;
    let hard_stop = runner.hard_stop.clone();
    tokio::spawn(watch_signals(stop.clone(), hard_stop.clone(), grace));

    let instances: Vec<Arc<CollectorInstance>> = collectors
        .into_iter()
        .filter(|c| c.enabled)
        .map(Arc::new)
        .collect();
    if instances.is_empty() {
        tracing::warn!("no enabled collectors: nothing will be scheduled");
    }

    measure_schedules(&instances, &runner, stop.clone());
    let behind = record_downtime(&runner, &instances).await?;
    let permits = Arc::new(Semaphore::new(config.agent.concurrency));
    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        collectors = instances.len(),
        store = %runner.writer.store().describe(),
        "scheduler started"
    );

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(t) = runner.writer.timestamper().cloned() {
        tasks.spawn(timestamp_loop(t, runner.clone(), stop.clone()));
    }
    if let Some((schedule, report)) = config.report.clone() {
        tasks.spawn(report_loop(schedule, report, runner.clone(), stop.clone()));
    }
    for inst in instances {
        let catch_up = config.agent.catch_up && behind.contains(&inst.name);
        tasks.spawn(instance_loop(
            inst,
            runner.clone(),
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

async fn watch_signals(stop: CancellationToken, hard_stop: CancellationToken, grace: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = stop.cancelled() => {}
    }
    tracing::info!(grace = ?grace, "shutting down: no new runs; in-flight runs may finish within the grace period");
    stop.cancel();
    tokio::select! {
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over: cancelling in-flight runs"),
        _ = term.recv() => tracing::warn!("second signal: cancelling in-flight runs"),
        _ = int.recv() => tracing::warn!("second signal: cancelling in-flight runs"),
        _ = hard_stop.cancelled() => {}
    }
    hard_stop.cancel();
}

/// Publishes what each schedule allows between two successes, for the
/// staleness alert. A dense schedule takes a scan of many slots to measure,
/// so this runs beside the scheduler instead of delaying it, once per
/// distinct expression, and gives up on shutdown.
fn measure_schedules(
    instances: &[Arc<CollectorInstance>],
    runner: &Runner,
    stop: CancellationToken,
) {
    let schedules: Vec<(String, crate::schedule::Schedule)> = instances
        .iter()
        .map(|i| (i.name.clone(), i.schedule.clone()))
        .collect();
    let metrics = runner.metrics.clone();
    let now = runner.writer.now();
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
    runner: &Runner,
    instances: &[Arc<CollectorInstance>],
) -> anyhow::Result<BTreeSet<String>> {
    let store = runner.writer.store().clone();
    let now = runner.writer.now();
    let run = runner.writer.begin_run(Trigger::Gap);
    let mut behind = BTreeSet::new();
    for inst in instances {
        let streams: BTreeSet<String> = store
            .list(&layout::collector_prefix(&inst.name))
            .await?
            .iter()
            .filter_map(|k| layout::stream_record(k).map(|(s, _)| s))
            .collect();
        for stream in streams.into_iter().filter(|s| runner.shard.owns(s)) {
            let Some(last) = runner.writer.last_slot(&stream).await? else {
                continue;
            };
            let (slots, total) = inst.schedule.slots_between(last, now, MISSED_LISTED);
            if total > 0 {
                runner
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
        runner.writer.checkpoint(run).await?;
    }
    Ok(behind)
}

/// Makes the nightly review on its schedule: writes the page and posts the
/// summary. A failure is logged and retried at the next slot; it never
/// touches collection.
async fn report_loop(
    schedule: crate::schedule::Schedule,
    cfg: crate::config::ReportConfig,
    runner: Runner,
    stop: CancellationToken,
) {
    let mut after = Utc::now();
    while let Some(slot) = schedule.next_after(after) {
        tokio::select! {
            _ = sleep_until(slot) => {}
            _ = stop.cancelled() => return,
        }
        after = slot;
        let since = Utc::now() - chrono::Duration::from_std(cfg.since).unwrap_or_default();
        let result = async {
            let report = crate::report::build(runner.writer.store().clone(), since).await?;
            if let Some(out) = &cfg.out {
                tokio::fs::write(out, crate::report::html(&report)).await?;
            }
            if let Some(url) = &cfg.webhook {
                let text = crate::report::summary(&report, cfg.out.as_deref());
                runner
                    .http
                    .post(url)
                    .json(&serde_json::json!({ "text": text }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<_, anyhow::Error>(report.all_highlights().count())
        }
        .await;
        match result {
            Ok(n) => tracing::info!(highlights = n, "nightly review made"),
            Err(e) => tracing::error!(error = %e, "cannot make the nightly review"),
        }
    }
}

/// Retries the checkpoints still lacking an RFC 3161 token, every
/// `retry_interval`, so that a TSA outage closes without waiting for the
/// next scheduled run.
async fn timestamp_loop(
    stamper: Arc<crate::tsa::Timestamper>,
    runner: Runner,
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
                .retry_pending(runner.writer.store().as_ref(), runner.writer.now())
                .await;
            tracing::debug!(left, "retried checkpoints lacking a timestamp");
        }
    }
}

async fn sleep_until(t: DateTime<Utc>) {
    let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

async fn instance_loop(
    inst: Arc<CollectorInstance>,
    runner: Runner,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
    catch_up: bool,
) {
    if catch_up
        && !stop.is_cancelled()
        && let Ok(_permit) = permits.acquire().await
    {
        let run = runner.writer.begin_run(Trigger::CatchUp);
        runner.run_instance(&inst, &run, None).await;
        if let Err(e) = runner.writer.checkpoint(run).await {
            tracing::error!(collector = %inst.name, error = %e, "cannot write checkpoint");
        }
    }
    let mut after = runner.writer.now();
    loop {
        let Some(slot) = inst.schedule.next_after(after) else {
            tracing::warn!(collector = %inst.name, "schedule has no future slot");
            return;
        };
        tokio::select! {
            _ = sleep_until(slot) => {}
            _ = stop.cancelled() => return,
        }
        let _permit = tokio::select! {
            p = permits.acquire() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => return,
        };
        let run = runner.writer.begin_run(Trigger::Scheduled);
        let outcomes = runner.run_instance(&inst, &run, Some(slot)).await;
        // Slots that came and went while this run (or its wait for a
        // permit) took too long: they did not run, and the record says so.
        let now = runner.writer.now();
        let (skipped, total) = inst.schedule.slots_between(slot, now, MISSED_LISTED);
        if total > 0 {
            for o in outcomes.iter().filter(|o| o.written.is_some()) {
                if let Err(e) = runner
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
        if let Err(e) = runner.writer.checkpoint(run).await {
            tracing::error!(collector = %inst.name, error = %e, "cannot write checkpoint");
        }
        after = skipped.last().copied().unwrap_or(slot).max(slot);
        if total > skipped.len() {
            after = now;
        }
    }
}
