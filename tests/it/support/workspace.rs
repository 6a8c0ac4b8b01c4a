//! The scratch workspace every suite runs the real `exhibit` binary in (a
//! config, a key, a store), and the small helpers around running it: exit
//! codes, output, git, copies and unpacked bundles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory holding `exhibit.toml`, the key and the store.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose config is `config`.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("exhibit.toml"), config).expect("write config");
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("exhibit.toml")
    }

    /// The default store: `evidence` beside the config.
    pub fn store(&self) -> PathBuf {
        self.path().join("evidence")
    }

    /// A `Command` for the binary with this workspace's config.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_exhibit"));
        c.arg("--config").arg(self.config()).args(args);
        c.env_remove("EXHIBIT_STORE").env_remove("EXHIBIT_CONFIG");
        c.env("NO_COLOR", "1");
        c
    }

    /// Starts the binary in the background, its output discarded.
    pub fn spawn_quiet(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the exhibit binary starts")
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("the exhibit binary runs")
    }
}

/// Waits up to `secs` seconds for `path` to exist; panics naming `what`.
pub fn wait_for(path: &Path, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs git in `dir` as Alice (author) and Bob (committer); panics with
/// git's output when it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Bob Merger")
        .env("GIT_COMMITTER_EMAIL", "bob@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

/// Exit code of an output.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// stdout + stderr as one string, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `exhibit` against a store directory with no config at all, as an
/// auditor would.
pub fn exhibit_on_store(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("EXHIBIT_CONFIG")
        .env("NO_COLOR", "1")
        .current_dir(store.parent().unwrap_or(store))
        .output()
        .expect("the exhibit binary runs")
}

/// Copies a directory tree (to tamper with a copy of a store).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Unpacks a sample bundle with the system `tar`, as an auditor would;
/// returns the directory (kept alive by the guard) and the bundle root.
pub fn unpack(bundle: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(bundle)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let root = dir.path().join("exhibit-sample");
    (dir, root)
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests/run.sh extracts the vendors' PyPI sdists.
pub fn sdists() -> PathBuf {
    root().join("target/test-env/sdists")
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Every file under a directory, as text (lossy), for "no secret anywhere"
/// checks; an unreadable directory fails the test rather than read as
/// empty.
pub fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&all_text_under(&p));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}
