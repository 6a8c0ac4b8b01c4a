//! `exhibit sample` bundles: reproducible samples, and a `verify.sh` that
//! checks them with standard tools only — agreeing with `exhibit verify
//! --bundle` on the genuine bundle and on every tampering.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Workspace, code, text, unpack};

fn store_with_history() -> Workspace {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "iam"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]

[[collectors]]
name = "repos"
kind = "command"
schedule = "@weekly"
command = ["sh", "-c", "echo \"{\\\"repos\\\": [\\\"app\\\"], \\\"at\\\": \\\"$(date +%s%N)\\\"}\""]
"#,
    );
    for i in 0..8 {
        std::fs::write(
            ws.path().join("users.json"),
            format!(r#"{{"users": [{{"user_name": "u{i}", "mfa": true}}]}}"#),
        )
        .unwrap();
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    ws
}

fn sample(ws: &Workspace, seed: &str, extra: &[&str]) -> PathBuf {
    let out_path = ws.path().join(format!("sample-{seed}.tar.gz"));
    let mut args = vec![
        "sample",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--seed",
        seed,
        "--out",
        out_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ws.run(&args);
    assert_eq!(code(&out), 0, "{}", text(&out));
    out_path
}

fn sampled(root: &Path) -> Value {
    let m: Value =
        serde_json::from_slice(&std::fs::read(root.join("sample.json")).unwrap()).unwrap();
    m["streams"].clone()
}

/// Runs the bundle's verify.sh; returns (passed, output).
pub(crate) fn verify_sh(root: &Path, key: Option<&Path>) -> (bool, String) {
    let mut c = Command::new("sh");
    c.arg("verify.sh").current_dir(root).env_remove("KEY");
    if let Some(k) = key {
        c.env("KEY", k);
    }
    let out = c.output().unwrap();
    (out.status.success(), text(&out))
}

/// Packs a (tampered) bundle directory and runs `exhibit verify --bundle`.
pub(crate) fn verify_rust(ws: &Workspace, root: &Path, name: &str) -> (i32, String) {
    let packed = ws.path().join(format!("{name}.tar.gz"));
    let st = Command::new("tar")
        .arg("czf")
        .arg(&packed)
        .arg("exhibit-sample")
        .current_dir(root.parent().unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let out = ws.run(&["verify", "--bundle", packed.to_str().unwrap()]);
    (code(&out), text(&out))
}

fn records_of(root: &Path, stream: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("records").join(stream))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn samples_are_reproducible_and_sized_as_asked() {
    let ws = store_with_history();
    let (_a, ra) = unpack(&sample(&ws, "fy2026", &["--size", "3"]));
    let (_b, rb) = unpack(&sample(&ws, "fy2026", &["--size", "3"]));
    let (_c, rc) = unpack(&sample(&ws, "another-seed", &["--size", "3"]));
    assert_eq!(
        sampled(&ra),
        sampled(&rb),
        "the same seed draws the same sample"
    );
    assert_ne!(
        sampled(&ra)[0]["sampled"],
        sampled(&rc)[0]["sampled"],
        "another seed draws another sample"
    );
    let iam = &sampled(&ra)[0];
    assert_eq!(iam["stream"], "iam/default");
    assert_eq!(iam["population"], 8);
    assert_eq!(iam["size"], 3);
    assert_eq!(iam["frequency"], "daily");
    // Default sizes by frequency (daily 25, weekly 10) are capped by the
    // population.
    let (_d, rd) = unpack(&sample(&ws, "defaults", &[]));
    let s = sampled(&rd);
    assert_eq!(s[1]["frequency"], "weekly");
    assert_eq!(s[0]["size"], 8);
    // Every record of the period is in the bundle; only sampled payloads.
    assert_eq!(records_of(&ra, "iam/default").len(), 8);
    let blobs = walk_count(&ra.join("blobs"));
    assert_eq!(blobs, 6, "3 sampled payloads per stream");
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk_count(&p) } else { 1 }
        })
        .sum()
}

#[test]
fn verify_sh_and_exhibit_agree_on_genuine_and_tampered_bundles() {
    for tool in ["openssl", "sha256sum", "awk", "sed", "tar"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .unwrap();
        assert!(
            found.success(),
            "`{tool}` is needed by this test: install it"
        );
    }
    let ws = store_with_history();
    let bundle = sample(&ws, "audit", &["--size", "3"]);

    // Genuine, verified in an empty directory with standard tools.
    let (_g, root) = unpack(&bundle);
    let (ok, out) = verify_sh(&root, None);
    assert!(ok, "{out}");
    assert!(
        out.contains("VERIFIED") && out.contains("checked 16 record(s), 6 payload(s)"),
        "{out}"
    );
    let out = ws.run(&["verify", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // With the auditor's own copy of the key.
    let key = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = ws.path().join("auditor.pub");
    std::fs::copy(&key, &copy).unwrap();
    assert!(verify_sh(&root, Some(&copy)).0);
    let other = ws.path().join("other.pub");
    std::fs::write(
        &other,
        exhibit::evidence::keys::Signer::generate()
            .public()
            .to_pem(),
    )
    .unwrap();
    let (ok, out) = verify_sh(&root, Some(&other));
    assert!(!ok && out.contains("signature does not verify"), "{out}");

    let sampled_iam: Vec<String> = sampled(&root)[0]["sampled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

    type Tamper = fn(&Path, &[String]);
    let cases: &[(&str, Tamper)] = &[
        ("changed-blob", |r, sampled| {
            let rec = std::fs::read(r.join(&sampled[0])).unwrap();
            let st: exhibit::evidence::record::Statement<Value> =
                exhibit::evidence::record::peek(&rec).unwrap();
            let blob = r.join(exhibit::evidence::layout::blob(
                &st.subject[0].digest.sha256,
            ));
            let t = std::fs::read_to_string(&blob)
                .unwrap()
                .replace("true", "false");
            std::fs::write(&blob, t).unwrap();
        }),
        ("removed-record", |r, _| {
            let recs = records_of(r, "iam/default");
            let victim = recs[4]
                .strip_prefix(r)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            std::fs::remove_file(&recs[4]).unwrap();
            // Cover the tracks in the manifest too.
            let m = std::fs::read_to_string(r.join("MANIFEST.sha256")).unwrap();
            let kept: String = m
                .lines()
                .filter(|l| !l.ends_with(&victim))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(r.join("MANIFEST.sha256"), kept).unwrap();
        }),
        ("swapped-signature", |r, _| {
            let recs = records_of(r, "iam/default");
            let sig = |p: &Path| {
                let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                v["signatures"][0]["sig"].as_str().unwrap().to_string()
            };
            let (a, b) = (sig(&recs[2]), sig(&recs[3]));
            let t = std::fs::read_to_string(&recs[2]).unwrap().replace(&a, &b);
            std::fs::write(&recs[2], t).unwrap();
        }),
        ("reordered-chain", |r, _| {
            let recs = records_of(r, "iam/default");
            let tmp = r.join("tmp.json");
            std::fs::rename(&recs[5], &tmp).unwrap();
            std::fs::rename(&recs[6], &recs[5]).unwrap();
            std::fs::rename(&tmp, &recs[6]).unwrap();
        }),
    ];
    for (name, tamper) in cases {
        let (_t, root) = unpack(&bundle);
        tamper(&root, &sampled_iam);
        let (ok, sh_out) = verify_sh(&root, None);
        assert!(
            !ok && sh_out.contains("NOT VERIFIED"),
            "{name}: verify.sh passed:\n{sh_out}"
        );
        let (c, rust_out) = verify_rust(&ws, &root, name);
        assert_eq!(c, 1, "{name}: exhibit verify --bundle passed:\n{rust_out}");
    }
}

#[test]
fn a_period_that_starts_mid_chain_verifies_and_still_catches_a_gap() {
    let ws = store_with_history();
    let show = ws.run(&["show", "iam/default@4", "--json"]);
    let rec: Value = serde_json::from_slice(&show.stdout).unwrap();
    let from = rec["statement"]["predicate"]["finished_at"]
        .as_str()
        .unwrap()
        .to_string();
    let out_path = ws.path().join("mid.tar.gz");
    let out = ws.run(&[
        "sample",
        "--from",
        &from,
        "--to",
        "2100-01-01",
        "--seed",
        "mid",
        "--size",
        "2",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let (_d, root) = unpack(&out_path);
    let iam = records_of(&root, "iam/default");
    assert_eq!(iam.len(), 5, "records 4 to 8");
    assert!(iam[0].ends_with("000000000004.json"));
    let (ok, said) = verify_sh(&root, None);
    assert!(ok, "{said}");
    let out = ws.run(&["verify", "--bundle", out_path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Removing a record inside the period is still caught.
    std::fs::remove_file(&iam[2]).unwrap();
    let (ok, said) = verify_sh(&root, None);
    assert!(!ok, "{said}");
    let (c, said) = verify_rust(&ws, &root, "mid-gap");
    assert_eq!(c, 1, "{said}");
}

#[test]
fn a_sample_with_nothing_to_prove_is_refused_and_streams_limit_only_the_draw() {
    let ws = store_with_history();
    let run = |args: &[&str]| {
        let out_path = ws.path().join("refused.tar.gz");
        let mut all = vec!["sample", "--out", out_path.to_str().unwrap()];
        all.extend_from_slice(args);
        (ws.run(&all), out_path)
    };
    // A period before the store existed: no checkpoint, no record.
    let (out, path) = run(&["--from", "2000-01-01", "--to", "2000-12-31", "--seed", "s"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("no record to sample in the period"),
        "{}",
        text(&out)
    );
    assert!(!path.exists(), "no bundle is written");
    // A seed that verify.sh could not redraw, and a reversed period.
    let (out, _) = run(&[
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--seed",
        "a\nb",
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let (out, _) = run(&["--from", "2100-01-01", "--to", "2000-01-01", "--seed", "s"]);
    assert_eq!(code(&out), 2, "{}", text(&out));

    // --stream draws from one stream; the bundle still holds the whole
    // population, and both verifiers redraw it.
    let bundle = sample(&ws, "one", &["--stream", "iam/default", "--size", "2"]);
    let (_d, root) = unpack(&bundle);
    assert_eq!(
        std::fs::read_to_string(root.join("streams.txt")).unwrap(),
        "iam/default\n"
    );
    assert_eq!(records_of(&root, "repos/default").len(), 8);
    assert_eq!(walk_count(&root.join("blobs")), 2);
    let (ok, said) = verify_sh(&root, None);
    assert!(ok, "{said}");
    assert!(
        said.contains("sampled: 2 of 8 record(s) of iam/default, redrawn from the seed"),
        "{said}"
    );
    let out = ws.run(&["verify", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Population:  16 record(s) of the period"),
        "{}",
        text(&out)
    );
}
