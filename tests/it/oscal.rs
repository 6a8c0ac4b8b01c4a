//! `exhibit export --format oscal` produces an assessment-results document
//! that a tool no one here wrote (compliance-trestle's models of NIST's
//! OSCAL schema) accepts, and whose evidence hashes are the stored bytes'.

use std::path::Path;
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

/// Every value of the keys `name` anywhere in `v`.
fn all<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == name {
                    out.push(x);
                }
                all(x, name, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all(x, name, out)),
        _ => {}
    }
}

fn strings<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    all(v, name, &mut found);
    found.iter().filter_map(|x| x.as_str()).collect()
}

/// Every key of `v` ending in `-uuid` (a reference to something by uuid),
/// with its value.
fn uuid_refs<'a>(v: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.ends_with("-uuid")
                    && let Some(s) = x.as_str()
                {
                    out.push((k.clone(), s));
                }
                uuid_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| uuid_refs(x, out)),
        _ => {}
    }
}

/// Checks that every reference in the exported documents resolves: each
/// `href` (a `#uuid` to a back-matter resource of the same document, a
/// document beside it, or a store key whose bytes have the hash given),
/// each `…-uuid` to something the documents define, each `control-id` and
/// `target-id` to the catalog. Returns how many of each kind it checked.
fn assert_references_resolve(dir: &Path, store: &Path) -> [usize; 4] {
    let docs: Vec<(String, Value)> = [
        "assessment-results.json",
        "assessment-plan.json",
        "catalog.json",
    ]
    .iter()
    .map(|f| {
        let v: Value = serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap();
        (f.to_string(), v)
    })
    .collect();
    let catalog = &docs[2].1;
    let control_ids = strings(&catalog["catalog"]["controls"], "id");
    let defined: Vec<&str> = docs.iter().flat_map(|(_, d)| strings(d, "uuid")).collect();
    let mut counts = [0; 4];
    for (file, doc) in &docs {
        let resources = strings(
            &doc[doc.as_object().unwrap().keys().next().unwrap()]["back-matter"],
            "uuid",
        );
        // hrefs, with the hashes beside them when there are.
        let mut links = Vec::new();
        all(doc, "rlinks", &mut links);
        let mut hashed = std::collections::HashMap::new();
        for l in links.iter().flat_map(|l| l.as_array().unwrap()) {
            if let Some(h) = l["hashes"][0]["value"].as_str() {
                hashed.insert(l["href"].as_str().unwrap().to_string(), h.to_string());
            }
        }
        for href in strings(doc, "href") {
            counts[0] += 1;
            if let Some(uuid) = href.strip_prefix('#') {
                assert!(
                    resources.contains(&uuid),
                    "{file}: {href} names no back-matter resource"
                );
                continue;
            }
            let path = if dir.join(href).is_file() {
                dir.join(href)
            } else {
                store.join(href)
            };
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|_| panic!("{file}: {href} resolves to nothing"));
            if let Some(h) = hashed.get(href) {
                assert_eq!(&exhibit::evidence::sha256_hex(&bytes), h, "{file}: {href}");
            }
        }
        let mut refs = Vec::new();
        uuid_refs(doc, &mut refs);
        for (k, uuid) in refs {
            counts[1] += 1;
            assert!(defined.contains(&uuid), "{file}: {k} {uuid} names nothing");
        }
        for id in strings(doc, "control-id") {
            counts[2] += 1;
            assert!(
                control_ids.contains(&id),
                "{file}: control {id} is not in the catalog"
            );
        }
        for id in strings(doc, "target-id") {
            counts[3] += 1;
            assert!(
                control_ids.contains(&id),
                "{file}: target {id} is not in the catalog"
            );
        }
    }
    counts
}

#[test]
fn per_control_results_plan_and_catalog_validate_and_every_reference_resolves() {
    let bob = format!("arn:aws:iam::{}:user/bob", crate::control_flow::ACCOUNT);
    let (_moto, aws) = crate::control_flow::mfa_story(&bob);
    let out = aws.run(&["assess", "--control", "aws-console-mfa"]);
    assert_eq!(code(&out), 0, "bob is excepted now: {}", text(&out));
    let dir = aws.ws.path().join("oscal");
    let out = aws.run(&[
        "export",
        "--format",
        "oscal",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for f in [
        "assessment-results.json",
        "assessment-plan.json",
        "catalog.json",
    ] {
        let (ok, said) = validate(&dir.join(f));
        assert!(ok, "{f}: {said}");
    }
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap()
    };
    let (ar, catalog) = (read("assessment-results.json"), read("catalog.json"));
    let result = &ar["assessment-results"]["results"][0];
    let prop = |v: &Value, name: &str| -> Option<String> {
        v["props"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };

    // One observation of the control over the period: its state, counts,
    // and as evidence each result and each record judged, by sha256.
    let observations = result["observations"].as_array().unwrap();
    let obs = observations
        .iter()
        .find(|o| prop(o, "control-id").as_deref() == Some("aws-console-mfa"))
        .expect("an observation of the control");
    assert_eq!(prop(obs, "state").as_deref(), Some("excepted"));
    assert_eq!(prop(obs, "results-pass").as_deref(), Some("1"));
    assert_eq!(prop(obs, "results-fail").as_deref(), Some("1"));
    assert_eq!(prop(obs, "results-excepted").as_deref(), Some("1"));
    let named: Vec<String> = obs["relevant-evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| prop(e, "record-sha256").unwrap())
        .collect();
    let ws = &aws.ws;
    let mut expected: Vec<String> = (1..=3)
        .map(|n| {
            crate::control_flow::stored_sha256(
                ws,
                &format!("records/control/aws-console-mfa/{n:012}.json"),
            )
        })
        .chain((1..=2).map(|n| {
            crate::control_flow::stored_sha256(
                ws,
                &format!(
                    "records/iam-report/{}/{n:012}.json",
                    crate::control_flow::ACCOUNT
                ),
            )
        }))
        .collect();
    let mut got = named.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every result and judged record, once each");

    // Findings: the control's (excepted reads as satisfied for another
    // reason, with Exhibit's state kept) and bob's, a deviation whose risk
    // is the approved exception.
    let findings = result["findings"].as_array().unwrap();
    let control = findings
        .iter()
        .find(|f| f["title"] == "aws-console-mfa: excepted")
        .expect("the control's finding");
    assert_eq!(control["target"]["target-id"], "aws-console-mfa_smt");
    assert_eq!(control["target"]["status"]["state"], "satisfied");
    assert_eq!(control["target"]["status"]["reason"], "other");
    let bobs = findings
        .iter()
        .find(|f| prop(f, "entity").as_deref() == Some(bob.as_str()))
        .expect("bob's finding");
    assert_eq!(bobs["target"]["status"]["state"], "not-satisfied");
    assert_eq!(prop(&bobs["target"], "state").as_deref(), Some("excepted"));
    let risk_uuid = bobs["related-risks"][0]["risk-uuid"].as_str().unwrap();
    let risk = result["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == risk_uuid)
        .unwrap();
    assert_eq!(risk["status"], "deviation-approved");
    assert_eq!(risk["description"], "break-glass account, key in the safe");
    assert_eq!(prop(risk, "approver").as_deref(), Some("ciso@example.com"));

    // The catalog holds the library; the results review what was assessed.
    let mfa = catalog["catalog"]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "aws-console-mfa")
        .unwrap();
    assert_eq!(prop(mfa, "soc2-criterion").as_deref(), Some("CC6.1"));
    assert_eq!(
        result["reviewed-controls"]["control-selections"][0]["include-controls"],
        serde_json::json!([{"control-id": "aws-console-mfa"}])
    );

    let [hrefs, uuids, controls, targets] = assert_references_resolve(&dir, &ws.store());
    assert!(
        hrefs > 10 && uuids >= 3 && controls > 20 && targets >= 2,
        "{hrefs} {uuids} {controls} {targets}"
    );

    // The walk can fail: a finding naming an observation that is not there.
    let mut broken = ar.clone();
    broken["assessment-results"]["results"][0]["findings"][0]["related-observations"][0]["observation-uuid"] =
        Value::String(uuid_of_nothing());
    std::fs::write(
        dir.join("assessment-results.json"),
        serde_json::to_vec(&broken).unwrap(),
    )
    .unwrap();
    let walk = std::panic::catch_unwind(|| assert_references_resolve(&dir, &ws.store()));
    assert!(walk.is_err(), "a dangling reference must be caught");
}

fn uuid_of_nothing() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}
