//! @octokit/fixtures-server, the GitHub peer of the collector tests:
//! GitHub's own recorded responses and Exhibit's scenarios in the same nock
//! format (`tests/fixtures/github/`), matched strictly — token, media type,
//! and every request in order. One server for the run serves every suite:
//! each loaded scenario has a path of its own. Without Node.js or the
//! pinned npm packages (`bash tests/run.sh` installs them) the tests fail,
//! loudly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::peer::{Peer, Ready};
use super::root;

/// The token Exhibit's scenarios expect: recognisable, so that a leak is
/// found by a plain search.
pub const TOKEN: &str = "ghp_ExhibitFixtureToken0123456789abcdefXYZ";
/// The token GitHub's bundled recordings were made with.
pub const OCTOKIT_TOKEN: &str = "0000000000000000000000000000000000000001";
/// The organisation of Exhibit's scenarios.
pub const ORG: &str = "exhibit-fixture-org";

/// Every GitHub collector kind, from the registry. The count is written
/// here on purpose: a kind dropped from the registry (or added to it
/// without tests) fails the suites that cover them all.
pub fn github_kinds() -> Vec<&'static str> {
    let kinds: Vec<_> = exhibit::collect::kinds()
        .map(|k| k.name)
        .filter(|n| n.starts_with("github-"))
        .collect();
    assert_eq!(
        kinds.len(),
        11,
        "the registry's GitHub kinds changed: {kinds:?}; update this count and the GitHub tests"
    );
    kinds
}

/// Starts a fixtures server of its own, serving GitHub's bundled scenarios
/// and those in `dir`.
pub fn start(dir: &Path) -> Peer {
    let peers = root().join("tests/peers");
    assert!(
        peers.join("node_modules/@octokit/fixtures-server").is_dir(),
        "@octokit/fixtures-server is not installed in tests/peers: run `bash tests/run.sh` \
         (or `cd tests/peers && npm ci`)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(peers.join("fixtures-server.mjs"))
        .arg(dir)
        .stderr(Stdio::inherit());
    Peer::start(
        cmd,
        "the GitHub fixtures server",
        "Node.js and tests/peers are needed: run `bash tests/run.sh`",
        Ready::Announces("listening "),
        Duration::from_secs(60),
    )
}

/// The port of the shared server of `tests/fixtures/github`, starting it
/// on first use.
pub fn server_port() -> u16 {
    static SERVER: OnceLock<Peer> = OnceLock::new();
    SERVER
        .get_or_init(|| start(&root().join("tests/fixtures/github")))
        .port
}

/// Loads a scenario; returns the base URL that serves it (in place of
/// https://api.github.com).
pub fn scenario(name: &str) -> String {
    scenario_on(server_port(), name)
}

/// Loads a scenario on the server at `port`.
pub fn scenario_on(port: u16, name: &str) -> String {
    let body = format!(r#"{{"scenario":"{name}"}}"#);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the fixtures server");
    write!(
        s,
        "POST /fixtures HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("scenario {name}: bad answer {resp:?}: {e}"));
    let url = v["url"]
        .as_str()
        .unwrap_or_else(|| panic!("scenario {name} not loaded: {resp}"))
        .to_string();
    LOADED.with(|l| l.borrow_mut().push(url.clone()));
    url
}

thread_local! {
    /// Scenarios loaded by the current test (each test runs on its own
    /// thread).
    static LOADED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every scenario this test loaded was requested to the end.
pub fn assert_all_consumed() {
    for url in LOADED.with(|l| l.borrow().clone()) {
        assert_consumed(&url);
    }
}

/// A collector table for `kind` against a scenario.
pub fn collector(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[collectors]]
name = "{name}"
kind = "{kind}"
schedule = "@daily"
retries = 0
org = "{ORG}"
api_url = "{url}"
token = "{TOKEN}"
concurrency = 1
{extra}
"#
    )
}

pub fn config(collectors: &[String]) -> String {
    format!("[agent]\nkey = \"exhibit.key\"\n{}", collectors.concat())
}

/// Fails unless every request of the scenario served at `url` was made:
/// once the last one is consumed the server forgets the scenario, while a
/// pending one makes it name what it still expected.
pub fn assert_consumed(url: &str) {
    let (port, path) = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split_once('/'))
        .map(|(p, path)| (p.parse::<u16>().expect("a port"), format!("/{path}")))
        .unwrap_or_else(|| panic!("not a fixtures server URL: {url}"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path}/exhibit-consumed-check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: application/vnd.github.v3+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.contains("not found") && !resp.contains("pending"),
        "requests of the scenario at {url} were not made: {resp}"
    );
}
