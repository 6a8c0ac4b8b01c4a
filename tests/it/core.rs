//! The evidence core end to end, through the real binary: collection,
//! verification, tampering, bad config, crashes, shutdown and the daemon's
//! schedule.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::net::{self, free_port};
use crate::support::{Workspace, code, copy_tree, exhibit_on_store, git, text, wait_for};

/// A repository with two commits on main, a feature branch merged with a
/// merge commit, a tag, and a remote URL carrying a credential.
fn seeded_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "commit.gpgsign", "false"]);
    for (file, msg) in [("a.txt", "first"), ("b.txt", "second")] {
        std::fs::write(dir.join(file), msg).unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", msg]);
    }
    git(dir, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(dir.join("c.txt"), "feature").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "feature work"]);
    git(dir, &["checkout", "-q", "main"]);
    git(
        dir,
        &["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"],
    );
    git(dir, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    git(
        dir,
        &[
            "remote",
            "add",
            "origin",
            "https://ci-bot:ghp_SuperSecretToken123@github.com/acme/app.git",
        ],
    );
}

fn local_config(extra: &str) -> String {
    format!(
        r#"
[agent]
id = "test"

[[collectors]]
name = "git-history"
kind = "git"
schedule = "@daily"
repository = "repo"
stream_key = "app"
retries = 0

[[collectors]]
name = "users"
kind = "command"
schedule = "@daily"
command = ["cat", "users.json"]
criteria = ["CC6.1"]
retries = 0
{extra}
"#
    )
}

fn workspace() -> Workspace {
    let ws = Workspace::new(&local_config(""));
    seeded_repo(&ws.path().join("repo"));
    std::fs::write(
        ws.path().join("users.json"),
        r#"[{"user":"alice","mfa":true},{"user":"bob","mfa":false}]"#,
    )
    .unwrap();
    ws
}

fn show(ws: &Workspace, spec: &str) -> Value {
    let out = ws.run(&["show", spec, "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
}

/// Every record of a stream, oldest first.
fn all_records(ws: &Workspace, stream: &str) -> Vec<Value> {
    let n = records(&ws.store(), stream).len();
    (1..=n)
        .map(|i| show(ws, &format!("{stream}@{i}")))
        .collect()
}

fn collect_ok(ws: &Workspace) {
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "collect failed: {}", text(&out));
}

#[test]
fn collect_records_the_facts_and_verifies() {
    let ws = workspace();
    collect_ok(&ws);

    let rec = show(&ws, "git-history/app");
    let p = &rec["payload"];
    assert_eq!(p["summary"]["commits"], 4, "{p}");
    assert_eq!(p["summary"]["merges"], 1);
    assert_eq!(p["window"]["kind"], "initial_window");
    let merge = p["commits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "Merge feature")
        .expect("the merge commit is recorded");
    assert_eq!(merge["parents"].as_array().unwrap().len(), 2);
    assert_eq!(merge["author"]["email"], "alice@example.com");
    assert_eq!(merge["committer"]["name"], "Bob Merger");
    assert_eq!(merge["signature"]["status"], "none");
    assert_eq!(p["tags"][0]["name"], "v1.0");
    assert_eq!(p["tags"][0]["annotated"], true);
    assert_eq!(
        p["repository"]["remotes"][0],
        "https://github.com/acme/app.git"
    );
    let st = &rec["statement"];
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicate"]["seq"], 1);
    assert_eq!(st["predicate"]["prev"], Value::Null);
    assert_eq!(st["predicate"]["criteria"][0], "CC8.1");
    assert_eq!(st["predicate"]["status"], "ok");

    let users = show(&ws, "users/test");
    assert_eq!(users["payload"]["output_format"], "json");
    let bob = &users["payload"]["output"][1];
    assert_eq!(bob["user"], "bob");
    assert_eq!(bob["mfa"], false, "bob has no MFA");

    // A second collection covers only what is new since the first record.
    std::fs::write(ws.path().join("repo/d.txt"), "more").unwrap();
    git(&ws.path().join("repo"), &["add", "."]);
    git(
        &ws.path().join("repo"),
        &["commit", "-q", "-m", "after first record"],
    );
    collect_ok(&ws);
    let second = show(&ws, "git-history/app");
    assert_eq!(second["statement"]["predicate"]["seq"], 2);
    assert_eq!(second["payload"]["window"]["kind"], "since_previous_record");
    assert_eq!(second["payload"]["summary"]["commits"], 1);
    assert_eq!(
        second["payload"]["commits"][0]["subject"],
        "after first record"
    );
    let first_sha = exhibit::evidence::sha256_hex(
        &std::fs::read(ws.store().join("records/git-history/app/000000000001.json")).unwrap(),
    );
    assert_eq!(second["statement"]["predicate"]["prev"], first_sha.as_str());

    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("INTACT"), "{}", text(&out));
    assert!(
        text(&out).contains("not independent"),
        "the verdict says the store's keys were trusted"
    );

    // An auditor with their own copy of the key (handed over out of band
    // with `exhibit keys show`), and no config at all.
    let out = ws.run(&["keys", "show"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    let key_id = shown
        .lines()
        .next()
        .unwrap()
        .strip_prefix("key id: ")
        .unwrap()
        .to_string();
    let pem = &shown[shown.find("-----BEGIN").unwrap()..];
    let published = ws.store().join(format!("keys/{key_id}.pub"));
    assert_eq!(std::fs::read_to_string(&published).unwrap(), pem);
    let copy = ws.path().join("auditor.pub");
    std::fs::write(&copy, pem).unwrap();
    let out = exhibit_on_store(
        &ws.store(),
        &["verify", "--key", copy.to_str().unwrap(), "--json"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], 4);
    assert_eq!(report["checkpoints"], 2);
    assert!(report["keys_from"].as_str().unwrap().contains("--key"));

    // A key that did not sign the store: every signature is rejected.
    let other = ws.path().join("other.pub");
    std::fs::write(
        &other,
        exhibit::evidence::keys::Signer::generate()
            .public()
            .to_pem(),
    )
    .unwrap();
    let out = exhibit_on_store(&ws.store(), &["verify", "--key", other.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("unknown key"), "{}", text(&out));

    let out = ws.run(&["list"]);
    assert!(text(&out).contains("git-history/app"), "{}", text(&out));
    assert!(text(&out).contains("users/test"));
}

#[test]
fn a_failed_collection_is_a_record_and_exit_1() {
    let ws = workspace();
    std::fs::remove_file(ws.path().join("users.json")).unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let rec = show(&ws, "users/test");
    assert_eq!(rec["statement"]["predicate"]["status"], "failed");
    let err = rec["statement"]["predicate"]["error"].as_str().unwrap();
    assert!(
        err.contains("exited with status 1") && err.contains("users.json"),
        "{err}"
    );
    assert_eq!(rec["payload"]["attempts"], 1);
    // Failures are evidence too: the store still verifies.
    assert_eq!(code(&ws.run(&["verify"])), 0);
}

/// Builds a store with three runs over two streams, then hands out copies.
struct Tamper {
    _ws: Workspace,
    base: std::path::PathBuf,
    key: std::path::PathBuf,
    scratch: tempfile::TempDir,
}

impl Tamper {
    fn new() -> Self {
        let ws = workspace();
        for i in 0..3 {
            std::fs::write(
                ws.path().join("users.json"),
                format!(r#"[{{"user":"alice","n":{i}}}]"#),
            )
            .unwrap();
            collect_ok(&ws);
        }
        assert_eq!(code(&ws.run(&["verify"])), 0);
        Tamper {
            base: ws.store(),
            key: ws.path().join("exhibit.key"),
            _ws: ws,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// Applies `f` to a fresh copy and returns verify's exit code and text.
    fn check(&self, name: &str, f: impl FnOnce(&Path)) -> (i32, String) {
        let copy = self.scratch.path().join(name).join("evidence");
        copy_tree(&self.base, &copy);
        f(&copy);
        let out = exhibit_on_store(&copy, &["verify"]);
        (code(&out), text(&out))
    }
}

fn records(store: &Path, stream: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(store.join("records").join(stream))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn checkpoints(store: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    walk(&store.join("checkpoints"), &mut out);
    // Chain order is finish order.
    out.sort_by_key(|p| {
        let s: exhibit::evidence::record::Statement<
            exhibit::evidence::checkpoint::CheckpointPredicate,
        > = exhibit::evidence::record::peek(&std::fs::read(p).unwrap()).unwrap();
        s.predicate.finished_at
    });
    out
}

#[test]
fn every_tampering_is_detected_and_named() {
    let t = Tamper::new();

    let (c, out) = t.check("blob", |s| {
        let rec = std::fs::read(&records(s, "users/test")[1]).unwrap();
        let st: exhibit::evidence::record::Statement<Value> =
            exhibit::evidence::record::peek(&rec).unwrap();
        let sha = st.subject[0].digest.sha256.clone();
        let blob = s.join(exhibit::evidence::layout::blob(&sha));
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[3] ^= 0x01;
        std::fs::write(&blob, bytes).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("payload_mismatch"), "{out}");

    let (c, out) = t.check("edit", |s| {
        let p = &records(s, "users/test")[1];
        let text = std::fs::read_to_string(p).unwrap();
        // Change one base64 character of the signed payload.
        let i = text.find("\"payload\":\"").unwrap() + 40;
        let mut b = text.into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        std::fs::write(p, b).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("users/test/000000000002.json: bad_record"),
        "{out}"
    );

    let (c, out) = t.check("delete", |s| {
        std::fs::remove_file(&records(s, "users/test")[1]).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("sequence_gap"), "{out}");
    assert!(out.contains("record_missing"), "{out}");

    let (c, out) = t.check("swap", |s| {
        let r = records(s, "users/test");
        let tmp = s.join("tmp");
        std::fs::rename(&r[1], &tmp).unwrap();
        std::fs::rename(&r[2], &r[1]).unwrap();
        std::fs::rename(&tmp, &r[2]).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("sequence_mismatch"), "{out}");

    let (c, out) = t.check("moved", |s| {
        let from = &records(s, "git-history/app")[0];
        std::fs::copy(from, s.join("records/users/test/000000000004.json")).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("stream_mismatch"), "{out}");

    let key = t.key.clone();
    let (c, out) = t.check("backdate", move |s| {
        // An attacker holding the signing key re-signs the last record with
        // an earlier time, and re-signs its checkpoint to match.
        use exhibit::evidence::record::*;
        let (signer, _) = exhibit::evidence::keys::Signer::load_or_create(&key).unwrap();
        let p = records(s, "users/test")[2].clone();
        let st: Statement<RecordPredicate> = peek(&std::fs::read(&p).unwrap()).unwrap();
        let mut pred = st.predicate.clone();
        pred.started_at -= chrono::Duration::days(30);
        pred.finished_at -= chrono::Duration::days(30);
        let bytes = seal(st.subject.clone(), RECORD_PREDICATE_TYPE, &pred, &signer);
        std::fs::write(&p, &bytes).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("time_backwards"), "{out}");
    assert!(
        out.contains("outside_checkpoint") || out.contains("record_mismatch"),
        "{out}"
    );

    let (c, out) = t.check("checkpoint", |s| {
        let cps = checkpoints(s);
        assert_eq!(cps.len(), 3);
        std::fs::remove_file(&cps[1]).unwrap();
    });
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("checkpoint_chain_broken"), "{out}");

    // And the untouched copy still verifies, so the checks above are not
    // failing for some other reason.
    let (c, out) = t.check("untouched", |_| {});
    assert_eq!(c, 0, "{out}");
}

#[test]
fn bad_config_exits_2_naming_file_line_and_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("[agent]\nid = \"x\n", "syntax", &["exhibit.toml:2:"]),
        (
            "[[collectors]]\nname = \"a\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\ncomand = 1\n",
            "unknown key",
            &["exhibit.toml:6:1", "collectors[0].comand", "unknown field"],
        ),
        (
            "[[collectors]]\nname = \"a\"\nkind = \"command\"\nschedule = \"* * 32 * *\"\ncommand = [\"true\"]\n",
            "bad cron",
            &["exhibit.toml:4:", "collectors[0].schedule", "cron"],
        ),
        (
            "[[collectors]]\nname = \"a\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"echo\", \"${EXHIBIT_SURELY_UNSET_VAR}\"]\n",
            "missing env var",
            &[
                "exhibit.toml:5:",
                "collectors[0].command",
                "EXHIBIT_SURELY_UNSET_VAR",
            ],
        ),
        (
            "[agent]\nconcurency = 3\n",
            "unknown agent key",
            &["exhibit.toml:2:1", "agent.concurency"],
        ),
        (
            "[[collectors]]\nname = \"a\"\nkind = \"nope\"\nschedule = \"@daily\"\n",
            "unknown kind",
            &["exhibit.toml:3:", "collectors[0].kind", "known kinds"],
        ),
    ];
    for (config, what, needles) in cases {
        let ws = Workspace::new(config);
        // An unset variable of a collector's own settings is a problem
        // of the place it runs, not of the file: `config check` names it,
        // while `collect` and `run` run the other collectors and record
        // this one's failure (first_hour.rs).
        let commands: &[&[&str]] = if *what == "missing env var" {
            &[&["config", "check"]]
        } else {
            &[&["collect"], &["config", "check"], &["run"]]
        };
        for args in commands.iter().copied() {
            let out = ws.run(args);
            assert_eq!(code(&out), 2, "{what} / {args:?}: {}", text(&out));
            let msg = String::from_utf8_lossy(&out.stderr);
            for n in *needles {
                assert!(msg.contains(n), "{what}: `{n}` not in: {msg}");
            }
        }
    }
}

#[test]
fn secrets_never_reach_the_store_or_the_logs() {
    let secret = "sk_live_ThisMustNeverBeRecorded42";
    let ws = Workspace::new(&local_config(
        r#"
[[collectors]]
name = "uses-token"
kind = "command"
schedule = "@daily"
shell = true
command = "test \"$API_TOKEN\" = \"$EXPECTED\" && echo '{\"token_checked\": true}'"
set_env = { API_TOKEN = "${EXHIBIT_TEST_SECRET}", EXPECTED = "${EXHIBIT_TEST_SECRET}" }
"#,
    ));
    seeded_repo(&ws.path().join("repo"));
    std::fs::write(ws.path().join("users.json"), "[]").unwrap();
    let out = ws
        .cmd(&["-vv", "collect"])
        .env("EXHIBIT_TEST_SECRET", secret)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out2 = exhibit_on_store(&ws.store(), &["show", "uses-token/test", "--json"]);
    let rec: Value = serde_json::from_slice(&out2.stdout).expect("show --json");
    assert_eq!(
        rec["payload"]["output"]["token_checked"], true,
        "the child saw the token"
    );
    assert!(!text(&out).contains(secret), "a secret reached the logs");
    assert!(!text(&out).contains("ghp_SuperSecretToken123"));
    for needle in [secret, "ghp_SuperSecretToken123"] {
        let hits = grep_tree(&ws.store(), needle);
        assert!(hits.is_empty(), "`{needle}` found in {hits:?}");
    }
}

/// Files under `dir` whose bytes (or base64-decoded DSSE payloads) contain
/// `needle`.
fn grep_tree(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    use base64::Engine;
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            hits.extend(grep_tree(&p, needle));
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let mut hay = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(env) = serde_json::from_slice::<Value>(&bytes)
            && let Some(b) = env["payload"].as_str()
            && let Ok(d) = base64::engine::general_purpose::STANDARD.decode(b)
        {
            hay.push_str(&String::from_utf8_lossy(&d));
        }
        if hay.contains(needle) {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn kill_9_mid_run_leaves_a_verifiable_store_and_the_chain_continues() {
    let ws = Workspace::new(
        r#"
[agent]
id = "crash"

[[collectors]]
name = "fast"
kind = "command"
schedule = "@daily"
command = ["echo", "{\"fast\": true}"]

[[collectors]]
name = "slow"
kind = "command"
schedule = "@daily"
command = ["sleep", "30"]
"#,
    );
    let mut child = ws.spawn_quiet(&["collect"]);
    // Wait until the fast collector's record is on disk, then kill -9 while
    // the slow one is still running: the run has no checkpoint.
    let first = ws.store().join("records/fast/crash/000000000001.json");
    wait_for(&first, 20, "the fast record");
    child.kill().unwrap();
    child.wait().unwrap();

    // Nothing is broken, but the record is under no checkpoint yet: the
    // verdict is INCOMPLETE (exit 1) until the next run acknowledges it.
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("awaiting_checkpoint"), "{}", text(&out));
    assert!(
        text(&out).contains("Verdict:     INCOMPLETE"),
        "{}",
        text(&out)
    );

    // The next run continues the chain (the lock died with the process),
    // and its agent acknowledges the interrupted run in a signed checkpoint.
    let out = ws.run(&["collect", "fast"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let second = show(&ws, "fast/crash@2");
    let first_sha = exhibit::evidence::sha256_hex(&std::fs::read(&first).unwrap());
    assert_eq!(second["statement"]["predicate"]["prev"], first_sha.as_str());
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("interrupted_run"), "{}", text(&out));
}

#[test]
fn a_second_agent_cannot_write_the_same_streams() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "slow"
kind = "command"
schedule = "@daily"
command = ["sleep", "3"]
"#,
    );
    let mut first = ws.spawn_quiet(&["collect"]);
    wait_for(&ws.store().join(".locks"), 10, "the first agent's lock");
    std::thread::sleep(Duration::from_millis(200));
    let out = ws.run(&["collect"]);
    // A usage error: the other holder is not a daemon that could collect.
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("locked by another agent"),
        "{}",
        text(&out)
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(code(&ws.run(&["verify"])), 0);
}

/// `GET path` on the agent's admin endpoint, which must be listening.
fn http_get(port: u16, path: &str) -> (u16, String) {
    net::http_get(port, path).expect("admin endpoint listens")
}

fn wait_for_port(port: u16) {
    net::wait_for_port(port, Duration::from_secs(20), "the admin endpoint");
}

/// Starts `exhibit run` quietly on a free admin port and waits until it
/// listens.
fn start_daemon(ws: &Workspace) -> std::process::Child {
    let port = free_port();
    let d = ws.spawn_quiet(&["run", "--admin-listen", &format!("127.0.0.1:{port}")]);
    wait_for_port(port);
    d
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the daemon did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_runs_on_schedule_serves_health_and_records_downtime() {
    let ws = Workspace::new(
        r#"
[agent]
id = "daemon"
catch_up = true
shutdown_grace = "5s"

[[collectors]]
name = "tick"
kind = "command"
schedule = "*/2 * * * * *"
command = ["echo", "{\"tick\": 1}"]
"#,
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(ws.path().join("daemon.log")).unwrap();
    let mut d = ws
        .cmd(&["run", "--admin-listen", &addr])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port);
    assert_eq!(http_get(port, "/healthz").0, 200);
    // The built-in probe that container health checks use.
    let probe = ws.run(&["health", "--addr", &addr]);
    assert_eq!(code(&probe), 0, "{}", text(&probe));
    let ready_deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/readyz").0 != 200 {
        assert!(Instant::now() < ready_deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait for at least three scheduled records.
    let third = ws.store().join("records/tick/daemon/000000000003.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !third.exists() {
        assert!(
            Instant::now() < deadline,
            "the schedule did not produce records"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "exhibit_collections_total{collector=\"tick\",stream=\"tick/daemon\",status=\"ok\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "exhibit_last_success_timestamp_seconds{collector=\"tick\",stream=\"tick/daemon\"}"
        ),
        "{metrics}"
    );
    // The head of the checkpoint chain, for the operator to note.
    assert!(
        metrics.contains("exhibit_evidence_head_info{agent=\"") && metrics.contains(",sha256=\""),
        "{metrics}"
    );
    // What the schedule allows between two successes, for the staleness
    // alert: two seconds for `*/2 * * * * *`.
    assert!(
        metrics.contains(
            "exhibit_stream_expected_interval_seconds{collector=\"tick\",stream=\"tick/daemon\"} 2\n"
        ),
        "{metrics}"
    );
    sigterm(&d);
    assert!(wait_exit(&mut d, Duration::from_secs(10)).success());
    let probe = ws.run(&["health", "--addr", &addr]);
    assert_eq!(
        code(&probe),
        1,
        "nothing listens any more: {}",
        text(&probe)
    );

    // Each scheduled record names its slot, an even second, and ran on time.
    for seq in 1..=3 {
        let r = show(&ws, &format!("tick/daemon@{seq}"));
        let p = &r["statement"]["predicate"];
        assert_eq!(p["trigger"], "scheduled");
        let slot: chrono::DateTime<chrono::Utc> =
            p["scheduled_for"].as_str().unwrap().parse().unwrap();
        let started: chrono::DateTime<chrono::Utc> =
            p["started_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(chrono::Timelike::second(&slot) % 2, 0);
        assert!(
            started >= slot && started - slot < chrono::Duration::seconds(2),
            "{p}"
        );
    }

    // Down for a while: the slots in between are recorded as missed, and a
    // catch-up run follows.
    std::thread::sleep(Duration::from_secs(5));
    let log = std::fs::File::create(ws.path().join("daemon2.log")).unwrap();
    let mut d = ws
        .cmd(&["run", "--admin-listen", &addr])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port);
    std::thread::sleep(Duration::from_secs(1));
    sigterm(&d);
    assert!(wait_exit(&mut d, Duration::from_secs(10)).success());

    let out = ws.run(&["list", "--json"]);
    let lines: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = lines[0]["records"].as_u64().unwrap();
    let mut missed = None;
    let mut catch_up = false;
    for seq in 4..=n {
        let r = show(&ws, &format!("tick/daemon@{seq}"));
        match r["statement"]["predicate"]["status"].as_str().unwrap() {
            "missed" => missed = Some(r),
            _ if r["statement"]["predicate"]["trigger"] == "catch_up" => catch_up = true,
            _ => {}
        }
    }
    let missed = missed.expect("a missed record after the downtime");
    assert!(
        missed["payload"]["count"].as_u64().unwrap() >= 2,
        "{missed}"
    );
    assert!(catch_up, "a catch-up run followed");

    // The period ends now by default, and slots keep coming every two
    // seconds: verify up to the last record.
    let last = show(&ws, &format!("tick/daemon@{n}"));
    let to = last["statement"]["predicate"]["finished_at"]
        .as_str()
        .unwrap();
    let out = ws.run(&["verify", "--json", "--to", to]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cov = &report["streams"][0]["coverage"];
    assert!(cov["missed"].as_u64().unwrap() >= 2, "{cov}");
    assert!(cov["missed_recorded"].as_u64().unwrap() >= 2, "{cov}");
    assert!(cov["ok"].as_u64().unwrap() >= 3, "{cov}");
}

#[test]
fn sigterm_lets_in_flight_runs_finish_within_the_grace_period() {
    let ws = Workspace::new(
        r#"
[agent]
shutdown_grace = "20s"
catch_up = false

[[collectors]]
name = "slow"
kind = "command"
schedule = "* * * * * *"
command = ["sh", "-c", "sleep 2; echo '{\"done\": true}'"]
"#,
    );
    let mut d = start_daemon(&ws);
    std::thread::sleep(Duration::from_millis(1800));
    let t = Instant::now();
    sigterm(&d);
    assert!(wait_exit(&mut d, Duration::from_secs(15)).success());
    assert!(t.elapsed() < Duration::from_secs(10));
    let term_at = chrono::Utc::now() - chrono::Duration::from_std(t.elapsed()).unwrap();
    let finished_after_term = all_records(&ws, "slow/default").into_iter().any(|r| {
        let p = &r["statement"]["predicate"];
        let end: chrono::DateTime<chrono::Utc> =
            p["finished_at"].as_str().unwrap().parse().unwrap();
        p["status"] == "ok" && r["payload"]["output"]["done"] == true && end > term_at
    });
    assert!(
        finished_after_term,
        "the run in flight at SIGTERM finished and was recorded"
    );
    assert_eq!(code(&ws.run(&["verify"])), 0);
}

#[test]
fn past_the_grace_period_in_flight_runs_are_cancelled_and_recorded() {
    let ws = Workspace::new(
        r#"
[agent]
shutdown_grace = "1s"
catch_up = false

[[collectors]]
name = "stuck"
kind = "command"
schedule = "* * * * * *"
command = ["sleep", "60"]
"#,
    );
    let mut d = start_daemon(&ws);
    std::thread::sleep(Duration::from_millis(2500));
    sigterm(&d);
    assert!(wait_exit(&mut d, Duration::from_secs(8)).success());
    let cancelled = all_records(&ws, "stuck/default").into_iter().any(|r| {
        let p = &r["statement"]["predicate"];
        p["status"] == "failed" && p["error"].as_str().unwrap_or("").contains("cancelled")
    });
    assert!(cancelled, "the cancelled run is recorded as failed");
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn key_rotation_keeps_old_records_valid_and_retires_the_old_key() {
    use exhibit::evidence::record::*;
    let ws = workspace();
    collect_ok(&ws);
    let out = ws.run(&["keys", "rotate"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let said = text(&out);
    let old_id = said
        .split_whitespace()
        .skip_while(|w| *w != "retired")
        .nth(2)
        .expect("the retired key id is printed")
        .to_string();
    collect_ok(&ws);

    let keyid = |seq: u32| {
        let env: Value = serde_json::from_slice(
            &std::fs::read(
                ws.store()
                    .join(format!("records/users/test/00000000000{seq}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        env["signatures"][0]["keyid"].as_str().unwrap().to_string()
    };
    assert_eq!(keyid(1), old_id);
    assert_ne!(
        keyid(2),
        old_id,
        "records after the rotation use the new key"
    );
    assert_eq!(
        std::fs::read_dir(ws.store().join("keys")).unwrap().count(),
        2
    );
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Someone holding the retired key appends a record after the rotation.
    let retired_path = ws.path().join(format!("exhibit.key.retired-{old_id}"));
    let (retired, created) =
        exhibit::evidence::keys::Signer::load_or_create(&retired_path).unwrap();
    assert!(!created);
    let second = std::fs::read(ws.store().join("records/users/test/000000000002.json")).unwrap();
    let st: Statement<RecordPredicate> = peek(&second).unwrap();
    let mut pred = st.predicate.clone();
    pred.seq = 3;
    pred.prev = Some(exhibit::evidence::sha256_hex(&second));
    pred.started_at = chrono::Utc::now();
    pred.finished_at = pred.started_at;
    let forged = seal(st.subject.clone(), RECORD_PREDICATE_TYPE, &pred, &retired);
    std::fs::write(
        ws.store().join("records/users/test/000000000003.json"),
        forged,
    )
    .unwrap();
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("retired_key"), "{}", text(&out));
}

#[test]
fn endless_output_is_stopped_at_max_output_and_recorded() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "chatty"
kind = "command"
schedule = "@daily"
command = ["yes"]
max_output = 100000
timeout = "60s"
retries = 0
"#,
    );
    let t = Instant::now();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "killed, not timed out"
    );
    let r = show(&ws, "chatty/default");
    assert_eq!(r["statement"]["predicate"]["status"], "failed");
    assert!(
        r["statement"]["predicate"]["error"]
            .as_str()
            .unwrap()
            .contains("more than max_output"),
        "{r}"
    );
}

#[test]
fn verify_never_passes_an_empty_or_mistyped_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = exhibit_on_store(&dir.path().join("no-such-store"), &["verify"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("empty_store"), "{}", text(&out));
}

/// The README's first command, on the shipped `config/local.toml` exactly
/// as it is: run from an unrelated directory, its relative paths resolve
/// against the config file (`..` is the repository, `../evidence` the
/// store), and the evidence holds this repository's commit and the host's
/// accounts.
#[test]
fn the_readme_quick_start_collects_and_verifies_with_the_shipped_config() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    std::fs::create_dir(repo.join("config")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/local.toml"),
        repo.join("config/local.toml"),
    )
    .unwrap();
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "commit.gpgsign", "false"]);
    git(repo, &["add", "config"]);
    git(repo, &["commit", "-q", "-m", "quick start"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let exhibit = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_exhibit"))
            .current_dir(elsewhere.path())
            .arg("--config")
            .arg(repo.join("config/local.toml"))
            .args(args)
            .env_remove("EXHIBIT_STORE")
            .env_remove("EXHIBIT_CONFIG")
            .env_remove("EXHIBIT_KEY")
            .output()
            .unwrap()
    };
    let out = exhibit(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = exhibit(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        repo.join("evidence/keys").is_dir(),
        "the store is beside the repository"
    );
    assert!(repo.join("exhibit.key").is_file());
    assert!(!elsewhere.path().join("evidence").exists());

    let show = |stream: &str| -> Value {
        let out = exhibit(&["show", stream, "--json"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let history = show("git-history/exhibit");
    let commits = history["payload"]["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{history}");
    assert_eq!(commits[0]["author"]["email"], "alice@example.com");
    let accounts = show("shell-accounts/local");
    let users = accounts["payload"]["output"]
        .as_array()
        .expect("JSON output");
    assert!(
        users.iter().any(|u| u["user"] == "root" && u["uid"] == 0),
        "{accounts}"
    );
}
