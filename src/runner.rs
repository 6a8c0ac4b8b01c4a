//! Runs one collector instance once: resolves its targets, collects each
//! with a timeout and retries (exponential backoff with jitter), and hands
//! every outcome, success or failure, to the writer. A failed attempt is
//! evidence too, so every path ends in a record: when the store refuses the
//! record itself, a failed record naming the store's error is kept in
//! memory and written, in order, as soon as the store accepts writes again
//! (the next write of the agent, or the daemon's retry), so that the slot
//! never reads as one the agent did not run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::collect::instance::CollectorInstance;
use crate::collect::{CollectError, Context, Snapshot, Target, VERSION};
use crate::evidence::record::{CollectorInfo, RecordPredicate, Status, Trigger};
use crate::metrics::Metrics;
use crate::writer::{Entry, Run, WriteError, Writer, Written};

/// How many targets of one instance are collected at once. Targets of one
/// instance usually share an API's rate budget, so this stays small.
const TARGET_CONCURRENCY: usize = 4;
/// Longest single backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The outcome of one stream's collection.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The stream.
    pub stream: String,
    /// The status recorded.
    pub status: Status,
    /// The error, if any.
    pub error: Option<String>,
    /// What was written; `None` when the store write itself failed.
    pub written: Option<Written>,
}

/// Runs collector instances and writes what comes of them: the pieces a
/// collection needs, shared by every run of the agent.
#[derive(Clone, Debug)]
pub struct Runner {
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    hard_stop: CancellationToken,
    shard: crate::shard::Shard,
    /// Failed records the store refused when they were due, oldest first.
    pending: Arc<tokio::sync::Mutex<Vec<Pending>>>,
}

/// A record the store refused when it was due.
#[derive(Debug)]
struct Pending {
    collector: String,
    /// Why its attempt was made: the run it is written in says so too.
    trigger: Trigger,
    entry: Entry,
}

impl Runner {
    /// A runner writing through `writer` the streams that `shard` owns.
    pub fn new(
        writer: Arc<Writer>,
        metrics: Arc<Metrics>,
        http: reqwest::Client,
        shard: crate::shard::Shard,
    ) -> Self {
        Runner {
            writer,
            metrics,
            http,
            hard_stop: CancellationToken::new(),
            shard,
            pending: Default::default(),
        }
    }

    /// How many records wait for the store to accept writes again.
    pub async fn pending(&self) -> usize {
        self.pending.lock().await.len()
    }

    /// Writes the records the store refused earlier, in the order they
    /// were due, each within a run of its own trigger whose window starts
    /// at its oldest attempt (so that the checkpoint vouches for the times
    /// the records claim), and checkpoints each run; stops at the first
    /// refusal. Returns how many are left.
    pub async fn write_pending(&self) -> usize {
        let mut pending = self.pending.lock().await;
        'runs: while let Some(first) = pending.first() {
            let trigger = first.trigger;
            let mut run = self.writer.begin_run(trigger);
            run.started_at = pending
                .iter()
                .take_while(|p| p.trigger == trigger)
                .map(|p| p.entry.predicate.started_at)
                .min()
                .unwrap_or(run.started_at);
            let mut refused = false;
            while let Some(p) = pending.first()
                && p.trigger == trigger
            {
                let stream = p.entry.predicate.stream.clone();
                match self.writer.append(&run, p.entry.clone()).await {
                    Ok(w) => {
                        tracing::info!(collector = %p.collector, stream = %stream, seq = w.seq, "a record the store refused earlier is written");
                        self.metrics.written_late();
                        pending.remove(0);
                    }
                    Err(e) => {
                        tracing::debug!(stream = %stream, error = %e, "the store still refuses writes");
                        let at = self.writer.now().timestamp() as f64;
                        self.metrics.write_failed(None, at, &e.to_string());
                        refused = true;
                        break;
                    }
                }
            }
            if !run.written().is_empty() {
                match self.writer.checkpoint(run).await {
                    Ok(_) => self.metrics.write_succeeded(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot write checkpoint");
                        let at = self.writer.now().timestamp() as f64;
                        self.metrics.write_failed(None, at, &e.to_string());
                    }
                }
            }
            if refused {
                break 'runs;
            }
        }
        self.metrics.pending_records(pending.len());
        pending.len()
    }

    /// Keeps `entry` to write once the store accepts writes again, and
    /// says the store refused it.
    async fn refused(&self, collector: &str, run: &Run, entry: Entry, e: &WriteError) {
        let stream = entry.predicate.stream.clone();
        let at = entry.predicate.finished_at.timestamp() as f64;
        tracing::error!(collector, stream = %stream, error = %e, "store is not writable: the record is kept and written once the store accepts writes again");
        self.metrics
            .write_failed(Some((collector, &stream)), at, &e.to_string());
        let mut pending = self.pending.lock().await;
        pending.push(Pending {
            collector: collector.to_string(),
            trigger: run.trigger,
            entry,
        });
        self.metrics.pending_records(pending.len());
    }

    /// Cancelled when in-flight collections must stop (after the grace
    /// period, or on Ctrl-C): they end as failed records, and their runs
    /// still get their checkpoints.
    pub fn hard_stop(&self) -> &CancellationToken {
        &self.hard_stop
    }

    /// Whether this replica owns `stream`.
    pub fn owns(&self, stream: &str) -> bool {
        self.shard.owns(stream)
    }

    /// Collects every target of `inst` within `run`.
    pub async fn run_instance(
        &self,
        inst: &CollectorInstance,
        run: &Run,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Vec<Outcome> {
        self.metrics.in_flight(1);
        let ctx = Context {
            http: self.http.clone(),
            cancel: self.hard_stop.child_token(),
            clock: self.writer.clock(),
            span: tracing::info_span!("collect", collector = %inst.name, run = %run.id),
        };
        let started = self.writer.now();
        let targets = match with_retries(inst, &ctx, |ctx| {
            let c = &inst.collector;
            async move { c.targets(&ctx).await }
        })
        .instrument(ctx.span.clone())
        .await
        {
            (Ok(t), _) => t
                .into_iter()
                .filter(|t| self.shard.owns(&format!("{}/{}", inst.name, t.key)))
                .collect::<Vec<_>>(),
            (Err(e), attempts) => {
                // Without targets there is no stream to write to; the
                // failure goes to the instance's own stream so it is seen
                // (written by whichever replica owns that stream).
                let target = Target {
                    key: fallback_key(inst),
                    source: json!({"stage": "resolving targets"}),
                };
                if !self.shard.owns(&format!("{}/{}", inst.name, target.key)) {
                    tracing::warn!(collector = %inst.name, error = %e, "cannot resolve targets");
                    self.metrics.in_flight(-1);
                    return Vec::new();
                }
                let o = self
                    .record(inst, run, &target, started, scheduled_for, Err(e), attempts)
                    .await;
                self.metrics.in_flight(-1);
                return vec![o];
            }
        };
        let outcomes = futures::stream::iter(targets)
            .map(|target| {
                let stream = format!("{}/{}", inst.name, target.key);
                let ctx = Context {
                    span: tracing::info_span!(parent: &ctx.span, "stream", stream = %stream),
                    ..ctx.clone()
                };
                let span = ctx.span.clone();
                async move {
                    let started = self.writer.now();
                    let previous = match self.writer.previous(&stream).await {
                        Ok(p) => p,
                        Err(e) => return self.store_failure(inst, &stream, e),
                    };
                    let (result, attempts) = with_retries(inst, &ctx, |ctx| {
                        let (c, t, p) = (&inst.collector, &target, previous.as_ref());
                        async move { c.collect(&ctx, t, p).await }
                    })
                    .await;
                    self.record(inst, run, &target, started, scheduled_for, result, attempts)
                        .await
                }
                .instrument(span)
            })
            .buffer_unordered(TARGET_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        self.metrics.in_flight(-1);
        outcomes
    }

    fn store_failure(&self, inst: &CollectorInstance, stream: &str, e: WriteError) -> Outcome {
        tracing::error!(collector = %inst.name, stream, error = %e, "cannot write evidence");
        Outcome {
            stream: stream.to_string(),
            status: Status::Failed,
            error: Some(e.to_string()),
            written: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        inst: &CollectorInstance,
        run: &Run,
        target: &Target,
        started_at: DateTime<Utc>,
        scheduled_for: Option<DateTime<Utc>>,
        result: Result<Snapshot, CollectError>,
        attempts: u32,
    ) -> Outcome {
        let stream = format!("{}/{}", inst.name, target.key);
        let finished_at = self.writer.now();
        let mut source = target.source.clone();
        let result = result.map_err(|e| scrub_error(inst, e)).map(|mut s| {
            let n = scrub_snapshot(inst, &mut s) + inst.secrets.scrub_json(&mut source);
            if n > 0 {
                tracing::info!(collector = %inst.name, stream = %stream, count = n, "secret values or URL credentials in the collected evidence were replaced with {}", crate::config::REDACTED);
            }
            s
        });
        if result.is_err() {
            inst.secrets.scrub_json(&mut source);
        }
        let (status, error, payload, cursor) = match result {
            Ok(s) if s.failures.is_empty() => (Status::Ok, None, s.payload, s.cursor),
            Ok(s) => {
                let msg = format!("incomplete: {}", s.failures.join("; "));
                (Status::Partial, Some(msg), s.payload, s.cursor)
            }
            Err(e) => {
                let kind = match &e {
                    CollectError::Retryable { .. } => "retryable",
                    CollectError::Fatal(_) => "fatal",
                    CollectError::Cancelled => "cancelled",
                };
                let doc = json!({
                    "error": e.to_string(),
                    "error_kind": kind,
                    "collector": inst.name,
                    "kind": inst.kind,
                    "stream": stream,
                    "attempts": attempts,
                    "timeout_seconds": inst.timeout.as_secs_f64(),
                });
                (Status::Failed, Some(e.to_string()), doc, None)
            }
        };
        // A failed attempt's error document is small: kept, in case the
        // store refuses the record and it must be written later.
        let failed_doc = (status == Status::Failed).then(|| payload.clone());
        let mut entry = describe(inst, &stream, status, finished_at, payload);
        let p = &mut entry.predicate;
        p.source = source;
        p.started_at = started_at;
        p.error = error.clone();
        p.attempts = attempts;
        p.scheduled_for = scheduled_for;
        p.cursor = cursor;
        // Kept by the writer on a new stream's first record only.
        p.continues =
            former_stream(inst).filter(|_| inst.collector.known_key() == Some(target.key.clone()));
        // Kept for a fallback record, without the payload.
        let described = p.clone();
        let described_again = p.clone();
        let seconds = (finished_at - started_at).num_milliseconds() as f64 / 1000.0;
        // Records refused earlier go first, so that the chain keeps the
        // order the attempts were made in.
        if self.pending().await > 0 {
            self.write_pending().await;
        }
        let (status, error, appended) = match self.writer.append(run, entry).await {
            // The payload could not be stored (a full disk, say): a small
            // failed record may still fit, and keeps the gap visible.
            Err(e) if status != Status::Failed => {
                let msg = format!("collected, but the payload could not be stored: {e}");
                tracing::error!(collector = %inst.name, stream = %stream, error = %e, "cannot store the payload");
                let fallback = Entry {
                    predicate: RecordPredicate {
                        status: Status::Failed,
                        error: Some(msg.clone()),
                        cursor: None,
                        ..described
                    },
                    payload: json!({"error": msg, "error_kind": "store", "stream": stream}),
                };
                (
                    Status::Failed,
                    Some(msg),
                    self.writer.append(run, fallback).await,
                )
            }
            r => (status, error, r),
        };
        match appended {
            Ok(w) => {
                self.metrics.observe(
                    &inst.name,
                    &stream,
                    status.as_str(),
                    seconds,
                    finished_at.timestamp() as f64,
                );
                match &error {
                    None => {
                        tracing::info!(collector = %inst.name, stream = %stream, seq = w.seq, attempts, "collected")
                    }
                    Some(e) => {
                        tracing::warn!(collector = %inst.name, stream = %stream, seq = w.seq, attempts, status = status.as_str(), error = %e, "collection failed")
                    }
                }
                Outcome {
                    stream,
                    status,
                    error,
                    written: Some(w),
                }
            }
            Err(e) => {
                // Not even a failed record fits: keep one, naming the
                // store's error, to write once the store takes it.
                let (error, payload) = match (failed_doc, error) {
                    (Some(mut doc), Some(error)) => {
                        doc["store_error"] = json!(e.to_string());
                        (error, doc)
                    }
                    _ => {
                        let msg = format!(
                            "collected, but the store is not writable: {e}; the payload was not kept"
                        );
                        let doc = json!({"error": msg, "error_kind": "store", "stream": stream});
                        (msg, doc)
                    }
                };
                let late = Entry {
                    predicate: RecordPredicate {
                        status: Status::Failed,
                        error: Some(error.clone()),
                        cursor: None,
                        ..described_again
                    },
                    payload,
                };
                self.refused(&inst.name, run, late, &e).await;
                Outcome {
                    stream,
                    status: Status::Failed,
                    error: Some(format!("store is not writable: {e}")),
                    written: None,
                }
            }
        }
    }

    /// Records slots of `stream` that did not run.
    pub async fn record_missed(
        &self,
        inst: &CollectorInstance,
        run: &Run,
        stream: &str,
        slots: &[DateTime<Utc>],
        total: usize,
        reason: &str,
    ) -> Result<Written, WriteError> {
        let now = self.writer.now();
        let payload = json!({
            "reason": reason,
            "count": total,
            "first": slots.first(),
            "last": slots.last(),
            "slots": slots,
        });
        let mut entry = describe(inst, stream, Status::Missed, now, payload);
        entry.predicate.error = Some(format!("{total} scheduled slot(s) did not run: {reason}"));
        entry.predicate.scheduled_for = slots.last().copied();
        if self.pending().await > 0 {
            self.write_pending().await;
        }
        let w = match self.writer.append(run, entry.clone()).await {
            Ok(w) => w,
            Err(e) => {
                self.refused(&inst.name, run, entry, &e).await;
                return Err(e);
            }
        };
        self.metrics.missed(&inst.name, stream, total as u64);
        tracing::warn!(collector = %inst.name, stream, missed = total, reason, "missed slots recorded");
        Ok(w)
    }
}

/// The stream key of `inst`'s records when its targets cannot be
/// resolved: the one its settings name (an account id), else the instance's
/// own name.
pub fn fallback_key(inst: &CollectorInstance) -> String {
    inst.collector
        .known_key()
        .unwrap_or_else(|| inst.name.clone())
}

/// The stream an earlier version wrote `inst`'s records to, when it now
/// writes them to another ([`crate::collect::Collector::former_key`]).
pub fn former_stream(inst: &CollectorInstance) -> Option<String> {
    inst.collector
        .former_key()
        .map(|k| format!("{}/{k}", inst.name))
}

/// The description every record of `inst` on `stream` starts from: who
/// collected, for which criteria, on which schedule.
fn describe(
    inst: &CollectorInstance,
    stream: &str,
    status: Status,
    at: DateTime<Utc>,
    payload: Value,
) -> Entry {
    let collector = CollectorInfo {
        name: inst.name.clone(),
        kind: inst.kind.clone(),
        version: VERSION.to_string(),
    };
    let mut entry = Entry::new(stream, collector, status, at, payload);
    entry.predicate.criteria = inst.criteria.clone();
    entry.predicate.schedule = Some(inst.schedule.expression().to_string());
    entry
}

/// Calls `attempt` until it succeeds, fails fatally, runs out of retries or
/// is cancelled; each try has the instance's timeout. Returns the result and
/// the number of tries.
async fn with_retries<T, F, Fut>(
    inst: &CollectorInstance,
    ctx: &Context,
    mut attempt: F,
) -> (Result<T, CollectError>, u32)
where
    F: FnMut(Context) -> Fut,
    Fut: std::future::Future<Output = Result<T, CollectError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let try_ctx = Context {
            cancel: ctx.cancel.child_token(),
            ..ctx.clone()
        };
        let guard = try_ctx.cancel.clone().drop_guard();
        let began = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(inst.timeout, attempt(try_ctx)) => match r {
                Ok(r) => r,
                Err(_) => Err(CollectError::retryable(format!(
                    "timed out after {:?}", inst.timeout
                ))),
            },
            _ = ctx.cancel.cancelled() => Err(CollectError::Cancelled),
        };
        drop(guard);
        // Before the error is logged, retried or recorded.
        let result = result.map_err(|e| scrub_error(inst, e));
        let retry_after = match &result {
            Err(CollectError::Retryable {
                retry_after,
                message,
            }) if tries <= inst.retries => {
                tracing::debug!(collector = %inst.name, tries, error = %message, elapsed = ?began.elapsed(), "retrying");
                *retry_after
            }
            _ => return (result, tries),
        };
        let backoff = retry_after.unwrap_or_else(|| backoff(inst.retry_backoff, tries));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.cancel.cancelled() => return (Err(CollectError::Cancelled), tries),
        }
    }
}

/// `e` without the instance's secret values or URL credentials.
fn scrub_error(inst: &CollectorInstance, e: CollectError) -> CollectError {
    let scrub = |m: String| inst.secrets.scrub(&m).into_owned();
    match e {
        CollectError::Retryable {
            message,
            retry_after,
        } => CollectError::Retryable {
            message: scrub(message),
            retry_after,
        },
        CollectError::Fatal(m) => CollectError::Fatal(scrub(m)),
        CollectError::Cancelled => CollectError::Cancelled,
    }
}

/// Scrubs the instance's secret values and URL credentials from what a
/// collection returned; returns how many strings changed.
fn scrub_snapshot(inst: &CollectorInstance, s: &mut Snapshot) -> usize {
    let mut n = inst.secrets.scrub_json(&mut s.payload);
    if let Some(c) = s.cursor.as_mut() {
        n += inst.secrets.scrub_json(c);
    }
    for f in &mut s.failures {
        if let Some(o) = inst.secrets.scrubbed(f) {
            *f = o;
            n += 1;
        }
    }
    n
}

/// Exponential backoff with full jitter in the upper half: `base·2^(n-1)`
/// scaled by a random factor in [0.5, 1), capped.
fn backoff(base: Duration, tries: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << (tries - 1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(rand::rng().random_range(0.5..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Collector, Previous};
    use crate::evidence::keys::Signer;
    use crate::store::mem::MemStore;
    use async_trait::async_trait;

    fn fixed_clock() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    /// Reports what its context says: the time, and the span it runs in.
    struct Introspect;

    #[async_trait]
    impl Collector for Introspect {
        async fn targets(&self, _: &Context) -> Result<Vec<Target>, CollectError> {
            Ok(vec![Target {
                key: "only".into(),
                source: json!({}),
            }])
        }
        async fn collect(
            &self,
            ctx: &Context,
            _: &Target,
            _: Option<&Previous>,
        ) -> Result<Snapshot, CollectError> {
            let in_span = tracing::Span::current().metadata().map(|m| m.name());
            Ok(Snapshot::new(json!({
                "now": ctx.now(),
                "span": ctx.span.metadata().map(|m| m.name()),
                "current_span": in_span,
            })))
        }
    }

    #[tokio::test]
    async fn collectors_get_the_writers_clock_and_their_streams_span() {
        // A subscriber, so that spans are real (without one they are all
        // disabled and carry no metadata).
        let _sub = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .finish(),
        );
        // Callsites cache whether any subscriber wants them. A test on
        // another thread (with no subscriber) can register the runner's
        // spans while this one registers its subscriber, and the cache then
        // keeps "never" for them; rebuilt now, it counts this subscriber.
        tracing::callsite::rebuild_interest_cache();
        let store: Arc<dyn crate::store::Store> = Arc::new(MemStore::new());
        let writer = Writer::open(store.clone(), Arc::new(Signer::generate()), "t")
            .await
            .unwrap()
            .with_clock(crate::clock::Clock::from_fn(fixed_clock));
        let writer = Arc::new(writer);
        let runner = Runner::new(
            writer.clone(),
            Arc::new(Metrics::new()),
            reqwest::Client::new(),
            Default::default(),
        );
        let loaded = crate::config::parse(
            std::path::Path::new("exhibit.toml"),
            "[[collectors]]\nname = \"intro\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\n".to_string(),
        )
        .unwrap();
        let mut inst = crate::collect::instance::build(&loaded.collectors[0]).unwrap();
        inst.collector = Box::new(Introspect);
        let run = writer.begin_run(crate::evidence::record::Trigger::Manual);
        let outcomes = runner.run_instance(&inst, &run, None).await;
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].status, Status::Ok, "{:?}", outcomes[0].error);
        let shown = crate::browse::show(&crate::read::Reader::new(store), "intro/only")
            .await
            .unwrap();
        let payload = shown.payload.unwrap();
        assert_eq!(payload["now"], "2026-03-01T12:00:00Z");
        assert_eq!(shown.statement.predicate.started_at, fixed_clock());
        assert_eq!(payload["span"], "stream");
        assert_eq!(payload["current_span"], "stream");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_secs(1);
        for _ in 0..50 {
            let d1 = backoff(b, 1);
            assert!(d1 >= Duration::from_millis(500) && d1 < b);
            let d3 = backoff(b, 3);
            assert!(d3 >= Duration::from_secs(2) && d3 < Duration::from_secs(4));
            assert!(backoff(b, 30) < MAX_BACKOFF);
        }
    }
}
