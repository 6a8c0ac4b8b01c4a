//! The S3 store against a real S3 peer: moto's server over HTTP, driven
//! through the real `exhibit` binary and the real aws-sdk-s3 client.
//!
//! moto_server must be installed (`bash tests/run.sh` installs the pinned
//! one); these tests fail, never skip, without it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use base64::Engine;
use exhibit::store::s3::{S3Options, S3Store};
use exhibit::store::{Store, StoreError};
use sha2::Digest;

use crate::support::moto::{self, Moto};
use crate::support::net::{free_port, http_get};
use crate::support::{Workspace, code, text, unpack};

/// A TCP relay in front of a server that can be cut and restored: the S3
/// outage. (moto keeps its objects in memory, so stopping the server itself
/// would lose what was already delivered; cutting the network is what an
/// outage looks like to the agent anyway: connections refused.)
struct Relay {
    port: u16,
    target: u16,
    up: Arc<AtomicBool>,
    /// Added before every chunk the agent sends, to slow shipping down.
    delay_ms: Arc<AtomicU64>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Relay {
    fn new(target: u16) -> Relay {
        let r = Relay {
            port: free_port(),
            target,
            up: Arc::new(AtomicBool::new(false)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            conns: Arc::default(),
            listener: Mutex::new(None),
        };
        r.start();
        r
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, delay, conns, target) = (
            self.up.clone(),
            self.delay_ms.clone(),
            self.conns.clone(),
            self.target,
        );
        let h = std::thread::spawn(move || {
            for client in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                conns.lock().unwrap().push(client.try_clone().unwrap());
                conns.lock().unwrap().push(server.try_clone().unwrap());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let d = delay.clone();
                std::thread::spawn(move || pipe(client, server, Some(d)));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        *self.listener.lock().unwrap() = Some(h);
    }

    /// Refuses new connections and cuts the open ones.
    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.listener.lock().unwrap().take() {
            h.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Option<Arc<AtomicU64>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(d) = &delay {
            std::thread::sleep(Duration::from_millis(d.load(Ordering::Relaxed)));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The AWS environment of every command: test credentials, the endpoint,
/// and nothing from the developer's own ~/.aws.
fn aws_env(cmd: &mut Command, endpoint: &str) {
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
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    Client::from_conf(conf)
}

fn make_bucket(endpoint: &str, bucket: &str, object_lock: bool) {
    rt().block_on(async {
        client(endpoint)
            .create_bucket()
            .bucket(bucket)
            .object_lock_enabled_for_bucket(object_lock)
            .send()
            .await
            .unwrap();
    });
}

fn config(bucket: &str, extra: &str) -> String {
    format!(
        r#"
[store]
location = "s3://{bucket}/org"
flush_timeout = "3s"
{extra}

[[collectors]]
name = "u"
kind = "command"
schedule = "@daily"
command = ["echo", "{{\"n\":1}}"]
"#
    )
}

fn collect(ws: &Workspace, endpoint: &str) -> Output {
    let mut c = ws.cmd(&["collect"]);
    aws_env(&mut c, endpoint);
    c.output().unwrap()
}

fn verify(endpoint: &str, bucket: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_exhibit"));
    c.args(["--store", &format!("s3://{bucket}/org"), "verify", "--json"])
        .env_remove("EXHIBIT_CONFIG")
        .current_dir(std::env::temp_dir());
    aws_env(&mut c, endpoint);
    c.output().unwrap()
}

/// An object's bytes, read with the plain SDK client.
async fn object(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

fn keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    rt().block_on(async {
        let out = client(endpoint)
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    })
}

fn spooled(ws: &Workspace) -> usize {
    std::fs::read_dir(ws.path().join("spool/queue"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn assert_intact(endpoint: &str, bucket: &str, records: usize) {
    let out = verify(endpoint, bucket);
    assert_eq!(code(&out), 0, "verify over S3 failed:\n{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true, "{report:#}");
    let n = keys(endpoint, bucket, "org/records/u/default/").len();
    assert_eq!(n, records, "records in the bucket");
}

#[test]
fn objects_are_locked_in_compliance_mode_with_sha256_checksums() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "locked", true);
    let ws = Workspace::new(&config("locked", ""));
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(spooled(&ws), 0, "the spool drained:\n{}", text(&out));
    assert_intact(&ep, "locked", 1);

    let key = "org/records/u/default/000000000001.json";
    rt().block_on(async {
        let c = client(&ep);
        let bytes = object(&c, "locked", key).await;
        let head = c
            .head_object()
            .bucket("locked")
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
        let until = head.object_lock_retain_until_date().expect("retention");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // The default: two years.
        assert!(
            until.secs() > now + 729 * 86_400,
            "retained until {until}, not two years"
        );
        let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
        assert_eq!(head.checksum_sha256(), Some(want.as_str()));

        // The locked version cannot be deleted, not even by its writer.
        let version = head.version_id().expect("versioned").to_string();
        let del = c
            .delete_object()
            .bucket("locked")
            .key(key)
            .version_id(&version)
            .send()
            .await;
        assert!(del.is_err(), "deleting a locked version succeeded");
        assert!(
            c.head_object()
                .bucket("locked")
                .key(key)
                .version_id(&version)
                .send()
                .await
                .is_ok()
        );

        // A second write of an existing key is refused, and the first stays.
        let store = S3Store::connect("s3://locked/org", s3_opts(&ep))
            .await
            .unwrap();
        let err = store
            .put_new("records/u/default/000000000001.json", b"forged")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Exists(_)), "{err}");
        let again = store
            .get("records/u/default/000000000001.json")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, bytes);
    });
}

fn s3_opts(endpoint: &str) -> S3Options {
    // The library's S3 client takes credentials from the environment only.
    // Set once for the whole run, to the same values whoever comes first.
    static CREDENTIALS: std::sync::Once = std::sync::Once::new();
    CREDENTIALS.call_once(|| {
        // SAFETY: std's own readers of the environment (Command, env::var)
        // take its lock; the values never change once set.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        }
    });
    S3Options {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        lease_ttl: Duration::from_secs(60),
        ..S3Options::default()
    }
}

#[test]
fn the_s3_store_keeps_the_store_contract() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "contract", true);
    rt().block_on(async {
        let handle = |owner: &str| {
            let mut opts = s3_opts(&ep);
            opts.owner = Some(owner.into());
            S3Store::connect("s3://contract/org", opts)
        };
        // Two agents: the second is the rival for the leases.
        let store: Arc<dyn Store> = Arc::new(handle("agent-a").await.unwrap());
        let rival: Arc<dyn Store> = Arc::new(handle("agent-b").await.unwrap());
        let rules = exhibit::store::contract::Rules::default();
        exhibit::store::contract::check(store, rival, &rules)
            .await
            .unwrap();
    });
    // Nothing was written outside the store's prefix.
    let all = keys(&ep, "contract", "");
    assert!(!all.is_empty());
    assert!(all.iter().all(|k| k.starts_with("org/")), "{all:?}");
}

#[test]
fn a_bucket_without_object_lock_is_refused_at_start_up() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "unlocked", false);
    let ws = Workspace::new(&config("unlocked", ""));
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bucket `unlocked`"), "{t}");
    assert!(t.contains("versioning is not enabled"), "{t}");
    assert!(t.contains("Object Lock is not enabled"), "{t}");
    assert!(t.contains("allow_without_object_lock"), "{t}");
    assert!(keys(&ep, "unlocked", "org/records/").is_empty());

    // The switch runs anyway, saying so.
    let ws = Workspace::new(&config("unlocked", "allow_without_object_lock = true"));
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("without protection"), "{}", text(&out));
}

#[test]
fn a_second_agent_claiming_a_stream_is_refused() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "shared", true);
    rt().block_on(async {
        let mut a = s3_opts(&ep);
        a.owner = Some("agent-a".into());
        let mut b = s3_opts(&ep);
        b.owner = Some("agent-b".into());
        let a = S3Store::connect("s3://shared/org", a).await.unwrap();
        let b = S3Store::connect("s3://shared/org", b.clone())
            .await
            .unwrap();
        let held = a.lease("stream/u/local").await.unwrap();
        let err = b.lease("stream/u/local").await.unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("agent-a"), "{err}");
        // Other streams are free; lease objects are not evidence.
        let _other = b.lease("stream/u/other").await.unwrap();
        assert!(a.list("").await.unwrap().is_empty());
        // The same owner (the same agent, restarted) takes its lease back.
        let mut again = s3_opts(&ep);
        again.owner = Some("agent-a".into());
        let a2 = S3Store::connect("s3://shared/org", again).await.unwrap();
        let _back = a2.lease("stream/u/local").await.unwrap();
        drop(held);

        // An expired lease of another agent is taken over.
        let stale = serde_json::json!({
            "owner": "gone",
            "holder": "pid 2 on a dead host",
            "expires_at": (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
        });
        client(&ep)
            .put_object()
            .bucket("shared")
            .key("org/.leases/stream/u/stale.json")
            .body(ByteStream::from(stale.to_string().into_bytes()))
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .send()
            .await
            .unwrap();
        let _taken = b.lease("stream/u/stale").await.unwrap();
        let err = a.lease("stream/u/stale").await.unwrap_err();
        assert!(err.to_string().contains("agent-b"), "{err}");
    });

    // The binary: another agent holds the stream's lease, unexpired.
    let other = serde_json::json!({
        "owner": "someone-else",
        "holder": "pid 1 on elsewhere",
        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    });
    rt().block_on(async {
        client(&ep)
            .put_object()
            .bucket("shared")
            .key("org/.leases/stream/u/local2.json")
            .body(ByteStream::from(other.to_string().into_bytes()))
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .send()
            .await
            .unwrap();
    });
    let ws = Workspace::new(
        &config("shared", "").replace("command = [", "stream_key = \"local2\"\ncommand = ["),
    );
    let out = collect(&ws, &ep);
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(t.contains("locked by another agent"), "{t}");
    assert!(t.contains("pid 1 on elsewhere"), "{t}");
    assert!(keys(&ep, "shared", "org/records/u/local2/").is_empty());
}

#[test]
fn an_outage_spools_and_everything_arrives_in_order_afterwards() {
    // Reached through a relay of its own, which the test cuts.
    let m = moto::for_stores();
    let relay = Relay::new(m.port);
    let ep = relay.endpoint();
    make_bucket(&ep, "outage", true);
    let ws = Workspace::new(&config("outage", ""));
    for _ in 0..2 {
        let out = collect(&ws, &ep);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    assert_eq!(spooled(&ws), 0);

    relay.stop();
    for _ in 0..3 {
        let out = collect(&ws, &ep);
        let t = text(&out);
        assert_eq!(code(&out), 0, "collection goes on during an outage: {t}");
        assert!(t.contains("not yet shipped"), "{t}");
    }
    // Three runs: a blob-less record and a checkpoint each at least.
    assert!(spooled(&ws) >= 6, "spooled: {}", spooled(&ws));
    assert_eq!(
        keys(&m.endpoint(), "outage", "org/records/u/default/").len(),
        2
    );

    relay.start();
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(spooled(&ws), 0, "{}", text(&out));
    assert_intact(&ep, "outage", 6);
}

#[test]
fn a_kill_9_while_shipping_loses_and_breaks_nothing() {
    let m = moto::for_stores();
    let relay = Relay::new(m.port);
    let ep = relay.endpoint();
    make_bucket(&ep, "killed", true);
    let ws = Workspace::new(&config("killed", ""));
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));

    relay.stop();
    for _ in 0..4 {
        let out = collect(&ws, &ep);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let backlog = spooled(&ws);
    assert!(backlog >= 8, "spooled: {backlog}");

    // Slow shipping down, start an agent, and kill it mid-way.
    relay.delay_ms.store(150, Ordering::Relaxed);
    relay.start();
    let mut c = ws.cmd(&["collect"]);
    aws_env(&mut c, &ep);
    let mut agent = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled(&ws) >= backlog {
        assert!(Instant::now() < deadline, "shipping never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(spooled(&ws) > 0, "the agent finished before it was killed");

    relay.delay_ms.store(0, Ordering::Relaxed);
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(spooled(&ws), 0, "{}", text(&out));
    // 1 + 4 + the killed run's record (written before the kill or not) + 1.
    let n = keys(&ep, "killed", "org/records/u/default/").len();
    assert!((6..=7).contains(&n), "records: {n}");
    assert_intact(&ep, "killed", n);
}

#[test]
fn wrong_credentials_are_named_and_the_spool_keeps_the_evidence() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "creds", true);
    let ws = Workspace::new(&config("creds", ""));
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A server that checks credentials (moto accepts any unless told to
    // authenticate) and knows none of ours: the agent's key is rejected.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    for _ in 0..2 {
        let out = collect(&ws, &strict.endpoint());
        let t = text(&out);
        assert_eq!(code(&out), 0, "collection goes on: {t}");
        assert!(t.contains("InvalidAccessKeyId"), "{t}");
        assert!(t.contains("credentials were rejected"), "{t}");
        assert!(
            !t.contains("testing"),
            "a credential leaked into the output: {t}"
        );
    }
    assert!(spooled(&ws) >= 4, "spooled: {}", spooled(&ws));
    assert_eq!(keys(&ep, "creds", "org/records/u/default/").len(), 1);

    // Right credentials again: everything arrives, chained.
    let out = collect(&ws, &ep);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(spooled(&ws), 0, "{}", text(&out));
    assert_intact(&ep, "creds", 4);
}

/// Runs a reading command against a store given on the command line or in
/// `EXHIBIT_STORE`, with no config, as an auditor would.
fn read(endpoint: &str, store: &str, via_env: bool, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_exhibit"));
    if via_env {
        c.env("EXHIBIT_STORE", store);
    } else {
        c.args(["--store", store]);
    }
    c.args(args)
        .env_remove("EXHIBIT_CONFIG")
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir());
    aws_env(&mut c, endpoint);
    let out = c.output().unwrap();
    assert_eq!(
        code(&out),
        0,
        "exhibit {args:?} on {store}:\n{}",
        text(&out)
    );
    out
}

/// Downloads every object under `prefix` into `dir`, keys as paths.
fn mirror(endpoint: &str, bucket: &str, prefix: &str, dir: &std::path::Path) -> usize {
    rt().block_on(async {
        let c = client(endpoint);
        let mut pages = c
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut n = 0;
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                let key = o.key().unwrap();
                let rel = key.strip_prefix(prefix).unwrap();
                if rel.starts_with('.') {
                    continue;
                }
                let bytes = object(&c, bucket, key).await;
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
                n += 1;
            }
        }
        n
    })
}

#[test]
fn every_reading_command_answers_over_s3_as_over_a_directory() {
    let m = moto::for_stores();
    let ep = m.endpoint();
    make_bucket(&ep, "readers", true);
    // Two streams: users that change from run to run (for diff), and a
    // payload of a few MB (streamed from the spool file to S3).
    let ws = Workspace::new(
        r#"
[store]
location = "s3://readers/org"
flush_timeout = "10s"

[[collectors]]
name = "iam"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
criteria = ["CC6.1"]

[[collectors]]
name = "big"
kind = "command"
schedule = "@daily"
shell = true
command = "printf '\"'; head -c 3000000 /dev/zero | base64 -w0; printf '\"'"
max_output = 8000000
criteria = ["CC7.2"]
"#,
    );
    let states = [
        r#"{"users": [{"arn": "u/alice", "mfa": true}, {"arn": "u/bob", "mfa": true}]}"#,
        r#"{"users": [{"arn": "u/alice", "mfa": true}, {"arn": "u/bob", "mfa": false}]}"#,
        r#"{"users": [{"arn": "u/bob", "mfa": false}, {"arn": "u/carol", "mfa": true}]}"#,
    ];
    for users in states {
        std::fs::write(ws.path().join("users.json"), users).unwrap();
        let out = collect(&ws, &ep);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    assert_eq!(spooled(&ws), 0, "the spool drained");

    // The big payload arrived whole, with S3's own whole-object SHA-256.
    let shown = read(
        &ep,
        "s3://readers/org",
        false,
        &["show", "big/default", "--json"],
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let sha = shown["statement"]["subject"][0]["digest"]["sha256"]
        .as_str()
        .expect("the record names its payload")
        .to_string();
    let len = shown["payload"]["output"].as_str().map_or(0, str::len);
    assert_eq!(len, 4_000_000, "the payload as collected");
    let blobs = keys(&ep, "readers", "org/blobs/");
    assert!(!blobs.is_empty());
    rt().block_on(async {
        let c = client(&ep);
        let mut found = false;
        for key in &blobs {
            let head = c
                .head_object()
                .bucket("readers")
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            if head.content_length().unwrap_or(0) < 4_000_000 {
                continue;
            }
            found = true;
            let hex = key.rsplit('/').next().unwrap();
            let want = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex).unwrap());
            assert_eq!(head.checksum_sha256(), Some(want.as_str()), "{key}");
            assert_eq!(sha, hex, "the one large blob is the big payload");
        }
        assert!(found, "no large blob among {blobs:?}");
    });

    // The same store as a directory: every reading command must say the
    // same of both.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("store");
    let copied = mirror(&ep, "readers", "org/", &local);
    assert!(copied >= 6 + 3, "objects mirrored: {copied}");
    let local = local.to_str().unwrap().to_string();
    let same = |args: &[&str]| {
        let s3 = read(&ep, "s3://readers/org", false, args);
        let fs = read(&ep, &local, false, args);
        let s3 = String::from_utf8(s3.stdout)
            .unwrap()
            .replace("s3://readers/org/", "STORE")
            .replace("s3://readers/org", "STORE");
        let fs = String::from_utf8(fs.stdout)
            .unwrap()
            .replace(&local, "STORE");
        assert_eq!(s3, fs, "exhibit {args:?}");
        s3
    };
    let list = same(&["list", "--json"]);
    assert!(
        list.contains("iam/default") && list.contains("big/default"),
        "{list}"
    );
    let show = same(&["show", "iam/default@2", "--json"]);
    assert!(show.contains("u/bob"), "{show}");
    let diff = same(&["diff", "iam/default", "--json"]);
    let d: serde_json::Value = serde_json::from_str(&diff).unwrap();
    let paths: Vec<&str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("u/alice")) && paths.iter().any(|p| p.contains("u/carol")),
        "{paths:?}"
    );
    // The period ends now by default; one end for both, so that the two
    // verdicts can be compared.
    let to = chrono::Utc::now().to_rfc3339();
    let verified = same(&["verify", "--coverage", "--json", "--to", &to]);
    let v: serde_json::Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(v["intact"], true, "{v:#}");
    assert_eq!(v["records"], 6);
    same(&["diff", "iam/default", "1", "3"]);

    // EXHIBIT_STORE names the store as well as --store does.
    let via_env = read(&ep, "s3://readers/org", true, &["list", "--json"]);
    assert_eq!(
        String::from_utf8(via_env.stdout)
            .unwrap()
            .replace("s3://readers/org", "STORE"),
        list
    );

    // A sample drawn from S3 holds what one drawn from the directory holds,
    // and verifies.
    let mut manifests = Vec::new();
    for store in ["s3://readers/org", local.as_str()] {
        let out = dir
            .path()
            .join(format!("bundle-{}.tar.gz", manifests.len()));
        read(
            &ep,
            store,
            false,
            &[
                "sample",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--seed",
                "audit-2026",
                "--size",
                "2",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let verdict = read(
            &ep,
            store,
            false,
            &["verify", "--bundle", out.to_str().unwrap(), "--json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&verdict.stdout).unwrap();
        assert_eq!(v["intact"], true, "{v:#}");
        let (_guard, root) = unpack(&out);
        // sample.json and the README name the store sampled; the rest is
        // evidence and must be byte for byte the same.
        let listing = std::fs::read_to_string(root.join("MANIFEST.sha256")).unwrap();
        let evidence: Vec<String> = listing
            .lines()
            .filter(|l| !l.ends_with("sample.json") && !l.ends_with("README.md"))
            .map(str::to_string)
            .collect();
        assert!(evidence.len() >= 6, "{listing}");
        manifests.push(evidence);
    }
    assert_eq!(manifests[0], manifests[1], "the same sample from both");

    // The OSCAL export references the same evidence by hash.
    let hashes = |store: &str| {
        let out = read(
            &ep,
            store,
            false,
            &[
                "export",
                "--format",
                "oscal",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
            ],
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut found: Vec<String> = Vec::new();
        collect_sha256(&doc, &mut found);
        found.sort();
        found
    };
    let from_s3 = hashes("s3://readers/org");
    assert!(from_s3.len() >= 6, "{from_s3:?}");
    assert_eq!(from_s3, hashes(&local));
}

/// Every 64-hex-digit string in a document.
fn collect_sha256(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s)
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            out.push(s.clone())
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_sha256(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_sha256(x, out)),
        _ => {}
    }
}

/// The value of an unlabelled gauge in a Prometheus text page.
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_collects_through_an_outage_and_ships_with_backoff_afterwards() {
    let m = moto::for_stores();
    let relay = Relay::new(m.port);
    let ep = relay.endpoint();
    make_bucket(&ep, "daemon", true);
    let ws = Workspace::new(
        r#"
[agent]
shutdown_grace = "5s"

[store]
location = "s3://daemon/org"
flush_timeout = "10s"

[[collectors]]
name = "u"
kind = "command"
schedule = "*/2 * * * * *"
command = ["echo", "{\"n\":1}"]
"#,
    );
    let port = free_port();
    let log_path = ws.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut c = ws.cmd(&["run", "--admin-listen", &format!("127.0.0.1:{port}")]);
    aws_env(&mut c, &ep);
    let mut daemon = c.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let records = |endpoint: &str| keys(endpoint, "daemon", "org/records/u/default/").len();
    wait_until("two records shipped", 30, || records(&m.endpoint()) >= 2);

    relay.stop();
    let shipped_before = records(&m.endpoint());
    // Collection goes on; the spool grows, the metrics and the log say so.
    let metrics = || {
        http_get(port, "/metrics")
            .map(|(_, p)| p)
            .unwrap_or_default()
    };
    wait_until("a spool of at least 6 objects", 40, || {
        gauge(&metrics(), "exhibit_spool_depth").unwrap_or(0.0) >= 6.0
    });
    let page = metrics();
    assert!(
        gauge(&page, "exhibit_spool_oldest_age_seconds").unwrap_or(0.0) >= 1.0,
        "{page}"
    );
    assert_eq!(
        http_get(port, "/healthz").map(|(s, _)| s),
        Some(200),
        "an unreachable store does not make the agent unhealthy"
    );
    assert!(
        records(&m.endpoint()) <= shipped_before + 1,
        "shipped while cut off"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("cannot ship to the store; evidence stays in the spool"),
        "the growing spool is logged:\n{log}"
    );

    relay.start();
    // The shipper retries with backoff (at most a minute between tries).
    wait_until("the backlog shipped", 90, || {
        records(&m.endpoint()) >= shipped_before + 3
            && gauge(&metrics(), "exhibit_spool_depth").unwrap_or(99.0) < 4.0
    });
    sigterm_and_wait(&mut daemon);
    assert_eq!(spooled(&ws), 0, "shutdown flushes the spool");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("spool drained"), "{log}");
    let n = records(&ep);
    assert!(n >= shipped_before + 3, "records: {n}");
    assert_intact(&ep, "daemon", n);
}

fn sigterm_and_wait(child: &mut std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "the daemon exited with {s}");
            return;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the daemon did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
