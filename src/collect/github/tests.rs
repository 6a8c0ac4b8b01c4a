//! Unit tests of the GitHub collectors: every endpoint the collectors call
//! decodes GitHub's own documented examples (from `@octokit/openapi`, the
//! official OpenAPI description), and the judgement calls — approval,
//! rate-limit waits, links, hosts — on their edge cases.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{next_link, rate_limit_wait, seg};
use super::types::*;

/// GitHub's OpenAPI description, installed by `tests/run.sh` from the
/// pinned `@octokit/openapi`.
fn description() -> &'static Value {
    static DESC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DESC.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers/node_modules/@octokit/openapi/generated/api.github.com.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "GitHub's OpenAPI description is missing ({}: {e}); run `bash tests/run.sh` \
                 (or `cd tests/peers && npm ci`)",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("the OpenAPI description is JSON")
    })
}

/// The documented examples of a `GET` operation's 200 response.
fn examples(path: &str) -> Vec<(String, Value)> {
    let d = description();
    let op = &d["paths"][path]["get"];
    assert!(op.is_object(), "GET {path} is not in GitHub's description");
    let content = &op["responses"]["200"]["content"]["application/json"];
    assert!(content.is_object(), "GET {path} documents no JSON 200");
    let mut out = Vec::new();
    if let Some(ex) = content.get("example") {
        out.push(("example".to_string(), ex.clone()));
    }
    for (name, ex) in content["examples"].as_object().into_iter().flatten() {
        let value = match ex["$ref"].as_str() {
            Some(r) => {
                let key = r.trim_start_matches("#/components/examples/");
                d["components"]["examples"][key]["value"].clone()
            }
            None => ex["value"].clone(),
        };
        out.push((name.clone(), value));
    }
    assert!(!out.is_empty(), "GET {path} has no documented example");
    out
}

fn decodes<T: DeserializeOwned>(path: &str) -> usize {
    let ex = examples(path);
    for (name, value) in &ex {
        if let Err(e) = serde_json::from_value::<T>(value.clone()) {
            panic!("GET {path}: example `{name}` does not decode: {e}\n{value:#}");
        }
    }
    ex.len()
}

#[test]
fn every_endpoint_called_decodes_githubs_documented_examples() {
    let mut n = 0;
    n += decodes::<Org>("/orgs/{org}");
    n += decodes::<Vec<User>>("/orgs/{org}/members");
    n += decodes::<Vec<User>>("/orgs/{org}/outside_collaborators");
    n += decodes::<Vec<Invitation>>("/orgs/{org}/invitations");
    n += decodes::<Vec<Team>>("/orgs/{org}/teams");
    n += decodes::<Vec<User>>("/orgs/{org}/teams/{team_slug}/members");
    n += decodes::<Vec<TeamRepo>>("/orgs/{org}/teams/{team_slug}/repos");
    n += decodes::<Vec<Repo>>("/orgs/{org}/repos");
    n += decodes::<CodeownersErrors>("/repos/{owner}/{repo}/codeowners/errors");
    n += decodes::<Protection>("/repos/{owner}/{repo}/branches/{branch}/protection");
    n += decodes::<Vec<Rule>>("/repos/{owner}/{repo}/rules/branches/{branch}");
    n += decodes::<Vec<Pull>>("/repos/{owner}/{repo}/pulls");
    n += decodes::<Pull>("/repos/{owner}/{repo}/pulls/{pull_number}");
    n += decodes::<Vec<Review>>("/repos/{owner}/{repo}/pulls/{pull_number}/reviews");
    n += decodes::<CheckRuns>("/repos/{owner}/{repo}/commits/{ref}/check-runs");
    n += decodes::<CombinedStatus>("/repos/{owner}/{repo}/commits/{ref}/status");
    n += decodes::<Vec<DeployKey>>("/repos/{owner}/{repo}/keys");
    n += decodes::<Vec<Hook>>("/orgs/{org}/hooks");
    n += decodes::<Vec<Hook>>("/repos/{owner}/{repo}/hooks");
    n += decodes::<ActionsPermissions>("/orgs/{org}/actions/permissions");
    n += decodes::<SelectedActions>("/orgs/{org}/actions/permissions/selected-actions");
    n += decodes::<WorkflowPermissions>("/orgs/{org}/actions/permissions/workflow");
    assert!(n >= 22, "only {n} examples");
}

#[test]
fn documented_examples_carry_the_facts_recorded() {
    // Not just "it parses": the fields the evidence relies on are read.
    let org: Org = serde_json::from_value(examples("/orgs/{org}")[0].1.clone()).unwrap();
    assert!(org.two_factor_requirement_enabled.is_some());
    assert!(org.default_repository_permission.is_some());
    let p: Protection = serde_json::from_value(
        examples("/repos/{owner}/{repo}/branches/{branch}/protection")[0]
            .1
            .clone(),
    )
    .unwrap();
    assert!(p.required_pull_request_reviews.is_some());
    let hooks: Vec<Hook> =
        serde_json::from_value(examples("/orgs/{org}/hooks")[0].1.clone()).unwrap();
    assert!(hooks[0].config.url.is_some());
    let reviews: Vec<Review> = serde_json::from_value(
        examples("/repos/{owner}/{repo}/pulls/{pull_number}/reviews")[0]
            .1
            .clone(),
    )
    .unwrap();
    assert!(reviews[0].submitted_at.is_some() && reviews[0].user.is_some());
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": 1})
}

fn pull(author: &str, merged_by: &str, merged_at: &str) -> Pull {
    serde_json::from_value(json!({
        "number": 7, "title": "t", "user": user(author), "merged_at": merged_at,
        "updated_at": merged_at, "merge_commit_sha": "m",
        "head": {"ref": "x", "sha": "head"}, "base": {"ref": "main", "sha": "base"},
        "merged_by": user(merged_by),
    }))
    .unwrap()
}

fn review(who: &str, state: &str, at: &str, commit: &str) -> Review {
    serde_json::from_value(json!({
        "id": 1, "user": user(who), "state": state, "submitted_at": at, "commit_id": commit,
    }))
    .unwrap()
}

fn flags(v: &Value) -> Vec<&str> {
    v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

#[test]
fn approval_must_be_independent_and_before_the_merge() {
    use super::pull_requests::assess;
    let merged = "2026-10-10T12:00:00Z";
    let p = pull("alice", "bob", merged);

    let ok = assess(
        "r",
        &p,
        &[review("carol", "APPROVED", "2026-10-10T11:00:00Z", "head")],
        None,
    );
    assert_eq!(ok["independent_approval"], true);
    assert!(flags(&ok).is_empty());

    // Only the author's own review.
    let own = assess(
        "r",
        &p,
        &[review("alice", "APPROVED", "2026-10-10T11:00:00Z", "head")],
        None,
    );
    assert_eq!(own["independent_approval"], false);

    // Approved after the merge.
    let late = assess(
        "r",
        &p,
        &[review("carol", "APPROVED", "2026-10-10T12:00:01Z", "head")],
        None,
    );
    assert_eq!(late["independent_approval"], false);

    // Approved, then changes requested by the same reviewer.
    let withdrawn = assess(
        "r",
        &p,
        &[
            review("carol", "APPROVED", "2026-10-10T10:00:00Z", "head"),
            review("carol", "CHANGES_REQUESTED", "2026-10-10T11:00:00Z", "head"),
        ],
        None,
    );
    assert_eq!(withdrawn["independent_approval"], false);

    // A comment after an approval does not withdraw it.
    let commented = assess(
        "r",
        &p,
        &[
            review("carol", "APPROVED", "2026-10-10T10:00:00Z", "head"),
            review("carol", "COMMENTED", "2026-10-10T11:00:00Z", "head"),
        ],
        None,
    );
    assert_eq!(commented["independent_approval"], true);

    // Approved an earlier commit than the one merged.
    let stale = assess(
        "r",
        &p,
        &[review("carol", "APPROVED", "2026-10-10T10:00:00Z", "older")],
        None,
    );
    assert_eq!(stale["independent_approval"], true);
    assert_eq!(flags(&stale), ["approved_before_last_push"]);

    // Merged by its author.
    let selfm = assess("r", &pull("alice", "alice", merged), &[], None);
    assert_eq!(
        flags(&selfm),
        ["merged_without_independent_approval", "self_merged"]
    );
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn rate_limits_are_recognised_with_their_wait() {
    let none = headers(&[]);
    assert_eq!(
        rate_limit_wait(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "7")]),
            ""
        ),
        Some(Duration::from_secs(7))
    );
    // Secondary limit with no header: GitHub's advice, one minute.
    assert_eq!(
        rate_limit_wait(
            StatusCode::FORBIDDEN,
            &none,
            "You have exceeded a secondary rate limit"
        ),
        Some(Duration::from_secs(60))
    );
    // Primary limit: wait until the reset.
    let reset = (chrono::Utc::now().timestamp() + 30).to_string();
    let w = rate_limit_wait(
        StatusCode::FORBIDDEN,
        &headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]),
        "API rate limit exceeded",
    )
    .unwrap();
    assert!(
        w > Duration::from_secs(25) && w <= Duration::from_secs(31),
        "{w:?}"
    );
    // A plain permission error is not a rate limit.
    assert_eq!(
        rate_limit_wait(
            StatusCode::FORBIDDEN,
            &none,
            "Resource not accessible by integration"
        ),
        None
    );
    assert_eq!(rate_limit_wait(StatusCode::NOT_FOUND, &none, ""), None);
}

#[test]
fn next_page_comes_from_the_link_header() {
    let h = headers(&[(
        "link",
        r#"<https://api.github.com/organizations/1/repos?page=1>; rel="prev", <https://api.github.com/organizations/1/repos?page=3>; rel="next", <https://api.github.com/organizations/1/repos?page=9>; rel="last""#,
    )]);
    assert_eq!(
        next_link(&h).as_deref(),
        Some("https://api.github.com/organizations/1/repos?page=3")
    );
    let last = headers(&[(
        "link",
        r#"<https://api.github.com/x?page=1>; rel="first", <https://api.github.com/x?page=8>; rel="prev""#,
    )]);
    assert_eq!(next_link(&last), None);
    assert_eq!(next_link(&headers(&[])), None);
}

#[test]
fn webhook_host_drops_credentials_path_and_query() {
    use super::webhooks::host;
    assert_eq!(
        host("https://user:pass@hooks.example.com/a/b?token=x").as_deref(),
        Some("hooks.example.com")
    );
    assert_eq!(
        host("http://ci.example.com:8080/h").as_deref(),
        Some("ci.example.com:8080")
    );
    assert_eq!(host("not a url"), None);
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(seg("release/1.0"), "release%2F1.0");
    assert_eq!(seg("a b#c"), "a%20b%23c");
    assert_eq!(seg("main"), "main");
}

#[test]
fn the_rate_limit_budget_is_shared_per_credential_and_server() {
    use super::api::{Auth, shared_budget};
    use std::sync::Arc;
    let a: http::Uri = "https://api.github.com".parse().unwrap();
    let b: http::Uri = "https://ghe.example.com/api/v3".parse().unwrap();
    let t = |s: &str| Auth::Token(s.to_string().into());
    assert!(Arc::ptr_eq(
        &shared_budget(&a, &t("one")),
        &shared_budget(&a, &t("one"))
    ));
    assert!(!Arc::ptr_eq(
        &shared_budget(&a, &t("one")),
        &shared_budget(&a, &t("two"))
    ));
    assert!(!Arc::ptr_eq(
        &shared_budget(&a, &t("one")),
        &shared_budget(&b, &t("one"))
    ));
}
