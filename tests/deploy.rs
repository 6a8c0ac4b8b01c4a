//! The deployment artefacts, checked with the tools that will run them:
//! the systemd unit with `systemd-analyze`, the Helm chart with Helm's own
//! SDK and the Kubernetes schemas, and the container image built and run
//! with podman (no Docker engine needed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{code, exhibit_on_store, text};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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

/// The static binary the image is built from (tests/run.sh builds it).
fn static_binary() -> PathBuf {
    let p = std::env::var_os("EXHIBIT_STATIC_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/x86_64-unknown-linux-musl/debug/exhibit"));
    assert!(
        p.exists(),
        "{} is missing: the container test needs a static build — `rustup target add x86_64-unknown-linux-musl && cargo build --target x86_64-unknown-linux-musl` (tests/run.sh does this; if the target cannot be fetched on this machine, that is why this fails)",
        p.display()
    );
    p
}

fn podman(args: &[&str]) -> Output {
    run(Command::new("podman").args(args))
}

fn build_image(context: &Path, tag: &str) -> String {
    let out = podman(&[
        "build",
        "--isolation",
        "chroot",
        "--timestamp",
        "0",
        "--format",
        "docker",
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

#[test]
fn the_image_builds_reproducibly_and_collects_read_only_without_network() {
    require("podman", "apt-get install podman runc (tests/run.sh does)");
    let binary = static_binary();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, ctx.path().join("exhibit")).unwrap();
    std::fs::copy(
        root().join("deploy/docker/Containerfile"),
        ctx.path().join("Containerfile"),
    )
    .unwrap();
    let suffix = std::process::id();
    let (a, b) = (
        format!("localhost/exhibit-test:a{suffix}"),
        format!("localhost/exhibit-test:b{suffix}"),
    );
    let id_a = build_image(ctx.path(), &a);
    let id_b = build_image(ctx.path(), &b);
    assert_eq!(id_a, id_b, "two builds of the same binary differ");

    let out = podman(&["image", "inspect", &a]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cfg = &info[0]["Config"];
    assert_eq!(cfg["User"], "65532:65532", "{cfg}");
    assert_eq!(cfg["Entrypoint"][0], "/exhibit");
    assert_eq!(
        cfg["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert!(cfg["Labels"]["org.opencontainers.image.version"].is_string());
    let health = &info[0]["Healthcheck"]["Test"];
    assert!(
        health.to_string().contains("\"health\""),
        "no health check: {}",
        info[0]
    );
    let layers = info[0]["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 1, "one layer: the binary alone");

    let rt = [
        "run",
        "--rm",
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
    // No shell in the image.
    let mut args = rt.to_vec();
    args.extend(["--entrypoint", "/bin/sh", &a, "-c", "true"]);
    assert!(!podman(&args).status.success(), "the image has a shell");

    // Collect into a mounted store, read-only root, no network.
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("data");
    std::fs::create_dir(&data).unwrap();
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
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount = format!("{}:/data", data.display());
    let mut args = rt.to_vec();
    args.extend([
        "-v",
        &mount,
        "-e",
        "EXHIBIT_KEY=/data/agent.pem",
        "-e",
        "EXHIBIT_CONFIG=/data/exhibit.toml",
        &a,
        "collect",
    ]);
    for _ in 0..2 {
        let out = podman(&args);
        assert_eq!(code(&out), 0, "collect in the container: {}", text(&out));
    }
    let store = data.join("evidence");
    let out = exhibit_on_store(&store, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = exhibit_on_store(&store, &["show", "self/local", "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rec["payload"]["output"]
            .as_str()
            .unwrap()
            .starts_with("exhibit "),
        "{rec}"
    );
    assert_eq!(rec["statement"]["predicate"]["seq"], 2);

    let _ = podman(&["rmi", "-f", &a, &b]);
}
