//! Property test: every random tampering of a store is detected by
//! `verify` (its verdict is not INTACT). Tamperings: a flipped bit anywhere
//! in any object, a deleted object (the newest checkpoint included), any
//! set of checkpoints deleted, a record duplicated into another stream, two
//! records of a stream swapped, a record replayed from another store signed
//! by the same key, a record re-signed with moved timestamps by someone
//! holding the key, and the newest runs deleted whole (records, payloads
//! and checkpoints) under `--known-head`.
//!
//! Deleting whole runs at the head *without* a head noted earlier is
//! outside this space on purpose: no chain can prove its own head was not
//! cut off; the pinned head (`verify --known-head`), the S3 store's Object
//! Lock and checkpoint timestamps answer that.

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
    /// The checkpoints, oldest first.
    checkpoints: Vec<String>,
    /// The head: the SHA-256 of the newest checkpoint.
    head: String,
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
        let mut checkpoints: Vec<(chrono::DateTime<chrono::Utc>, String)> = objects
            .iter()
            .filter(|(k, _)| k.starts_with("checkpoints/"))
            .map(|(k, v)| {
                let p = peek::<exhibit::evidence::checkpoint::CheckpointPredicate>(v)
                    .unwrap()
                    .predicate;
                (p.finished_at, k.clone())
            })
            .collect();
        checkpoints.sort();
        let checkpoints: Vec<String> = checkpoints.into_iter().map(|(_, k)| k).collect();
        let head = exhibit::evidence::sha256_hex(&objects[checkpoints.last().unwrap()]);
        Fixture {
            objects,
            foreign,
            signer,
            checkpoints,
            head,
        }
    })
}

/// Whether the verdict on `objects` is INTACT, with the head noted before
/// any tampering when `pinned`.
fn verdict_with(objects: Objects, pinned: bool) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        known_head: pinned.then(|| fixture().head.clone()),
        ..Default::default()
    };
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemStore::from_objects(objects));
        verify(store, &opts).await.unwrap().passed()
    })
}

fn verdict(objects: Objects) -> bool {
    verdict_with(objects, false)
}

#[derive(Debug, Clone)]
enum Tamper {
    FlipBit { object: usize, at: usize, bit: u8 },
    Delete { object: usize },
    CopyToOtherStream { record: usize, target: usize },
    Swap { stream: usize, a: usize, b: usize },
    ReplayForeign { record: usize },
    Backdate { record: usize, seconds: i64 },
    DeleteCheckpoints { mask: u8 },
    Truncate { runs: usize },
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        3 => (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(object, at, bit)| Tamper::FlipBit { object, at, bit }),
        2 => any::<usize>().prop_map(|object| Tamper::Delete { object }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(record, target)| Tamper::CopyToOtherStream { record, target }),
        1 => (0usize..3, 0usize..4, 1usize..4).prop_map(|(stream, a, d)| Tamper::Swap { stream, a, b: (a + d) % 4 }),
        1 => any::<usize>().prop_map(|record| Tamper::ReplayForeign { record }),
        1 => (any::<usize>(), prop_oneof![-86_400i64..-1, 1i64..86_400]).prop_map(|(record, seconds)| Tamper::Backdate { record, seconds }),
        1 => (1u8..16).prop_map(|mask| Tamper::DeleteCheckpoints { mask }),
        1 => (1usize..4).prop_map(|runs| Tamper::Truncate { runs }),
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
            o.remove(&key);
            true
        }
        Tamper::DeleteCheckpoints { mask } => {
            for (i, k) in f.checkpoints.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    o.remove(k);
                }
            }
            true
        }
        Tamper::Truncate { runs } => {
            // The newest `runs` runs, whole: checkpoints, records, payloads.
            for k in &f.checkpoints[f.checkpoints.len() - runs..] {
                let cp = peek::<exhibit::evidence::checkpoint::CheckpointPredicate>(&o[k]).unwrap();
                for s in &cp.subject {
                    let rec: Statement<RecordPredicate> = peek(&o[&s.name]).unwrap();
                    for blob in &rec.subject {
                        o.remove(&blob.name);
                    }
                    o.remove(&s.name);
                }
                o.remove(k);
            }
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
    assert!(verdict_with(fixture().objects.clone(), true));
}

/// Truncation is outside the space without a pinned head: the shorter
/// store is consistent. With the head noted before, it fails.
#[test]
fn truncating_whole_runs_needs_the_known_head() {
    let f = fixture();
    let mut o = f.objects.clone();
    assert!(apply(f, &Tamper::Truncate { runs: 1 }, &mut o));
    assert!(verdict(o.clone()), "a shorter store alone is consistent");
    assert!(!verdict_with(o, true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_tampering_is_detected(t in tamper()) {
        let f = fixture();
        let mut o = f.objects.clone();
        prop_assume!(apply(f, &t, &mut o));
        let pinned = matches!(t, Tamper::Truncate { .. });
        prop_assert!(!verdict_with(o, pinned), "undetected: {:?}", t);
    }
}

// Key windows. A store whose key was rotated half-way, and what someone
// holding only the new key (or only write access) can do to it: every
// such tampering is detected too.

struct Rotated {
    objects: Objects,
    old: Arc<Signer>,
    new: Arc<Signer>,
    rotation: String,
}

fn rotated() -> &'static Rotated {
    static R: std::sync::OnceLock<Rotated> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let old = Arc::new(Signer::generate());
        let new = Arc::new(Signer::generate());
        rt.block_on(async {
            let store = MemStore::new();
            let writer = Writer::open(Arc::new(store.clone()), old.clone(), "agent")
                .await
                .unwrap();
            write_runs(&writer, 0..2).await;
            let rotation = writer.rotate_key(&new).await.unwrap();
            drop(writer);
            let writer = Writer::open_with_retired(
                Arc::new(store.clone()),
                new.clone(),
                &[old.public()],
                "agent",
            )
            .await
            .unwrap();
            write_runs(&writer, 2..4).await;
            Rotated {
                objects: store.snapshot(),
                old: old.clone(),
                new: new.clone(),
                rotation,
            }
        })
    })
}

async fn write_runs(writer: &Writer, runs: std::ops::Range<usize>) {
    for r in runs {
        let run = writer.begin_run(Trigger::Manual);
        for s in STREAMS {
            let mut entry = Entry::new(
                s,
                CollectorInfo {
                    name: s.split('/').next().unwrap().into(),
                    kind: "test".into(),
                    version: "1".into(),
                },
                Status::Ok,
                chrono::Utc::now(),
                json!({"run": r, "stream": s}),
            );
            entry.predicate.schedule = Some("@daily".into());
            writer.append(&run, entry).await.unwrap();
        }
        writer.checkpoint(run).await.unwrap();
    }
}

/// Whether `objects` verify free of integrity problems under `opts` (a key
/// window is integrity; completeness is the truncation properties' part).
fn intact_under(objects: Objects, opts: &Options) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemStore::from_objects(objects));
        verify(store, opts).await.unwrap().intact
    })
}

#[derive(Debug, Clone)]
enum KeyTamper {
    /// Every record and checkpoint re-signed by the new key, links and
    /// listings made whole, the rotation and the last `drop` checkpoints
    /// left out; judged with the store's keys/ or the auditor's two keys.
    RewriteWithoutRotation { drop: usize, given: bool },
    /// A record of before the rotation, re-dated up to a day earlier and
    /// signed by the new key, as a stream of its own.
    Backdated { record: usize, seconds: i64 },
    /// A key no rotation introduced, added to keys/.
    StrayKey,
}

fn key_tamper() -> impl Strategy<Value = KeyTamper> {
    prop_oneof![
        2 => (0usize..3, any::<bool>()).prop_map(|(drop, given)| KeyTamper::RewriteWithoutRotation { drop, given }),
        2 => (any::<usize>(), 0i64..86_400).prop_map(|(record, seconds)| KeyTamper::Backdated { record, seconds }),
        1 => Just(KeyTamper::StrayKey),
    ]
}

/// Applies a key tampering; returns the options the auditor verifies with.
fn apply_key_tamper(r: &Rotated, t: &KeyTamper, o: &mut Objects) -> Options {
    match t {
        KeyTamper::RewriteWithoutRotation { drop, given } => {
            let mut checkpoints: Vec<(chrono::DateTime<chrono::Utc>, String)> = o
                .iter()
                .filter(|(k, _)| exhibit::evidence::layout::is_checkpoint(k))
                .map(|(k, v)| {
                    let st: Statement<exhibit::evidence::checkpoint::CheckpointPredicate> =
                        peek(v).unwrap();
                    (st.predicate.finished_at, k.clone())
                })
                .collect();
            checkpoints.sort();
            let mut dropped = vec![r.rotation.clone()];
            dropped.extend(checkpoints.iter().rev().take(*drop).map(|(_, k)| k.clone()));
            crate::overclaims::keys::rewrite(o, &r.new, &dropped);
            if *given {
                let mut ring = exhibit::evidence::keys::KeyRing::default();
                ring.insert(r.old.public());
                ring.insert(r.new.public());
                return Options {
                    keys: Some(ring),
                    ..Options::default()
                };
            }
        }
        KeyTamper::Backdated { record, seconds } => {
            let before: Vec<String> = records(o)
                .into_iter()
                .filter(|k| {
                    let env: serde_json::Value = serde_json::from_slice(&o[k]).unwrap();
                    env["signatures"][0]["keyid"] == r.old.key_id()
                })
                .collect();
            let key = &before[record % before.len()];
            let st: Statement<RecordPredicate> = peek(&o[key]).unwrap();
            let mut p = st.predicate.clone();
            p.stream = "forged/x".into();
            p.seq = 1;
            p.prev = None;
            p.started_at -= chrono::Duration::seconds(*seconds);
            p.finished_at -= chrono::Duration::seconds(*seconds);
            o.insert(
                "records/forged/x/000000000001.json".into(),
                seal(st.subject, RECORD_PREDICATE_TYPE, &p, &r.new),
            );
        }
        KeyTamper::StrayKey => {
            let stray = Signer::generate();
            o.insert(
                format!("keys/{}.pub", stray.key_id()),
                stray.public().to_pem().into_bytes(),
            );
        }
    }
    Options::default()
}

#[test]
fn the_rotated_store_verifies_with_its_keys_or_the_auditors() {
    let r = rotated();
    assert!(verdict(r.objects.clone()));
    let mut ring = exhibit::evidence::keys::KeyRing::default();
    ring.insert(r.old.public());
    ring.insert(r.new.public());
    let given = Options {
        keys: Some(ring),
        ..Options::default()
    };
    assert!(intact_under(r.objects.clone(), &given));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases().min(256), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_key_window_violation_is_detected(t in key_tamper()) {
        let r = rotated();
        let mut o = r.objects.clone();
        let opts = apply_key_tamper(r, &t, &mut o);
        prop_assert!(!intact_under(o, &opts), "undetected: {:?}", t);
    }
}
