//! The control socket of `exhibit run`: a Unix domain socket in the agent's
//! state directory (beside its signing key), mode 0600, through which
//! `exhibit collect NAME` asks the running agent to collect now when the
//! agent holds the store's lock. It is never served on the admin listener,
//! which Kubernetes and Prometheus reach: only someone who can read the
//! agent's own files can trigger it.
//!
//! One request per connection, one JSON line each way: `{"collect":
//! {"names": […]}}`, answered by the [`CollectReport`] of the run (or why
//! it was refused) once the collection has finished.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::agent::CollectReport;
use crate::collect::instance::CollectorInstance;
use crate::config::Config;

/// Longest request read; a request names collectors, nothing more.
const MAX_REQUEST: u64 = 64 * 1024;

/// Where the control socket of the agent of `config` is: in its state
/// directory (the signing key's), named after its id, unless
/// `EXHIBIT_CONTROL_SOCKET` names it (for a key mounted read-only).
pub fn socket_path(config: &Config) -> PathBuf {
    if let Some(p) = std::env::var_os("EXHIBIT_CONTROL_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = config
        .agent
        .key
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| config.base_dir());
    let id: String = config
        .agent
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("exhibit-{id}.sock"))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Collect { names: Vec<String> },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Response {
    Collected(CollectReport),
    Refused(String),
}

/// The control socket, served until [`Control::close`].
#[derive(Debug)]
pub struct Control {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Control {
    /// Stops accepting requests and removes the socket file.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the control socket at `path` for the daemon of `shared`; requests
/// made after `stop` are refused. `None` (and a warning) when the socket
/// cannot be made: the daemon runs on without it.
pub fn serve(shared: Arc<Shared>, path: &Path, stop: CancellationToken) -> Option<Control> {
    let listener = match bind_private(path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(socket = %path.display(), error = %e, "cannot open the control socket: `exhibit collect` cannot reach this agent");
            return None;
        }
    };
    tracing::info!(socket = %path.display(), "control socket listening");
    let task = tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                r = listener.accept() => match r {
                    Ok((c, _)) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: cannot accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
            };
            tokio::spawn(handle(shared.clone(), conn, stop.clone()));
        }
    });
    Some(Control {
        path: path.to_path_buf(),
        task,
    })
}

/// Binds the socket in a private directory beside `path`, makes it 0600,
/// then moves it into place: it is never reachable with looser modes. A
/// socket file already at `path` is a dead agent's (this one holds the
/// store's lock) and is replaced.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let private = tempfile::Builder::new()
        .prefix(".exhibit-control-")
        .tempdir_in(dir)?;
    let staged = private.path().join("sock");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staged, path)?;
    Ok(listener)
}

async fn handle(shared: Arc<Shared>, conn: UnixStream, stop: CancellationToken) {
    let (read, mut write) = conn.into_split();
    let mut line = String::new();
    if BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await
        .is_err()
    {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Refused(format!("unreadable request: {e}")),
        Ok(Request::Collect { .. }) if stop.is_cancelled() => {
            Response::Refused("the agent is shutting down".into())
        }
        Ok(Request::Collect { names }) => collect(&shared, &names).await,
    };
    let mut text = serde_json::to_string(&response).expect("responses serialise");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

async fn collect(shared: &Shared, names: &[String]) -> Response {
    let agent = shared.agent();
    for n in names {
        if !agent.instances().iter().any(|c| &c.name == n) {
            let known: Vec<_> = agent.instances().iter().map(|c| c.name.as_str()).collect();
            return Response::Refused(format!(
                "the running agent has no collector named `{n}` (known: {}); reload it (SIGHUP) after changing its config",
                known.join(", ")
            ));
        }
    }
    let selected: Vec<Arc<CollectorInstance>> = agent
        .instances()
        .iter()
        .filter(|c| {
            if names.is_empty() {
                c.enabled
            } else {
                names.contains(&c.name)
            }
        })
        .cloned()
        .collect();
    tracing::info!(
        collectors = %selected.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        "collection asked for through the control socket"
    );
    // Each instance's scheduled run (if one is under way) finishes first;
    // locks are taken in name order, so two requests never wait on each
    // other.
    let mut order: Vec<&str> = selected.iter().map(|c| c.name.as_str()).collect();
    order.sort_unstable();
    order.dedup();
    let mut held = Vec::with_capacity(order.len());
    for name in order {
        held.push(shared.busy(name).lock_owned().await);
    }
    let report = agent.collect_now(&selected, |_| ()).await;
    drop(held);
    match report {
        Ok(r) => Response::Collected(r),
        Err(e) => Response::Refused(format!(
            "collected, but the run's checkpoint could not be written: {e}"
        )),
    }
}

/// Why the running agent could not collect for `exhibit collect`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket (no daemon, or one too old to have
    /// it).
    #[error("no running agent answers on {path}: {source}")]
    Unreachable {
        /// The socket.
        path: String,
        /// Why it could not be reached.
        source: std::io::Error,
    },
    /// The agent answered with a refusal, or not at all.
    #[error("{0}")]
    Failed(String),
}

/// Asks the agent listening at `socket` to collect `names` (every enabled
/// collector when empty) now, and waits for the result.
pub async fn request_collect(
    socket: &Path,
    names: &[String],
) -> Result<CollectReport, ControlError> {
    let conn = UnixStream::connect(socket)
        .await
        .map_err(|source| ControlError::Unreachable {
            path: socket.display().to_string(),
            source,
        })?;
    let (read, mut write) = conn.into_split();
    let mut request = serde_json::to_string(&Request::Collect {
        names: names.to_vec(),
    })
    .expect("requests serialise");
    request.push('\n');
    let broken = |e: std::io::Error| {
        ControlError::Failed(format!(
            "the running agent's control socket {} failed: {e}",
            socket.display()
        ))
    };
    write.write_all(request.as_bytes()).await.map_err(broken)?;
    let mut line = String::new();
    BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(broken)?;
    if line.trim().is_empty() {
        return Err(ControlError::Failed(
            "the running agent closed the control socket without answering (did it stop?)".into(),
        ));
    }
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Collected(r)) => Ok(r),
        Ok(Response::Refused(why)) => Err(ControlError::Failed(format!(
            "the running agent refused: {why}"
        ))),
        Err(e) => Err(ControlError::Failed(format!(
            "unreadable answer from the running agent: {e}"
        ))),
    }
}
