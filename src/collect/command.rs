//! `kind = "command"`: runs a program and records what it printed.
//!
//! No shell is involved unless the config asks for one, and the child sees
//! only the environment variables the config allows: evidence collection
//! must not leak the agent's own credentials into arbitrary programs.
//!
//! What a command prints is the host's own: its stream is
//! `<name>/<agent id>`, so that agents on two hosts sharing a store write
//! two streams. Earlier versions wrote `<name>/local` whatever the
//! agent: the new stream's first record names that stream as the one it
//! continues (see [`Collector::former_key`]), which ends it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    name: "command",
    criteria: &[],
    secrets: &[],
    build,
    windowed: &[],
    // A command prints what it likes: the generic identities.
    identities: &[],
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
    /// Variables set for the child; their values are never recorded, and
    /// are scrubbed from what the child prints.
    #[serde(default)]
    set_env: BTreeMap<String, String>,
    /// Working directory, relative to the config file.
    cwd: Option<PathBuf>,
    /// The stream key; the agent's id unless given.
    stream_key: Option<String>,
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
fn default_max_output() -> usize {
    16 * 1024 * 1024
}

struct CommandCollector {
    argv: Vec<String>,
    env: Vec<String>,
    set_env: BTreeMap<String, String>,
    cwd: PathBuf,
    key: String,
    /// The key earlier versions wrote this instance's records to, when
    /// it is not `key`.
    former_key: Option<String>,
    max_output: usize,
}

/// The stream key of every command collector before keys named the agent.
const FORMER_KEY: &str = "local";

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
    // A key given in the config is kept as it is: only the default moved.
    let (key, former_key) = match s.stream_key {
        Some(k) => (k, None),
        None => {
            let k = settings.agent.clone();
            let former = (k != FORMER_KEY).then(|| FORMER_KEY.to_string());
            (k, former)
        }
    };
    crate::evidence::validate_stream_id(&key).map_err(|m| settings.error("stream_key", m))?;
    // What the child is given to keep secret, it may print: the runner
    // scrubs these values from the output, the stderr tail and errors.
    for v in s.set_env.values() {
        settings.mark_secret(v);
    }
    let cwd = settings
        .base_dir
        .join(s.cwd.unwrap_or_else(|| PathBuf::from(".")));
    Ok(Box::new(CommandCollector {
        argv,
        env: s.env,
        set_env: s.set_env,
        cwd,
        key,
        former_key,
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

    fn known_key(&self) -> Option<String> {
        Some(self.key.clone())
    }

    fn former_key(&self) -> Option<String> {
        self.former_key.clone()
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
        // Output goes to a temporary file, not memory: a large output is
        // then parsed from disk and exists in memory only once, as the
        // payload.
        let spool = tempfile::tempfile()
            .map_err(|e| CollectError::fatal(format!("cannot create a temporary file: {e}")))?;
        let mut out_file = tokio::fs::File::from_std(spool);
        let limit = self.max_output as u64;
        let read_out = async {
            let n = tokio::io::copy(&mut (&mut stdout).take(limit + 1), &mut out_file).await?;
            out_file.flush().await?;
            Ok::<_, std::io::Error>(n)
        };
        // stderr is drained on its own task, so that a runaway stdout can be
        // stopped without waiting for stderr to close.
        let read_err = tokio::spawn(async move {
            let mut buf = Vec::new();
            stderr.read_to_end(&mut buf).await.map(|_| buf)
        });
        let run = async {
            let n = read_out.await?;
            if n > limit {
                // Stop it rather than let it block on a full pipe until the
                // timeout.
                let _ = child.start_kill();
            }
            let status = child.wait().await?;
            let err = read_err.await.expect("reading stderr does not panic")?;
            Ok::<_, std::io::Error>((n, err, status))
        };
        let (n, err, status) = tokio::select! {
            r = run => r.map_err(|e| CollectError::retryable(format!("`{}`: {e}", self.argv[0])))?,
            _ = ctx.cancel.cancelled() => return Err(CollectError::Cancelled),
        };
        let stderr_tail = tail(&err, STDERR_TAIL);
        if n > limit {
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
        let file = out_file.into_std().await;
        let (format, output) = tokio::task::spawn_blocking(move || parse_output(file))
            .await
            .expect("parsing does not panic")
            .map_err(|e| CollectError::retryable(format!("reading the output back: {e}")))?;
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

/// The output as JSON when it parses, else as text.
fn parse_output(mut file: std::fs::File) -> std::io::Result<(&'static str, Value)> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    // Exactly sized: the bytes and the parsed value are the only copies.
    let mut bytes = Vec::with_capacity(file.metadata()?.len() as usize);
    file.read_to_end(&mut bytes)?;
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        return Ok(("json", v));
    }
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok(("text", Value::String(text)))
}

fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
