//! Starts the third-party servers the SaaS tests run against (a VCR
//! replay of vendors' recorded responses, Prism mocking a vendor's
//! description) and stops them with the test process. A missing peer is a
//! failed test with instructions, never a skipped one.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests/run.sh extracts the vendors' PyPI sdists.
pub fn sdists() -> PathBuf {
    root().join("target/test-env/sdists")
}

/// A running peer, killed when dropped.
pub struct Peer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    crate::common::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read the port of {what}: {e}"));
    let port = line
        .strip_prefix("READY ")
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!("{what} did not start (is PyYAML installed? run `bash tests/run.sh`): {line:?}")
        });
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Prism (`@stoplight/prism-cli`, from tests/peers) mocking an OpenAPI
/// description in tests/fixtures/saas, with its static examples.
pub fn prism(spec: &str) -> Peer {
    let spec = root().join("tests/fixtures/saas").join(spec);
    let port = free_port();
    let mut peer = start_prism(&["mock"], &spec, port);
    wait_listening(&mut peer, port, "prism");
    peer
}

fn prism_bin() -> PathBuf {
    let bin = root().join("tests/peers/node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "Prism is missing ({}): run `bash tests/run.sh`, which installs tests/peers with npm ci",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// Distinct free ports: the listeners are all held until every port is
/// known, so that none is handed out twice.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Starts `prism <mode...> SPEC [rest...]` on `port`, not waiting for it.
fn start_prism(mode: &[&str], spec: &std::path::Path, port: u16) -> Peer {
    start_prism_then(mode, spec, port, &[])
}

fn start_prism_then(mode: &[&str], spec: &std::path::Path, port: u16, rest: &[&str]) -> Peer {
    assert!(
        spec.is_file(),
        "the API description {} is missing: run `bash tests/run.sh`",
        spec.display()
    );
    let mut cmd = Command::new(prism_bin());
    cmd.args(mode)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(spec)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::common::die_with_parent(&mut cmd);
    Peer {
        child: cmd.spawn().expect("start prism"),
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn wait_listening(peer: &mut Peer, port: u16, what: &str) {
    // A large description takes Prism several seconds to load, more on a
    // busy machine.
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = peer.child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {} within 120 s",
            peer.url
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    spec: &std::path::Path,
    scenario: &str,
    required_headers: &[(&str, &str)],
    journal: Option<&std::path::Path>,
) -> Described {
    let python = which("python3").unwrap_or_else(|| {
        panic!("python3 is needed for the scenario layer: run `bash tests/run.sh`")
    });
    let [mock_port, public_port] = free_ports::<2>();
    let mut mock = start_prism(&["mock"], spec, mock_port);
    let scenario_path = root().join("tests/fixtures/saas").join(scenario);
    assert!(
        scenario_path.is_file(),
        "{} is missing",
        scenario_path.display()
    );
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
    let mut proxy = start_prism_then(&["proxy", "--errors"], spec, public_port, &[&layer.url]);
    wait_listening(&mut mock, mock_port, "prism (mock)");
    wait_listening(&mut proxy, public_port, "prism (validating proxy)");
    Described {
        url: proxy.url.clone(),
        scenario_url: layer.url.clone(),
        _peers: vec![proxy, layer, mock],
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

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Every file under a directory, as text (lossy), for "no secret anywhere"
/// checks.
pub fn all_text_under(dir: &std::path::Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&all_text_under(&p));
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}
