//! The Google Workspace Directory definition: service-account JWT with
//! domain-wide delegation, then users (2SV enrolled/enforced, suspended,
//! admin) over two pages, admin roles and their assignments. Responses are
//! written to the Admin SDK discovery schema (no vendor recording exists).

mod common;
#[path = "support/peers.rs"]
mod peers;

use std::process::Command;

use common::{Workspace, code, text};
use serde_json::{Value, json};

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
    let google = peers::replay_with_journal(
        "google-workspace.yaml",
        &[("Authorization", &format!("Bearer {ACCESS_TOKEN}"))],
        Some(&journal),
    );
    let ws = Workspace::new(&format!(
        r#"
[log]
format = "json"
level = "info"

[[collectors]]
name = "google"
kind = "http"
schedule = "@daily"
definition = "google-workspace-directory"
base_url = "{url}"
private_key_file = "sa.json"
subject = "admin@example.com"
retries = 0
vars = {{ page_size = "2" }}
"#,
        url = google.url
    ));
    std::fs::write(
        ws.path().join("sa.json"),
        json!({
            "type": "service_account",
            "client_email": "exhibit@acme-audit.iam.gserviceaccount.com",
            "private_key": private_pem,
            "token_uri": format!("{}/token", google.url),
        })
        .to_string(),
    )
    .unwrap();

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
    validation.set_audience(&[format!("{}/token", google.url)]);
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
    assert_eq!(p["users"]["pages"], 2, "the last page has no nextPageToken");
    assert_eq!(p["users"]["count"], 3);
    let by_email = |e: &str| {
        p["users"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == e)
            .cloned()
            .unwrap_or_else(|| panic!("{e} missing"))
    };
    let ada = by_email("ada@example.com");
    assert_eq!(
        (ada["is_admin"].clone(), ada["is_enrolled_in_2sv"].clone()),
        (json!(true), json!(true))
    );
    let bob = by_email("bob@example.com");
    assert_eq!(
        bob["is_enrolled_in_2sv"], false,
        "a user without 2-Step Verification"
    );
    assert_eq!(bob["is_enforced_in_2sv"], false);
    let carol = by_email("carol@example.com");
    assert_eq!(carol["suspended"], true);
    let super_admin = &p["roles"]["items"][0];
    assert_eq!(super_admin["is_super_admin"], true);
    assert_eq!(
        p["role_assignments"]["items"][0]["assigned_to"],
        "100000000000000000001"
    );

    let store = peers::all_text_under(&ws.store());
    assert!(!store.contains(ACCESS_TOKEN) && !logs.contains(ACCESS_TOKEN));
    assert!(!store.contains("BEGIN PRIVATE KEY") && !logs.contains("PRIVATE KEY"));
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
        .arg(peers::root().join("config/saas.toml"))
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
