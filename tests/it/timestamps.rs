//! RFC 3161 timestamps of checkpoints, against a real TSA run locally
//! (`openssl ts -reply` behind tests/support/tsa_server.py): every
//! checkpoint gets a token that `exhibit verify` and `openssl ts -verify`
//! accept; tampering, a foreign TSA and back-dating are caught; a TSA
//! outage leaves a visible gap that closes when the TSA is back; a sample
//! bundle carries the tokens and its verify.sh checks them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exhibit::evidence::checkpoint::CheckpointPredicate;
use exhibit::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, RECORD_PREDICATE_TYPE, RecordPredicate, Statement, peek, seal,
};
use serde_json::Value;

use crate::support::net::{self, free_port};
use crate::support::tsa::{KeyKind, Tsa, dead_url};
use crate::support::{Workspace, code, copy_tree, exhibit_on_store, text, unpack};

fn config(urls: &[&str], ca: &Path, extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        r#"
[agent]
id = "stamped"

[timestamping]
tsa_urls = [{}]
tsa_certs = [{:?}]
timeout = "3s"
{extra}

[[collectors]]
name = "users"
kind = "command"
schedule = "@yearly"
command = ["cat", "users.json"]
"#,
        urls.join(", "),
        ca.display().to_string()
    )
}

fn collect(ws: &Workspace, n: usize) -> Vec<String> {
    let mut outs = Vec::new();
    for i in 0..n {
        std::fs::write(
            ws.path().join("users.json"),
            format!(r#"[{{"user":"u{i}","mfa":true}}]"#),
        )
        .unwrap();
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        outs.push(text(&out));
    }
    outs
}

/// Checkpoint files of a store, oldest first (run ids are UUIDv7).
fn checkpoints(store: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    walk(&store.join("checkpoints"), &mut v);
    v.retain(|p| p.extension().is_some_and(|e| e == "json"));
    v.sort_by_key(|p| p.file_name().unwrap().to_owned());
    v
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn token_of(checkpoint: &Path) -> PathBuf {
    checkpoint.with_extension("tsr")
}

fn rel(store: &Path, p: &Path) -> String {
    p.strip_prefix(store)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn sha256_hex(path: &Path) -> String {
    exhibit::evidence::sha256_hex(&std::fs::read(path).unwrap())
}

fn verify_json(ws: &Workspace, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["verify", "--json"];
    a.extend_from_slice(args);
    let out = ws.run(&a);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&out)));
    (code(&out), v)
}

fn verify_store_json(store: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["verify", "--json"];
    a.extend_from_slice(args);
    let out = exhibit_on_store(store, &a);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&out)));
    (code(&out), v)
}

/// (location, code) of every problem.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["location"].as_str().unwrap().to_string(),
                p["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn codes(report: &Value, field: &str) -> Vec<String> {
    report[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

/// The `sh` block under `heading` in docs/verify-offline.md, verbatim.
fn documented_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/verify-offline.md"
    ))
    .unwrap();
    let at = doc.find(heading).expect("the heading is in the doc");
    let start = at + doc[at..].find("```sh\n").expect("a sh block") + 6;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_string()
}

fn run_documented_timestamp_check(store: &Path, checkpoint: &str, ca: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -e\n{}",
            documented_block("## Checking a checkpoint's RFC 3161 timestamp")
        ))
        .current_dir(store)
        .env("CHECKPOINT", checkpoint)
        .env("TSA_CA", ca)
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

#[test]
fn collect_timestamps_every_checkpoint_and_openssl_accepts_the_tokens() {
    let tsa = Tsa::start("A", KeyKind::P256);
    // The first TSA is down: the second answers.
    let ws = Workspace::new(&config(&[&dead_url(), &tsa.url], &tsa.ca_pem(), ""));
    let check = ws.run(&["config", "check"]);
    assert_eq!(code(&check), 0, "{}", text(&check));
    assert!(
        text(&check).contains("timestamping: 2 TSA(s)")
            && text(&check).contains("CN=Exhibit Test TSA CA A"),
        "{}",
        text(&check)
    );
    let outs = collect(&ws, 2);
    assert!(outs[0].contains("timestamp  checkpoints/"), "{}", outs[0]);
    let store = ws.store();
    let cps = checkpoints(&store);
    assert_eq!(cps.len(), 2);
    for cp in &cps {
        assert!(token_of(cp).is_file(), "{} has no token", cp.display());
    }
    // The trusted certificate is published for bundles and auditors.
    let published: Vec<PathBuf> = std::fs::read_dir(store.join("tsa"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(published.len(), 1);

    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 0, "{report:#}");
    let ts = &report["timestamps"];
    assert_eq!(ts["timestamped"], 2, "{ts:#}");
    assert_eq!(ts["missing"], 0, "{ts:#}");
    assert_eq!(
        ts["trust_from"], "the config's [timestamping] tsa_certs",
        "{ts:#}"
    );
    let token = &ts["tokens"][0];
    assert_eq!(token["tsa"], "CN=Exhibit Test TSA A", "{token:#}");
    assert_eq!(token["trusted_by"], "CN=Exhibit Test TSA CA A", "{token:#}");
    assert_eq!(token["policy"], "1.3.6.1.4.1.55555.1.1", "{token:#}");
    let stamped_at: chrono::DateTime<chrono::Utc> =
        token["gen_time"].as_str().unwrap().parse().unwrap();
    assert!(
        (chrono::Utc::now() - stamped_at).num_minutes().abs() < 5,
        "the TSA's time: {stamped_at}"
    );
    let human = ws.run(&["verify"]);
    assert_eq!(code(&human), 0, "{}", text(&human));
    assert!(
        text(&human).contains("2 of 2 checkpoints timestamped"),
        "{}",
        text(&human)
    );

    // An auditor with no config: trusting the store's tsa/ says so; their
    // own copy of the CA is independent.
    let (c, report) = verify_store_json(&store, &[]);
    assert_eq!(c, 0, "{report:#}");
    assert!(
        report["timestamps"]["trust_from"]
            .as_str()
            .unwrap()
            .contains("not independent"),
        "{report:#}"
    );
    let (c, report) = verify_store_json(&store, &["--tsa-cert", tsa.ca_pem().to_str().unwrap()]);
    assert_eq!(c, 0, "{report:#}");
    assert_eq!(report["timestamps"]["trust_from"], "given with --tsa-cert");
    assert_eq!(report["timestamps"]["timestamped"], 2);

    // The documented openssl commands accept the token…
    let first = rel(&store, &cps[0]);
    let (ok, out) = run_documented_timestamp_check(&store, &first, &tsa.ca_pem());
    assert!(ok, "{out}");
    assert!(out.contains("Verification: OK"), "{out}");
    assert!(out.contains("Policy OID: 1.3.6.1.4.1.55555.1.1"), "{out}");
    // …and refuse it against another checkpoint's bytes or another CA.
    let copy = ws.path().join("swapped");
    copy_tree(&store, &copy);
    std::fs::copy(token_of(&cps[1]), token_of(&copy.join(&first))).unwrap();
    let (ok, out) = run_documented_timestamp_check(&copy, &first, &tsa.ca_pem());
    assert!(!ok && out.contains("Verification: FAILED"), "{out}");
    let other = Tsa::start("Other", KeyKind::P256);
    let (ok, out) = run_documented_timestamp_check(&store, &first, &other.ca_pem());
    assert!(!ok && out.contains("Verification: FAILED"), "{out}");
}

#[test]
fn a_tampered_checkpoint_or_a_swapped_token_is_an_imprint_mismatch() {
    let tsa = Tsa::start("A", KeyKind::P256);
    let ws = Workspace::new(&config(&[&tsa.url], &tsa.ca_pem(), ""));
    collect(&ws, 2);
    let store = ws.store();
    let cps = checkpoints(&store);

    // The checkpoint's bytes edited (its signature breaks too).
    let edited = ws.path().join("edited");
    copy_tree(&store, &edited);
    let target = edited.join(rel(&store, &cps[0]));
    let mut bytes = std::fs::read(&target).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(&target, bytes).unwrap();
    let (c, report) = verify_store_json(&edited, &["--tsa-cert", tsa.ca_pem().to_str().unwrap()]);
    assert_eq!(c, 1, "{report:#}");
    let token = rel(&store, &token_of(&cps[0]));
    let found = problems(&report);
    assert!(
        found.contains(&(token.clone(), "timestamp_mismatch".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(rel(&store, &cps[0]), "bad_checkpoint".into())),
        "{found:?}"
    );

    // A genuine token of another checkpoint, swapped in: everything else
    // is intact, and the mismatch names the checkpoint.
    let swapped = ws.path().join("swapped");
    copy_tree(&store, &swapped);
    std::fs::copy(
        token_of(&cps[1]),
        token_of(&swapped.join(rel(&store, &cps[0]))),
    )
    .unwrap();
    let (c, report) = verify_store_json(&swapped, &["--tsa-cert", tsa.ca_pem().to_str().unwrap()]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        vec![(token.clone(), "timestamp_mismatch".to_string())]
    );
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains(&rel(&store, &cps[0])), "{message}");
    assert!(message.contains(&sha256_hex(&cps[0])), "{message}");
}

#[test]
fn a_token_from_another_tsa_is_rejected() {
    let trusted = Tsa::start("Trusted", KeyKind::P256);
    let other = Tsa::start("Other", KeyKind::Rsa);
    let ws = Workspace::new(&config(&[&trusted.url], &trusted.ca_pem(), ""));
    collect(&ws, 1);
    let store = ws.store();
    let cp = checkpoints(&store).remove(0);
    let token = rel(&store, &token_of(&cp));

    // A well-formed token over the right bytes, from a TSA not trusted.
    std::fs::remove_file(token_of(&cp)).unwrap();
    std::fs::write(token_of(&cp), other.stamp_digest(&sha256_hex(&cp))).unwrap();
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        vec![(token.clone(), "timestamp_untrusted".to_string())]
    );
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("CN=Exhibit Test TSA Other"), "{message}");
    // The rejection is about trust alone: trusting that TSA's CA, its
    // (RSA-signed) token verifies.
    let (c, report) = verify_store_json(&store, &["--tsa-cert", other.ca_pem().to_str().unwrap()]);
    assert_eq!(c, 0, "{report:#}");
    assert_eq!(
        report["timestamps"]["tokens"][0]["tsa"],
        "CN=Exhibit Test TSA Other"
    );

    // An impostor whose CA and TSA certificates carry exactly the trusted
    // names, but other keys.
    let impostor = Tsa::start("Trusted", KeyKind::P256);
    std::fs::remove_file(token_of(&cp)).unwrap();
    std::fs::write(token_of(&cp), impostor.stamp_digest(&sha256_hex(&cp))).unwrap();
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        vec![(token.clone(), "timestamp_untrusted".to_string())]
    );

    // A trusted TSA's token with its signature altered.
    let mut genuine = trusted.stamp_digest(&sha256_hex(&cp));
    let last = genuine.len() - 1;
    genuine[last] ^= 0x01;
    std::fs::remove_file(token_of(&cp)).unwrap();
    std::fs::write(token_of(&cp), genuine).unwrap();
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        vec![(token, "timestamp_bad_signature".to_string())]
    );
}

/// Rewrites the first record of `users/stamped` and its checkpoint as an
/// insider holding the agent's key would, with the record's times moved
/// `back` into the past, and gets a fresh token for the rewritten
/// checkpoint: the one thing the insider cannot move is the TSA's clock.
fn backdate_first_record(ws: &Workspace, tsa: &Tsa, back: chrono::Duration) -> String {
    let (signer, _) =
        exhibit::evidence::keys::Signer::load_or_create(&ws.path().join("exhibit.key")).unwrap();
    let store = ws.store();
    let record_key = "records/users/stamped/000000000001.json";
    let record_path = store.join(record_key);
    let st: Statement<RecordPredicate> = peek(&std::fs::read(&record_path).unwrap()).unwrap();
    let mut p = st.predicate;
    p.started_at -= back;
    p.finished_at -= back;
    let forged = seal(st.subject, RECORD_PREDICATE_TYPE, &p, &signer);
    std::fs::write(&record_path, &forged).unwrap();

    let cp = checkpoints(&store).remove(0);
    let st: Statement<CheckpointPredicate> = peek(&std::fs::read(&cp).unwrap()).unwrap();
    let mut cpp = st.predicate;
    cpp.started_at -= back;
    let mut subjects = st.subject;
    subjects[0].digest.sha256 = exhibit::evidence::sha256_hex(&forged);
    let forged_cp = seal(subjects, CHECKPOINT_PREDICATE_TYPE, &cpp, &signer);
    std::fs::write(&cp, &forged_cp).unwrap();
    std::fs::remove_file(token_of(&cp)).unwrap();
    std::fs::write(token_of(&cp), tsa.stamp_digest(&sha256_hex(&cp))).unwrap();
    record_key.to_string()
}

#[test]
fn a_back_dated_record_is_flagged_against_the_token_time() {
    let tsa = Tsa::start("A", KeyKind::P256);
    let ws = Workspace::new(&config(&[&tsa.url], &tsa.ca_pem(), ""));
    collect(&ws, 1);
    let record = backdate_first_record(&ws, &tsa, chrono::Duration::days(3));
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        vec![(record.clone(), "backdated".to_string())],
        "only the back-dating is wrong: signatures, chains and the token check out"
    );
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("3days"), "{message}");

    // An hour back is within the default max delay (24h), not within 30m.
    let ws = Workspace::new(&config(&[&tsa.url], &tsa.ca_pem(), ""));
    collect(&ws, 1);
    let record = backdate_first_record(&ws, &tsa, chrono::Duration::hours(1));
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 0, "{report:#}");
    let (c, report) = verify_json(&ws, &["--max-delay", "30m"]);
    assert_eq!(c, 1, "{report:#}");
    assert_eq!(problems(&report), vec![(record, "backdated".to_string())]);
}

#[test]
fn no_single_byte_change_alters_what_a_token_asserts() {
    let tsa = Tsa::start("A", KeyKind::P256);
    let digest = "ab".repeat(32);
    let token = tsa.stamp_digest(&digest);
    let trust =
        exhibit::evidence::timestamp::TrustAnchors::from_pem(&std::fs::read(tsa.ca_pem()).unwrap())
            .unwrap();
    let sha = hex::decode(&digest).unwrap();
    let genuine = exhibit::evidence::timestamp::verify(&token, &sha, &trust).unwrap();
    let started = Instant::now();
    let mut accepted = 0;
    for i in 0..token.len() {
        let mut t = token.clone();
        t[i] ^= 0x20;
        // Refused; and were an unsigned byte ever accepted, it must not
        // change what the token asserts.
        if let Ok(v) = exhibit::evidence::timestamp::verify(&t, &sha, &trust) {
            assert_eq!(v, genuine, "byte {i} changed what the token asserts");
            accepted += 1;
        }
    }
    assert_eq!(accepted, 0, "of {} single-byte changes", token.len());
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The admin endpoint's page at `path`, or nothing while it is down.
fn http_get(port: u16, path: &str) -> String {
    net::http_get(port, path)
        .map(|(_, page)| page)
        .unwrap_or_default()
}

#[test]
fn a_tsa_outage_leaves_a_visible_gap_that_closes_when_it_is_back() {
    let mut tsa = Tsa::start("A", KeyKind::P256);
    tsa.stop();
    let ws = Workspace::new(&config(&[&tsa.url], &tsa.ca_pem(), ""));
    std::fs::write(ws.path().join("users.json"), r#"[{"user":"a"}]"#).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(
        code(&out),
        0,
        "the collection itself succeeded: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("is not timestamped"),
        "the log says so: {}",
        text(&out)
    );
    let store = ws.store();
    let cps = checkpoints(&store);
    assert!(!cps.is_empty() && cps.iter().all(|c| c.is_file()));
    let first = rel(&store, &cps[0]);
    assert!(cps.iter().all(|c| !token_of(c).exists()));

    // verify names each checkpoint without a token: a warning by default,
    // a failure when timestamps are required.
    let (c, report) = verify_json(&ws, &[]);
    assert_eq!(c, 0, "{report:#}");
    let missing: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "timestamp_missing")
        .map(|w| w["location"].as_str().unwrap())
        .collect();
    assert!(missing.contains(&first.as_str()), "{report:#}");
    assert_eq!(report["timestamps"]["missing"], cps.len());
    let (c, report) = verify_json(&ws, &["--require-timestamps"]);
    assert_eq!(c, 1, "{report:#}");
    assert!(
        problems(&report).contains(&(first.clone(), "timestamp_missing".into())),
        "{report:#}"
    );

    // The daemon, TSA still down, tries again and exports the gap.
    let port = free_port();
    let mut daemon = ws
        .cmd(&["run", "--admin-listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = http_get(port, "/metrics");
        if m.contains("exhibit_tsa_requests_total") {
            break m;
        }
        assert!(Instant::now() < deadline, "no TSA metrics: {m}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(
        metrics.contains(&format!("exhibit_checkpoints_untimestamped {}", cps.len())),
        "{metrics}"
    );
    let host = tsa.url.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        metrics.contains(&format!(
            "exhibit_tsa_requests_total{{tsa=\"{host}\",result=\"unreachable\"}}"
        )),
        "{metrics}"
    );

    // The TSA is back: the next run fetches the missing tokens.
    tsa.resume();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let cps = checkpoints(&store);
    for cp in &cps {
        assert!(
            token_of(cp).is_file(),
            "{} still has no token",
            cp.display()
        );
    }
    let (c, report) = verify_json(&ws, &["--require-timestamps"]);
    assert_eq!(c, 0, "{report:#}");
    assert_eq!(report["timestamps"]["timestamped"], cps.len());
    assert!(
        !codes(&report, "warnings").contains(&"timestamp_missing".to_string()),
        "{report:#}"
    );
}

#[test]
fn a_bad_tsa_setting_is_a_located_config_error() {
    let ws = Workspace::new(&config(
        &["http://127.0.0.1:1/"],
        Path::new("no-such-ca.pem"),
        "",
    ));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("exhibit.toml:7:") && t.contains("timestamping.tsa_certs[0]"),
        "{t}"
    );
    assert!(t.contains("no-such-ca.pem"), "{t}");
    let ws = Workspace::new(&config(&["tsa.example.com"], Path::new("x.pem"), ""));
    let t = text(&ws.run(&["config", "check"]));
    assert!(t.contains("timestamping.tsa_urls[0]"), "{t}");
}

fn verify_sh(root: &Path, env: &[(&str, &Path)]) -> (bool, String) {
    let mut c = Command::new("sh");
    c.arg("verify.sh")
        .current_dir(root)
        .env_remove("KEY")
        .env_remove("TSA_CA")
        .env_remove("REQUIRE_TIMESTAMPS");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (out.status.success(), text(&out))
}

/// Rewrites MANIFEST.sha256 for the files as they are now, as someone
/// covering their tracks would.
fn remanifest(root: &Path) {
    let m = std::fs::read_to_string(root.join("MANIFEST.sha256")).unwrap();
    let fresh: String = m
        .lines()
        .map(|l| {
            let (_, name) = l.split_once("  ").unwrap();
            format!("{}  {name}\n", sha256_hex(&root.join(name)))
        })
        .collect();
    std::fs::write(root.join("MANIFEST.sha256"), fresh).unwrap();
}

#[test]
fn a_sample_bundle_carries_the_tokens_and_verify_sh_checks_them() {
    let tsa = Tsa::start("A", KeyKind::P256);
    let ws = Workspace::new(&config(&[&tsa.url], &tsa.ca_pem(), ""));
    collect(&ws, 3);
    let bundle = ws.path().join("sample.tar.gz");
    let out = ws.run(&[
        "sample",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--seed",
        "ts",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Genuine, in an empty directory, with standard tools only.
    let (_g, root) = unpack(&bundle);
    assert_eq!(
        checkpoints(&root)
            .iter()
            .filter(|c| token_of(c).is_file())
            .count(),
        3
    );
    assert!(root.join("tsa").is_dir());
    let (ok, out) = verify_sh(&root, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("3 timestamp(s)") && out.contains("VERIFIED"),
        "{out}"
    );
    let (ok, out) = verify_sh(&root, &[("TSA_CA", &tsa.ca_pem())]);
    assert!(ok, "{out}");
    let other = Tsa::start("Other", KeyKind::P256);
    let (ok, out) = verify_sh(&root, &[("TSA_CA", &other.ca_pem())]);
    assert!(!ok && out.contains("does not verify"), "{out}");
    let out = ws.run(&["verify", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A token swapped for another checkpoint's, manifest rewritten to match.
    let cps = checkpoints(&root);
    std::fs::copy(token_of(&cps[1]), token_of(&cps[0])).unwrap();
    remanifest(&root);
    let (ok, out) = verify_sh(&root, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "FAIL: {}: the RFC 3161 token does not verify",
            rel(&root, &token_of(&cps[0]))
        )),
        "{out}"
    );
    let packed = ws.path().join("swapped.tar.gz");
    assert!(
        Command::new("tar")
            .arg("czf")
            .arg(&packed)
            .arg("exhibit-sample")
            .current_dir(root.parent().unwrap())
            .status()
            .unwrap()
            .success()
    );
    let out = ws.run(&["verify", "--bundle", packed.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("timestamp_mismatch"), "{}", text(&out));
}
