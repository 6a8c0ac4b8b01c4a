//! `exhibit export --format oscal` produces an assessment-results document
//! that a tool no one here wrote (compliance-trestle's models of NIST's
//! OSCAL schema) accepts, and whose evidence hashes are the stored bytes'.

use std::process::Command;

use serde_json::Value;

use crate::support::{Workspace, code, text};

fn validate(path: &std::path::Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oscal_validate.py"
        ))
        .arg(path)
        .output()
        .expect("python3 runs");
    (out.status.success(), text(&out))
}

#[test]
fn the_oscal_export_validates_and_names_the_evidence_by_hash() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "iam"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
criteria = ["CC6.1", "CC6.2"]
retries = 0
"#,
    );
    for i in 0..2 {
        std::fs::write(ws.path().join("users.json"), format!(r#"{{"n": {i}}}"#)).unwrap();
        assert_eq!(code(&ws.run(&["collect"])), 0);
    }
    std::fs::remove_file(ws.path().join("users.json")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);

    let path = ws.path().join("oscal.json");
    let out = ws.run(&[
        "export",
        "--format",
        "oscal",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (ok, said) = validate(&path);
    assert!(ok, "{said}");
    assert!(said.contains("VALID observations=3 resources=3"), "{said}");

    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ar = &doc["assessment-results"];
    let obs = ar["results"][0]["observations"].as_array().unwrap();
    let failed = obs
        .iter()
        .find(|o| {
            o["props"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "status" && p["value"] == "failed")
        })
        .expect("the failed collection is an observation too");
    assert!(
        failed["description"]
            .as_str()
            .unwrap()
            .contains("users.json")
    );
    let criteria: Vec<&str> = obs[0]["props"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "soc2-criterion")
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert_eq!(criteria, vec!["CC6.1", "CC6.2"]);
    for r in ar["back-matter"]["resources"].as_array().unwrap() {
        for link in r["rlinks"].as_array().unwrap() {
            let file = ws.store().join(link["href"].as_str().unwrap());
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|_| panic!("{} is not in the store", file.display()));
            assert_eq!(
                link["hashes"][0]["value"],
                exhibit::evidence::sha256_hex(&bytes).as_str()
            );
        }
    }
    // Each observation points at a resource that exists.
    for o in obs {
        let href = o["relevant-evidence"][0]["href"]
            .as_str()
            .unwrap()
            .trim_start_matches('#');
        assert!(
            ar["back-matter"]["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["uuid"] == href)
        );
    }

    // The validator can say no: a document missing a required part fails.
    let mut broken = doc.clone();
    broken["assessment-results"]["results"][0]["observations"][0]["collected"] =
        Value::String("yesterday".into());
    std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, said) = validate(&path);
    assert!(!ok && said.contains("INVALID"), "{said}");
}
