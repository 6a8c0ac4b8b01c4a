//! What a security lead reads each morning: `exhibit diff` over real
//! collector payloads.

mod common;

use common::{Workspace, code, text};
use serde_json::Value;

const CONFIG: &str = r#"
[[collectors]]
name = "iam"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
retries = 0
"#;

fn collect(ws: &Workspace, users: &str) {
    std::fs::write(ws.path().join("users.json"), users).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn diff_names_exactly_the_entities_that_changed() {
    let ws = Workspace::new(CONFIG);
    collect(
        &ws,
        r#"{"users": [
            {"arn": "arn:aws:iam::1:user/alice", "mfa": true, "policies": ["ReadOnly"]},
            {"arn": "arn:aws:iam::1:user/bob", "mfa": true, "policies": []},
            {"arn": "arn:aws:iam::1:user/dave", "mfa": true, "policies": []}
        ]}"#,
    );
    // A failed collection in between is skipped by the default pair.
    std::fs::write(ws.path().join("users.json"), "not json").unwrap();
    std::fs::remove_file(ws.path().join("users.json")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);
    collect(
        &ws,
        r#"{"users": [
            {"arn": "arn:aws:iam::1:user/carol", "mfa": false, "policies": ["AdministratorAccess"]},
            {"arn": "arn:aws:iam::1:user/dave", "mfa": true, "policies": []},
            {"arn": "arn:aws:iam::1:user/alice", "mfa": false, "policies": ["ReadOnly", "AdministratorAccess"]}
        ]}"#,
    );

    let out = ws.run(&["diff", "iam/local", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["from"]["seq"], 1);
    assert_eq!(d["to"]["seq"], 3, "the failed record #2 is not compared");
    let changes: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = "output.users";
    assert_eq!(
        changes,
        vec![
            (
                format!("{p}[arn=arn:aws:iam::1:user/alice].mfa"),
                "changed".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/alice].policies[]"),
                "added".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/bob]"),
                "removed".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/carol]"),
                "added".into()
            ),
        ],
        "dave did not change and moved position: he must not appear"
    );
    assert_eq!(d["changes"][1]["after"], "AdministratorAccess");

    let out = ws.run(&["diff", "iam/local", "1", "3"]);
    let human = text(&out);
    assert!(
        human.contains("~ output.users[arn=arn:aws:iam::1:user/alice].mfa: true → false"),
        "{human}"
    );
    assert!(
        human.contains("- output.users[arn=arn:aws:iam::1:user/bob]"),
        "{human}"
    );
    assert!(
        !human.contains("\u{1b}["),
        "no colour when not on a terminal"
    );

    let out = ws.run(&["diff", "nope/local"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out).contains("no stream `nope/local`"),
        "{}",
        text(&out)
    );
}
