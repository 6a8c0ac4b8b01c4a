//! The PagerDuty definition against Prism mocking PagerDuty's own OpenAPI
//! description (api-schema repository): the shapes, required headers and
//! auth scheme are PagerDuty's, not ours.

use serde_json::{Value, json};

use crate::support::{Workspace, all_text_under, code, prism, replay, root, text};

const TOKEN: &str = "u+PDtestTOKENnever-stored-77";

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[log]
format = "json"
level = "info"

[[collectors]]
name = "pagerduty"
kind = "http"
schedule = "@daily"
definition = "pagerduty"
base_url = "{url}"
token = "${{PAGERDUTY_TOKEN}}"
retries = 0
{extra}
"#
    )
}

fn items<'a>(p: &'a Value, section: &str) -> &'a Vec<Value> {
    assert_eq!(p[section]["complete"], true, "{section}: {p:#}");
    p[section]["items"].as_array().expect("items")
}

#[test]
fn services_policies_schedules_oncalls_and_users_from_pagerdutys_description() {
    let pd = prism::mock(&root().join("tests/fixtures/saas/pagerduty-rest-openapiv3.json"));

    let ws = Workspace::new(&config(&pd.url, ""));
    let out = ws
        .cmd(&["collect"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    let logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");
    let out = ws
        .cmd(&["show", "pagerduty/127.0.0.1", "--json"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["statement"]["predicate"]["status"], "ok");
    assert_eq!(
        shown["statement"]["predicate"]["source"]["vendor"],
        "pagerduty"
    );
    let p = &shown["payload"];

    // A service and the escalation policy that pages for it.
    let service = &items(p, "services")[0];
    assert_eq!(service["name"], "My Application Service");
    assert_eq!(service["escalation_policy_id"], "PT20YPA");
    assert_eq!(service["teams"], json!(["Engineering"]));
    let policy = &items(p, "escalation_policies")[0];
    assert_eq!(policy["rules"][0]["escalation_delay_in_minutes"], 30);
    assert_eq!(policy["services"], json!(["PIJ90N7"]));
    // On-call coverage: who, on which schedule, at which level.
    let schedule = &items(p, "schedules")[0];
    assert_eq!(schedule["name"], "Daily Engineering Rotation");
    let oncall = &items(p, "oncalls")[0];
    assert_eq!(oncall["user"], "Tim Wright");
    assert_eq!(oncall["schedule"], "PI7DH85");
    // Users and their roles.
    let users = items(p, "users");
    assert!(users.iter().any(|u| u["role"] == "admin"), "{users:#?}");
    assert!(users.iter().all(|u| u["email"].is_string()));

    assert!(!all_text_under(&ws.store()).contains(TOKEN));
    assert!(!logs.contains(TOKEN));

    // Prism enforces PagerDuty's auth scheme: a definition that sends no
    // token gets 401 on every request, which is a failed record (never an
    // empty, "clean" one).
    let ws = Workspace::new(&config(&pd.url, "collectors_dir = \"mine\""));
    let builtin = std::fs::read_to_string(root().join("collectors/pagerduty.toml")).unwrap();
    let no_auth = builtin.replace(
        "type = \"headers\"\nheaders = { Authorization = \"Token token={token}\" }",
        "type = \"none\"",
    );
    assert_ne!(no_auth, builtin);
    std::fs::create_dir_all(ws.path().join("mine")).unwrap();
    std::fs::write(ws.path().join("mine/pagerduty.toml"), no_auth).unwrap();
    let out = ws
        .cmd(&["collect"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
}

#[test]
fn a_single_level_escalation_policy_with_one_target_on_the_second_page() {
    // PagerDuty's description makes a service's escalation policy
    // required: every service has one. What matters is who it pages; the
    // validating peer keeps the scenario to PagerDuty's shapes.
    let pd = replay::described(
        &root().join("tests/fixtures/saas/pagerduty-rest-openapiv3.json"),
        "pagerduty-scenario.yaml",
        &[("Authorization", &format!("Token token={TOKEN}"))],
        None,
    );
    let ws = Workspace::new(&config(&pd.url, "vars = { page_size = \"1\" }"));
    let out = ws
        .cmd(&["collect"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = ws
        .cmd(&["show", "pagerduty/127.0.0.1", "--json"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &shown["payload"];
    assert_eq!(p["services"]["pages"], 2, "{:#}", p["services"]);
    let services = items(p, "services");
    assert_eq!(services.len(), 2, "{services:#?}");
    let night = &services[1];
    assert_eq!(night["name"], "Nightly batch jobs");
    assert_eq!(night["escalation_policy_id"], "PSINGLE");
    assert_eq!(night["escalation_policy"], "Batch on-call");
    let policy = items(p, "escalation_policies")
        .iter()
        .find(|e| e["id"] == "PSINGLE")
        .unwrap_or_else(|| panic!("{:#}", p["escalation_policies"]));
    let rules = policy["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "a single level: {policy:#}");
    assert_eq!(rules[0]["escalation_delay_in_minutes"], 15);
    assert_eq!(
        rules[0]["targets"],
        json!([{
            "id": "PDANA01",
            "summary": "Dana Oncall",
            "type": "user_reference",
            "self": "https://api.pagerduty.com/users/PDANA01",
            "html_url": "https://subdomain.pagerduty.com/users/PDANA01"
        }]),
        "one on-call target"
    );
    assert_eq!(policy["services"], json!(["PNIGHT1"]));
}

#[test]
fn an_outage_makes_a_failed_record_after_retries_not_an_empty_list() {
    // Every request gets 503 (the scenario has no 200 for it).
    let pd = replay::replay("outage.yaml", &[]);
    let ws = Workspace::new(&config(&pd.url, ""));
    let out = ws
        .cmd(&["collect"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    let out = ws
        .cmd(&["show", "pagerduty/127.0.0.1", "--json"])
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["statement"]["predicate"]["status"], "failed");
    let error = shown["payload"]["error"].as_str().unwrap();
    assert!(
        error.contains("503") && error.contains("after 4 tries"),
        "{error}"
    );
}
