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
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// An agent with one instance, `tick`, every six hours, whose collections
/// take `takes`.
async fn agent(dir: &Path, store: &MemStore, clock: Clock, takes: Duration) -> Agent {
    let text = "[agent]\nid = \"paused\"\ncatch_up = true\nshutdown_grace = \"5s\"\n\n\
        [[collectors]]\nname = \"tick\"\nkind = \"command\"\nschedule = \"0 */6 * * *\"\ncommand = [\"true\"]\n";
    let config = crate::config::parse(&dir.join("exhibit.toml"), text.to_string()).unwrap();
    let mut instances = crate::collect::instance::build_all(&config).unwrap();
    instances[0].collector = Box::new(Tick { takes });
    instances[0].timeout = Duration::from_secs(86_400);
    Agent::assemble(config, instances, Arc::new(store.clone()), clock)
        .await
        .unwrap()
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
