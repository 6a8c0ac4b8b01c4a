//! The writer's stored bytes, pinned.

use super::*;
use crate::evidence::dsse::Envelope;
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
