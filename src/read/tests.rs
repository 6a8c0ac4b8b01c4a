use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt as _;
use serde_json::json;

use super::*;
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::evidence::keys::{KeyRing, Signer};
use crate::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, CollectorInfo, Digest, PayloadInfo, RECORD_PREDICATE_TYPE,
    RecordPredicate, STATEMENT_TYPE, Status, Subject, Trigger, seal,
};
use crate::store::mem::MemStore;

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
}

/// What a record of `stream` finished `minute` minutes into the day claims.
fn claim(stream: &str, seq: u64, status: Status, minute: i64) -> RecordPredicate {
    let finished = at(minute);
    RecordPredicate {
        stream: stream.into(),
        seq,
        prev: None,
        agent: "test".into(),
        run_id: format!("run-{seq}"),
        trigger: Trigger::Manual,
        schedule: Some("@daily".into()),
        scheduled_for: None,
        collector: CollectorInfo {
            name: "t".into(),
            kind: "command".into(),
            version: "0".into(),
        },
        source: json!({}),
        started_at: finished,
        finished_at: finished,
        status,
        error: None,
        attempts: 1,
        payload: PayloadInfo {
            size: 0,
            media_type: "application/json".into(),
        },
        criteria: vec!["CC6.1".into()],
        cursor: None,
        assessment: None,
        continues: None,
    }
}

/// Writes a signed record of `stream` with `payload`, and the payload.
async fn write(store: &MemStore, signer: &Signer, p: RecordPredicate, payload: serde_json::Value) {
    let bytes = serde_json::to_vec(&payload).unwrap();
    let sha = sha256_hex(&bytes);
    let _ = store.put_new(&layout::blob(&sha), &bytes).await;
    let subject = vec![Subject {
        name: layout::blob(&sha),
        digest: Digest { sha256: sha },
    }];
    let key = layout::record(&p.stream, p.seq);
    let sealed = seal(subject, RECORD_PREDICATE_TYPE, &p, signer);
    store.put_new(&key, &sealed).await.unwrap();
}

/// Signs a checkpoint listing every record of `store` as it is, so that a
/// sample has a population to draw from.
async fn checkpoint_everything(store: &MemStore) {
    let mut subject = Vec::new();
    for key in store.list(layout::RECORDS).await.unwrap() {
        let bytes = store.get(&key).await.unwrap().unwrap();
        let sha256 = sha256_hex(&bytes);
        subject.push(Subject {
            name: key,
            digest: Digest { sha256 },
        });
    }
    let p = CheckpointPredicate {
        agent: "test".into(),
        run_id: "run".into(),
        trigger: Trigger::Manual,
        started_at: at(0),
        finished_at: at(9),
        prev: None,
        rotation: None,
        clock_skew: None,
        acknowledged: Vec::new(),
    };
    let sealed = seal(subject, CHECKPOINT_PREDICATE_TYPE, &p, &Signer::generate());
    let key = layout::checkpoint(at(9), "run");
    store.put_new(&key, &sealed).await.unwrap();
}

/// Writes an unsigned record naming these subjects, as a forger would, at
/// the place it claims.
async fn forge(store: &MemStore, p: RecordPredicate, subject: serde_json::Value) {
    let key = layout::record(&p.stream, p.seq);
    forge_at(store, &key, p, subject).await;
}

async fn forge_at(store: &MemStore, key: &str, p: RecordPredicate, subject: serde_json::Value) {
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": RECORD_PREDICATE_TYPE,
        "predicate": p,
    });
    let env = Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        payload: base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&statement).unwrap()),
        signatures: vec![],
    };
    store.put_new(key, &env.to_bytes()).await.unwrap();
}

#[tokio::test]
async fn the_index_lists_streams_in_order_and_refresh_returns_what_landed() {
    let store = MemStore::new();
    let signer = Signer::generate();
    for (stream, seq) in [("a", 2), ("a/b", 1), ("a", 1)] {
        write(
            &store,
            &signer,
            claim(stream, seq, Status::Ok, 0),
            json!({}),
        )
        .await;
    }
    let stray = format!("{}stray.txt", layout::stream_prefix("a"));
    store.put_new(&stray, b"x").await.unwrap();
    let reader = Reader::new(Arc::new(store.clone()));
    // One stream alone is listed without its nested streams.
    assert_eq!(reader.seqs("a").await.unwrap(), Some(vec![1, 2]));
    assert_eq!(reader.seqs("none").await.unwrap(), None);

    let index = reader.index().await.unwrap();
    let streams: Vec<(&str, &[u64])> = index.streams().collect();
    assert_eq!(streams, vec![("a", &[1, 2][..]), ("a/b", &[1][..])]);
    assert_eq!((index.len(), index.records()), (2, 3));

    write(&store, &signer, claim("a", 3, Status::Ok, 1), json!({})).await;
    write(&store, &signer, claim("c", 1, Status::Ok, 1), json!({})).await;
    // Kept until refreshed.
    assert_eq!(reader.index().await.unwrap().records(), 3);
    let added = reader.refresh().await.unwrap();
    assert_eq!(added, vec![("a".to_string(), 3), ("c".to_string(), 1)]);
    assert_eq!(reader.index().await.unwrap().records(), 5);
    assert_eq!(reader.refresh().await.unwrap(), vec![]);
}

#[tokio::test]
async fn records_come_in_order_and_range_keeps_the_period() {
    let store = MemStore::new();
    let signer = Signer::generate();
    for seq in 1..=20 {
        let status = if seq % 5 == 0 {
            Status::Failed
        } else {
            Status::Ok
        };
        write(
            &store,
            &signer,
            claim("s", seq, status, seq as i64),
            json!({"n": seq}),
        )
        .await;
    }
    let reader = Reader::new(Arc::new(store));
    let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    let all: Vec<Record> = reader.records("s").try_collect().await.unwrap();
    assert_eq!(seqs(all.clone()), (1..=20).collect::<Vec<_>>());
    assert!(
        all.iter()
            .all(|r| r.flaw.is_none() && r.signed_by.is_none())
    );
    assert_eq!(all[0].sha256, sha256_hex(&all[0].bytes));
    let newest: Vec<Record> = reader.newest_first("s").try_collect().await.unwrap();
    assert_eq!(seqs(newest), (1..=20).rev().collect::<Vec<_>>());
    let period: Vec<Record> = reader.range("s", at(5), at(8)).try_collect().await.unwrap();
    assert_eq!(seqs(period), vec![5, 6, 7, 8]);

    let latest = reader.latest("s").await.unwrap().unwrap();
    assert_eq!((latest.seq, latest.status()), (20, Some(Status::Failed)));
    assert_eq!(
        reader.payload(&latest).await.unwrap(),
        Some(json!({"n": 20}))
    );
    assert!(reader.record("s", 21).await.unwrap().is_none());
    assert!(reader.latest("none").await.unwrap().is_none());
}

#[tokio::test]
async fn a_checking_reader_marks_what_its_keys_did_not_sign() {
    let store = MemStore::new();
    let signer = Signer::generate();
    write(
        &store,
        &signer,
        claim("s", 1, Status::Ok, 0),
        json!({"a": 1}),
    )
    .await;
    let mut ring = KeyRing::default();
    ring.insert(signer.public());
    let reader = Reader::checking(Arc::new(store.clone()), ring);
    let r = reader.record("s", 1).await.unwrap().unwrap();
    assert_eq!(r.signed_by.as_deref(), Some(signer.key_id()));
    assert_eq!(r.flaw, None);
    assert_eq!(reader.payload(&r).await.unwrap(), Some(json!({"a": 1})));

    let mut other = KeyRing::default();
    other.insert(Signer::generate().public());
    let reader = Reader::checking(Arc::new(store.clone()), other);
    let r = reader.record("s", 1).await.unwrap().unwrap();
    assert_eq!(r.signed_by, None);
    assert!(r.flaw.as_deref().unwrap().contains("unknown key"), "{r:?}");
    assert_eq!(r.predicate().unwrap().seq, 1, "what it claims is kept");

    // A payload blob that does not hash to its name.
    let forged = MemStore::from_objects(
        store
            .snapshot()
            .into_iter()
            .map(|(k, v)| {
                if layout::is_blob(&k) {
                    (k, b"{}".to_vec())
                } else {
                    (k, v)
                }
            })
            .collect(),
    );
    let mut ring = KeyRing::default();
    ring.insert(signer.public());
    let reader = Reader::checking(Arc::new(forged), ring);
    let r = reader.record("s", 1).await.unwrap().unwrap();
    let err = reader.payload(&r).await.unwrap_err().to_string();
    assert!(err.contains("does not hash to its name"), "{err}");
}

/// A store with one good record and every kind of malformed one after it.
async fn malformed_store() -> MemStore {
    let store = MemStore::new();
    let signer = Signer::generate();
    write(
        &store,
        &signer,
        claim("s", 1, Status::Ok, 1),
        json!({"a": 1}),
    )
    .await;
    let one = |d: &str| json!([{"name": "blobs/x", "digest": {"sha256": d}}]);
    forge(&store, claim("s", 2, Status::Ok, 2), one("x")).await;
    forge(&store, claim("s", 3, Status::Ok, 3), one("€")).await;
    forge(&store, claim("s", 4, Status::Ok, 4), json!([])).await;
    let two = json!([one("x")[0], one("x")[0]]);
    forge(&store, claim("s", 5, Status::Ok, 5), two).await;
    let misplaced = claim("s", 8, Status::Ok, 6);
    forge_at(
        &store,
        &layout::record("s", 7),
        misplaced,
        one(&"a".repeat(64)),
    )
    .await;
    store.put_new(&layout::record("s", 6), b"{").await.unwrap();
    store
        .put_new(&layout::record("t", 1), b"not json")
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn malformed_records_are_marked_never_panic() {
    let reader = Reader::new(Arc::new(malformed_store().await));
    let records: Vec<Record> = reader.records("s").try_collect().await.unwrap();
    let flaws: Vec<(u64, Option<&str>)> =
        records.iter().map(|r| (r.seq, r.flaw.as_deref())).collect();
    assert_eq!(flaws[0], (1, None));
    for (seq, flaw) in &flaws[1..] {
        assert!(flaw.is_some(), "record #{seq} is not marked");
    }
    let flaw = |seq: usize| flaws[seq - 1].1.unwrap();
    assert!(flaw(2).contains("\"x\" is not a SHA-256"), "{}", flaw(2));
    assert!(flaw(3).contains("is not a SHA-256"), "{}", flaw(3));
    assert!(flaw(4).contains("names 0"), "{}", flaw(4));
    assert!(flaw(5).contains("names 2"), "{}", flaw(5));
    assert!(flaw(6).contains("not a DSSE envelope"), "{}", flaw(6));
    assert!(flaw(7).contains("claims to be s #8"), "{}", flaw(7));
    for r in &records[1..5] {
        assert!(
            r.statement.is_some() && r.payload_key().is_none(),
            "#{}",
            r.seq
        );
        let err = reader.payload(r).await.unwrap_err();
        assert!(matches!(err, ReadError::Payload { .. }), "{err}");
    }
    assert!(records[5].statement.is_none());
    // Misplaced, but its payload is named: it can still be read (and is
    // missing here).
    assert_eq!(reader.payload(&records[6]).await.unwrap(), None);
}

#[tokio::test]
async fn every_reading_command_survives_malformed_records() {
    let store: Arc<dyn Store> = Arc::new(malformed_store().await);
    let reader = Reader::new(store.clone());

    let lines = crate::browse::list(&reader).await.unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].last_status, "ok", "s's last record is readable");
    assert_eq!(lines[1].stream, "t");
    assert_eq!(lines[1].last_status, "unreadable");
    assert!(
        lines[1]
            .last_error
            .as_deref()
            .unwrap()
            .contains("not a DSSE envelope")
    );
    let rendered = crate::browse::render_list(&lines);
    assert!(rendered.contains("unreadable"), "{rendered}");

    for seq in 2..=5 {
        let shown = crate::browse::show(&reader, &format!("s@{seq}"))
            .await
            .unwrap();
        assert!(shown.payload.is_none() && shown.flaw.is_some(), "#{seq}");
        let text = crate::browse::render_show(&shown);
        assert!(text.contains("Flaw     "), "{text}");
        assert!(text.contains("see the flaw above"), "{text}");
    }
    let err = crate::browse::show(&reader, "s@6").await.unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "{}: not a DSSE envelope: EOF while parsing an object at line 1 column 1",
            layout::record("s", 6)
        )
    );
    let shown = crate::browse::show(&reader, "s@1").await.unwrap();
    assert_eq!((shown.payload, shown.flaw), (Some(json!({"a": 1})), None));

    // diff: the newest records claim to hold snapshots they cannot show;
    // comparing them shows no payload rather than failing.
    let pair = crate::browse::pick_pair(&reader, "s", Some(1), Some(2))
        .await
        .unwrap();
    assert!(pair.newer.payload.is_none() && pair.newer.flaw.is_some());
    let err = crate::browse::pick_pair(&reader, "s", None, None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not a DSSE envelope"),
        "{err:#}"
    );

    let report = crate::report::build(store.clone(), at(0), &[])
        .await
        .unwrap();
    assert!(!report.intact);
    let s = report.streams.iter().find(|s| s.stream == "s").unwrap();
    assert_eq!(s.timeline.len(), 6, "the unreadable #6 is passed over");
    assert!(
        report.streams.iter().all(|s| s.stream != "t"),
        "t has no readable record"
    );

    let err = crate::oscal::assessment_results(store.clone(), at(0), at(10))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("is not a SHA-256"), "{err:#}");

    let dir = tempfile::tempdir().unwrap();
    let mem = malformed_store().await;
    checkpoint_everything(&mem).await;
    let store: Arc<dyn Store> = Arc::new(mem);
    let req = |streams: &[&str], size| crate::sample::Request {
        streams: streams.iter().map(|s| s.to_string()).collect(),
        from: at(0),
        to: at(10),
        size: Some(size),
        seed: "seed".into(),
    };
    let out = dir.path().join("b.tar.gz");
    let err = crate::sample::bundle(store.clone(), &req(&["s"], 7), &out)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not a DSSE envelope"),
        "{err:#}"
    );
    let err = crate::sample::bundle(store.clone(), &req(&["t"], 1), &out)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("cannot sample"), "{err:#}");
}

#[tokio::test]
async fn a_sample_fails_only_on_a_drawn_record_without_a_payload() {
    let store = MemStore::new();
    let signer = Signer::generate();
    write(
        &store,
        &signer,
        claim("s", 1, Status::Ok, 1),
        json!({"a": 1}),
    )
    .await;
    let digest = json!([{"name": "blobs/x", "digest": {"sha256": "x"}}]);
    forge(&store, claim("s", 2, Status::Ok, 2), digest).await;
    checkpoint_everything(&store).await;
    let store: Arc<dyn Store> = Arc::new(store);
    let dir = tempfile::tempdir().unwrap();
    let keys = [layout::record("s", 1), layout::record("s", 2)];
    let mut drawn_bad = false;
    let mut drawn_good = false;
    for seed in 0..40 {
        let req = crate::sample::Request {
            streams: vec![],
            from: at(0),
            to: at(10),
            size: Some(1),
            seed: seed.to_string(),
        };
        let population = [keys[0].as_str(), keys[1].as_str()];
        let picked = crate::sample::draw(&req.seed, &population, 1)[0];
        let out = dir.path().join(format!("{seed}.tar.gz"));
        let result = crate::sample::bundle(store.clone(), &req, &out).await;
        if picked == keys[1] {
            drawn_bad = true;
            let err = format!("{:#}", result.unwrap_err());
            assert!(
                err.contains("payload of") && err.contains("not a SHA-256"),
                "{err}"
            );
        } else {
            drawn_good = true;
            assert_eq!(result.unwrap().streams[0].population, 2);
        }
    }
    assert!(drawn_bad && drawn_good, "40 seeds drew both records");
}
