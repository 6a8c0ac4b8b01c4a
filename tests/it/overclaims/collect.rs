//! Overclaims of collectors: secrets, redirects and unbounded bodies,
//! malformed records on the read side, and partial populations.
//!
//! The HTTP peers here are loopback servers of a few lines each (a
//! redirect to another origin, a body that never ends, a `Content-Length`
//! of 2 GiB), as no vendor's recording misbehaves on purpose.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::support::octokit::{ORG, assert_all_consumed, collector, config, scenario};
use crate::support::{Workspace, code, exhibit_on_store, text, unpack};

/// Every file under `dir` as text, DSSE payloads decoded (a record's
/// statement, its `error` included, is base64 inside the envelope), and
/// gzip-compressed tarballs unpacked.
fn everything_under(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&everything_under(&p));
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        out.push_str(&String::from_utf8_lossy(&bytes));
        if let Ok(env) = serde_json::from_slice::<Value>(&bytes)
            && let Some(b) = env["payload"].as_str()
            && let Ok(d) = base64::engine::general_purpose::STANDARD.decode(b)
        {
            out.push_str(&String::from_utf8_lossy(&d));
        }
        if p.to_string_lossy().ends_with(".tar.gz") {
            let (_guard, root) = unpack(&p);
            out.push_str(&everything_under(root.parent().unwrap()));
        }
    }
    out
}

/// `exhibit show STREAM --json` on the store alone.
fn show(store: &Path, stream: &str) -> Value {
    let out = exhibit_on_store(store, &["show", stream, "--json"]);
    assert_eq!(code(&out), 0, "show {stream}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
}

/// The one stream of collector `name` (`name/<key>`).
fn stream_of(store: &Path, name: &str) -> String {
    let dir = store.join("records").join(name);
    let keys: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no records of {name}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    format!("{name}/{}", keys[0])
}

const SET_ENV_SECRET: &str = "sk_live_SetEnvValue7f3a9c0d";
const ARGV_SECRET: &str = "argv-secret-FromEnv-52b1e0aa";

#[test]
fn secrets_a_command_echoes_never_become_evidence() {
    // The program prints what it was given to keep secret, on stdout and
    // on stderr; one succeeds (payload, stderr tail), one fails (the
    // record's error). The argv holds a `${VAR}`.
    let script = |tail: &str| {
        format!(
            r#"command = ["sh", "-c", "echo \"$API_TOKEN $0\"; echo \"stderr: $API_TOKEN $0\" >&2{tail}", "--token=${{EXHIBIT_OVERCLAIM_ARGV}}"]
set_env = {{ API_TOKEN = "{SET_ENV_SECRET}" }}"#
        )
    };
    let ws = Workspace::new(&format!(
        r#"[agent]
key = "exhibit.key"

[[collectors]]
name = "echo-ok"
kind = "command"
schedule = "@daily"
retries = 0
{}

[[collectors]]
name = "echo-fail"
kind = "command"
schedule = "@daily"
retries = 0
{}
"#,
        script(""),
        script("; exit 3")
    ));
    let out = ws
        .cmd(&["-vv", "collect"])
        .env("EXHIBIT_OVERCLAIM_ARGV", ARGV_SECRET)
        .output()
        .unwrap();
    let logs = text(&out);
    assert_eq!(code(&out), 1, "echo-fail fails: {logs}");
    let secrets = [SET_ENV_SECRET, ARGV_SECRET];
    for s in secrets {
        assert!(!logs.contains(s), "`{s}` in the agent's logs: {logs}");
    }

    // The evidence says that something was there, and that it was hidden.
    let ok = show(&ws.store(), "echo-ok/default");
    let p = &ok["payload"];
    assert_eq!(ok["statement"]["predicate"]["status"], "ok", "{ok}");
    assert_eq!(p["output"], "[redacted] --token=[redacted]\n", "{p}");
    assert_eq!(p["stderr_tail"], "stderr: [redacted] --token=[redacted]\n");
    assert_eq!(p["command"][3], "--token=[redacted]", "{p}");
    let failed = show(&ws.store(), "echo-fail/default");
    let pred = &failed["statement"]["predicate"];
    assert_eq!(pred["status"], "failed", "{failed}");
    let err = pred["error"].as_str().unwrap();
    assert!(
        err.contains("exited with status 3")
            && err.contains("stderr: [redacted] --token=[redacted]"),
        "{err}"
    );

    // Nowhere in the store, nor in anything read from it.
    let mut read = vec![
        text(&exhibit_on_store(&ws.store(), &["show", "echo-ok/default"])),
        text(&exhibit_on_store(
            &ws.store(),
            &["show", "echo-fail/default", "--json"],
        )),
        text(&exhibit_on_store(
            &ws.store(),
            &["report", "--since", "7d", "--format", "md"],
        )),
        text(&exhibit_on_store(
            &ws.store(),
            &["report", "--since", "7d", "--json"],
        )),
    ];
    let export = exhibit_on_store(
        &ws.store(),
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
    assert_eq!(code(&export), 0, "{}", text(&export));
    read.push(text(&export));
    let bundle = ws.path().join("bundles/sample.tar.gz");
    std::fs::create_dir_all(bundle.parent().unwrap()).unwrap();
    let sample = exhibit_on_store(
        &ws.store(),
        &[
            "sample",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--seed",
            "s",
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&sample), 0, "{}", text(&sample));
    let stored = everything_under(&ws.store());
    let bundled = everything_under(&ws.path().join("bundles"));
    assert!(
        bundled.contains("[redacted]"),
        "the bundle holds the records"
    );
    for s in secrets {
        assert!(!stored.contains(s), "`{s}` in the store");
        assert!(!bundled.contains(s), "`{s}` in the sample bundle");
        for r in &read {
            assert!(!r.contains(s), "`{s}` read back: {r}");
        }
    }
}

/// A loopback HTTP server: answers each request with `answer(head)` (the
/// request head as text) and keeps every head it received.
struct Server {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (kept, answer) = (kept.clone(), answer.clone());
                std::thread::spawn(move || {
                    let head = read_head(&mut conn);
                    kept.lock().unwrap().push(head.clone());
                    answer(&head, &mut conn);
                });
            }
        });
        Server { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn read_head(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn credential_headers_never_follow_a_redirect_to_another_origin() {
    const API_KEY: &str = "dd-api-key-0123456789abcdef";
    const APP_KEY: &str = "dd-app-key-fedcba9876543210";
    const URL_PASSWORD: &str = "UrlPassw0rd-4e1dc2";
    let elsewhere = Server::start(|_, conn| {
        let body = r#"{"data": []}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let to = elsewhere.port;
    let vendor = Server::start(move |head, conn| {
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let _ = write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    // The shipped Datadog definition: `auth.type = "headers"`.
    let ws = Workspace::new(&format!(
        r#"[agent]
key = "exhibit.key"

[[collectors]]
name = "dd"
kind = "http"
schedule = "@daily"
retries = 0
definition = "datadog-users"
base_url = "http://auditor:{URL_PASSWORD}@127.0.0.1:{}"
api_key = "{API_KEY}"
app_key = "{APP_KEY}"
"#,
        vendor.port
    ));
    let out = ws.run(&["-vv", "collect"]);
    let logs = text(&out);
    assert_eq!(code(&out), 1, "{logs}");

    let sent = vendor.heads();
    assert!(
        sent.iter().any(|h| h.contains(API_KEY)),
        "the vendor itself gets the key: {sent:?}"
    );
    for h in elsewhere.heads() {
        for secret in [API_KEY, APP_KEY, URL_PASSWORD] {
            assert!(
                !h.contains(secret),
                "`{secret}` reached another origin: {h}"
            );
        }
        assert!(!h.to_ascii_lowercase().contains("authorization"), "{h}");
    }
    let stream = stream_of(&ws.store(), "dd");
    let rec = show(&ws.store(), &stream);
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "failed", "{rec}");
    let err = pred["error"].as_str().unwrap();
    assert!(
        err.contains("302")
            && err.contains("another origin")
            && err.contains(&format!("127.0.0.1:{to}")),
        "{err}"
    );
    // The credentials of the base URL are in no message and no record.
    assert!(!logs.contains(URL_PASSWORD), "{logs}");
    let stored = everything_under(&ws.store());
    for secret in [API_KEY, APP_KEY, URL_PASSWORD] {
        assert!(!stored.contains(secret), "`{secret}` in the store");
    }
    assert!(
        stored.contains(&format!("http://[redacted]@127.0.0.1:{}", vendor.port)),
        "the source names the base URL without its credentials"
    );
}

/// Writes a chunked body that never ends, slowly enough that a client
/// without a cap would meet its timeout long before memory ran out.
fn endless(_: &str, conn: &mut TcpStream) {
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n"
    );
    let chunk = "0,".repeat(32 * 1024);
    loop {
        if write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Announces 2 GiB, then trickles.
fn huge(_: &str, conn: &mut TcpStream) {
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n["
    );
    let chunk = "0,".repeat(32 * 1024);
    while conn.write_all(chunk.as_bytes()).is_ok() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

const DEFINITION: &str = r#"description = "Items of a server that does not stop"
criteria = ["CC7.2"]
auth = { type = "none" }
MAX_BODY
[[requests]]
name = "items"
path = "/items"
"#;

#[test]
fn bodies_over_the_cap_fail_promptly_naming_it() {
    let endless = Server::start(endless);
    let huge = Server::start(huge);
    let table = |name: &str, def: &str, port: u16| {
        format!(
            r#"
[[collectors]]
name = "{name}"
kind = "http"
schedule = "@daily"
retries = 0
timeout = "8s"
definition = "{def}"
collectors_dir = "defs"
base_url = "http://127.0.0.1:{port}"
"#
        )
    };
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n{}{}",
        table("endless", "capped", endless.port),
        table("huge", "default-cap", huge.port)
    ));
    std::fs::create_dir_all(ws.path().join("defs")).unwrap();
    std::fs::write(
        ws.path().join("defs/capped.toml"),
        DEFINITION.replace("MAX_BODY", "max_body = 1048576"),
    )
    .unwrap();
    std::fs::write(
        ws.path().join("defs/default-cap.toml"),
        DEFINITION.replace("MAX_BODY", ""),
    )
    .unwrap();
    let began = Instant::now();
    let out = ws.run(&["collect"]);
    let took = began.elapsed();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        took < Duration::from_secs(6),
        "the cap ends the read, not the 8 s timeout: {took:?}"
    );
    for (name, cap) in [("endless", "1048576"), ("huge", "268435456")] {
        let rec = show(&ws.store(), &stream_of(&ws.store(), name));
        let pred = &rec["statement"]["predicate"];
        assert_eq!(pred["status"], "failed", "{rec}");
        let err = pred["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("larger than max_body ({cap} bytes)")),
            "{name}: {err}"
        );
        assert_eq!(rec["payload"]["error_kind"], "fatal", "{rec}");
    }
}

/// Writes `records/<stream>/<seq>.json`: the statement of the record at
/// `from` renumbered to `seq`, with `digest` as its payload digest, and
/// the old signature (which no longer verifies).
fn forge(store: &Path, stream: &str, from: u64, seq: u64, digest: &str) {
    let dir = store.join("records").join(stream);
    let read = |n: u64| -> PathBuf { dir.join(format!("{n:012}.json")) };
    let mut env: Value = serde_json::from_slice(&std::fs::read(read(from)).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut st: Value =
        serde_json::from_slice(&b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    st["predicate"]["seq"] = seq.into();
    st["subject"][0]["digest"]["sha256"] = digest.into();
    env["payload"] = b64.encode(serde_json::to_vec(&st).unwrap()).into();
    std::fs::write(read(seq), serde_json::to_vec(&env).unwrap()).unwrap();
}

#[test]
fn a_malformed_record_never_panics_a_reading_command() {
    for digest in ["a", "€", ""] {
        let ws = Workspace::new(
            "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"s\"\nkind = \"command\"\n\
             schedule = \"@daily\"\ncommand = [\"echo\", \"{\\\"users\\\": [{\\\"login\\\": \\\"alice\\\"}]}\"]\n",
        );
        for _ in 0..2 {
            let out = ws.run(&["collect"]);
            assert_eq!(code(&out), 0, "{}", text(&out));
        }
        forge(&ws.store(), "s/default", 2, 3, digest);
        let bundle = ws.path().join("sample.tar.gz");
        let commands: Vec<Vec<&str>> = vec![
            vec!["list"],
            vec!["show", "s/default"],
            vec!["show", "s/default@3", "--json"],
            vec!["diff", "s/default"],
            vec!["diff", "s/default", "2", "3"],
            vec!["report", "--since", "7d", "--format", "md"],
            vec!["report", "--since", "7d", "--json"],
            vec![
                "export",
                "--format",
                "oscal",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
            ],
            vec![
                "sample",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--seed",
                "1",
                "--size",
                "3",
                "--out",
                bundle.to_str().unwrap(),
            ],
        ];
        for args in commands {
            let out = exhibit_on_store(&ws.store(), &args);
            let said = text(&out);
            assert!(
                code(&out) != 101 && !said.contains("panicked"),
                "digest {digest:?}, {args:?}: {said}"
            );
            assert!(
                matches!(code(&out), 0 | 1),
                "digest {digest:?}, {args:?} exits 0 or 1: {said}"
            );
            if code(&out) == 1 {
                assert!(
                    String::from_utf8_lossy(&out.stderr).trim().len() > 10,
                    "digest {digest:?}, {args:?} says why: {said}"
                );
            }
        }
    }
}

#[test]
fn a_pull_request_whose_checks_cannot_be_read_stays_in_the_population() {
    let url = scenario("exhibit-pull-requests-checks-refused");
    let ws = Workspace::new(&config(&[collector(
        "gh-prs",
        "github-pull-requests",
        &url,
        "initial_window = \"3650d\"",
    )]));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "a partial record: {}", text(&out));
    let rec = show(&ws.store(), &format!("gh-prs/{ORG}"));
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "partial", "{rec}");
    let p = &rec["payload"];
    assert_eq!(p["count"], 2, "both merged pull requests are kept: {p}");
    let pulls = p["pull_requests"].as_array().unwrap();
    let one = &pulls[0];
    assert_eq!(one["number"], 1);
    assert_eq!(one["checks"]["required"]["build"]["passed"], true, "{one}");
    assert!(one.get("missing").is_none(), "{one}");
    let two = &pulls[1];
    assert_eq!(two["number"], 2);
    assert_eq!(two["merged_by"], "dave", "{two}");
    assert_eq!(two["independent_approval"], false);
    assert_eq!(two["checks"], Value::Null, "unknown, not passing: {two}");
    let missing = two["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{two}");
    let m = missing[0].as_str().unwrap();
    assert!(
        m.starts_with("check runs:") && m.contains("Resource not accessible by integration"),
        "{m}"
    );
    let err = pred["error"].as_str().unwrap();
    assert!(err.contains("api#2: check runs:"), "{err}");
    // Not moved on: the window is read again next time.
    assert_eq!(
        pred["cursor"]["merged_since"], p["window"]["since"],
        "{pred}"
    );
    assert_all_consumed();
}
