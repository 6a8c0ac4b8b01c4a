//! The Okta definitions against Okta's own recorded responses (the VCR
//! cassettes in the `okta` 3.4.6 sdist), replayed locally: real bodies,
//! real `Link` pagination headers, real `x-rate-limit-*` headers.

use serde_json::Value;

use crate::support::{Workspace, all_text_under, code, replay, root, text};

const TOKEN: &str = "00TESTtokenSSWS-must-never-be-stored-9f3a";

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[log]
format = "json"
level = "info"

[[collectors]]
name = "okta"
kind = "http"
schedule = "@daily"
definition = "okta-users"
base_url = "{url}"
token_file = "okta.token"
retries = 1
retry_backoff = "100ms"
# Okta's recording paged with limit=1.
vars = {{ page_size = "1" }}
{extra}
"#
    )
}

/// A workspace whose Okta token is in a secret file, as mounted in a
/// container.
fn workspace(url: &str, extra: &str) -> Workspace {
    let ws = Workspace::new(&config(url, extra));
    std::fs::write(ws.path().join("okta.token"), format!("{TOKEN}\n")).unwrap();
    ws
}

fn show(ws: &Workspace) -> Value {
    let out = ws.run(&["show", "okta/127.0.0.1", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
}

fn user<'a>(payload: &'a Value, id: &str) -> &'a Value {
    payload["users"]["items"]
        .as_array()
        .expect("users.items")
        .iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("user {id} missing from {payload:#}"))
}

#[test]
fn users_factors_and_admin_roles_from_recorded_okta_responses() {
    let okta = replay::replay(
        "okta-users.yaml",
        &[("Authorization", &format!("SSWS {TOKEN}"))],
    );
    let ws = workspace(&okta.url, "");
    let started = std::time::Instant::now();
    let out = ws.cmd(&["collect"]).output().unwrap();
    let logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");
    // Page 3 was refused once with `Retry-After: 1`; the collector waited
    // instead of failing or dropping the page.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(logs.contains("rate limited; waiting"), "{logs}");

    let shown = show(&ws);
    let predicate = &shown["statement"]["predicate"];
    assert_eq!(predicate["status"], "ok");
    assert_eq!(predicate["source"]["vendor"], "okta");
    // Which definition produced the evidence, byte for byte.
    assert_eq!(predicate["source"]["definition_origin"], "built-in");
    let shipped = std::fs::read(root().join("collectors/okta-users.toml")).unwrap();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&shipped))
    };
    assert_eq!(predicate["source"]["definition_sha256"], sha);
    assert_eq!(
        predicate["criteria"],
        serde_json::json!(["CC6.1", "CC6.2", "CC6.3"])
    );

    let p = &shown["payload"];
    // Three pages: two followed through Okta's recorded Link headers.
    assert_eq!(p["users"]["pages"], 3, "{p:#}");
    assert_eq!(p["users"]["complete"], true);
    assert_eq!(p["users"]["count"], 4);
    assert!(p.get("missing").is_none(), "{p:#}");

    // Status and last login are kept.
    let staged = user(p, "00usfdsyqnIjEmHNm4x6");
    assert_eq!(staged["status"], "STAGED");
    assert_eq!(staged["login"], "John.Doe-Activate@example.com");
    assert!(staged.get("last_login").is_some());

    // A user with an (SMS) factor, and users without any MFA factor.
    let sms = user(p, "00usfbmh4cxr2p8F14x6");
    assert_eq!(sms["factors"][0]["type"], "sms");
    assert_eq!(sms["factors"][0]["status"], "PENDING_ACTIVATION");
    let without_mfa: Vec<_> = p["users"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["factors"].as_array().is_some_and(|f| f.is_empty()))
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        without_mfa,
        [
            "00usfdsyqnIjEmHNm4x6",
            "00usfgmn9xhwtA6f74x6",
            "00usfex7wP9lvobJ84x6"
        ]
    );
    // The recorded phone number of the SMS factor is not kept.
    assert!(!p.to_string().contains("+12345678901"));

    // An admin.
    let admin = user(p, "00usfex7wP9lvobJ84x6");
    assert_eq!(admin["roles"][0]["type"], "USER_ADMIN");
    assert_eq!(
        user(p, "00usfbmh4cxr2p8F14x6")["roles"],
        serde_json::json!([])
    );

    // The token is in neither the evidence nor the logs.
    assert!(!all_text_under(&ws.store()).contains(TOKEN));
    assert!(!logs.contains(TOKEN));
}

#[test]
fn a_rejected_token_makes_a_failed_record_that_names_the_cause() {
    let okta = replay::replay(
        "okta-users.yaml",
        &[("Authorization", "SSWS another-token")],
    );
    let ws = workspace(&okta.url, "");
    let out = ws.cmd(&["collect"]).output().unwrap();
    let logs = text(&out);
    assert_eq!(code(&out), 1, "{logs}");
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "failed");
    let error = shown["payload"]["error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("credentials"),
        "{error}"
    );
    assert!(!all_text_under(&ws.store()).contains(TOKEN));
    assert!(!logs.contains(TOKEN));
}

#[test]
fn a_follow_up_that_fails_makes_a_partial_record_naming_what_is_missing() {
    // A user's own definition (collectors_dir overrides the built-in one)
    // asks for each user's grants, which Okta's recording lacks: 404.
    let okta = replay::replay(
        "okta-users.yaml",
        &[("Authorization", &format!("SSWS {TOKEN}"))],
    );
    let ws = workspace(&okta.url, "collectors_dir = \"mine\"");
    let builtin = std::fs::read_to_string(root().join("collectors/okta-users.toml")).unwrap();
    std::fs::create_dir_all(ws.path().join("mine")).unwrap();
    std::fs::write(
        ws.path().join("mine/okta-users.toml"),
        format!(
            "{builtin}\n[[requests.each]]\nname = \"grants\"\npath = \"/api/v1/users/{{item.id}}/grants\"\nitems = \"$[*]\"\n"
        ),
    )
    .unwrap();
    let out = ws.cmd(&["collect"]).output().unwrap();
    assert_eq!(
        code(&out),
        1,
        "a partial collection is reported: {}",
        text(&out)
    );
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "partial");
    assert_eq!(
        shown["statement"]["predicate"]["source"]["definition_origin"],
        "collectors_dir"
    );
    let p = &shown["payload"];
    // Every user is still there, with what could be collected.
    assert_eq!(p["users"]["count"], 4);
    let missing = p["missing"].as_array().expect("missing").len();
    assert_eq!(missing, 4, "{p:#}");
    assert!(
        p["missing"][0]
            .as_str()
            .unwrap()
            .starts_with("grants of 00us")
    );
    assert!(
        p["users"]["items"][0]["grants"]["error"]
            .as_str()
            .unwrap()
            .contains("404")
    );

    // Where a vendor answers 404 for "none", the definition says so.
    let mine = std::fs::read_to_string(ws.path().join("mine/okta-users.toml")).unwrap();
    std::fs::write(
        ws.path().join("mine/okta-users.toml"),
        format!("{mine}empty_on = [404]\n"),
    )
    .unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "ok");
    assert_eq!(
        shown["payload"]["users"]["items"][0]["grants"],
        serde_json::json!([])
    );
}

#[test]
fn definition_errors_name_the_file_line_and_key() {
    let ws = workspace("http://127.0.0.1:9", "collectors_dir = \"mine\"");
    std::fs::create_dir_all(ws.path().join("mine")).unwrap();
    std::fs::write(
        ws.path().join("mine/okta-users.toml"),
        "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n\n[[requests]]\nname = \"users\"\npath = \"/users\"\nitems = \"$[*\"\n",
    )
    .unwrap();
    let out = ws.cmd(&["config", "check"]).output().unwrap();
    let msg = text(&out);
    assert_eq!(code(&out), 2, "{msg}");
    assert!(msg.contains("okta-users.toml:8:"), "{msg}");
    assert!(msg.contains("requests[0].items"), "{msg}");
    assert!(msg.contains("JSONPath"), "{msg}");

    std::fs::write(
        ws.path().join("mine/okta-users.toml"),
        "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n\n[[requests]]\nname = \"users\"\npath = \"/users\"\npaginate = \"link\"\n",
    )
    .unwrap();
    let out = ws.cmd(&["config", "check"]).output().unwrap();
    let msg = text(&out);
    assert_eq!(code(&out), 2, "{msg}");
    assert!(
        msg.contains("okta-users.toml:8:") && msg.contains("paginate"),
        "{msg}"
    );
}

#[test]
fn password_and_sign_on_policies_with_their_rules() {
    let okta = replay::replay(
        "okta-policies.yaml",
        &[("Authorization", &format!("SSWS {TOKEN}"))],
    );
    let ws = workspace(&okta.url, "");
    let config = std::fs::read_to_string(ws.config())
        .unwrap()
        .replace(
            "definition = \"okta-users\"",
            "definition = \"okta-policies\"",
        )
        .replace("vars = { page_size = \"1\" }", "");
    std::fs::write(ws.config(), config).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "ok");
    let p = &shown["payload"];
    let named = |section: &str, name: &str| -> Value {
        p[section]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {section}"))
    };
    let password = named("password_policies", "python_sdk Test-Password");
    assert_eq!(
        password["settings"]["password"]["complexity"]["minLength"],
        8
    );
    let sign_on = named("sign_on_policies", "python_sdk Test-Sign-On");
    assert_eq!(sign_on["type"], "OKTA_SIGN_ON");
    // A sign-on rule that lets people in without a second factor.
    let rule = &sign_on["rules"][0];
    assert_eq!(rule["actions"]["signon"]["access"], "ALLOW");
    assert_eq!(rule["actions"]["signon"]["requireFactor"], false);
    assert_eq!(p["mfa_enroll_policies"]["count"], 0);
    assert_eq!(p["mfa_enroll_policies"]["complete"], true);
}

#[test]
fn apps_with_assignments_and_a_next_link_to_another_host_is_not_followed() {
    let okta = replay::replay(
        "okta-apps.yaml",
        &[("Authorization", &format!("SSWS {TOKEN}"))],
    );
    let ws = workspace(&okta.url, "");
    let config = std::fs::read_to_string(ws.config())
        .unwrap()
        .replace("definition = \"okta-users\"", "definition = \"okta-apps\"")
        .replace("page_size = \"1\"", "page_size = \"2\"");
    std::fs::write(ws.config(), config).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "partial");
    let p = &shown["payload"];
    assert_eq!(p["apps"]["complete"], false);
    assert!(
        p["apps"]["error"]
            .as_str()
            .unwrap()
            .contains("another host (https://dev-20982288.okta.com)"),
        "{p:#}"
    );
    let console = &p["apps"]["items"][0];
    assert_eq!(console["label"], "Okta Admin Console");
    assert_eq!(console["sign_on_mode"], "OPENID_CONNECT");
    assert_eq!(console["users"][0]["user_name"], "John.Doe-Get@example.com");
    assert_eq!(console["users"][0]["scope"], "USER");
    assert_eq!(console["groups"][0]["id"], "00gsfd0d1jP3JpPr74x6");
    let dashboard = &p["apps"]["items"][1];
    assert_eq!(dashboard["users"], serde_json::json!([]));
}

#[test]
fn a_server_that_repeats_its_next_page_cannot_loop_the_collector() {
    let okta = replay::replay("okta-loop.yaml", &[]);
    let ws = workspace(&okta.url, "");
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let shown = show(&ws);
    assert_eq!(shown["statement"]["predicate"]["status"], "partial");
    let users = &shown["payload"]["users"];
    assert_eq!(users["complete"], false);
    assert_eq!(users["count"], 1);
    assert!(
        users["error"]
            .as_str()
            .unwrap()
            .contains("same next page twice"),
        "{users:#}"
    );
}
