//! Prism (`@stoplight/prism-cli`, from tests/peers): vendors' API
//! descriptions served as mocks (static examples, or random data valid
//! under the schema on request) and as validating proxies. A mock holds no
//! state, so one per description serves the whole run; loading a large
//! description takes Prism seconds to minutes on a busy machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::net::free_port;
use super::peer::{Peer, Ready};
use super::root;

const INSTALL: &str = "Node.js and tests/peers are needed: run `bash tests/run.sh`, which installs tests/peers with npm ci";

/// GitHub's whole description is the largest; Prism takes minutes to load
/// it on a busy machine.
const LOAD_LIMIT: Duration = Duration::from_secs(240);

fn bin() -> PathBuf {
    let bin = root().join("tests/peers/node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "Prism is missing ({}): {INSTALL}",
        bin.display()
    );
    bin
}

fn start(mode: &[&str], spec: &Path, port: u16, rest: &[&str]) -> Peer {
    assert!(
        spec.is_file(),
        "the API description {} is missing: run `bash tests/run.sh`",
        spec.display()
    );
    let mut cmd = Command::new(bin());
    cmd.args(mode)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(spec)
        .args(rest)
        .stderr(Stdio::inherit());
    Peer::start(
        cmd,
        &format!("prism {} {}", mode.join(" "), spec.display()),
        INSTALL,
        Ready::Listening(port),
        LOAD_LIMIT,
    )
}

/// A mock of `spec` of its own.
pub fn mock(spec: &Path) -> Peer {
    start(&["mock"], spec, free_port(), &[])
}

/// The mock of `spec` shared by every test, started on first use.
pub fn shared_mock(spec: &Path) -> &'static Peer {
    // One slot per description, never dropped: the process owns them.
    type Slots = Mutex<HashMap<PathBuf, &'static OnceLock<Peer>>>;
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    let slot: &'static OnceLock<Peer> = SLOTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap()
        .entry(spec.to_path_buf())
        .or_insert_with(|| Box::leak(Box::default()));
    // Started outside the map's lock: other descriptions load meanwhile.
    slot.get_or_init(|| mock(spec))
}

/// A validating proxy for `spec` on `port`, forwarding to `upstream`, that
/// answers a request or response breaking the description with an error
/// naming the violation.
pub fn validating_proxy(spec: &Path, port: u16, upstream: &str) -> Peer {
    start(&["proxy", "--errors"], spec, port, &[upstream])
}

/// GitHub's official description (`@octokit/openapi`, api.github.com.json)
/// mocked for the run; returns the port.
pub fn github() -> u16 {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        let spec = root()
            .join("tests/peers/node_modules/@octokit/openapi/generated/api.github.com.json");
        assert!(
            spec.exists(),
            "@octokit/openapi is not installed in tests/peers: run `bash tests/run.sh` (or `cd tests/peers && npm ci`)"
        );
        mock(&spec)
    })
    .port
}
