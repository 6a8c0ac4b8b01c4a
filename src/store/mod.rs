//! Evidence stores: a narrow key → bytes interface that knows nothing of
//! records or chains, so that every backend stores exactly the same layout
//! (DESIGN.md): `blobs/`, `records/`, `checkpoints/`, `keys/`.

pub mod fs;
pub mod mem;

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Opens a store from a location: a directory path (relative paths resolve
/// against `base`), or a URL whose scheme names a backend.
pub fn open(location: &str, base: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(StoreError::Config(format!(
            "store `{location}`: the `{scheme}://` backend is not available in this build; use a directory path"
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
