//! Control assessment through the real binary: evidence collected from
//! moto, controls evaluated into signed result records, an exception that
//! turns a failure into an excepted finding, a review signed with an SSH key
//! that `ssh-keygen -Y verify` accepts, a population anyone can hash, the
//! library's fixtures, and verify refusing a result whose evidence is gone.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::Digest;

use crate::aws::{ACCOUNT, collect, estate};
use crate::support::{Workspace, code, root, text};

fn json(ws: &Workspace, args: &[&str]) -> (i32, Value) {
    let out = ws.run(args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", text(&out)));
    (code(&out), v)
}

fn control<'a>(controls: &'a Value, id: &str) -> &'a Value {
    controls["controls"]
        .as_array()
        .expect("a list of controls")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} is missing: {controls}"))
}

#[test]
fn console_mfa_fails_on_bob_until_excepted_and_its_results_are_evidence() {
    let run = collect(
        &["aws-iam-credential-report"],
        "regions = [\"us-east-1\"]\nmax_attempts = 2",
        &estate().moto.endpoint(),
    );
    assert_eq!(code(&run.out), 0, "collect: {}", text(&run.out));
    let ws = &run.ws;
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/alice");

    // Nothing assessed yet: no state is not a pass.
    let (rc, _) = json(ws, &["controls", "--json"]);
    assert_eq!(rc, 1, "no results must not read as passing");

    // bob has a console password and no MFA: the control fails on him
    // alone.
    let out = ws.run(&["assess"]);
    let t = text(&out);
    assert_eq!(code(&out), 1, "a failing control fails the command: {t}");
    assert!(t.contains("aws-console-mfa"), "{t}");
    assert!(t.contains(&bob), "{t}");
    assert!(!t.contains(&alice), "alice has MFA: {t}");
    assert!(
        t.contains("Not assessed, the store holds no evidence of their inputs"),
        "controls without inputs are named, not silently passed: {t}"
    );

    // The result is a signed record naming the snapshot it judged.
    let (rc, shown) = json(ws, &["show", "--json", "control/aws-console-mfa"]);
    assert_eq!(rc, 0);
    let p = &shown["statement"]["predicate"];
    assert_eq!(p["collector"]["kind"], "control");
    assert_eq!(p["assessment"]["state"], "fail");
    let inputs = p["assessment"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1, "{p}");
    let judged = format!("records/aws-iam-credential-report/{ACCOUNT}/000000000001.json");
    assert_eq!(inputs[0]["record"], judged.as_str());
    let bytes = std::fs::read(ws.store().join(&judged)).unwrap();
    assert_eq!(
        inputs[0]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)).as_str()
    );
    let findings = shown["payload"]["findings"].as_array().unwrap();
    let entities: Vec<&str> = findings
        .iter()
        .map(|f| f["entity"].as_str().unwrap())
        .collect();
    assert_eq!(entities, [bob.as_str()], "{findings:?}");

    let (rc, controls) = json(ws, &["controls", "--json"]);
    assert_eq!(rc, 1, "a failing control: {controls}");
    let mfa = control(&controls, "aws-console-mfa");
    assert_eq!(mfa["current"], "fail");
    assert_eq!(mfa["fail"], 1);
    assert_eq!(mfa["open_findings"][0]["entity"], bob.as_str());

    // An approved exception: the finding is excepted, not failed, and the
    // exception is a record of its own.
    let out = ws.run(&[
        "exception",
        "add",
        "--control",
        "aws-console-mfa",
        "--entity",
        &bob,
        "--reason",
        "break-glass account; hardware key on order",
        "--approver",
        "ciso@example.com",
        "--expires",
        "2099-01-01",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = ws.run(&["assess", "--control", "aws-console-mfa"]);
    assert_eq!(code(&out), 0, "excepted is settled: {}", text(&out));
    assert!(text(&out).contains("excepted"), "{}", text(&out));
    let (rc, controls) = json(ws, &["controls", "--json"]);
    assert_eq!(rc, 0, "{controls}");
    let mfa = control(&controls, "aws-console-mfa");
    assert_eq!(mfa["current"], "excepted");
    assert_eq!(
        (mfa["fail"].as_u64(), mfa["excepted"].as_u64()),
        (Some(1), Some(1))
    );
    let out = ws.run(&["exception", "list"]);
    assert!(text(&out).contains("break-glass account"), "{}", text(&out));

    // The population of the period: both evaluations, hashed as printed.
    let out = ws.run(&[
        "population",
        "--control",
        "aws-console-mfa",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let data = out.stdout.strip_suffix(b"\n").unwrap();
    let population: Value = serde_json::from_slice(data).unwrap();
    let states: Vec<&str> = population
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["fail", "excepted"]);
    let sha = hex::encode(sha2::Sha256::digest(data));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("population sha256: {sha}")),
        "{}",
        text(&out)
    );

    // Results are in the chain: the store verifies...
    let (rc, report) = json(ws, &["verify", "--json"]);
    assert_eq!(rc, 0, "{report}");
    // ...until the snapshot a result judged is deleted.
    std::fs::remove_file(ws.store().join(&judged)).unwrap();
    let (rc, report) = json(ws, &["verify", "--json"]);
    assert_eq!(rc, 1);
    let codes: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"assessment_input_missing"), "{report}");
}

/// `ssh-keygen -Y verify` over a stored review: the auditor's own check.
fn ssh_verify(dir: &Path, review: &Value, principal: &str, message: &[u8]) -> bool {
    std::fs::write(
        dir.join("review.sig"),
        review["signature"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!(
            "{principal} {}\n",
            review["signer"]["public_key"].as_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("message"), message).unwrap();
    let out = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "exhibit-attest",
            "-I",
            principal,
            "-f",
        ])
        .arg(dir.join("allowed_signers"))
        .arg("-s")
        .arg(dir.join("review.sig"))
        .stdin(std::fs::File::open(dir.join("message")).unwrap())
        .output()
        .expect("ssh-keygen runs (tests/run.sh installs openssh-client)");
    out.status.success()
}

#[test]
fn a_review_signed_with_an_ssh_key_verifies_with_ssh_keygen() {
    let ws = Workspace::new(
        "[agent]\nid = \"reviews\"\n\n[[collectors]]\nname = \"users\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"echo\", \"{\\\"users\\\": [\\\"alice\\\"]}\"]\n",
    );
    assert_eq!(code(&ws.run(&["collect"])), 0);
    let (_, streams) = json(&ws, &["list", "--json"]);
    let stream = streams
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stream"].as_str())
        .find(|s| s.starts_with("users/"))
        .unwrap_or_else(|| panic!("no users stream: {streams}"))
        .to_string();
    let key = ws.path().join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "reviewer", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs (tests/run.sh installs openssh-client)");
    assert!(out.status.success(), "{}", text(&out));
    let out = ws.run(&[
        "attest",
        "--record",
        &format!("{stream}@1"),
        "--control",
        "access-review-quarterly",
        "--statement",
        "I reviewed every user's access in this snapshot.",
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (rc, report) = json(&ws, &["verify", "--json"]);
    assert_eq!(rc, 0, "the review is in the chain: {report}");
    let (_, shown) = json(&ws, &["show", "--json", "attest/access-review-quarterly"]);
    let review = &shown["payload"];
    assert_eq!(review["record"]["stream"], stream.as_str());
    assert_eq!(review["record"]["seq"], 1);
    let message = review["message"].as_str().unwrap().as_bytes();
    assert!(ssh_verify(
        ws.path(),
        review,
        "reviewer@example.com",
        message
    ));
    // The signature covers the statement: a changed one does not verify.
    let forged = String::from_utf8_lossy(message).replace("every user", "no user");
    assert!(!ssh_verify(
        ws.path(),
        review,
        "reviewer@example.com",
        forged.as_bytes()
    ));
    // A record that is not in the store cannot be reviewed.
    let out = ws.run(&[
        "attest",
        "--record",
        &format!("{stream}@9"),
        "--control",
        "access-review-quarterly",
        "--statement",
        "x",
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

#[test]
fn the_library_fixtures_pass_and_a_wrong_expectation_fails() {
    let ws = Workspace::new("[agent]\nid = \"fixtures\"\n");
    let out = ws.run(&["controls", "test"]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("PASS aws-console-mfa/"), "{t}");
    let passed = t
        .lines()
        .find_map(|l| l.strip_suffix(" fixture cases passed"))
        .unwrap_or_else(|| panic!("no summary: {t}"));
    let (ok, all) = passed.split_once(" of ").unwrap();
    assert_eq!(ok, all);
    assert!(all.parse::<usize>().unwrap() >= 40, "{t}");

    // A control of one's own whose fixture expects the wrong state.
    let dir = ws.path().join("mine");
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    let lib = root().join("controls");
    for f in ["aws-root-access-keys.toml", "aws-root-access-keys.rego"] {
        std::fs::copy(lib.join(f), dir.join(f)).unwrap();
    }
    let mut fixtures: Value = serde_json::from_slice(
        &std::fs::read(lib.join("fixtures/aws-root-access-keys.json")).unwrap(),
    )
    .unwrap();
    fixtures["cases"][0]["expect"]["state"] = "fail".into();
    std::fs::write(
        dir.join("fixtures/aws-root-access-keys.json"),
        fixtures.to_string(),
    )
    .unwrap();
    let out = ws.run(&[
        "controls",
        "test",
        "--controls-dir",
        dir.to_str().unwrap(),
        "--control",
        "aws-root-access-keys",
    ]);
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(
        t.contains("FAIL aws-root-access-keys/no root access keys"),
        "{t}"
    );
}
