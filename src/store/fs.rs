//! The filesystem store: one file per key under a root directory.
//!
//! A write goes to a temporary file in the target directory, is fsynced,
//! then hard-linked into place, and the directory is fsynced so that the new
//! name survives a power cut.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};

use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use async_trait::async_trait;

use super::{FileWrites, Lease, Store, StoreError};

/// Where lock files live, beside (not inside) the evidence layout.
const LOCK_DIR: &str = ".locks";
/// Where payloads are staged before they are linked into `blobs/`.
const STAGING_DIR: &str = ".staging";

/// A store rooted at a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store at `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        FsStore { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        super::check_key(key)?;
        Ok(self.root.join(key))
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        super::check_prefix(prefix)?;
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let mut out = Vec::new();
        walk(&dir, prefix.trim_end_matches('/'), &mut out)
            .map_err(|e| StoreError::io(prefix, e))?;
        out.sort();
        Ok(out)
    }
}

fn walk(dir: &Path, key_prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Temporary files and lock files are not evidence.
        if name.starts_with('.') {
            continue;
        }
        let key = if key_prefix.is_empty() {
            name.to_string()
        } else {
            format!("{key_prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else {
            out.push(key);
        }
    }
    Ok(())
}

/// Opens the regular file at `path`, refusing anything else: a symlink
/// (to `/dev/zero`, say), a device or a FIFO could be read, or block,
/// without end. The name is checked before it is opened (so that a FIFO
/// is never opened), and the opened file again (so that nothing swapped in
/// between is read).
fn open_regular(path: &Path) -> std::io::Result<File> {
    let what = |kind: fs::FileType| {
        if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        }
    };
    let kind = fs::symlink_metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(what(kind)));
    }
    let file = File::open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(what(kind)));
    }
    Ok(file)
}

fn not_regular(what: &str) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::InvalidData,
        format!("is {what}, not a regular file: refused (the store holds regular files only)"),
    )
}

/// SHA-256 and length of the regular file at `path`, read in bounded
/// chunks.
fn hash_regular(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = open_regular(path)?;
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

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive advisory lock on a file, released when dropped (or when the
/// process dies, so that a kill -9 never leaves a stale lock behind).
#[derive(Debug)]
struct FileLease {
    _file: File,
}

impl Lease for FileLease {}

#[async_trait]
impl Store for FsStore {
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        // Written through tokio's file, which hands the bytes to the blocking
        // pool in bounded chunks: a large payload is not copied whole.
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a directory").to_path_buf();
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StoreError::Exists(key.to_string()));
        }
        let io = |e| StoreError::io(key, e);
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let tmp_dir = dir.clone();
        let tmp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(tmp_dir)
        })
        .await
        .expect("creating a temp file does not panic")
        .map_err(io)?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        file.write_all(bytes).await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        // Linking, unlike renaming, fails when the target exists: a key is
        // never overwritten, even by a racing writer.
        let linked = tokio::fs::hard_link(&tmp_path, &path).await;
        drop(tmp_path);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(key.to_string()));
            }
            Err(e) => return Err(io(e)),
        }
        tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .expect("fsync does not panic")
            .map_err(io)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        let read = tokio::task::spawn_blocking(move || {
            let mut file = open_regular(&path)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok::<_, std::io::Error>(bytes)
        })
        .await
        .expect("reading does not panic");
        match read {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, e)),
        }
    }

    async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        let path = self.path(key)?;
        match tokio::task::spawn_blocking(move || hash_regular(&path))
            .await
            .expect("hashing does not panic")
        {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || this.list_sync(&prefix))
            .await
            .expect("listing does not panic")
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.path(key)?.exists())
    }

    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError> {
        let file_name = format!("{}.lock", name.replace('/', "~"));
        let dir = self.root.join(LOCK_DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(LOCK_DIR, e))?;
        let path = dir.join(file_name);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(path.display().to_string(), e))?;
        match file.try_lock() {
            Ok(()) => {
                let me = format!("pid {} on {}", std::process::id(), host());
                file.set_len(0).ok();
                let _ = file.write_all(me.as_bytes());
                Ok(Box::new(FileLease { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                Err(StoreError::Locked {
                    what: name.to_string(),
                    detail: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder
                    },
                })
            }
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io(path.display().to_string(), e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

#[async_trait]
impl FileWrites for FsStore {
    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(STAGING_DIR))
    }

    async fn put_new_file(
        &self,
        key: &str,
        file: tempfile::NamedTempFile,
    ) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a directory").to_path_buf();
        let io = |e| StoreError::io(key, e);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StoreError::Exists(key.to_string()));
        }
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let file = tokio::task::spawn_blocking(move || file.as_file().sync_all().map(|()| file))
            .await
            .expect("fsync does not panic")
            .map_err(io)?;
        match tokio::fs::hard_link(file.path(), &path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(key.to_string()));
            }
            // Staged elsewhere (another filesystem): copied beside the
            // target first, then linked.
            Err(e) if e.kind() == ErrorKind::CrossesDevices => {
                return self.put_new_from_path(key, file.path()).await;
            }
            Err(e) => return Err(io(e)),
        }
        drop(file);
        tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .expect("fsync does not panic")
            .map_err(io)
    }

    async fn put_new_from_path(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        // Copied by the kernel into a temporary file beside the target (never
        // through memory), then linked into place like a staged file.
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a directory").to_path_buf();
        let io = |e| StoreError::io(key, e);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StoreError::Exists(key.to_string()));
        }
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let source = source.to_path_buf();
        let tmp = tokio::task::spawn_blocking(move || {
            let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)?;
            fs::copy(&source, tmp.path())?;
            Ok::<_, std::io::Error>(tmp)
        })
        .await
        .expect("copying does not panic")
        .map_err(io)?;
        self.put_new_file(key, tmp).await
    }
}

fn host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_never_overwrite_and_list_is_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().join("store"));
        s.put_new("records/a/000000000002.json", b"2")
            .await
            .unwrap();
        s.put_new("records/a/000000000001.json", b"1")
            .await
            .unwrap();
        s.put_new("records/b/c/000000000001.json", b"x")
            .await
            .unwrap();
        let err = s
            .put_new("records/a/000000000001.json", b"evil")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Exists(_)));
        assert_eq!(
            s.get("records/a/000000000001.json").await.unwrap().unwrap(),
            b"1"
        );
        assert_eq!(
            s.list("records/").await.unwrap(),
            vec![
                "records/a/000000000001.json",
                "records/a/000000000002.json",
                "records/b/c/000000000001.json"
            ]
        );
        assert!(s.list("nothing/").await.unwrap().is_empty());
        assert!(s.get("records/../x").await.is_err());
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("store/records/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2);
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_path_buf());
        let held = s.lease("stream/git/x").await.unwrap();
        let err = s.lease("stream/git/x").await.unwrap_err();
        assert!(err.to_string().contains("locked by another agent"), "{err}");
        drop(held);
        s.lease("stream/git/x").await.unwrap();
    }

    #[tokio::test]
    async fn a_symlink_or_device_is_refused_not_read_without_end() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_path_buf());
        let blob = format!("blobs/sha256/00/{}", "0".repeat(64));
        fs::create_dir_all(dir.path().join("blobs/sha256/00")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(&blob)).unwrap();
        let fifo = "records/a/000000000001.json";
        fs::create_dir_all(dir.path().join("records/a")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join(fifo))
            .status()
            .unwrap();
        assert!(made.success());
        for key in [blob.as_str(), fifo] {
            let e = s.get(key).await.unwrap_err().to_string();
            assert!(e.contains("not a regular file: refused"), "{key}: {e}");
            let e = s.hash(key).await.unwrap_err().to_string();
            assert!(e.contains("not a regular file: refused"), "{key}: {e}");
        }
        assert_eq!(s.get("records/a/000000000002.json").await.unwrap(), None);
    }
}
