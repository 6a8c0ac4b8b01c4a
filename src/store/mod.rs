//! Evidence stores: a narrow key → bytes interface that knows nothing of
//! records or chains, so that every backend stores exactly the same layout
//! (DESIGN.md): `blobs/`, `records/`, `checkpoints/`, `keys/`.

pub mod fs;
pub mod mem;
#[cfg(feature = "aws")]
pub mod s3;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key exists already; stores never overwrite.
    #[error("{0} exists already and is never overwritten")]
    Exists(String),
    /// Another agent holds the lock.
    #[error("{what} is locked by another agent ({detail})")]
    Locked {
        /// What is locked (a stream, a checkpoint chain).
        what: String,
        /// Who holds it, where known.
        detail: String,
    },
    /// Any I/O failure, with the key it concerned.
    #[error("{key}: {source}")]
    Io {
        /// The key or path.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A remote store failed or could not be reached.
    #[error("{what}: {message}")]
    Remote {
        /// What was being done, and where.
        what: String,
        /// The cause, with the service's error code where there is one.
        message: String,
    },
    /// The store URL is not usable.
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(key: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            key: key.into(),
            source,
        }
    }
}

/// Held while this process is the single writer of a name; dropping it
/// releases the lock.
pub trait Lease: Send + Sync + std::fmt::Debug {}

/// A store of immutable objects by key.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` at `key` atomically; fails with [`StoreError::Exists`]
    /// when the key is taken.
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Reads a key; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key under `prefix` (which ends in `/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Whether a key exists.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// Claims `name` (e.g. `stream/aws-iam-users/123`) for this process.
    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError>;
    /// A human description (a path or URL).
    fn describe(&self) -> String;

    /// Where large objects are staged as files before [`Store::put_new_file`]
    /// (on the store's own filesystem, where that lets the file be linked
    /// into place); `None` means the system's temporary directory.
    fn staging_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Like [`Store::put_new`], from a staged file, so that a large payload
    /// need not be held in memory.
    async fn put_new_file(
        &self,
        key: &str,
        file: tempfile::NamedTempFile,
    ) -> Result<(), StoreError> {
        let bytes = tokio::fs::read(file.path())
            .await
            .map_err(|e| StoreError::io(key, e))?;
        self.put_new(key, &bytes).await
    }

    /// Like [`Store::put_new`], from a file that stays in place: the spool
    /// ships its objects this way, so that a large payload is streamed to the
    /// store rather than held in memory.
    async fn put_new_from_path(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| StoreError::io(key, e))?;
        self.put_new(key, &bytes).await
    }

    /// The SHA-256 (hex) and size of the object at `key`, or `None` when it
    /// does not exist. Backends read the object in pieces, so that checking
    /// a large payload never holds it in memory whole.
    async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self
            .get(key)
            .await?
            .map(|b| (crate::evidence::sha256_hex(&b), b.len() as u64)))
    }

    /// Writes accepted but not yet in the store proper (a spool's backlog);
    /// `None` for stores that write straight through.
    fn backlog(&self) -> Option<Backlog> {
        None
    }
    /// Waits up to `wait` for the backlog to drain; returns what is left.
    async fn flush(&self, _wait: Duration) -> u64 {
        0
    }
}

/// The SHA-256 (hex) and length of a file, read in pieces.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

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

/// How a store is opened.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open for writing: remote stores are checked at start-up and written
    /// through a local spool.
    pub write: bool,
    /// The spool directory for remote stores (required for writing).
    pub spool: Option<PathBuf>,
    /// S3 settings.
    pub s3: S3Options,
}

/// Options for a store named without a config (`--store` alone): S3
/// settings from the environment, the spool in `./spool`.
pub fn config_free_options(write: bool) -> OpenOptions {
    OpenOptions {
        write,
        spool: Some(PathBuf::from("spool")),
        s3: S3Options::default(),
    }
}

/// Opens a store from a location: a directory path (relative paths resolve
/// against `base`), or `s3://bucket/prefix`. Writers of an S3 store get it
/// behind a spool, after a check of the bucket's protections; readers read
/// S3 directly.
pub async fn open(
    location: &str,
    base: &Path,
    opts: &OpenOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    #[cfg(feature = "aws")]
    if location.starts_with("s3://") {
        let mut s3opts = opts.s3.clone();
        let spool_dir = opts.spool.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        });
        if opts.write {
            let dir = spool_dir.as_ref().ok_or_else(|| {
                StoreError::Config(format!(
                    "store `{location}`: writing needs a spool directory"
                ))
            })?;
            s3opts.owner = Some(spool::Spool::owner(dir)?);
        }
        let remote = s3::S3Store::connect(location, s3opts).await?;
        if !opts.write {
            return Ok(Arc::new(remote));
        }
        match remote.check_bucket().await {
            Ok(()) => {}
            // The bucket answered and lacks protection: refuse to start.
            Err(e @ StoreError::Config(_)) => return Err(e),
            // The store cannot be reached (or refuses the credentials):
            // collection goes on into the spool, loudly.
            Err(e) => {
                tracing::error!(error = %e, "cannot check the S3 store; evidence is kept in the spool until it can be shipped");
                eprintln!("warning: {e}; evidence is kept in the spool");
            }
        }
        let dir = spool_dir.expect("checked above");
        return Ok(Arc::new(spool::Spool::open(&dir, Arc::new(remote)).await?));
    }
    #[cfg(not(feature = "aws"))]
    if location.starts_with("s3://") {
        let _ = opts;
        return Err(StoreError::Config(format!(
            "store `{location}`: this build of exhibit has no S3 support (built without the `aws` feature)"
        )));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(StoreError::Config(format!(
            "store `{location}`: the `{scheme}://` backend is not available; use a directory path or s3://bucket/prefix"
        )));
    }
    let path = PathBuf::from(location);
    let path = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    Ok(Arc::new(fs::FsStore::new(path)))
}

/// Settings of an S3 store.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// AWS region; the SDK's own resolution (env, profile) when `None`.
    pub region: Option<String>,
    /// A custom endpoint (MinIO, Ceph, R2, a test server); addressing is
    /// then path-style. `AWS_ENDPOINT_URL` works too.
    pub endpoint: Option<String>,
    /// Encrypt objects with this KMS key (SSE-KMS) instead of the bucket's
    /// default encryption.
    pub sse_kms_key_id: Option<String>,
    /// How long each object is locked (COMPLIANCE mode) after it is written.
    pub retention: Duration,
    /// Run against a bucket without versioning or Object Lock (loudly).
    pub allow_without_object_lock: bool,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Who this agent is, for leases: the same owner may take back its own
    /// lease after a restart. A random id per process when `None`.
    pub owner: Option<String>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            region: None,
            endpoint: None,
            sse_kms_key_id: None,
            // An observation period is at most a year; the evidence must
            // outlive the audit that follows it by as much again.
            retention: Duration::from_secs(730 * 86_400),
            allow_without_object_lock: false,
            lease_ttl: Duration::from_secs(300),
            owner: None,
        }
    }
}
