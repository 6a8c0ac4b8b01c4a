//! Every GitHub kind against `@stoplight/prism-cli` serving GitHub's
//! official OpenAPI description (`@octokit/openapi`, api.github.com.json):
//! prism rejects a request whose path or query parameters the description
//! does not allow (422/404), and answers with the documented examples
//! (static mode) or with random data valid under the schema (dynamic
//! mode), which the collectors must decode.
//!
//! Prism negotiates media types literally, and GitHub documents
//! `application/json` while clients send `application/vnd.github.v3+json`
//! (which GitHub's recorded fixtures insist on). A small proxy in this test
//! rewrites the `Accept` header, adds `Prefer: dynamic=true` in dynamic
//! mode, and drops prism's example `Link` header (it points at a
//! placeholder `/resource` on api.github.com, which the collectors rightly
//! refuse to follow). Pagination is proven against fixtures-server in the
//! github suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use serde_json::Value;

use crate::support::octokit::github_kinds;
use crate::support::{Workspace, code, prism, text};

/// A proxy in front of prism (see the module docs); returns its port.
fn proxy(dynamic: bool) -> u16 {
    let upstream = prism::github();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || relay(conn, upstream, dynamic));
        }
    });
    port
}

fn relay(mut client: TcpStream, upstream: u16, dynamic: bool) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("accept:") || lower.starts_with("connection:") {
            continue;
        }
        head.push(line);
    }
    head.push("Accept: application/json\r\n".into());
    head.push("Connection: close\r\n".into());
    if dynamic {
        head.push("Prefer: dynamic=true\r\n".into());
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    up.write_all(format!("{}\r\n", head.concat()).as_bytes())
        .unwrap();
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let headers = String::from_utf8_lossy(&resp[..split]);
    let kept: Vec<&str> = headers
        .split("\r\n")
        .filter(|h| {
            let l = h.to_ascii_lowercase();
            !(l.starts_with("link:")
                || l.starts_with("connection:")
                || l.starts_with("keep-alive:"))
        })
        .collect();
    client
        .write_all(format!("{}\r\nConnection: close", kept.join("\r\n")).as_bytes())
        .ok();
    client.write_all(&resp[split..]).ok();
}

fn config(port: u16) -> String {
    let mut c = String::from("[agent]\nkey = \"exhibit.key\"\n");
    for kind in github_kinds() {
        c.push_str(&format!(
            "\n[[collectors]]\nname = \"{kind}\"\nkind = \"{kind}\"\nschedule = \"@daily\"\n\
             retries = 0\norg = \"octo-org\"\napi_url = \"http://127.0.0.1:{port}\"\n\
             token = \"ghp_PrismToken\"\n"
        ));
        if kind == "github-pull-requests" {
            c.push_str("initial_window = \"36500d\"\n");
        }
    }
    c
}

fn show(ws: &Workspace, stream: &str) -> Value {
    let out = ws.run(&["show", stream, "--json"]);
    assert_eq!(code(&out), 0, "show {stream}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn all_ok(ws: &Workspace) {
    for kind in github_kinds() {
        let rec = show(ws, &format!("{kind}/octo-org"));
        let pred = &rec["statement"]["predicate"];
        assert_eq!(
            pred["status"], "ok",
            "{kind}: {} {}",
            pred["error"], rec["payload"]
        );
    }
}

#[test]
fn every_kind_decodes_githubs_documented_examples() {
    let ws = Workspace::new(&config(proxy(false)));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    all_ok(&ws);
    // Facts from GitHub's own examples, read through each collector.
    let p = |k: &str| show(&ws, &format!("{k}/octo-org"))["payload"].clone();
    assert_eq!(p("github-members")["owners"][0], "octocat");
    let bp = p("github-branch-protection");
    assert_eq!(bp["repositories"][0]["protected"], true);
    assert_eq!(
        bp["repositories"][0]["effective"]["pull_request_required"],
        true
    );
    let prs = p("github-pull-requests");
    assert!(prs["count"].as_u64().unwrap() >= 1, "{prs}");
    assert_eq!(prs["pull_requests"][0]["author"], "octocat");
    assert_eq!(p("github-org")["org"], "github");
    assert!(p("github-webhooks")["count"].as_u64().unwrap() >= 2);
    assert_eq!(
        p("github-repositories")["repositories"][0]["name"],
        "Hello-World"
    );
}

#[test]
fn every_kind_decodes_random_responses_valid_under_githubs_schema() {
    // Dynamic mode: fields the schema does not require may be absent, and
    // values are random; three rounds for variety.
    for _ in 0..3 {
        let ws = Workspace::new(&config(proxy(true)));
        let out = ws.run(&["collect"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        all_ok(&ws);
    }
}
