//! The deployment artefacts, checked with the tools that will run them:
//! the systemd unit with `systemd-analyze`, the Helm chart with Helm's own
//! SDK and the Kubernetes schemas, and the container image built and run
//! with podman (no Docker engine needed).
//!
//! The image is built from the binary under test, which must then be
//! static: `tests/run.sh` builds the tests for the musl target, so that
//! one build serves them all and the image holds the very binary the other
//! suites tested.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{code, exhibit_on_store, root, text};

fn require(tool: &str, hint: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`{tool}` is needed by this test and was not found: {hint}"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    require("systemd-analyze", "apt-get install systemd");
    let unit = std::fs::read_to_string(root().join("deploy/systemd/exhibit.service")).unwrap();
    // systemd-analyze checks that ExecStart exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let local = unit.replace("/usr/local/bin/exhibit", env!("CARGO_BIN_EXE_exhibit"));
    let path = dir.path().join("exhibit.service");
    std::fs::write(&path, &local).unwrap();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "{}",
        text(&out)
    );
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path));
    assert!(out.status.success(), "exposure above 2.0:\n{}", text(&out));
    for needed in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StateDirectory=exhibit",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // The check can fail: a broken unit is caught.
    std::fs::write(
        &path,
        local.replace("ProtectSystem=strict", "ProtectSystem=strictest"),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(
        !text(&out).trim().is_empty(),
        "a bad directive went unnoticed"
    );
}

#[test]
fn the_helm_chart_lints_renders_and_validates_strictly() {
    let out = run(Command::new("python3").arg(root().join("tests/deploy/helm_check.py")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("helm chart: all checks passed"),
        "{}",
        text(&out)
    );
}

/// The static binary the image is built from: `EXHIBIT_STATIC_BINARY`, or
/// else the binary under test, when the tests were built for a static
/// target (tests/run.sh builds them for musl).
fn static_binary() -> PathBuf {
    let (p, origin) = match std::env::var_os("EXHIBIT_STATIC_BINARY") {
        Some(p) => (PathBuf::from(p), "EXHIBIT_STATIC_BINARY"),
        None => (
            PathBuf::from(env!("CARGO_BIN_EXE_exhibit")),
            "the binary under test",
        ),
    };
    let elf = std::fs::read(&p).unwrap_or_else(|e| panic!("{origin}, {}: {e}", p.display()));
    assert!(
        is_static_elf(&elf),
        "{origin}, {}, is not a static executable, and the image has no libc: run the tests \
         for the musl target — `rustup target add x86_64-unknown-linux-musl && cargo test \
         --target x86_64-unknown-linux-musl` (tests/run.sh does this) — or point \
         EXHIBIT_STATIC_BINARY at a static build",
        p.display()
    );
    p
}

/// An x86-64 ELF executable that asks for no program interpreter (no
/// dynamic loader, so no shared libraries either).
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // 64-bit, little-endian, x86-64.
    if elf.get(..6) != Some(&b"\x7fELF\x02\x01"[..]) || u16_at(0x12) != Some(0x3e) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).all(|i| {
        let at = phoff as usize + i * phentsize as usize;
        u32_at(at).is_some_and(|t| t != PT_INTERP)
    })
}

fn podman(args: &[&str]) -> Output {
    run(Command::new("podman").args(args))
}

/// Builds the image in `format`: `oci` is reproducible with this host's
/// buildah (1.28), `docker` carries the HEALTHCHECK but also the build
/// container's id and hostname, which that buildah does not clear.
fn build_image(context: &Path, tag: &str, format: &str) -> String {
    // No layer cache: the second build must not reuse the first one's
    // layers, or the reproducibility check would compare a build with itself
    // (and the cache would leave images behind).
    let out = podman(&[
        "build",
        "--layers=false",
        "--isolation",
        "chroot",
        "--timestamp",
        "0",
        "--format",
        format,
        "-q",
        "--build-arg",
        "BINARY=exhibit",
        "-f",
        "Containerfile",
        "-t",
        tag,
        context.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "podman build: {}", text(&out));
    let out = podman(&["image", "inspect", "--format", "{{.Id}}", tag]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Removes what the container test made in podman's storage, also when the
/// test fails half-way.
struct PodmanLeftovers {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for PodmanLeftovers {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "-f", "-t", "0", c]);
        }
        let mut args = vec!["rmi", "-f"];
        args.extend(self.images.iter().map(String::as_str));
        let _ = podman(&args);
    }
}

/// The flags that run a container on this host (crun fails on its cgroups;
/// runc needs explicit limits), with the restrictions a deployment uses.
const LOCKED_DOWN: [&str; 9] = [
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=4096:4096",
    "--ulimit",
    "nproc=4096:4096",
    "--read-only",
    "--network",
    "none",
];

/// The image's unprivileged user.
const UID: u32 = 65532;

fn dir_for_the_agent(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One test, because the image builds are the slow part: built twice (the
/// reproducibility check), then run both ways — `collect` as a one-off, and
/// the default entrypoint, the daemon, as a deployment runs it.
#[test]
fn the_image_builds_reproducibly_and_runs_the_daemon_as_deployed() {
    require("podman", "apt-get install podman runc (tests/run.sh does)");
    require("runc", "apt-get install runc (tests/run.sh does)");
    require("openssl", "apt-get install openssl");
    require("nsenter", "apt-get install util-linux");
    require("curl", "apt-get install curl");
    let binary = static_binary();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, ctx.path().join("exhibit")).unwrap();
    std::fs::copy(
        root().join("deploy/docker/Containerfile"),
        ctx.path().join("Containerfile"),
    )
    .unwrap();
    let suffix = std::process::id();
    let (a, b, d) = (
        format!("localhost/exhibit-test:a{suffix}"),
        format!("localhost/exhibit-test:b{suffix}"),
        format!("localhost/exhibit-test:docker{suffix}"),
    );
    let mut leftovers = PodmanLeftovers {
        containers: vec![],
        images: vec![a.clone(), b.clone(), d.clone()],
    };
    let id_a = build_image(ctx.path(), &a, "oci");
    let id_b = build_image(ctx.path(), &b, "oci");
    assert_eq!(id_a, id_b, "two builds of the same binary differ");
    let digest = |tag: &str| {
        stdout(&podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Digest}}",
            tag,
        ]))
    };
    assert_eq!(digest(&a), digest(&b), "two builds have different digests");
    // The docker-format image (what `docker build` makes) adds the health
    // check to the same content.
    build_image(ctx.path(), &d, "docker");
    let inspect = |tag: &str| -> serde_json::Value {
        serde_json::from_slice(&podman(&["image", "inspect", tag]).stdout).unwrap()
    };
    let docker = inspect(&d);
    let health = &docker[0]["Healthcheck"]["Test"];
    assert!(
        health.to_string().contains("\"health\""),
        "no health check: {}",
        docker[0]
    );

    let info = inspect(&a);
    assert_eq!(
        info[0]["RootFS"], docker[0]["RootFS"],
        "the two formats hold different content"
    );
    let cfg = &info[0]["Config"];
    assert_eq!(cfg["User"], format!("{UID}:{UID}"), "{cfg}");
    assert_eq!(cfg["Entrypoint"][0], "/exhibit");
    assert_eq!(cfg["Cmd"][0], "run", "the daemon is the default: {cfg}");
    assert_eq!(
        cfg["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert!(cfg["Labels"]["org.opencontainers.image.version"].is_string());
    let layers = info[0]["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 1, "one layer: the binary alone");
    // The image is the binary and nothing else (this is a debug build; the
    // release image is measured in docs/operations.md).
    let size = info[0]["Size"].as_u64().unwrap();
    let binary_size = std::fs::metadata(&binary).unwrap().len();
    println!(
        "image size: {size} bytes ({:.1} MB), binary {binary_size} bytes, id {id_a}",
        size as f64 / 1e6
    );
    assert!(
        size >= binary_size && size - binary_size < 64 * 1024,
        "the image ({size} bytes) should hold the binary ({binary_size} bytes) alone"
    );

    // No shell in the image.
    let mut args = vec!["run", "--rm"];
    args.extend(LOCKED_DOWN);
    args.extend(["--entrypoint", "/bin/sh", &a, "-c", "true"]);
    assert!(!podman(&args).status.success(), "the image has a shell");

    collect_once_read_only(&a);
    run_the_daemon_as_deployed(&d, &mut leftovers);
}

/// `exhibit collect` as a one-off job: a mounted workspace, read-only root,
/// no network.
fn collect_once_read_only(image: &str) {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("data");
    dir_for_the_agent(&data, 0o700);
    std::fs::write(
        data.join("exhibit.toml"),
        r#"
[agent]
id = "container"

[[collectors]]
name = "self"
kind = "command"
schedule = "@daily"
command = ["/exhibit", "--version"]
"#,
    )
    .unwrap();
    let mount = format!("{}:/data", data.display());
    let mut args = vec!["run", "--rm"];
    args.extend(LOCKED_DOWN);
    args.extend([
        "-v",
        &mount,
        "-e",
        "EXHIBIT_KEY=/data/agent.pem",
        "-e",
        "EXHIBIT_CONFIG=/data/exhibit.toml",
        image,
        "collect",
    ]);
    for _ in 0..2 {
        let out = podman(&args);
        assert_eq!(code(&out), 0, "collect in the container: {}", text(&out));
    }
    let store = data.join("evidence");
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = exhibit_on_store(&store, &["show", "self/container", "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rec["payload"]["output"]
            .as_str()
            .unwrap()
            .starts_with("exhibit "),
        "{rec}"
    );
    assert_eq!(rec["statement"]["predicate"]["seq"], 2);
}

/// The image's own entrypoint, `exhibit run`, with the config, the signing
/// key and the state directory (spool and store) mounted, as the image's
/// numeric user: healthy, collecting on schedule, and stopping cleanly on
/// SIGTERM within its grace period.
fn run_the_daemon_as_deployed(image: &str, leftovers: &mut PodmanLeftovers) {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    let ws = tempfile::tempdir().unwrap();
    let (conf, key, state) = (
        ws.path().join("conf"),
        ws.path().join("key"),
        ws.path().join("state"),
    );
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("exhibit.toml"),
        r#"
[agent]
id = "deployed"
shutdown_grace = "5s"

[[collectors]]
name = "tick"
kind = "command"
schedule = "*/2 * * * * *"
command = ["/exhibit", "--version"]
"#,
    )
    .unwrap();
    // The key comes from a secret store, readable by the agent's user only.
    dir_for_the_agent(&key, 0o500);
    let pem = key.join("agent.pem");
    let out = run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem));
    assert!(out.status.success(), "openssl genpkey: {}", text(&out));
    std::os::unix::fs::chown(&pem, Some(UID), Some(UID)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o400)).unwrap();
    let public = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&pem));
    assert!(public.status.success(), "{}", text(&public));
    dir_for_the_agent(&state, 0o700);

    let name = format!("exhibit-test-daemon-{}", std::process::id());
    leftovers.containers.push(name.clone());
    let (conf_m, key_m, state_m) = (
        format!(
            "{}:/etc/exhibit/exhibit.toml:ro",
            conf.join("exhibit.toml").display()
        ),
        format!("{}:/etc/exhibit/key:ro", key.display()),
        format!("{}:/var/lib/exhibit", state.display()),
    );
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(LOCKED_DOWN);
    args.extend([
        "-v",
        &conf_m,
        "-v",
        &key_m,
        "-v",
        &state_m,
        "-e",
        "EXHIBIT_KEY=/etc/exhibit/key/agent.pem",
        "-e",
        "EXHIBIT_STORE=/var/lib/exhibit/evidence",
        image,
    ]);
    let out = podman(&args);
    assert!(out.status.success(), "podman run: {}", text(&out));
    let logs = || text(&podman(&["logs", &name]));

    // Healthy by the image's own check (/healthz, probed from inside the
    // container's network namespace: with --network none nothing else can).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = podman(&["healthcheck", "run", &name]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never healthy: {}\nlogs:\n{}",
            text(&out),
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let status = stdout(&podman(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        &name,
    ]));
    assert_eq!(status, "healthy");

    // Records on the schedule, in the mounted store.
    let store = state.join("evidence");
    let third = store.join("records/tick/deployed/000000000003.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !third.exists() {
        assert!(
            Instant::now() < deadline,
            "the schedule produced no records in the mounted store; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Written by the image's unprivileged user, not root.
    assert_eq!(std::fs::metadata(&third).unwrap().uid(), UID);
    let pid = stdout(&podman(&["inspect", "--format", "{{.State.Pid}}", &name]));
    // The metrics a Prometheus in the pod's network would scrape, read from
    // inside the container's network namespace.
    let out = run(Command::new("nsenter").args([
        "-t",
        &pid,
        "-n",
        "curl",
        "-sf",
        "http://127.0.0.1:9464/metrics",
    ]));
    assert!(out.status.success(), "/metrics: {}", text(&out));
    let metrics = stdout(&out);
    for line in [
        "exhibit_stream_expected_interval_seconds{collector=\"tick\",stream=\"tick/deployed\"} 2",
        "exhibit_last_success_timestamp_seconds{collector=\"tick\",stream=\"tick/deployed\"}",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("VmRSS: unknown");
        println!("running container (debug build), {rss}");
    }

    // SIGTERM: the scheduler stops, the run in flight finishes, the process
    // exits 0 well before podman would resort to SIGKILL.
    let started = Instant::now();
    let out = podman(&["stop", "-t", "20", &name]);
    let took = started.elapsed();
    assert!(out.status.success(), "podman stop: {}", text(&out));
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}: beyond the 5 s grace period"
    );
    let exit = stdout(&podman(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &name,
    ]));
    let logs = logs();
    assert_eq!(exit, "0", "not a clean exit; logs:\n{logs}");
    assert!(logs.contains("all runs finished; exiting"), "{logs}");
    println!("podman stop took {took:?}");

    // The evidence verifies, was signed with the mounted key, and each
    // record names its slot.
    let out = exhibit_on_store(&store, &["verify", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let published: Vec<_> = std::fs::read_dir(store.join("keys"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(
        published,
        [String::from_utf8(public.stdout).unwrap()],
        "the store's public key is not the mounted key's"
    );
    let out = exhibit_on_store(&store, &["show", "tick/deployed@3", "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &rec["statement"]["predicate"];
    assert_eq!(p["trigger"], "scheduled", "{rec}");
    assert!(p["scheduled_for"].is_string(), "{rec}");
    assert!(
        rec["payload"]["output"]
            .as_str()
            .unwrap()
            .starts_with("exhibit "),
        "{rec}"
    );
}
