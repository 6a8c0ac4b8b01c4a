//! docs/verify-offline.md promises that an auditor can check a record with
//! `sha256sum` and `openssl` alone: run exactly the documented commands.

use std::path::Path;
use std::process::Command;

use crate::support::{Workspace, code, copy_tree, text};

/// The first ```sh block of the document, verbatim.
fn documented_commands() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/verify-offline.md"
    ))
    .expect("docs/verify-offline.md exists");
    let start = doc.find("```sh\n").expect("the doc has a sh block") + 6;
    let end = start + doc[start..].find("```").expect("the block ends");
    doc[start..end].to_string()
}

fn run_documented(store: &Path, record: &str, previous: &str, key: &Path) -> (bool, String) {
    let script = format!("set -e\n{}", documented_commands());
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(store)
        .env("RECORD", record)
        .env("PREVIOUS", previous)
        .env("KEY", key)
        .output()
        .expect("sh runs");
    (out.status.success(), text(&out))
}

#[test]
fn the_documented_openssl_commands_verify_a_record_and_catch_tampering() {
    for tool in ["openssl", "sha256sum", "sed"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .unwrap();
        assert!(
            found.success(),
            "`{tool}` is needed by this test and was not found: install it"
        );
    }
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "users"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
"#,
    );
    for users in [
        r#"[{"user":"alice"}]"#,
        r#"[{"user":"alice"},{"user":"bob"}]"#,
    ] {
        std::fs::write(ws.path().join("users.json"), users).unwrap();
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let store = ws.store();
    let key = std::fs::read_dir(store.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let auditor_key = ws.path().join("auditor-copy.pub");
    std::fs::copy(&key, &auditor_key).unwrap();
    let r1 = "records/users/default/000000000001.json";
    let r2 = "records/users/default/000000000002.json";

    let (ok, out) = run_documented(&store, r2, r1, &auditor_key);
    assert!(ok, "{out}");
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    assert!(out.contains(": OK"), "{out}");
    assert!(
        out.contains(&format!("{r1}: OK")),
        "the chain link is checked: {out}"
    );
    assert!(out.contains("\"seq\":2"), "{out}");

    let (ok, out) = run_documented(&store, r1, "", &auditor_key);
    assert!(ok, "{out}");
    assert!(out.contains("first record"), "{out}");

    // A changed payload blob fails the hash step.
    let copy = ws.path().join("tampered");
    copy_tree(&store, &copy);
    let blob = walk_first(&copy.join("blobs"), &|p: &Path| {
        std::fs::read_to_string(p).is_ok_and(|s| s.contains("bob"))
    });
    std::fs::write(
        &blob,
        std::fs::read_to_string(&blob)
            .unwrap()
            .replace("bob", "eve"),
    )
    .unwrap();
    let (ok, out) = run_documented(&copy, r2, r1, &auditor_key);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED"), "{out}");

    // Another key: the signature step fails.
    let other = ws.path().join("other.pub");
    std::fs::write(
        &other,
        exhibit::evidence::keys::Signer::generate()
            .public()
            .to_pem(),
    )
    .unwrap();
    let (ok, out) = run_documented(&store, r2, r1, &other);
    assert!(!ok, "{out}");
    assert!(out.contains("Signature Verification Failure"), "{out}");

    // A wrong predecessor: the link step fails.
    let (ok, out) = run_documented(&store, r2, r2, &auditor_key);
    assert!(!ok, "{out}");
}

fn walk_first(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> std::path::PathBuf {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let found = walk_first(&p, pred);
            if !found.as_os_str().is_empty() {
                return found;
            }
        } else if pred(&p) {
            return p;
        }
    }
    std::path::PathBuf::new()
}
