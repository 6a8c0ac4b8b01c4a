//! The kill -9 campaign: run `exhibit collect` and SIGKILL it at random
//! moments — while collecting, canonicalising, writing blobs, records and
//! checkpoints — many times over. After every kill the store must show no
//! problem (an interrupted run is a gap until the next run acknowledges
//! it, then a warning, nothing else), no record or blob seen before may be
//! lost or changed, and the chains go on.
//!
//! `EXHIBIT_KILLS=N cargo test --test it kill_campaign` sets the number of
//! kills (default 1,000); `EXHIBIT_KILL_SEED` replays a campaign.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::support::{Workspace, code, text};

fn snapshot(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let key = format!("{prefix}{name}");
        if e.file_type().unwrap().is_dir() {
            snapshot(&e.path(), &format!("{key}/"), out);
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            out.insert(key, exhibit::evidence::sha256_hex(&bytes));
        }
    }
}

#[test]
fn kill_9_at_random_moments_never_corrupts_or_loses_evidence() {
    let kills: usize = std::env::var("EXHIBIT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("EXHIBIT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill campaign: {kills} kills, EXHIBIT_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Two collectors with payloads of different sizes, so that kills land
    // in every phase of a run.
    let ws = Workspace::new(
        r#"
[agent]
id = "campaign"

[[collectors]]
name = "small"
kind = "command"
schedule = "@daily"
command = ["sh", "-c", "echo \"{\\\"t\\\": \\\"$(date +%s%N)\\\"}\""]
retries = 0

[[collectors]]
name = "large"
kind = "command"
schedule = "@daily"
shell = true
command = "printf '{\"t\":\"%s\",\"pad\":\"' \"$(date +%s%N)\"; head -c 300000 /dev/zero | tr '\\0' x; printf '\"}'"
retries = 0
"#,
    );
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut interrupted = 0;
    let mut completed = 0;
    for i in 0..kills {
        let mut child = ws
            .cmd(&["collect"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
        child.kill().ok();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        } else {
            interrupted += 1;
        }

        let out = ws.run(&["verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("after kill {i} (seed {seed}): {e}: {}", text(&out)));
        if report["records"] == 0 {
            // Killed before any record was written: nothing to vouch for.
            assert_eq!(report["verdict"], "NO EVIDENCE", "{report:#}");
            continue;
        }
        // Never anything broken; an interrupted run is a gap (INCOMPLETE,
        // exit 1) until the next run acknowledges it, then a warning.
        assert_eq!(
            report["problems"].as_array().unwrap().len(),
            0,
            "after kill {i} (seed {seed}) the store does not verify:\n{}",
            text(&out)
        );
        for g in report["gaps"].as_array().unwrap() {
            assert!(
                g["code"] == "awaiting_checkpoint" || g["code"] == "slots_unaccounted",
                "after kill {i} (seed {seed}): {g}"
            );
        }
        let expected = if report["gaps"].as_array().unwrap().is_empty() {
            (0, "INTACT")
        } else {
            (1, "INCOMPLETE")
        };
        assert_eq!(
            (code(&out), report["verdict"].as_str().unwrap()),
            expected,
            "after kill {i} (seed {seed}): {}",
            text(&out)
        );
        for w in report["warnings"].as_array().unwrap() {
            assert_eq!(
                w["code"], "interrupted_run",
                "after kill {i} (seed {seed}): {w}"
            );
        }

        let mut now = BTreeMap::new();
        snapshot(&ws.store(), "", &mut now);
        for (k, h) in &seen {
            assert_eq!(
                now.get(k),
                Some(h),
                "after kill {i} (seed {seed}): {k} was lost or changed"
            );
        }
        seen = now;
    }
    eprintln!(
        "kill campaign: {interrupted} runs killed mid-way, {completed} finished before the kill"
    );
    assert!(
        interrupted > kills / 10,
        "the kills should mostly land mid-run"
    );

    // After the campaign, a clean run continues every chain.
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
