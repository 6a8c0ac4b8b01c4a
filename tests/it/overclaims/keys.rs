//! Overclaims of signing keys: validity windows, stray keys, unsafe key files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use exhibit::evidence::checkpoint::{CheckpointPredicate, PrevCheckpoint};
use exhibit::evidence::keys::Signer;
use exhibit::evidence::layout;
use exhibit::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, RECORD_PREDICATE_TYPE, RecordPredicate, Statement, peek, seal,
};
use exhibit::evidence::sha256_hex;
use serde_json::Value;

use crate::support::{Workspace, code, copy_tree, exhibit_on_store, text};

/// Every object of a store, by key.
pub(crate) type Objects = BTreeMap<String, Vec<u8>>;

const CONFIG: &str = r#"
[agent]
id = "keys-agent"

[[collectors]]
name = "users"
kind = "command"
schedule = "@daily"
command = ["echo", "{\"users\": [\"alice\", \"bob\"]}"]
retries = 0
"#;

/// What someone holding only `signer` can make of a store: every record
/// and checkpoint re-signed by it with every link and listing made
/// consistent again, leaving out the checkpoints in `drop`.
pub(crate) fn rewrite(objects: &mut Objects, signer: &Signer, drop: &[String]) {
    let mut new_sha: BTreeMap<String, String> = BTreeMap::new();
    let mut streams: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for key in objects.keys() {
        if let Some((stream, seq)) = layout::stream_record(key) {
            streams.entry(stream).or_default().push((seq, key.clone()));
        }
    }
    for records in streams.values_mut() {
        records.sort();
        let mut prev: Option<String> = None;
        for (_, key) in records.iter() {
            let st: Statement<RecordPredicate> = peek(&objects[key]).unwrap();
            let mut p = st.predicate.clone();
            p.prev = prev.clone();
            let bytes = seal(st.subject, RECORD_PREDICATE_TYPE, &p, signer);
            let sha = sha256_hex(&bytes);
            new_sha.insert(key.clone(), sha.clone());
            objects.insert(key.clone(), bytes);
            prev = Some(sha);
        }
    }
    let mut checkpoints: Vec<(chrono::DateTime<chrono::Utc>, String)> = objects
        .iter()
        .filter(|(k, _)| layout::is_checkpoint(k))
        .map(|(k, v)| {
            let st: Statement<CheckpointPredicate> = peek(v).unwrap();
            (st.predicate.finished_at, k.clone())
        })
        .collect();
    checkpoints.sort();
    let mut prev: Option<PrevCheckpoint> = None;
    for (_, key) in checkpoints {
        if drop.contains(&key) {
            objects.remove(&key);
            objects.remove(&layout::token(&key));
            continue;
        }
        let mut st: Statement<CheckpointPredicate> = peek(&objects[&key]).unwrap();
        for s in &mut st.subject {
            if let Some(sha) = new_sha.get(&s.name) {
                s.digest.sha256 = sha.clone();
            }
        }
        st.predicate.prev = prev.clone();
        let bytes = seal(st.subject, CHECKPOINT_PREDICATE_TYPE, &st.predicate, signer);
        prev = Some(PrevCheckpoint {
            key: key.clone(),
            sha256: sha256_hex(&bytes),
        });
        objects.insert(key, bytes);
    }
}

/// Every file under `dir`, by its path relative to it.
pub(crate) fn read_store(dir: &Path) -> Objects {
    fn walk(root: &Path, dir: &Path, out: &mut Objects) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = Objects::new();
    walk(dir, dir, &mut out);
    out
}

/// Replaces the store at `dir` by `objects`.
pub(crate) fn write_store(dir: &Path, objects: &Objects) {
    std::fs::remove_dir_all(dir).unwrap();
    for (k, v) in objects {
        let p = dir.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }
}

/// A store written by `collect` twice, `keys rotate`, then `collect` once;
/// returns the workspace, the retired and the new key, and the rotation
/// checkpoint's key.
fn rotated_store() -> (Workspace, Signer, Signer, String) {
    let ws = Workspace::new(CONFIG);
    for _ in 0..2 {
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let out = ws.run(&["keys", "rotate"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rotation = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("rotation checkpoint "))
        .expect("the rotation checkpoint is printed")
        .trim()
        .to_string();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let new = Signer::load(&ws.path().join("exhibit.key")).unwrap();
    let retired = std::fs::read_dir(ws.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("exhibit.key.retired-"))
        .expect("the retired key is kept");
    let old = Signer::load(&retired).unwrap();
    (ws, old, new, rotation)
}

/// The auditor's own copy of a public key, kept outside the store.
fn auditor_copy(ws: &Workspace, signer: &Signer, name: &str) -> PathBuf {
    let p = ws.path().join(name);
    std::fs::write(&p, signer.public().to_pem()).unwrap();
    p
}

fn verify_json(store: &Path, keys: &[&Path]) -> (i32, Value, String) {
    let mut args = vec!["verify", "--json"];
    for k in keys {
        args.push("--key");
        args.push(k.to_str().unwrap());
    }
    let out = exhibit_on_store(store, &args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, text(&out))
}

fn problem_codes(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_new_key_alone_cannot_resign_history_from_before_its_rotation() {
    let (ws, old, new, rotation) = rotated_store();
    let old_pub = auditor_copy(&ws, &old, "old.pub");
    let new_pub = auditor_copy(&ws, &new, "new.pub");
    let (c, report, out) = verify_json(&ws.store(), &[&old_pub, &new_pub]);
    assert_eq!(c, 0, "the rotated store verifies: {out}");
    assert_eq!(report["intact"], true);

    // Everything re-signed by the new key, links and listings made whole
    // again, and the rotation left out.
    let copy = ws.path().join("rewritten");
    copy_tree(&ws.store(), &copy);
    let mut objects = read_store(&copy);
    rewrite(&mut objects, &new, std::slice::from_ref(&rotation));
    write_store(&copy, &objects);
    let (c, report, out) = verify_json(&copy, &[&old_pub, &new_pub]);
    assert_eq!(c, 1, "{out}");
    assert_eq!(report["intact"], false);
    assert!(
        problem_codes(&report).contains(&"key_not_introduced".to_string()),
        "{out}"
    );
    let (c, report, out) = verify_json(&copy, &[]);
    assert_eq!(c, 1, "{out}");
    assert!(
        problem_codes(&report).contains(&"key_not_introduced".to_string()),
        "{out}"
    );

    // A record dated before the rotation, signed by the new key, slipped
    // in as a stream of its own.
    let copy = ws.path().join("backdated");
    copy_tree(&ws.store(), &copy);
    let first = copy.join("records/users/keys-agent/000000000001.json");
    let st: Statement<RecordPredicate> = peek(&std::fs::read(&first).unwrap()).unwrap();
    let mut p = st.predicate.clone();
    p.stream = "users/forged".into();
    p.seq = 1;
    p.prev = None;
    let forged = copy.join("records/users/forged/000000000001.json");
    std::fs::create_dir_all(forged.parent().unwrap()).unwrap();
    std::fs::write(&forged, seal(st.subject, RECORD_PREDICATE_TYPE, &p, &new)).unwrap();
    let (c, report, out) = verify_json(&copy, &[&old_pub, &new_pub]);
    assert_eq!(c, 1, "{out}");
    let window = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "key_window")
        .unwrap_or_else(|| panic!("no key_window problem: {out}"));
    assert_eq!(window["location"], "records/users/forged/000000000001.json");
    assert!(
        window["message"].as_str().unwrap().contains(&rotation),
        "{window}"
    );
}

#[test]
fn a_key_in_keys_that_no_rotation_introduced_is_a_problem() {
    let ws = Workspace::new(CONFIG);
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = exhibit_on_store(&ws.store(), &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let stray = Signer::generate();
    let file = format!("keys/{}.pub", stray.key_id());
    std::fs::write(ws.store().join(&file), stray.public().to_pem()).unwrap();
    let (c, report, out) = verify_json(&ws.store(), &[]);
    assert_eq!(c, 1, "{out}");
    let p = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "key_not_introduced")
        .unwrap_or_else(|| panic!("no key_not_introduced problem: {out}"));
    assert_eq!(p["location"], file);
    let human = exhibit_on_store(&ws.store(), &["verify"]);
    assert_eq!(code(&human), 1);
    assert!(text(&human).contains(&file), "{}", text(&human));
}

#[test]
fn a_signing_key_others_can_read_is_refused_like_ssh_does() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new(CONFIG);
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let key = ws.path().join("exhibit.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [&["collect"][..], &["keys", "show"][..]] {
        let out = ws.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("permissions 0644") && said.contains("too open"),
            "{said}"
        );
        assert!(said.contains(&key.display().to_string()), "{said}");
    }
    let records = std::fs::read_dir(ws.store().join("records/users/keys-agent"))
        .unwrap()
        .count();
    assert_eq!(records, 1, "nothing was signed with the exposed key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_dangling_symlink_at_the_key_path_is_a_clear_error() {
    let ws = Workspace::new(CONFIG);
    let key = ws.path().join("exhibit.key");
    let target = ws.path().join("secrets/agent.pem");
    std::os::unix::fs::symlink(&target, &key).unwrap();
    for args in [&["collect"][..], &["keys", "show"][..]] {
        let out = ws.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("symbolic link") && said.contains("secrets/agent.pem"),
            "{said}"
        );
    }
    assert!(!target.exists());
    assert!(
        !ws.store().join("records/users").exists(),
        "nothing collected"
    );
}
