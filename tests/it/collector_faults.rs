//! What a collector does when the API misbehaves: each fault a named
//! outcome in the evidence, never a crash and never a silent gap. The peer
//! is a loopback server that answers each connection with the next scripted
//! response, driven through the `http` kind and the real binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::{Workspace, code, text};

/// One scripted answer.
#[derive(Clone)]
enum Answer {
    /// These bytes, then the connection closes.
    Raw(String),
    /// Nothing for this long (the client gives up first).
    Stall(Duration),
    /// These bytes at once, before the request: what a TLS client meets
    /// when the server speaks plain HTTP.
    Immediate(String),
}

fn http(status: &str, headers: &str, body: &str) -> Answer {
    Answer::Raw(format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    ))
}

fn users() -> Answer {
    http(
        "200 OK",
        "Content-Type: application/json\r\n",
        r#"{"users":[{"id":1,"login":"alice"},{"id":2,"login":"bob"}]}"#,
    )
}

/// Serves `script` in order, one answer a connection; the last answer
/// repeats. Returns the port and the count of requests served.
fn serve(script: Vec<Answer>) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(Mutex::new(0usize));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let n = {
                let mut c = count.lock().unwrap();
                *c += 1;
                *c - 1
            };
            let answer = script[n.min(script.len() - 1)].clone();
            std::thread::spawn(move || answer_one(&mut conn, answer));
        }
    });
    (port, served)
}

fn answer_one(conn: &mut TcpStream, answer: Answer) {
    if let Answer::Immediate(bytes) = &answer {
        let _ = conn.write_all(bytes.as_bytes());
        return;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match answer {
        Answer::Raw(bytes) => {
            let _ = conn.write_all(bytes.as_bytes());
        }
        Answer::Stall(d) => std::thread::sleep(d),
        Answer::Immediate(_) => unreachable!(),
    }
}

const DEFINITION: &str = r#"
description = "A user directory that misbehaves"
criteria = ["CC6.1"]

[auth]
type = "none"

[rate_limit]
retries = 2
max_wait_secs = 10

[[requests]]
name = "users"
path = "/users"
items = "$.users[*]"
"#;

/// The predicate of the one record of collector `name`.
fn predicate(ws: &Workspace, name: &str) -> Value {
    let out = ws.run(&["show", &format!("{name}/127.0.0.1"), "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    rec["statement"]["predicate"].clone()
}

fn seconds_taken(p: &Value) -> f64 {
    let t = |k: &str| p[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    (t("finished_at") - t("started_at")).as_seconds_f64()
}

#[test]
fn each_api_fault_is_a_named_outcome_in_the_evidence() {
    let truncated = Answer::Raw(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"users\":[{\"id\":1,"
            .into(),
    );
    let scenarios: Vec<(&str, Vec<Answer>, &str)> = vec![
        // Throttled once, told to wait a second: waits, then succeeds.
        (
            "throttled",
            vec![
                http("429 Too Many Requests", "Retry-After: 1\r\n", ""),
                users(),
            ],
            "http",
        ),
        // A burst of 5xx within the retry budget: succeeds.
        (
            "burst",
            vec![
                http("503 Service Unavailable", "", ""),
                http("502 Bad Gateway", "", ""),
                users(),
            ],
            "http",
        ),
        // 5xx beyond the budget: a failed record that says so.
        (
            "down",
            vec![http("500 Internal Server Error", "", "")],
            "http",
        ),
        // Slower than the attempt's timeout.
        ("slow", vec![Answer::Stall(Duration::from_secs(8))], "http"),
        // The body stops short of its Content-Length.
        ("truncated", vec![truncated], "http"),
        // 200 with a body that is not JSON.
        (
            "html",
            vec![http(
                "200 OK",
                "Content-Type: text/html\r\n",
                "<html><body>maintenance</body></html>",
            )],
            "http",
        ),
        // TLS to a server that speaks plain HTTP.
        (
            "tls",
            vec![Answer::Immediate(
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".into(),
            )],
            "https",
        ),
    ];
    let mut config = String::new();
    let mut counters = Vec::new();
    for (name, script, scheme) in scenarios {
        let (port, served) = serve(script);
        counters.push((name, served));
        // Only the stall is meant to meet the attempt's timeout; the
        // others retry with backoff (about 0.5 s, then 1 s) and need room.
        let timeout = if name == "slow" { "2s" } else { "20s" };
        config.push_str(&format!(
            r#"
[[collectors]]
name = "{name}"
kind = "http"
schedule = "@daily"
definition = "flaky"
collectors_dir = "defs"
base_url = "{scheme}://127.0.0.1:{port}"
timeout = "{timeout}"
retries = 0
"#
        ));
    }
    let ws = Workspace::new(&config);
    std::fs::create_dir_all(ws.path().join("defs")).unwrap();
    std::fs::write(ws.path().join("defs/flaky.toml"), DEFINITION).unwrap();

    let out = ws.run(&["collect"]);
    let logs = text(&out);
    assert_eq!(code(&out), 1, "some collections failed: {logs}");
    let served = |name: &str| {
        *counters
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .lock()
            .unwrap()
    };

    let p = predicate(&ws, "throttled");
    assert_eq!(p["status"], "ok", "{p}");
    assert!(seconds_taken(&p) >= 1.0, "Retry-After was waited out: {p}");
    assert_eq!(served("throttled"), 2);

    let p = predicate(&ws, "burst");
    assert_eq!(p["status"], "ok", "{p}");
    assert_eq!(served("burst"), 3);

    let p = predicate(&ws, "down");
    assert_eq!(p["status"], "failed", "{p}");
    let err = p["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 500") && err.contains("after 3 tries"),
        "{err}"
    );
    assert_eq!(served("down"), 3);

    let p = predicate(&ws, "slow");
    assert_eq!(p["status"], "failed", "{p}");
    assert!(p["error"].as_str().unwrap().contains("timed out"), "{p}");
    assert!(
        seconds_taken(&p) < 5.0,
        "the attempt ended at its timeout: {p}"
    );

    let p = predicate(&ws, "truncated");
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["error"].as_str().unwrap().contains("reading the body"),
        "{p}"
    );

    let p = predicate(&ws, "html");
    assert_eq!(p["status"], "failed", "{p}");
    assert!(p["error"].as_str().unwrap().contains("JSON"), "{p}");

    let p = predicate(&ws, "tls");
    assert_eq!(p["status"], "failed", "{p}");
    let err = p["error"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        err.contains("get https://127.0.0.1:") && err.contains("/users"),
        "names the request: {err}"
    );
    assert!(
        err.contains("corrupt message") || err.contains("tls") || err.contains("handshake"),
        "says it is TLS: {err}"
    );
    assert!(
        !err.contains("timed out"),
        "a TLS failure, not a timeout: {err}"
    );
    assert_eq!(served("tls"), 3, "connection errors are retried");

    // Every failure is in the chain and the store verifies.
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
