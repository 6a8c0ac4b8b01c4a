//! moto_server, the AWS peer of the S3 store and AWS collector tests, and
//! the fault-injecting proxy that can stand in front of it. A missing
//! moto_server is a failed test with instructions, never a skipped one.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running moto_server, killed with the test process.
pub struct Moto {
    pub port: u16,
    child: Mutex<Child>,
}

/// Every AWS collector kind, listed here rather than taken from the
/// registry so that a kind dropped from it fails the tests that cover all.
pub const ALL_KINDS: &[&str] = &[
    "aws-iam-users",
    "aws-iam-credential-report",
    "aws-iam-password-policy",
    "aws-iam-roles",
    "aws-iam-policies",
    "aws-iam-groups",
    "aws-account-summary",
    "aws-s3-buckets",
    "aws-cloudtrail",
    "aws-monitoring",
];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `cmd` from a thread that lives as long as the process, because
/// the parent-death signal fires when the spawning *thread* exits.
fn spawn_for_good(mut cmd: Command, what: &'static str) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        crate::common::die_with_parent(&mut cmd);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start {what} ({e}): these tests need the AWS peer; run `bash tests/run.sh`, or `pip install 'moto[server]==5.2.5'` and put moto_server on PATH"
            ),
        };
        tx.send(child).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .unwrap_or_else(|_| panic!("{what} could not be started (see the panic above)"))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// The Python that runs moto_server (so that boto3, installed with moto,
/// is importable for seeding).
pub fn python() -> PathBuf {
    let moto = which("moto_server").unwrap_or_else(|| {
        panic!("moto_server is not on PATH: run `bash tests/run.sh`, or `pip install 'moto[server]==5.2.5'` into a virtualenv and put its bin/ on PATH")
    });
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

impl Moto {
    /// Starts a server on a free port.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts a server with extra environment.
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let child = spawn_for_good(cmd, "moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            port,
            child: Mutex::new(child),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
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
    child: Child,
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/aws_proxy.py");
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .arg(target)
            .arg("--rules")
            .arg(rules.to_string())
            .arg("--journal")
            .arg(&journal)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(c) = capture {
            cmd.arg("--capture").arg(c);
        }
        crate::common::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("the AWS test proxy starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the AWS test proxy did not start: {line:?}"));
        Proxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
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

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
