//! What a security lead reads each morning: `exhibit diff` over real
//! collector payloads.

use serde_json::Value;

use crate::support::{Workspace, code, text};

const CONFIG: &str = r#"
[[collectors]]
name = "iam"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
retries = 0
"#;

fn collect(ws: &Workspace, users: &str) {
    std::fs::write(ws.path().join("users.json"), users).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn diff_names_exactly_the_entities_that_changed() {
    let ws = Workspace::new(CONFIG);
    collect(
        &ws,
        r#"{"users": [
            {"arn": "arn:aws:iam::1:user/alice", "mfa": true, "policies": ["ReadOnly"]},
            {"arn": "arn:aws:iam::1:user/bob", "mfa": true, "policies": []},
            {"arn": "arn:aws:iam::1:user/dave", "mfa": true, "policies": []}
        ]}"#,
    );
    // A failed collection in between is skipped by the default pair.
    std::fs::write(ws.path().join("users.json"), "not json").unwrap();
    std::fs::remove_file(ws.path().join("users.json")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);
    collect(
        &ws,
        r#"{"users": [
            {"arn": "arn:aws:iam::1:user/carol", "mfa": false, "policies": ["AdministratorAccess"]},
            {"arn": "arn:aws:iam::1:user/dave", "mfa": true, "policies": []},
            {"arn": "arn:aws:iam::1:user/alice", "mfa": false, "policies": ["ReadOnly", "AdministratorAccess"]}
        ]}"#,
    );

    let out = ws.run(&["diff", "iam/default", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["from"]["seq"], 1);
    assert_eq!(d["to"]["seq"], 3, "the failed record #2 is not compared");
    assert_eq!(
        d["skipped"],
        serde_json::json!([{"seq": 2, "status": "failed"}]),
        "but it is named"
    );
    let changes: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let p = "output.users";
    assert_eq!(
        changes,
        vec![
            (
                format!("{p}[arn=arn:aws:iam::1:user/alice].mfa"),
                "changed".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/alice].policies[]"),
                "added".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/bob]"),
                "removed".into()
            ),
            (
                format!("{p}[arn=arn:aws:iam::1:user/carol]"),
                "added".into()
            ),
        ],
        "dave did not change and moved position: he must not appear"
    );
    assert_eq!(d["changes"][1]["after"], "AdministratorAccess");

    let human = text(&ws.run(&["diff", "iam/default"]));
    assert!(
        human.contains("skipped #2 (failed): no snapshot to compare"),
        "{human}"
    );
    let out = ws.run(&["diff", "iam/default", "1", "3"]);
    let human = text(&out);
    assert!(!human.contains("skipped"), "A and B were given: {human}");
    assert!(
        human.contains("~ output.users[arn=arn:aws:iam::1:user/alice].mfa: true → false"),
        "{human}"
    );
    assert!(
        human.contains("- output.users[arn=arn:aws:iam::1:user/bob]"),
        "{human}"
    );
    assert!(
        !human.contains("\u{1b}["),
        "no colour when not on a terminal"
    );

    let out = ws.run(&["diff", "nope/default"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out).contains("no stream `nope/default`"),
        "{}",
        text(&out)
    );
}

const STATE_1: &str = r#"{
  "users": [
    {"user_name": "alice", "mfa_enabled": true, "policies": ["ReadOnly"],
     "access_keys": [{"id": "AKIAOLD", "status": "Active", "create_date": "2020-01-01T00:00:00Z"}]},
    {"user_name": "bob", "mfa_enabled": true, "policies": []}
  ],
  "trails": [{"name": "org-trail", "is_logging": true}],
  "branches": [{"repository": "acme/app", "protection": {"required_reviews": 1}}],
  "pull_requests": []
}"#;

const STATE_2: &str = r#"{
  "users": [
    {"user_name": "alice", "mfa_enabled": false, "policies": ["ReadOnly"],
     "access_keys": [{"id": "AKIAOLD", "status": "Active", "create_date": "2020-01-01T00:00:00Z"}]},
    {"user_name": "bob", "mfa_enabled": true, "policies": []},
    {"user_name": "eve", "mfa_enabled": false, "policies": ["AdministratorAccess"]}
  ],
  "trails": [{"name": "org-trail", "is_logging": false}],
  "branches": [{"repository": "acme/app"}],
  "pull_requests": [{"repository": "acme/app", "number": 42, "independent_approval": false}]
}"#;

fn seeded_review() -> Workspace {
    let ws = Workspace::new(CONFIG);
    collect(&ws, STATE_1);
    collect(&ws, STATE_2);
    std::fs::remove_file(ws.path().join("users.json")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);
    ws
}

const EXPECTED_HIGHLIGHTS: &[&str] = &[
    "MFA turned off: output.users[user_name=alice]",
    "New administrator access: output.users[user_name=eve]",
    "New, without MFA: output.users[user_name=eve]",
    "Stopped: output.trails[name=org-trail].is_logging",
    "Branch protection or ruleset removed: output.branches[repository=acme/app].protection",
    "Merged without independent approval: acme/app#42",
    "Active access keys older than 90 days",
    "Collection #3 failed",
];

#[test]
fn the_markdown_review_shows_the_seeded_highlights() {
    let ws = seeded_review();
    let out = ws.run(&["report", "--format", "md", "--since", "1h"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let md = String::from_utf8(out.stdout).unwrap();
    for h in EXPECTED_HIGHLIGHTS {
        assert!(md.contains(h), "`{h}` missing from:\n{md}");
    }
    assert!(md.contains("Integrity: **intact**"), "{md}");
    assert!(!md.contains("bob]"), "bob did not change:\n{md}");
}

#[test]
fn the_html_review_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| std::process::Command::new("sh").arg("-c").arg(format!("command -v {c}")).status().is_ok_and(|s| s.success()))
        .expect("headless Chromium is needed by this test: apt-get install chromium (tests/run.sh does)");
    let ws = seeded_review();
    let page = ws.path().join("report.html");
    let out = ws.run(&["report", "--since", "1h", "--out", page.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );

    let profile = tempfile::tempdir().unwrap();
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let base = |extra: &[&str]| {
        let mut c = std::process::Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()));
        c.output().expect("chromium runs")
    };
    let dom = base(&["--dump-dom"]);
    assert!(dom.status.success(), "{}", text(&dom));
    let rendered = String::from_utf8_lossy(&dom.stdout).into_owned();
    for h in EXPECTED_HIGHLIGHTS {
        let escaped = h.replace('&', "&amp;");
        assert!(rendered.contains(&escaped), "`{h}` not rendered");
    }
    let console = String::from_utf8_lossy(&dom.stderr);
    for line in console.lines() {
        assert!(
            !(line.contains("CONSOLE") || line.contains("Uncaught")),
            "console error while rendering: {line}"
        );
    }
    let shot_out = base(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=412,1800",
    ]);
    assert!(shot_out.status.success(), "{}", text(&shot_out));
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "the screenshot is not blank");
}

/// A one-request HTTP listener standing in for a chat webhook: its URL, and
/// a handle that yields the body of the POST it received.
pub(crate) fn capture_one_post() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        body
    });
    (url, server)
}

#[test]
fn the_summary_is_delivered_to_a_webhook() {
    let ws = seeded_review();
    let (url, server) = capture_one_post();
    let out = ws.run(&[
        "report",
        "--format",
        "md",
        "--out",
        "/dev/null",
        "--webhook",
        &url,
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let body: Value = serde_json::from_slice(&server.join().unwrap()).unwrap();
    let t = body["text"].as_str().unwrap();
    assert!(t.contains("MFA turned off"), "{t}");
    assert!(t.contains("integrity intact"), "{t}");
}

#[test]
fn the_daemon_makes_the_review_on_its_schedule_and_posts_it() {
    let (hook, server) = capture_one_post();
    let ws = Workspace::new(&format!(
        "[agent]\ncatch_up = false\n\n[report]\nschedule = \"*/2 * * * * *\"\nout = \"review.html\"\nwebhook = \"{hook}\"\n{CONFIG}"
    ));
    collect(&ws, STATE_1);
    collect(&ws, STATE_2);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut d = ws
        .cmd(&["run", "--admin-listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = server.join().unwrap();
    let page = ws.path().join("review.html");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !page.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap();
    d.wait().unwrap();
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        msg["text"].as_str().unwrap().contains("MFA turned off"),
        "{msg}"
    );
    assert!(
        msg["text"].as_str().unwrap().contains("review.html"),
        "{msg}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("New administrator access"),
        "the page has the highlights"
    );
}
