//! Starts the third-party servers the SaaS tests run against (a VCR
//! replay of vendors' recorded responses, Prism mocking a vendor's
//! description) and stops them with the test process. A missing peer is a
//! failed test with instructions, never a skipped one.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
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

/// Makes the child die with the thread that started it, so that no server
/// outlives a test run that panicked or was killed.
fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
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
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("start the replay server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the replay server's port");
    let port = line
        .strip_prefix("READY ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("the replay server did not start (is PyYAML installed? run `bash tests/run.sh`): {line:?}"));
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Prism (`@stoplight/prism-cli`, from tests/peers) mocking an OpenAPI
/// description, with its static examples.
pub fn prism(spec: &str) -> Peer {
    let bin = root().join("tests/peers/node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "Prism is missing ({}): run `bash tests/run.sh`, which installs tests/peers with npm ci",
        bin.display()
    );
    let spec = root().join("tests/fixtures/saas").join(spec);
    assert!(
        spec.is_file(),
        "the API description {} is missing",
        spec.display()
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new(bin);
    cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(&spec)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("start prism");
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("prism exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "prism did not listen within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
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
