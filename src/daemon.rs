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
//!
//! After each collection the controls that read what it wrote are
//! evaluated in the same run ([`Agent::assess_landed`]), so that a result
//! and the records it judged share a checkpoint.
//!
//! SIGHUP reloads the config file: the new one is checked first (an invalid
//! one is logged and changes nothing); then the scheduling of the old
//! collectors stops, the runs in flight finish, and the new collectors are
//! scheduled. An instance never overlaps itself, across a reload or a
//! collection asked for through the [`control`] socket either: each name has
//! one lock. Records the store refused are written by a retry every few
//! seconds (and before any later record), so readiness comes back as soon
//! as the store does.

pub mod control;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::collect::instance::CollectorInstance;
use crate::evidence::record::Trigger;

/// Most missed slots listed one by one in a missed record; the count is
/// always exact.
const MISSED_LISTED: usize = 1000;

/// How often records the store refused are offered to it again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// What the scheduler, the reload and the control socket share: the agent
/// as last (re)loaded, and one lock per collector name so that an instance
/// never runs twice at once.
#[derive(Debug)]
pub struct Shared {
    current: RwLock<Agent>,
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    /// The state of a daemon running `agent`.
    pub fn new(agent: Agent) -> Arc<Self> {
        Arc::new(Shared {
            current: RwLock::new(agent),
            busy: Mutex::new(HashMap::new()),
        })
    }

    /// The agent with the config now in force.
    pub fn agent(&self) -> Agent {
        self.current.read().expect("agent lock").clone()
    }

    fn replace(&self, agent: Agent) {
        *self.current.write().expect("agent lock") = agent;
    }

    /// The lock held while the instance `name` collects.
    fn busy(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.busy
            .lock()
            .expect("busy lock")
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// The whole daemon: serves the admin endpoint on `admin` and publishes the
/// spool's backlog, schedules until SIGTERM or SIGINT, then waits (a
/// bounded time) for the spool to ship what was written.
pub async fn serve(agent: Agent, admin: SocketAddr) -> anyhow::Result<()> {
    // Before anything slow: SIGHUP's default action ends the process.
    let reloads = watch_hangups()?;
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
    let shared = Shared::new(agent.clone());
    let control = control::serve(shared.clone(), &control::socket_path(config), stop.clone());
    run_shared(shared, ready, stop, Some(reloads)).await?;
    if let Some(c) = control {
        c.close().await;
    }
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

/// Each SIGHUP, as a message; several before the reload handles one count
/// as one.
fn watch_hangups() -> anyhow::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
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
    run_shared(Shared::new(agent), ready, stop, None).await
}

/// [`run`], on state shared with a control socket, reloading the config
/// file at each message on `reloads`.
pub async fn run_shared(
    shared: Arc<Shared>,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
    reloads: Option<mpsc::Receiver<()>>,
) -> anyhow::Result<()> {
    let agent = shared.agent();
    tokio::spawn(escalate(
        stop.clone(),
        agent.hard_stop().clone(),
        agent.config().agent.shutdown_grace,
    ));

    let instances = enabled(&agent);
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
    tasks.spawn(store_retry_loop(shared.clone(), stop.clone()));
    let mut generation = schedule(&shared, &permits, &stop, &behind, &mut tasks);
    let mut reloads = reloads;
    loop {
        let reload = async {
            match reloads.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Err(e)) => tracing::error!(error = %e, "a scheduler task failed"),
                Some(Ok(())) => {}
            },
            r = reload, if !stop.is_cancelled() => {
                if r.is_none() {
                    reloads = None;
                    continue;
                }
                match shared.agent().reloaded() {
                    Ok(new) => {
                        // The old schedule stops; its runs in flight finish
                        // (each instance's lock keeps the new schedule from
                        // overlapping them).
                        generation.cancel();
                        shared.replace(new);
                        generation = schedule(&shared, &permits, &stop, &BTreeSet::new(), &mut tasks);
                        tracing::info!(collectors = enabled_count(&shared.agent()), "configuration reloaded");
                    }
                    Err(e) => tracing::error!(
                        config = %agent.config().path.display(),
                        error = format!("{e:#}"),
                        "configuration not reloaded: the new file is invalid; the running configuration is kept"
                    ),
                }
            }
        }
    }
    // The last chance for records the store refused: after this they are
    // lost, and the log says how many.
    let agent = shared.agent();
    if agent.pending().await > 0 {
        let left = agent.write_pending().await;
        if left > 0 {
            tracing::error!(
                left,
                "stopping with records the store refused; their slots will read as not run"
            );
        }
    }
    ready.store(false, Ordering::SeqCst);
    tracing::info!("all runs finished; exiting");
    Ok(())
}

fn enabled(agent: &Agent) -> Vec<Arc<CollectorInstance>> {
    agent
        .instances()
        .iter()
        .filter(|c| c.enabled)
        .cloned()
        .collect()
}

fn enabled_count(agent: &Agent) -> usize {
    agent.instances().iter().filter(|c| c.enabled).count()
}

/// Starts scheduling the enabled instances of the current agent (and its
/// nightly review), with a catch-up run first for those in `behind`; they
/// stop at `stop` or when the returned token (one reload's generation) is
/// cancelled. Says when each collector next runs, and publishes each one's
/// streams at once, so that one that never succeeds is seen to be stale.
fn schedule(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    stop: &CancellationToken,
    behind: &BTreeSet<String>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> CancellationToken {
    let agent = shared.agent();
    let generation = stop.child_token();
    let instances = enabled(&agent);
    if instances.is_empty() {
        tracing::warn!("no enabled collectors: nothing will be scheduled");
    }
    let now = agent.now();
    for inst in &instances {
        match inst.schedule.next_after(now) {
            Some(next) => tracing::info!(
                collector = %inst.name,
                schedule = inst.schedule.expression(),
                next_run = %next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "scheduled"
            ),
            None => {
                tracing::warn!(collector = %inst.name, schedule = inst.schedule.expression(), "schedule has no future slot")
            }
        }
    }
    measure_schedules(&instances, &agent, generation.clone());
    tokio::spawn(publish_streams(agent.clone(), instances.clone()));
    if let Some((schedule, report)) = agent.config().report.clone() {
        tasks.spawn(report_loop(
            schedule,
            report,
            agent.clone(),
            generation.clone(),
        ));
    }
    let catch_up = agent.config().agent.catch_up;
    for inst in instances {
        let catch_up = catch_up && behind.contains(&inst.name);
        let busy = shared.busy(&inst.name);
        tasks.spawn(instance_loop(
            inst,
            agent.clone(),
            permits.clone(),
            generation.clone(),
            catch_up,
            busy,
        ));
    }
    generation
}

/// Publishes the metrics of every stream of `instances` before they run:
/// the streams the store holds, or for an instance with none yet, the
/// stream its first record is expected in.
async fn publish_streams(agent: Agent, instances: Vec<Arc<CollectorInstance>>) {
    for inst in instances {
        let known: Vec<String> = match agent.streams(&inst).await {
            Ok(s) => s.into_iter().collect(),
            Err(e) => {
                tracing::debug!(collector = %inst.name, error = %e, "cannot list the instance's streams");
                Vec::new()
            }
        };
        let expected = format!("{}/{}", inst.name, crate::runner::fallback_key(&inst));
        if known.is_empty() && !agent.owns(&expected) {
            continue;
        }
        agent
            .metrics()
            .expect_streams(&inst.name, &known, &expected);
    }
}

/// Offers the records the store refused to it again, every few seconds,
/// until it takes them: the store's return is noticed (and readiness
/// restored) without waiting for the next slot.
async fn store_retry_loop(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STORE_RETRY) => {}
            _ = stop.cancelled() => return,
        }
        let agent = shared.agent();
        if agent.pending().await > 0 {
            agent.write_pending().await;
        }
    }
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
            let configured = crate::verify::Configured::enabled_in(agent.config());
            let report = crate::report::build(agent.store().clone(), since, &configured).await?;
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
    busy: Arc<tokio::sync::Mutex<()>>,
) {
    if catch_up
        && !stop.is_cancelled()
        && let Ok(_permit) = permits.acquire().await
    {
        let _busy = busy.lock().await;
        let run = agent.begin_run(Trigger::CatchUp);
        agent.collect(&inst, &run, None).await;
        agent.assess_landed(&run).await;
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
        // A collection asked for through the control socket, or the old
        // schedule's run across a reload, finishes first.
        let _busy = tokio::select! {
            b = busy.lock() => b,
            _ = stop.cancelled() => return,
        };
        let run = agent.begin_run(Trigger::Scheduled);
        let outcomes = agent.collect(&inst, &run, Some(slot)).await;
        // The controls that read what just landed are judged in the same
        // run, so their results share its checkpoint.
        agent.assess_landed(&run).await;
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
