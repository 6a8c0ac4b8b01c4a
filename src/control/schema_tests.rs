//! The published JSON Schema of control files: current with the code, and
//! every shipped control valid under it, as checked by an independent
//! validator (Python's `jsonschema`, pinned in tests/requirements.txt).

use std::process::Command;

use super::json_schema;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/controls/control.schema.json"
);

#[test]
fn the_published_schema_is_current() {
    let want = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("EXHIBIT_WRITE_SCHEMA").is_some() {
        std::fs::create_dir_all(std::path::Path::new(SCHEMA).parent().unwrap()).unwrap();
        std::fs::write(SCHEMA, &want).unwrap();
    }
    let have = std::fs::read_to_string(SCHEMA).unwrap_or_default();
    assert!(
        have == want,
        "docs/controls/control.schema.json is stale: run `EXHIBIT_WRITE_SCHEMA=1 cargo test --lib the_published_schema_is_current`"
    );
}

/// Validates each (name, TOML text) under the schema; returns the names of
/// the invalid ones with the validator's message.
fn validate(files: &[(String, String)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let table: toml::Table = toml::from_str(text).unwrap();
        let json = serde_json::to_vec(&table).unwrap();
        std::fs::write(dir.path().join(format!("{name}.json")), json).unwrap();
    }
    let script = r#"
import json, pathlib, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
for p in sorted(pathlib.Path(sys.argv[2]).glob("*.json")):
    errors = list(v.iter_errors(json.load(open(p))))
    if errors:
        print(p.stem + ": " + "; ".join(e.message for e in errors))
"#;
    let out = Command::new("python3")
        .args(["-c", script, SCHEMA])
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the schema check did not run (python3 with jsonschema 4, from tests/requirements.txt, must be on PATH: run `bash tests/run.sh`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_shipped_control_is_valid_under_the_schema() {
    let files: Vec<(String, String)> = crate::control::library::BUILTIN
        .iter()
        .map(|b| (b.id.to_string(), b.toml.to_string()))
        .collect();
    assert!(files.len() >= 20);
    let invalid = validate(&files);
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    // The validator does refuse what the loader refuses.
    let bad = validate(&[
        ("unknown-key".into(), format!("{}\ncolour = 1\n", crate::control::library::BUILTIN[0].toml.split("[[inputs]]").next().unwrap())),
        ("bad-frequency".into(), "title = \"x\"\ncriteria = [\"CC6.1\"]\nfrequency = \"hourly\"\n[[inputs]]\nname = \"x\"\nkind = \"y\"\n".into()),
    ]);
    assert_eq!(bad.len(), 2, "{bad:?}");
}
