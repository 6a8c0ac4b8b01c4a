//! The GitHub collectors against `@octokit/fixtures-server`: GitHub's own
//! recorded responses (the bundled `get-organization` scenario) and
//! Exhibit's scenarios in the same nock format (`tests/fixtures/github/`),
//! which the server matches strictly — token, media type, and every
//! request in order. A request the collector should not make, or one it
//! skips, fails the scenario.
//!
//! The server is started once per run and dies with it. Without
//! Node.js or the pinned npm packages (`bash tests/run.sh` installs them)
//! these tests fail, loudly.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::octokit::{
    OCTOKIT_TOKEN, ORG, TOKEN, assert_all_consumed, collector, config, scenario,
};
use crate::support::{Workspace, all_text_under, code, exhibit_on_store, root, text};

/// `exhibit show STREAM --json`, as an auditor would run it: on the store
/// alone.
fn show(ws: &Workspace, stream: &str) -> Value {
    let out = exhibit_on_store(&ws.store(), &["show", stream, "--json"]);
    assert_eq!(code(&out), 0, "show {stream}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
}

fn logins(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn org_settings_from_githubs_own_recording() {
    let url = scenario("get-organization");
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"gh-org\"\nkind = \"github-org\"\n\
         schedule = \"@daily\"\nretries = 0\norg = \"octokit-fixture-org\"\napi_url = \"{url}\"\n\
         token = \"{OCTOKIT_TOKEN}\"\n"
    ));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec = show(&ws, "gh-org/octokit-fixture-org");
    let p = &rec["payload"];
    assert_eq!(p["org"], "octokit-fixture-org");
    assert_eq!(p["settings"]["two_factor_requirement_enabled"], false);
    assert_eq!(p["settings"]["default_repository_permission"], "read");
    assert_eq!(p["settings"]["members_can_create_repositories"], true);
    assert_eq!(p["plan"], "team");
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "ok");
    assert_eq!(pred["source"]["org"], "octokit-fixture-org");
    assert_eq!(pred["criteria"], serde_json::json!(["CC6.1", "CC6.2"]));
    assert_all_consumed();
}

#[test]
fn members_with_2fa_disabled_are_listed_across_pages_and_the_token_never_leaks() {
    let url = scenario("exhibit-members");
    let ws = Workspace::new(&config(&[collector(
        "gh-members",
        "github-members",
        &url,
        "",
    )]));
    // Debug logging, so that anything the agent or octocrab logs is searched.
    let out = ws.run(&["-vv", "collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec = show(&ws, &format!("gh-members/{ORG}"));
    let p = &rec["payload"];
    assert_eq!(logins(&p["two_factor_disabled"]), ["carol"]);
    assert_eq!(logins(&p["owners"]), ["alice"]);
    // bob is on page 1, carol and dave on page 2 of the members listing.
    assert_eq!(p["counts"]["members"], 3);
    let carol = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["login"] == "carol")
        .expect("carol, from the second page, is recorded");
    assert_eq!(carol["two_factor_disabled"], true);
    assert_eq!(carol["role"], "member");
    assert_eq!(rec["statement"]["predicate"]["status"], "ok");

    // The record is evidence like any other: signed, chained, verifiable.
    let verify = exhibit_on_store(&ws.store(), &["verify"]);
    assert_eq!(code(&verify), 0, "{}", text(&verify));

    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    assert!(
        !all_text_under(&ws.store()).contains(TOKEN),
        "the token is in the store"
    );
    assert!(!all_text_under(&ws.store()).contains("ExhibitFixtureToken"));
    assert_all_consumed();
}

#[test]
fn token_from_file_and_from_github_token_env() {
    // token_file.
    let url = scenario("exhibit-members");
    let ws = Workspace::new(&config(&[collector(
        "gh-members",
        "github-members",
        &url,
        "",
    )
    .replace(&format!("token = \"{TOKEN}\""), "token_file = \"gh-token\"")]));
    std::fs::write(ws.path().join("gh-token"), format!("{TOKEN}\n")).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        show(&ws, &format!("gh-members/{ORG}"))["payload"]["counts"]["members"],
        3
    );

    // GITHUB_TOKEN and GITHUB_API_URL, as in GitHub Actions.
    let url = scenario("exhibit-members");
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"gh-members\"\n\
         kind = \"github-members\"\nschedule = \"@daily\"\nretries = 0\norg = \"{ORG}\"\n"
    ));
    let out = ws
        .cmd(&["collect"])
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &url)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    // `show` loads the config too, so it needs the same environment.
    let out = ws
        .cmd(&["show", &format!("gh-members/{ORG}"), "--json"])
        .env("GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(logins(&rec["payload"]["two_factor_disabled"]), ["carol"]);
    assert_eq!(rec["statement"]["predicate"]["source"]["api_url"], url);
    assert_all_consumed();
}

#[test]
fn unprotected_default_branches_are_flagged_and_rulesets_count() {
    let url = scenario("exhibit-branch-protection");
    let ws = Workspace::new(&config(&[collector(
        "gh-protection",
        "github-branch-protection",
        &url,
        "",
    )]));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let p = show(&ws, &format!("gh-protection/{ORG}"))["payload"].clone();
    assert_eq!(logins(&p["unprotected"]), ["web"]);
    // Two pages of repositories, the archived one left out.
    assert_eq!(p["count"], 3);
    let repo = |n: &str| {
        p["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["repository"] == n)
            .unwrap_or_else(|| panic!("{n} recorded"))
            .clone()
    };
    let api = repo("api");
    assert_eq!(api["protected"], true);
    assert_eq!(api["effective"]["required_approving_review_count"], 2);
    assert_eq!(api["effective"]["enforce_admins"], true);
    assert_eq!(api["effective"]["dismiss_stale_reviews"], true);
    assert_eq!(api["effective"]["require_code_owner_reviews"], true);
    assert_eq!(api["effective"]["linear_history"], true);
    assert_eq!(api["effective"]["signed_commits"], false);
    assert_eq!(
        api["effective"]["required_status_checks"],
        serde_json::json!(["ci/build"])
    );
    // Protected by an organisation ruleset only.
    let infra = repo("infra");
    assert_eq!(infra["protected"], true);
    assert_eq!(infra["classic"], Value::Null);
    assert_eq!(infra["rules"][0]["source_type"], "Organization");
    assert_eq!(infra["effective"]["required_approving_review_count"], 1);
    assert_eq!(infra["effective"]["force_push_blocked"], true);
    assert_eq!(infra["effective"]["deletion_blocked"], true);
    assert_eq!(infra["effective"]["enforce_admins"], Value::Null);
    let web = repo("web");
    assert_eq!(web["protected"], false);
    assert_eq!(web["effective"]["pull_request_required"], false);
    assert!(
        p["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["repository"] != "old")
    );
    assert_all_consumed();
}

#[test]
fn merged_pull_requests_without_independent_approval_are_flagged() {
    let url = scenario("exhibit-pull-requests");
    let table = |url: &str| {
        config(&[collector(
            "gh-prs",
            "github-pull-requests",
            url,
            "initial_window = \"3650d\"",
        )])
    };
    let ws = Workspace::new(&table(&url));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec = show(&ws, &format!("gh-prs/{ORG}"));
    let p = &rec["payload"];
    assert_eq!(logins(&p["flagged"]), ["api#2"]);
    assert_eq!(p["count"], 2, "the closed, unmerged #3 is not a change");
    let pulls = p["pull_requests"].as_array().unwrap();
    let one = &pulls[0];
    assert_eq!(one["number"], 1);
    assert_eq!(one["author"], "alice");
    assert_eq!(one["merged_by"], "bob");
    assert_eq!(one["independent_approval"], true);
    assert_eq!(one["approvals"][0]["reviewer"], "carol");
    assert_eq!(one["flags"], serde_json::json!([]));
    let two = &pulls[1];
    assert_eq!(two["number"], 2);
    assert_eq!(
        two["independent_approval"], false,
        "carol approved after the merge"
    );
    let flags = logins(&two["flags"]);
    assert!(flags.contains(&"merged_without_independent_approval"));
    assert!(flags.contains(&"self_merged"));
    assert!(flags.contains(&"required_checks_not_passing"));
    assert_eq!(two["checks"]["required"]["build"]["result"], "failure");
    assert_eq!(two["checks"]["required"]["ci/legacy"]["passed"], true);
    assert_eq!(one["checks"]["required"]["build"]["passed"], true);
    assert_eq!(one["checks"]["required"]["ci/legacy"]["result"], "success");
    assert_eq!(
        rec["statement"]["predicate"]["criteria"],
        serde_json::json!(["CC8.1"])
    );
    let until = p["window"]["until"].as_str().unwrap().to_string();

    // The next record's window starts where this one ended: the same
    // pull requests are not counted again.
    std::fs::write(ws.config(), table(&scenario("exhibit-pull-requests-next"))).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec = show(&ws, &format!("gh-prs/{ORG}"));
    assert_eq!(rec["statement"]["predicate"]["seq"], 2);
    assert_eq!(rec["payload"]["window"]["since"], until.as_str());
    assert_eq!(rec["payload"]["count"], 0);
    assert_all_consumed();
}

#[test]
fn primary_and_secondary_rate_limits_are_waited_out() {
    let url = scenario("exhibit-rate-limit");
    let ws = Workspace::new(&config(&[collector("gh-org", "github-org", &url, "")]));
    let began = Instant::now();
    let out = ws.run(&["collect"]);
    let took = began.elapsed();
    assert_eq!(code(&out), 0, "{}", text(&out));
    // 429 Retry-After: 1, then 403 Retry-After: 1: two seconds of waiting,
    // in place, within one attempt.
    assert!(took >= Duration::from_secs(2), "took only {took:?}");
    let rec = show(&ws, &format!("gh-org/{ORG}"));
    assert_eq!(rec["statement"]["predicate"]["status"], "ok");
    assert_eq!(rec["statement"]["predicate"]["attempts"], 1);
    let settings = &rec["payload"]["settings"];
    assert_eq!(settings["two_factor_requirement_enabled"], true);
    assert_eq!(settings["members_can_delete_repositories"], false);
    assert_eq!(settings["members_can_invite_outside_collaborators"], false);
    // Both limits were logged as waits, not as failures.
    let logs = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        logs.matches("GitHub rate limit; waiting").count(),
        2,
        "{logs}"
    );
    assert_all_consumed();
}

#[test]
fn a_rate_limit_too_long_to_wait_ends_in_a_failed_record() {
    let url = scenario("exhibit-rate-limit-long");
    // Retries are allowed, but an hour-long wait is not worth one.
    let ws = Workspace::new(&config(&[
        collector("gh-org", "github-org", &url, "").replace("retries = 0", "retries = 2")
    ]));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let rec = show(&ws, &format!("gh-org/{ORG}"));
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "failed");
    assert_eq!(pred["attempts"], 1);
    let err = pred["error"].to_string();
    assert!(
        err.contains("rate limited") && err.contains("3600") && err.contains("resets at"),
        "{err}"
    );
    assert_all_consumed();
}

#[test]
fn server_errors_and_garbage_end_in_failed_records() {
    let ws = Workspace::new(&config(&[
        collector(
            "gh-5xx",
            "github-org",
            &scenario("exhibit-server-errors"),
            "",
        ),
        collector("gh-garbage", "github-org", &scenario("exhibit-garbage"), ""),
        collector(
            "gh-401",
            "github-org",
            &scenario("exhibit-bad-credentials"),
            "",
        ),
    ]));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let failed = |stream: &str| {
        let rec = show(&ws, stream);
        assert_eq!(
            rec["statement"]["predicate"]["status"], "failed",
            "{stream}"
        );
        rec["statement"]["predicate"]["error"].to_string()
    };
    let e = failed(&format!("gh-5xx/{ORG}"));
    assert!(e.contains("502") && e.contains("3 tries"), "{e}");
    let e = failed(&format!("gh-garbage/{ORG}"));
    assert!(e.contains("unreadable response"), "{e}");
    let e = failed(&format!("gh-401/{ORG}"));
    assert!(e.contains("rejected the credentials"), "{e}");
    assert_all_consumed();
}

#[test]
fn two_factor_status_invisible_to_non_owners_makes_a_partial_record() {
    let url = scenario("exhibit-members-not-owner");
    let ws = Workspace::new(&config(&[collector(
        "gh-members",
        "github-members",
        &url,
        "",
    )]));
    let out = ws.run(&["collect"]);
    let rec = show(&ws, &format!("gh-members/{ORG}"));
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "partial", "{}", text(&out));
    assert!(
        pred["error"].to_string().contains("owners"),
        "{}",
        pred["error"]
    );
    assert_eq!(rec["payload"]["counts"]["members"], 1);
    assert_eq!(rec["payload"]["two_factor_disabled"], Value::Null);
    assert_all_consumed();
}

#[test]
fn teams_repositories_keys_hooks_actions_invitations_collaborators() {
    let ws = Workspace::new(&config(&[
        collector("gh-teams", "github-teams", &scenario("exhibit-teams"), ""),
        collector(
            "gh-repos",
            "github-repositories",
            &scenario("exhibit-repositories"),
            "include_archived = true",
        ),
        collector(
            "gh-keys",
            "github-deploy-keys",
            &scenario("exhibit-deploy-keys"),
            "",
        ),
        collector(
            "gh-hooks",
            "github-webhooks",
            &scenario("exhibit-webhooks"),
            "",
        ),
        collector(
            "gh-actions",
            "github-actions",
            &scenario("exhibit-actions"),
            "",
        ),
        collector(
            "gh-invites",
            "github-invitations",
            &scenario("exhibit-invitations"),
            "",
        ),
        collector(
            "gh-outside",
            "github-outside-collaborators",
            &scenario("exhibit-outside-collaborators"),
            "",
        ),
    ]));
    let out = ws.run(&["-vv", "collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let payload = |s: &str| show(&ws, &format!("{s}/{ORG}"))["payload"].clone();

    let t = payload("gh-teams");
    let platform = &t["teams"][0];
    assert_eq!(platform["slug"], "platform");
    assert_eq!(platform["members"][0]["login"], "alice");
    assert_eq!(platform["members"][0]["role"], "maintainer");
    assert_eq!(platform["members"][1]["role"], "member");
    assert_eq!(
        platform["repositories"][0]["repository"],
        format!("{ORG}/api")
    );
    assert_eq!(platform["repositories"][0]["permission"], "maintain");

    let r = payload("gh-repos");
    assert_eq!(r["count"], 3);
    assert_eq!(r["public"], 1);
    let repos = r["repositories"].as_array().unwrap();
    let by = |n: &str| repos.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(by("api")["codeowners"]["present"], true);
    assert_eq!(by("site")["codeowners"]["present"], false);
    assert_eq!(by("site")["visibility"], "public");
    assert_eq!(by("old")["archived"], true);
    assert_eq!(by("old")["codeowners"]["present"], true);
    assert_eq!(by("old")["codeowners"]["errors"], 1);

    let k = payload("gh-keys");
    assert_eq!(k["writable"], 1);
    assert_eq!(k["deploy_keys"][0]["title"], "ci-deploy");
    assert_eq!(k["deploy_keys"][0]["read_only"], false);

    let h = payload("gh-hooks");
    assert_eq!(h["count"], 2);
    assert_eq!(h["webhooks"][0]["scope"], "organization");
    assert_eq!(h["webhooks"][0]["host"], "siem.example.com");
    assert_eq!(h["webhooks"][1]["host"], "ci.example.com:8080");
    assert_eq!(h["webhooks"][1]["insecure_ssl"], true);
    assert_eq!(h["webhooks"][1]["active"], false);
    assert_eq!(h["without_tls_verification"], 1);

    let a = payload("gh-actions");
    assert_eq!(a["allowed_actions"], "selected");
    assert_eq!(
        a["selected_actions"]["patterns_allowed"],
        serde_json::json!(["docker/*"])
    );
    assert_eq!(a["workflow_token"]["default_permissions"], "read");
    assert_eq!(
        a["workflow_token"]["can_approve_pull_request_reviews"],
        false
    );

    let i = payload("gh-invites");
    assert_eq!(i["invitations"][0]["login"], "new-hire");
    assert_eq!(i["invitations"][0]["inviter"], "alice");

    let o = payload("gh-outside");
    assert_eq!(o["count"], 2);
    assert_eq!(logins(&o["two_factor_disabled"]), ["vendor-frank"]);

    // Webhook secrets, tokens in hook URLs and key material never land.
    let store = all_text_under(&ws.store());
    let logs = String::from_utf8_lossy(&out.stderr);
    for secret in [
        "whsec_ExhibitWebhookSecretValue",
        "ExhibitHookUrlToken",
        "ExhibitDeployKeyMaterial",
        TOKEN,
    ] {
        assert!(!store.contains(secret), "{secret} is in the store");
        assert!(!logs.contains(secret), "{secret} is in the logs");
    }
    assert_all_consumed();
}

#[test]
fn bad_github_config_is_a_located_usage_error() {
    let base =
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"gh\"\nschedule = \"@daily\"\n";
    let cases = [
        // No credentials anywhere.
        (
            format!("{base}kind = \"github-org\"\norg = \"acme\"\n"),
            "no GitHub credentials",
        ),
        // A key of another kind.
        (
            format!("{base}kind = \"github-org\"\norg = \"acme\"\ntoken = \"x\"\nchecks = true\n"),
            "does not apply",
        ),
        // A misspelt key.
        (
            format!(
                "{base}kind = \"github-members\"\norg = \"acme\"\ntoken = \"x\"\norganisation = \"a\"\n"
            ),
            "organisation",
        ),
        // Half an App.
        (
            format!(
                "{base}kind = \"github-org\"\norg = \"acme\"\napp_id = 1\ninstallation_id = 2\n"
            ),
            "private_key",
        ),
        (
            format!(
                "{base}kind = \"github-org\"\norg = \"acme\"\napp_id = 1\ninstallation_id = 2\nprivate_key = \"not a key\"\n"
            ),
            "not an RSA private key",
        ),
        (
            format!(
                "{base}kind = \"github-org\"\norg = \"acme\"\ntoken = \"x\"\napi_url = \"not a url\"\n"
            ),
            "api_url",
        ),
    ];
    for (cfg, expect) in cases {
        let ws = Workspace::new(&cfg);
        let out = ws
            .cmd(&["collect"])
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_API_URL")
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{cfg}\n{}", text(&out));
        let t = text(&out);
        assert!(t.contains(expect), "{cfg}\nexpected {expect:?} in: {t}");
        assert!(t.contains("exhibit.toml:"), "located: {t}");
    }
}

#[test]
fn the_example_config_is_valid() {
    // config/github.toml as shipped, with its App key path pointed at a
    // freshly generated key.
    let example = std::fs::read_to_string(root().join("config/github.toml")).unwrap();
    let ws = Workspace::new("");
    let key = ws.path().join("app.pem");
    let out = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        ws.config(),
        example.replace("/run/secrets/exhibit-github-app.pem", key.to_str().unwrap()),
    )
    .unwrap();
    let out = ws
        .cmd(&["config", "check"])
        .env("GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    for kind in [
        "github-org",
        "github-members",
        "github-outside-collaborators",
        "github-invitations",
        "github-teams",
        "github-repositories",
        "github-branch-protection",
        "github-pull-requests",
        "github-deploy-keys",
        "github-webhooks",
        "github-actions",
    ] {
        assert!(t.contains(kind), "{kind} missing from the example: {t}");
    }
}
