//! What the store's streams say is true: a command's stream names the agent
//! that ran it (and an upgraded store's old `<name>/local` ends where its
//! successor begins, without a gap), a collector that never produced a
//! record is named rather than absent, and a reader that leaves early ends
//! the reading commands quietly.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::net::free_port;
use crate::support::{Workspace, code, exhibit_on_store, text};
use crate::truthful::{Daemon, count, records, show};

/// `verify --json` (with the workspace's config) over a period ending `to`.
fn verify_json(ws: &Workspace, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["verify", "--json"];
    all.extend(args);
    let out = ws.run(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (code(&out), v)
}

fn stream<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == name)
        .unwrap_or_else(|| panic!("no stream {name}: {report:#}"))
}

/// An agent of its own (config and key) writing to the shared `store`.
fn host(id: &str, store: &std::path::Path) -> Workspace {
    Workspace::new(&format!(
        r#"
[agent]
id = "{id}"

[store]
location = "{}"

[[collectors]]
name = "uptime"
kind = "command"
schedule = "@daily"
command = ["echo", "{{\"host\": \"{id}\"}}"]
"#,
        store.display()
    ))
}

#[test]
fn two_agents_sharing_a_store_write_one_command_stream_each() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("evidence");
    let a = host("host-a", &store);
    let b = host("host-b", &store);
    for ws in [&a, &b] {
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let out = exhibit_on_store(&store, &["list", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let streams: Vec<&str> = lines
        .iter()
        .map(|l| l["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["uptime/host-a", "uptime/host-b"], "{lines:#?}");
    for (ws, id) in [(&a, "host-a"), (&b, "host-b")] {
        let r = show(ws, &format!("uptime/{id}@1"));
        let p = &r["statement"]["predicate"];
        assert_eq!(p["agent"], id, "{r:#}");
        assert_eq!(p["status"], "ok", "{r:#}");
        assert_eq!(r["payload"]["output"]["host"], id, "{r:#}");
        // A stream new to this version, with nothing before it.
        assert!(p.get("continues").is_none(), "{r:#}");
    }
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

const TICKS: &str = r#"
[agent]
id = "web-1"
catch_up = false
shutdown_grace = "5s"

[[collectors]]
name = "tick"
kind = "command"
schedule = "*/2 * * * * *"
command = ["echo", "{\"tick\": 1}"]
retries = 0
"#;

/// The newest slot `stream` served: a period ending there owes nothing
/// after it.
fn last_served(ws: &Workspace, stream: &str) -> String {
    records(ws, stream)
        .iter()
        .filter_map(|r| r["statement"]["predicate"]["scheduled_for"].as_str())
        .max()
        .unwrap_or_else(|| panic!("{stream} served no slot"))
        .to_string()
}

#[test]
fn an_upgraded_store_s_local_stream_ends_where_the_agent_s_own_begins() {
    // What earlier versions wrote: every command stream was `<name>/local`.
    let old = TICKS.replace("retries = 0", "retries = 0\nstream_key = \"local\"");
    let ws = Workspace::new(&old);
    let d = Daemon::start(&ws, free_port(), true);
    d.wait_until("two old records", 20, |_| count(&ws, "tick/local") >= 2);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    std::thread::sleep(Duration::from_millis(2500));

    // The upgrade: the stream key is no longer given.
    std::fs::write(ws.config(), TICKS).unwrap();
    let d = Daemon::start(&ws, free_port(), true);
    d.wait_until("the new stream", 20, |_| count(&ws, "tick/web-1") >= 2);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let first = show(&ws, "tick/web-1@1");
    let p = &first["statement"]["predicate"];
    assert_eq!(p["continues"], "tick/local", "{first:#}");
    assert_eq!(p["seq"], 1);
    let old_records = count(&ws, "tick/local");
    // The downtime of the upgrade was recorded in the old stream, before
    // it ended.
    let last_old = show(&ws, &format!("tick/local@{old_records}"));
    assert_eq!(
        last_old["statement"]["predicate"]["status"], "missed",
        "{last_old:#}"
    );
    assert!(
        records(&ws, "tick/web-1")[1..]
            .iter()
            .all(|r| r["statement"]["predicate"].get("continues").is_none()),
        "only the first record says which stream it continues"
    );

    // Restarted again: the ended stream gets no more missed records, and
    // no metrics that would call it stale.
    std::thread::sleep(Duration::from_millis(2500));
    let d = Daemon::start(&ws, free_port(), true);
    let before = count(&ws, "tick/web-1");
    d.wait_until("a collection after the restart", 20, |_| {
        count(&ws, "tick/web-1") > before + 1
    });
    let metrics = d.get("/metrics").1;
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert_eq!(count(&ws, "tick/local"), old_records, "{log}");
    assert!(!metrics.contains("stream=\"tick/local\""), "{metrics}");
    assert!(metrics.contains("stream=\"tick/web-1\""), "{metrics}");

    // Every slot up to the last one served is accounted for, in one
    // stream or the other: INTACT, with the config and without.
    let to = last_served(&ws, "tick/web-1");
    let (c, v) = verify_json(&ws, &["--to", &to]);
    assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");
    let old_cov = &stream(&v, "tick/local")["coverage"];
    assert_eq!(old_cov["continued_in"], "tick/web-1", "{v:#}");
    assert_eq!(old_cov["unaccounted"], 0, "{v:#}");
    assert!(old_cov["expected"].as_u64().unwrap() >= 3, "{v:#}");
    assert!(old_cov["missed_recorded"].as_u64().unwrap() >= 1, "{v:#}");
    let new_cov = &stream(&v, "tick/web-1")["coverage"];
    assert_eq!(new_cov["unaccounted"], 0, "{v:#}");
    assert!(new_cov.get("continued_in").is_none(), "{v:#}");
    let out = exhibit_on_store(&ws.store(), &["verify", "--to", &to, "--coverage"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("(ended: continued in tick/web-1)"),
        "{}",
        text(&out)
    );

    // The old history is all there, and a period that ends before the
    // switch is judged on the old stream alone.
    assert_eq!(records(&ws, "tick/local").len(), old_records);
    let old_to = records(&ws, "tick/local")
        .iter()
        .filter(|r| r["statement"]["predicate"]["status"] == "ok")
        .filter_map(|r| r["statement"]["predicate"]["scheduled_for"].as_str())
        .max()
        .unwrap()
        .to_string();
    let (c, v) = verify_json(&ws, &["--to", &old_to]);
    assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");
}

const TWO: &str = r#"
[agent]
id = "web-2"

[[collectors]]
name = "ran"
kind = "command"
schedule = "@hourly"
command = ["echo", "{\"ran\": true}"]

[[collectors]]
name = "pending"
kind = "command"
schedule = "@hourly"
command = ["echo", "{\"pending\": true}"]

[[collectors]]
name = "off"
kind = "command"
schedule = "@hourly"
enabled = false
command = ["echo", "{}"]
"#;

#[test]
fn a_collector_that_never_produced_a_record_is_named_by_list_report_and_verify() {
    let ws = Workspace::new(TWO);
    let out = ws.run(&["collect", "ran"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let out = ws.run(&["list"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let listed = text(&out);
    let line = listed
        .lines()
        .find(|l| l.starts_with("pending/*"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("never collected"), "{listed}");
    assert!(line.contains("command"), "{listed}");
    assert!(listed.contains("ran/web-2"), "{listed}");
    assert!(
        !listed.contains("off"),
        "a disabled collector is not expected: {listed}"
    );
    let out = ws.run(&["list", "--json"]);
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let never: Vec<&Value> = lines
        .iter()
        .filter(|l| l["last_status"] == "never collected")
        .collect();
    assert_eq!(never.len(), 1, "{lines:#?}");
    assert_eq!(
        (never[0]["stream"].as_str(), never[0]["records"].as_u64()),
        (Some("pending/*"), Some(0))
    );
    // The auditor's view of the store alone lists what is in it.
    let out = exhibit_on_store(&ws.store(), &["list"]);
    assert!(!text(&out).contains("pending"), "{}", text(&out));

    let out = ws.run(&["report", "--format", "md"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let md = text(&out);
    assert!(
        md.contains("- **high** `pending/*`: collector `pending` (command) is configured but has no evidence yet: its schedule `@hourly` was due 24 time(s) in the window"),
        "{md}"
    );
    let out = ws.run(&["report", "--json"]);
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        review["never_collected"][0]["streams"], "pending/*",
        "{review:#}"
    );
    assert_eq!(
        review["never_collected"][0]["highlight"]["rule"],
        "never_collected"
    );
    assert_eq!(review["never_collected"].as_array().unwrap().len(), 1);

    // Three hours in which `pending` was due and wrote nothing.
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(3)).to_rfc3339();
    let to = now.to_rfc3339();
    let (c, v) = verify_json(&ws, &["--from", &from, "--to", &to]);
    assert_eq!((c, v["verdict"].as_str()), (1, Some("INCOMPLETE")), "{v:#}");
    let gaps = v["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{v:#}");
    assert_eq!(gaps[0]["location"], "records/pending/", "{v:#}");
    assert_eq!(gaps[0]["code"], "never_collected", "{v:#}");
    assert!(
        gaps[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("collector `pending` (command) is enabled in the config but has no record at all: its schedule `@hourly` was due 3 time(s)"),
        "{v:#}"
    );
    let out = ws.run(&["verify", "--from", &from, "--to", &to]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("never_collected"), "{}", text(&out));
    // Without the config, the store is judged as it is.
    let out = exhibit_on_store(&ws.store(), &["verify", "--from", &from, "--to", &to]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Once it has a record, it is a stream like the others.
    let out = ws.run(&["collect", "pending"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (c, v) = verify_json(&ws, &["--from", &from, "--to", &to]);
    assert_eq!((c, v["verdict"].as_str()), (0, Some("INTACT")), "{v:#}");
    assert!(!text(&ws.run(&["list"])).contains("never collected"));
}

#[test]
fn commands_end_quietly_when_their_reader_leaves() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "users"
kind = "command"
schedule = "@daily"
shell = true
command = "s=$(date +%N); printf '{\"users\": ['; i=0; while [ $i -lt 3000 ]; do printf '{\"name\": \"u%d-%s\"},' $i $s; i=$((i+1)); done; printf '{\"name\": \"end\"}]}'"
"#,
    );
    for _ in 0..2 {
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["diff", "users/default"],
        &["diff", "users/default", "--json"],
        &["report", "--format", "md"],
        &["report", "--json"],
        &["verify"],
        &["verify", "--json"],
        &["collect"],
        &["config", "check"],
        &["controls", "test"],
        &["kinds"],
    ] {
        // `exhibit list | head -n1` with a reader gone before the output
        // comes: every write meets a closed pipe.
        let mut child = ws
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
