//! The scheduler on a paused tokio clock: days of slots, a downtime with
//! the catch-up after it, and runs that overrun their next slots, each in
//! milliseconds, on the memory store, with collectors that take no real
//! time. What is checked is what the store ends up holding.

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::clock::Clock;
use crate::collect::{CollectError, Collector, Context, Previous, Snapshot, Target};
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::layout;
use crate::evidence::record::{RecordPredicate, Status, peek};
use crate::store::Store;
use crate::store::mem::MemStore;

/// Collects one target at once (or after `takes`, on tokio's clock), and
/// says when it collected by its context's clock.
struct Tick {
    takes: Duration,
}

#[async_trait]
impl Collector for Tick {
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
        let began = ctx.now();
        tokio::time::sleep(self.takes).await;
        Ok(Snapshot::new(json!({"began": began})))
    }

    fn known_key(&self) -> Option<String> {
        Some("only".into())
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// An agent with one instance, `tick`, every six hours, whose collections
/// take `takes`.
async fn agent(dir: &Path, store: &MemStore, clock: Clock, takes: Duration) -> Agent {
    agent_on(dir, Arc::new(store.clone()), clock, takes).await
}

/// [`agent`] on any store.
async fn agent_on(dir: &Path, store: Arc<dyn Store>, clock: Clock, takes: Duration) -> Agent {
    let text = "[agent]\nid = \"paused\"\ncatch_up = true\nshutdown_grace = \"5s\"\n\n\
        [[collectors]]\nname = \"tick\"\nkind = \"command\"\nschedule = \"0 */6 * * *\"\ncommand = [\"true\"]\n";
    let config = crate::config::parse(&dir.join("exhibit.toml"), text.to_string()).unwrap();
    let mut instances = crate::collect::instance::build_all(&config).unwrap();
    instances[0].collector = Box::new(Tick { takes });
    instances[0].timeout = Duration::from_secs(86_400);
    Agent::assemble(config, instances, store, clock)
        .await
        .unwrap()
}

/// A memory store whose writes fail, as a read-only disk's do, while it is
/// switched off.
#[derive(Debug, Clone)]
struct Switched {
    inner: MemStore,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl Store for Switched {
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), crate::store::StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(crate::store::StoreError::io(
                key,
                std::io::Error::from_raw_os_error(30),
            ));
        }
        self.inner.put_new(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, crate::store::StoreError> {
        self.inner.list(prefix).await
    }
    async fn exists(&self, key: &str) -> Result<bool, crate::store::StoreError> {
        self.inner.exists(key).await
    }
    async fn lease(
        &self,
        name: &str,
    ) -> Result<Box<dyn crate::store::Lease>, crate::store::StoreError> {
        self.inner.lease(name).await
    }
    fn describe(&self) -> String {
        "switched".into()
    }
}

/// Runs the scheduler of `agent` until `until` by its clock, then stops it
/// and waits for it to finish.
async fn run_until(agent: Agent, until: DateTime<Utc>) {
    let clock = agent.clock();
    let ready = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(run(agent, ready.clone(), stop.clone()));
    clock.sleep_until(until).await;
    assert!(
        ready.load(Ordering::SeqCst),
        "the scheduler said it is ready"
    );
    stop.cancel();
    daemon.await.unwrap().unwrap();
    assert!(!ready.load(Ordering::SeqCst));
}

async fn records(store: &MemStore) -> Vec<(RecordPredicate, Value)> {
    let mut out = Vec::new();
    for key in store
        .list(&layout::stream_prefix("tick/only"))
        .await
        .unwrap()
    {
        let bytes = store.get(&key).await.unwrap().unwrap();
        let statement = peek::<RecordPredicate>(&bytes).unwrap();
        let blob = &statement.subject[0].name;
        let payload = serde_json::from_slice(&store.get(blob).await.unwrap().unwrap()).unwrap();
        out.push((statement.predicate, payload));
    }
    out
}

/// Every checkpoint, oldest first, with how many records it lists.
async fn checkpoints(store: &MemStore) -> Vec<(CheckpointPredicate, usize)> {
    let mut out = Vec::new();
    for key in store.list(layout::CHECKPOINTS).await.unwrap() {
        if !layout::is_checkpoint(&key) {
            continue;
        }
        let bytes = store.get(&key).await.unwrap().unwrap();
        let statement = peek::<CheckpointPredicate>(&bytes).unwrap();
        out.push((statement.predicate, statement.subject.len()));
    }
    out.sort_by_key(|(p, _)| p.finished_at);
    out
}

#[tokio::test(start_paused = true)]
async fn days_of_slots_a_downtime_and_the_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let clock = Clock::following_tokio(t("2026-03-01T00:30:00Z"));

    // Up for two days, down for 31 hours, up again for half a day.
    let first = agent(dir.path(), &store, clock, Duration::ZERO).await;
    run_until(first, t("2026-03-03T00:30:00Z")).await;
    tokio::time::advance(Duration::from_secs(31 * 3600)).await;
    assert_eq!(clock.now(), t("2026-03-04T07:30:00Z"));
    let second = agent(dir.path(), &store, clock, Duration::ZERO).await;
    run_until(second, t("2026-03-04T19:00:00Z")).await;

    let served = [
        "2026-03-01T06:00:00Z",
        "2026-03-01T12:00:00Z",
        "2026-03-01T18:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-02T06:00:00Z",
        "2026-03-02T12:00:00Z",
        "2026-03-02T18:00:00Z",
        "2026-03-03T00:00:00Z",
    ];
    let down = [
        "2026-03-03T06:00:00Z",
        "2026-03-03T12:00:00Z",
        "2026-03-03T18:00:00Z",
        "2026-03-04T00:00:00Z",
        "2026-03-04T06:00:00Z",
    ];
    let after = ["2026-03-04T12:00:00Z", "2026-03-04T18:00:00Z"];
    let recs = records(&store).await;
    assert_eq!(recs.len(), served.len() + 2 + after.len());
    let seqs: Vec<u64> = recs.iter().map(|(p, _)| p.seq).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());

    // Every slot served on the dot, by the agent's clock, which the
    // collector read too.
    let scheduled = recs[..8].iter().chain(&recs[10..]);
    for ((p, payload), slot) in scheduled.zip(served.iter().chain(&after)) {
        let slot = t(slot);
        assert_eq!((p.status, p.trigger), (Status::Ok, Trigger::Scheduled));
        assert_eq!(p.scheduled_for, Some(slot));
        assert_eq!((p.started_at, p.finished_at), (slot, slot));
        assert_eq!(payload["began"], json!(slot));
    }

    // The downtime: one missed record listing exactly the slots that
    // passed, written when the agent came back.
    let (missed, payload) = &recs[8];
    let back = t("2026-03-04T07:30:00Z");
    assert_eq!(
        (missed.status, missed.trigger),
        (Status::Missed, Trigger::Gap)
    );
    assert_eq!(missed.started_at, back);
    assert_eq!(missed.scheduled_for, Some(t(down[4])));
    assert_eq!(
        missed.error.as_deref(),
        Some("5 scheduled slot(s) did not run: the agent was not running")
    );
    assert_eq!(payload["count"], 5);
    assert_eq!(payload["reason"], "the agent was not running");
    assert_eq!(payload["slots"], json!(down.map(t)));
    assert_eq!(
        (&payload["first"], &payload["last"]),
        (&json!(t(down[0])), &json!(t(down[4])))
    );

    // Then the catch-up run, at once, for no slot.
    let (caught, payload) = &recs[9];
    assert_eq!(
        (caught.status, caught.trigger),
        (Status::Ok, Trigger::CatchUp)
    );
    assert_eq!(caught.scheduled_for, None);
    assert_eq!(caught.started_at, back);
    assert_eq!(payload["began"], json!(back));

    // One checkpoint per run, each listing its one record, chained.
    let cps = checkpoints(&store).await;
    let triggers: Vec<Trigger> = cps.iter().map(|(p, _)| p.trigger).collect();
    let mut expected = vec![Trigger::Scheduled; 8];
    expected.extend([
        Trigger::Gap,
        Trigger::CatchUp,
        Trigger::Scheduled,
        Trigger::Scheduled,
    ]);
    assert_eq!(triggers, expected);
    assert!(cps.iter().all(|(_, listed)| *listed == 1));
    assert!(cps[0].0.prev.is_none());
    assert!(cps[1..].iter().all(|(p, _)| p.prev.is_some()));

    // And `verify` agrees: intact, and the five missed slots recorded.
    // Verified as of the last run (the period ends now by default, and
    // this agent's clock is not the system's).
    let last = cps.last().unwrap().0.finished_at;
    let as_of = crate::verify::Options {
        to: Some(last),
        now: Some(last + crate::verify::RUN_GRACE),
        ..Default::default()
    };
    let report = crate::verify::verify(Arc::new(store.clone()), &as_of)
        .await
        .unwrap();
    assert!(report.intact, "{:?}", report.problems);
    let cov = report.streams[0].coverage.as_ref().unwrap();
    assert_eq!(
        (cov.ok, cov.missed, cov.missed_recorded),
        (10, 5, 5),
        "{cov:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn slots_passed_during_a_long_run_are_recorded_as_missed() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let clock = Clock::following_tokio(t("2026-03-01T00:30:00Z"));
    // Each collection takes 13 hours: the run for 06:00 ends at 19:00,
    // after the 12:00 and 18:00 slots; the next run serves 00:00.
    let slow = agent(dir.path(), &store, clock, Duration::from_secs(13 * 3600)).await;
    run_until(slow, t("2026-03-02T05:00:00Z")).await;

    let recs = records(&store).await;
    let summary: Vec<_> = recs
        .iter()
        .map(|(p, _)| (p.status, p.scheduled_for, p.finished_at))
        .collect();
    assert_eq!(
        summary,
        [
            (
                Status::Ok,
                Some(t("2026-03-01T06:00:00Z")),
                t("2026-03-01T19:00:00Z")
            ),
            (
                Status::Missed,
                Some(t("2026-03-01T18:00:00Z")),
                t("2026-03-01T19:00:00Z")
            ),
            (
                Status::Failed,
                Some(t("2026-03-02T00:00:00Z")),
                t("2026-03-02T05:00:05Z")
            ),
        ]
    );
    let (missed, payload) = &recs[1];
    assert_eq!(missed.trigger, Trigger::Scheduled);
    assert_eq!(payload["reason"], "the previous run was still in progress");
    assert_eq!(
        payload["slots"],
        json!([t("2026-03-01T12:00:00Z"), t("2026-03-01T18:00:00Z")])
    );
    // The run for 00:00 was in flight at the stop, and had the grace
    // period (5 s) to finish: cancelled, it is recorded as failed, and its
    // run still checkpointed.
    assert!(recs[2].0.error.as_deref().unwrap().contains("cancelled"));
    let cps = checkpoints(&store).await;
    let listed: Vec<usize> = cps.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        listed,
        [2, 1],
        "the overrun run lists its record and the missed one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_refuses_writes_is_unready_and_its_slots_are_recorded_failed_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switched {
        inner: MemStore::new(),
        down: Arc::new(AtomicBool::new(false)),
    };
    let clock = Clock::following_tokio(t("2026-03-01T00:30:00Z"));
    let agent = agent_on(dir.path(), Arc::new(store.clone()), clock, Duration::ZERO).await;
    let metrics = agent.metrics().clone();

    // Before any slot: the stream is published, never successful.
    let ready = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(run(agent, ready.clone(), stop.clone()));
    clock.sleep_until(t("2026-03-01T01:00:00Z")).await;
    let text = metrics.render();
    assert!(
        text.contains(
            "exhibit_last_success_timestamp_seconds{collector=\"tick\",stream=\"tick/only\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "exhibit_stream_expected_interval_seconds{collector=\"tick\",stream=\"tick/only\"} 21600"
        ),
        "{text}"
    );

    // 06:00 is kept; then the store refuses writes for the 12:00 and 18:00
    // slots, and comes back at 19:00.
    clock.sleep_until(t("2026-03-01T07:00:00Z")).await;
    assert_eq!(metrics.store_unwritable(), None);
    store.down.store(true, Ordering::SeqCst);
    clock.sleep_until(t("2026-03-01T12:00:01Z")).await;
    let why = metrics
        .store_unwritable()
        .expect("unready once a write failed");
    assert!(why.contains("Read-only file system"), "{why}");
    clock.sleep_until(t("2026-03-01T19:00:00Z")).await;
    assert!(metrics.store_unwritable().is_some(), "still unready");
    let text = metrics.render();
    assert!(
        text.contains(
            "exhibit_stream_write_errors_total{collector=\"tick\",stream=\"tick/only\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("exhibit_store_writable 0"), "{text}");
    assert!(text.contains("exhibit_records_pending 2"), "{text}");
    store.down.store(false, Ordering::SeqCst);
    // Within the retry interval, the refused records are written and the
    // agent is ready again, long before the next slot.
    clock.sleep_until(t("2026-03-01T19:00:10Z")).await;
    assert_eq!(metrics.store_unwritable(), None);
    assert!(ready.load(Ordering::SeqCst));
    assert!(metrics.render().contains("exhibit_store_writable 1"));
    clock.sleep_until(t("2026-03-02T01:00:00Z")).await;
    stop.cancel();
    daemon.await.unwrap().unwrap();

    let recs = records(&store.inner).await;
    let summary: Vec<_> = recs
        .iter()
        .map(|(p, _)| (p.status, p.scheduled_for, p.finished_at))
        .collect();
    assert_eq!(
        summary,
        [
            (
                Status::Ok,
                Some(t("2026-03-01T06:00:00Z")),
                t("2026-03-01T06:00:00Z")
            ),
            (
                Status::Failed,
                Some(t("2026-03-01T12:00:00Z")),
                t("2026-03-01T12:00:00Z")
            ),
            (
                Status::Failed,
                Some(t("2026-03-01T18:00:00Z")),
                t("2026-03-01T18:00:00Z")
            ),
            (
                Status::Ok,
                Some(t("2026-03-02T00:00:00Z")),
                t("2026-03-02T00:00:00Z")
            ),
        ],
        "the refused slots are recorded as failed, in order, and nothing as missed"
    );
    for (p, payload) in &recs[1..3] {
        let error = p.error.as_deref().unwrap();
        assert!(error.contains("store is not writable"), "{error}");
        assert!(error.contains("Read-only file system"), "{error}");
        assert_eq!(payload["error_kind"], "store");
        assert_eq!(p.trigger, Trigger::Scheduled);
    }
    // Verified as of the last record (the period ends now by default, and
    // this agent's clock is not the system's).
    let last = recs.iter().map(|(p, _)| p.finished_at).max().unwrap();
    let as_of = crate::verify::Options {
        to: Some(last),
        now: Some(last + crate::verify::RUN_GRACE),
        ..Default::default()
    };
    let report = crate::verify::verify(Arc::new(store.inner.clone()), &as_of)
        .await
        .unwrap();
    assert!(report.intact, "{:?}", report.problems);
    let cov = report.streams[0].coverage.as_ref().unwrap();
    assert_eq!((cov.ok, cov.missed), (2, 0), "{cov:?}");
}

#[tokio::test(start_paused = true)]
async fn refused_records_are_written_before_the_next_record_of_their_stream() {
    // Without the retry (the store is back just before a slot), the next
    // write of the stream writes the refused record first: the chain keeps
    // the order of the attempts.
    let dir = tempfile::tempdir().unwrap();
    let store = Switched {
        inner: MemStore::new(),
        down: Arc::new(AtomicBool::new(false)),
    };
    let clock = Clock::following_tokio(t("2026-03-01T05:59:58Z"));
    let agent = agent_on(dir.path(), Arc::new(store.clone()), clock, Duration::ZERO).await;
    let ready = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(run(agent.clone(), ready, stop.clone()));
    clock.sleep_until(t("2026-03-01T05:59:59Z")).await;
    store.down.store(true, Ordering::SeqCst);
    clock.sleep_until(t("2026-03-01T06:00:01Z")).await;
    assert_eq!(agent.pending().await, 1);
    clock.sleep_until(t("2026-03-01T11:59:59Z")).await;
    store.down.store(false, Ordering::SeqCst);
    clock.sleep_until(t("2026-03-01T12:00:01Z")).await;
    stop.cancel();
    daemon.await.unwrap().unwrap();
    let recs = records(&store.inner).await;
    let slots: Vec<_> = recs
        .iter()
        .map(|(p, _)| (p.seq, p.status, p.scheduled_for))
        .collect();
    assert_eq!(
        slots,
        [
            (1, Status::Failed, Some(t("2026-03-01T06:00:00Z"))),
            (2, Status::Ok, Some(t("2026-03-01T12:00:00Z"))),
        ]
    );
    let report = crate::verify::verify(Arc::new(store.inner.clone()), &Default::default())
        .await
        .unwrap();
    assert!(report.intact, "{:?}", report.problems);
}
