//! The Jira change-management definition: issues updated since the previous
//! record, with their status transitions and who made them.

mod common;
#[path = "support/peers.rs"]
mod peers;

use common::{Workspace, code, text};
use serde_json::Value;

const API_TOKEN: &str = "ATATT3xFfGF0-jira-api-token-SECRET";

#[test]
fn issues_in_the_window_with_status_transitions_and_their_authors() {
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("audit@acme.com:{API_TOKEN}"))
    };
    let jira = peers::replay("jira.yaml", &[("Authorization", &format!("Basic {basic}"))]);
    let ws = Workspace::new(&format!(
        r#"
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
    let show = |seq: &str| -> Value {
        let out = ws.run(&["show", &format!("jira/127.0.0.1@{seq}"), "--json"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let first = show("1");
    assert_eq!(
        first["statement"]["predicate"]["criteria"],
        serde_json::json!(["CC8.1"])
    );
    let p = &first["payload"];
    // The first run looks back a day.
    assert_eq!(p["window_minutes"], "1440");
    assert_eq!(p["issues"]["pages"], 2);
    let issues = p["issues"]["items"].as_array().unwrap();
    assert_eq!(issues.len(), 2);
    // CHG-1: approved by someone other than its assignee. Only status
    // changes are transitions.
    let chg1 = &issues[0];
    assert_eq!(chg1["key"], "CHG-1");
    assert_eq!(chg1["assignee"], "Alice Dev");
    let transitions = chg1["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 2);
    let approval = &transitions[1];
    assert_eq!(approval["author"]["displayName"], "Bob Approver");
    assert_eq!(approval["items"][0]["toString"], "Approved");
    // CHG-2: straight to Done by its own assignee, with no review.
    let chg2 = &issues[1];
    assert_eq!(chg2["status"], "Done");
    assert_eq!(chg2["transitions"][0]["author"]["displayName"], "Alice Dev");
    assert_eq!(chg2["transitions"][0]["items"][0]["fromString"], "To Do");

    // The next run asks only for what changed since the first one.
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let second = show("2");
    assert_eq!(second["payload"]["window_minutes"], "5");
    assert_eq!(second["payload"]["issues"]["count"], 0);
    assert_eq!(second["payload"]["issues"]["complete"], true);

    assert!(!peers::all_text_under(&ws.store()).contains(API_TOKEN));
}
