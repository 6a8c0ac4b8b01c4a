//! The Google Workspace Directory definition: service-account JWT with
//! domain-wide delegation, then users (2SV enrolled/enforced, suspended,
//! admin) over three pages, admin roles and their assignments. The peer is
//! Prism serving Google's own Admin SDK Directory discovery document (from
//! the pinned `google-api-python-client` sdist, converted to Swagger by
//! `google-discovery-to-swagger`), with scenario users layered on and every
//! response checked against the description (tests/it/support/replay.rs,
//! `described`). The token endpoint, Google's OAuth server rather than the
//! Directory API, is the scenario server's.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Workspace, all_text_under, code, replay, root, text};

const ACCESS_TOKEN: &str = "ya29.c.test-access-token-SECRET";

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed to make a test service-account key: run `bash tests/run.sh`");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

#[test]
fn users_with_2sv_admins_and_roles_via_a_delegated_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        pem.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let private_pem = std::fs::read_to_string(&pem).unwrap();

    let journal = dir.path().join("journal.jsonl");
    let description = replay::google_directory_description(dir.path());
    let google = replay::described(
        &description,
        "google-workspace-scenario.yaml",
        &[("Authorization", &format!("Bearer {ACCESS_TOKEN}"))],
        Some(&journal),
    );
    let config = |page_size: &str| {
        format!(
            r#"
[log]
format = "json"
level = "debug"

[[collectors]]
name = "google"
kind = "http"
schedule = "@daily"
definition = "google-workspace-directory"
base_url = "{url}"
private_key_file = "sa.json"
subject = "admin@example.com"
retries = 0
vars = {{ page_size = "{page_size}" }}
"#,
            url = google.url
        )
    };
    let token_uri = format!("{}/token", google.scenario_url);
    let key = json!({
        "type": "service_account",
        "client_email": "exhibit@acme-audit.iam.gserviceaccount.com",
        "private_key": private_pem,
        "token_uri": token_uri,
    })
    .to_string();
    let ws = Workspace::new(&config("2"));
    std::fs::write(ws.path().join("sa.json"), &key).unwrap();

    let out = ws.run(&["collect"]);
    let logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");

    // The token request: a JWT signed with the key, acting as the admin,
    // asking for read-only scopes only.
    let requests: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let token_request = requests
        .iter()
        .find(|r| r["path"] == "/token")
        .expect("a token request");
    let body = token_request["body"].as_str().unwrap();
    assert!(
        body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{body}"
    );
    let assertion = body.split("assertion=").nth(1).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&token_uri]);
    let claims = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_pem(&std::fs::read(&public).unwrap()).unwrap(),
        &validation,
    )
    .expect("the JWT verifies with the service account's public key")
    .claims;
    assert_eq!(claims["iss"], "exhibit@acme-audit.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], "admin@example.com");
    for scope in claims["scope"].as_str().unwrap().split(' ') {
        assert!(scope.ends_with(".readonly"), "{scope} is not read-only");
    }

    let out = ws.run(&["show", "google/my_customer", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["statement"]["predicate"]["status"], "ok");
    let p = &shown["payload"];
    assert_eq!(p["users"]["pages"], 3, "the last page has no nextPageToken");
    assert_eq!(p["users"]["complete"], true);
    assert_eq!(p["users"]["count"], 5);
    let by_email = |e: &str| {
        p["users"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == e)
            .cloned()
            .unwrap_or_else(|| panic!("{e} missing"))
    };
    let facts = |u: &Value| {
        (
            u["is_admin"].as_bool().unwrap(),
            u["is_delegated_admin"].as_bool().unwrap(),
            u["is_enrolled_in_2sv"].as_bool().unwrap(),
            u["is_enforced_in_2sv"].as_bool().unwrap(),
            u["suspended"].as_bool().unwrap(),
            u["archived"].as_bool().unwrap(),
        )
    };
    // (admin, delegated admin, 2SV enrolled, 2SV enforced, suspended, archived)
    let ada = by_email("ada@example.com");
    assert_eq!(facts(&ada), (true, false, true, true, false, false));
    assert_eq!(ada["id"], "100000000000000000001");
    assert_eq!(ada["org_unit"], "/");
    assert_eq!(
        facts(&by_email("bob@example.com")),
        (false, false, false, false, false, false),
        "a user without 2-Step Verification"
    );
    assert_eq!(
        facts(&by_email("carol@example.com")),
        (false, false, true, false, true, false),
        "a suspended user"
    );
    assert_eq!(
        facts(&by_email("dan@example.com")),
        (false, true, true, false, false, false)
    );
    let erin = by_email("erin@example.com");
    assert_eq!(facts(&erin), (false, false, false, false, false, true));
    assert_eq!(erin["last_login_time"], "2024-06-01T00:00:00.000Z");
    let without_2sv: Vec<_> = p["users"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["is_enrolled_in_2sv"] == false)
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(without_2sv, ["bob@example.com", "erin@example.com"]);

    let roles = p["roles"]["items"].as_array().unwrap();
    assert_eq!(p["roles"]["pages"], 1);
    assert_eq!(roles[0]["name"], "_SEED_ADMIN_ROLE");
    assert_eq!(roles[0]["is_super_admin"], true);
    assert_eq!(roles[1]["is_super_admin"], false);
    assert_eq!(
        roles[1]["privileges"],
        json!(["USERS_RETRIEVE", "USERS_RESET_PASSWORD"])
    );
    let assignments = p["role_assignments"]["items"].as_array().unwrap();
    assert_eq!(assignments[0]["assigned_to"], "100000000000000000001");
    assert_eq!(assignments[0]["role_id"], "300000000000001");
    assert_eq!(assignments[1]["assigned_to"], "100000000000000000004");
    assert_eq!(assignments[1]["scope"], "ORG_UNIT");
    // The schema's `password` field, which Prism fills in, is never kept.
    assert!(p["users"]["items"][0].get("password").is_none());

    let store = all_text_under(&ws.store());
    assert!(!store.contains(ACCESS_TOKEN) && !logs.contains(ACCESS_TOKEN));
    assert!(!store.contains("BEGIN PRIVATE KEY") && !logs.contains("PRIVATE KEY"));

    // The layer cannot drift from Google's shapes: a page that breaks the
    // description (isAdmin as a string) is refused by the validating Prism,
    // and the engine records the failure rather than fewer users.
    let ws = Workspace::new(&config("3"));
    std::fs::write(ws.path().join("sa.json"), &key).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let out = ws.run(&["show", "google/my_customer", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["statement"]["predicate"]["status"], "partial");
    let users = &shown["payload"]["users"];
    assert_eq!(users["complete"], false, "{users:#}");
    let error = users["error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
}

#[test]
fn the_example_saas_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem.to_str().unwrap(),
    ]);
    let key = dir.path().join("sa.json");
    std::fs::write(
        &key,
        json!({"client_email": "x@y.iam.gserviceaccount.com", "private_key": std::fs::read_to_string(&pem).unwrap()}).to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .arg("--config")
        .arg(root().join("config/saas.toml"))
        .args(["config", "check"])
        .env("OKTA_API_TOKEN", "t")
        .env("PAGERDUTY_API_KEY", "t")
        .env("DD_API_KEY", "t")
        .env("DD_APP_KEY", "t")
        .env("JIRA_EMAIL", "a@b.c")
        .env("JIRA_API_TOKEN", "t")
        .env("GOOGLE_SA_KEY_FILE", &key)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
}
