//! The Python peers of the SaaS suites: a VCR replay of vendors' recorded
//! responses (`tests/support/vcr_replay.py`), and a scenario layered on a
//! vendor's description (`tests/support/scenario_proxy.py` between two
//! Prisms). Each test starts its own: they journal what that test sent and
//! require its headers. A missing peer is a failed test with instructions,
//! never a skipped one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::net::free_port;
use super::peer::{Peer, Ready};
use super::{prism, root, sdists, which};

/// Replays `tests/fixtures/saas/<scenario>` (cassettes from the sdists
/// plus our own additions), requiring the given headers.
pub fn replay(scenario: &str, required_headers: &[(&str, &str)]) -> Peer {
    replay_with_journal(scenario, required_headers, None)
}

/// [`replay`], also writing every request received to `journal` (JSON
/// lines), for assertions on what the collector sent.
pub fn replay_with_journal(
    scenario: &str,
    required_headers: &[(&str, &str)],
    journal: Option<&std::path::Path>,
) -> Peer {
    let python = which("python3").unwrap_or_else(|| {
        panic!("python3 is needed to replay recorded API responses: run `bash tests/run.sh`")
    });
    let scenario_path = root().join("tests/fixtures/saas").join(scenario);
    let text = std::fs::read_to_string(&scenario_path).expect("scenario file");
    for line in text.lines() {
        let line = line.trim();
        if let Some(p) = line.strip_prefix("- ").filter(|p| p.ends_with(".yaml")) {
            assert!(
                sdists().join(p).is_file(),
                "the recorded responses {} are missing: run `bash tests/run.sh`, which downloads the vendor sdists into target/test-env/sdists",
                sdists().join(p).display()
            );
        }
    }
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/support/vcr_replay.py"))
        .arg(&scenario_path)
        .arg("--base")
        .arg(sdists());
    if let Some(j) = journal {
        cmd.arg("--journal").arg(j);
    }
    for (k, v) in required_headers {
        cmd.arg("--require-header").arg(format!("{k}={v}"));
    }
    start_python_peer(cmd, "the replay server")
}

/// Starts one of the Python peers of tests/support, which print
/// `READY <port>` once they listen.
fn start_python_peer(mut cmd: Command, what: &str) -> Peer {
    cmd.stderr(Stdio::null());
    Peer::start(
        cmd,
        what,
        "python3 with PyYAML is needed: run `bash tests/run.sh`",
        Ready::Announces("READY "),
        Duration::from_secs(30),
    )
}

/// A vendor's description served by Prism, with a scenario layered on its
/// responses: clients talk to a validating Prism (proxy mode, `--errors`),
/// which forwards to `tests/support/scenario_proxy.py`, which forwards to a
/// Prism mock and merges the scenario's facts and page cursors into its
/// answers. A merged response that breaks the description is a 500 naming
/// the violation, so the scenario cannot drift from the vendor's shapes.
pub struct Described {
    /// Where clients connect (the validating proxy).
    pub url: String,
    /// The scenario server itself, for what the description does not cover
    /// (a token endpoint on another host).
    pub scenario_url: String,
    _peers: Vec<Peer>,
}

/// Starts [`Described`] for the description at `spec` and the scenario
/// `tests/fixtures/saas/<scenario>`; the scenario server refuses requests
/// without `required_headers` and, given a `journal`, writes each request
/// it receives there (JSON lines).
pub fn described(
    spec: &Path,
    scenario: &str,
    required_headers: &[(&str, &str)],
    journal: Option<&Path>,
) -> Described {
    let python = which("python3").unwrap_or_else(|| {
        panic!("python3 is needed for the scenario layer: run `bash tests/run.sh`")
    });
    let scenario_path = root().join("tests/fixtures/saas").join(scenario);
    assert!(
        scenario_path.is_file(),
        "{} is missing",
        scenario_path.display()
    );
    let mock = prism::shared_mock(spec);
    let public_port = free_port();
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/support/scenario_proxy.py"))
        .arg(&scenario_path)
        .arg("--upstream")
        .arg(&mock.url)
        .arg("--public")
        .arg(format!("http://127.0.0.1:{public_port}"));
    if let Some(j) = journal {
        cmd.arg("--journal").arg(j);
    }
    for (k, v) in required_headers {
        cmd.arg("--require-header").arg(format!("{k}={v}"));
    }
    let layer = start_python_peer(cmd, "the scenario server");
    let proxy = prism::validating_proxy(spec, public_port, &layer.url);
    Described {
        url: proxy.url.clone(),
        scenario_url: layer.url.clone(),
        _peers: vec![proxy, layer],
    }
}

/// Atlassian's Jira Cloud platform OpenAPI description, as the pinned PyPI
/// sdist `jirapi` ships it (tests/run.sh extracts it).
pub fn jira_description() -> PathBuf {
    let path = sdists().join("jirapi-0.4.0/docs/jira-cloud-api-openapi.json");
    assert!(
        path.is_file(),
        "Atlassian's Jira description {} is missing: run `bash tests/run.sh`, which downloads the pinned sdist",
        path.display()
    );
    path
}

/// The Admin SDK Directory API discovery document shipped in the pinned
/// `google-api-python-client` sdist, converted to Swagger 2.0 in `dir` by
/// `google-discovery-to-swagger` (tests/peers), for Prism.
pub fn google_directory_description(dir: &std::path::Path) -> PathBuf {
    let discovery = sdists().join(
        "google_api_python_client-2.202.0/googleapiclient/discovery_cache/documents/admin.directory_v1.json",
    );
    assert!(
        discovery.is_file(),
        "Google's discovery document {} is missing: run `bash tests/run.sh`, which downloads the pinned sdist",
        discovery.display()
    );
    let node = which("node").unwrap_or_else(|| {
        panic!("node is needed to convert Google's discovery document: run `bash tests/run.sh`")
    });
    let out = dir.join("admin-directory-v1.swagger.json");
    let status = Command::new(node)
        .arg(root().join("tests/support/discovery_to_swagger.js"))
        .arg(&discovery)
        .arg(&out)
        .status()
        .expect("run node");
    assert!(
        status.success(),
        "converting {} failed",
        discovery.display()
    );
    out
}
