//! Overclaims of sample bundles and both of their verifiers: every way
//! found to make a tampered bundle pass, each with `MANIFEST.sha256`
//! rewritten to match, must fail `exhibit verify --bundle` and the
//! bundle's own `verify.sh` alike; the genuine bundle passes both, and
//! `verify.sh` says when it trusted the bundle's own keys.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use exhibit::evidence::checkpoint::CheckpointPredicate;
use exhibit::evidence::record::{Statement, peek};
use exhibit::evidence::sha256_hex;
use serde_json::Value;

use crate::support::{Workspace, code, text, unpack};

/// A store of seven runs of two streams.
fn store() -> Workspace {
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
schedule = "@daily"
command = ["sh", "-c", "echo \"{\\\"repos\\\": [\\\"app\\\"], \\\"at\\\": \\\"$(date +%s%N)\\\"}\""]
"#,
    );
    for i in 0..7 {
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

/// When record `seq` of iam/default started: a time between two runs.
fn started(ws: &Workspace, seq: u32) -> String {
    let out = ws.run(&["show", &format!("iam/default@{seq}"), "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    rec["statement"]["predicate"]["started_at"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every regular file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let t = std::fs::symlink_metadata(&p).unwrap().file_type();
            if t.is_dir() {
                walk(root, &p, out);
            } else if t.is_file() {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What an attacker does after tampering: lists every file as it now is.
fn remanifest(root: &Path) {
    let listing: String = files(root)
        .into_iter()
        .filter(|f| f != "MANIFEST.sha256")
        .map(|f| {
            format!(
                "{}  {f}\n",
                sha256_hex(&std::fs::read(root.join(&f)).unwrap())
            )
        })
        .collect();
    std::fs::write(root.join("MANIFEST.sha256"), listing).unwrap();
}

/// The bundle's checkpoints, oldest first, with what each signs.
fn checkpoints(root: &Path) -> Vec<(String, Statement<CheckpointPredicate>)> {
    let mut cps: Vec<(String, Statement<CheckpointPredicate>)> = files(root)
        .into_iter()
        .filter(|f| f.starts_with("checkpoints/") && f.ends_with(".json"))
        .map(|f| {
            let st = peek(&std::fs::read(root.join(&f)).unwrap()).unwrap();
            (f, st)
        })
        .collect();
    cps.sort_by_key(|(_, st)| st.predicate.finished_at);
    cps
}

/// Deletes a run from the bundle: its records (`with_records`) and its
/// checkpoint and token.
fn delete_run(root: &Path, cp: &(String, Statement<CheckpointPredicate>), with_records: bool) {
    if with_records {
        for s in &cp.1.subject {
            std::fs::remove_file(root.join(&s.name)).unwrap();
        }
    }
    std::fs::remove_file(root.join(&cp.0)).unwrap();
    let _ = std::fs::remove_file(root.join(cp.0.replace(".json", ".tsr")));
}

fn lines(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(root.join(name))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(root: &Path, name: &str, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(root.join(name), text).unwrap();
}

/// The payload blob a record signs.
fn blob_of(record: &[u8]) -> String {
    let st: Statement<Value> = peek(record).unwrap();
    exhibit::evidence::layout::blob(&st.subject[0].digest.sha256)
}

/// Runs the bundle's verify.sh; returns (exit code, output).
fn verify_sh(root: &Path, key: Option<&Path>) -> (i32, String) {
    let mut c = Command::new("sh");
    c.arg("verify.sh").current_dir(root).env_remove("KEY");
    if let Some(k) = key {
        c.env("KEY", k);
    }
    let out = c.output().unwrap();
    (code(&out), text(&out))
}

/// Runs `exhibit verify --bundle` on a packed bundle; returns (exit code,
/// output).
fn verify_rust(ws: &Workspace, packed: &Path, key: Option<&Path>) -> (i32, String) {
    let mut args = vec!["verify", "--bundle", packed.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--key", k.to_str().unwrap()]);
    }
    let out = ws.run(&args);
    (code(&out), text(&out))
}

/// Packs the bundle directory `root` as `exhibit sample` would.
fn pack(root: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("czf")
        .arg(out)
        .arg("exhibit-sample")
        .current_dir(root.parent().unwrap())
        .status()
        .unwrap();
    assert!(st.success());
}

/// A gzip bomb: the genuine bundle's files, then an entry whose header
/// claims five gibibytes, followed by one mebibyte of zeros.
fn bomb(root: &Path, out: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all("exhibit-sample", root).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(5 << 30);
    h.set_mode(0o644);
    h.set_path("exhibit-sample/blobs/bomb").unwrap();
    h.set_cksum();
    b.get_mut().extend_from_slice(h.as_bytes());
    b.get_mut().extend(std::iter::repeat_n(0u8, 1 << 20));
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(out).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap();
}

/// Unpacks `packed` as an auditor's tar would, whatever it then says.
fn untar(packed: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let _ = Command::new("tar")
        .arg("xzf")
        .arg(packed)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let root = dir.path().join("exhibit-sample");
    (dir, root)
}

type Tamper = Box<dyn Fn(&Path)>;

#[test]
fn every_bundle_tampering_fails_both_verifiers_alike() {
    for tool in ["openssl", "sha256sum", "awk", "sed", "tar", "comm", "cmp"] {
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
    let ws = store();
    // The period holds runs 3 to 5: run 2 is the last before it, runs 6
    // and 7 come after it, and 7 is the head.
    let (from, to) = (started(&ws, 3), started(&ws, 6));
    let bundle = ws.path().join("sample.tar.gz");
    let out = ws.run(&[
        "sample",
        "--from",
        &from,
        "--to",
        &to,
        "--seed",
        "audit",
        "--size",
        "2",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let sampled_out = text(&out);
    let (_g, genuine) = unpack(&bundle);
    let cps = checkpoints(&genuine);
    assert_eq!(cps.len(), 6, "runs 2 to 7: {cps:?}");
    let head = sha256_hex(&std::fs::read(genuine.join(&cps[5].0)).unwrap());
    assert!(
        sampled_out.contains(&format!("head: {head}")),
        "sample prints the head: {sampled_out}"
    );
    let key = files(&genuine)
        .into_iter()
        .find(|f| f.starts_with("keys/"))
        .unwrap();
    let auditor_key = ws.path().join("auditor.pub");
    std::fs::copy(genuine.join(&key), &auditor_key).unwrap();

    // The genuine bundle passes both, each printing the head; verify.sh
    // says whose keys it trusted.
    let (c, said) = verify_sh(&genuine, None);
    assert_eq!(c, 0, "{said}");
    assert!(
        said.contains(&format!("head: {head}")) && said.contains("population: 6 record(s)"),
        "{said}"
    );
    assert!(
        said.contains("NOTE: no KEY= given: signatures are checked against the bundle's own keys")
            && said.contains("VERIFIED against the bundle's own keys (not independent"),
        "verify.sh without KEY= must say it trusted the bundle's keys: {said}"
    );
    let (c, said) = verify_sh(&genuine, Some(&auditor_key));
    assert_eq!(c, 0, "{said}");
    assert!(!said.contains("bundle's own keys"), "{said}");
    let (c, said) = verify_rust(&ws, &bundle, None);
    assert_eq!(c, 0, "{said}");
    assert!(
        said.contains(&format!("Head:        {head}"))
            && said.contains("Population:  6 record(s) of the period"),
        "{said}"
    );

    let sampled_iam: Vec<String> = lines(&genuine, "sampled.txt")
        .into_iter()
        .filter(|l| l.starts_with("records/iam/"))
        .collect();
    let population_iam: Vec<String> = files(&genuine)
        .into_iter()
        .filter(|f| f.starts_with("records/iam/default/"))
        .collect();
    assert_eq!((sampled_iam.len(), population_iam.len()), (2, 3));
    let store_dir = ws.store();
    let cases: Vec<(&str, Option<&Path>, &str, Tamper)> = vec![
        (
            "first run of the period deleted",
            None,
            "is not here",
            Box::new(move |r| {
                let cps = checkpoints(r);
                delete_run(r, &cps[1], true);
                let kept: Vec<String> = lines(r, "sampled.txt")
                    .into_iter()
                    .filter(|l| r.join(l).exists())
                    .collect();
                write_lines(r, "sampled.txt", &kept);
            }),
        ),
        (
            "last run of the period deleted",
            None,
            "is not here",
            Box::new(|r| {
                let cps = checkpoints(r);
                delete_run(r, &cps[3], true);
                let kept: Vec<String> = lines(r, "sampled.txt")
                    .into_iter()
                    .filter(|l| r.join(l).exists())
                    .collect();
                write_lines(r, "sampled.txt", &kept);
            }),
        ),
        (
            "the head deleted",
            None,
            "is not among the bundle's signed checkpoints",
            Box::new(|r| {
                let cps = checkpoints(r);
                delete_run(r, &cps[5], false);
            }),
        ),
        (
            "all checkpoints deleted",
            None,
            "is not among the bundle's signed checkpoints",
            Box::new(|r| std::fs::remove_dir_all(r.join("checkpoints")).unwrap()),
        ),
        (
            "a middle checkpoint deleted",
            None,
            "is not here",
            Box::new(|r| {
                let cps = checkpoints(r);
                delete_run(r, &cps[2], false);
            }),
        ),
        (
            "a stream dropped from streams.txt",
            None,
            "is listed by a checkpoint of the period but missing",
            Box::new(|r| {
                write_lines(r, "streams.txt", &["iam/default".to_string()]);
                let (drop, keep): (Vec<String>, Vec<String>) = lines(r, "sampled.txt")
                    .into_iter()
                    .partition(|l| l.starts_with("records/repos/"));
                for rec in &drop {
                    std::fs::remove_file(r.join(blob_of(&std::fs::read(r.join(rec)).unwrap())))
                        .unwrap();
                }
                write_lines(r, "sampled.txt", &keep);
                std::fs::remove_dir_all(r.join("records/repos")).unwrap();
            }),
        ),
        (
            "a stream dropped from streams.txt alone",
            None,
            "not a record of a sampled stream",
            Box::new(|r| write_lines(r, "streams.txt", &["iam/default".to_string()])),
        ),
        (
            "the bundle emptied",
            None,
            "no record of the period",
            Box::new(|r| {
                for d in ["records", "blobs", "checkpoints"] {
                    std::fs::remove_dir_all(r.join(d)).unwrap();
                }
                for f in ["streams.txt", "sampled.txt"] {
                    std::fs::write(r.join(f), "").unwrap();
                }
            }),
        ),
        (
            "the bundle emptied, verified with the auditor's key",
            Some(auditor_key.as_path()),
            "no record of the period",
            Box::new(|r| {
                for d in ["records", "blobs", "checkpoints"] {
                    std::fs::remove_dir_all(r.join(d)).unwrap();
                }
                let period: String = std::fs::read_to_string(r.join("period.txt"))
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("head "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(r.join("period.txt"), period).unwrap();
                for f in ["streams.txt", "sampled.txt"] {
                    std::fs::write(r.join(f), "").unwrap();
                }
            }),
        ),
        (
            "hand-picked records swapped in as sampled",
            None,
            "not the 2 the seed draws",
            Box::new(move |r| {
                let sampled = lines(r, "sampled.txt");
                let drawn: BTreeSet<&String> = sampled_iam.iter().collect();
                let picked = population_iam
                    .iter()
                    .find(|k| !drawn.contains(k))
                    .unwrap()
                    .clone();
                let dropped = sampled_iam[0].clone();
                let bytes = std::fs::read(r.join(&picked)).unwrap();
                let blob = blob_of(&bytes);
                std::fs::create_dir_all(r.join(&blob).parent().unwrap()).unwrap();
                std::fs::copy(store_dir.join(&blob), r.join(&blob)).unwrap();
                let old = blob_of(&std::fs::read(r.join(&dropped)).unwrap());
                std::fs::remove_file(r.join(old)).unwrap();
                let swapped: Vec<String> = sampled
                    .into_iter()
                    .map(|l| if l == dropped { picked.clone() } else { l })
                    .collect();
                write_lines(r, "sampled.txt", &swapped);
            }),
        ),
        (
            "an unlisted file",
            None,
            "is not listed in MANIFEST.sha256",
            Box::new(|r| {
                remanifest(r);
                std::fs::write(r.join("records/iam/default/notes.txt"), "added").unwrap();
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, key, expected, tamper)) in cases.iter().enumerate() {
        let (_t, root) = unpack(&bundle);
        tamper(&root);
        if !name.contains("unlisted") {
            remanifest(&root);
        }
        let packed = ws.path().join(format!("tampered-{i}.tar.gz"));
        pack(&root, &packed);
        let (sh_code, sh_out) = verify_sh(&root, *key);
        let (rust_code, rust_out) = verify_rust(&ws, &packed, *key);
        let agree = sh_code == 1 && rust_code == 1 && sh_out.contains("NOT VERIFIED");
        let named = sh_out.contains(expected) && rust_out.contains(expected);
        if !agree || !named {
            failures.push(format!(
                "{name}: verify.sh exit {sh_code}, exhibit verify --bundle exit {rust_code} (both must fail with exit 1 naming `{expected}`)\n--- verify.sh:\n{sh_out}\n--- exhibit:\n{rust_out}"
            ));
        }
    }

    // A blob that is a symlink to /dev/zero, and a gzip bomb: exhibit
    // refuses to unpack them, with bounded memory; verify.sh, run where
    // tar unpacked them, refuses the link and the partial file.
    let (_s, root) = unpack(&bundle);
    let victim = blob_of(&std::fs::read(root.join(&lines(&root, "sampled.txt")[0])).unwrap());
    std::fs::remove_file(root.join(&victim)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join(&victim)).unwrap();
    let linked = ws.path().join("symlink.tar.gz");
    pack(&root, &linked);
    let (sh_code, sh_out) = verify_sh(&root, None);
    let (rust_code, rust_out) = verify_rust(&ws, &linked, None);
    if !(sh_code == 1
        && sh_out.contains(&format!("{victim}: is not a regular file"))
        && rust_code == 1
        && rust_out.contains("is a symbolic link, not a regular file: refused"))
    {
        failures.push(format!(
            "symlink entry: verify.sh exit {sh_code}, exhibit exit {rust_code}\n--- verify.sh:\n{sh_out}\n--- exhibit:\n{rust_out}"
        ));
    }
    let bombed = ws.path().join("bomb.tar.gz");
    bomb(&genuine, &bombed);
    let (_b, root) = untar(&bombed);
    let (sh_code, sh_out) = verify_sh(&root, None);
    let (rust_code, rust_out) = verify_rust(&ws, &bombed, None);
    if !(sh_code == 1
        && sh_out.contains("blobs/bomb: is not listed in MANIFEST.sha256")
        && rust_code == 1
        && rust_out.contains("claims 5368709120): refused"))
    {
        failures.push(format!(
            "gzip bomb: verify.sh exit {sh_code}, exhibit exit {rust_code}\n--- verify.sh:\n{sh_out}\n--- exhibit:\n{rust_out}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
