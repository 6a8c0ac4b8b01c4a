//! The spool: a store that writes to a local, durable directory first and
//! ships to a remote store in the background, in the order of writing.
//!
//! Collection never waits for the remote store: when it is down, slow or
//! rejecting the credentials, evidence piles up in the spool and is shipped
//! with backoff once the store answers again. The spool survives restarts
//! and kill -9: whatever it holds at start-up is shipped again.
//!
//! Layout of the spool directory:
//!
//! ```text
//! queue/<20-digit seq>   the key of the n-th write (the order of shipping)
//! objects/<key>          the bytes, until shipped (an FsStore)
//! shipped/<key>          copies of shipped records, checkpoints and keys
//! conflicts/<seq>        writes the remote refused because it holds other bytes
//! owner                  this agent's lease identity
//! ```
//!
//! A write puts the queue entry first and the object second, and shipping
//! removes the object first and the entry second, so a queue entry without
//! its object is always one that is either unfinished (the write never
//! returned) or fully shipped: either way it is dropped. A write that reached
//! the remote but whose entry survived a crash is shipped again, and the
//! remote answering "exists, with the same bytes" counts as delivered, so a
//! chain is never broken by shipping twice.
//!
//! The writer reads heads (the last record of a stream, the last
//! checkpoint) through this store. Copies of shipped records, checkpoints
//! and keys are kept in `shipped/` so that, when the remote cannot be
//! reached, reads are answered from the spool alone: this agent is the
//! single writer of its streams, so what it wrote is all it needs. A spool
//! that has never reached its remote refuses that shortcut, since it cannot
//! know the heads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{Mutex, watch};

use super::fs::FsStore;
use super::{FileWrites, Lease, Store, StoreError};

/// A spool's backlog.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The spool directory.
    pub spool: PathBuf,
    /// Unshipped writes.
    pub depth: u64,
    /// When the oldest unshipped write was made.
    pub oldest: Option<SystemTime>,
}

/// Longest pause between shipping attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A spool in front of a remote store.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    objects: FsStore,
    shipped: FsStore,
    remote: Arc<dyn Store>,
    /// Serialises writes so that queue order is completion order; holds
    /// the next sequence number.
    next_seq: Mutex<u64>,
    /// The highest sequence number whose write completed.
    committed: watch::Sender<u64>,
    depth: AtomicU64,
    /// Seconds since the epoch of the oldest unshipped write, 0 when empty.
    oldest: AtomicU64,
    /// Leases that could not be claimed remotely yet; the shipper claims
    /// them before shipping anything.
    pending_leases: StdMutex<Vec<String>>,
    remote_leases: StdMutex<Vec<Box<dyn Lease>>>,
    /// Whether this spool has ever talked to its remote.
    synced: AtomicBool,
    /// Set when the remote failed and until the shipper reaches it again:
    /// reads and leases then skip the remote rather than each waiting for
    /// its own timeouts and retries.
    offline: AtomicBool,
}

impl Spool {
    /// Opens (or creates) the spool at `dir` in front of `remote`, and
    /// starts shipping whatever it already holds.
    pub async fn open(dir: &Path, remote: Arc<dyn Store>) -> Result<Self, StoreError> {
        for sub in ["queue", "objects", "shipped", "conflicts"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| StoreError::io(dir.join(sub).display().to_string(), e))?;
        }
        let queue = read_queue(dir)?;
        let next = queue.last().map_or(1, |(s, _)| s + 1);
        let (committed, _) = watch::channel(next - 1);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            objects: FsStore::new(dir.join("objects")),
            shipped: FsStore::new(dir.join("shipped")),
            remote,
            next_seq: Mutex::new(next),
            committed,
            depth: AtomicU64::new(queue.len() as u64),
            oldest: AtomicU64::new(0),
            pending_leases: StdMutex::new(Vec::new()),
            remote_leases: StdMutex::new(Vec::new()),
            synced: AtomicBool::new(dir.join("synced").exists()),
            offline: AtomicBool::new(false),
        });
        inner.refresh_oldest();
        if !queue.is_empty() {
            tracing::info!(spool = %dir.display(), depth = queue.len(), "spool holds unshipped evidence from an earlier run; shipping it");
        }
        tokio::spawn(ship_forever(inner.clone()));
        Ok(Spool { inner })
    }

    /// This agent's lease identity, kept in the spool so that a restarted
    /// agent recognises its own leases. Created on first use.
    pub fn owner(dir: &Path) -> Result<String, StoreError> {
        let path = dir.join("owner");
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path.display().to_string(), e)),
        }
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        let id = uuid::Uuid::now_v7().to_string();
        write_durably(&path, id.as_bytes())
            .map_err(|e| StoreError::io(path.display().to_string(), e))?;
        Ok(id)
    }

    /// Takes a write into the queue: the entry first, then the object (by
    /// `write`), so that shipping order is the order writes completed in.
    async fn enqueue(
        &self,
        key: &str,
        write: impl std::future::Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut next = inner.next_seq.lock().await;
        // Checked under the lock, so that no other write of the key is under
        // way, and in this order: the shipper copies an object to `shipped/`
        // before it removes it from `objects/`, so a key written earlier is
        // found in one or the other. (A payload shipped earlier is in
        // neither; its second write is shipped and found identical.)
        if inner.objects.exists(key).await? || inner.shipped.exists(key).await? {
            return Err(StoreError::Exists(key.to_string()));
        }
        let seq = *next;
        let entry = inner.dir.join("queue").join(format!("{seq:020}"));
        let dir = inner.dir.clone();
        let k = key.to_string();
        let e2 = entry.clone();
        tokio::task::spawn_blocking(move || write_durably(&e2, k.as_bytes()))
            .await
            .expect("spool writes do not panic")
            .map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        if let Err(e) = write.await {
            remove_spooled(&entry);
            return Err(e);
        }
        *next = seq + 1;
        let before = inner.depth.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            inner.oldest.store(now, Ordering::Relaxed);
        }
        inner.committed.send_replace(seq);
        Ok(())
    }

    /// Removes what a process of this agent staged and never linked into
    /// the spool (killed mid-write): only the agent holding the spool's
    /// lock may call it, since a staged file of a live writer looks the
    /// same. Returns how many files went.
    pub fn clean_staging(&self) -> usize {
        let Some(dir) = self.inner.objects.staging_dir() else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => removed += 1,
                    Err(err) => {
                        tracing::warn!(file = %e.path().display(), error = %err, "cannot remove a staged file left by an interrupted write")
                    }
                }
            }
        }
        if removed > 0 {
            tracing::info!(spool = %self.inner.dir.display(), removed, "removed staged files left by an interrupted write");
        }
        removed
    }

    /// Unshipped writes.
    pub fn depth(&self) -> u64 {
        self.inner.depth.load(Ordering::Relaxed)
    }

    /// Writes accepted but not yet in the store proper.
    pub fn backlog(&self) -> Backlog {
        let oldest = self.inner.oldest.load(Ordering::Relaxed);
        Backlog {
            spool: self.inner.dir.clone(),
            depth: self.depth(),
            oldest: (oldest > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(oldest)),
        }
    }

    /// Waits up to `wait` for the backlog to drain; returns what is left.
    pub async fn flush(&self, wait: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let depth = self.depth();
            if depth == 0 || tokio::time::Instant::now() >= deadline {
                return depth;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Inner {
    fn refresh_oldest(&self) {
        let oldest = read_queue(&self.dir)
            .ok()
            .and_then(|q| q.first().cloned())
            .and_then(|(_, p)| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        self.oldest.store(oldest, Ordering::Relaxed);
    }

    fn mark_synced(&self) {
        if !self.synced.swap(true, Ordering::Relaxed) {
            let _ = write_durably(&self.dir.join("synced"), b"");
        }
    }

    /// Reads that the remote could not answer fall back to the spool only
    /// when it is known to hold this agent's heads.
    fn tolerate(&self, e: StoreError) -> Result<(), StoreError> {
        if matches!(e, StoreError::Remote { .. }) && self.synced.load(Ordering::Relaxed) {
            if !self.offline.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "store unreachable; reading from the spool");
            }
            Ok(())
        } else {
            Err(e)
        }
    }

    async fn claim_pending_leases(&self) -> Result<(), StoreError> {
        let names: Vec<String> = self.pending_leases.lock().expect("lock").clone();
        for name in names {
            let lease = self.remote.lease(&name).await?;
            self.remote_leases.lock().expect("lock").push(lease);
            self.pending_leases
                .lock()
                .expect("lock")
                .retain(|n| n != &name);
            tracing::info!(lease = %name, "claimed the lease in the store");
        }
        Ok(())
    }

    /// Ships one queue entry; an error means the remote failed and
    /// shipping must pause.
    async fn ship_one(&self, seq: u64, entry: &Path) -> Result<(), StoreError> {
        let key = std::fs::read_to_string(entry)
            .map_err(|e| StoreError::io(entry.display().to_string(), e))?;
        let key = key.trim();
        let object = self.objects.root().join(key);
        if !object.exists() {
            // Unfinished or already shipped (see the module docs).
            remove_spooled(entry);
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        // Streamed from the file: a large payload is never held in memory
        // (by a remote that can write from files; the others take bytes).
        let shipped = match self.remote.file_writes() {
            Some(files) => files.put_new_from_path(key, &object).await,
            None => match tokio::fs::read(&object).await {
                Ok(bytes) => self.remote.put_new(key, &bytes).await,
                Err(e) => Err(StoreError::io(key, e)),
            },
        };
        match shipped {
            Ok(()) => {}
            Err(StoreError::Exists(_)) => {
                let ours = self.objects.hash(key).await?;
                if self.remote.hash(key).await? != ours {
                    let parked = self.dir.join("conflicts").join(format!("{seq:020}"));
                    tracing::error!(key, parked = %parked.display(), "the store holds different bytes under this key; the spooled object is kept in the spool and not shipped");
                    let _ = std::fs::rename(&object, &parked);
                    remove_spooled(entry);
                    self.depth.fetch_sub(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
        self.mark_synced();
        self.offline.store(false, Ordering::Relaxed);
        // Payloads are content-addressed and large: only the small objects
        // are kept, for reading back while the store is out of reach.
        if !crate::evidence::layout::is_blob(key) {
            let bytes = std::fs::read(&object).map_err(|e| StoreError::io(key, e))?;
            match self.shipped.put_new(key, &bytes).await {
                Ok(()) | Err(StoreError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        remove_spooled(&object);
        remove_spooled(entry);
        self.depth.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The shipper: drains the queue in order, forever, backing off while the
/// remote fails, and logging as the backlog grows.
async fn ship_forever(inner: Arc<Inner>) {
    let mut committed = inner.committed.subscribe();
    let mut backoff = Duration::from_secs(1);
    let mut warned_depth = 0u64;
    loop {
        let upto = *committed.borrow_and_update();
        let result = async {
            inner.claim_pending_leases().await?;
            let queue = read_queue(&inner.dir)?;
            for (seq, path) in queue.into_iter().take_while(|(s, _)| *s <= upto) {
                inner.ship_one(seq, &path).await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        inner.refresh_oldest();
        let depth = inner.depth.load(Ordering::Relaxed);
        match result {
            Ok(()) => {
                // Said once the backlog is gone, not merely shrinking: new
                // evidence keeps arriving while the old is shipped.
                if depth == 0 {
                    if warned_depth > 0 {
                        tracing::info!("spool drained; the store has all evidence");
                    }
                    warned_depth = 0;
                }
                backoff = Duration::from_secs(1);
                if *committed.borrow() == upto && committed.changed().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if depth >= warned_depth.max(8) * 2 || warned_depth == 0 {
                    warned_depth = depth.max(1);
                    tracing::warn!(error = %e, depth, "cannot ship to the store; evidence stays in the spool");
                } else {
                    tracing::debug!(error = %e, depth, "shipping failed");
                }
                // Wake up early when new evidence arrives, but do not
                // hammer a failing store: the backoff still applies.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[derive(Debug)]
struct SpoolLease {
    _local: Box<dyn Lease>,
}

impl Lease for SpoolLease {}

#[async_trait]
impl Store for Spool {
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.enqueue(key, self.inner.objects.put_new(key, bytes))
            .await
    }

    async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        if let Some(h) = self.inner.objects.hash(key).await? {
            return Ok(Some(h));
        }
        if let Some(h) = self.inner.shipped.hash(key).await? {
            return Ok(Some(h));
        }
        self.inner.remote.hash(key).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(b) = self.inner.objects.get(key).await? {
            return Ok(Some(b));
        }
        if let Some(b) = self.inner.shipped.get(key).await? {
            return Ok(Some(b));
        }
        self.inner.remote.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // The spool first: an object shipped meanwhile is then found in the
        // remote listing, never missed by both.
        let mut keys = self.inner.objects.list(prefix).await?;
        keys.extend(self.inner.shipped.list(prefix).await?);
        if self.inner.offline.load(Ordering::Relaxed) && self.inner.synced.load(Ordering::Relaxed) {
            keys.sort();
            keys.dedup();
            return Ok(keys);
        }
        match self.inner.remote.list(prefix).await {
            Ok(remote) => {
                self.inner.mark_synced();
                keys.extend(remote);
            }
            Err(e) => self.inner.tolerate(e)?,
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        if self.inner.objects.exists(key).await? || self.inner.shipped.exists(key).await? {
            return Ok(true);
        }
        self.inner.remote.exists(key).await
    }

    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError> {
        // Locally first: one process per spool.
        let local = self.inner.objects.lease(name).await?;
        let remote = if self.inner.offline.load(Ordering::Relaxed) {
            Err(StoreError::Remote {
                what: self.inner.remote.describe(),
                message: "unreachable a moment ago".into(),
            })
        } else {
            self.inner.remote.lease(name).await
        };
        match remote {
            Ok(remote) => {
                self.inner.mark_synced();
                self.inner.remote_leases.lock().expect("lock").push(remote);
            }
            Err(e @ StoreError::Locked { .. }) => return Err(e),
            Err(e @ StoreError::Remote { .. }) => {
                // Collection goes on; nothing is shipped before the lease is
                // held in the store.
                self.inner.offline.store(true, Ordering::Relaxed);
                tracing::warn!(lease = name, error = %e, "cannot claim the lease in the store now; evidence is spooled and the lease claimed before shipping");
                self.inner
                    .pending_leases
                    .lock()
                    .expect("lock")
                    .push(name.to_string());
            }
            Err(e) => return Err(e),
        }
        Ok(Box::new(SpoolLease { _local: local }))
    }

    fn describe(&self) -> String {
        self.inner.remote.describe()
    }
}

#[async_trait]
impl FileWrites for Spool {
    fn staging_dir(&self) -> Option<PathBuf> {
        self.inner.objects.staging_dir()
    }

    async fn put_new_file(
        &self,
        key: &str,
        file: tempfile::NamedTempFile,
    ) -> Result<(), StoreError> {
        self.enqueue(key, self.inner.objects.put_new_file(key, file))
            .await
    }

    async fn put_new_from_path(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        self.enqueue(key, self.inner.objects.put_new_from_path(key, path))
            .await
    }
}

/// Queue entries, sorted by sequence number.
fn read_queue(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let qdir = dir.join("queue");
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(&qdir).map_err(|e| StoreError::io(qdir.display().to_string(), e))?;
    for e in entries {
        let e = e.map_err(|e| StoreError::io(qdir.display().to_string(), e))?;
        let name = e.file_name();
        if let Some(seq) = name.to_str().and_then(|n| n.parse::<u64>().ok()) {
            out.push((seq, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a file atomically and durably: temp file, fsync, rename, fsync
/// of the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("spool files have a directory");
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes a shipped (or abandoned) spool file. Not fsynced: a removal
/// lost in a crash only means the object is shipped again, which the remote
/// answers with "exists, same bytes".
fn remove_spooled(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote that fails until switched on.
    #[derive(Debug)]
    struct Flaky {
        up: AtomicBool,
        store: FsStore,
    }

    #[async_trait]
    impl Store for Flaky {
        async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.check()?;
            self.store.put_new(key, bytes).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.check()?;
            self.store.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.check()?;
            self.store.list(prefix).await
        }
        async fn exists(&self, key: &str) -> Result<bool, StoreError> {
            self.check()?;
            self.store.exists(key).await
        }
        async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError> {
            self.check()?;
            self.store.lease(name).await
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.up.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(StoreError::Remote {
                    what: "flaky".into(),
                    message: "down".into(),
                })
            }
        }
    }

    #[tokio::test]
    async fn ships_in_order_after_an_outage_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(Flaky {
            up: AtomicBool::new(false),
            store: FsStore::new(dir.path().join("remote")),
        });
        let spool_dir = dir.path().join("spool");
        {
            let spool = Spool::open(&spool_dir, remote.clone()).await.unwrap();
            for i in 0..5 {
                spool
                    .put_new(
                        &format!("records/s/{i:012}.json"),
                        format!("{i}").as_bytes(),
                    )
                    .await
                    .unwrap();
            }
            assert_eq!(spool.depth(), 5);
            // Reads see the spool while the remote is down... once synced.
            assert!(spool.list("records/").await.is_err());
            assert_eq!(spool.flush(Duration::from_millis(100)).await, 5);
            assert!(
                spool
                    .put_new("records/s/000000000001.json", b"x")
                    .await
                    .is_err()
            );
        }
        // A new process (the old shipper task is simply abandoned).
        remote.up.store(true, Ordering::Relaxed);
        remote
            .store
            .put_new("records/s/000000000000.json", b"0")
            .await
            .unwrap();
        let spool = Spool::open(&spool_dir, remote.clone()).await.unwrap();
        assert_eq!(spool.flush(Duration::from_secs(10)).await, 0);
        let keys = remote.store.list("records/").await.unwrap();
        assert_eq!(keys.len(), 5);
        assert_eq!(
            remote
                .store
                .get("records/s/000000000004.json")
                .await
                .unwrap()
                .unwrap(),
            b"4"
        );
        // Offline again: reads are answered from the spool's copies.
        remote.up.store(false, Ordering::Relaxed);
        assert_eq!(spool.list("records/").await.unwrap().len(), 5);
        assert_eq!(
            spool
                .get("records/s/000000000002.json")
                .await
                .unwrap()
                .unwrap(),
            b"2"
        );
    }
}
