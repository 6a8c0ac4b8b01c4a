//! Several agents share one store, each owning a deterministic share of the
//! streams: every stream is collected exactly once per run or slot, no
//! stream has two writers, and the store verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Workspace, code, text};

fn config(schedule: &str) -> String {
    let mut c =
        String::from("[agent]\nid = \"fleet\"\ncatch_up = false\nshutdown_grace = \"5s\"\n");
    for i in 0..12 {
        c.push_str(&format!(
            "\n[[collectors]]\nname = \"c{i:02}\"\nkind = \"command\"\nschedule = \"{schedule}\"\ncommand = [\"echo\", \"{{\\\"n\\\": {i}}}\"]\n"
        ));
    }
    c
}

/// stream → list of (agent, scheduled_for) of its records.
fn records_by_stream(ws: &Workspace) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for i in 0..12 {
        let stream = format!("c{i:02}/fleet");
        let dir = ws.store().join("records").join(&stream);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            out.entry(stream).or_default();
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let st: exhibit::evidence::record::Statement<Value> =
                exhibit::evidence::record::peek(&bytes).unwrap();
            out.entry(stream.clone()).or_default().push((
                st.predicate["agent"].as_str().unwrap().to_string(),
                st.predicate["scheduled_for"].clone(),
            ));
        }
    }
    out
}

fn verify_ok(ws: &Workspace) -> Value {
    let out = ws.run(&["verify", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn three_agents_collect_each_stream_exactly_once() {
    let ws = Workspace::new(&config("@daily"));
    for _round in 0..2 {
        let children: Vec<_> = (0..3)
            .map(|i| {
                ws.cmd(&["collect"])
                    .env("EXHIBIT_SHARD", format!("{i}/3"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_eq!(code(&out), 0, "{}", text(&out));
        }
    }
    let by_stream = records_by_stream(&ws);
    let mut agents_used = BTreeSet::new();
    for (stream, recs) in &by_stream {
        assert_eq!(
            recs.len(),
            2,
            "{stream}: collected {} times in 2 rounds",
            recs.len()
        );
        let writers: BTreeSet<_> = recs.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(
            writers.len(),
            1,
            "{stream} has several writers: {writers:?}"
        );
        let expected = format!("fleet-{}", exhibit::shard::owner(stream, 3));
        assert_eq!(writers.into_iter().next().unwrap(), expected, "{stream}");
        agents_used.insert(expected);
    }
    assert_eq!(agents_used.len(), 3, "every replica got a share");
    let report = verify_ok(&ws);
    assert_eq!(report["records"], 24);
    assert_eq!(
        report["checkpoints"], 6,
        "one chain per replica, one checkpoint per run"
    );
}

#[test]
fn three_daemons_cover_every_slot_once() {
    let ws = Workspace::new(&config("*/2 * * * * *"));
    let mut daemons: Vec<_> = (0..3)
        .map(|i| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            ws.cmd(&["run", "--admin-listen", &format!("127.0.0.1:{port}")])
                .env("EXHIBIT_SHARD", format!("{i}/3"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(6500));
    for d in &daemons {
        std::process::Command::new("kill")
            .args(["-TERM", &d.id().to_string()])
            .status()
            .unwrap();
    }
    for d in &mut daemons {
        assert!(d.wait().unwrap().success());
    }
    for (stream, recs) in records_by_stream(&ws) {
        assert!(recs.len() >= 2, "{stream}: only {} records", recs.len());
        let slots: Vec<&Value> = recs.iter().map(|(_, s)| s).collect();
        let unique: BTreeSet<String> = slots.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            unique.len(),
            slots.len(),
            "{stream}: a slot was collected twice: {slots:?}"
        );
        let writers: BTreeSet<_> = recs.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(writers.len(), 1, "{stream} has several writers");
    }
    verify_ok(&ws);
}
