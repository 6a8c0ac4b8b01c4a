//! Fixtures for the checks' tests: a small store written by the real
//! [`Writer`] into a [`MemStore`] at known times, and the means to tamper
//! with its objects and to run one check over the result.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::load::{Loaded, load};
use super::{Findings, Options};
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::keys::{PublicKey, Signer};
use crate::evidence::layout;
use crate::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, CollectorInfo, RECORD_PREDICATE_TYPE, RecordPredicate, Statement,
    Status, Trigger, peek, seal,
};
use crate::store::Store;
use crate::store::mem::MemStore;
use crate::writer::{Entry, Run, Writer};

/// Every object of a store, by key.
pub(super) type Objects = BTreeMap<String, Vec<u8>>;

/// The streams of [`Fixture::standard`].
pub(super) const STREAMS: [&str; 2] = ["iam/111", "git/app"];

/// Day 0 of every fixture, midnight UTC.
pub(super) fn base() -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse().expect("valid")
}

/// Midnight of day `day`: the `@daily` slot a run of that day serves.
pub(super) fn day(day: i64) -> DateTime<Utc> {
    base() + Duration::days(day)
}

thread_local! {
    static NOW: Cell<DateTime<Utc>> = Cell::new(base());
}

/// The writer's clock: this thread's time, one second later at each
/// reading, so that whatever a run writes is in order and inside its run.
fn clock() -> DateTime<Utc> {
    NOW.with(|now| {
        let t = now.get();
        now.set(t + Duration::seconds(1));
        t
    })
}

/// A store being written, and the key that signs it.
pub(super) struct Fixture {
    /// The store.
    pub store: MemStore,
    /// Its writer, on the fixture's clock.
    pub writer: Writer,
    /// The writer's key.
    pub signer: Arc<Signer>,
    /// The keys it retired, oldest first.
    pub retired: Vec<PublicKey>,
}

impl Fixture {
    /// An empty store with a fresh key.
    pub async fn new() -> Self {
        Self::open(MemStore::new(), Arc::new(Signer::generate()), Vec::new()).await
    }

    async fn open(store: MemStore, signer: Arc<Signer>, retired: Vec<PublicKey>) -> Self {
        let writer =
            Writer::open_with_retired(Arc::new(store.clone()), signer.clone(), &retired, "agent")
                .await
                .expect("writer opens")
                .with_clock(crate::clock::Clock::from_fn(clock));
        Fixture {
            store,
            writer,
            signer,
            retired,
        }
    }

    /// Days 0, 1 and 2, each one run writing one `ok` record to each of
    /// [`STREAMS`] and its checkpoint.
    pub async fn standard() -> Self {
        let fx = Self::new().await;
        for d in 0..3 {
            fx.run(d, &STREAMS).await;
        }
        fx
    }

    /// A run on day `d` writing one `ok` record to each of `streams`;
    /// returns its checkpoint's key.
    pub async fn run(&self, d: i64, streams: &[&str]) -> String {
        let entries = streams.iter().map(|s| entry(s, d, Status::Ok)).collect();
        self.run_entries(d, entries).await
    }

    /// A run on day `d` writing `entries` (their times set by the clock);
    /// returns its checkpoint's key.
    pub async fn run_entries(&self, d: i64, entries: Vec<Entry>) -> String {
        let run = self.unfinished_run(d, entries).await;
        self.writer.checkpoint(run).await.expect("checkpoint")
    }

    /// A run on day `d` writing `entries`, interrupted before its
    /// checkpoint.
    pub async fn unfinished_run(&self, d: i64, entries: Vec<Entry>) -> Run {
        self.unfinished_run_at(day(d), entries).await
    }

    /// A run that starts at `at` and writes `entries`, interrupted before
    /// its checkpoint.
    pub async fn unfinished_run_at(&self, at: DateTime<Utc>, entries: Vec<Entry>) -> Run {
        NOW.with(|now| now.set(at));
        let run = self.writer.begin_run(Trigger::Scheduled);
        for mut e in entries {
            let at = self.writer.now();
            e.predicate.started_at = at;
            e.predicate.finished_at = at;
            self.writer.append(&run, e).await.expect("append");
        }
        run
    }

    /// Retires the key in favour of `new` on day `d`; the fixture then
    /// writes with `new`.
    pub async fn rotate(self, d: i64, new: Arc<Signer>) -> (Self, String) {
        NOW.with(|now| now.set(day(d)));
        let at = self.writer.rotate_key(&new).await.expect("rotates");
        let store = self.store.clone();
        let mut retired = self.retired.clone();
        retired.push(self.signer.public());
        drop(self);
        (Self::open(store, new, retired).await, at)
    }

    /// The same store and key opened by a new writer, as the next process
    /// would.
    pub async fn reopen(self) -> Self {
        let (store, signer, retired) = (
            self.store.clone(),
            self.signer.clone(),
            self.retired.clone(),
        );
        drop(self);
        Self::open(store, signer, retired).await
    }

    /// A copy of every object, to tamper with.
    pub fn objects(&self) -> Objects {
        self.store.snapshot()
    }

    /// Where the writer published its public key.
    pub fn key_file(&self) -> String {
        layout::public_key(self.signer.key_id())
    }
}

/// An `ok` record of `stream` serving day `d`'s `@daily` slot, its payload
/// naming both.
pub(super) fn entry(stream: &str, d: i64, status: Status) -> Entry {
    let collector = CollectorInfo {
        name: stream.split('/').next().unwrap_or(stream).into(),
        kind: "test".into(),
        version: "1".into(),
    };
    let payload = json!({"stream": stream, "day": d});
    let mut e = Entry::new(stream, collector, status, day(d), payload);
    let p = &mut e.predicate;
    p.source = json!({"stream": stream});
    p.attempts = 1;
    p.criteria = vec!["CC6.1".into()];
    p.schedule = Some("@daily".into());
    p.scheduled_for = Some(day(d));
    e
}

/// The view a check gets of `objects`.
pub(super) async fn load_objects(objects: Objects, opts: &Options) -> Loaded {
    let store: Arc<dyn Store> = Arc::new(MemStore::from_objects(objects));
    load(store, opts).await.expect("a memory store reads")
}

/// Each problem a check found as (location, code), sorted.
pub(super) fn problems(found: &Findings) -> Vec<(String, &'static str)> {
    let mut p: Vec<_> = found
        .problems
        .iter()
        .map(|p| (p.location.clone(), p.code))
        .collect();
    p.sort();
    p.dedup();
    p
}

/// Each warning a check found as (location, code), in order.
pub(super) fn warnings(found: &Findings) -> Vec<(String, &'static str)> {
    found
        .warnings
        .iter()
        .map(|p| (p.location.clone(), p.code))
        .collect()
}

/// Replaces the statement at `key` with an edited one signed by `signer`:
/// what someone holding the key could write.
fn resign<P: Serialize + DeserializeOwned>(
    objects: &mut Objects,
    key: &str,
    predicate_type: &str,
    signer: &Signer,
    edit: impl FnOnce(&mut Statement<P>),
) {
    let mut st: Statement<P> = peek(&objects[key]).expect("a statement");
    edit(&mut st);
    let bytes = seal(st.subject, predicate_type, &st.predicate, signer);
    objects.insert(key.to_string(), bytes);
}

/// [`resign`] for a record.
pub(super) fn resign_record(
    objects: &mut Objects,
    key: &str,
    signer: &Signer,
    edit: impl FnOnce(&mut Statement<RecordPredicate>),
) {
    resign(objects, key, RECORD_PREDICATE_TYPE, signer, edit);
}

/// [`resign`] for a checkpoint.
pub(super) fn resign_checkpoint(
    objects: &mut Objects,
    key: &str,
    signer: &Signer,
    edit: impl FnOnce(&mut Statement<CheckpointPredicate>),
) {
    resign(objects, key, CHECKPOINT_PREDICATE_TYPE, signer, edit);
}

/// The checkpoint keys, oldest first.
pub(super) fn checkpoints(objects: &Objects) -> Vec<String> {
    let mut keys: Vec<(DateTime<Utc>, String)> = objects
        .iter()
        .filter(|(k, _)| layout::is_checkpoint(k))
        .map(|(k, v)| {
            let st: Statement<CheckpointPredicate> = peek(v).expect("a checkpoint");
            (st.predicate.finished_at, k.clone())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}
