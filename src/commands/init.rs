//! `exhibit init`: writes a starter config, so that a newcomer collects and
//! verifies evidence in minutes: local collectors that work at once on any
//! Unix host (login accounts, OS release; this directory's git history
//! when it is a repository), and commented cloud and SaaS sections to fill
//! in. It never overwrites a file.

use crate::commands::outln;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Failure};

/// The starter config; `{git}` is the git collector, enabled when the
/// config's directory is a repository, else commented.
const STARTER: &str = r#"# Exhibit starter config, written by `exhibit init`.
#
#   exhibit --config {file} config check     # every problem at once
#   exhibit --config {file} collect          # collect now
#   exhibit --config {file} verify           # check the evidence
#   exhibit --config {file} run              # the daemon
#
# Relative paths resolve against this file's directory. `exhibit kinds`
# lists every collector kind, what it collects and what it needs.

[agent]
id = "{id}"
# Created on first use (mode 0600); its public half goes to the store's keys/.
key = "exhibit.key"

[store]
# A directory, or s3://bucket/prefix (docs/store-s3.md).
location = "evidence"

[admin]
listen = "127.0.0.1:9464"

# The nightly review (docs/operations.md, "The nightly review").
# [report]
# schedule = "0 7 * * *"
# out = "reports"

# Logical access (CC6.1, CC6.2): local accounts that can log in with a shell.
[[collectors]]
name = "shell-accounts"
kind = "command"
schedule = "0 6 * * *"
criteria = ["CC6.1", "CC6.2"]
shell = true
command = "awk -F: '$7 !~ /(nologin|false|sync|halt|shutdown)$/ { printf \"%s%s\", sep, \"{\\\"user\\\":\\\"\" $1 \"\\\",\\\"uid\\\":\" $3 \",\\\"shell\\\":\\\"\" $7 \"\\\"}\"; sep=\",\" } BEGIN { printf \"[\" } END { print \"]\" }' /etc/passwd"

# System identity (CC6.8 context): kernel and OS release of the host.
[[collectors]]
name = "os-release"
kind = "command"
schedule = "@weekly"
criteria = ["CC6.8"]
command = ["cat", "/etc/os-release"]

{git}
# ---------------------------------------------------------------------------
# Cloud and SaaS collectors: uncomment, and give the credentials. Each needs
# only read access (`exhibit kinds` names the permissions); check them with
# `exhibit config check --connect`.

# AWS (docs/collectors/aws.md): credentials from the SDK's chain
# (AWS_PROFILE, environment, SSO, IRSA, instance metadata); the read-only
# policy is deploy/aws/exhibit-readonly-policy.json.
# [[collectors]]
# name = "iam-users"
# kind = "aws-iam-users"
# schedule = "0 5 * * *"
# region = "us-east-1"

# GitHub (docs/collectors/github.md): a fine-grained read-only token.
# [[collectors]]
# name = "github-members"
# kind = "github-members"
# schedule = "0 5 * * *"
# org = "your-org"
# token = "${GITHUB_TOKEN}"

# A SaaS API by its definition (docs/collectors/http.md), e.g. PagerDuty.
# [[collectors]]
# name = "pagerduty"
# kind = "http"
# schedule = "30 5 * * *"
# definition = "pagerduty"
# token_file = "/run/secrets/pagerduty"
"#;

const GIT_ON: &str = r#"# Change management (CC8.1): every commit of this repository since the
# previous record, with authors, committers, merges and signature status.
[[collectors]]
name = "git-history"
kind = "git"
schedule = "@daily"
criteria = ["CC8.1"]
repository = "."
"#;

const GIT_OFF: &str = r#"# Change management (CC8.1): the commits of a git repository.
# [[collectors]]
# name = "git-history"
# kind = "git"
# schedule = "@daily"
# repository = "/path/to/your/repository"
"#;

/// The starter config for a file in `dir`.
pub(crate) fn starter(file: &str, dir: &Path) -> String {
    let id = crate::host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>();
    let id = id.trim_matches('-');
    let id = if id.is_empty() { "default" } else { id };
    let git = if dir.join(".git").exists() {
        GIT_ON
    } else {
        GIT_OFF
    };
    STARTER
        .replace("{file}", file)
        .replace("{id}", id)
        .replace("{git}", git)
}

/// Writes the starter config at the path given, else the global
/// `--config`; refuses (exit 2) when a file is there.
pub(crate) fn exec(cli: &Cli, args: &InitArgs) -> Result<ExitCode, Failure> {
    let path = args.path.as_deref().unwrap_or(&cli.config);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let text = starter(&path.display().to_string(), &dir);
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure::Usage(anyhow::anyhow!(
                "{} exists; `exhibit init` never overwrites a config (give another path: `exhibit init FILE`)",
                path.display()
            )));
        }
        Err(e) => {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "cannot create {}: {e}",
                path.display()
            )));
        }
    };
    f.write_all(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    outln!("wrote {}", path.display());
    outln!(
        "next: exhibit --config {} collect && exhibit --config {} verify",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Where to write it (default: the global --config, `exhibit.toml`).
    pub(crate) path: Option<std::path::PathBuf>,
}
