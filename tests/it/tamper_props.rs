//! Property test: every random tampering of a store is detected by
//! `verify`. Tamperings: a flipped bit anywhere in any object, a deleted
//! object, a record duplicated into another stream, two records of a stream
//! swapped, a record replayed from another store signed by the same key, a
//! record re-signed with moved timestamps by someone holding the key.
//!
//! Deleting the newest checkpoint (truncating the head) is outside this
//! space on purpose: no chain can prove its own head was not cut off; the
//! S3 store's Object Lock and checkpoint timestamps answer that.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use exhibit::evidence::keys::Signer;
use exhibit::evidence::record::{
    CollectorInfo, RECORD_PREDICATE_TYPE, RecordPredicate, Statement, Status, Trigger, peek, seal,
};
use exhibit::store::Store;
use exhibit::store::mem::MemStore;
use exhibit::verify::{Options, verify};
use exhibit::writer::{Entry, Writer};

type Objects = BTreeMap<String, Vec<u8>>;

struct Fixture {
    objects: Objects,
    foreign: Objects,
    signer: Arc<Signer>,
    newest_checkpoint: String,
}

fn build(signer: Arc<Signer>, salt: &str, runs: usize) -> Objects {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = MemStore::new();
        let writer = Writer::open(Arc::new(store.clone()), signer, "agent")
            .await
            .unwrap();
        for r in 0..runs {
            let run = writer.begin_run(Trigger::Manual);
            for s in ["iam/111", "iam/222", "git/app"] {
                let now = chrono::Utc::now();
                let mut entry = Entry::new(
                    s,
                    CollectorInfo {
                        name: s.split('/').next().unwrap().into(),
                        kind: "test".into(),
                        version: "1".into(),
                    },
                    if r == 2 { Status::Failed } else { Status::Ok },
                    now,
                    json!({"salt": salt, "run": r, "stream": s, "users": [{"name": "bob", "mfa": r % 2 == 0}]}),
                );
                entry.predicate.source = json!({"account": s});
                entry.predicate.attempts = 1;
                entry.predicate.criteria = vec!["CC6.1".into()];
                entry.predicate.schedule = Some("@daily".into());
                writer.append(&run, entry).await.unwrap();
            }
            writer.checkpoint(run).await.unwrap();
        }
        store.snapshot()
    })
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let signer = Arc::new(Signer::generate());
        let objects = build(signer.clone(), "home", 4);
        let foreign = build(signer.clone(), "elsewhere", 4);
        let newest_checkpoint = objects
            .iter()
            .filter(|(k, _)| k.starts_with("checkpoints/"))
            .max_by_key(|(_, v)| {
                peek::<exhibit::evidence::checkpoint::CheckpointPredicate>(v)
                    .unwrap()
                    .predicate
                    .finished_at
            })
            .unwrap()
            .0
            .clone();
        Fixture {
            objects,
            foreign,
            signer,
            newest_checkpoint,
        }
    })
}

fn verdict(objects: Objects) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemStore::from_objects(objects));
        verify(store, &Options::default()).await.unwrap().intact
    })
}

#[derive(Debug, Clone)]
enum Tamper {
    FlipBit { object: usize, at: usize, bit: u8 },
    Delete { object: usize },
    CopyToOtherStream { record: usize, target: usize },
    Swap { stream: usize, a: usize, b: usize },
    ReplayForeign { record: usize },
    Backdate { record: usize, seconds: i64 },
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        3 => (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(object, at, bit)| Tamper::FlipBit { object, at, bit }),
        2 => any::<usize>().prop_map(|object| Tamper::Delete { object }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(record, target)| Tamper::CopyToOtherStream { record, target }),
        1 => (0usize..3, 0usize..4, 1usize..4).prop_map(|(stream, a, d)| Tamper::Swap { stream, a, b: (a + d) % 4 }),
        1 => any::<usize>().prop_map(|record| Tamper::ReplayForeign { record }),
        1 => (any::<usize>(), prop_oneof![-86_400i64..-1, 1i64..86_400]).prop_map(|(record, seconds)| Tamper::Backdate { record, seconds }),
    ]
}

const STREAMS: [&str; 3] = ["iam/111", "iam/222", "git/app"];

fn records(objects: &Objects) -> Vec<String> {
    objects
        .keys()
        .filter(|k| k.starts_with("records/"))
        .cloned()
        .collect()
}

/// Applies a tampering; returns false when it is outside the space (see
/// the module comment) or changes nothing.
fn apply(f: &Fixture, t: &Tamper, o: &mut Objects) -> bool {
    match t {
        Tamper::FlipBit { object, at, bit } => {
            let key = o.keys().nth(object % o.len()).unwrap().clone();
            let bytes = o.get_mut(&key).unwrap();
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            true
        }
        Tamper::Delete { object } => {
            let key = o.keys().nth(object % o.len()).unwrap().clone();
            if key == f.newest_checkpoint {
                return false;
            }
            o.remove(&key);
            true
        }
        Tamper::CopyToOtherStream { record, target } => {
            let rs = records(o);
            let from = &rs[record % rs.len()];
            let stream = STREAMS[target % 3];
            if from.contains(&format!("records/{stream}/")) {
                return false;
            }
            let next = rs
                .iter()
                .filter(|k| k.contains(&format!("records/{stream}/")))
                .count()
                + 1;
            let bytes = o[from].clone();
            o.insert(format!("records/{stream}/{next:012}.json"), bytes);
            true
        }
        Tamper::Swap { stream, a, b } => {
            let s = STREAMS[*stream];
            let ka = format!("records/{s}/{:012}.json", a + 1);
            let kb = format!("records/{s}/{:012}.json", b + 1);
            let va = o[&ka].clone();
            let vb = o[&kb].clone();
            o.insert(ka, vb);
            o.insert(kb, va);
            true
        }
        Tamper::ReplayForeign { record } => {
            let rs = records(&f.foreign);
            let from = &rs[record % rs.len()];
            // Into the same place (replacing) or appended after the head.
            let replaced = o.insert(from.clone(), f.foreign[from].clone());
            replaced.is_some()
        }
        Tamper::Backdate { record, seconds } => {
            let rs = records(o);
            let key = rs[record % rs.len()].clone();
            let st: Statement<RecordPredicate> = peek(&o[&key]).unwrap();
            let mut p = st.predicate.clone();
            p.started_at += chrono::Duration::seconds(*seconds);
            p.finished_at += chrono::Duration::seconds(*seconds);
            o.insert(key, seal(st.subject, RECORD_PREDICATE_TYPE, &p, &f.signer));
            true
        }
    }
}

fn cases() -> u32 {
    std::env::var("EXHIBIT_TAMPER_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn the_untampered_store_verifies() {
    assert!(verdict(fixture().objects.clone()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_tampering_is_detected(t in tamper()) {
        let f = fixture();
        let mut o = f.objects.clone();
        prop_assume!(apply(f, &t, &mut o));
        prop_assert!(!verdict(o), "undetected: {:?}", t);
    }
}
