//! The store's filesystem fails under the agent: full, then read-only.
//! Each is a clear error and, where anything can still be written, a failed
//! record; nothing already stored is corrupted, and the chain goes on once
//! the disk is back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Workspace, code, exhibit_on_store, text};

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it and needs root (as CI has): {}",
            text(&out)
        );
        Mount(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn config(store: &Path) -> String {
    format!(
        r#"
[store]
location = "{}"

[[collectors]]
name = "small"
kind = "command"
schedule = "@daily"
command = ["echo", "{{\"ok\": true}}"]
retries = 0

[[collectors]]
name = "big"
kind = "command"
schedule = "@daily"
shell = true
command = "cat big.json"
retries = 0
"#,
        store.display()
    )
}

#[test]
fn a_full_disk_is_a_clear_failure_that_loses_nothing() {
    let ws = Workspace::new("");
    let store = ws.path().join("disk/evidence");
    let _m = Mount::tmpfs(&ws.path().join("disk"), "600k");
    std::fs::write(ws.config(), config(&store)).unwrap();
    std::fs::write(ws.path().join("big.json"), "[]").unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A payload bigger than the disk.
    std::fs::write(
        ws.path().join("big.json"),
        format!("\"{}\"", "x".repeat(2_000_000)),
    )
    .unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("No space left on device"), "{said}");
    // The payload did not fit, but a failed record did: the gap is visible.
    let show = exhibit_on_store(&store, &["show", "big/default", "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(rec["statement"]["predicate"]["status"], "failed");
    assert!(
        rec["statement"]["predicate"]["error"]
            .as_str()
            .unwrap()
            .contains("could not be stored")
    );
    // What was stored before is intact.
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Space again: the chain continues.
    std::fs::write(ws.path().join("big.json"), "[1]").unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = exhibit_on_store(&store, &["verify", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 6);
}

#[test]
fn a_read_only_store_is_a_clear_failure_that_corrupts_nothing() {
    let ws = Workspace::new("");
    let store = ws.path().join("disk/evidence");
    let m = Mount::tmpfs(&ws.path().join("disk"), "8m");
    std::fs::write(ws.config(), config(&store)).unwrap();
    std::fs::write(ws.path().join("big.json"), "[]").unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 0);

    m.remount("ro");
    let out = ws.run(&["collect"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Read-only file system"),
        "{}",
        text(&out)
    );
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "read-only is not corrupt: {}", text(&out));

    m.remount("rw");
    assert_eq!(code(&ws.run(&["collect"])), 0);
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}
