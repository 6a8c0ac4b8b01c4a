//! The running agent tells the truth: readiness that means evidence is kept,
//! metrics for every stream, reload, and collection on demand; and the
//! messages around it say what happened.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Datelike;
use serde_json::Value;

use crate::support::net::{free_port, http_get, wait_for_port};
use crate::support::{Workspace, code, text};

/// `exhibit run` in the background, its log in `daemon.log` of the
/// workspace, its admin endpoint on `port` (`--admin-listen` unless the
/// config says where).
pub(crate) struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(ws: &Workspace, port: u16, flag: bool) -> Daemon {
        let log = ws.path().join("daemon.log");
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["run"];
        if flag {
            args.extend(["--admin-listen", &addr]);
        }
        let child = ws
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the exhibit binary starts");
        wait_for_port(port, Duration::from_secs(20), "the admin endpoint");
        let d = Daemon { child, port, log };
        d.wait_until("ready", 20, |d| d.get("/readyz").0 == 200);
        d
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).expect("the admin endpoint answers")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `secs` for `ok`; panics naming `what`, with the log.
    pub(crate) fn wait_until(&self, what: &str, secs: u64, ok: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs}s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, and the exit status.
    pub(crate) fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, self.log());
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("the daemon did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many records `stream` holds in the workspace's store.
pub(crate) fn count(ws: &Workspace, stream: &str) -> usize {
    std::fs::read_dir(ws.store().join("records").join(stream))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

pub(crate) fn show(ws: &Workspace, spec: &str) -> Value {
    let out = ws.run(&["show", spec, "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every record of `stream`, oldest first.
pub(crate) fn records(ws: &Workspace, stream: &str) -> Vec<Value> {
    (1..=count(ws, stream))
        .map(|n| show(ws, &format!("{stream}@{n}")))
        .collect()
}

/// A read-only bind mount over a directory, for as long as it lives: new
/// files cannot be made under it, not even by root (unlike a chmod), while
/// files the agent holds open (its locks) stay as they are.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn over(dir: &Path) -> ReadOnly {
        let run = |args: &[&str]| {
            let out = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .output()
                .expect("mount runs");
            assert!(
                out.status.success(),
                "this test bind-mounts the store read-only and needs root (as CI has): {}",
                text(&out)
            );
        };
        run(&["--bind"]);
        let ro = ReadOnly(dir.to_path_buf());
        let out = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        ro
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const TICK: &str = r#"
[agent]
id = "truthful"
catch_up = false
shutdown_grace = "5s"

[[collectors]]
name = "tick"
kind = "command"
schedule = "*/2 * * * * *"
command = ["echo", "{\"tick\": 1}"]
retries = 0
"#;

#[test]
fn an_unwritable_store_makes_the_agent_unready_and_its_slots_are_recorded_failed_after() {
    let ws = Workspace::new(TICK);
    std::fs::create_dir_all(ws.store()).unwrap();
    let d = Daemon::start(&ws, free_port(), true);
    d.wait_until("a first record", 20, |_| count(&ws, "tick/truthful") >= 1);

    let ro = ReadOnly::over(&ws.store());
    d.wait_until("/readyz 503 once a write failed", 10, |d| {
        d.get("/readyz").0 == 503
    });
    let (_, body) = d.get("/readyz");
    assert!(body.contains("the store is not writable"), "{body}");
    assert!(body.contains("Read-only file system"), "{body}");
    // Slots keep coming, and keep being refused.
    std::thread::sleep(Duration::from_secs(3));
    let (_, metrics) = d.get("/metrics");
    let errors = metric(&metrics, "exhibit_store_write_errors_total");
    assert!(errors >= 1.0, "{metrics}");
    let stream_errors = metric(
        &metrics,
        "exhibit_stream_write_errors_total{collector=\"tick\",stream=\"tick/truthful\"}",
    );
    assert!(stream_errors >= 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "exhibit_store_writable"), 0.0, "{metrics}");
    let held = count(&ws, "tick/truthful");

    drop(ro);
    let restored_at = std::time::SystemTime::now();
    d.wait_until("/readyz 200 once the store takes writes", 15, |d| {
        d.get("/readyz").0 == 200
    });
    d.wait_until("the refused slots written", 10, |_| {
        count(&ws, "tick/truthful") >= held + stream_errors as usize
    });
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");

    let recs = records(&ws, "tick/truthful");
    let failed: Vec<&Value> = recs
        .iter()
        .filter(|r| r["statement"]["predicate"]["status"] == "failed")
        .collect();
    assert!(
        failed.len() >= stream_errors as usize,
        "every refused slot is recorded: {recs:#?}"
    );
    for r in &failed {
        let p = &r["statement"]["predicate"];
        let error = p["error"].as_str().unwrap();
        assert!(error.contains("store is not writable"), "{p}");
        assert!(error.contains("Read-only file system"), "{p}");
        assert_eq!(p["trigger"], "scheduled", "{p}");
        let slot: chrono::DateTime<chrono::Utc> =
            p["scheduled_for"].as_str().unwrap().parse().unwrap();
        assert!(
            std::time::SystemTime::from(slot) <= restored_at,
            "a slot of the outage: {p}"
        );
    }
    // Nothing reads as "not running": the agent was running.
    assert!(
        recs.iter()
            .all(|r| r["statement"]["predicate"]["status"] != "missed"),
        "{recs:#?}"
    );
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// The value of the sample whose name and labels are `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn every_configured_stream_has_metrics_from_start_up_and_the_log_names_its_next_run() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "monthly"
kind = "command"
schedule = "0 0 1 * *"
command = ["echo", "{}"]
"#,
    );
    let d = Daemon::start(&ws, free_port(), true);
    let series = "{collector=\"monthly\",stream=\"monthly/default\"}";
    d.wait_until("the stream's metrics", 10, |d| {
        d.get("/metrics")
            .1
            .contains(&format!("exhibit_last_success_timestamp_seconds{series}"))
    });
    let (_, metrics) = d.get("/metrics");
    // Never succeeded: 0, so that the staleness alert can fire.
    assert_eq!(
        metric(
            &metrics,
            &format!("exhibit_last_success_timestamp_seconds{series}")
        ),
        0.0,
        "{metrics}"
    );
    d.wait_until("the expected interval", 10, |d| {
        d.get("/metrics").1.contains(&format!(
            "exhibit_stream_expected_interval_seconds{series} 2678400"
        ))
    });
    let started = metric(&metrics, "exhibit_agent_start_time_seconds");
    assert!(started > 1.7e9, "{metrics}");
    // The log says when it runs next: the first of next month.
    let now = chrono::Utc::now();
    let next = chrono::NaiveDate::from_ymd_opt(
        now.year() + i32::from(now.month() == 12),
        now.month() % 12 + 1,
        1,
    )
    .unwrap();
    let log = d.log();
    assert!(log.contains(&format!("next_run={next}T00:00:00Z")), "{log}");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn sighup_reloads_a_valid_config_and_keeps_the_running_one_when_invalid() {
    let ws = Workspace::new(TICK);
    let mut d = Daemon::start(&ws, free_port(), true);
    d.wait_until("tick collects", 20, |_| count(&ws, "tick/truthful") >= 1);

    // An invalid file: logged, nothing changes, the agent lives on.
    std::fs::write(ws.config(), TICK.replace("*/2 * * * * *", "0 0 31 2 *")).unwrap();
    d.signal("-HUP");
    d.wait_until("the refusal logged", 10, |d| {
        d.log().contains("configuration not reloaded")
    });
    assert!(d.log().contains("no future slot"), "{}", d.log());
    assert!(d.alive(), "SIGHUP must not end the agent");
    let before = count(&ws, "tick/truthful");
    d.wait_until("tick still collects", 10, |_| {
        count(&ws, "tick/truthful") > before
    });

    // A valid one: tock replaces tick.
    std::fs::write(
        ws.config(),
        TICK.replace("name = \"tick\"", "name = \"tock\""),
    )
    .unwrap();
    d.signal("-HUP");
    d.wait_until("tock collects", 20, |_| count(&ws, "tock/truthful") >= 1);
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
    std::thread::sleep(Duration::from_secs(1));
    let ticks = count(&ws, "tick/truthful");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count(&ws, "tick/truthful"),
        ticks,
        "tick is no longer scheduled"
    );
    assert!(d.alive());
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_schedule_with_no_future_slot_is_a_config_error() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "never"
kind = "command"
schedule = "0 0 31 2 *"
command = ["true"]
"#,
    );
    for args in [&["config", "check"][..], &["run"][..], &["collect"][..]] {
        let out = ws.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("has no future slot"), "{said}");
        assert!(said.contains("exhibit.toml"), "{said}");
        assert!(said.contains("schedule"), "{said}");
    }
}

#[test]
fn collect_on_a_running_agent_is_done_by_the_agent_through_its_control_socket() {
    let ws = Workspace::new(
        r#"
[agent]
id = "ctl"

[[collectors]]
name = "daily"
kind = "command"
schedule = "@daily"
command = ["echo", "{\"asked\": true}"]

[[collectors]]
name = "other"
kind = "command"
schedule = "@daily"
command = ["echo", "{}"]
"#,
    );
    let d = Daemon::start(&ws, free_port(), true);
    let socket = ws.path().join("exhibit-ctl.sock");
    d.wait_until("the control socket", 10, |_| socket.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let out = ws.run(&["collect", "daily"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok       daily/ctl #1"), "{stdout}");
    assert!(stdout.contains("checkpoint checkpoints/"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("running agent"),
        "{}",
        text(&out)
    );
    // The agent did it: a manual record, and nothing of `other`.
    let r = show(&ws, "daily/ctl@1");
    assert_eq!(r["statement"]["predicate"]["trigger"], "manual");
    assert_eq!(r["payload"]["output"]["asked"], true);
    assert_eq!(count(&ws, "other/ctl"), 0);

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(!socket.exists(), "the socket goes with the agent");
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn show_into_a_closed_pipe_ends_quietly() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "big"
kind = "command"
schedule = "@daily"
shell = true
command = "printf '{\"rows\": ['; i=0; while [ $i -lt 40000 ]; do printf '\"row %d\",' $i; i=$((i+1)); done; printf '\"end\"]}'"
"#,
    );
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for args in [
        &["show", "big/default"][..],
        &["show", "big/default", "--json"][..],
    ] {
        // `exhibit show … | head -c 10`: the reader leaves early.
        let mut child = ws
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn health_reads_the_configs_admin_listen() {
    let port = free_port();
    let ws = Workspace::new(&format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        TICK.replace("*/2 * * * * *", "@daily")
    ));
    let d = Daemon::start(&ws, port, false);
    let out = ws.run(&["health"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("healthy"), "{}", text(&out));
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let out = ws.run(&["health"]);
    assert_eq!(code(&out), 1, "nothing listens any more: {}", text(&out));
    assert!(
        text(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&out)
    );
}

#[test]
fn aws_without_credentials_says_so_in_one_line_and_records_to_the_collectors_stream() {
    let ws = Workspace::new(
        r#"
[[collectors]]
name = "iam"
kind = "aws-iam-users"
schedule = "@daily"
retries = 0
region = "us-east-1"
"#,
    );
    let empty = ws.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = ws.cmd(&["collect"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Nothing is reachable here: no credentials means no request.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    let said = text(&out);
    let line = said
        .lines()
        .find(|l| l.contains("no AWS credentials found"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains("(tried: environment variables"), "{line}");
    assert!(line.contains("EC2 instance metadata)"), "{line}");
    assert!(!said.contains("were refused"), "{said}");
    // The record is in the collector's own stream.
    let r = show(&ws, "iam/iam");
    let p = &r["statement"]["predicate"];
    assert_eq!(p["status"], "failed");
    assert!(
        p["error"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials found (tried: "),
        "{p}"
    );
    assert!(!ws.store().join("records/iam/_targets").exists());
}

#[test]
fn staged_leftovers_in_the_spool_are_removed_at_start() {
    let moto = crate::support::moto::for_stores();
    let endpoint = moto.endpoint();
    let bucket = "truthful-staging";
    make_bucket(&endpoint, bucket);
    let ws = Workspace::new(&format!(
        r#"
[store]
location = "s3://{bucket}/org"
allow_without_object_lock = true
flush_timeout = "3s"

[[collectors]]
name = "u"
kind = "command"
schedule = "@daily"
command = ["echo", "{{\"n\":1}}"]
"#
    ));
    let collect = || {
        let empty = ws.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let mut c = ws.cmd(&["collect"]);
        crate::support::moto::aws_env(&mut c, &endpoint, "testing", &empty);
        c.output().unwrap()
    };
    let out = collect();
    assert_eq!(code(&out), 0, "{}", text(&out));
    // What a kill -9 in the middle of a write leaves behind.
    let staging = ws.path().join("spool/objects/.staging");
    std::fs::create_dir_all(&staging).unwrap();
    let leftover = staging.join(".tmpKILLED");
    std::fs::write(&leftover, "half a payload").unwrap();
    let out = collect();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!leftover.exists(), "the leftover is removed at start");
}

fn make_bucket(endpoint: &str, bucket: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .http_client(exhibit::aws_http::https_client())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    });
}
