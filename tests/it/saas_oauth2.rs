//! OAuth 2.0 client credentials, with a definition of the user's own: the
//! token request, the bearer it yields, and secrets scrubbed from evidence.

use serde_json::Value;

use crate::support::{Workspace, all_text_under, code, replay, text};

const CLIENT_SECRET: &str = "cs-0123456789-very-secret";
const ACCESS_TOKEN: &str = "eyJ-short-lived-access-token-XYZ";

#[test]
fn client_credentials_then_bearer_and_no_secret_in_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let api = replay::replay_with_journal(
        "oauth2.yaml",
        &[("Authorization", &format!("Bearer {ACCESS_TOKEN}"))],
        Some(&journal),
    );
    let ws = Workspace::new(&format!(
        r#"
[[collectors]]
name = "example"
kind = "http"
schedule = "@daily"
definition = "example-accounts"
collectors_dir = "defs"
base_url = "{url}"
client_id = "exhibit-reader"
client_secret_file = "client.secret"
retries = 0
"#,
        url = api.url
    ));
    std::fs::write(ws.path().join("client.secret"), CLIENT_SECRET).unwrap();
    std::fs::create_dir_all(ws.path().join("defs")).unwrap();
    std::fs::write(
        ws.path().join("defs/example-accounts.toml"),
        r#"
description = "Accounts of an example SaaS"
criteria = ["CC6.1"]

[auth]
type = "oauth2_client_credentials"
token_url = "{base_url}/oauth/token"
scopes = ["accounts:read"]

[[requests]]
name = "accounts"
path = "/v1/accounts"
items = "$.accounts[*]"
"#,
    )
    .unwrap();

    let out = ws.run(&["collect"]);
    let logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");

    let requests: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let token = &requests[0];
    assert_eq!(token["path"], "/oauth/token");
    assert_eq!(
        token["body"],
        "grant_type=client_credentials&scope=accounts%3Aread"
    );
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("exhibit-reader:{CLIENT_SECRET}"))
    };
    assert_eq!(token["headers"]["authorization"], format!("Basic {basic}"));

    let out = ws.run(&["show", "example/127.0.0.1", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["statement"]["predicate"]["criteria"],
        serde_json::json!(["CC6.1"])
    );
    let account = &shown["payload"]["accounts"]["items"][0];
    assert_eq!(account["mfa"], false);
    assert_eq!(
        account["export"],
        format!("{}/v1/accounts/a1?access_token=[redacted]", api.url)
    );
    let store = all_text_under(&ws.store());
    for secret in [CLIENT_SECRET, ACCESS_TOKEN] {
        assert!(!store.contains(secret) && !logs.contains(secret));
    }
}
