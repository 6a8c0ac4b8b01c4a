//! The Jira change-management definition against Prism serving Atlassian's
//! own Jira Cloud platform OpenAPI description (the copy in the pinned PyPI
//! sdist `jirapi`), with scenario tickets layered on its example and every
//! response checked against the description (tests/it/support/replay.rs,
//! `described`). Also the `next_url` pagination style, through a
//! definition of the user's own over Jira's project search.

use serde_json::{Value, json};

use crate::support::{Workspace, all_text_under, code, replay, text};

const API_TOKEN: &str = "ATATT3xFfGF0-jira-api-token-SECRET";

fn basic() -> String {
    use base64::Engine as _;
    let pair = format!("audit@acme.com:{API_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn jira() -> replay::Described {
    replay::described(
        &replay::jira_description(),
        "jira-scenario.yaml",
        &[("Authorization", &basic())],
        None,
    )
}

fn show(ws: &Workspace, stream: &str) -> Value {
    let out = ws.run(&["show", stream, "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn transitions(issue: &Value) -> Vec<(String, String, String)> {
    issue["transitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no transitions: {issue:#}"))
        .iter()
        .map(|h| {
            let status = h["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["field"] == "status")
                .expect("a status item");
            (
                h["author"]["displayName"].as_str().unwrap().to_string(),
                status["fromString"].as_str().unwrap().to_string(),
                status["toString"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn issues_in_the_window_with_status_transitions_and_their_approvers() {
    let jira = jira();
    let ws = Workspace::new(&format!(
        r#"
[log]
format = "json"
level = "debug"

[[collectors]]
name = "jira"
kind = "http"
schedule = "@daily"
definition = "jira-changes"
base_url = "{url}"
username = "audit@acme.com"
password = "{API_TOKEN}"
retries = 0
vars = {{ filter = "project = CHG", page_size = "1" }}
"#,
        url = jira.url
    ));

    let out = ws.run(&["collect"]);
    let mut logs = text(&out);
    assert_eq!(code(&out), 0, "{logs}");
    let first = show(&ws, "jira/127.0.0.1@1");
    assert_eq!(first["statement"]["predicate"]["status"], "ok");
    assert_eq!(
        first["statement"]["predicate"]["criteria"],
        json!(["CC8.1"])
    );
    let p = &first["payload"];
    // The first run looks back a day.
    assert_eq!(p["window_minutes"], "1440");
    // Three pages of one, the last without nextPageToken.
    assert_eq!(p["issues"]["pages"], 3, "{:#}", p["issues"]);
    assert_eq!(p["issues"]["complete"], true);
    let issues = p["issues"]["items"].as_array().unwrap();
    let keys: Vec<_> = issues.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["CHG-1", "CHG-2", "CHG-3"]);

    // CHG-1: approved by someone other than its assignee; the assignee
    // change in its changelog is not a transition.
    let chg1 = &issues[0];
    assert_eq!(chg1["assignee"], "Alice Dev");
    assert_eq!(chg1["status"], "Approved");
    assert_eq!(
        transitions(chg1),
        [
            ("Alice Dev".into(), "To Do".into(), "In Review".into()),
            ("Bob Approver".into(), "In Review".into(), "Approved".into()),
        ]
    );
    // CHG-2: straight to Done by its own assignee, with no review.
    let chg2 = &issues[1];
    assert_eq!(chg2["status"], "Done");
    assert_eq!(chg2["resolution"], "Done");
    assert_eq!(
        transitions(chg2),
        [("Alice Dev".into(), "To Do".into(), "Done".into())]
    );
    // CHG-3, on the last page: approved by Bob, then done.
    let chg3 = &issues[2];
    let approvers: Vec<_> = transitions(chg3)
        .into_iter()
        .filter(|(_, _, to)| to == "Approved")
        .map(|(who, _, _)| who)
        .collect();
    assert_eq!(approvers, ["Bob Approver"]);
    assert_eq!(chg3["type"], "Change");

    // The next run asks only for what changed since the first one.
    let out = ws.run(&["collect"]);
    logs.push_str(&text(&out));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let second = show(&ws, "jira/127.0.0.1@2");
    assert_eq!(second["payload"]["window_minutes"], "5");
    assert_eq!(second["payload"]["issues"]["count"], 0);
    assert_eq!(second["payload"]["issues"]["complete"], true);

    // The API token is neither stored nor logged, not even base64-encoded
    // in a header.
    let store = all_text_under(&ws.store());
    let encoded = basic();
    let encoded = encoded.trim_start_matches("Basic ");
    for secret in [API_TOKEN, encoded] {
        assert!(!store.contains(secret), "{secret} in the store");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

/// Jira's paged lists (`PageBeanProject` and the like) carry the next
/// page's URL in `nextPage`: a definition of the user's own lists
/// projects with `next_url` pagination.
const PROJECTS: &str = r#"
description = "Jira projects, paged by nextPage"
criteria = ["CC8.1"]
stream_key = "{host}"

[vars]
page_size = "2"

[auth]
type = "basic"

[source]
vendor = "jira"

[[requests]]
name = "projects"
path = "/rest/api/3/project/search"
query = { maxResults = "{page_size}" }
items = "$.values[*]"
pagination = { type = "next_url", next = "$.nextPage" }

[requests.keep]
key = "$.key"
name = "$.name"
"#;

#[test]
fn next_url_pages_are_followed_on_the_same_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let jira = replay::described(
        &replay::jira_description(),
        "jira-scenario.yaml",
        &[("Authorization", &basic())],
        Some(&journal),
    );
    let instance = |name: &str, page_size: &str| {
        format!(
            r#"
[[collectors]]
name = "{name}"
kind = "http"
schedule = "@daily"
definition = "jira-projects"
collectors_dir = "mine"
base_url = "{url}"
username = "audit@acme.com"
password = "{API_TOKEN}"
retries = 0
vars = {{ page_size = "{page_size}" }}
"#,
            url = jira.url
        )
    };
    // Two per page: three pages, each `nextPage` an absolute URL on this
    // host. One per page: the second page's `nextPage` leads to another
    // host. Fifty: no scenario, the description's own example, whose
    // `nextPage` is on `your-domain.atlassian.net`.
    let ws = Workspace::new(&format!(
        "{}{}{}",
        instance("paged", "2"),
        instance("elsewhere", "1"),
        instance("example", "50")
    ));
    std::fs::create_dir_all(ws.path().join("mine")).unwrap();
    std::fs::write(ws.path().join("mine/jira-projects.toml"), PROJECTS).unwrap();

    // A partial record is a failed collection (exit code 1).
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));

    let paged = show(&ws, "paged/127.0.0.1");
    assert_eq!(paged["statement"]["predicate"]["status"], "ok");
    let projects = &paged["payload"]["projects"];
    assert_eq!(projects["pages"], 3, "{projects:#}");
    assert_eq!(projects["complete"], true);
    let keys: Vec<_> = projects["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["CHG", "OPS", "SEC", "WEB", "HR"]);

    // What was fetched before the foreign link is kept; the record says
    // the rest is missing and why.
    for (stream, pages, host) in [
        ("elsewhere/127.0.0.1", 2, "https://attacker.example"),
        ("example/127.0.0.1", 1, "https://your-domain.atlassian.net"),
    ] {
        let shown = show(&ws, stream);
        assert_eq!(
            shown["statement"]["predicate"]["status"], "partial",
            "{stream}"
        );
        let projects = &shown["payload"]["projects"];
        assert_eq!(projects["complete"], false, "{stream}");
        assert_eq!(projects["pages"], pages, "{stream}: {projects:#}");
        let error = projects["error"].as_str().unwrap();
        assert!(
            error.contains("another host") && error.contains(host),
            "{stream}: {error}"
        );
    }
    let example = show(&ws, "example/127.0.0.1");
    let keys: Vec<_> = example["payload"]["projects"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["EX", "ABC"], "the description's example projects");

    // No request ever left for the other host's path: the journal holds
    // only requests for this host, and none past the refused link.
    let requests: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let one_per_page = requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains("maxResults=1"))
        .count();
    assert_eq!(one_per_page, 2, "{requests:#?}");
}
