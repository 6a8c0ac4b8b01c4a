//! Overclaims of verify's verdicts: no evidence, incomplete periods, pinned
//! heads. Each test is an attack (or a mistake) against a store, followed
//! by the refusal expected of `exhibit verify`, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use exhibit::clock::Clock;
use exhibit::evidence::keys::Signer;
use exhibit::evidence::record::{CollectorInfo, Status, Trigger};
use exhibit::store::fs::FsStore;
use exhibit::writer::{Entry, Writer};

use crate::support::{Workspace, code, copy_tree, exhibit_on_store, text};

const CONFIG: &str = r#"
[agent]
id = "verdicts"

[[collectors]]
name = "users"
kind = "command"
schedule = "@daily"
command = ["echo", "{\"users\": [\"alice\", \"bob\"]}"]

[[collectors]]
name = "groups"
kind = "command"
schedule = "@daily"
command = ["echo", "{\"groups\": [\"admins\"]}"]
"#;

/// A workspace whose store holds `runs` collections of two streams.
fn collected(runs: usize) -> (Workspace, Vec<String>) {
    let ws = Workspace::new(CONFIG);
    let mut heads = Vec::new();
    for _ in 0..runs {
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        heads.push(head_line(&out).expect("collect prints the head"));
    }
    (ws, heads)
}

/// The value of the `head: ` line.
fn head_line(out: &Output) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("head: ").map(str::to_string))
}

/// `verify --json` on a store with no config: exit code and verdict.
fn verify_json(store: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["verify", "--json"];
    a.extend_from_slice(args);
    let out = exhibit_on_store(store, &a);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&out)));
    (code(&out), v)
}

fn codes(report: &Value, list: &str) -> Vec<(String, String)> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["location"].as_str().unwrap().to_string(),
                p["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A public key written to a file, as an auditor holds it.
fn a_key(dir: &Path) -> PathBuf {
    let path = dir.join("auditor.pub");
    std::fs::write(&path, Signer::generate().public().to_pem()).unwrap();
    path
}

/// The agent's public key, copied out of the store as an auditor would
/// have received it.
fn agents_key(ws: &Workspace) -> PathBuf {
    let key = std::fs::read_dir(ws.store().join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = ws.path().join("auditor.pub");
    std::fs::copy(key, &copy).unwrap();
    copy
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The newest record of each stream.
fn last_records(store: &Path) -> Vec<PathBuf> {
    let mut by_dir: std::collections::BTreeMap<PathBuf, PathBuf> = Default::default();
    for f in files(&store.join("records")) {
        by_dir.insert(f.parent().unwrap().to_path_buf(), f);
    }
    by_dir.into_values().collect()
}

fn assert_no_evidence(out: &Output) {
    let said = text(out);
    assert_eq!(code(out), 1, "{said}");
    assert!(said.contains("Verdict:     NO EVIDENCE"), "{said}");
    assert!(!said.contains("INTACT"), "{said}");
}

#[test]
fn a_mistyped_or_empty_store_is_no_evidence_with_or_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = a_key(dir.path());
    let key = key.to_str().unwrap();
    let mistyped = dir.path().join("evidnece");
    assert_no_evidence(&exhibit_on_store(&mistyped, &["verify"]));
    assert_no_evidence(&exhibit_on_store(&mistyped, &["verify", "--key", key]));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_no_evidence(&exhibit_on_store(&empty, &["verify", "--key", key]));
    let (c, v) = verify_json(&empty, &["--key", key]);
    assert_eq!(c, 1);
    assert_eq!(v["verdict"], "NO EVIDENCE");
    assert_eq!(v["intact"], false);
    assert_eq!(v["head"], Value::Null);
}

#[test]
fn a_store_holding_only_its_keys_is_no_evidence() {
    let (ws, _) = collected(1);
    let key = agents_key(&ws);
    for dir in ["records", "blobs", "checkpoints"] {
        std::fs::remove_dir_all(ws.store().join(dir)).unwrap();
    }
    assert_no_evidence(&exhibit_on_store(&ws.store(), &["verify"]));
    assert_no_evidence(&exhibit_on_store(
        &ws.store(),
        &["verify", "--key", key.to_str().unwrap()],
    ));
}

#[test]
fn a_period_before_the_store_existed_is_no_evidence() {
    let (ws, _) = collected(1);
    let out = exhibit_on_store(
        &ws.store(),
        &["verify", "--from", "2025-01-01", "--to", "2025-12-31"],
    );
    assert_no_evidence(&out);
    assert!(text(&out).contains("is in the period"), "{}", text(&out));
    let (_, v) = verify_json(&ws.store(), &["--from", "2025-01-01", "--to", "2025-12-31"]);
    assert_eq!(
        (v["records"].as_u64(), v["records_in_period"].as_u64()),
        (Some(2), Some(0))
    );
}

#[test]
fn a_reversed_period_is_a_usage_error() {
    let (ws, _) = collected(1);
    let out = exhibit_on_store(
        &ws.store(),
        &["verify", "--from", "2026-12-31", "--to", "2026-01-01"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("is later than --to"), "{}", text(&out));
    assert!(!text(&out).contains("INTACT"), "{}", text(&out));
}

#[test]
fn deleting_the_checkpoints_fails_also_after_deleting_the_last_records() {
    let (ws, _) = collected(3);
    let (c, v) = verify_json(&ws.store(), &[]);
    assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");

    let scratch = tempfile::tempdir().unwrap();
    let store = scratch.path().join("evidence");
    copy_tree(&ws.store(), &store);
    std::fs::remove_dir_all(store.join("checkpoints")).unwrap();
    for args in [&[][..], &["--require-timestamps"][..]] {
        let (c, v) = verify_json(&store, args);
        assert_eq!(c, 1, "{v:#}");
        assert_eq!(v["verdict"], "FAILED", "{v:#}");
        let problems = codes(&v, "problems");
        // The first two runs of each stream: a later run followed them.
        let unlisted = problems
            .iter()
            .filter(|(_, c)| c == "not_checkpointed")
            .count();
        assert_eq!(unlisted, 4, "{problems:?}");
    }
    let human = exhibit_on_store(&store, &["verify"]);
    assert!(
        text(&human).contains("Verdict:     FAILED"),
        "{}",
        text(&human)
    );

    // And after deleting the newest record of each stream as well.
    for f in last_records(&store) {
        std::fs::remove_file(f).unwrap();
    }
    let (c, v) = verify_json(&store, &[]);
    assert_eq!((c, v["verdict"].as_str()), (1, Some("FAILED")), "{v:#}");
    assert!(
        codes(&v, "problems")
            .iter()
            .any(|(l, c)| c == "not_checkpointed" && l.ends_with("000000000001.json")),
        "{v:#}"
    );
}

#[test]
fn deleting_the_newest_run_is_caught_by_the_head_noted_before() {
    let (ws, heads) = collected(2);
    // collect and verify print the same head; the JSON carries it.
    let out = exhibit_on_store(&ws.store(), &["verify"]);
    assert_eq!(head_line(&out).as_deref(), Some(heads[1].as_str()));
    let (_, v) = verify_json(&ws.store(), &[]);
    assert_eq!(v["head"], heads[1].as_str());
    for h in &heads {
        let (c, v) = verify_json(&ws.store(), &["--known-head", h]);
        assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");
    }
    // The nightly review carries it for its readers to keep.
    let md = exhibit_on_store(&ws.store(), &["report", "--format", "md"]);
    assert!(
        text(&md).contains(&format!("head: `{}`", heads[1])),
        "{}",
        text(&md)
    );
    let html = exhibit_on_store(&ws.store(), &["report"]);
    assert!(text(&html).contains(&heads[1]), "{}", text(&html));

    // The newest run deleted whole: its checkpoint and its records.
    let newest: PathBuf = files(&ws.store().join("checkpoints"))
        .into_iter()
        .find(|p| exhibit::evidence::sha256_hex(&std::fs::read(p).unwrap()) == heads[1])
        .expect("the head is a checkpoint file");
    std::fs::remove_file(&newest).unwrap();
    for f in last_records(&ws.store()) {
        std::fs::remove_file(f).unwrap();
    }
    let (c, v) = verify_json(&ws.store(), &["--known-head", &heads[1]]);
    assert_eq!(c, 1, "{v:#}");
    assert_eq!(v["verdict"], "FAILED");
    assert_eq!(
        codes(&v, "problems"),
        [("checkpoints/".to_string(), "known_head_missing".to_string())]
    );
    let human = exhibit_on_store(&ws.store(), &["verify", "--known-head", &heads[1]]);
    assert!(
        text(&human).contains("the head noted earlier"),
        "{}",
        text(&human)
    );
    // The older head is still an ancestor of what is left.
    let (c, _) = verify_json(&ws.store(), &["--known-head", &heads[0]]);
    assert_eq!(c, 0);
    // A head that is not a SHA-256 is a usage error.
    let out = exhibit_on_store(&ws.store(), &["verify", "--known-head", "abc"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

/// Seconds added to the system clock by [`offset_clock`].
static OFFSET: AtomicI64 = AtomicI64::new(0);

fn offset_clock() -> DateTime<Utc> {
    Utc::now() + Duration::seconds(OFFSET.load(Ordering::SeqCst))
}

/// Writes one run of `stream` serving the `@daily` slot of `slot`, by an
/// agent whose clock reads `slot` plus a minute.
async fn run_at(writer: &Writer, stream: &str, slot: DateTime<Utc>) {
    OFFSET.store(
        (slot + Duration::minutes(1) - Utc::now()).num_seconds(),
        Ordering::SeqCst,
    );
    let run = writer.begin_run(Trigger::Scheduled);
    let at = writer.now();
    let mut e = Entry::new(
        stream,
        CollectorInfo {
            name: "iam".into(),
            kind: "test".into(),
            version: "1".into(),
        },
        Status::Ok,
        at,
        json!({"users": ["alice"], "slot": slot}),
    );
    e.predicate.schedule = Some("@daily".into());
    e.predicate.scheduled_for = Some(slot);
    e.predicate.attempts = 1;
    writer.append(&run, e).await.unwrap();
    writer.checkpoint(run).await.unwrap();
}

/// A store written by the library at past (or future) times, one run per
/// day in `days` (relative to today's midnight).
fn store_with_runs(dir: &Path, days: &[i64]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    rt.block_on(async {
        let store = Arc::new(FsStore::new(dir.to_path_buf()));
        let writer = Writer::open(store, Arc::new(Signer::generate()), "past")
            .await
            .unwrap()
            .with_clock(Clock::from_fn(offset_clock));
        for d in days {
            run_at(&writer, "iam/111", midnight + Duration::days(*d)).await;
        }
    });
}

#[test]
fn the_period_ends_now_so_missing_slots_are_incomplete_not_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("evidence");
    store_with_runs(&store, &[-6, -5, -4]);
    // Days -3 to -1 have no record at all (today's slot may not be due).
    let (c, v) = verify_json(&store, &[]);
    assert_eq!(c, 1, "{v:#}");
    assert_eq!(v["verdict"], "INCOMPLETE", "{v:#}");
    assert_eq!(v["intact"], true);
    assert_eq!(
        codes(&v, "gaps"),
        [(
            "records/iam/111/".to_string(),
            "slots_unaccounted".to_string()
        )]
    );
    let c = &v["streams"][0]["coverage"];
    assert!(c["unaccounted"].as_u64().unwrap() >= 3, "{c}");
    let human = exhibit_on_store(&store, &["verify"]);
    assert!(
        text(&human).contains("Verdict:     INCOMPLETE"),
        "{}",
        text(&human)
    );
    assert!(!text(&human).contains("INTACT"), "{}", text(&human));

    // With the period's end given, the same store is complete.
    let to = (Utc::now().date_naive() - chrono::Days::new(4))
        .and_hms_opt(1, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let (c, v) = verify_json(&store, &["--to", &to]);
    assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");
}

#[test]
fn records_and_checkpoints_dated_in_the_future_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("evidence");
    // An agent whose clock ran two days ahead, for one run.
    store_with_runs(&store, &[-2, -1, 2]);
    let (c, v) = verify_json(&store, &[]);
    assert_eq!((c, v["verdict"].as_str()), (1, Some("FAILED")), "{v:#}");
    let future: Vec<_> = codes(&v, "problems")
        .into_iter()
        .filter(|(_, c)| c == "future_dated")
        .map(|(l, _)| l)
        .collect();
    assert!(
        future.iter().any(|l| l.starts_with("records/iam/111/"))
            && future.iter().any(|l| l.starts_with("checkpoints/")),
        "{v:#}"
    );
}

mod s3 {
    //! The S3 store keeps every version: an evidence object deleted (a
    //! delete marker, which Object Lock does not prevent) or overwritten
    //! is named by verify.

    use std::process::Command;

    use aws_sdk_s3::Client;
    use aws_sdk_s3::primitives::ByteStream;

    use crate::support::moto;
    use crate::support::{Workspace, code, text};

    fn env(cmd: &mut Command, endpoint: &str) {
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }

    fn client(endpoint: &str) -> Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .http_client(exhibit::aws_http::https_client())
            .http_client(exhibit::aws_http::https_client())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        Client::from_conf(conf)
    }

    #[test]
    fn a_deleted_or_overwritten_evidence_object_is_reported() {
        let moto = moto::for_stores();
        let ep = moto.endpoint();
        let bucket = "overclaims-versions";
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = client(&ep);
        rt.block_on(async {
            c.create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(true)
                .send()
                .await
                .unwrap();
        });
        let ws = Workspace::new(&format!(
            r#"
[store]
location = "s3://{bucket}/org"
flush_timeout = "3s"

[[collectors]]
name = "u"
kind = "command"
schedule = "@daily"
command = ["echo", "{{\"n\":1}}"]
"#
        ));
        for _ in 0..2 {
            let mut cmd = ws.cmd(&["collect"]);
            env(&mut cmd, &ep);
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), 0, "{}", text(&out));
        }
        let verify = || {
            let mut cmd = ws.cmd(&["verify", "--json"]);
            env(&mut cmd, &ep);
            let out = cmd.output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
            (code(&out), v)
        };
        let (c0, v) = verify();
        assert_eq!((c0, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");

        // Someone with write access but no key: a delete without a
        // version id, and a PUT over an existing record (same bytes).
        let first = "org/records/u/default/000000000001.json";
        let second = "org/records/u/default/000000000002.json";
        rt.block_on(async {
            let bytes = c
                .get_object()
                .bucket(bucket)
                .key(first)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            c.put_object()
                .bucket(bucket)
                .key(first)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .unwrap();
            c.delete_object()
                .bucket(bucket)
                .key(second)
                .send()
                .await
                .unwrap();
        });
        let (c1, v) = verify();
        assert_eq!((c1, v["verdict"].as_str()), (1, Some("FAILED")), "{v:#}");
        let problems: Vec<(String, String)> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["location"].as_str().unwrap().to_string(),
                    p["code"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            problems.contains(&(
                "records/u/default/000000000002.json".into(),
                "object_deleted".into()
            )),
            "{problems:?}"
        );
        assert!(
            problems.contains(&(
                "records/u/default/000000000001.json".into(),
                "object_overwritten".into()
            )),
            "{problems:?}"
        );
    }
}
