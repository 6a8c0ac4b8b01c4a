//! Overclaims of the writer: planted heads and clocks that go backwards.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use exhibit::evidence::checkpoint::{CheckpointPredicate, PrevCheckpoint};
use exhibit::evidence::keys::Signer;
use exhibit::evidence::layout;
use exhibit::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, CollectorInfo, RECORD_PREDICATE_TYPE, RecordPredicate, Statement,
    Status, Trigger, peek, seal,
};
use exhibit::evidence::sha256_hex;
use serde_json::{Value, json};

use super::keys::read_store;
use crate::support::net::{free_port, http_get, wait_for_port};
use crate::support::{Workspace, code, exhibit_on_store, text};

const AGENT: &str = "writer-agent";

fn config(schedule: &str) -> String {
    format!(
        r#"
[agent]
id = "{AGENT}"
catch_up = false
shutdown_grace = "5s"

[[collectors]]
name = "a"
kind = "command"
schedule = "{schedule}"
command = ["echo", "{{\"a\": 1}}"]
retries = 0

[[collectors]]
name = "b"
kind = "command"
schedule = "{schedule}"
command = ["echo", "{{\"b\": 2}}"]
retries = 0
"#
    )
}

/// The store's checkpoints, by key.
fn checkpoints(store: &Path) -> Vec<(String, CheckpointPredicate)> {
    read_store(store)
        .into_iter()
        .filter(|(k, _)| layout::is_checkpoint(k))
        .map(|(k, v)| {
            let st: Statement<CheckpointPredicate> = peek(&v).unwrap();
            (k, st.predicate)
        })
        .collect()
}

fn record_files(store: &Path, stream: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(store.join("records").join(stream))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// Someone with write access and no key plants a checkpoint dated 2099
/// and a record numbered 999999999999, both linked to the real heads and
/// signed by a key of their own (published in keys/ for good measure).
fn plant(store: &Path) -> (String, String) {
    let cps = checkpoints(store);
    assert_eq!(cps.len(), 1);
    let head = &cps[0].0;
    let head_bytes = std::fs::read(store.join(head)).unwrap();
    let stranger = Signer::generate();
    std::fs::write(
        store.join(layout::public_key(stranger.key_id())),
        stranger.public().to_pem(),
    )
    .unwrap();

    let far: DateTime<Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
    let run_id = uuid::Uuid::now_v7().to_string();
    let planted_checkpoint = layout::checkpoint(far, &run_id);
    let predicate = CheckpointPredicate {
        agent: AGENT.into(),
        run_id,
        trigger: Trigger::Manual,
        started_at: far,
        finished_at: far,
        prev: Some(PrevCheckpoint {
            key: head.clone(),
            sha256: sha256_hex(&head_bytes),
        }),
        rotation: None,
        clock_skew: None,
        acknowledged: Vec::new(),
    };
    let path = store.join(&planted_checkpoint);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        seal(Vec::new(), CHECKPOINT_PREDICATE_TYPE, &predicate, &stranger),
    )
    .unwrap();

    let first = std::fs::read(store.join(layout::record("a/writer-agent", 1))).unwrap();
    let st: Statement<RecordPredicate> = peek(&first).unwrap();
    let mut p = st.predicate.clone();
    p.seq = 999_999_999_999;
    p.prev = Some(sha256_hex(&first));
    let planted_record = layout::record("a/writer-agent", 999_999_999_999);
    std::fs::write(
        store.join(&planted_record),
        seal(st.subject, RECORD_PREDICATE_TYPE, &p, &stranger),
    )
    .unwrap();
    (planted_checkpoint, planted_record)
}

#[test]
fn planted_heads_are_not_extended_and_collect_names_them() {
    let ws = Workspace::new(&config("@daily"));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let real_head = checkpoints(&ws.store()).remove(0).0;
    let (planted_checkpoint, planted_record) = plant(&ws.store());

    let out = ws.run(&["collect"]);
    let said = text(&out);
    assert_eq!(code(&out), 1, "{said}");
    assert!(said.contains(&planted_record), "{said}");
    assert!(said.contains(&planted_checkpoint), "{said}");

    // Stream a is not extended; stream b is.
    assert_eq!(
        record_files(&ws.store(), "a/writer-agent"),
        ["000000000001.json", "999999999999.json"]
    );
    assert_eq!(
        record_files(&ws.store(), "b/writer-agent"),
        ["000000000001.json", "000000000002.json"]
    );
    // The run's checkpoint follows the real head, not the planted one.
    let cps = checkpoints(&ws.store());
    assert_eq!(cps.len(), 3);
    let (_, new) = cps
        .iter()
        .find(|(k, _)| *k != real_head && *k != planted_checkpoint)
        .unwrap();
    assert_eq!(new.prev.as_ref().unwrap().key, real_head);
    assert!(new.finished_at < "2099-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
}

#[test]
fn a_garbage_top_record_does_not_stop_the_daemon() {
    let ws = Workspace::new(&config("*/2 * * * * *"));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let garbage = layout::record("a/writer-agent", 2);
    std::fs::write(ws.store().join(&garbage), b"{ not a record").unwrap();

    let port = free_port();
    let log_path = ws.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut d = ws
        .cmd(&["run", "--admin-listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let third_b = ws.store().join(layout::record("b/writer-agent", 3));
    while !third_b.exists() {
        if let Some(status) = d.try_wait().unwrap() {
            panic!("the daemon exited ({status}): {}", log_text());
        }
        assert!(
            Instant::now() < deadline,
            "stream b was not collected: {}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_port(port, Duration::from_secs(5), "the admin endpoint");
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));
    assert!(d.try_wait().unwrap().is_none(), "still running");
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reported, never extended.
    assert!(log_text().contains(&garbage), "{}", log_text());
    assert_eq!(
        record_files(&ws.store(), "a/writer-agent"),
        ["000000000001.json", "000000000002.json"]
    );
}

fn a_day_fast() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(1)
}

/// One run with the clock a day fast (the agent's own key and stream,
/// written through the library with that clock), then normal runs of the
/// binary: one chain, no time going backwards, the skew recorded.
#[test]
fn a_clock_a_day_fast_then_corrected_keeps_one_chain() {
    let ws = Workspace::new(&config("@daily"));
    let (signer, _) = Signer::load_or_create(&ws.path().join("exhibit.key")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(exhibit::store::fs::FsStore::new(ws.store()));
        let writer = exhibit::writer::Writer::open(store, Arc::new(signer), AGENT)
            .await
            .unwrap()
            .with_clock(exhibit::clock::Clock::from_fn(a_day_fast));
        let run = writer.begin_run(Trigger::Manual);
        let collector = CollectorInfo {
            name: "a".into(),
            kind: "command".into(),
            version: "1".into(),
        };
        let mut entry = exhibit::writer::Entry::new(
            "a/writer-agent",
            collector,
            Status::Ok,
            writer.now(),
            json!({"a": 1}),
        );
        entry.predicate.schedule = Some("@daily".into());
        writer.append(&run, entry).await.unwrap();
        writer.checkpoint(run).await.unwrap();
    });
    drop(rt);

    for _ in 0..2 {
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let cps = checkpoints(&ws.store());
    assert_eq!(cps.len(), 3);
    let roots: Vec<_> = cps.iter().filter(|(_, p)| p.prev.is_none()).collect();
    assert_eq!(roots.len(), 1, "one first checkpoint");
    let mut followed: Vec<&str> = cps
        .iter()
        .filter_map(|(_, p)| p.prev.as_ref().map(|l| l.key.as_str()))
        .collect();
    followed.sort();
    let before = followed.len();
    followed.dedup();
    assert_eq!(before, followed.len(), "no checkpoint followed twice");
    let fast_at = roots[0].1.finished_at;
    for (key, p) in cps.iter().filter(|(_, p)| p.prev.is_some()) {
        assert!(p.finished_at >= fast_at, "{key} went back in time");
        let skew = p.clock_skew.as_ref().expect("the skew is recorded");
        assert!(skew.behind_ms > 20 * 3_600_000, "{key}: {skew:?}");
        assert!(skew.system_time < fast_at);
    }
    let a: Vec<RecordPredicate> = (1..=3)
        .map(|n| {
            let bytes =
                std::fs::read(ws.store().join(layout::record("a/writer-agent", n))).unwrap();
            peek::<RecordPredicate>(&bytes).unwrap().predicate
        })
        .collect();
    for pair in a.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }

    let out = exhibit_on_store(&ws.store(), &["verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        // Records and checkpoints stamped a day ahead stay in the future
        // until the clock catches up: that, and nothing else, may be said.
        .filter(|p| !p["code"].as_str().unwrap_or("").contains("future"))
        .collect();
    assert!(problems.is_empty(), "{}", text(&out));
}

static PAST_NOW_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn past_clock() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(PAST_NOW_MS.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
}

/// The same, three days ago: a run with the clock a day fast, then two
/// runs on the corrected clock, each by a new process, then the binary
/// today. Nothing is in the future any more, and the store is intact.
#[test]
fn a_clock_that_went_back_days_ago_leaves_an_intact_single_chain() {
    let ws = Workspace::new(&config("@daily"));
    let key = ws.path().join("exhibit.key");
    Signer::load_or_create(&key).unwrap();
    let base = Utc::now() - chrono::Duration::days(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for at in [
        base + chrono::Duration::days(1),
        base + chrono::Duration::hours(1),
        base + chrono::Duration::hours(2),
    ] {
        PAST_NOW_MS.store(at.timestamp_millis(), std::sync::atomic::Ordering::SeqCst);
        let signer = Signer::load(&key).unwrap();
        rt.block_on(async {
            let store = Arc::new(exhibit::store::fs::FsStore::new(ws.store()));
            let writer = exhibit::writer::Writer::open(store, Arc::new(signer), AGENT)
                .await
                .unwrap()
                .with_clock(exhibit::clock::Clock::from_fn(past_clock));
            let run = writer.begin_run(Trigger::Scheduled);
            let collector = CollectorInfo {
                name: "a".into(),
                kind: "command".into(),
                version: "1".into(),
            };
            let mut entry = exhibit::writer::Entry::new(
                "a/writer-agent",
                collector,
                Status::Ok,
                writer.now(),
                json!({"a": 1}),
            );
            entry.predicate.schedule = Some("@daily".into());
            writer.append(&run, entry).await.unwrap();
            writer.checkpoint(run).await.unwrap();
        });
    }
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let cps = checkpoints(&ws.store());
    assert_eq!(cps.len(), 4);
    let mut followed: Vec<&str> = cps
        .iter()
        .filter_map(|(_, p)| p.prev.as_ref().map(|l| l.key.as_str()))
        .collect();
    followed.sort();
    followed.dedup();
    assert_eq!(followed.len(), 3, "a single chain: {cps:#?}");
    let skewed = cps.iter().filter(|(_, p)| p.clock_skew.is_some()).count();
    assert_eq!(skewed, 2, "the two runs on the corrected clock say so");

    // Integrity is the point here: the daily slots of those three days
    // that no run served are gaps (INCOMPLETE), not problems.
    let out = exhibit_on_store(&ws.store(), &["verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true, "{}", text(&out));
    assert_eq!(report["problems"], json!([]), "{}", text(&out));
}
