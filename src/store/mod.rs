//! Evidence stores: a narrow key → bytes interface that knows nothing of
//! records or chains, so that every backend stores exactly the same layout
//! (DESIGN.md, built by [`crate::evidence::layout`]): `blobs/`, `records/`,
//! `checkpoints/`, `keys/`. Backends: a directory ([`fs`]), S3 ([`s3`]),
//! memory ([`mem`], for tests), and the [`spool`] that writers of a remote
//! store write through; [`contract`] checks that each keeps the contract.

#[doc(hidden)]
pub mod contract;
pub mod fs;
pub mod mem;
#[cfg(feature = "aws")]
pub mod s3;
pub mod spool;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use spool::Backlog;

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

/// A store of immutable objects by key: the contract every backend keeps
/// (the [`contract`] module checks it, on every backend).
///
/// Keys are `/`-separated segments that are neither empty nor start with
/// `.` (so no `.`, `..` or hidden names, and no leading `/`): every backend
/// refuses other keys with [`StoreError::Config`]. Which keys make up the
/// evidence is [`crate::evidence::layout`]'s business, not the store's: a
/// stray key is stored and listed like any other, so that `verify` sees it.
///
/// Capabilities that only some backends have are not part of this trait:
/// large objects written from files ([`FileWrites`], found with
/// [`file_writes`](Self::file_writes)) and the spool's backlog
/// ([`spool::Spool`], found with [`spool`](Self::spool)).
#[async_trait]
pub trait Store: Any + Send + Sync + std::fmt::Debug {
    /// Writes `bytes` at `key` atomically; fails with [`StoreError::Exists`]
    /// when the key is taken.
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Reads a key; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key under `prefix` (empty, or ending in `/`), nested ones
    /// included, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Whether a key exists.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// The SHA-256 (hex) and size of the object at `key`, or `None` when it
    /// does not exist. Backends read the object in pieces, so that checking
    /// a large payload never holds it in memory whole.
    async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self
            .get(key)
            .await?
            .map(|b| (crate::evidence::sha256_hex(&b), b.len() as u64)))
    }
    /// Claims `name` (e.g. `stream/aws-iam-users/123`) for this process.
    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError>;
    /// A human description (a path or URL).
    fn describe(&self) -> String;
}

/// Writes from files, so that a large payload need not be held in memory:
/// the writer stages a payload as a file ([`put_new_file`]), and the spool
/// ships the files it holds ([`put_new_from_path`]). Backends that can do
/// better than reading the file into memory implement this; the others are
/// written their bytes.
///
/// [`put_new_file`]: FileWrites::put_new_file
/// [`put_new_from_path`]: FileWrites::put_new_from_path
#[async_trait]
pub trait FileWrites: Store {
    /// Where to stage a file for [`FileWrites::put_new_file`]: on the
    /// store's own filesystem, where that lets the file be linked into
    /// place; `None` means the system's temporary directory.
    fn staging_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Like [`Store::put_new`], taking a staged file (which the store may
    /// link into place rather than copy).
    async fn put_new_file(
        &self,
        key: &str,
        file: tempfile::NamedTempFile,
    ) -> Result<(), StoreError> {
        self.put_new_from_path(key, file.path()).await
    }

    /// Like [`Store::put_new`], from a file that stays in place, streamed
    /// to the store.
    async fn put_new_from_path(&self, key: &str, path: &Path) -> Result<(), StoreError>;
}

impl dyn Store {
    /// This store's writes from files, when its backend has them. Found by
    /// the backend's type, so that the trait every backend (and every test
    /// double) implements stays the narrow key → bytes contract.
    pub fn file_writes(&self) -> Option<&dyn FileWrites> {
        let any: &dyn Any = self;
        if let Some(s) = any.downcast_ref::<fs::FsStore>() {
            return Some(s);
        }
        if let Some(s) = any.downcast_ref::<spool::Spool>() {
            return Some(s);
        }
        #[cfg(feature = "aws")]
        if let Some(s) = any.downcast_ref::<s3::S3Store>() {
            return Some(s);
        }
        None
    }

    /// The spool, when this store is one (writers of a remote store write
    /// through one): its backlog, and a way to wait for it to drain.
    pub fn spool(&self) -> Option<&spool::Spool> {
        let any: &dyn Any = self;
        any.downcast_ref()
    }
}

/// Refuses keys that are not plain `/`-separated names (see [`Store`]).
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
        return Err(StoreError::Config(format!("invalid store key `{key}`")));
    }
    Ok(())
}

/// Refuses listing prefixes that are not empty or a key followed by `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    match prefix.strip_suffix('/') {
        Some(dir) => check_key(dir),
        None => Err(StoreError::Config(format!(
            "invalid store prefix `{prefix}` (it must end in `/`)"
        ))),
    }
}

/// The SHA-256 (hex) and length of a file, read in pieces (the S3 store
/// sends large payloads from a file with their checksum).
#[cfg(feature = "aws")]
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
