//! The Datadog definitions against Datadog's own recorded responses (VCR
//! cassettes of the `datadog-api-client` 2.62.0 sdist), replayed locally.

use serde_json::{Value, json};

use crate::support::{Workspace, all_text_under, code, replay, text};

const API_KEY: &str = "dd-api-key-0123456789abcdef-SECRET";
const APP_KEY: &str = "dd-app-key-fedcba9876543210-SECRET";

fn run(definition: &str) -> (Workspace, Value, String) {
    let dd = replay::replay(
        "datadog.yaml",
        &[("DD-API-KEY", API_KEY), ("DD-APPLICATION-KEY", APP_KEY)],
    );
    let ws = Workspace::new(&format!(
        r#"
[log]
format = "json"
level = "info"

[[collectors]]
name = "datadog"
kind = "http"
schedule = "@daily"
definition = "{definition}"
base_url = "{url}"
api_key = "{API_KEY}"
app_key_file = "dd-app.key"
retries = 0
# Datadog's recordings paged by two.
vars = {{ page_size = "2" }}
"#,
        url = dd.url
    ));
    std::fs::write(ws.path().join("dd-app.key"), APP_KEY).unwrap();
    let out = ws.run(&["collect"]);
    let logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");
    let out = ws.run(&["show", "datadog/127.0.0.1", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let store = all_text_under(&ws.store());
    for secret in [API_KEY, APP_KEY] {
        assert!(!store.contains(secret), "a key reached the store");
        assert!(!logs.contains(secret), "a key reached the logs");
    }
    (ws, shown, logs)
}

#[test]
fn monitors_with_their_muted_state_across_pages() {
    let (_ws, shown, logs) = run("datadog-monitors");
    let predicate = &shown["statement"]["predicate"];
    assert_eq!(predicate["status"], "ok");
    assert_eq!(predicate["criteria"], json!(["CC7.2", "CC7.3", "A1.2"]));
    let monitors = &shown["payload"]["monitors"];
    assert_eq!(monitors["complete"], true);
    assert_eq!(monitors["pages"], 3, "{monitors:#}");
    assert_eq!(monitors["count"], 4);
    let items = monitors["items"].as_array().unwrap();
    let first = &items[0];
    assert_eq!(first["id"], 34822915);
    assert_eq!(first["type"], "query alert");
    assert!(
        first["query"]
            .as_str()
            .unwrap()
            .contains("target_response_time.p95")
    );
    assert_eq!(first["silenced"], json!({}));
    // The muted one, and its notification target in the message.
    let muted = items
        .iter()
        .find(|m| m["id"] == 119766008)
        .expect("muted monitor");
    assert_eq!(muted["silenced"], json!({"*": 1685394919}));
    assert!(
        muted["message"]
            .as_str()
            .unwrap()
            .contains("@hipchat-channel")
    );
    // Page 1 said the window was used up: the collector paused.
    assert!(
        logs.contains("rate-limit window used up; pausing"),
        "{logs}"
    );
}

#[test]
fn users_and_roles_across_pages() {
    let (_ws, shown, _) = run("datadog-users");
    let p = &shown["payload"];
    assert_eq!(shown["statement"]["predicate"]["status"], "ok", "{p:#}");
    assert_eq!(p["users"]["pages"], 2);
    assert_eq!(p["users"]["count"], 3);
    let alan = p["users"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alan@datadoghq.com")
        .expect("alan");
    assert_eq!(alan["service_account"], false);
    assert!(alan["roles"].is_array());
    assert_eq!(p["roles"]["count"], 1);
    assert!(p["roles"]["items"][0]["name"].is_string());
}
