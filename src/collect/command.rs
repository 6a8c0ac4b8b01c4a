//! `kind = "command"`: runs a program and records what it printed.
//!
//! No shell is involved unless the config asks for one, and the child sees
//! only the environment variables the config allows: evidence collection
//! must not leak the agent's own credentials into arbitrary programs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    name: "command",
    criteria: &[],
    secrets: &[],
    build,
};

/// How much of stderr a record keeps (the tail, where errors usually are).
const STDERR_TAIL: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandSettings {
    /// Program and arguments, or one string run by `sh -c` when `shell`.
    command: CommandLine,
    #[serde(default)]
    shell: bool,
    /// Names of the agent's environment variables passed to the child.
    #[serde(default = "default_env")]
    env: Vec<String>,
    /// Variables set for the child; their values are never recorded.
    #[serde(default)]
    set_env: BTreeMap<String, String>,
    /// Working directory, relative to the config file.
    cwd: Option<PathBuf>,
    /// The stream key; `local` unless given.
    #[serde(default = "default_key")]
    stream_key: String,
    /// Largest stdout kept, in bytes; more is a failed collection.
    #[serde(default = "default_max_output")]
    max_output: usize,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Argv(Vec<String>),
    Script(String),
}

fn default_env() -> Vec<String> {
    vec!["PATH".into()]
}
fn default_key() -> String {
    "local".into()
}
fn default_max_output() -> usize {
    16 * 1024 * 1024
}

struct CommandCollector {
    argv: Vec<String>,
    env: Vec<String>,
    set_env: BTreeMap<String, String>,
    cwd: PathBuf,
    key: String,
    max_output: usize,
}

fn build(settings: &Settings) -> Result<Box<dyn Collector>, ConfigError> {
    let s: CommandSettings = settings.parse()?;
    let argv = match (&s.command, s.shell) {
        (CommandLine::Argv(v), false) if !v.is_empty() => v.clone(),
        (CommandLine::Script(script), true) => {
            vec!["/bin/sh".into(), "-c".into(), script.clone()]
        }
        (CommandLine::Argv(_), false) => {
            return Err(settings.error("command", "`command` needs a program to run"));
        }
        (CommandLine::Script(_), false) => {
            return Err(settings.error(
                "command",
                "`command` is a string: give a list [\"program\", \"arg\"…], or set `shell = true` to run it with /bin/sh",
            ));
        }
        (CommandLine::Argv(_), true) => {
            return Err(settings.error("command", "with `shell = true`, `command` is one string"));
        }
    };
    crate::evidence::validate_stream_id(&s.stream_key)
        .map_err(|m| settings.error("stream_key", m))?;
    let cwd = settings
        .base_dir
        .join(s.cwd.unwrap_or_else(|| PathBuf::from(".")));
    Ok(Box::new(CommandCollector {
        argv,
        env: s.env,
        set_env: s.set_env,
        cwd,
        key: s.stream_key,
        max_output: s.max_output,
    }))
}

#[async_trait]
impl Collector for CommandCollector {
    async fn targets(&self, _ctx: &Context) -> Result<Vec<Target>, CollectError> {
        Ok(vec![Target {
            key: self.key.clone(),
            source: json!({
                "host": crate::host_name(),
                "program": self.argv[0],
            }),
        }])
    }

    async fn collect(
        &self,
        ctx: &Context,
        _target: &Target,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .current_dir(&self.cwd)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timeout or shutdown drops the future; the child must die too.
            .kill_on_drop(true);
        for name in &self.env {
            if let Ok(v) = std::env::var(name) {
                cmd.env(name, v);
            }
        }
        cmd.envs(&self.set_env);
        let mut child = cmd.spawn().map_err(|e| {
            CollectError::fatal(format!(
                "cannot start `{}` in {}: {e}",
                self.argv[0],
                self.cwd.display()
            ))
        })?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let limit = self.max_output as u64 + 1;
        let read_out = async {
            let mut buf = Vec::new();
            (&mut stdout)
                .take(limit)
                .read_to_end(&mut buf)
                .await
                .map(|_| buf)
        };
        let read_err = async {
            let mut buf = Vec::new();
            stderr.read_to_end(&mut buf).await.map(|_| buf)
        };
        let run = async {
            let (out, err) = tokio::try_join!(read_out, read_err)?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((out, err, status))
        };
        let (out, err, status) = tokio::select! {
            r = run => r.map_err(|e| CollectError::retryable(format!("`{}`: {e}", self.argv[0])))?,
            _ = ctx.cancel.cancelled() => return Err(CollectError::Cancelled),
        };
        let stderr_tail = tail(&err, STDERR_TAIL);
        if out.len() > self.max_output {
            return Err(CollectError::fatal(format!(
                "`{}` printed more than max_output ({} bytes)",
                self.argv[0], self.max_output
            )));
        }
        let code = status.code();
        if !status.success() {
            let how = match code {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(CollectError::retryable(format!(
                "`{}` {how}; stderr: {}",
                self.argv[0],
                if stderr_tail.is_empty() {
                    "(empty)"
                } else {
                    stderr_tail.trim_end()
                }
            )));
        }
        // `out` is consumed here so that a large output is not held twice.
        let (format, output) = match serde_json::from_slice::<Value>(&out) {
            Ok(v) => ("json", v),
            Err(_) => (
                "text",
                Value::String(match String::from_utf8(out) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                }),
            ),
        };
        let set_env: Vec<&String> = self.set_env.keys().collect();
        Ok(Snapshot::new(json!({
            "command": self.argv,
            "cwd": self.cwd.display().to_string(),
            "env_passed": self.env,
            "env_set": set_env,
            "exit_code": code,
            "output_format": format,
            "output": output,
            "stderr_tail": stderr_tail,
        })))
    }
}

fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
