//! moto_server, the AWS peer of the S3 store and AWS collector suites, the
//! fault-injecting proxy (`tests/support/aws_proxy.py`) that can stand in
//! front of it, and the AWS kinds the suites cover. A missing moto_server
//! is a failed test with instructions, never a skipped one.
//!
//! Each suite seeds moto with state the others' assertions would trip on
//! (the AWS suite counts every bucket and user of the account; the review
//! suite changes its estate between two collections; the store suite
//! creates buckets), so there is one server per kind of use rather than
//! one for the run: [`for_stores`] is shared by the S3 store tests, each
//! with its own bucket; the AWS and review suites start their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::peer::{Peer, Ready};
use super::{net, root, which};

const INSTALL: &str = "these tests need the AWS peer; run `bash tests/run.sh`, or `pip install 'moto[server]==5.2.5'` into a virtualenv and put its bin/ on PATH";

/// Every AWS collector kind, from the registry. The count is written here
/// on purpose: a kind dropped from the registry (or added to it without
/// tests) fails every suite that covers them all.
pub fn aws_kinds() -> Vec<&'static str> {
    let kinds: Vec<_> = exhibit::collect::kinds()
        .map(|k| k.name)
        .filter(|n| n.starts_with("aws-"))
        .collect();
    assert_eq!(
        kinds.len(),
        10,
        "the registry's AWS kinds changed: {kinds:?}; update this count and the AWS tests"
    );
    kinds
}

/// A running moto_server.
pub struct Moto {
    peer: Peer,
    /// Its port.
    pub port: u16,
}

/// The Python that runs moto_server (so that boto3, installed with moto,
/// is importable for seeding).
pub fn python() -> PathBuf {
    let moto =
        which("moto_server").unwrap_or_else(|| panic!("moto_server is not on PATH: {INSTALL}"));
    let moto = std::fs::canonicalize(&moto).unwrap_or(moto);
    let dir = moto.parent().unwrap().to_path_buf();
    for name in ["python3", "python"] {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    // A shim (pyenv) or a system install: the python3 on PATH has moto.
    PathBuf::from("python3")
}

/// The server the S3 store tests share, started on first use; each test
/// makes its own bucket on it.
pub fn for_stores() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

impl Moto {
    /// Starts a server of its own on a free port.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts a server of its own with extra environment.
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = net::free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stderr(Stdio::null())
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let peer = Peer::start(
            cmd,
            "moto_server",
            INSTALL,
            Ready::Listening(port),
            Duration::from_secs(30),
        );
        Moto {
            port: peer.port,
            peer,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.peer.url.clone()
    }
}

/// Points an `exhibit` command at the AWS endpoint `endpoint` with test
/// credentials (`secret` is the agent's secret access key) and nothing from
/// the developer's own ~/.aws: `empty` is an empty file standing for the
/// AWS config and credentials files.
pub fn aws_env<'a>(
    cmd: &'a mut Command,
    endpoint: &str,
    secret: &str,
    empty: &Path,
) -> &'a mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAAGENTTESTKEY0001")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_CONFIG_FILE", empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
}

/// The fault-injecting proxy (`tests/support/aws_proxy.py`) in front of a
/// server.
pub struct Proxy {
    _peer: Peer,
    /// Where clients connect.
    pub url: String,
    journal: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy to `target` answering requests that match `rules` itself;
    /// responses to requests matching `capture` are journalled in full.
    pub fn start(target: &str, rules: serde_json::Value, capture: Option<&str>) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.jsonl");
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/support/aws_proxy.py"))
            .arg(target)
            .arg("--rules")
            .arg(rules.to_string())
            .arg("--journal")
            .arg(&journal)
            .stderr(Stdio::inherit());
        if let Some(c) = capture {
            cmd.arg("--capture").arg(c);
        }
        let peer = Peer::start(
            cmd,
            "the AWS test proxy",
            INSTALL,
            Ready::Announces("PORT "),
            Duration::from_secs(30),
        );
        Proxy {
            url: peer.url.clone(),
            _peer: peer,
            journal,
            _dir: dir,
        }
    }

    /// Every request so far: `{"request", "faulted", "response"?}`.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
