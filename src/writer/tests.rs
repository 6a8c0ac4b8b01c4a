//! The writer's stored bytes, pinned.

use super::*;
use crate::evidence::dsse::Envelope;
use crate::evidence::keys::PublicKey;
use crate::store::mem::MemStore;
use serde_json::json;

fn noon() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// The signed statement inside a stored record, as bytes.
fn statement_bytes(store: &MemStore, key: &str) -> String {
    let env = Envelope::from_bytes(&store.snapshot()[key]).unwrap();
    String::from_utf8(env.payload_bytes().unwrap()).unwrap()
}

fn canonical_text(v: &Value) -> String {
    String::from_utf8(canonical::to_vec(v).unwrap()).unwrap()
}

/// What a record stores is fixed by DESIGN.md and by every store
/// written so far: the statement's bytes are pinned here field by
/// field, for the smallest entry and for one that says everything.
#[tokio::test]
async fn a_record_stores_the_described_attempt_and_the_writers_own_fields() {
    let store = MemStore::new();
    let writer = Writer::open(
        Arc::new(store.clone()),
        Arc::new(Signer::generate()),
        "agent-1",
    )
    .await
    .unwrap()
    .with_clock(Clock::from_fn(noon));
    let run = writer.begin_run(Trigger::Scheduled);
    let collector = CollectorInfo {
        name: "iam".into(),
        kind: "aws-iam-users".into(),
        version: "1.2.3".into(),
    };
    let bare = Entry::new(
        "iam/111",
        collector.clone(),
        Status::Missed,
        noon(),
        json!({"count": 2}),
    );
    let first = writer.append(&run, bare).await.unwrap();

    let mut full = Entry::new(
        "iam/111",
        collector,
        Status::Partial,
        noon(),
        json!({"users": ["bob"]}),
    );
    let p = &mut full.predicate;
    p.source = json!({"account": "111"});
    p.started_at = noon() - chrono::Duration::seconds(3);
    p.error = Some("incomplete: mfa".into());
    p.attempts = 2;
    p.criteria = vec!["CC6.1".into(), "CC6.2".into()];
    p.schedule = Some("@daily".into());
    p.scheduled_for = Some(noon() - chrono::Duration::hours(12));
    p.cursor = Some(json!({"since": "abc"}));
    // The writer's own fields are its own, whatever the entry says.
    p.seq = 99;
    p.prev = Some("f00".into());
    p.agent = "someone-else".into();
    p.run_id = "not-this-run".into();
    p.trigger = Trigger::Manual;
    p.payload.size = 1;
    let second = writer.append(&run, full).await.unwrap();

    let record_type = "https://exhibit.dev/evidence/record/v1";
    let blob = |sha: &str| format!("blobs/sha256/{}/{sha}", &sha[..2]);
    assert_eq!(
        statement_bytes(&store, "records/iam/111/000000000001.json"),
        canonical_text(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": blob(&first.payload_sha256), "digest": {"sha256": first.payload_sha256}}],
            "predicateType": record_type,
            "predicate": {
                "stream": "iam/111",
                "seq": 1,
                "prev": null,
                "agent": "agent-1",
                "run_id": run.id,
                "trigger": "scheduled",
                "schedule": null,
                "scheduled_for": null,
                "collector": {"name": "iam", "kind": "aws-iam-users", "version": "1.2.3"},
                "source": null,
                "started_at": "2026-03-01T12:00:00Z",
                "finished_at": "2026-03-01T12:00:00Z",
                "status": "missed",
                "error": null,
                "attempts": 0,
                "payload": {"size": 11, "media_type": "application/json"},
                "criteria": [],
            },
        }))
    );
    assert_eq!(
        statement_bytes(&store, "records/iam/111/000000000002.json"),
        canonical_text(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": blob(&second.payload_sha256), "digest": {"sha256": second.payload_sha256}}],
            "predicateType": record_type,
            "predicate": {
                "stream": "iam/111",
                "seq": 2,
                "prev": first.sha256,
                "agent": "agent-1",
                "run_id": run.id,
                "trigger": "scheduled",
                "schedule": "@daily",
                "scheduled_for": "2026-03-01T00:00:00Z",
                "collector": {"name": "iam", "kind": "aws-iam-users", "version": "1.2.3"},
                "source": {"account": "111"},
                "started_at": "2026-03-01T11:59:57Z",
                "finished_at": "2026-03-01T12:00:00Z",
                "status": "partial",
                "error": "incomplete: mfa",
                "attempts": 2,
                "payload": {"size": 17, "media_type": "application/json"},
                "criteria": ["CC6.1", "CC6.2"],
                "cursor": {"since": "abc"},
            },
        }))
    );
    assert_eq!(second.seq, 2);
    assert_eq!(run.written().len(), 2);
}

thread_local! {
    static NOW: std::cell::Cell<DateTime<Utc>> = std::cell::Cell::new(noon());
}

/// This thread's time, one second later at each reading.
fn ticking() -> DateTime<Utc> {
    NOW.with(|now| {
        let t = now.get();
        now.set(t + chrono::Duration::seconds(1));
        t
    })
}

fn set_now(t: DateTime<Utc>) {
    NOW.with(|now| now.set(t));
}

async fn open(store: &MemStore, signer: &Arc<Signer>, retired: &[PublicKey]) -> Writer {
    Writer::open_with_retired(Arc::new(store.clone()), signer.clone(), retired, "agent-1")
        .await
        .unwrap()
        .with_clock(Clock::from_fn(ticking))
}

fn ok_entry(stream: &str, at: DateTime<Utc>) -> Entry {
    let collector = CollectorInfo {
        name: stream.split('/').next().unwrap().into(),
        kind: "test".into(),
        version: "1".into(),
    };
    Entry::new(stream, collector, Status::Ok, at, json!({"stream": stream}))
}

/// One run writing an `ok` record to each of `streams`; returns the
/// checkpoint's key.
async fn one_run(writer: &Writer, streams: &[&str]) -> String {
    let run = writer.begin_run(Trigger::Manual);
    for s in streams {
        let at = writer.now();
        writer.append(&run, ok_entry(s, at)).await.unwrap();
    }
    writer.checkpoint(run).await.unwrap()
}

fn checkpoint_of(store: &MemStore, key: &str) -> CheckpointPredicate {
    peek::<CheckpointPredicate>(&store.snapshot()[key])
        .unwrap()
        .predicate
}

fn record_of(store: &MemStore, key: &str) -> RecordPredicate {
    peek::<RecordPredicate>(&store.snapshot()[key])
        .unwrap()
        .predicate
}

/// A checkpoint dated 2099 and a record numbered 999999999999, both signed
/// by a key the agent does not hold, each linked to the real head.
#[tokio::test]
async fn planted_heads_are_refused_never_extended() {
    set_now(noon());
    let store = MemStore::new();
    let signer = Arc::new(Signer::generate());
    let writer = open(&store, &signer, &[]).await;
    let head = one_run(&writer, &["iam/111", "git/app"]).await;
    drop(writer);

    let stranger = Signer::generate();
    let far: DateTime<Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
    let planted_run = uuid::Uuid::now_v7().to_string();
    let planted = layout::checkpoint(far, &planted_run);
    let predicate = CheckpointPredicate {
        agent: "agent-1".into(),
        run_id: planted_run,
        trigger: Trigger::Manual,
        started_at: far,
        finished_at: far,
        prev: Some(PrevCheckpoint {
            key: head.clone(),
            sha256: sha256_hex(&store.snapshot()[&head]),
        }),
        rotation: None,
        clock_skew: None,
        acknowledged: Vec::new(),
    };
    store
        .put_new(
            &planted,
            &seal(Vec::new(), CHECKPOINT_PREDICATE_TYPE, &predicate, &stranger),
        )
        .await
        .unwrap();
    let mut p = record_of(&store, "records/iam/111/000000000001.json");
    p.seq = 999_999_999_999;
    p.prev = Some(sha256_hex(
        &store.snapshot()["records/iam/111/000000000001.json"],
    ));
    let planted_record = layout::record("iam/111", 999_999_999_999);
    let subject = peek::<RecordPredicate>(&store.snapshot()["records/iam/111/000000000001.json"])
        .unwrap()
        .subject;
    store
        .put_new(
            &planted_record,
            &seal(subject, RECORD_PREDICATE_TYPE, &p, &stranger),
        )
        .await
        .unwrap();

    let writer = open(&store, &signer, &[]).await;
    assert_eq!(writer.refused().len(), 1);
    assert_eq!(writer.refused()[0].key, planted);
    assert!(
        writer.refused()[0]
            .reason
            .contains("not signed by its keys"),
        "{}",
        writer.refused()[0]
    );
    let run = writer.begin_run(Trigger::Manual);
    let at = writer.now();
    let err = writer
        .append(&run, ok_entry("iam/111", at))
        .await
        .unwrap_err();
    match &err {
        WriteError::Refused(r) => {
            assert_eq!(r.key, planted_record);
            assert!(
                r.reason.contains("refusing to extend stream iam/111"),
                "{r}"
            );
        }
        e => panic!("not refused: {e}"),
    }
    // The other stream goes on.
    let at = writer.now();
    let w = writer.append(&run, ok_entry("git/app", at)).await.unwrap();
    assert_eq!(w.seq, 2);
    let next = writer.checkpoint(run).await.unwrap();
    let p = checkpoint_of(&store, &next);
    assert_eq!(p.prev.unwrap().key, head, "linked to the real head");
    assert!(
        !store
            .snapshot()
            .contains_key(&layout::record("iam/111", 1_000_000_000_000))
    );
}

#[tokio::test]
async fn an_unreadable_head_or_a_record_replayed_from_elsewhere_is_refused() {
    set_now(noon());
    let signer = Arc::new(Signer::generate());
    let store = MemStore::new();
    let writer = open(&store, &signer, &[]).await;
    one_run(&writer, &["iam/111"]).await;
    drop(writer);
    // The same stream in another store under the same key: its second
    // record is validly signed, but follows another first record.
    let elsewhere = MemStore::new();
    let other = open(&elsewhere, &signer, &[]).await;
    one_run(&other, &["iam/111"]).await;
    one_run(&other, &["iam/111"]).await;
    drop(other);
    let second = layout::record("iam/111", 2);
    store
        .put_new(&second, &elsewhere.snapshot()[&second])
        .await
        .unwrap();
    let writer = open(&store, &signer, &[]).await;
    match writer.previous("iam/111").await.unwrap_err() {
        WriteError::Refused(r) => {
            assert_eq!(r.key, second);
            assert!(r.reason.contains("hashes to"), "{r}");
        }
        e => panic!("not refused: {e}"),
    }
    drop(writer);

    let garbage = MemStore::new();
    let writer = open(&garbage, &signer, &[]).await;
    one_run(&writer, &["iam/111"]).await;
    drop(writer);
    garbage.put_new(&second, b"garbage").await.unwrap();
    garbage
        .put_new(
            &layout::checkpoint(noon(), &uuid::Uuid::now_v7().to_string()),
            b"junk",
        )
        .await
        .unwrap();
    let writer = open(&garbage, &signer, &[]).await;
    assert_eq!(writer.refused().len(), 1, "{:?}", writer.refused());
    assert!(writer.refused()[0].reason.starts_with("unreadable"));
    match writer.previous("iam/111").await.unwrap_err() {
        WriteError::Refused(r) => assert!(r.reason.starts_with("unreadable"), "{r}"),
        e => panic!("not refused: {e}"),
    }
}

/// One run with the clock a day fast, then runs on the corrected clock,
/// each by a new process: one chain, never back in time, the skew said.
#[tokio::test]
async fn a_clock_set_back_neither_forks_the_chain_nor_goes_back_in_time() {
    let signer = Arc::new(Signer::generate());
    let store = MemStore::new();
    set_now(noon() + chrono::Duration::days(1));
    let writer = open(&store, &signer, &[]).await;
    let fast = one_run(&writer, &["iam/111"]).await;
    drop(writer);
    let fast_at = checkpoint_of(&store, &fast).finished_at;

    let mut prev = fast;
    for hour in 1..=3 {
        set_now(noon() + chrono::Duration::hours(hour));
        let writer = open(&store, &signer, &[]).await;
        let next = one_run(&writer, &["iam/111", "git/app"]).await;
        drop(writer);
        let p = checkpoint_of(&store, &next);
        assert_eq!(p.prev.as_ref().unwrap().key, prev, "one chain");
        assert!(p.finished_at >= fast_at, "{} < {fast_at}", p.finished_at);
        let skew = p.clock_skew.expect("the skew is recorded");
        assert!(skew.behind_ms >= 20 * 3_600_000, "{skew:?}");
        assert!(skew.system_time < fast_at);
        prev = next;
    }
    // The stream the fast run wrote does not go back in time either.
    let records: Vec<RecordPredicate> = (1..=4)
        .map(|n| record_of(&store, &layout::record("iam/111", n)))
        .collect();
    for pair in records.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }
    // A later run on a clock past the skew stamps its own time again.
    set_now(noon() + chrono::Duration::days(2));
    let writer = open(&store, &signer, &[]).await;
    let last = one_run(&writer, &["iam/111"]).await;
    let p = checkpoint_of(&store, &last);
    assert_eq!(p.prev.unwrap().key, prev);
    assert!(p.clock_skew.is_none());
}

/// After a rotation the head is signed by the retired key: extended when
/// the writer holds that key's public half, refused when it does not.
#[tokio::test]
async fn a_rotation_head_is_extended_with_the_retired_key_only() {
    set_now(noon());
    let store = MemStore::new();
    let old = Arc::new(Signer::generate());
    let writer = open(&store, &old, &[]).await;
    one_run(&writer, &["iam/111"]).await;
    let new = Arc::new(Signer::generate());
    let rotation = writer.rotate_key(&new).await.unwrap();
    drop(writer);

    let writer = open(&store, &new, &[old.public()]).await;
    assert!(writer.refused().is_empty());
    let next = one_run(&writer, &["iam/111"]).await;
    assert_eq!(checkpoint_of(&store, &next).prev.unwrap().key, rotation);
    drop(writer);

    let stranger_view = open(&store, &Arc::new(Signer::generate()), &[]).await;
    assert!(
        stranger_view.previous("iam/111").await.is_err(),
        "records signed by keys it does not hold"
    );
}

/// A new stream says which stream it continues on its first record only,
/// and only of a stream this agent wrote: an agent never ends another's.
#[tokio::test]
async fn only_a_new_stream_s_first_record_continues_a_stream_of_its_own_agent() {
    set_now(noon());
    let store = MemStore::new();
    let ours = Arc::new(Signer::generate());
    one_run(&open(&store, &ours, &[]).await, &["cmd/local"]).await;
    let continuing = |stream: &str, former: &str| {
        let mut e = ok_entry(stream, noon());
        e.predicate.continues = Some(former.into());
        e
    };
    // Another agent (its own key) sharing the store.
    let other = Writer::open(
        Arc::new(store.clone()),
        Arc::new(Signer::generate()),
        "agent-2",
    )
    .await
    .unwrap()
    .with_clock(Clock::from_fn(ticking));
    let run = other.begin_run(Trigger::Manual);
    let w = other
        .append(&run, continuing("cmd/agent-2", "cmd/local"))
        .await
        .unwrap();
    assert_eq!(record_of(&store, &w.key).continues, None);
    other.checkpoint(run).await.unwrap();
    drop(other);

    let writer = open(&store, &ours, &[]).await;
    let run = writer.begin_run(Trigger::Manual);
    let first = writer
        .append(&run, continuing("cmd/agent-1", "cmd/local"))
        .await
        .unwrap();
    let second = writer
        .append(&run, continuing("cmd/agent-1", "cmd/local"))
        .await
        .unwrap();
    let nothing = writer
        .append(&run, continuing("cmd/other", "cmd/never-written"))
        .await
        .unwrap();
    writer.checkpoint(run).await.unwrap();
    assert_eq!(
        record_of(&store, &first.key).continues.as_deref(),
        Some("cmd/local")
    );
    assert_eq!(record_of(&store, &second.key).continues, None);
    assert_eq!(record_of(&store, &nothing.key).continues, None);
}
