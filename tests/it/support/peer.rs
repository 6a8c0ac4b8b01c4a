//! The one way the suites run a third-party server: a child process that
//! is ready when it listens on a port or announces its port on stdout, and
//! that dies when its [`Peer`] is dropped or when the test process dies,
//! however it dies. A peer that cannot start is a failed test naming what
//! to install, never a skipped one.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a peer shows that it is ready.
#[derive(Debug, Clone, Copy)]
pub enum Ready {
    /// It accepts connections on this port.
    Listening(u16),
    /// Its first line on stdout is this prefix and the port it listens on.
    Announces(&'static str),
}

/// A running peer, killed when dropped (and by the kernel when the test
/// process ends, for the shared ones that live in statics).
pub struct Peer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Peer {
    /// Starts `cmd` and waits up to `limit` until it is `ready`. `what`
    /// names the peer in failures; `install` says how to get it.
    pub fn start(
        mut cmd: Command,
        what: &str,
        install: &str,
        ready: Ready,
        limit: Duration,
    ) -> Peer {
        cmd.stdout(match ready {
            Ready::Listening(_) => Stdio::null(),
            Ready::Announces(_) => Stdio::piped(),
        });
        let mut child =
            spawn(cmd).unwrap_or_else(|e| panic!("cannot start {what} ({e}): {install}"));
        let port = match ready {
            Ready::Listening(port) => {
                let deadline = Instant::now() + limit;
                while TcpStream::connect(("127.0.0.1", port)).is_err() {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("{what} exited before listening ({status}): {install}");
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        panic!("{what} did not listen on port {port} within {limit:?}");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                port
            }
            Ready::Announces(prefix) => {
                let line = first_line(&mut child, limit);
                match line.as_deref().and_then(|l| l.trim().strip_prefix(prefix)) {
                    Some(p) => p
                        .parse()
                        .unwrap_or_else(|_| panic!("{what} announced {line:?}")),
                    None => {
                        let _ = child.kill();
                        panic!("{what} did not start ({install}): its first line was {line:?}")
                    }
                }
            }
        };
        Peer {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's first line on stdout (`None` when it closed stdout or said
/// nothing within `limit`); the rest is read and dropped, so that a chatty
/// peer never blocks on a full pipe.
fn first_line(child: &mut Child, limit: Duration) -> Option<String> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = BufReader::new(out);
        let mut line = String::new();
        let read = out.read_line(&mut line);
        tx.send(matches!(read, Ok(n) if n > 0).then_some(line)).ok();
        std::io::copy(&mut out, &mut std::io::sink()).ok();
    });
    rx.recv_timeout(limit).ok().flatten()
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the test process, with
/// the parent-death signal set: PR_SET_PDEATHSIG fires when the spawning
/// *thread* ends, and each test runs on a thread of its own, so a peer
/// spawned by a test directly would die with that test even when it is
/// shared by others.
fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("peer-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    reply.send(cmd.spawn()).ok();
                }
            })
            .expect("the peer spawner thread starts");
        tx
    });
    let parent = std::process::id();
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl, getppid and _exit are async-signal-safe and touch
        // no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent died before the signal was armed.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let (tx, rx) = mpsc::channel();
    spawner
        .send((cmd, tx))
        .expect("the peer spawner thread runs");
    rx.recv().expect("the peer spawner thread answers")
}
